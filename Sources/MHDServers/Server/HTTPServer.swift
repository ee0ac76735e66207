import Logging
import ServiceLifecycle
import Synchronization

/// One HTTP server: a libmicrohttpd daemon that answers with a ``Router`` or any
/// ``HTTPHandler``. It is a swift-service-lifecycle `Service`.
///
/// `run()` binds (with port fallback), serves until a graceful shutdown, then stops accepting
/// (new connections are refused at once), lets in-flight requests finish up to
/// ``shutdownTimeout``, cancels what is left, and stops. Task cancellation stops at once.
///
/// ```swift
/// var router = Router()
/// router.get("/hello") { _ in .text("hello") }
/// let server = HTTPServer(config: ServerConfig(name: "api", port: 8080), router: router, logger: logger)
///
/// let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public final class HTTPServer: Service, Sendable, CustomStringConvertible {
    /// The configuration the server was created with.
    public let config: ServerConfig
    /// Live request counters.
    public let stats = ServerStats()
    /// How long a graceful shutdown waits for in-flight requests before cancelling them.
    public let shutdownTimeout: Duration

    let logger: Logger
    let events: ServerEvents
    private let responder: Engine.Responder
    private let state = Locked(State())

    private struct State {
        var socket: ListeningSocket?
        var engine: Engine?
        var address: BoundAddress?
        var failure: (any Error)?
        var finished = false
        var waiters: [CheckedContinuation<BoundAddress, any Error>] = []
        var shutdownRequested = false
        var shutdownWaiter: CheckedContinuation<Void, Never>?
        var drainDeadline: ContinuousClock.Instant?
        var forceStop = false
        var notReady = false
        var shutdownTask: Task<Void, Never>?
    }

    /// Creates a server that answers with `router`.
    ///
    /// ```swift
    /// let server = HTTPServer(config: ServerConfig(name: "api", port: 0), router: router)
    /// ```
    public convenience init(
        config: ServerConfig, router: Router, logger: Logger = Logger(label: "MHDServers"),
        shutdownTimeout: Duration = .seconds(10)
    ) {
        self.init(config: config, responder: .router(router), logger: logger, shutdownTimeout: shutdownTimeout)
    }

    /// Creates a server that answers every request with `handler`.
    ///
    /// ```swift
    /// let server = HTTPServer(config: ServerConfig(name: "echo", port: 0), handler: Echo())
    /// ```
    public convenience init(
        config: ServerConfig, handler: some HTTPHandler, logger: Logger = Logger(label: "MHDServers"),
        shutdownTimeout: Duration = .seconds(10)
    ) {
        let responder: Engine.Responder
        if let router = handler as? Router {
            responder = .router(router)
        } else {
            responder = .handler(handler)
        }
        self.init(config: config, responder: responder, logger: logger, shutdownTimeout: shutdownTimeout)
    }

    init(
        config: ServerConfig, responder: Engine.Responder, logger: Logger, shutdownTimeout: Duration,
        events: ServerEvents? = nil
    ) {
        self.config = config
        self.responder = responder
        self.logger = logger
        self.shutdownTimeout = shutdownTimeout
        self.events = events ?? .logging(config.name, logger)
    }

    public var description: String { "HTTPServer(\(config.name))" }

    /// The bound address once the server listens, else `nil`.
    public var address: BoundAddress? { state.withLock { $0.address } }

    /// Waits until the server listens and returns where; throws the start error if it failed.
    ///
    /// ```swift
    /// async let running: Void = server.run()
    /// let address = try await server.listeningAddress()
    /// print(address.url)   // http://127.0.0.1:49152
    /// ```
    public func listeningAddress() async throws -> BoundAddress {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<BoundAddress, any Error>? = state.withLock { state in
                if let address = state.address { return .success(address) }
                if let failure = state.failure { return .failure(failure) }
                if state.finished { return .failure(CancellationError()) }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    // MARK: Service

    /// Binds, serves until graceful shutdown or cancellation, then drains and stops.
    public func run() async throws {
        let (wasStarted, finished) = state.withLock { ($0.engine != nil, $0.finished) }
        // Already stopped (by its manager, before the group got to run it): nothing to do.
        if finished && !wasStarted { return }
        if !wasStarted {
            do {
                let address = try bind()
                try start()
                await events.started(address)
            } catch {
                unbind(because: error)
                throw error
            }
        }
        await withTaskCancellationOrGracefulShutdownHandler {
            await waitForShutdownRequest()
        } onCancelOrGracefulShutdown: {
            self.beginShutdown()
        }
        // Cancelled rather than asked to shut down gracefully: stop at once, without a drain.
        if Task.isCancelled { stopNow() }
        await events.shuttingDown()
        await finishShutdown()
    }

    // MARK: Steps, also driven by ServerManager

    /// Binds the listening socket (idempotent), skipping `excluded` ports.
    @discardableResult
    func bind(excluding excluded: Set<Int> = []) throws -> BoundAddress {
        let (existing, finished) = state.withLock { ($0.address, $0.finished) }
        if let existing { return existing }
        if finished {
            throw ServerError(
                .invalidConfiguration, server: config.name, host: config.host, portsTried: [],
                message: "a server runs once; create a new HTTPServer to serve again")
        }
        let socket = try ListeningSocket.bind(config, excluding: excluded, observe: events.bindAttempt)
        let address = BoundAddress(host: config.host, port: socket.port, scheme: config.tls == nil ? "http" : "https")
        state.withLock {
            $0.socket = socket
            $0.address = address
        }
        return address
    }

    /// Starts the engine on the bound socket (idempotent) and wakes ``listeningAddress()`` callers.
    func start() throws {
        let (socket, alreadyStarted) = state.withLock { ($0.socket, $0.engine != nil) }
        if alreadyStarted { return }
        guard let socket else { throw CancellationError() }
        let engine = Engine(config: config, socket: socket, responder: responder, logger: logger, stats: stats)
        try engine.start()
        let (waiters, address, notReady, stopping) = state.withLock { state in
            state.engine = engine
            defer { state.waiters = [] }
            return (state.waiters, state.address!, state.notReady, state.drainDeadline != nil)
        }
        // Started while a shutdown was already under way (a late runtime add): join it.
        if notReady { engine.notReady.store(true, ordering: .relaxed) }
        if stopping { engine.quiesce() }
        for waiter in waiters { waiter.resume(returning: address) }
    }

    /// Releases the socket of a server that was bound but never started (startup rollback).
    func unbind(because error: any Error) {
        let socket = state.withLock { state -> ListeningSocket? in
            guard state.engine == nil else { return nil }
            defer {
                state.socket = nil
                state.address = nil
                state.finished = true
            }
            return state.socket
        }
        socket?.close()
        fail(error)
    }

    /// Stops accepting new connections now and starts the drain clock (idempotent). `run()`
    /// keeps going until its own graceful shutdown, then drains against this deadline.
    ///
    /// - Parameter deadline: when in-flight requests are cancelled; default now + ``shutdownTimeout``.
    func stopAccepting(deadline: ContinuousClock.Instant? = nil) {
        let engine = state.withLock { state -> Engine? in
            if state.drainDeadline == nil {
                state.drainDeadline = deadline ?? ContinuousClock.now.advanced(by: shutdownTimeout)
            }
            return state.engine
        }
        engine?.quiesce()
    }

    /// Makes the readiness probe answer 503 while the server still accepts (the first step of
    /// a shutdown with a drain delay).
    func markNotReady() {
        let engine = state.withLock { state -> Engine? in
            state.notReady = true
            return state.engine
        }
        engine?.notReady.store(true, ordering: .relaxed)
    }

    /// Connections the engine holds open right now (0 when not running).
    var openConnections: Int { state.withLock { $0.engine }?.connections.openCount ?? 0 }

    /// Whether a shutdown has begun (the readiness probe answers 503).
    public var isShuttingDown: Bool { state.withLock { $0.notReady || $0.drainDeadline != nil } }

    /// Stops accepting and lets `run()` proceed to the drain (idempotent).
    func beginShutdown() {
        stopAccepting()
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.shutdownRequested = true
            defer { state.shutdownWaiter = nil }
            return state.shutdownWaiter
        }
        waiter?.resume()
    }

    /// Ends any drain at once: in-flight handlers are cancelled when the server stops. Used on
    /// a second signal (the server still stops in its turn) and for startup rollback.
    func stopNow() {
        state.withLock { $0.forceStop = true }
        stopAccepting()
    }

    private func waitForShutdownRequest() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.shutdownRequested { return true }
                state.shutdownWaiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Drains up to the deadline, stops the daemon, releases the port and reports the server
    /// stopped, once; concurrent and later callers wait for that one shutdown.
    func finishShutdown() async {
        let task = state.withLock { state -> Task<Void, Never>? in
            if let task = state.shutdownTask { return task }
            guard state.engine != nil else { return nil }
            let task = Task { await self.performShutdown() }
            state.shutdownTask = task
            return task
        }
        await task?.value
    }

    private func performShutdown() async {
        guard let (engine, deadline) = state.withLock({ state in state.engine.map { ($0, state.drainDeadline ?? .now) } })
        else { return }
        engine.quiesce()
        let inFlight = stats.inFlight
        let drained = await engine.drain(until: deadline) { self.state.withLock { $0.forceStop } }
        if !drained {
            logger.warning(
                "\(config.name): cancelling requests still in flight at shutdown",
                metadata: ["server": "\(config.name)", "inFlight": "\(stats.inFlight)"])
            // Give the abandoned requests a moment to send their 503 before connections close.
            if engine.abandonSuspended() > 0 {
                _ = await engine.drain(until: .now + .milliseconds(250)) { false }
            }
        }
        engine.stop()
        let waiters = state.withLock { state in
            state.finished = true
            state.engine = nil
            state.address = nil
            state.socket = nil
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: CancellationError()) }
        logger.debug(
            "\(config.name) engine stopped", metadata: ["server": "\(config.name)", "drained": "\(inFlight)"])
        await events.stopped()
    }

    private func fail(_ error: any Error) {
        let waiters = state.withLock { state in
            state.failure = error
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}
