import CMicroHTTPD
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The engine's C callbacks, and the per-connection notifications.
extension Engine {
    func access(
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
        return Unmanaged<EngineRequest>.fromOpaque(raw)._withUnsafeGuaranteedRef { context in
            access(context, connection, url, method, version, uploadData, uploadSize)
        }
    }

    private func access(
        _ context: EngineRequest,
        _ connection: OpaquePointer,
        _ url: UnsafePointer<CChar>,
        _ method: UnsafePointer<CChar>,
        _ version: UnsafePointer<CChar>,
        _ uploadData: UnsafePointer<CChar>?,
        _ uploadSize: UnsafeMutablePointer<Int>
    ) -> MHD_Result {
        if context.phase == .receivingHeaders {
            // Headers-only callback: only early rejections are answered here (a response queued
            // now makes the engine drop keep-alive).
            context.phase = .receivingBody
            Engine.withConnectionState(connection) { $0.headersComplete() }
            if RequestGuard.hasRawNUL(context, url: url, version: version) { context.invalidTarget = true }
            (context.headers, context.headerFacts) = Engine.headers(of: connection)
            context.http10 = strcmp(version, "HTTP/1.0") == 0
            guard let parsed = Engine.method(method) else {
                return queue(RequestGuard.invalidMethod, on: context, close: true)
            }
            context.method = parsed
            // A route that streams its body is found now, and its own size limit applies.
            var streaming: (request: Request, handler: Router.Handler, route: Int, limit: Int)?
            // Only a method some streaming route has: the others never need the early route.
            // (`router!` in place: binding it with `if let` would copy the whole router.)
            if router?.mayStream(parsed) == true {
                var request = makeRequest(context, url: url, method: method, version: version)
                if case .handler(let handler, let route) = router!.resolve(&request), let limit = router!.streamingLimits[route] {
                    streaming = (request, handler, route, limit)
                }
            }
            if let rejection = RequestGuard.check(context, maxBodySize: streaming?.limit ?? config.limits.maxBodySize) {
                return queue(rejection, on: context, close: true)
            }
            if let streaming { startStreamingHandler(context, streaming.request, streaming.handler, streaming.route, streaming.limit) }
            return .YES
        }
        let size = uploadSize.pointee
        if size > 0 {
            uploadSize.pointee = 0
            Engine.withConnectionState(connection) { $0.bodyReceived() }
            if let upload = context.upload {
                if context.phase == .receivingBody { upload.receive(UnsafeRawBufferPointer(start: uploadData, count: size)) }
                return .YES
            }
            guard context.phase == .receivingBody, !context.bodyOverflow else { return .YES }
            if context.body.count + size > config.limits.maxBodySize {
                context.bodyOverflow = true
                context.body = []
            } else {
                context.body.append(contentsOf: UnsafeRawBufferPointer(start: uploadData, count: size))
            }
            return .YES
        }
        switch context.phase {
        case .receivingBody:
            Engine.withConnectionState(connection) { $0.dispatched() }
            if let upload = context.upload {
                upload.complete()
                return awaitHandler(context)
            }
            return dispatch(context, url: url, method: method, version: version)
        case .suspended:
            // Called again after the resume.
            switch context.exchange.withLock({ $0.outcome }) {
            case .respond(let response)?:
                return queue(response, on: context)
            case .abandoned?, nil:
                return queue(Engine.shuttingDown, on: context, close: true)
            case .clientGone?:
                // Nobody to answer: close the connection, so the request ends aborted.
                context.phase = .answered
                return .NO
            }
        case .answered, .receivingHeaders, .ended:
            return .YES
        }
    }


    func connection(
        _ connection: OpaquePointer, _ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
        _ code: MHD_ConnectionNotificationCode
    ) {
        switch code {
        case .CONNECTION_NOTIFY_STARTED:
            acceptBackOff.succeeded()
            let state = ConnectionState(fd: mhds_connection_fd(connection))
            slot.pointee = Unmanaged.passRetained(state).toOpaque()
            supervisor.opened(state)
        default:
            guard let raw = slot.pointee else { return }
            slot.pointee = nil
            supervisor.closed(Unmanaged<ConnectionState>.fromOpaque(raw).takeRetainedValue())
        }
    }

    /// Runs `body` with the connection's tracked state, if any (borrowed: no retain/release).
    static func withConnectionState(_ connection: OpaquePointer, _ body: (ConnectionState) -> Void) {
        guard let raw = mhds_connection_socket_context(connection) else { return }
        Unmanaged<ConnectionState>.fromOpaque(raw)._withUnsafeGuaranteedRef(body)
    }

    /// A message from the engine. Most are logged at debug level. One is acted on: a worker
    /// with no connection of its own that cannot accept for lack of descriptors retries at once
    /// in a busy loop (libmicrohttpd 0.9.75 has no back-off there), so its thread waits here,
    /// longer each time, until a connection is accepted again.
    func engineMessage(_ text: String) {
        lastEngineMessage.withLock { $0 = text }
        if text.hasPrefix("Hit process or system resource limit at FIRST connection") {
            if acceptBackOff.failed() {
                logger.warning(
                    "\(config.name): cannot accept connections: out of file descriptors; backing off",
                    metadata: ["server": "\(config.name)", "openFileLimit": "\(System.openFileLimit.soft)"])
            }
            acceptBackOff.wait()
            return
        }
        logger.debug("libmicrohttpd: \(text.trimmingTrailingNewlines)", metadata: ["server": "\(config.name)"])
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var copy = self
        while copy.last == "\n" || copy.last == "\r" { copy.removeLast() }
        return copy
    }
}

// MARK: C entry points (no captures: the engine comes back through `cls`)

let accessCallback: MHD_AccessHandlerCallback = {
    cls, connection, url, method, version, uploadData, uploadSize, slot in
    // The engine outlives its daemon: no retain/release needed around the call.
    Unmanaged<Engine>.fromOpaque(cls!)._withUnsafeGuaranteedRef {
        $0.access(connection!, url!, method!, version!, uploadData, uploadSize!, slot!)
    }
}

let completedCallback: MHD_RequestCompletedCallback = { cls, _, slot, code in
    Unmanaged<Engine>.fromOpaque(cls!)._withUnsafeGuaranteedRef { $0.completed(slot, code) }
}

let uriCallback: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer? = {
    cls, uri, connection in
    guard let cls, let connection else { return nil }
    return Unmanaged<Engine>.fromOpaque(cls)._withUnsafeGuaranteedRef { $0.began(connection, target: uri) }
}

let connectionCallback: MHD_NotifyConnectionCallback = { cls, connection, slot, code in
    guard let cls, let connection, let slot else { return }
    Unmanaged<Engine>.fromOpaque(cls)._withUnsafeGuaranteedRef { $0.connection(connection, slot, code) }
}

/// The log callback, as the value of the `EXTERNAL_LOGGER` option. The C function pointer is
/// made inside this body, never as a stored constant: its type mentions `va_list`, and a
/// declaration of such a type (at any access level) is written into the module file, where the
/// symbol-graph extractor behind the documentation build cannot read it back.
var logCallbackAddress: Int {
    let callback: MHD_LogCallback = { cls, format, arguments in
        guard let cls, let format else { return }
        var buffer = [CChar](repeating: 0, count: 512)
        guard let arguments else { return }
        _ = vsnprintf(&buffer, buffer.count, format, arguments)
        Unmanaged<Engine>.fromOpaque(cls).takeUnretainedValue().engineMessage(System.string(buffer))
    }
    return unsafeBitCast(callback, to: Int.self)
}
