/// Cross-origin resource sharing: lets pages of other origins call the API from a browser,
/// within the limits you set.
///
/// - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here
///   with 204 and the allowed methods and headers when the origin, the method and every
///   requested header are allowed, and with 403 otherwise; it never reaches a handler.
/// - Any other request with an allowed `Origin` gets `Access-Control-Allow-Origin` (and
///   `Access-Control-Allow-Credentials`, `Access-Control-Expose-Headers` as configured) on its
///   response, error responses included. Requests from other origins are served without them,
///   so the browser withholds the response from the page.
/// - With credentials the origin is echoed, never `*`; `Vary: Origin` is added whenever the
///   answer depends on the origin, so caches keep one answer per origin.
///
/// ```swift
/// router.add(middleware: CORSMiddleware(
///     allowedOrigins: .list(["https://app.example.com"]),
///     allowedHeaders: ["Content-Type", "Authorization"],
///     allowsCredentials: true))
/// ```
public struct CORSMiddleware: InlineMiddleware {
    /// Which origins may call.
    public enum AllowedOrigins: Sendable {
        /// Every origin (`*`, or the caller's origin echoed when credentials are allowed).
        case any
        /// Exactly these origins (`scheme://host[:port]`, compared without regard to case).
        case list([String])
    }

    /// The origins that may call.
    public let allowedOrigins: AllowedOrigins
    /// The methods a preflight may ask for.
    public let allowedMethods: [HTTPMethod]
    /// The request headers a preflight may ask for.
    public let allowedHeaders: [String]
    /// The response headers the page may read.
    public let exposedHeaders: [String]
    /// Whether cookies and `Authorization` may be sent.
    public let allowsCredentials: Bool
    /// How long a browser may cache a preflight answer.
    public let maxAge: Duration?
    private let origins: Set<String>
    private let headerSet: Set<String>
    private let methodList: String
    private let headerList: String

    /// A CORS policy.
    ///
    /// - Parameters:
    ///   - allowedOrigins: the origins that may call (default none: `.list([])`).
    ///   - allowedMethods: methods a preflight may ask for.
    ///   - allowedHeaders: request headers a preflight may ask for (beyond the CORS-safelisted ones).
    ///   - exposedHeaders: response headers the page may read (beyond the safelisted ones).
    ///   - allowsCredentials: whether cookies and `Authorization` may be sent.
    ///   - maxAge: how long a browser may cache a preflight answer.
    ///
    /// ```swift
    /// let cors = CORSMiddleware(allowedOrigins: .any, exposedHeaders: ["X-Request-Id"])
    /// ```
    public init(
        allowedOrigins: AllowedOrigins = .list([]),
        allowedMethods: [HTTPMethod] = [.get, .head, .post, .put, .patch, .delete],
        allowedHeaders: [String] = ["Content-Type", "Authorization", "X-Request-Id"],
        exposedHeaders: [String] = [],
        allowsCredentials: Bool = false,
        maxAge: Duration? = .seconds(600)
    ) {
        self.allowedOrigins = allowedOrigins
        self.allowedMethods = allowedMethods
        self.allowedHeaders = allowedHeaders
        self.exposedHeaders = exposedHeaders
        self.allowsCredentials = allowsCredentials
        self.maxAge = maxAge
        if case .list(let list) = allowedOrigins { origins = Set(list.map { $0.lowercased() }) } else { origins = [] }
        headerSet = Set(allowedHeaders.map { $0.lowercased() })
        methodList = allowedMethods.map(\.rawValue).joined(separator: ", ")
        headerList = allowedHeaders.joined(separator: ", ")
    }

    public func prepare(_ request: inout Request) throws -> Response? {
        guard request.method == .options, let origin = request.headers["Origin"],
            let requestedMethod = request.headers["Access-Control-Request-Method"]
        else { return nil }
        let requestedHeaders = (request.headers["Access-Control-Request-Headers"] ?? "")
            .split(separator: ",").map { $0.trimmingWhitespace().lowercased() }.filter { !$0.isEmpty }
        guard allows(origin),
            allowedMethods.contains(where: { $0.rawValue == requestedMethod }),
            requestedHeaders.allSatisfy({ headerSet.contains($0) })
        else {
            var refused = Response.error(.forbidden, message: "cross-origin request not allowed")
            refused.headers["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
            return refused
        }
        var answer = Response(status: .noContent)
        addOrigin(origin, to: &answer)
        answer.headers["Access-Control-Allow-Methods"] = methodList
        if !headerList.isEmpty { answer.headers["Access-Control-Allow-Headers"] = headerList }
        if let maxAge { answer.headers["Access-Control-Max-Age"] = "\(maxAge.components.seconds)" }
        answer.headers["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        return answer
    }

    public func finish(_ response: inout Response, for request: Request) {
        guard let origin = request.headers["Origin"], allows(origin) else {
            if case .list = allowedOrigins { Self.vary(&response) }
            return
        }
        addOrigin(origin, to: &response)
        if !exposedHeaders.isEmpty {
            response.headers["Access-Control-Expose-Headers"] = exposedHeaders.joined(separator: ", ")
        }
    }

    private func allows(_ origin: String) -> Bool {
        switch allowedOrigins {
        case .any: return true
        case .list: return origins.contains(origin.lowercased())
        }
    }

    private func addOrigin(_ origin: String, to response: inout Response) {
        if case .any = allowedOrigins, !allowsCredentials {
            response.headers["Access-Control-Allow-Origin"] = "*"
        } else {
            response.headers["Access-Control-Allow-Origin"] = origin
            Self.vary(&response)
        }
        if allowsCredentials { response.headers["Access-Control-Allow-Credentials"] = "true" }
    }

    /// Adds `Origin` to the response's `Vary`.
    private static func vary(_ response: inout Response) {
        guard let existing = response.headers["Vary"] else {
            response.headers["Vary"] = "Origin"
            return
        }
        let names = existing.split(separator: ",").map { $0.trimmingWhitespace().lowercased() }
        if !names.contains("origin") && !names.contains("*") { response.headers["Vary"] = existing + ", Origin" }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    fileprivate func trimmingWhitespace() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
