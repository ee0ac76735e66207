import CMicroHTTPD
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// From a complete request to a queued response: routing, inline handlers, probes, errors.
extension Engine {
    func dispatch(
        _ context: EngineRequest, url: UnsafePointer<CChar>, method: UnsafePointer<CChar>,
        version: UnsafePointer<CChar>
    ) -> MHD_Result {
        if context.bodyOverflow {
            return queue(RequestGuard.contentTooLarge, on: context, close: true)
        }
        var request = makeRequest(context, url: url, method: method, version: version)
        if let level = config.accessLogLevel, logger.logLevel <= level {
            context.accessLog = (
                request.method.rawValue, request.path,
                request.headers[.requestID].map { String($0.prefix(128)) } ?? "\(config.name)-\(requestIDs.add(1, ordering: .relaxed).newValue)"
            )
        }
        if let health = config.health {
            if request.path == health.livenessPath { return queue(Engine.aliveProbe, on: context) }
            if request.path == health.readinessPath {
                return queue(isReady ? Engine.readyProbe : Engine.drainingProbe, on: context)
            }
        }
        // The router is used in place (`router?.`): binding it with `if let` would copy it.
        switch router?.resolve(&request) {
        case .handler(let handler, let route)?:
            context.route = route
            // An async chain takes the request over (moved, not copied).
            if case .async(let body) = handler { return runAsync(context, consume request, body) }
            return run(handler, context, &request)
        case .answered(let response)?:
            return answer(response, context, &request)
        case .notFound?:
            return answer(Router.notFoundResponse, context, &request)
        case .methodNotAllowed(let allow)?:
            return answer(Router.methodNotAllowed(allow: allow), context, &request)
        case nil:
            let handler = self.handler!
            return runAsync(context, consume request) { try await handler.respond(to: $0) }
        }
    }

    /// Runs a route's chain: inline on this thread, or as a task (see ``runAsync(_:_:_:)``).
    private func run(_ handler: Router.Handler, _ context: EngineRequest, _ request: inout Request) -> MHD_Result {
        switch handler {
        case .sync(let handler):
            let response: Response
            do {
                response = try handler(&request)
            } catch {
                response = .failure(error, for: request)
            }
            return queue(response, on: context)
        case .async(let handler):
            return runAsync(context, request, handler)
        }
    }

    /// An answer no route gave (404, 405, an interceptor's), through the router's middleware.
    private func answer(_ response: Response, _ context: EngineRequest, _ request: inout Request) -> MHD_Result {
        guard let chain = router?.fallback(response) else { return queue(response, on: context) }
        return run(chain, context, &request)
    }

    func makeRequest(
        _ context: EngineRequest, url: UnsafePointer<CChar>, method: UnsafePointer<CChar>,
        version: UnsafePointer<CChar>
    ) -> Request {
        let connection = context.connection
        var path = String(cString: url)
        var headers = Request.HeaderStorage.raw(context.headers)
        if url.pointee != 47 /* / */, let target = RequestTarget.absoluteForm(path) {
            path = target.path
            var fields = context.headers.fields
            fields[.hostField] = target.authority
            headers = .fields(fields)
        }
        let body = context.body
        context.body = []
        return Request(
            method: context.method,
            path: path,
            query: context.query.isEmpty ? QueryParameters() : QueryParameters(parsing: context.query),
            headers: headers,
            body: body,
            remoteAddress: nil,
            peer: PeerAddress(mhds_connection_client_address(connection)),
            version: Engine.versionString(version),
            logger: logger)
    }

    /// The request line's method: the common ones compared as C strings and shared, without
    /// making a Swift string first; any other must be a token (RFC 9110 §9.1), else `nil`.
    static func method(_ method: UnsafePointer<CChar>) -> HTTPMethod? {
        switch strlen(method) {
        case 3 where strcmp(method, "GET") == 0: return .get
        case 3 where strcmp(method, "PUT") == 0: return .put
        case 4 where strcmp(method, "POST") == 0: return .post
        case 4 where strcmp(method, "HEAD") == 0: return .head
        case 5 where strcmp(method, "PATCH") == 0: return .patch
        case 6 where strcmp(method, "DELETE") == 0: return .delete
        case 7 where strcmp(method, "OPTIONS") == 0: return .options
        default: return HTTPMethod(String(cString: method))
        }
    }

    /// The request line's version, without allocating for the common ones.
    static func versionString(_ version: UnsafePointer<CChar>) -> String {
        if strcmp(version, "HTTP/1.1") == 0 { return http11 }
        if strcmp(version, "HTTP/1.0") == 0 { return http10 }
        return String(cString: version)
    }
    private static let http11 = "HTTP/1.1"
    private static let http10 = "HTTP/1.0"

    /// The request's header fields, and what the request guard checks about them (see
    /// ``HeaderFacts``).
    static func headers(of connection: OpaquePointer) -> (fields: RawHeaderFields, facts: HeaderFacts) {
        var collection = HeaderCollection()
        collection.fields.reserve(256)
        withUnsafeMutablePointer(to: &collection) { pointer in
            _ = MHD_get_connection_values(connection, .HEADER_KIND, headerIterator, pointer)
        }
        return (RawHeaderFields(collection.fields), collection.facts)
    }

    /// A request line arrived: the request exists from here on (it counts as in flight, so a
    /// drain waits for it). The raw target is checked before the engine decodes it.
    ///
    /// The query string is taken here and parsed in Swift; the engine is left an empty one.
    /// The engine would store every parameter in the connection's fixed memory pool and, when a
    /// long query (a few hundred parameters) does not fit, neither answer nor complete the
    /// request (libmicrohttpd 0.9.75 loses its own 431 when it goes on to read the headers).
    func began(_ connection: OpaquePointer, target: UnsafePointer<CChar>?) -> UnsafeMutableRawPointer {
        let context = EngineRequest(connection: connection, stats: stats)
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

    func queue(_ response: Response, on context: EngineRequest, close: Bool = false) -> MHD_Result {
        context.phase = .answered
        context.status = response.status.code
        // The answer to a thrown error with a server-error status counts as a handler failure,
        // wherever the error was mapped (a handler, a middleware).
        if response.error != nil && response.status.isServerError {
            stats.handlerFailed()
            metrics.handlerFailed(route: context.route)
        }
        // The ID a middleware gave the request (RequestIDMiddleware) is the one to log.
        if context.accessLog != nil, let id = response.headers[.requestID] {
            context.accessLog?.requestID = String(id.prefix(128))
        }
        let closing = close || closesConnections.load(ordering: .relaxed)
        if let source = response.storage.source {
            return queueProduced(response, source, on: context, closing: closing)
        }
        if let native = response.native, !closing {
            return MHD_queue_response(context.connection, native.status, native.pointer)
        }
        let transient = NativeResponse(response.storage, closeConnection: closing)
        return MHD_queue_response(context.connection, transient.status, transient.pointer)
    }

    // Probes answer for this moment only: no cache may keep a "ready" through a drain.
    static let aliveProbe = Response.json(raw: #"{"status":"alive"}"#).uncached().reusable()
    static let readyProbe = Response.json(raw: #"{"status":"ready"}"#).uncached().reusable()
    static let drainingProbe = Response.json(raw: #"{"status":"draining"}"#, status: .serviceUnavailable).uncached()
        .reusable()
    static let shuttingDown = Response.error(.serviceUnavailable, message: "server is shutting down")
}

/// The header fields as the engine parsed them, checked against RFC 9112 §5 on the way, and
/// what ``RequestGuard`` needs to know about them (gathered here, so the guard does not walk
/// the fields again).
///
/// libmicrohttpd 0.9.75 keeps what a strict parser must reject: a name with whitespace before
/// the colon (`Content-Length : 5` is stored as the name `"Content-Length "`, so the length is
/// ignored and the body read as the next request), a bare CR inside a name, and obs-fold
/// continuation lines, which it appends to the *name* of the field above
/// (`Transfer-Encoding:` + ` chunked` becomes the name `Transfer-EncodingChunked`). A name must
/// be a token, and its value must follow it in the engine's read buffer with nothing but the
/// colon and optional whitespace in between: a field that was moved or extended by a fold fails
/// that test.
///
/// The fields themselves are kept as bytes (``RawHeaderFields``) and become `HTTPFields` only
/// when read. `Transfer-Encoding` is compared as sent: the engine reads a chunked body only for
/// exactly `chunked` (any case).
struct HeaderFacts {
    var malformed = false
    var inexactCoding = false
    /// How many `Host` fields.
    var hosts = 0
    /// How many `Content-Length` fields, and the last one's value as sent.
    var lengthFields = 0
    var length: String?
    /// How many `Transfer-Encoding` fields, and their values joined by commas.
    var codingFields = 0
    var coding: String?
}

/// What the engine's field iterator fills in.
private struct HeaderCollection {
    var fields = RawHeaderFields.Builder()
    var facts = HeaderFacts()
}

private let headerIterator: MHD_KeyValueIterator = { cls, _, key, value in
    guard let cls, let key else { return .YES }
    let collection = cls.assumingMemoryBound(to: HeaderCollection.self)
    let nameLength = strlen(key)
    if !RequestGuard.isToken(UnsafeRawBufferPointer(start: key, count: nameLength)) {
        // A name that is not a token is reported and the request rejected; its field is not kept.
        collection.pointee.facts.malformed = true
        return .YES
    }
    if let value {
        let afterColon = UnsafeRawPointer(key) + nameLength + 1
        let gap = UnsafeRawPointer(value) - afterColon
        if gap < 0 || gap > 256
            || !UnsafeRawBufferPointer(start: afterColon, count: gap).allSatisfy({ $0 == 32 || $0 == 9 })
        {
            collection.pointee.facts.malformed = true
        }
    }
    // The fields that frame the body are refused with a control byte in their value (other
    // fields have control bytes replaced by spaces when they are built, as HTTPFields does).
    func hasControlByte(_ value: UnsafePointer<CChar>?) -> Bool {
        guard let value else { return false }
        return UnsafeRawBufferPointer(start: value, count: strlen(value)).contains { ($0 < 32 && $0 != 9) || $0 == 127 }
    }
    switch nameLength {
    case 4 where strcasecmp(key, "Host") == 0:
        collection.pointee.facts.hosts += 1
    case 14 where strcasecmp(key, "Content-Length") == 0:
        collection.pointee.facts.lengthFields += 1
        collection.pointee.facts.length = value.map { String(cString: $0) } ?? ""
        if hasControlByte(value) { collection.pointee.facts.malformed = true }
    case 17 where strcasecmp(key, "Transfer-Encoding") == 0:
        if value.map({ strcasecmp($0, "chunked") != 0 }) ?? true { collection.pointee.facts.inexactCoding = true }
        let text = value.map { String(cString: $0) } ?? ""
        collection.pointee.facts.coding = collection.pointee.facts.coding.map { $0 + "," + text } ?? text
        collection.pointee.facts.codingFields += 1
        if hasControlByte(value) { collection.pointee.facts.malformed = true }
    default:
        break
    }
    collection.pointee.fields.append(
        name: UnsafeRawBufferPointer(start: key, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: value.map { strlen($0) } ?? 0))
    return .YES
}
