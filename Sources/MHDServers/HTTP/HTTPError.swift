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
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    /// The status to answer with.
    public var status: HTTPStatus
    /// A message for the client; defaults to the status's reason phrase.
    public var message: String
    /// Extra headers for the response, for example `WWW-Authenticate`.
    public var headers: HTTPHeaders

    /// Creates an error answered with `status` and an optional client-facing `message`.
    public init(_ status: HTTPStatus, message: String? = nil, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.message = message ?? status.reasonPhrase
        self.headers = headers
    }

    public var description: String { "HTTPError(\(status.code): \(message))" }

    /// The JSON error response for this error.
    public var response: Response {
        var response = Response.error(status, message: message)
        for field in headers { response.headers.add(name: field.name, value: field.value) }
        return response
    }
}
