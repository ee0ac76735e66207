/// Routes requests to handlers by method and path pattern.
///
/// Patterns are literal segments, `:name` parameters and a trailing `*` wildcard. Literal
/// segments win over parameters, parameters over the wildcard. An unknown path answers 404,
/// a known path with another method 405 with an `Allow` header, and `HEAD` is answered by the
/// `GET` route without a body.
///
/// ```swift
/// actor Store { func user(id: String) -> User { User(id: Int(id) ?? 0, name: "Ada") } }
/// let store = Store()
///
/// var router = Router()
/// router.get("/api/hello") { _ in .text("hello") }                    // runs inline
/// router.get("/users/:id") { request in
///     let user = await store.user(id: request.parameters["id"]!)      // async: may suspend
///     return try .json(user)
/// }
/// router.get("/static/*") { request in .text(request.parameters["*"]!) }
/// ```
///
/// A handler closure without `await` is run directly on the server's I/O thread (fast path);
/// one that awaits runs as a Swift task while its connection is suspended, so slow handlers
/// never block other requests.
public struct Router: HTTPHandler {
    /// How a route's chain is called. An inline chain takes the request `inout`, so an inline
    /// middleware changes it in place instead of copying it (a `Request` copy retains a dozen
    /// references). An async chain borrows it: the user's closure is stored as is, since
    /// another async layer around it would cost more than the copy it saves.
    enum Handler: Sendable {
        case sync(@Sendable (inout Request) throws -> Response)
        case async(@Sendable (Request) async throws -> Response)
    }

    /// A registered handler and the index of its route in ``routeLabels``.
    struct Entry: Sendable {
        let handler: Handler
        let route: Int

        /// The handler inside `stack`, all with `json` in effect.
        func wrapped(in stack: [any Middleware], json: JSONCoding?) -> Entry {
            let chain = MiddlewareChain.compose(stack, around: handler)
            return Entry(handler: json.map { $0.binding(chain) } ?? chain, route: route)
        }
    }

    /// The result of looking a request up.
    enum Resolution {
        case handler(Handler, route: Int)
        case answered(Response)
        case notFound
        case methodNotAllowed(allow: String)
    }

    final class Node: @unchecked Sendable {
        var literals: [String: Node] = [:]
        var parameter: (name: String, node: Node)?
        var wildcard: MethodTable<Entry> = [:]
        var handlers: MethodTable<Entry> = [:]

        /// A deep copy with every entry transformed.
        func mapEntries(_ transform: (Entry) -> Entry) -> Node {
            let node = Node()
            node.literals = literals.mapValues { $0.mapEntries(transform) }
            node.parameter = parameter.map { ($0.name, $0.node.mapEntries(transform)) }
            node.wildcard = wildcard.mapValues(transform)
            node.handlers = handlers.mapValues(transform)
            return node
        }

        func copy() -> Node {
            let node = Node()
            node.literals = literals.mapValues { $0.copy() }
            node.parameter = parameter.map { ($0.name, $0.node.copy()) }
            node.wildcard = wildcard
            node.handlers = handlers
            return node
        }
    }

    /// Exact paths without parameters, for a single dictionary lookup on the hot path.
    private var exact: [String: MethodTable<Entry>] = [:]
    private var root = Node()
    private var interceptors: [@Sendable (Request) -> Response?] = []
    /// Middleware around every request this router answers (first = outermost).
    private var middleware: [any Middleware] = []
    /// The routes already carry ``middleware`` (see ``compiled()``).
    private var isCompiled = false

    /// How this router's handlers and middleware write and read JSON (``JSONCoding/standard``
    /// when `nil`). A mounted router or a group keeps its own.
    ///
    /// ```swift
    /// router.json = JSONCoding(requiresJSONContentType: false)
    /// ```
    public var json: JSONCoding?
    /// Method and pattern of every route, indexed by route number (for metrics).
    private(set) var routeLabels: [(method: String, pattern: String)] = []
    /// The body size limit of each route that receives its body as a stream (see
    /// ``on(_:_:streamingBodyUpTo:use:)``), by route number; `nil` for buffered bodies.
    private(set) var streamingLimits: [Int?] = []
    /// Whether any route streams its body: only then is a request routed as soon as its
    /// headers arrive. Kept up to date by `add`, so the per-request check is one load.
    private(set) var hasStreamingRoutes = false
    /// The methods of the routes that stream their body (`HEAD` stands for itself only; a
    /// streaming `GET` route answers it too, see ``mayStream(_:)``).
    private var streamingMethods: [HTTPMethod] = []

    /// Whether a request with `method` can reach a route that streams its body: when not, the
    /// engine need not route it as soon as its headers arrive. One short scan, no allocation.
    func mayStream(_ method: HTTPMethod) -> Bool {
        guard hasStreamingRoutes else { return false }
        for candidate in streamingMethods where candidate == method || (method == .head && candidate == .get) {
            return true
        }
        return false
    }

    /// Creates an empty router.
    public init() {}

    // MARK: Registering routes

    /// Adds a route whose handler runs inline on the I/O thread (it must not block).
    ///
    /// ```swift
    /// router.on(HTTPMethod("PURGE")!, "/cache") { _ in Response(status: .noContent) }
    /// ```
    public mutating func on(
        _ method: HTTPMethod, _ path: String, use handler: @escaping @Sendable (Request) throws -> Response
    ) {
        add(method, path, .sync { try handler($0) })
    }

    /// Adds a route whose handler is asynchronous; it runs as a task while the connection waits.
    ///
    /// ```swift
    /// router.on(.get, "/slow") { _ in try await Task.sleep(for: .seconds(1)); return .text("done") }
    /// ```
    public mutating func on(
        _ method: HTTPMethod, _ path: String, use handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        add(method, path, .async(handler))
    }

    /// Adds an ``HTTPHandler`` for `method` and `path`.
    ///
    /// ```swift
    /// struct Echo: HTTPHandler {
    ///     func respond(to request: Request) async throws -> Response {
    ///         Response(status: .ok, body: request.body)
    ///     }
    /// }
    /// router.on(.post, "/echo", handler: Echo())
    /// ```
    public mutating func on(_ method: HTTPMethod, _ path: String, handler: some HTTPHandler) {
        add(method, path, .async { try await handler.respond(to: $0) })
    }

    /// Adds a route that receives its body as it arrives, as ``Request/bodyStream``, instead
    /// of whole in ``Request/body``: for uploads larger than memory should hold. The handler
    /// starts as soon as the headers are in; the connection is suspended while it is behind
    /// (at most about ``RequestBodyStream/bufferSize`` bytes wait for it), so a 1 GiB upload can
    /// be written to disk with bounded memory.
    ///
    /// `maxSize` replaces the server's `maxBodySize` for this route: a `Content-Length` above it
    /// is answered 413 at once; a chunked body that grows past it makes the stream throw
    /// ``HTTPError`` 413 (answered once the client has sent its body). A handler that returns
    /// before reading the whole body gets its answer sent after the rest is read and dropped.
    ///
    /// ```swift
    /// router.on(.put, "/files/:name", streamingBodyUpTo: 1 << 30) { request in
    ///     var received = 0
    ///     for try await chunk in request.bodyStream { received += chunk.count }
    ///     return try .json(["bytes": received])
    /// }
    /// ```
    public mutating func on(
        _ method: HTTPMethod, _ path: String, streamingBodyUpTo maxSize: Int,
        use handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        precondition(maxSize >= 0, "a negative body size limit")
        add(method, path, .async(handler), streamingLimit: maxSize)
    }

    /// `POST` route that receives its body as a stream (see ``on(_:_:streamingBodyUpTo:use:)``).
    ///
    /// ```swift
    /// router.post("/upload", streamingBodyUpTo: 10 << 30) { request in
    ///     var count = 0
    ///     for try await chunk in request.bodyStream { count += chunk.count }
    ///     return .text("\(count) bytes")
    /// }
    /// ```
    public mutating func post(
        _ path: String, streamingBodyUpTo maxSize: Int, use handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        on(.post, path, streamingBodyUpTo: maxSize, use: handler)
    }

    /// `PUT` route that receives its body as a stream (see ``on(_:_:streamingBodyUpTo:use:)``).
    ///
    /// ```swift
    /// router.put("/blobs/:id", streamingBodyUpTo: 1 << 30) { request in
    ///     for try await _ in request.bodyStream {}
    ///     return Response(status: .noContent)
    /// }
    /// ```
    public mutating func put(
        _ path: String, streamingBodyUpTo maxSize: Int, use handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        on(.put, path, streamingBodyUpTo: maxSize, use: handler)
    }

    /// `GET` route (also answers `HEAD`). `on(_:_:use:)` (the inline form) describes inline handlers.
    public mutating func get(_ path: String, use handler: @escaping @Sendable (Request) throws -> Response) {
        on(.get, path, use: handler)
    }
    /// `GET` route with an async handler (also answers `HEAD`).
    public mutating func get(_ path: String, use handler: @escaping @Sendable (Request) async throws -> Response) {
        on(.get, path, use: handler)
    }
    /// `POST` route.
    public mutating func post(_ path: String, use handler: @escaping @Sendable (Request) throws -> Response) {
        on(.post, path, use: handler)
    }
    /// `POST` route with an async handler.
    public mutating func post(_ path: String, use handler: @escaping @Sendable (Request) async throws -> Response) {
        on(.post, path, use: handler)
    }
    /// `PUT` route.
    public mutating func put(_ path: String, use handler: @escaping @Sendable (Request) throws -> Response) {
        on(.put, path, use: handler)
    }
    /// `PUT` route with an async handler.
    public mutating func put(_ path: String, use handler: @escaping @Sendable (Request) async throws -> Response) {
        on(.put, path, use: handler)
    }
    /// `PATCH` route.
    public mutating func patch(_ path: String, use handler: @escaping @Sendable (Request) throws -> Response) {
        on(.patch, path, use: handler)
    }
    /// `PATCH` route with an async handler.
    public mutating func patch(_ path: String, use handler: @escaping @Sendable (Request) async throws -> Response) {
        on(.patch, path, use: handler)
    }
    /// `DELETE` route.
    public mutating func delete(_ path: String, use handler: @escaping @Sendable (Request) throws -> Response) {
        on(.delete, path, use: handler)
    }
    /// `DELETE` route with an async handler.
    public mutating func delete(_ path: String, use handler: @escaping @Sendable (Request) async throws -> Response) {
        on(.delete, path, use: handler)
    }

    /// Runs `check` before every request this router sees, matched or not, in the order added.
    /// Returning a response answers the request with it; returning `nil` lets it through.
    /// Interceptors run inline, so they must be quick and must not block.
    ///
    /// ```swift
    /// let key = "s3cret"
    /// router.intercept { request in
    ///     request.headers["X-Api-Key"] == key ? nil : .error(.unauthorized)
    /// }
    /// ```
    public mutating func intercept(_ check: @escaping @Sendable (Request) -> Response?) {
        interceptors.append(check)
    }

    /// Answers 401 (with `WWW-Authenticate: Bearer`) to every request of this router without
    /// `Authorization: Bearer <token>`: adds a ``BearerTokenMiddleware``.
    ///
    /// ```swift
    /// if let token = ProcessInfo.processInfo.environment["ADMIN_TOKEN"] {
    ///     router.requireBearerToken(token)
    /// }
    /// ```
    public mutating func requireBearerToken(_ token: String, realm: String = "admin") {
        add(middleware: BearerTokenMiddleware(token: token, realm: realm))
    }

    /// Adds every route of `other` under `prefix`. The middleware of `other` (such as
    /// ``requireBearerToken(_:realm:)``) wrap its routes only: it becomes a group. Its
    /// interceptors apply to this whole router: mounting never drops a check.
    ///
    /// ```swift
    /// var api = Router(); api.get("/hello") { _ in .text("hi") }
    /// router.mount("/api", api)      // GET /api/hello
    /// ```
    public mutating func mount(_ prefix: String, _ other: Router) {
        interceptors += other.interceptors
        for (path, handlers) in other.routes() {
            for (method, entry) in handlers {
                let chain = MiddlewareChain.compose(other.middleware, around: entry.handler)
                add(
                    method, Self.join(prefix, path), other.json.map { $0.binding(chain) } ?? chain,
                    streamingLimit: other.streamingLimits[entry.route])
            }
        }
    }

    // MARK: Middleware

    /// Adds `middleware` around every request this router answers — its routes, and its 404,
    /// 405 and interceptor answers — after (inside) the middleware added before it, whether the
    /// routes were added before or after.
    ///
    /// ```swift
    /// router.add(middleware: RequestIDMiddleware())
    /// router.add(middleware: CORSMiddleware(allowedOrigins: .list(["https://app.example.com"])))
    /// ```
    public mutating func add(middleware: any Middleware) {
        self.middleware.append(middleware)
    }

    /// Adds the routes `build` registers, under `prefix`, wrapped in `middleware` (and in any
    /// middleware `build` adds): middleware for a group of routes only. This router's own
    /// middleware still wrap them, outside the group's.
    ///
    /// ```swift
    /// router.group("/admin", middleware: [BearerTokenMiddleware(token: "s3cret")]) { admin in
    ///     admin.get("/stats") { _ in .text("only with the token") }
    /// }
    /// router.get("/public") { _ in .text("for everyone") }
    /// ```
    public mutating func group(
        _ prefix: String = "/", middleware: [any Middleware] = [], _ build: (inout Router) -> Void
    ) {
        var group = Router()
        group.middleware = middleware
        build(&group)
        mount(prefix, group)
    }

    /// The router the server runs: every route's handler wrapped in the router's middleware.
    /// `outermost` wraps everything, outside the router's own middleware (the server's tracing).
    func compiled(outermost: [any Middleware] = []) -> Router {
        guard !middleware.isEmpty || !outermost.isEmpty || json != nil, !isCompiled else { return self }
        var copy = self
        copy.isCompiled = true
        copy.middleware = outermost + middleware
        let (stack, json) = (copy.middleware, json)
        let wrap = { (entry: Entry) in entry.wrapped(in: stack, json: json) }
        copy.exact = exact.mapValues { $0.mapValues(wrap) }
        copy.root = root.mapEntries(wrap)
        return copy
    }

    /// An answer that no route gave (404, 405, an interceptor's) through the router's
    /// middleware; `nil` without middleware.
    func fallback(_ answer: Response) -> Handler? {
        guard !middleware.isEmpty else { return nil }
        let chain = MiddlewareChain.compose(middleware, around: .sync { _ in answer })
        return json.map { $0.binding(chain) } ?? chain
    }

    // MARK: Internals

    private mutating func add(_ method: HTTPMethod, _ path: String, _ handler: Handler, streamingLimit: Int? = nil) {
        let segments: [String] = Self.split(path)
        let entry = Entry(handler: handler, route: routeLabels.count)
        routeLabels.append((method.rawValue, "/" + segments.joined(separator: "/")))
        streamingLimits.append(streamingLimit)
        if streamingLimit != nil {
            hasStreamingRoutes = true
            if !streamingMethods.contains(method) { streamingMethods.append(method) }
        }
        if !segments.contains(where: { $0.hasPrefix(":") || $0 == "*" }) {
            exact["/" + segments.joined(separator: "/"), default: [:]][method] = entry
            return
        }
        if !isKnownUniquelyReferenced(&root) { root = root.copy() }
        var node = root
        for (index, segment) in segments.enumerated() {
            if segment == "*" {
                precondition(index == segments.count - 1, "'*' must be the last segment of \(path)")
                node.wildcard[method] = entry
                return
            } else if segment.hasPrefix(":") {
                let name = String(segment.dropFirst())
                if let existing = node.parameter {
                    precondition(existing.name == name, "conflicting parameter names :\(existing.name) and :\(name) in \(path)")
                    node = existing.node
                } else {
                    let child = Node()
                    node.parameter = (name, child)
                    node = child
                }
            } else {
                if let child = node.literals[segment] { node = child } else {
                    let child = Node()
                    node.literals[segment] = child
                    node = child
                }
            }
        }
        node.handlers[method] = entry
    }

    /// Every registered pattern with its handlers (used by ``mount(_:_:)``).
    private func routes() -> [(path: String, handlers: MethodTable<Entry>)] {
        var out: [(path: String, handlers: MethodTable<Entry>)] = exact.map { ($0.key, $0.value) }
        func walk(_ node: Node, _ prefix: String) {
            if !node.handlers.isEmpty { out.append((prefix.isEmpty ? "/" : prefix, node.handlers)) }
            if !node.wildcard.isEmpty { out.append((prefix + "/*", node.wildcard)) }
            for (literal, child) in node.literals { walk(child, prefix + "/" + literal) }
            if let (name, child) = node.parameter { walk(child, prefix + "/:" + name) }
        }
        walk(root, "")
        return out
    }

    /// Finds the handler for `request`, filling in `request.parameters`.
    func resolve(_ request: inout Request) -> Resolution {
        for check in interceptors {
            if let response = check(request) { return .answered(response) }
        }
        if let handlers = exact[request.path] ?? exact[Self.normalize(request.path)] {
            return pick(handlers, &request)
        }
        let segments = Self.segments(request.path)
        var parameters = Request.Parameters()
        if let handlers = Self.match(root, segments[...], &parameters) {
            request.parameters = parameters
            return pick(handlers, &request)
        }
        return .notFound
    }

    private func pick(_ handlers: MethodTable<Entry>, _ request: inout Request) -> Resolution {
        let method = request.method
        if let entry = handlers[method] ?? (method == .head ? handlers[.get] : nil) {
            request.context.route = routeLabels[entry.route].pattern
            return .handler(entry.handler, route: entry.route)
        }
        var allowed = Set(handlers.methods.map(\.rawValue))
        if allowed.contains("GET") { allowed.insert("HEAD") }
        return .methodNotAllowed(allow: allowed.sorted().joined(separator: ", "))
    }

    private static func match(
        _ node: Node, _ segments: ArraySlice<Substring>, _ parameters: inout Request.Parameters
    ) -> MethodTable<Entry>? {
        guard let segment = segments.first else {
            if !node.handlers.isEmpty { return node.handlers }
            return nil
        }
        let rest = segments.dropFirst()
        if let child = node.literals[String(segment)], let found = match(child, rest, &parameters) {
            return found
        }
        if let (name, child) = node.parameter {
            parameters.append(name, String(segment))
            if let found = match(child, rest, &parameters) { return found }
            parameters.removeLast()
        }
        if !node.wildcard.isEmpty {
            parameters.append("*", segments.joined(separator: "/"))
            return node.wildcard
        }
        return nil
    }

    static func segments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    static func split(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    static func normalize(_ path: String) -> String {
        "/" + (split(path) as [String]).joined(separator: "/")
    }

    static func join(_ prefix: String, _ path: String) -> String {
        normalize(prefix + "/" + path)
    }

    // MARK: HTTPHandler

    /// Answers `request` as a server running this router would (middleware, routing, error
    /// mapping), without the server: when the router is nested, or called directly in a test.
    /// It never throws: a thrown error is answered by the error mapping.
    ///
    /// ```swift
    /// let response = try await router.respond(to: Request(method: .get, path: "/hello"))
    /// ```
    public func respond(to request: Request) async throws -> Response {
        let router = compiled()
        var request = request
        let handler: Handler
        switch router.resolve(&request) {
        case .handler(let resolved, _): handler = resolved
        case .answered(let response): handler = router.fallback(response) ?? .sync { _ in response }
        case .notFound: handler = router.fallback(Router.notFoundResponse) ?? .sync { _ in Router.notFoundResponse }
        case .methodNotAllowed(let allow):
            let response = Router.methodNotAllowed(allow: allow)
            handler = router.fallback(response) ?? .sync { _ in response }
        }
        return await MiddlewareChain.answering(handler)(request)
    }

    static let notFoundResponse = Response.error(.notFound).reusable()

    static func methodNotAllowed(allow: String) -> Response {
        var response = Response.error(.methodNotAllowed)
        response.headers[.allow] = allow
        return response
    }
}

/// Compares two byte strings in time that depends only on their lengths, not on where they differ.
func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    var difference = UInt8(truncatingIfNeeded: lhs.count ^ rhs.count)
    if lhs.count != rhs.count { difference |= 1 }
    let count = max(lhs.count, rhs.count)
    for index in 0..<count {
        let a = index < lhs.count ? lhs[index] : 0
        let b = index < rhs.count ? rhs[index] : 0
        difference |= a ^ b
    }
    return difference == 0
}
