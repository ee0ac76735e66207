import CMicroHTTPD
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One running libmicrohttpd daemon and the bridge from its callbacks into Swift.
///
/// Request flow:
/// 1. URI callback (request line read): create the ``RequestContext``; the request counts as
///    in flight from here.
/// 2. First access callback (headers only): reject early only what can never succeed (see
///    ``RequestGuard``), since a response queued here makes the engine drop keep-alive.
/// 3. Body callbacks: append to the context, up to `maxBodySize`.
/// 4. Final callback: route. An inline handler answers right here. An async handler starts at
///    once on this thread (see `runAsync`); only if it suspends is the connection suspended, and
///    its task then resumes it exactly once; the engine calls back on its own thread, where the
///    response is queued.
/// 5. `NOTIFY_COMPLETED` releases the context and records the request.
final class Engine: @unchecked Sendable {
    enum Responder: Sendable {
        case router(Router)
        case handler(any HTTPHandler)
    }

    let config: ServerConfig
    let socket: ListeningSocket
    /// Exactly one of these is set. Kept apart (not as an enum) so the hot path borrows the
    /// router in place instead of copying it out of an enum payload on every request.
    private let router: Router?
    private let handler: (any HTTPHandler)?
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
    private let draining = Atomic<Bool>(false)
    /// Set when a graceful shutdown starts: the readiness probe answers 503 from then on.
    let notReady = Atomic<Bool>(false)
    private let registry = Locked(Registry())
    private let lastEngineMessage = Locked<String?>(nil)
    /// When the listener was closed (start of the drain).
    private let quiescedAt = Locked<ContinuousClock.Instant?>(nil)
    /// strdup'ed PEM key and certificate handed to the engine (HTTPS only).
    private var tlsMaterial: [UnsafeMutablePointer<CChar>?] = []
    let connections: ConnectionWatch
    private let metrics: RequestMetrics
    private let requestIDs = Atomic<Int>(0)

    /// Connections suspended while their handler task runs.
    struct Registry {
        var contexts: [ObjectIdentifier: RequestContext] = [:]
        /// Once set, nothing more is suspended: the daemon is about to stop.
        var stopping = false
        var watcherRunning = false
    }

    init(config: ServerConfig, socket: ListeningSocket, responder: Responder, logger: Logger, stats: ServerStats) {
        self.config = config
        self.socket = socket
        switch responder {
        case .router(let router):
            self.router = router
            self.handler = nil
        case .handler(let handler):
            self.router = nil
            self.handler = handler
        }
        self.logger = logger
        self.stats = stats
        self.connections = ConnectionWatch(
            timeout: config.limits.requestHeaderTimeout, logger: logger, name: config.name)
        self.metrics = RequestMetrics(server: config.name, routes: router?.routeLabels ?? [])
    }

    // MARK: Lifecycle

    /// Starts the daemon on the already listening socket.
    func start() throws {
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
            .init(option: .LISTEN_SOCKET, value: Int(engineFD), ptr_value: nil),
            .init(option: .NOTIFY_COMPLETED, value: unsafeBitCast(completedCallback, to: Int.self), ptr_value: me),
            .init(option: .EXTERNAL_LOGGER, value: unsafeBitCast(logCallback, to: Int.self), ptr_value: me),
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
    }

    /// The flags every daemon uses: epoll on internal threads, suspend/resume for async
    /// handlers, engine messages routed to our logger, and opportunistic I/O.
    static let daemonFlags: UInt32 =
        MHD_USE_EPOLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
        | MHD_USE_ERROR_LOG.rawValue | MHD_USE_TURBO.rawValue

    /// Stops accepting: the listening socket leaves the engine and is shut down, so new clients
    /// are refused at once. Requests in progress go on; their responses close the connection.
    func quiesce() {
        notReady.store(true, ordering: .relaxed)
        draining.store(true, ordering: .relaxed)
        quiescedAt.withLock { $0 = $0 ?? .now }
        lifecycle.withLock { state in
            guard let daemon = state.daemon, !state.quiesced else { return }
            state.quiesced = true
            if MHD_quiesce_daemon(daemon) < 0 {
                // The engine keeps polling the socket; it closes at stop.
                logger.debug("engine could not quiesce; the listening socket closes at stop")
                return
            }
            // The engine no longer polls it: refuse new connections at once.
            state.handedBack = true
            socket.stopListening()
        }
    }

    /// Waits until no request is in progress, the deadline passes, or the task is cancelled.
    /// The listener must also have been closed for at least 10 ms, so a request whose bytes
    /// reached a socket just before is read and answered, not cut off. (All servers of a manager
    /// close their listeners together, so servers stopped later in turn do not wait again.)
    /// Returns whether everything finished.
    func drain(until deadline: ContinuousClock.Instant, abandon: @Sendable () -> Bool) async -> Bool {
        let settled = (quiescedAt.withLock { $0 } ?? .now).advanced(by: .milliseconds(10))
        while true {
            if stats.inFlight == 0 {
                if ContinuousClock.now >= settled { return true }
            } else if ContinuousClock.now >= deadline || Task.isCancelled || abandon() {
                return false
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Cancels every handler task still running and resumes its connection with a 503; from
    /// now on nothing is suspended any more. Returns how many were abandoned.
    @discardableResult
    func abandonSuspended() -> Int {
        let leftovers = registry.withLock { registry -> [RequestContext] in
            registry.stopping = true
            return Array(registry.contexts.values)
        }
        for context in leftovers {
            context.cancelTask()
            context.abandon()
        }
        return leftovers.count
    }

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

    // MARK: Callbacks

    fileprivate func access(
        _ connection: OpaquePointer,
        _ url: UnsafePointer<CChar>,
        _ method: UnsafePointer<CChar>,
        _ version: UnsafePointer<CChar>,
        _ uploadData: UnsafePointer<CChar>?,
        _ uploadSize: UnsafeMutablePointer<Int>,
        _ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        // Normally created by the URI callback; created here only if that did not run.
        let raw = slot.pointee ?? began(connection, target: nil)
        slot.pointee = raw
        // The engine owns the context until `NOTIFY_COMPLETED`: borrowed, no retain/release.
        return Unmanaged<RequestContext>.fromOpaque(raw)._withUnsafeGuaranteedRef { context in
            access(context, connection, url, method, version, uploadData, uploadSize)
        }
    }

    private func access(
        _ context: RequestContext,
        _ connection: OpaquePointer,
        _ url: UnsafePointer<CChar>,
        _ method: UnsafePointer<CChar>,
        _ version: UnsafePointer<CChar>,
        _ uploadData: UnsafePointer<CChar>?,
        _ uploadSize: UnsafeMutablePointer<Int>
    ) -> MHD_Result {
        if context.phase == .created {
            // Headers-only callback: only early rejections are answered here (a response queued
            // now makes the engine drop keep-alive).
            context.phase = .receiving
            Engine.withConnectionState(connection) { $0.headersComplete() }
            if RequestGuard.hasRawNUL(context, url: url, version: version) { context.invalidTarget = true }
            context.headers = Engine.headers(of: connection)
            if let rejection = RequestGuard.check(context, limits: config.limits) {
                return queue(rejection, on: context, close: true)
            }
            return .YES
        }
        let size = uploadSize.pointee
        if size > 0 {
            uploadSize.pointee = 0
            Engine.withConnectionState(connection) { $0.bodyReceived() }
            guard context.phase == .receiving, !context.bodyOverflow else { return .YES }
            if context.body.count + size > config.limits.maxBodySize {
                context.bodyOverflow = true
                context.body = []
            } else {
                context.body.append(contentsOf: UnsafeRawBufferPointer(start: uploadData, count: size))
            }
            return .YES
        }
        switch context.phase {
        case .receiving:
            Engine.withConnectionState(connection) { $0.dispatched() }
            return dispatch(context, url: url, method: method, version: version)
        case .suspended:
            let (response, clientGone) = context.shared.withLock { ($0.response, $0.clientGone) }
            if clientGone {
                // Nobody to answer: close the connection, so the request ends aborted.
                context.phase = .answered
                return .NO
            }
            return queue(response ?? Engine.shuttingDown, on: context, close: response == nil)
        case .answered, .created:
            return .YES
        }
    }

    private func dispatch(
        _ context: RequestContext, url: UnsafePointer<CChar>, method: UnsafePointer<CChar>,
        version: UnsafePointer<CChar>
    ) -> MHD_Result {
        if context.bodyOverflow {
            return queue(RequestGuard.contentTooLarge, on: context, close: true)
        }
        var request = makeRequest(context, url: url, method: method, version: version)
        if let level = config.accessLogLevel, logger.logLevel <= level {
            context.accessLog = (
                request.method.rawValue, request.path,
                request.headers["X-Request-Id"].map { String($0.prefix(128)) } ?? "\(config.name)-\(requestIDs.add(1, ordering: .relaxed).newValue)"
            )
        }
        if let health = config.health {
            if request.path == health.livenessPath { return queue(Engine.alive, on: context) }
            if request.path == health.readinessPath {
                return queue(notReady.load(ordering: .relaxed) ? Engine.draining : Engine.ready, on: context)
            }
        }
        if let router {
            switch router.resolve(&request) {
            case .handler(.sync(let handler), let route):
                context.route = route
                let response: Response
                do {
                    response = try handler(request)
                } catch {
                    response = failure(error, request, route: route)
                }
                return queue(response, on: context)
            case .handler(.async(let handler), let route):
                context.route = route
                return runAsync(context, request, handler)
            case .answered(let response):
                return queue(response, on: context)
            case .notFound:
                return queue(Router.notFoundResponse, on: context)
            case .methodNotAllowed(let allow):
                return queue(Router.methodNotAllowed(allow: allow), on: context)
            }
        }
        let handler = self.handler!
        return runAsync(context, request) { try await handler.respond(to: $0) }
    }

    /// Runs an async handler. It starts at once on this thread (`Task.immediate`), so a handler
    /// that never actually suspends answers right here with no thread hop and no
    /// suspend/resume. Only if it is still running when it first suspends is the connection
    /// suspended; its task then resumes the connection exactly once, and the engine calls back
    /// on its own thread where the response is queued. Both sides decide under the context's
    /// lock, so the task can never resume a connection that was not suspended.
    private func runAsync(
        _ context: RequestContext, _ request: Request,
        _ handler: @escaping @Sendable (Request) async throws -> Response
    ) -> MHD_Result {
        let route = context.route
        context.shared = Locked(RequestContext.Shared())
        let task = Task.immediate {
            let response: Response
            do {
                response = try await handler(request)
            } catch {
                // Cancelled by us (client gone, or abandoned at shutdown): not a handler failure.
                let cancelled = context.shared.withLock { $0.cancelled }
                response = cancelled ? Engine.shuttingDown : self.failure(error, request, route: route)
            }
            if context.finish(with: response) {
                self.registry.withLock { _ = $0.contexts.removeValue(forKey: ObjectIdentifier(context)) }
            }
        }
        if let response = context.shared.withLock({ state -> Response? in
            if case .completed(let response) = state.stage { return response }
            state.task = task
            return nil
        }) {
            return queue(response, on: context)
        }
        // Still running: suspend the connection until the task finishes.
        context.fd = mhds_connection_fd(context.connection)
        let (suspended, startWatcher) = registry.withLock { registry -> (Bool, Bool) in
            let suspended = context.shared.withLock { state -> Bool in
                guard case .running = state.stage else { return false }
                if registry.stopping {
                    state.stage = .abandoned
                    return false
                }
                state.stage = .suspended
                MHD_suspend_connection(context.connection)
                return true
            }
            guard suspended else { return (false, false) }
            context.phase = .suspended
            registry.contexts[ObjectIdentifier(context)] = context
            let start = !registry.watcherRunning
            registry.watcherRunning = true
            return (true, start)
        }
        if suspended {
            if startWatcher { startDisconnectWatcher() }
            return .YES
        }
        // It finished meanwhile on another thread, or the server is stopping.
        let stage = context.shared.withLock { $0.stage }
        if case .completed(let response) = stage { return queue(response, on: context) }
        context.cancelTask()
        return queue(Engine.shuttingDown, on: context, close: true)
    }

    /// While handlers are suspended, checks their sockets every 100 ms and cancels the tasks of
    /// clients that hung up. Suspended connections are invisible to the engine's own polling,
    /// and this costs the request path nothing. Runs only while something is suspended.
    private func startDisconnectWatcher() {
        Task.detached { [self] in
            while true {
                try? await Task.sleep(for: .milliseconds(100))
                let watched = registry.withLock { registry -> [RequestContext] in
                    if registry.contexts.isEmpty || registry.stopping {
                        registry.watcherRunning = false
                        return []
                    }
                    return Array(registry.contexts.values)
                }
                if watched.isEmpty { return }
                var fds = watched.map { pollfd(fd: $0.fd, events: Engine.pollHangUp, revents: 0) }
                guard poll(&fds, nfds_t(fds.count), 0) > 0 else { continue }
                for (index, entry) in fds.enumerated()
                where entry.revents & (Engine.pollHangUp | Int16(POLLHUP) | Int16(POLLERR) | Int16(POLLNVAL)) != 0 {
                    logger.debug("client went away; cancelling its handler", metadata: ["server": "\(config.name)"])
                    watched[index].cancelTask(clientGone: true)
                }
            }
        }
    }

    /// `POLLRDHUP`: the peer closed its side.
    static let pollHangUp: Int16 = 0x2000

    fileprivate func completed(_ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_RequestTerminationCode) {
        guard let slot, let raw = slot.pointee else { return }
        slot.pointee = nil
        let context = Unmanaged<RequestContext>.fromOpaque(raw).takeRetainedValue()
        Engine.withConnectionState(context.connection) { $0.requestComplete() }
        let finished = code == .REQUEST_TERMINATED_COMPLETED_OK
        let elapsed = Monotonic.nanoseconds() &- context.startedAt
        stats.ended(status: finished ? context.status : 0, nanoseconds: elapsed)
        metrics.ended(route: context.route, status: finished ? context.status : 0, nanoseconds: elapsed)
        if let line = context.accessLog, let level = config.accessLogLevel {
            logger.log(
                level: level, "\(line.method) \(line.path) \(finished ? context.status : 0)",
                metadata: [
                    "server": "\(config.name)", "method": "\(line.method)", "path": "\(line.path)",
                    "status": "\(finished ? context.status : 0)",
                    "durationMs": "\(Double(elapsed / 1000) / 1000)", "requestID": "\(line.requestID)",
                ])
        }
    }

    fileprivate func connection(
        _ connection: OpaquePointer, _ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
        _ code: MHD_ConnectionNotificationCode
    ) {
        switch code {
        case .CONNECTION_NOTIFY_STARTED:
            let state = ConnectionState(fd: mhds_connection_fd(connection))
            slot.pointee = Unmanaged.passRetained(state).toOpaque()
            connections.opened(state)
        default:
            guard let raw = slot.pointee else { return }
            slot.pointee = nil
            connections.closed(Unmanaged<ConnectionState>.fromOpaque(raw).takeRetainedValue())
        }
    }

    /// Runs `body` with the connection's tracked state, if any (borrowed: no retain/release).
    static func withConnectionState(_ connection: OpaquePointer, _ body: (ConnectionState) -> Void) {
        guard let raw = mhds_connection_socket_context(connection) else { return }
        Unmanaged<ConnectionState>.fromOpaque(raw)._withUnsafeGuaranteedRef(body)
    }

    fileprivate func engineMessage(_ text: String) {
        lastEngineMessage.withLock { $0 = text }
        logger.debug("libmicrohttpd: \(text.trimmingTrailingNewlines)", metadata: ["server": "\(config.name)"])
    }

    // MARK: Requests and responses

    private func makeRequest(
        _ context: RequestContext, url: UnsafePointer<CChar>, method: UnsafePointer<CChar>,
        version: UnsafePointer<CChar>
    ) -> Request {
        let connection = context.connection
        var request = Request(
            method: HTTPMethod.interned(String(cString: method)),
            path: String(cString: url),
            query: context.query.isEmpty ? QueryParameters() : QueryParameters(parsing: context.query),
            headers: context.headers,
            body: context.body,
            version: Engine.versionString(version))
        request.peer = PeerAddress(mhds_connection_client_address(connection))
        context.body = []
        return request
    }

    /// The request line's version, without allocating for the common ones.
    static func versionString(_ version: UnsafePointer<CChar>) -> String {
        if strcmp(version, "HTTP/1.1") == 0 { return http11 }
        if strcmp(version, "HTTP/1.0") == 0 { return http10 }
        return String(cString: version)
    }
    private static let http11 = "HTTP/1.1"
    private static let http10 = "HTTP/1.0"

    static func headers(of connection: OpaquePointer) -> HTTPHeaders {
        var headers = HTTPHeaders()
        withUnsafeMutablePointer(to: &headers) { pointer in
            _ = MHD_get_connection_values(connection, .HEADER_KIND, headerIterator, pointer)
        }
        return headers
    }

    /// A request line arrived: the request exists from here on (it counts as in flight, so a
    /// drain waits for it). The raw target is checked before the engine decodes it.
    ///
    /// The query string is taken here and parsed in Swift; the engine is left an empty one.
    /// The engine would store every parameter in the connection's fixed memory pool and, when a
    /// long query (a few hundred parameters) does not fit, neither answer nor complete the
    /// request (libmicrohttpd 0.9.75 loses its own 431 when it goes on to read the headers).
    fileprivate func began(_ connection: OpaquePointer, target: UnsafePointer<CChar>?) -> UnsafeMutableRawPointer {
        let context = RequestContext(connection: connection, stats: stats)
        if let target {
            context.rawTarget = target
            context.rawTargetLength = strlen(target)
            context.invalidTarget = RequestGuard.hasEncodedNUL(target)
            if let mark = strchr(target, 63 /* ? */), mark[1] != 0 {
                let query = UnsafeRawBufferPointer(start: mark + 1, count: strlen(mark + 1))
                context.query = Array(query)
                // The target lies in the engine's own (writable) read buffer; it cuts the
                // request target at the `?` right after this callback and parses what follows.
                UnsafeMutablePointer(mutating: mark + 1).pointee = 0
            }
        }
        stats.began()
        metrics.began()
        return Unmanaged.passRetained(context).toOpaque()
    }

    /// The response for a thrown error: an ``HTTPError`` answers as it says, anything else is
    /// logged and answered with a generic 500.
    private func failure(_ error: any Error, _ request: Request, route: Int) -> Response {
        if let error = error as? HTTPError {
            if error.status.isServerError {
                stats.handlerFailed()
                metrics.handlerFailed(route: route)
            }
            return error.response
        }
        stats.handlerFailed()
        metrics.handlerFailed(route: route)
        logger.error(
            "handler failed",
            metadata: [
                "server": "\(config.name)", "method": "\(request.method)", "path": "\(request.path)",
                "error": "\(String(reflecting: error))",
            ])
        return Engine.internalError
    }

    private func queue(_ response: Response, on context: RequestContext, close: Bool = false) -> MHD_Result {
        context.phase = .answered
        context.status = response.status.code
        let closing = close || draining.load(ordering: .relaxed)
        if let native = response.native, !closing {
            return MHD_queue_response(context.connection, native.status, native.pointer)
        }
        let transient = NativeResponse(response.storage, closeConnection: closing)
        return MHD_queue_response(context.connection, transient.status, transient.pointer)
    }

    static let internalError = Response.error(.internalServerError).reusable()
    static let alive = Response.json(raw: #"{"status":"alive"}"#).reusable()
    static let ready = Response.json(raw: #"{"status":"ready"}"#).reusable()
    static let draining = Response.json(raw: #"{"status":"draining"}"#, status: .serviceUnavailable).reusable()
    static let shuttingDown = Response.error(.serviceUnavailable, message: "server is shutting down")
}

extension String {
    var trimmingTrailingNewlines: String {
        var copy = self
        while copy.last == "\n" || copy.last == "\r" { copy.removeLast() }
        return copy
    }
}

// MARK: C entry points (no captures: the engine comes back through `cls`)

private let accessCallback: MHD_AccessHandlerCallback = {
    cls, connection, url, method, version, uploadData, uploadSize, slot in
    // The engine outlives its daemon: no retain/release needed around the call.
    Unmanaged<Engine>.fromOpaque(cls!)._withUnsafeGuaranteedRef {
        $0.access(connection!, url!, method!, version!, uploadData, uploadSize!, slot!)
    }
}

private let completedCallback: MHD_RequestCompletedCallback = { cls, _, slot, code in
    Unmanaged<Engine>.fromOpaque(cls!)._withUnsafeGuaranteedRef { $0.completed(slot, code) }
}

private let uriCallback: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer? = {
    cls, uri, connection in
    guard let cls, let connection else { return nil }
    return Unmanaged<Engine>.fromOpaque(cls)._withUnsafeGuaranteedRef { $0.began(connection, target: uri) }
}

private let connectionCallback: MHD_NotifyConnectionCallback = { cls, connection, slot, code in
    guard let cls, let connection, let slot else { return }
    Unmanaged<Engine>.fromOpaque(cls)._withUnsafeGuaranteedRef { $0.connection(connection, slot, code) }
}

private let logCallback: MHD_LogCallback = { cls, format, arguments in
    guard let cls, let format else { return }
    var buffer = [CChar](repeating: 0, count: 512)
    guard let arguments else { return }
    _ = vsnprintf(&buffer, buffer.count, format, arguments)
    Unmanaged<Engine>.fromOpaque(cls).takeUnretainedValue().engineMessage(System.string(buffer))
}

private let headerIterator: MHD_KeyValueIterator = { cls, _, key, value in
    guard let cls, let key else { return .YES }
    let headers = cls.assumingMemoryBound(to: HTTPHeaders.self)
    headers.pointee.add(name: String(cString: key), value: value.map { String(cString: $0) } ?? "")
    return .YES
}
