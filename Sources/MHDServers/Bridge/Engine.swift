import CMicroHTTPD
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One running libmicrohttpd daemon and the bridge from its callbacks into Swift.
///
/// This file starts and stops the daemon; the rest of the bridge is split by concept:
/// `Engine+Callbacks` (the C entry points), `Engine+Dispatch` (from a complete request to a
/// queued response), `Engine+AsyncHandlers` and ``AsyncExchange`` (suspend/resume),
/// ``SuspendedConnections``, ``DrainSignal``, `Engine+Recording` (what ends a request) and
/// ``Supervisor`` (deadlines and hang-ups the engine does not see).
///
/// Request flow:
/// 1. URI callback (request line read): create the ``EngineRequest``; the request counts as
///    in flight from here.
/// 2. First access callback (headers only): reject early only what can never succeed (see
///    ``RequestGuard``), since a response queued here makes the engine drop keep-alive.
/// 3. Body callbacks: append to the context, up to `maxBodySize`.
/// 4. Final callback: route. An inline handler answers right here. An async handler starts at
///    once on this thread (see `runAsync`); only if it suspends is the connection suspended, and
///    its task then resumes it exactly once; the engine calls back on its own thread, where the
///    response is queued.
/// 5. `NOTIFY_COMPLETED` releases the context and records the request, exactly once.
final class Engine: @unchecked Sendable {
    enum Responder: Sendable {
        case router(Router)
        case handler(any HTTPHandler)
    }

    let config: ServerConfig
    let socket: ListeningSocket
    /// Exactly one of these is set. Kept apart (not as an enum) so the hot path borrows the
    /// router in place instead of copying it out of an enum payload on every request.
    let router: Router?
    let handler: (any HTTPHandler)?
    let logger: Logger
    let stats: ServerStats

    /// The daemon and the engine's copy of the listening socket. Quiesce and stop can be asked
    /// for from several tasks at once (a signal, the manager, a late runtime add), so both run
    /// under this lock.
    private struct Lifecycle {
        var daemon: OpaquePointer?
        /// The descriptor the engine listens on: a `dup` of ``socket``'s, owned by the engine
        /// until `MHD_quiesce_daemon` hands it back (then ours to close).
        var engineFD: Int32 = -1
        /// Quiesce was attempted (at most once).
        var quiesced = false
        /// The engine handed ``engineFD`` back (a successful quiesce): we close it.
        var handedBack = false
    }
    private let lifecycle = Locked(Lifecycle())
    /// Set once the server stops accepting: every response from then on closes its connection.
    let closesConnections = Atomic<Bool>(false)
    /// Set when a shutdown starts: the readiness probe answers 503 from then on.
    let readinessWithdrawn = Atomic<Bool>(false)
    /// Set while the manager waits for side services to become ready: the readiness probe
    /// answers 503 until then.
    let readinessPending = Atomic<Bool>(false)
    let suspended = SuspendedConnections()
    let streams = OpenStreams()
    let drainSignal: DrainSignal
    let supervisor: Supervisor
    let lastEngineMessage = Locked<String?>(nil)
    /// Backs off a worker that cannot accept for lack of descriptors (see `engineMessage`).
    let acceptBackOff = AcceptBackOff()
    /// strdup'ed PEM key and certificate handed to the engine (HTTPS only).
    private var tlsMaterial: [UnsafeMutablePointer<CChar>?] = []
    let metrics: RequestMetrics
    let requestIDs = Atomic<Int>(0)

    init(config: ServerConfig, socket: ListeningSocket, responder: Responder, logger: Logger, stats: ServerStats) {
        self.config = config
        self.socket = socket
        let tracing = config.tracesRequests ? TracingMiddleware.bootstrapped() : nil
        switch responder {
        case .router(let router):
            self.router = router.compiled(outermost: tracing.map { [$0] } ?? [])
            self.handler = nil
        case .handler(let handler):
            self.router = nil
            if let tracing {
                let traced = MiddlewareChain.answering(tracing.wrap(.async { try await handler.respond(to: $0) }))
                self.handler = ClosureHandler { await traced($0) }
            } else {
                self.handler = handler
            }
        }
        var logger = logger
        if logger[metadataKey: "server"] == nil { logger[metadataKey: "server"] = "\(config.name)" }
        self.logger = logger
        self.stats = stats
        self.drainSignal = DrainSignal(stats: stats)
        self.supervisor = Supervisor(
            headerTimeout: config.limits.requestHeaderTimeout, suspended: suspended, stats: stats, logger: logger,
            name: config.name)
        self.metrics = RequestMetrics(server: config.name, routes: router?.routeLabels ?? [])
    }

    // MARK: Lifecycle

    /// Starts the daemon on the already listening socket, and registers the routes' metric
    /// series unless `deferringMetrics` (the caller then calls `metrics.registerSeries()`).
    func start(deferringMetrics: Bool = false) throws {
        let me = Unmanaged.passRetained(self).toOpaque()
        // The engine gets its own descriptor for the socket: whatever it closes (at stop, or
        // on its own failure paths) is never the number ``socket`` still owns.
        let engineFD = fcntl(socket.fd, F_DUPFD_CLOEXEC, 0)
        guard engineFD >= 0 else {
            Unmanaged<Engine>.fromOpaque(me).release()
            throw ServerError(
                .startFailed, server: config.name, host: config.host, portsTried: [socket.port],
                message: "cannot duplicate the listening socket: \(System.errorText(errno))")
        }
        let limits = config.limits
        var options: [MHD_OptionItem] = [
            // First, so that the engine's messages about the other options reach our logger.
            .init(option: .EXTERNAL_LOGGER, value: logCallbackAddress, ptr_value: me),
            .init(option: .LISTEN_SOCKET, value: Int(engineFD), ptr_value: nil),
            .init(option: .NOTIFY_COMPLETED, value: unsafeBitCast(completedCallback, to: Int.self), ptr_value: me),
            .init(option: .URI_LOG_CALLBACK, value: unsafeBitCast(uriCallback, to: Int.self), ptr_value: me),
            .init(option: .NOTIFY_CONNECTION, value: unsafeBitCast(connectionCallback, to: Int.self), ptr_value: me),
            .init(option: .CONNECTION_TIMEOUT, value: Int(limits.timeoutSeconds), ptr_value: nil),
            .init(option: .CONNECTION_LIMIT, value: max(1, limits.maxConnections), ptr_value: nil),
            .init(option: .PER_IP_CONNECTION_LIMIT, value: max(0, limits.maxConnectionsPerIP), ptr_value: nil),
            .init(option: .CONNECTION_MEMORY_LIMIT, value: max(4096, limits.connectionMemory), ptr_value: nil),
        ]
        let threads = config.effectiveThreadCount
        if threads > 1 {
            options.append(.init(option: .THREAD_POOL_SIZE, value: threads, ptr_value: nil))
        }
        var flags = Engine.daemonFlags
        if let tls = config.tls {
            guard MHD_is_feature_supported(.FEATURE_TLS) == .YES else {
                Unmanaged<Engine>.fromOpaque(me).release()
                throw ServerError(
                    .startFailed, server: config.name, host: config.host, portsTried: [socket.port],
                    message: "this libmicrohttpd was built without TLS support")
            }
            // The engine reads these during start; they are kept until the daemon stops.
            tlsMaterial = [strdup(tls.privateKeyPEM), strdup(tls.certificatePEM)]
            options.append(.init(option: .HTTPS_MEM_KEY, value: 0, ptr_value: UnsafeMutableRawPointer(tlsMaterial[0])))
            options.append(.init(option: .HTTPS_MEM_CERT, value: 0, ptr_value: UnsafeMutableRawPointer(tlsMaterial[1])))
            flags |= MHD_USE_TLS.rawValue
        }
        options.append(.init(option: .END, value: 0, ptr_value: nil))
        let started = options.withUnsafeBufferPointer { buffer in
            mhds_start_daemon(flags, accessCallback, me, buffer.baseAddress)
        }
        guard let started else {
            // Some of the engine's failure paths close the descriptor handed to it and some do
            // not (a failed wake-up channel or epoll set): close it unless that number already
            // means something else.
            if Engine.isSameFile(engineFD, socket.fd) { _ = Glibc.close(engineFD) }
            releaseTLSMaterial()
            Unmanaged<Engine>.fromOpaque(me).release()
            let detail = lastEngineMessage.withLock { $0 } ?? "libmicrohttpd refused the configuration"
            throw ServerError(
                .startFailed, server: config.name, host: config.host, portsTried: [socket.port],
                message: "cannot start the HTTP engine: \(detail.trimmingTrailingNewlines)")
        }
        lifecycle.withLock {
            $0.daemon = started
            $0.engineFD = engineFD
        }
        supervisor.start()
        if !deferringMetrics { metrics.registerSeries() }
    }

    /// Whether two descriptors are open on the same file (same device and inode).
    static func isSameFile(_ first: Int32, _ second: Int32) -> Bool {
        var a = stat(), b = stat()
        guard fstat(first, &a) == 0, fstat(second, &b) == 0 else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    /// The flags every daemon uses: epoll on internal threads, suspend/resume for async
    /// handlers, engine messages routed to our logger, and opportunistic I/O.
    static let daemonFlags: UInt32 =
        MHD_USE_EPOLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
        | MHD_USE_ERROR_LOG.rawValue | MHD_USE_TURBO.rawValue

    /// Stops accepting: the listening socket leaves the engine and is shut down, so new clients
    /// are refused at once. Requests in progress go on; their responses close the connection.
    ///
    /// - Parameter handingOver: the socket stays open and listening, because another engine (a
    ///   restarted server, or a new process) accepts on a duplicate of it: shutting it down would
    ///   shut theirs down too. New clients are then served by the successor.
    func stopAccepting(handingOver: Bool = false) {
        readinessWithdrawn.store(true, ordering: .relaxed)
        closesConnections.store(true, ordering: .relaxed)
        drainSignal.listenerClosed()
        streams.drainStarted()
        lifecycle.withLock { state in
            guard let daemon = state.daemon, !state.quiesced else { return }
            state.quiesced = true
            if MHD_quiesce_daemon(daemon) < 0 {
                // The engine keeps polling the socket; it closes at stop.
                logger.debug("engine could not quiesce; the listening socket closes at stop")
                return
            }
            state.handedBack = true
            // The engine no longer polls it: refuse new connections at once, unless a successor
            // accepts on it.
            if !handingOver { socket.stopListening() }
        }
    }

    /// The readiness probe answers 503 from now on; the server still accepts.
    func withdrawReadiness() { readinessWithdrawn.store(true, ordering: .relaxed) }

    /// Whether the readiness probe answers 503.
    var isReady: Bool { !readinessWithdrawn.load(ordering: .relaxed) && !readinessPending.load(ordering: .relaxed) }

    /// Waits until no request is in flight (true) or `deadline` passes or the drain is
    /// interrupted (false). Woken by the request that ends last; see ``DrainSignal``.
    func drain(until deadline: ContinuousClock.Instant) async -> Bool {
        await drainSignal.wait(until: deadline)
    }

    /// Waits until every open connection has waited `idle` for its next request (see
    /// ``Supervisor/waitUntilQuiet(idleFor:until:)``) or `deadline` passes.
    func waitUntilQuiet(idleFor idle: Duration, until deadline: ContinuousClock.Instant) async -> Bool {
        await supervisor.waitUntilQuiet(idleFor: idle, until: deadline)
    }

    /// Ends a drain in progress at once (a forced stop).
    func interruptDrain() { drainSignal.interrupt() }

    /// Waits up to `time` for abandoned requests to send their 503 before connections close.
    func waitForAbandonedAnswers(_ time: Duration) async {
        drainSignal.clearInterrupt()
        _ = await drainSignal.wait(until: .now + time)
    }

    /// Cancels every handler task still running and resumes its connection with a 503; from
    /// now on nothing is suspended any more. Returns how many were abandoned.
    @discardableResult
    func abandonSuspended() -> Int {
        let leftovers = suspended.stopSuspending()
        for context in leftovers {
            context.cancelTask()
            context.abandon()
        }
        return leftovers.count
    }

    /// Connections the engine holds open right now.
    var openConnections: Int { supervisor.openConnections }

    /// Stops the daemon (closing every connection) after making sure no connection is still
    /// suspended: the engine aborts the process if it is stopped with one.
    func stop() {
        lifecycle.withLock { state in
            guard let daemon = state.daemon else { return }
            abandonSuspended()
            MHD_stop_daemon(daemon)
            state.daemon = nil
            // After a successful quiesce the engine handed its descriptor back to us.
            if state.handedBack && state.engineFD >= 0 { _ = Glibc.close(state.engineFD) }
            state.engineFD = -1
            releaseTLSMaterial()
            socket.close()
            Unmanaged.passUnretained(self).release()
        }
        supervisor.stop()
        drainSignal.interrupt()
    }

    private func releaseTLSMaterial() {
        for pointer in tlsMaterial {
            guard let pointer else { continue }
            // Wipe the key material before giving the memory back.
            memset(pointer, 0, strlen(pointer))
            free(pointer)
        }
        tlsMaterial = []
    }
}
