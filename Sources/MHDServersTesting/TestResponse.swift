#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MHDServers

/// A response as a test sees it: the same type whether the request was answered in process or
/// over a socket.
///
/// ```swift
/// try await router.test(.inProcess) { client in
///     let response = try await client.execute(.get, "/users/1")
///     #expect(response.status == .ok)
///     #expect(response.headers["Content-Type"] == "application/json")
///     let user = try response.decode(User.self)
///     #expect(user.name == "Ada")
/// }
/// ```
public struct TestResponse: Sendable {
    /// The status: code and reason phrase (live, the reason phrase as the server sent it).
    ///
    /// ```swift
    /// #expect(response.status == .notFound)
    /// ```
    public var status: HTTPStatus

    /// The header fields, in the order they came (case-insensitive lookup). Live, they include
    /// what the engine adds (`Content-Length`, `Date`, `Connection`); in process, only what the
    /// handler set.
    ///
    /// ```swift
    /// #expect(response.headers["Allow"] == "GET, HEAD")
    /// ```
    public var headers: HTTPHeaders

    /// The body bytes, already decoded from chunked transfer coding; empty for `HEAD`, `204`
    /// and `304`.
    ///
    /// ```swift
    /// #expect(response.body.count == 5)
    /// ```
    public var body: [UInt8]

    /// Creates a response, for example to compare against or to fake a client.
    ///
    /// ```swift
    /// let expected = TestResponse(status: .ok, headers: ["Content-Type": "text/plain"], body: Array("hi".utf8))
    /// ```
    public init(status: HTTPStatus, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body as UTF-8 text (invalid sequences are repaired).
    ///
    /// ```swift
    /// #expect(response.text == "hello")
    /// ```
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// Decodes the JSON body as `type`.
    ///
    /// ```swift
    /// struct ErrorBody: Decodable { struct Detail: Decodable { var status: Int; var message: String }; var error: Detail }
    /// let failure = try response.decode(ErrorBody.self)
    /// #expect(failure.error.status == 404)
    /// ```
    public func decode<T: Decodable>(_ type: T.Type = T.self, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try decoder.decode(T.self, from: Data(body))
    }
}

extension TestResponse: CustomStringConvertible {
    /// The status line, the header fields and, when it is text, the body: for test failure
    /// messages.
    ///
    /// ```swift
    /// #expect(response.status == .ok, "\(response)")
    /// ```
    public var description: String {
        var out = "\(status)"
        for field in headers { out += "\n\(field.name): \(field.value)" }
        if !body.isEmpty { out += "\n\n" + text }
        return out
    }
}
