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
    private let lock = Locked(Locals())
    private let shutdown = OnceTask()

    private typealias Machine = ServerStateMachine<ListeningSocket, Engine>

    /// The state machine, and the waiters that its transitions release.
    private struct Locals {
        var machine = Machine()
        /// `listeningAddress()` callers.
        var listening = Waiters<BoundAddress>()
        /// `run()`, waiting for a graceful shutdown request.
        var runWaiter: CheckedContinuation<Void, Never>?
        /// The readiness probe answers 503 until the manager's side services are ready.
        var readinessPending = false
        /// How long open connections must have been idle before a hand-over closes them.
        var handOverIdleTime = Duration.seconds(1)
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
    /// struct Echo: HTTPHandler {
    ///     func respond(to request: Request) async throws -> Response {
    ///         Response(status: .ok, body: request.body)
    ///     }
    /// }
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
    public var address: BoundAddress? { lock.withLock { $0.machine.address } }

    /// Waits until the server listens and returns where; throws the start error if it failed.
    ///
    /// ```swift
    /// async let running: Void = server.run()
    /// let address = try await server.listeningAddress()
    /// print(address.url)   // http://127.0.0.1:49152
    /// ```
    public func listeningAddress() async throws -> BoundAddress {
        try await withCheckedThrowingContinuation { continuation in
            let ready = lock.withLock { $0.listening.add(continuation) }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Whether a shutdown has begun (the readiness probe answers 503).
    public var isShuttingDown: Bool { lock.withLock { $0.machine.isShuttingDown } }

    /// Where the server is in its life: starting, running, draining, stopped or failed.
    ///
    /// ```swift
    /// if server.state == .running { print("serving on", server.address!.url) }
    /// ```
    public var state: ServerInfo.State { lock.withLock { $0.machine.phase } }

    /// Whether the shutdown is waiting for in-flight requests to finish right now.
    var isWaitingForInFlightRequests: Bool { lock.withLock { $0.machine.engine }?.drainSignal.isWaiting ?? false }

    /// Connections the engine holds open right now (0 when not running).
    var openConnections: Int { lock.withLock { $0.machine.engine }?.openConnections ?? 0 }

    // MARK: Service

    /// Binds, serves until graceful shutdown or cancellation, then drains and stops.
    ///
    /// ```swift
    /// try await ServiceGroup(services: [server], logger: logger).run()
    /// ```
    public func run() async throws {
        // Already stopped (by its manager, before the group got to run it): nothing to do.
        if lock.withLock({ $0.machine.isStopped }) { return }
        if lock.withLock({ $0.machine.address == nil }) { reserveDescriptors() }
        do {
            let address = try bind()
            if try start() { await events.started(address) }
        } catch {
            fail(error)
            throw error
        }
        await withTaskCancellationOrGracefulShutdownHandler {
            await waitForShutdownRequest()
        } onCancelOrGracefulShutdown: {
            self.requestShutdown()
        }
        // Cancelled rather than asked to shut down gracefully: stop at once, without a drain.
        if Task.isCancelled { forceStop() }
        await finishShutdown()
    }

    /// A standalone server makes sure the process may open as many descriptors as it may hold
    /// (a ``ServerManager`` does this for all its servers at once).
    private func reserveDescriptors() {
        let needed = DescriptorBudget.needed(for: [config])
        let (limit, sufficient) = System.reserveDescriptors(needed)
        if !sufficient {
            logger.info(
                "\(config.name): the open-file limit (\(limit)) is below what the server may need (\(needed))",
                metadata: ["server": "\(config.name)", "openFileLimit": "\(limit)", "needed": "\(needed)"])
        }
    }

    // MARK: Steps, also driven by ServerManager

    /// Binds the listening socket (idempotent), skipping `excluded` ports.
    @discardableResult
    func bind(excluding excluded: Set<Int> = []) throws -> BoundAddress {
        switch lock.withLock({ $0.machine.bindAction() }) {
        case .alreadyBound(let address):
            return address
        case .refuse:
            throw ServerError(
                .invalidConfiguration, server: config.name, host: config.host, portsTried: [],
                message: "a server runs once; create a new HTTPServer to serve again")
        case .bind:
            break
        }
        return try adopt(ListeningSocket.bind(config, excluding: excluded, observe: events.bindAttempt))
    }

    /// Starts the engine on the bound socket (idempotent) and wakes ``listeningAddress()``
    /// callers. Returns whether this call started it. With `deferringMetrics` the routes' metric
    /// series wait for ``registerMetricSeries()`` (or each route's first request).
    @discardableResult
    func start(deferringMetrics: Bool = false) throws -> Bool {
        guard case .start(let socket, _) = lock.withLock({ $0.machine.startAction() }) else {
            if lock.withLock({ $0.machine.engine != nil }) { return false }
            throw CancellationError()
        }
        let engine = Engine(config: config, socket: socket, responder: responder, logger: logger, stats: stats)
        // Held before the engine answers its first probe.
        engine.readinessPending.store(lock.withLock { $0.readinessPending }, ordering: .relaxed)
        try engine.start(deferringMetrics: deferringMetrics)
        let (action, waiters) = lock.withLock { locals -> (Machine.EngineStartedAction, Waiters<BoundAddress>.Resumption?) in
            let action = locals.machine.engineStarted(engine)
            guard case .started(let started) = action else { return (action, nil) }
            return (action, locals.listening.settle(.success(started.address)))
        }
        switch action {
        case .stop(let engine):
            engine.stop()
            throw CancellationError()
        case .started(let started):
            // Started while a shutdown was already under way (a late runtime add): join it.
            if started.withdrawReadiness { engine.withdrawReadiness() }
            if started.stopAccepting { engine.stopAccepting(handingOver: started.handingOver) }
        }
        waiters?.resume()
        return true
    }

    /// Registers the routes' metric series that a deferred start left out (nothing when not running).
    func registerMetricSeries() {
        lock.withLock { $0.machine.engine }?.metrics.registerSeries()
    }

    /// Takes `socket` as the server's listening socket: one just bound, or a duplicate of a
    /// predecessor's (the server then starts on the same address while the predecessor still
    /// serves).
    func adopt(_ socket: ListeningSocket) throws -> BoundAddress {
        let address = BoundAddress(host: config.host, port: socket.port, scheme: config.tls == nil ? "http" : "https")
        if case .close(let socket) = lock.withLock({ $0.machine.bound(socket, at: address) }) {
            socket.close()
            throw CancellationError()
        }
        return address
    }

    /// The listening socket while bound or serving (a binary upgrade passes it on).
    var listeningSocket: ListeningSocket? { lock.withLock { $0.machine.socket } }

    /// A duplicate of the listening socket, for a successor on the same address; `nil` unless
    /// the server is bound or running.
    func duplicateSocket() throws -> ListeningSocket? {
        guard let socket = lock.withLock({ $0.machine.socket }) else { return nil }
        do {
            return try socket.duplicate()
        } catch {
            throw ServerError(
                .startFailed, server: config.name, host: config.host, portsTried: [socket.port],
                message: "cannot duplicate the listening socket: \(error)")
        }
    }

    /// Releases the socket of a server that was bound but never started (startup rollback), and
    /// fails ``listeningAddress()`` callers with `error`.
    func fail(_ error: any Error) {
        let (action, waiters) = lock.withLock { locals in
            (locals.machine.failed(error), locals.listening.settle(.failure(error)))
        }
        if case .close(let socket?) = action { socket.close() }
        waiters.resume()
    }

    /// Stops accepting new connections now and sets the drain deadline (idempotent; the first
    /// deadline wins). `run()` keeps going until its own graceful shutdown, then drains against it.
    ///
    /// - Parameters:
    ///   - deadline: when in-flight requests are cancelled; default now + ``shutdownTimeout``.
    ///   - handOverIdleTime: when set, a successor accepts on the same socket: it stays
    ///     listening, and the drain also waits (by the same deadline) until every open
    ///     connection has been idle this long.
    func stopAccepting(deadline: ContinuousClock.Instant? = nil, handOverIdleTime: Duration? = nil) {
        let deadline = deadline ?? ContinuousClock.now.advanced(by: shutdownTimeout)
        perform(lock.withLock { locals in
            if let handOverIdleTime { locals.handOverIdleTime = handOverIdleTime }
            return locals.machine.stopAccepting(deadline: deadline, handingOver: handOverIdleTime != nil)
        })
    }

    /// Makes the readiness probe answer 503 while the server still accepts (the first step of
    /// a shutdown with a drain delay).
    func withdrawReadiness() {
        perform(lock.withLock { $0.machine.withdrawReadiness() })
    }

    /// Makes the readiness probe answer 503 (`pending`) or not until the manager's side services
    /// are ready; set before the start, it holds from the first request on.
    func holdReadiness(_ pending: Bool) {
        let engine = lock.withLock { locals -> Engine? in
            locals.readinessPending = pending
            return locals.machine.engine
        }
        engine?.readinessPending.store(pending, ordering: .relaxed)
    }

    /// Ends any drain at once: in-flight handlers are cancelled when the server stops. Used on
    /// a second signal (the server still stops in its turn), on cancellation and for rollback.
    func forceStop() {
        perform(lock.withLock { $0.machine.forceStop() })
    }

    /// Stops accepting now and asks `run()` to go on to the drain. Idempotent.
    func requestShutdown() {
        stopAccepting()
        let waiter = lock.withLock { locals -> CheckedContinuation<Void, Never>? in
            guard locals.machine.requestShutdown() else { return nil }
            defer { locals.runWaiter = nil }
            return locals.runWaiter
        }
        waiter?.resume()
    }

    private func perform(_ action: Machine.EngineAction) {
        switch action {
        case .none: break
        case .withdrawReadiness(let engine): engine.withdrawReadiness()
        case .stopAccepting(let engine, let handingOver): engine.stopAccepting(handingOver: handingOver)
        case .stopAcceptingAndInterruptDrain(let engine):
            engine.stopAccepting()
            engine.interruptDrain()
        }
    }

    private func waitForShutdownRequest() async {
        await withCheckedContinuation { continuation in
            let now = lock.withLock { locals -> Bool in
                if locals.machine.shutdownRequested { return true }
                locals.runWaiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Drains up to the deadline, stops the engine, releases the port and reports the server
    /// stopped, once; concurrent and later callers wait for that one shutdown.
    ///
    /// - Parameter reportsStopped: whether the stop is reported to the lifecycle (not when a
    ///   restart replaced this server by a new one of the same lifecycle). The first caller's
    ///   choice holds.
    func finishShutdown(reportsStopped: Bool = true) async {
        await shutdown.run { await self.performShutdown(reportsStopped: reportsStopped) }
    }

    private func performShutdown(reportsStopped: Bool) async {
        let drain = lock.withLock {
            $0.machine.beginDrain(defaultDeadline: ContinuousClock.now.advanced(by: shutdownTimeout))
        }
        if case .drain(let engine, let deadline, let forced, let handingOver) = drain {
            engine.stopAccepting(handingOver: handingOver)
            let inFlight = stats.inFlight
            var drained = forced ? stats.inFlight == 0 : await engine.drain(until: deadline)
            if drained && handingOver && !forced {
                // Clients that keep their connections busy get `Connection: close` on their next
                // response and reconnect to the successor; wait for that before closing the rest.
                let idle = lock.withLock { $0.handOverIdleTime }
                if !(await engine.waitUntilQuiet(idleFor: idle, until: deadline)) {
                    logger.debug(
                        "\(config.name): connections still busy at the hand-over deadline",
                        metadata: ["server": "\(config.name)", "open": "\(engine.openConnections)"])
                }
                // A request that began on a kept-alive connection meanwhile is cancelled below.
                drained = stats.inFlightNow == 0
            }
            if !drained {
                logger.warning(
                    "\(config.name): cancelling requests still in flight at shutdown",
                    metadata: ["server": "\(config.name)", "inFlight": "\(stats.inFlight)"])
                // Give the abandoned requests a moment to send their 503 before connections close.
                if engine.abandonSuspended() > 0 { await engine.waitForAbandonedAnswers(.milliseconds(250)) }
            }
            logger.debug(
                "\(config.name) engine stopping", metadata: ["server": "\(config.name)", "drained": "\(inFlight)"])
        }
        let (stop, waiters) = lock.withLock { locals in
            (locals.machine.stopped(), locals.listening.settle(.failure(CancellationError())))
        }
        waiters.resume()
        switch stop {
        case .none:
            break
        case .close(let socket):
            // Bound but never started (stopped by its manager while being added).
            socket.close()
        case .stop(let engine, _):
            engine.stop()
            if reportsStopped { await events.stopped() }
        }
    }
}
