/// How a test talks to the code under test: straight to the router in process, or over a real
/// socket to a running server.
///
/// The same test body runs in either mode, so a test can check its routes cheaply in process
/// and run the same checks live where the wire matters:
///
/// ```swift
/// @Test(arguments: [TestMode.inProcess, .live])
/// func hello(mode: TestMode) async throws {
///     var router = Router()
///     router.get("/hello") { _ in .text("hello") }
///     try await router.test(mode) { client in
///         let response = try await client.execute(.get, "/hello")
///         #expect(response.text == "hello")
///     }
/// }
/// ```
///
/// In process, no engine runs: requests go to `Router.respond(to:)` and thrown
/// errors are answered as the server answers them (an `HTTPError` with its response, anything
/// else with a 500), and a `HEAD` answer loses its body. What only the engine does is left
/// out: no `Content-Length`, `Date` or `Connection` header is added, no request-size or
/// connection limit applies, health probes are answered only if the router has such routes,
/// `remoteAddress` is `nil` and no `Host` field is added. Live, all of that happens for real.
public struct TestMode: Sendable, Hashable, CustomStringConvertible {
    enum Kind: Hashable {
        case inProcess
        case live
    }

    let kind: Kind
    /// How long one live request may take, from connecting to the last byte of the response.
    let timeout: Duration

    /// Requests are answered by the router directly, in the test's own task: no socket, no
    /// engine, no server.
    ///
    /// ```swift
    /// try await router.test(.inProcess) { client async throws in
    ///     #expect(try await client.execute(.get, "/hello").status == .ok)
    /// }
    /// ```
    public static let inProcess = TestMode(kind: .inProcess, timeout: .seconds(30))

    /// A server runs on `127.0.0.1`, on a port the system chooses, for the length of the test
    /// body; each request is sent over a new TCP connection (HTTP/1.1) and may take up to 30
    /// seconds.
    ///
    /// ```swift
    /// try await router.test(.live) { client in
    ///     let response = try await client.execute(.get, "/hello")
    ///     #expect(response.headers["Content-Length"] == "5")
    /// }
    /// ```
    public static let live = TestMode(kind: .live, timeout: .seconds(30))

    /// ``live`` with another time limit for each request.
    ///
    /// ```swift
    /// try await router.test(.live(timeout: .seconds(2))) { client in
    ///     await #expect(throws: TestClientError.self) { try await client.execute(.get, "/slow") }
    /// }
    /// ```
    public static func live(timeout: Duration) -> TestMode {
        TestMode(kind: .live, timeout: timeout)
    }

    /// `inProcess` or `live`, for test names.
    public var description: String {
        switch kind {
        case .inProcess: return "inProcess"
        case .live: return timeout == TestMode.live.timeout ? "live" : "live(timeout: \(timeout))"
        }
    }
}
