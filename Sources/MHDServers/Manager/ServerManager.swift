import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Runs several HTTP servers in one process: binds them together, reports them ready together,
/// and on SIGTERM/SIGINT stops them together.
///
/// Startup binds every server in the order given (each on its first free candidate port; a
/// port already taken by an earlier server of this manager is skipped), then starts every
/// daemon, then calls each lifecycle's ``ServerLifecycle/onStarted(_:context:)``. If any server
/// cannot bind or start, the others are stopped, nothing stays bound, and ``runAll(_:alongside:signals:)``
/// throws a ``ServerError`` naming the server, host and ports tried.
///
/// Shutdown (the first signal, or ``shutdown()``): every server stops accepting at once, new
/// connections are refused, in-flight requests get up to ``shutdownTimeout`` to finish, then
/// everything stops in reverse start order. A second signal during the drain stops at once.
///
/// ```swift
/// let manager = ServerManager(logger: logger)
/// let servers = [
///     Server(config: ServerConfig(name: "public", port: 3400, ports: 3400..<3410), lifecycle: PublicAPI()),
///     Server(config: ServerConfig(name: "admin", port: 3401, ports: 3401..<3411), lifecycle: AdminAPI()),
/// ]
/// try await manager.runAll(servers)   // returns after SIGTERM/SIGINT and the drain
/// ```
///
/// Other services (a gRPC server, a background job) share the same lifetime:
///
/// ```swift
/// try await manager.runAll(servers, alongside: [jobRunner])
/// ```
public final class ServerManager: Sendable {
    /// The logger for the manager and, with `server` metadata, for each server.
    public let logger: Logger
    /// How long in-flight requests may take to finish once shutdown starts.
    public let shutdownTimeout: Duration
    /// How long servers keep accepting after a shutdown starts while their readiness probes
    /// already answer 503 (time for a load balancer to notice). Default zero: stop at once.
    public let drainDelay: Duration

    private let state = Locked(State())
    /// Ports taken by this manager's servers; held while binding so overlapping ranges resolve
    /// deterministically.
    private let claimedPorts = Locked<Set<Int>>([])

    private enum Phase { case idle, starting, running, shuttingDown, finished }

    private struct State {
        var phase: Phase = .idle
        var group: ServiceGroup?
        var servers: [Managed] = []
        var shutdownRequested = false
        var shutdownCallbacks: [@Sendable () async -> Void] = []
        var startWaiters: [CheckedContinuation<[ServerInfo], any Error>] = []
        var startFailure: (any Error)?
        var forcedStop = false
        var drainTask: Task<Void, Never>?
    }

    struct Managed: Sendable {
        let server: HTTPServer
        let context: ServerContext
        let lifecycle: any ServerLifecycle
    }

    /// Creates a manager.
    ///
    /// - Parameters:
    ///   - logger: where the manager and its servers log.
    ///   - shutdownTimeout: the drain deadline for in-flight requests (default 10 seconds).
    ///   - drainDelay: how long to keep accepting, with readiness probes answering 503, before
    ///     new connections are refused (default zero; a few seconds behind a load balancer).
    public init(
        logger: Logger = Logger(label: "MHDServers"), shutdownTimeout: Duration = .seconds(10),
        drainDelay: Duration = .zero
    ) {
        self.logger = logger
        self.shutdownTimeout = shutdownTimeout
        self.drainDelay = drainDelay
    }

    // MARK: Running

    /// Starts every server, serves until a signal in `signals` (or ``shutdown()``), drains, and
    /// returns once everything has stopped.
    ///
    /// - Parameters:
    ///   - servers: the HTTP servers, bound in this order.
    ///   - services: other services that live and stop with the servers (they stop after the
    ///     HTTP servers have drained).
    ///   - signals: the signals that start a graceful shutdown; pass `[]` when embedding or
    ///     testing and call ``shutdown()`` instead.
    /// - Throws: ``ServerError`` if a server cannot start (nothing is left bound), or the error
    ///   of a service that failed.
    ///
    /// ```swift
    /// try await ServerManager(logger: logger).runAll(servers)
    /// ```
    public func runAll(
        _ servers: [Server], alongside services: [any Service] = [],
        signals: [UnixSignal] = [.sigterm, .sigint]
    ) async throws {
        // A manager runs once; a second call must not disturb the first.
        try state.withLock { state in
            guard state.phase == .idle else {
                throw ServerError(
                    .invalidConfiguration, server: servers.first?.config.name ?? "", host: "", portsTried: [],
                    message: "runAll was already called on this manager")
            }
            state.phase = .starting
        }
        let managed: [Managed]
        do {
            managed = try prepare(servers)
            try bindAll(managed)
        } catch {
            finishStart(with: error)
            throw error
        }
        do {
            for entry in managed { try entry.server.start() }
        } catch {
            let ports = managed.compactMap { $0.server.address?.port }
            for entry in managed {
                entry.server.stopNow()
                await entry.server.finishShutdown()
                entry.server.unbind(because: error)
            }
            releaseClaims(ports)
            finishStart(with: error)
            throw error
        }
        for entry in managed {
            if let address = entry.server.address { await entry.lifecycle.onStarted(address, context: entry.context) }
        }

        var configurations = services.map {
            ServiceGroupConfiguration.ServiceConfiguration(
                service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        configurations += managed.map(Self.configuration)
        configurations.append(.init(service: ShutdownCoordinator(manager: self), successTerminationBehavior: .ignore))
        var groupConfiguration = ServiceGroupConfiguration(services: configurations, logger: logger)
        groupConfiguration.gracefulShutdownSignals = signals
        let group = ServiceGroup(configuration: groupConfiguration)

        // A second signal during the drain stops everything at once. The sequence is registered
        // before the group runs, so it sees the first signal too and counts from there.
        let escalation: Task<Void, Never>?
        if signals.isEmpty {
            escalation = nil
        } else {
            let sequence = await UnixSignalsSequence(trapping: signals)
            escalation = Task { [self] in
                var count = 0
                for await signal in sequence {
                    count += 1
                    if count >= 2 {
                        logger.warning("second \(signal): stopping now without waiting for in-flight requests")
                        stopAllNow()
                    }
                }
            }
        }
        let triggerNow = state.withLock { state -> Bool in
            state.group = group
            state.phase = state.shutdownRequested ? .shuttingDown : .running
            return state.shutdownRequested
        }
        finishStart(with: nil)
        defer { escalation?.cancel() }
        if triggerNow { await group.triggerGracefulShutdown() }
        do {
            try await group.run()
        } catch {
            await finishRun(managed)
            throw error
        }
        await finishRun(managed)
    }

    /// Starts a server while the manager runs (it stops with the others). Its port is chosen
    /// like at startup, skipping ports this manager already uses.
    ///
    /// ```swift
    /// let address = try await manager.addServer(
    ///     Server(config: ServerConfig(name: "extra", port: 0), lifecycle: ExtraAPI()))
    /// ```
    @discardableResult
    public func addServer(_ server: Server) async throws -> BoundAddress {
        let group = state.withLock { $0.phase == .running ? $0.group : nil }
        guard let group else {
            throw ServerError(
                .invalidConfiguration, server: server.config.name, host: server.config.host, portsTried: [],
                message: "the manager is not running")
        }
        let entry = try prepare([server])[0]
        do {
            try bindAll([entry])
            try entry.server.start()
        } catch {
            let ports = entry.server.address.map { [$0.port] } ?? []
            entry.server.unbind(because: error)
            releaseClaims(ports)
            state.withLock { $0.servers.removeAll { $0.server === entry.server } }
            throw error
        }
        let address = entry.server.address!
        await entry.lifecycle.onStarted(address, context: entry.context)
        await group.addServiceUnlessShutdown(Self.configuration(entry))
        let late = state.withLock { $0.phase != .running }
        if late {
            // Shutdown began meanwhile; the group may not have taken the server.
            entry.server.stopNow()
            await entry.server.finishShutdown()
        }
        return address
    }

    /// Starts a graceful shutdown, as SIGTERM would. Safe to call at any time, any number of
    /// times; the shutdown itself runs once.
    ///
    /// ```swift
    /// router.post("/admin/shutdown") { _ in
    ///     Task { await manager.shutdown() }
    ///     return .text("bye")
    /// }
    /// ```
    public func shutdown() async {
        let group = state.withLock { state -> ServiceGroup? in
            state.shutdownRequested = true
            return state.group
        }
        await group?.triggerGracefulShutdown()
    }

    /// Registers a callback that runs once, after every server has stopped and before
    /// ``runAll(_:alongside:signals:)`` returns. Callbacks run in reverse order of registration.
    ///
    /// ```swift
    /// manager.onShutdown { await database.close() }
    /// ```
    public func onShutdown(_ callback: @escaping @Sendable () async -> Void) {
        state.withLock { $0.shutdownCallbacks.append(callback) }
    }

    /// The servers of this manager, in start order, with their addresses and counters.
    public var servers: [ServerInfo] {
        state.withLock { $0.servers }.map { entry in
            ServerInfo(
                name: entry.server.config.name, config: entry.server.config, address: entry.server.address,
                stats: entry.server.stats.snapshot())
        }
    }

    /// Waits until every server of ``runAll(_:alongside:signals:)`` listens, and returns them;
    /// throws the startup error if startup failed.
    ///
    /// ```swift
    /// async let run: Void = manager.runAll(servers, signals: [])
    /// let ready = try await manager.waitUntilStarted()
    /// ```
    public func waitUntilStarted() async throws -> [ServerInfo] {
        try await withCheckedThrowingContinuation { continuation in
            let result: Result<Void, any Error>? = state.withLock { state in
                if let failure = state.startFailure { return .failure(failure) }
                if state.phase == .running || state.phase == .shuttingDown { return .success(()) }
                if state.phase == .finished { return .failure(CancellationError()) }
                state.startWaiters.append(continuation)
                return nil
            }
            switch result {
            case .success?: continuation.resume(returning: servers)
            case .failure(let error)?: continuation.resume(throwing: error)
            case nil: break
            }
        }
    }

    // MARK: Internals

    private func prepare(_ servers: [Server]) throws -> [Managed] {
        let managed = servers.map { server -> Managed in
            let context = ServerContext(config: server.config, logger: logger, manager: self)
            var router = Router()
            server.lifecycle.registerRoutes(on: &router, context: context)
            let lifecycle = server.lifecycle
            let events = ServerEvents(
                bindAttempt: { attempt in
                    switch attempt {
                    case .checking(let port): lifecycle.onPortCheck(port, context: context)
                    case .unavailable(let port, let reason): lifecycle.onPortUnavailable(port, reason: reason, context: context)
                    case .available(let port): lifecycle.onPortAvailable(port, context: context)
                    }
                },
                started: { address in await lifecycle.onStarted(address, context: context) },
                // A server's own shutdown starts the manager-wide drain first, so all servers
                // stop accepting together even when the group reaches a runtime-added server
                // before the coordinator.
                shuttingDown: { [weak self] in await self?.beginDrain() },
                stopped: { await lifecycle.onShutdown(context: context) })
            let http = HTTPServer(
                config: server.config, responder: .router(router), logger: context.logger,
                shutdownTimeout: shutdownTimeout, events: events)
            context.attach(http)
            return Managed(server: http, context: context, lifecycle: lifecycle)
        }
        try state.withLock { state in
            var names = Set(state.servers.map(\.server.config.name))
            for entry in managed where !names.insert(entry.server.config.name).inserted {
                throw ServerError(
                    .invalidConfiguration, server: entry.server.config.name, host: entry.server.config.host,
                    portsTried: [], message: "another server already has this name")
            }
            state.servers += managed
        }
        return managed
    }

    /// Binds in order; on failure releases whatever this call bound and rethrows.
    private func bindAll(_ managed: [Managed]) throws {
        var ports: [Int] = []
        do {
            for entry in managed {
                try claimedPorts.withLock { claimed in
                    let address = try entry.server.bind(excluding: claimed)
                    claimed.insert(address.port)
                    ports.append(address.port)
                }
            }
        } catch {
            for entry in managed { entry.server.unbind(because: error) }
            releaseClaims(ports)
            throw error
        }
    }

    private func releaseClaims(_ ports: [Int]) {
        claimedPorts.withLock { $0.subtract(ports) }
    }

    private static func configuration(_ entry: Managed) -> ServiceGroupConfiguration.ServiceConfiguration {
        .init(
            service: entry.server, successTerminationBehavior: .gracefullyShutdownGroup,
            failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "http:\(entry.server.config.name)")
    }

    private func finishStart(with error: (any Error)?) {
        let waiters = state.withLock { state in
            if let error {
                state.startFailure = error
                state.phase = .finished
            }
            defer { state.startWaiters = [] }
            return state.startWaiters
        }
        for waiter in waiters {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: servers) }
        }
    }

    /// Called by the coordinator when the group begins its graceful shutdown: readiness probes
    /// turn 503 at once; after the drain delay every server stops accepting, all against one
    /// drain deadline.
    func beginDrain() async {
        let task = state.withLock { state -> Task<Void, Never> in
            if let task = state.drainTask { return task }
            let task = Task { await self.performDrain() }
            state.drainTask = task
            return task
        }
        await task.value
    }

    private func performDrain() async {
        let servers = state.withLock { state -> [Managed] in
            state.phase = .shuttingDown
            state.shutdownRequested = true
            return state.servers
        }
        for entry in servers { entry.server.markNotReady() }
        if drainDelay > .zero {
            logger.info("shutting down: not ready; still accepting for \(drainDelay)")
            let until = ContinuousClock.now.advanced(by: drainDelay)
            while ContinuousClock.now < until && !state.withLock({ $0.forcedStop }) {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        let deadline = ContinuousClock.now.advanced(by: shutdownTimeout)
        logger.info("shutting down: no new connections; draining in-flight requests", metadata: [
            "servers": "\(servers.count)", "deadline": "\(shutdownTimeout)",
        ])
        for entry in servers { entry.server.stopAccepting(deadline: deadline) }
    }

    /// Ends the drain at once for every server.
    func stopAllNow() {
        let servers = state.withLock { state -> [Managed] in
            state.forcedStop = true
            return state.servers
        }
        for entry in servers { entry.server.stopNow() }
    }

    private func finishRun(_ managed: [Managed]) async {
        // Servers the group never ran (for example when it was cancelled early) still need stopping.
        for entry in state.withLock({ $0.servers }).reversed() where entry.server.address != nil {
            entry.server.stopNow()
            await entry.server.finishShutdown()
        }
        let callbacks = state.withLock { state -> [@Sendable () async -> Void] in
            state.phase = .finished
            defer { state.shutdownCallbacks = [] }
            return state.shutdownCallbacks
        }
        for callback in callbacks.reversed() { await callback() }
        claimedPorts.withLock { $0 = [] }
    }
}
