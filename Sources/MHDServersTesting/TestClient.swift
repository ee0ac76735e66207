#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
@_spi(Testing) import MHDServers

/// Sends requests to the code under test and returns its ``TestResponse``s: straight to the
/// router in process, or over TCP to the running server live (see ``TestMode``).
///
/// ```swift
/// try await router.test(.live) { client in
///     let created = try await client.execute(.post, "/users", json: CreateUser(name: "Ada"))
///     #expect(created.status == .created)
///     let missing = try await client.execute(.get, "/users/999", headers: ["Accept": "application/json"])
///     #expect(missing.status == .notFound)
/// }
/// ```
public struct TestClient: Sendable {
    enum Backend: Sendable {
        case inProcess(Router)
        case live(WireClient)
    }

    let backend: Backend

    /// Where the server listens (live); `nil` in process.
    ///
    /// ```swift
    /// try await router.test(.live) { client in
    ///     print(client.address?.url ?? "in process")   // http://127.0.0.1:41234
    /// }
    /// ```
    public let address: BoundAddress?

    init(router: Router) {
        backend = .inProcess(router)
        address = nil
    }

    init(address: BoundAddress, timeout: Duration) {
        backend = .live(WireClient(address: address, timeout: timeout))
        self.address = address
    }

    /// Sends a request and returns the response.
    ///
    /// - Parameters:
    ///   - method: the method, for example `.get` or `"PURGE"`.
    ///   - target: the path with an optional query, percent-encoded as on the wire:
    ///     `/search?q=swift%20nio`.
    ///   - headers: header fields to send. Live, `Host`, `Content-Length` (when there is a
    ///     body, or for `POST`, `PUT` and `PATCH`) and `Connection: close` are added unless
    ///     given.
    ///   - body: the body bytes.
    /// - Throws: ``TestClientError`` when the request is invalid or, live, when no complete
    ///   response arrives in time. A status is never an error: a 500 is returned like a 200.
    ///
    /// ```swift
    /// let response = try await client.execute(.put, "/files/a.bin", headers: ["Content-Type": "application/octet-stream"], body: [1, 2, 3])
    /// ```
    public func execute(
        _ method: HTTPMethod, _ target: String, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []
    ) async throws -> TestResponse {
        let request = try TestRequest(method: method, target: target, headers: headers, body: body)
        switch backend {
        case .inProcess(let router): return await InProcess.respond(router, to: request)
        case .live(let wire): return try await wire.send(request)
        }
    }

    /// Sends a request with a UTF-8 text body.
    ///
    /// ```swift
    /// let response = try await client.execute(.post, "/notes", headers: ["Content-Type": "text/plain"], body: "remember")
    /// ```
    public func execute(
        _ method: HTTPMethod, _ target: String, headers: HTTPHeaders = HTTPHeaders(), body: String
    ) async throws -> TestResponse {
        try await execute(method, target, headers: headers, body: Array(body.utf8))
    }

    /// Sends `value` encoded as JSON, with `Content-Type: application/json` unless `headers`
    /// sets one.
    ///
    /// ```swift
    /// let response = try await client.execute(.post, "/users", json: CreateUser(name: "Ada"))
    /// #expect(try response.decode(User.self).name == "Ada")
    /// ```
    public func execute<Body: Encodable>(
        _ method: HTTPMethod, _ target: String, headers: HTTPHeaders = HTTPHeaders(), json value: Body,
        encoder: JSONEncoder = JSONEncoder()
    ) async throws -> TestResponse {
        var headers = headers
        if !headers.contains("Content-Type") { headers["Content-Type"] = "application/json" }
        return try await execute(method, target, headers: headers, body: Array(try encoder.encode(value)))
    }
}

/// The clients of the servers a `ServerManager` runs in a test, by server name.
///
/// ```swift
/// try await manager.test(servers) { clients in
///     let hello = try await clients["public"]!.execute(.get, "/api/hello")
///     let stats = try await clients.client("admin").execute(.get, "/admin/stats")
///     #expect(hello.status == .ok && stats.status == .ok)
/// }
/// ```
public struct TestClients: Sendable {
    let manager: ServerManager
    let timeout: Duration

    /// The client of the server named `name`, or `nil` if the manager runs no such server
    /// (servers added with `addServer` while the test runs are found too).
    ///
    /// ```swift
    /// let response = try await clients["public"]!.execute(.get, "/api/hello")
    /// ```
    public subscript(name: String) -> TestClient? {
        guard let address = manager.servers.first(where: { $0.name == name })?.address else { return nil }
        return TestClient(address: address, timeout: timeout)
    }

    /// The client of the server named `name`; throws ``TestClientError`` (`unknownServer`) if
    /// the manager runs no such server.
    ///
    /// ```swift
    /// let admin = try clients.client("admin")
    /// ```
    public func client(_ name: String) throws -> TestClient {
        guard let client = self[name] else {
            throw TestClientError(
                .unknownServer, "no server named \"\(name)\" is running; there are \(names.map { "\"\($0)\"" })")
        }
        return client
    }

    /// The names of the running servers, in start order.
    ///
    /// ```swift
    /// #expect(clients.names == ["public", "admin"])
    /// ```
    public var names: [String] { manager.servers.filter { $0.address != nil }.map(\.name) }
}

/// Answers requests with a router directly, as the server would without its engine.
enum InProcess {
    static func respond(_ router: Router, to request: TestRequest) async -> TestResponse {
        // `Router.respond(to:)` runs the router's middleware and answers a thrown error through
        // the server's own error mapping; it does not throw.
        let response = (try? await router.respond(to: request.serverRequest())) ?? .error(.internalServerError)
        // The server sends no body in answer to HEAD, nor with a 1xx, 204 or 304 (a file's 304
        // keeps its file, for the length). A streamed or file body is produced now, whole; one
        // that fails reads as the empty body the server could not complete.
        let status = response.status
        let bodiless = request.method == .head || status.kind == .informational || status == .noContent
            || status == .notModified
        let body = bodiless ? [] : ((try? await response.collectedBody()) ?? [])
        return TestResponse(status: response.status, headers: response.headers, body: body)
    }
}
