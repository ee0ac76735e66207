/// Anything that answers HTTP requests: the server calls it once per request.
///
/// ``Router`` is the usual implementation; conform your own type for full control:
///
/// ```swift
/// struct Echo: HTTPHandler {
///     func respond(to request: Request) async throws -> Response {
///         Response(status: .ok, body: request.body)
///     }
/// }
/// let server = HTTPServer(config: ServerConfig(name: "echo", port: 0), handler: Echo())
/// ```
///
/// A thrown ``HTTPError`` chooses the status; any other error becomes a 500 with a JSON body.
public protocol HTTPHandler: Sendable {
    /// Produces the response for `request`.
    func respond(to request: Request) async throws -> Response
}

/// A closure as an ``HTTPHandler``.
///
/// ```swift
/// let handler = ClosureHandler { request in .text("hi from \(request.path)") }
/// ```
public struct ClosureHandler: HTTPHandler {
    let body: @Sendable (Request) async throws -> Response

    /// Wraps `body`.
    public init(_ body: @escaping @Sendable (Request) async throws -> Response) { self.body = body }

    public func respond(to request: Request) async throws -> Response { try await body(request) }
}
