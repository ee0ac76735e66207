import CMicroHTTPD
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// From a complete request to a queued response: routing, inline handlers, probes, errors.
extension Engine {
    func dispatch(
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
            if request.path == health.livenessPath { return queue(Engine.aliveProbe, on: context) }
            if request.path == health.readinessPath {
                return queue(readinessWithdrawn.load(ordering: .relaxed) ? Engine.drainingProbe : Engine.readyProbe, on: context)
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

    func makeRequest(
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
    func began(_ connection: OpaquePointer, target: UnsafePointer<CChar>?) -> UnsafeMutableRawPointer {
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
    func failure(_ error: any Error, _ request: Request, route: Int) -> Response {
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

    func queue(_ response: Response, on context: RequestContext, close: Bool = false) -> MHD_Result {
        context.phase = .answered
        context.status = response.status.code
        let closing = close || closesConnections.load(ordering: .relaxed)
        if let native = response.native, !closing {
            return MHD_queue_response(context.connection, native.status, native.pointer)
        }
        let transient = NativeResponse(response.storage, closeConnection: closing)
        return MHD_queue_response(context.connection, transient.status, transient.pointer)
    }

    static let internalError = Response.error(.internalServerError).reusable()
    static let aliveProbe = Response.json(raw: #"{"status":"alive"}"#).reusable()
    static let readyProbe = Response.json(raw: #"{"status":"ready"}"#).reusable()
    static let drainingProbe = Response.json(raw: #"{"status":"draining"}"#, status: .serviceUnavailable).reusable()
    static let shuttingDown = Response.error(.serviceUnavailable, message: "server is shutting down")
}

private let headerIterator: MHD_KeyValueIterator = { cls, _, key, value in
    guard let cls, let key else { return .YES }
    let headers = cls.assumingMemoryBound(to: HTTPHeaders.self)
    headers.pointee.add(name: String(cString: key), value: value.map { String(cString: $0) } ?? "")
    return .YES
}
