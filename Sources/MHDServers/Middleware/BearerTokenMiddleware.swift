/// Answers 401 (with `WWW-Authenticate: Bearer realm="..."`) to every request without
/// `Authorization: Bearer <token>` for one of its tokens, and tells the handlers who called
/// (``RequestContext/identity``). Added to a router, it guards the router's 404 and 405 answers
/// too, so a caller without a token cannot learn which routes exist.
///
/// Tokens are compared in time that depends only on their lengths, every token every time, and
/// are never logged or echoed. Several tokens let one be rotated without downtime.
///
/// ```swift
/// router.add(middleware: BearerTokenMiddleware(tokens: ["t0k3n-ci": "ci", "t0k3n-ops": "ops"]))
/// router.get("/admin/whoami") { request in .text(request.context.identity ?? "") }
/// ```
public struct BearerTokenMiddleware: InlineMiddleware {
    private let tokens: [(bytes: [UInt8], identity: String)]
    private let denied: Response

    /// Accepts each token of `tokens`, naming its caller by the token's value in the dictionary.
    ///
    /// ```swift
    /// let check = BearerTokenMiddleware(tokens: ["s3cret": "deploy-bot"], realm: "admin")
    /// ```
    public init(tokens: [String: String], realm: String = "api") {
        self.tokens = tokens.sorted { $0.value < $1.value }.map { (Array($0.key.utf8), $0.value) }
        var denied = Response.error(.unauthorized, message: "a valid bearer token is required")
        denied.headers["WWW-Authenticate"] = "Bearer realm=\"\(realm)\""
        self.denied = denied.reusable()
    }

    /// Accepts `token`; its callers' identity is `identity`.
    ///
    /// ```swift
    /// let check = BearerTokenMiddleware(token: "s3cret", realm: "admin")
    /// ```
    public init(token: String, realm: String = "api", identity: String = "bearer") {
        self.init(tokens: [token: identity], realm: realm)
    }

    public func prepare(_ request: inout Request) throws -> Response? {
        guard let header = request.headers["Authorization"] else { return denied }
        let bytes = Array(header.utf8)
        let prefix = Array("Bearer ".utf8)
        guard bytes.count >= prefix.count,
            zip(bytes.prefix(prefix.count), prefix).allSatisfy({ ($0 | 0x20) == ($1 | 0x20) })
        else { return denied }
        let presented = Array(bytes.dropFirst(prefix.count))
        var identity: String?
        for token in tokens where constantTimeEquals(presented, token.bytes) { identity = token.identity }
        guard let identity else { return denied }
        request.context.identity = identity
        return nil
    }
}
