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
/// cannot bind or start, the others are stopped, nothing stays bound, and ``runAll(_:alongside:signals:reloadSignals:upgradeSignals:)``
/// throws a ``ServerError`` naming the server, host and ports tried.
///
/// Signals are owned from the first instant of ``runAll(_:alongside:signals:reloadSignals:upgradeSignals:)``, before anything
/// binds: a SIGTERM or SIGINT during start-up ends it cleanly (before binding: nothing is bound
/// and `runAll` returns; after: the servers start and shut down at once), never with the
/// default disposition.
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

    typealias Machine = ManagerStateMachine<ServiceGroup>

    let state = Locked(Locals())
    /// Ports taken by this manager's servers; held while binding so overlapping ranges resolve
    /// deterministically.
    private let claimedPorts = Locked<Set<Int>>([])
    /// The drain runs once, whoever starts it first (the coordinator, or a server's own shutdown).
    private let drain = OnceTask()

    /// One runtime change (stop, restart, replace, reload, upgrade) at a time.
    let changes = SerialGate()

    /// The state machine, and what its transitions release.
    struct Locals {
        var machine = Machine()
        /// The current server of each name, in start order.
        var servers: [Managed] = []
        /// Servers replaced by a restart or replacement, still draining.
        var retiring: [Managed] = []
        /// Each name's place in the service group.
        var slots: [String: ServerSlot] = [:]
        var reloadCallbacks: [@Sendable () async throws -> Void] = []
        /// The side services' listening sockets (``bindListener(_:)``), for a binary upgrade to
        /// pass on.
        var sideListeners: [SideListener] = []
        /// The binary upgrade waiting for its new process, if one is; a shutdown cancels it.
        var upgradeWait: Task<ProcessUpgrade.Outcome, Never>?
        var shutdownCallbacks: [@Sendable () async -> Void] = []
        /// ``waitUntilStarted()`` callers.
        var started = Waiters<Void>()
        /// The drain delay in progress; a forced stop cancels it.
        var drainDelay: Task<Void, Never>?
        /// Services that live beside the servers.
        var sideServices: [SideServiceRunner] = []
        /// The one deadline of the shutdown, once the drain has begun.
        var drainDeadline: ContinuousClock.Instant?
        /// Waiting for side services to become ready; a shutdown ends the wait.
        var readinessWait: Task<Void, any Error>?
    }

    struct Managed: Sendable {
        let server: HTTPServer
        let context: HTTPServerContext
        /// What it was made from, for a restart.
        let definition: Server
        /// 1 at first; one more for each restart or replacement.
        let generation: Int

        var lifecycle: any ServerLifecycle { definition.lifecycle }
    }

    /// Creates a manager.
    ///
    /// - Parameters:
    ///   - logger: where the manager and its servers log.
    ///   - shutdownTimeout: the drain deadline for in-flight requests (default 10 seconds).
    ///   - drainDelay: how long to keep accepting, with readiness probes answering 503, before
    ///     new connections are refused (default zero; a few seconds behind a load balancer).
    ///   - notifiesSystemd: whether to tell systemd (a `Type=notify` unit, `NOTIFY_SOCKET` set) when
    ///     the servers are ready (`READY=1`) and when the drain starts (`STOPPING=1`), with
    ///     `STATUS=` lines, and to send the watchdog's `WATCHDOG=1` when the unit sets
    ///     `WatchdogSec=` (default true; nothing is sent without `NOTIFY_SOCKET`).
    ///   - handOverIdleTime: when a server hands its socket to a successor (a restart, a
    ///     binary upgrade), how long a kept-alive connection must have been idle before the
    ///     predecessor closes it (default 1 second; see ``restartServer(named:)``).
    ///
    /// ```swift
    /// let manager = ServerManager(logger: logger, shutdownTimeout: .seconds(25), drainDelay: .seconds(5))
    /// ```
    public convenience init(
        logger: Logger = Logger(label: "MHDServers"), shutdownTimeout: Duration = .seconds(10),
        drainDelay: Duration = .zero, notifiesSystemd: Bool = true, handOverIdleTime: Duration = .seconds(1)
    ) {
        self.init(
            logger: logger, shutdownTimeout: shutdownTimeout, drainDelay: drainDelay,
            notifier: notifiesSystemd ? SystemdNotifier.fromEnvironment() : nil, handOverIdleTime: handOverIdleTime)
    }

    init(
        logger: Logger, shutdownTimeout: Duration, drainDelay: Duration, notifier: SystemdNotifier?,
        handOverIdleTime: Duration = .seconds(1)
    ) {
        self.logger = logger
        self.shutdownTimeout = shutdownTimeout
        self.drainDelay = drainDelay
        self.notifier = notifier
        self.handOverIdleTime = handOverIdleTime
    }

    /// When a server hands its socket to a successor, how long a kept-alive connection must
    /// have been idle before the predecessor closes it.
    public let handOverIdleTime: Duration

    /// Tells systemd about readiness and shutdown, when run by it with `Type=notify`.
    let notifier: SystemdNotifier?

    // MARK: Running

    /// Starts every server, serves until a signal in `signals` (or ``shutdown()``), drains, and
    /// returns once everything has stopped.
    ///
    /// - Parameters:
    ///   - servers: the HTTP servers, bound in this order.
    ///   - services: other services that live and stop with the servers: asked to shut down
    ///     when the servers stop accepting (or after them, see ``SideService``), cancelled at the
    ///     same drain deadline or on a second signal.
    ///   - signals: the signals that start a graceful shutdown (a second one stops at once);
    ///     trapped before anything binds. Pass `[]` when embedding or testing and call
    ///     ``shutdown()`` instead.
    ///   - reloadSignals: the signals that call ``reload()`` (certificates read again,
    ///     ``ServerLifecycle/onReload(context:)`` hooks). Default: SIGHUP, unless `signals` is
    ///     empty (embedding or testing: then no signal is trapped unless named here).
    ///   - upgradeSignals: the signals that call ``upgrade(executable:arguments:readyTimeout:)``
    ///     with its defaults (a new process of this executable takes the sockets over).
    ///     Default: SIGUSR2, unless `signals` is empty.
    /// - Throws: ``ServerError`` if a server cannot start (nothing is left bound), or the error
    ///   of a service that failed.
    ///
    /// ```swift
    /// try await ServerManager(logger: logger).runAll(servers)
    /// ```
    public func runAll(
        _ servers: [Server], alongside services: [any Service] = [],
        signals: [UnixSignal] = [.sigterm, .sigint], reloadSignals: [UnixSignal]? = nil,
        upgradeSignals: [UnixSignal]? = nil
    ) async throws {
        let reloadSignals = reloadSignals ?? (signals.isEmpty ? [] : [.sighup])
        let upgradeSignals = upgradeSignals ?? (signals.isEmpty ? [] : [.sigusr2])
        // A manager runs once; a second call must not disturb the first.
        switch state.withLock({ $0.machine.runAll() }) {
        case .reject:
            throw ServerError(
                .invalidConfiguration, server: servers.first?.config.name ?? "", host: "", portsTried: [],
                message: "runAll was already called on this manager")
        case .finishWithoutStarting:
            await finishRun()
            return
        case .start:
            break
        }
        // Started by a binary upgrade: the predecessor's sockets and readiness pipe are taken
        // before anything binds.
        ProcessUpgrade.takePredecessorChannel()
        // Signals first: from here on SIGTERM/SIGINT start a shutdown instead of ending the process.
        let signalHandler = await trap(signals, reload: reloadSignals, upgrade: upgradeSignals)
        defer { signalHandler?.cancel() }
        logger.info("starting \(servers.count) servers", metadata: [
            "signals": "\(signals)", "reloadSignals": "\(reloadSignals)", "upgradeSignals": "\(upgradeSignals)",
        ])
        notifier?.status("starting \(servers.count) servers")
        notifier?.startWatchdog()

        let managed: [Managed]
        do {
            managed = try register(servers.map { makeManaged($0, generation: 1) })
            reserveDescriptors(for: managed.map(\.server.config))
            guard state.withLock({ $0.machine.shouldBind() }) else {
                logger.info("shutdown requested during start-up; nothing was bound")
                await finishRun()
                return
            }
            try bindAll(managed)
        } catch {
            failStart(with: error)
            await finishRun()
            throw error
        }
        let runners = services.map { service in
            SideServiceRunner(service, logger: logger) { [weak self] in
                let fallback = ContinuousClock.now.advanced(by: self?.shutdownTimeout ?? .zero)
                return self?.state.withLock { $0.drainDeadline } ?? fallback
            }
        }
        state.withLock { $0.sideServices = runners }
        // With side services that say when they are ready, the servers' readiness probes answer
        // 503 from their first request until then.
        let holdsReadiness = runners.contains { $0.readiness != nil }
        if holdsReadiness { for entry in managed { entry.server.holdReadiness(true) } }
        do {
            // The routes' metric series are registered once all serve (see `registerMetricSeries`).
            for entry in managed { try entry.server.start(deferringMetrics: true) }
        } catch {
            let ports = managed.compactMap { $0.server.address?.port }
            for entry in managed {
                entry.server.forceStop()
                await entry.server.finishShutdown()
                entry.server.fail(error)
            }
            releaseClaims(ports)
            failStart(with: error)
            await finishRun()
            throw error
        }
        // The group stops services in reverse order: the coordinator first (it starts the drain,
        // which also asks the side services that stop with it), then the servers, then the side
        // services that stop after them.
        let ordered = runners.filter { $0.stopOrder == .afterTheServers } + runners.filter { $0.stopOrder == .withTheDrain }
        var configurations = ordered.map {
            ServiceGroupConfiguration.ServiceConfiguration(
                service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: $0.name)
        }
        configurations += managed.map(slotConfiguration)
        configurations.append(.init(service: ShutdownCoordinator(manager: self), successTerminationBehavior: .ignore))
        // Signals are this manager's (trapped above), not the group's.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: configurations, logger: logger))

        let action = state.withLock { $0.machine.started(group) }
        var failure: (any Error)?
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                switch action {
                case .run:
                    failure = await reportStarted(managed, waitingFor: runners, group: group)
                case .runAndShutDown(let group, let forced):
                    // The servers did start: their hooks say so, then they stop at once.
                    registerMetricSeries(managed)
                    await announceStarted(managed)
                    notifyReady(managed)
                    logger.info("shutdown requested during start-up; shutting down")
                    if forced { forceStopServers() }
                    await group.triggerGracefulShutdown()
                }
                try await tasks.next()
            }
        } catch {
            await finishRun()
            throw error
        }
        await finishRun()
        if let failure { throw failure }
    }

    /// Waits until the side services that say when they are ready are (the servers' readiness
    /// probes answer 503 meanwhile), then runs the `onStarted` hooks and wakes
    /// ``waitUntilStarted()``. A side service that cannot become ready ends the start: its error
    /// is returned and the group shut down. A shutdown that begins meanwhile ends the wait.
    private func reportStarted(
        _ managed: [Managed], waitingFor runners: [SideServiceRunner], group: ServiceGroup
    ) async -> (any Error)? {
        registerMetricSeries(managed)
        let reporting = runners.compactMap(\.readiness)
        if !reporting.isEmpty {
            let wait = Task {
                try await withThrowingTaskGroup(of: Void.self) { waits in
                    for service in reporting { waits.addTask { try await service.waitUntilReady() } }
                    try await waits.waitForAll()
                }
            }
            let cancelled = state.withLock { locals -> Bool in
                locals.readinessWait = wait
                return locals.machine.isShuttingDownOrFinished
            }
            if cancelled { wait.cancel() }
            do {
                try await wait.value
            } catch {
                if state.withLock({ $0.machine.isShuttingDownOrFinished }) { return nil }
                logger.error("a side service could not become ready: \(error)")
                await shutdown()
                return error
            }
            for entry in managed { entry.server.holdReadiness(false) }
        }
        await announceStarted(managed)
        notifyReady(managed)
        state.withLock { $0.started.settle(.success(())) }.resume()
        return nil
    }

    /// Registers the routes' metric series of servers started with `deferringMetrics`, in a
    /// task of its own, once they all serve: with swift-prometheus 2.4.1, whose registry copies
    /// a metric's whole table of series for every series it adds, registering them is quadratic
    /// in the series under one name (102 servers of 11 routes: about 5,600 counters under
    /// `http_server_requests_total`, some 300 ms of CPU that would delay ready 5-fold). A route
    /// whose first request ends before then registers its own series.
    private func registerMetricSeries(_ managed: [Managed]) {
        let servers = managed.map(\.server)
        Task.detached {
            for server in servers { server.registerMetricSeries() }
        }
    }

    /// `READY=1` for systemd, with where every server listens (and for the process this one
    /// upgraded, if any).
    private func notifyReady(_ managed: [Managed]) {
        ProcessUpgrade.reportReady()
        guard let notifier else { return }
        let addresses = managed.compactMap { entry in entry.server.address.map { "\(entry.server.config.name) \($0.url)" } }
        notifier.ready(status: "serving: " + addresses.joined(separator: ", "))
    }

    /// Runs every server's `onStarted` hook, in start order.
    private func announceStarted(_ managed: [Managed]) async {
        for entry in managed {
            if let address = entry.server.address { await entry.lifecycle.onStarted(address, context: entry.context) }
        }
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
        guard case .add(let group) = state.withLock({ $0.machine.addServer() }) else {
            throw ServerError(
                .invalidConfiguration, server: server.config.name, host: server.config.host, portsTried: [],
                message: "the manager is not running")
        }
        let entry = try register([makeManaged(server, generation: 1)])[0]
        do {
            try bindAll([entry])
            try entry.server.start()
        } catch {
            let ports = entry.server.address.map { [$0.port] } ?? []
            entry.server.fail(error)
            releaseClaims(ports)
            state.withLock { $0.servers.removeAll { $0.server === entry.server } }
            throw error
        }
        let address = entry.server.address!
        await entry.lifecycle.onStarted(address, context: entry.context)
        await group.addServiceUnlessShutdown(slotConfiguration(entry))
        if state.withLock({ $0.machine.isShuttingDownOrFinished }) {
            // Shutdown began meanwhile; the group may not have taken the server.
            entry.server.forceStop()
            await entry.server.finishShutdown()
        }
        return address
    }

    /// Starts a graceful shutdown, as SIGTERM would. Safe to call at any time, any number of
    /// times; the shutdown itself runs once. Called before ``runAll(_:alongside:signals:reloadSignals:upgradeSignals:)``, it
    /// makes `runAll` return at once without binding anything.
    ///
    /// ```swift
    /// router.post("/admin/shutdown") { _ in
    ///     Task { await manager.shutdown() }
    ///     return .text("bye")
    /// }
    /// ```
    public func shutdown() async {
        await perform(state.withLock { $0.machine.shutdownRequested() })
    }

    /// Registers a callback that runs once, after every server has stopped and before
    /// ``runAll(_:alongside:signals:reloadSignals:upgradeSignals:)`` returns. Callbacks run in reverse order of registration.
    ///
    /// ```swift
    /// manager.onShutdown { await database.close() }
    /// ```
    public func onShutdown(_ callback: @escaping @Sendable () async -> Void) {
        state.withLock { $0.shutdownCallbacks.append(callback) }
    }

    /// The servers of this manager, in start order, with their addresses and counters.
    ///
    /// ```swift
    /// for server in manager.servers { print(server.name, server.address?.url ?? "-", server.stats.inFlight) }
    /// ```
    public var servers: [ServerInfo] {
        let (current, retiring) = state.withLock { ($0.servers, $0.retiring) }
        return current.map { entry in
            let name = entry.server.config.name
            return ServerInfo(
                name: name, config: entry.server.config, address: entry.server.address,
                stats: entry.server.stats.snapshot(), state: entry.server.state, generation: entry.generation,
                draining: retiring.count { $0.server.config.name == name })
        }
    }

    /// Waits until every server of ``runAll(_:alongside:signals:reloadSignals:upgradeSignals:)`` listens, and returns them;
    /// throws the startup error if startup failed.
    ///
    /// ```swift
    /// async let run: Void = manager.runAll(servers, signals: [])
    /// let ready = try await manager.waitUntilStarted()
    /// ```
    public func waitUntilStarted() async throws -> [ServerInfo] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready = state.withLock { $0.started.add(continuation) }
            if let ready { continuation.resume(with: ready) }
        }
        return servers
    }

    // MARK: Signals

    /// Traps the signals (awaiting their registration) and handles each as it comes: shutdown
    /// signals in order, each reload or upgrade in a task of its own.
    private func trap(
        _ signals: [UnixSignal], reload: [UnixSignal], upgrade: [UnixSignal]
    ) async -> Task<Void, Never>? {
        let all = signals + reload + upgrade
        guard !all.isEmpty else { return nil }
        let sequence = await UnixSignalsSequence(trapping: all)
        return Task { [weak self] in
            for await signal in sequence {
                guard let self else { return }
                if reload.contains(signal) && !signals.contains(signal) {
                    logger.info("\(signal): reloading")
                    Task { await self.reload() }
                    continue
                }
                if upgrade.contains(signal) && !signals.contains(signal) {
                    logger.info("\(signal): upgrading to a new process of this executable")
                    Task {
                        do {
                            try await self.upgrade()
                        } catch {
                            self.logger.error("\(error)")
                        }
                    }
                    continue
                }
                let forced = state.withLock { $0.machine.signalsReceived } >= 1
                if forced {
                    logger.warning("second \(signal): stopping now without waiting for in-flight requests")
                } else {
                    logger.info("\(signal): shutting down")
                }
                await perform(state.withLock { $0.machine.signalReceived() })
            }
        }
    }

    private func perform(_ action: Machine.ShutdownAction) async {
        switch action {
        case .none:
            break
        case .triggerGracefulShutdown(let group):
            await group.triggerGracefulShutdown()
        case .forceStop:
            forceStopServers()
        case .triggerAndForceStop(let group):
            forceStopServers()
            await group.triggerGracefulShutdown()
        }
    }

    // MARK: Internals

    /// Builds a server (context, routes, engine configuration) without binding it.
    func makeManaged(_ server: Server, generation: Int) -> Managed {
        let context = HTTPServerContext(config: server.config, logger: logger, manager: self)
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
            // The manager calls `onStarted` itself, once every server serves.
            started: { _ in },
            stopped: { await lifecycle.onShutdown(context: context) })
        let http = HTTPServer(
            config: server.config, responder: .router(router), logger: context.logger,
            shutdownTimeout: shutdownTimeout, events: events)
        context.attach(http)
        return Managed(server: http, context: context, definition: server, generation: generation)
    }

    /// Adds servers to the manager's list, refusing a name already used.
    private func register(_ managed: [Managed]) throws -> [Managed] {
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
    func bindAll(_ managed: [Managed]) throws {
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
            for entry in managed { entry.server.fail(error) }
            releaseClaims(ports)
            throw error
        }
    }

    private func releaseClaims(_ ports: [Int]) {
        claimedPorts.withLock { $0.subtract(ports) }
    }

    /// Runs `bind` with the ports this manager uses, and claims the port it returns.
    func claimingPort<T>(_ bind: (Set<Int>) throws -> (T, port: Int)) throws -> T {
        try claimedPorts.withLock { claimed in
            let (value, port) = try bind(claimed)
            claimed.insert(port)
            return value
        }
    }

    func releasePortClaim(_ port: Int) { releaseClaims([port]) }

    /// Makes sure the process may open as many descriptors as the servers may hold: raises the
    /// soft limit toward the hard limit when needed, else warns once with the numbers.
    private func reserveDescriptors(for configs: [ServerConfig]) {
        let needed = DescriptorBudget.needed(for: configs)
        let (limit, sufficient) = System.reserveDescriptors(needed)
        if !sufficient {
            logger.info(
                "the open-file limit (\(limit)) is below what the servers may need (\(needed)): at their connection limits accept will fail; raise it (ulimit -n, LimitNOFILE=) or lower maxConnections",
                metadata: ["openFileLimit": "\(limit)", "needed": "\(needed)"])
        }
    }

    /// The server's slot in the group (made now). A slot that ends because its server was
    /// stopped alone does not end the group.
    private func slotConfiguration(_ entry: Managed) -> ServiceGroupConfiguration.ServiceConfiguration {
        let name = entry.server.config.name
        let slot = ServerSlot(name: name, manager: self)
        state.withLock { $0.slots[name] = slot }
        return .init(
            service: slot, successTerminationBehavior: .ignore,
            failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "http:\(name)")
    }

    /// The group reached the server's slot: stop accepting with the others (the manager's
    /// drain), then drain and stop the server current now and any predecessor still draining.
    /// Cancelled: stop at once.
    func shutDownServer(named name: String, cancelled: Bool) async {
        if cancelled {
            for entry in state.withLock({ $0.servers + $0.retiring }) where entry.server.config.name == name {
                entry.server.forceStop()
            }
        } else {
            await beginDrain()
        }
        // No restart swaps servers once the drain has begun.
        let entries = state.withLock { locals in
            (locals.servers + locals.retiring).filter { $0.server.config.name == name }
        }
        for entry in entries { await entry.server.finishShutdown() }
    }

    private func failStart(with error: any Error) {
        let waiters = state.withLock { locals in
            locals.machine.startFailed(error)
            return locals.started.settle(.failure(error))
        }
        waiters.resume()
    }

    /// Called by the coordinator when the group begins its graceful shutdown (and by each
    /// server's own shutdown): readiness probes turn 503 at once; after the drain delay every
    /// server stops accepting, all against one drain deadline. Runs once.
    func beginDrain() async {
        await drain.run { await self.performDrain() }
    }

    private func performDrain() async {
        let (servers, forced, readinessWait, handingOver, upgradeWait) = state.withLock { locals in
            (
                locals.servers + locals.retiring, locals.machine.drainBegan(), locals.readinessWait,
                locals.machine.handingOver, locals.upgradeWait
            )
        }
        readinessWait?.cancel()
        // An upgrade still waiting for its new process is abandoned (the process is stopped).
        upgradeWait?.cancel()
        if handingOver {
            // A new process serves on the same sockets: this one is not "not ready", it leaves.
            notifier?.status("handing over to the new process; draining")
        } else {
            for entry in servers { entry.server.withdrawReadiness() }
            notifier?.stopping(status: drainDelay > .zero && !forced
                ? "shutting down: not ready, still accepting for \(drainDelay)" : "shutting down: draining")
        }
        for service in state.withLock({ $0.sideServices }).compactMap(\.readiness) { await service.readinessWithdrawn() }
        if drainDelay > .zero && !forced && !handingOver {
            logger.info("shutting down: not ready; still accepting for \(drainDelay)")
            let delay = Task<Void, Never> { try? await Task.sleep(for: drainDelay) }
            let cancelled = state.withLock { locals -> Bool in
                locals.drainDelay = delay
                return locals.machine.isForced
            }
            if cancelled { delay.cancel() }
            await delay.value
        }
        let deadline = ContinuousClock.now.advanced(by: shutdownTimeout)
        logger.info("shutting down: no new connections; draining in-flight requests", metadata: [
            "servers": "\(servers.count)", "deadline": "\(shutdownTimeout)",
        ])
        let (current, runners) = state.withLock { locals in
            locals.drainDeadline = deadline
            // Predecessors first: they share a socket with their successor, which shuts it down.
            return (locals.retiring + locals.servers, locals.sideServices)
        }
        if drainDelay > .zero && !forced && !handingOver {
            notifier?.status("shutting down: draining, deadline in \(shutdownTimeout)")
        }
        for entry in current {
            entry.server.stopAccepting(deadline: deadline, handOverIdleTime: handingOver ? handOverIdleTime : nil)
        }
        // Side services that stop with the drain are asked now, by the same deadline.
        for runner in runners where runner.stopOrder == .withTheDrain { await runner.shutDown(by: deadline) }
    }

    /// Ends the drain (and the drain delay) at once for every server, and cancels every side
    /// service.
    private func forceStopServers() {
        let (servers, delay, runners) = state.withLock { ($0.servers + $0.retiring, $0.drainDelay, $0.sideServices) }
        delay?.cancel()
        for entry in servers { entry.server.forceStop() }
        for runner in runners { runner.cancel() }
    }

    private func finishRun() async {
        // Servers the group never ran (for example when it was cancelled early) still need stopping.
        for entry in state.withLock({ $0.servers + $0.retiring }).reversed() where entry.server.address != nil {
            entry.server.forceStop()
            await entry.server.finishShutdown()
        }
        let handedOver = state.withLock { $0.machine.handingOver }
        let (callbacks, waiters) = state.withLock { locals -> ([@Sendable () async -> Void], Waiters<Void>.Resumption) in
            locals.machine.finished()
            defer { locals.shutdownCallbacks = [] }
            return (locals.shutdownCallbacks, locals.started.settle(.failure(CancellationError())))
        }
        waiters.resume()
        for callback in callbacks.reversed() { await callback() }
        claimedPorts.withLock { $0 = [] }
        notifier?.stopWatchdog()
        // After an upgrade systemd follows the new process; this one says nothing more.
        if !handedOver { notifier?.status("stopped") }
    }
}
