/// An error a handler throws to answer with a specific status and message.
///
/// The server turns it into a JSON body `{"error": {"status": 404, "message": "no such user"}}`.
/// Any other thrown error becomes a 500 with a generic message (the error itself is logged,
/// never sent to the client).
///
/// ```swift
/// let users = ["1": "Ada"]
/// router.get("/users/:id") { request in
///     guard let name = users[request.parameters["id"] ?? ""] else {
///         throw HTTPError(.notFound, message: "no such user")
///     }
///     return .text(name)
/// }
/// ```
public struct HTTPError: HTTPResponseError, CustomStringConvertible {
    /// The status to answer with.
    public var status: HTTPStatus
    /// A message for the client; defaults to the status's reason phrase.
    public var message: String
    /// Extra headers for the response, for example `WWW-Authenticate`.
    public var headers: HTTPHeaders

    /// Creates an error answered with `status` and an optional client-facing `message`.
    public init(_ status: HTTPStatus, message: String? = nil, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.message = message ?? status.phrase
        self.headers = headers
    }

    public var description: String { "HTTPError(\(status.code): \(message))" }

    /// The JSON error response for this error.
    public var response: Response {
        var response = Response.error(status, message: message)
        response.headers.append(contentsOf: headers)
        return response
    }
}

/// An error that chooses its own answer: its status, and optionally headers and a body (by
/// default the JSON error body with the status's reason). Any error type can conform; the
/// server answers it as it says, wherever it is thrown (a handler, a middleware). Errors with a
/// 5xx status still count as handler failures in the metrics.
///
/// ```swift
/// struct OutOfStock: HTTPResponseError {
///     var item: String
///     var status: HTTPStatus { .conflict }
///     var response: Response { .error(status, message: "\(item) is out of stock") }
/// }
/// router.post("/orders") { _ in throw OutOfStock(item: "tea") }
/// ```
public protocol HTTPResponseError: Error {
    /// The status to answer with.
    var status: HTTPStatus { get }
    /// The whole answer; by default ``Response/error(_:message:)`` with ``status``.
    var response: Response { get }
}

extension HTTPResponseError {
    /// The JSON error body with ``status`` and its reason phrase.
    public var response: Response { .error(status) }
}

extension Response {
    /// The answer to a thrown error, as the server gives it wherever the error is thrown: an
    /// ``HTTPResponseError`` answers as it says; any other error is logged (with the request's
    /// method and path) and answered with a generic 500, its details never sent. The response
    /// remembers the error, for middleware (tracing) and for the server's failure counts.
    static func failure(_ error: any Error, for request: Request) -> Response {
        var response: Response
        if let error = error as? any HTTPResponseError {
            response = error.response
        } else {
            request.context.logger.error(
                "handler failed",
                metadata: [
                    "method": "\(request.method)", "path": "\(request.path)", "error": "\(String(reflecting: error))",
                ])
            response = Response.internalError
        }
        response.error = error
        return response
    }

    static let internalError = Response.error(.internalServerError).reusable()
}
