/// Why a test client could not get a response.
///
/// ```swift
/// do {
///     _ = try await client.execute(.get, "/slow")
/// } catch let error as TestClientError {
///     print(error)   // for example: GET /slow: no complete response within 2.0 seconds
/// }
/// ```
public struct TestClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of failure.
    ///
    /// ```swift
    /// #expect(error.kind == .timedOut)
    /// ```
    public enum Kind: Sendable, Hashable {
        /// The request could not be written as HTTP/1.1 (a bad method, target or header field).
        case invalidRequest
        /// No TCP connection could be made to the server.
        case connectionFailed
        /// The server closed or reset the connection before the response was complete.
        case connectionClosed
        /// The bytes received are not an HTTP/1.1 response.
        case malformedResponse
        /// The response was not complete within the mode's time limit.
        case timedOut
        /// No server of that name is running under the manager.
        case unknownServer
    }

    /// What went wrong.
    ///
    /// ```swift
    /// #expect(error.kind == .connectionFailed)
    /// ```
    public var kind: Kind
    /// A description for people: what was being done, and what failed.
    ///
    /// ```swift
    /// print(error.message)
    /// ```
    public var message: String

    /// Creates an error.
    ///
    /// ```swift
    /// throw TestClientError(.unknownServer, "no server named \"public\"")
    /// ```
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    ///
    /// ```swift
    /// print(error.description)
    /// ```
    public var description: String { message }
}
