import Foundation
import MHDServers
@testable import MHDServersTesting
import Testing

/// A router with one route for each kind of answer the comparison table asks about.
private func comparisonRouter() -> Router {
    var router = Router()
    router.get("/hello") { _ in .text("hello") }
    router.get("/users/:id") { request in try .json(["id": request.parameters["id"]!]) }
    router.get("/files/*") { request in .text("file \(request.parameters["*"]!)") }
    router.get("/search") { request in
        .text("q=\(request.query["q"] ?? "nil") tags=\(request.query.values(for: "tag").joined(separator: ","))")
    }
    router.post("/echo") { request in
        let greeting = try request.decode(Greeting.self)
        return try .json(Greeting(name: greeting.name.uppercased(), count: greeting.count + 1), status: .created)
    }
    router.get("/teapot") { _ in throw HTTPError(418, message: "short and stout", headers: HTTPHeaders([("X-Reason", "tea")])) }
    router.get("/boom") { _ in throw Boom() }
    router.get("/boom-async") { _ in
        await Task.yield()
        throw Boom()
    }
    router.get("/slow") { _ in
        await Task.yield()
        return .text("awaited")
    }
    router.delete("/hello") { _ in Response(status: .noContent) }
    router.on(HTTPMethod("PURGE")!, "/cache") { request in .text("purged \(request.headers["x-scope"] ?? "all")") }
    router.get("/header") { request in .text(request.headers["X-Custom-Thing"] ?? "none") }
    var api = Router()
    api.get("/ping") { _ in .text("pong") }
    router.mount("/api/v1", api)
    return router
}

private struct Exchange: Sendable, CustomTestStringConvertible {
    var method: HTTPMethod
    var target: String
    var headers: HTTPHeaders = HTTPHeaders()
    var body: String = ""
    var testDescription: String { "\(method) \(target)" }
}

private let exchanges: [Exchange] = [
    Exchange(method: .get, target: "/hello"),
    Exchange(method: .get, target: "/hello/"),
    Exchange(method: .head, target: "/hello"),
    Exchange(method: .get, target: "/users/42"),
    Exchange(method: .get, target: "/files/a/b%20c.txt"),
    Exchange(method: .get, target: "/search?q=swift+nio%21&tag=a&tag=b"),
    Exchange(method: .get, target: "/search"),
    Exchange(method: .post, target: "/echo", headers: [.contentType: "application/json"], body: #"{"name":"ada","count":1}"#),
    Exchange(method: .post, target: "/echo", body: #"{"name": "#),
    Exchange(method: .get, target: "/teapot"),
    Exchange(method: .get, target: "/boom"),
    Exchange(method: .get, target: "/boom-async"),
    Exchange(method: .get, target: "/slow"),
    Exchange(method: .delete, target: "/hello"),
    Exchange(method: .put, target: "/hello", body: "x"),
    Exchange(method: .post, target: "/users/1"),
    Exchange(method: .get, target: "/nope"),
    Exchange(method: HTTPMethod("PURGE")!, target: "/cache", headers: HTTPHeaders([("X-Scope", "images")])),
    Exchange(method: .get, target: "/header", headers: HTTPHeaders([("x-custom-thing", "42")])),
    Exchange(method: .get, target: "/api/v1/ping"),
    Exchange(method: .get, target: "/ping"),
]

/// The fields a live answer has that the engine adds.
private let engineFields: Set<String> = ["content-length", "date", "connection"]

private func handlerFields(_ headers: HTTPHeaders) -> [String] {
    headers.filter { !engineFields.contains($0.name.canonicalName) }.map { "\($0.name.canonicalName): \($0.value)" }
}

@Suite("MHDServersTesting", .timeLimit(.minutes(2)))
struct TestingProductTests {
    @Test func bothModesGiveTheSameAnswers() async throws {
        let router = comparisonRouter()
        func run(_ mode: TestMode) async throws -> [TestResponse] {
            try await router.test(mode) { client async throws in
                var responses: [TestResponse] = []
                for exchange in exchanges {
                    responses.append(
                        try await client.execute(
                            exchange.method, exchange.target, headers: exchange.headers, body: exchange.body))
                }
                return responses
            }
        }
        let inProcess = try await run(.inProcess)
        let live = try await run(.live)
        for (exchange, (local, remote)) in zip(exchanges, zip(inProcess, live)) {
            #expect(local.status == remote.status, "\(exchange.testDescription)")
            #expect(local.body == remote.body, "\(exchange.testDescription): \(local.text) | \(remote.text)")
            #expect(handlerFields(local.headers) == handlerFields(remote.headers), "\(exchange.testDescription)")
        }
        // Spot checks, so that two equally wrong answers cannot pass.
        #expect(inProcess.map(\.status.code) == [
            200, 200, 200, 200, 200, 200, 200, 201, 400, 418, 500, 500, 200, 204, 405, 405, 404, 200, 200, 200, 404,
        ])
        #expect(inProcess[2].body.isEmpty)
        #expect(live[2].headers["Content-Length"] == "5")
        #expect(inProcess[4].text == "file a/b c.txt")
        #expect(inProcess[5].text == "q=swift nio! tags=a,b")
        #expect(try inProcess[7].decode(Greeting.self) == Greeting(name: "ADA", count: 2))
        #expect(inProcess[9].headers["X-Reason"] == "tea")
        #expect(inProcess[14].headers["Allow"] == "DELETE, GET, HEAD")
        #expect(inProcess[17].text == "purged images")
        #expect(inProcess[18].text == "42")
    }

    @Test(arguments: [TestMode.inProcess, .live])
    func jsonHelpers(mode: TestMode) async throws {
        try await comparisonRouter().test(mode) { client async throws in
            let response = try await client.execute(.post, "/echo", json: Greeting(name: "grace", count: 9))
            #expect(response.status == .created)
            #expect(response.headers["Content-Type"] == "application/json")
            #expect(try response.decode(Greeting.self) == Greeting(name: "GRACE", count: 10))
            struct ErrorBody: Decodable {
                struct Detail: Decodable { var status: Int; var message: String }
                var error: Detail
            }
            let failure = try await client.execute(.get, "/users/1/missing")
            #expect(try failure.decode(ErrorBody.self).error.status == 404)
        }
    }

    @Test func liveRequestsCrossARealSocket() async throws {
        var router = Router()
        router.get("/peer") { request in .text(request.remoteAddress ?? "none") }
        let server = try await router.test(.live) { client async throws in
            let address = try #require(client.address)
            #expect(address.host == "127.0.0.1" && address.port > 0)
            let response = try await client.execute(.get, "/peer")
            #expect(response.text.hasPrefix("127.0.0.1:"))
            #expect(response.headers["Date"] != nil)
            #expect(response.headers["Connection"]?.lowercased() == "close")
            return address
        }
        #expect(await connectionRefused(server.port))
        try await router.test(.inProcess) { client async throws in
            #expect(client.address == nil)
            #expect(try await client.execute(.get, "/peer").text == "none")
        }
    }

    @Test func theServerStopsWhenTheBodyThrows() async throws {
        struct Failure: Error {}
        let seen = Shared<BoundAddress?>(nil)
        await #expect(throws: Failure.self) {
            try await comparisonRouter().test(.live) { client async throws in
                seen.value = client.address
                #expect(try await client.execute(.get, "/hello").status == .ok)
                throw Failure()
            }
        }
        let address = try #require(seen.value)
        #expect(await connectionRefused(address.port))
    }

    @Test func theStartErrorIsThrown() async throws {
        let holder = try PortHolder()
        await #expect(throws: ServerError.self) {
            try await comparisonRouter().test(.live, config: ServerConfig(name: "busy", port: holder.port)) { _ in
                Issue.record("the body must not run when the server cannot start")
            }
        }
    }

    @Test func liveUsesTheGivenConfiguration() async throws {
        var router = Router()
        router.post("/size") { request in .text("\(request.body.count)") }
        let config = ServerConfig(name: "small", port: 0, limits: .init(maxBodySize: 10))
        try await router.test(.live, config: config) { client async throws in
            #expect(try await client.execute(.post, "/size", body: "0123456789").text == "10")
            #expect(try await client.execute(.post, "/size", body: "0123456789x").status == .contentTooLarge)
        }
        // In process no engine limit applies.
        try await router.test(.inProcess, config: config) { client async throws in
            #expect(try await client.execute(.post, "/size", body: "0123456789x").text == "11")
        }
    }

    @Test func invalidRequestsAreRefusedInBothModes() async throws {
        for mode in [TestMode.inProcess, .live] {
            try await comparisonRouter().test(mode) { client async throws in
                for target in ["/a b", "relative", "/x#frag"] {
                    let error = await #expect(throws: TestClientError.self, "\(mode) \(target)") {
                        try await client.execute(.get, target)
                    }
                    #expect(error?.kind == .invalidRequest)
                }
            }
        }
    }

    // MARK: Lifecycles and managers

    @Test(arguments: [TestMode.inProcess, .live])
    func lifecycleRoutesSeeTheirContext(mode: TestMode) async throws {
        struct NamedAPI: ServerLifecycle {
            func registerRoutes(on router: inout Router, context: HTTPServerContext) {
                router.get("/api/hello") { _ in .text("hello from \(context.name)") }
                router.get("/api/port") { _ in .text("\(context.address?.port ?? 0)") }
            }
        }
        try await NamedAPI().test(mode, config: ServerConfig(name: "public", port: 0)) { client async throws in
            #expect(try await client.execute(.get, "/api/hello").text == "hello from public")
            #expect(try await client.execute(.get, "/api/port").text == "\(client.address?.port ?? 0)")
        }
    }

    @Test func liveLifecycleRunsEveryHook() async throws {
        let recorder = Recorder()
        let name = try await RecordingAPI(recorder: recorder).test(.live, config: ServerConfig(name: "hooked", port: 0)) {
            client async throws in
            #expect(recorder.of("hooked") == ["hooked:routes", "hooked:check 0", "hooked:available", "hooked:started"])
            return try await client.execute(.get, "/name").text
        }
        #expect(name == "hooked")
        #expect(recorder.of("hooked").last == "hooked:shutdown")
    }

    @Test func inProcessLifecycleOnlyRegistersRoutes() async throws {
        let recorder = Recorder()
        try await RecordingAPI(recorder: recorder).test(.inProcess, config: ServerConfig(name: "local", port: 0)) {
            client async throws in
            #expect(try await client.execute(.get, "/name").text == "local")
        }
        #expect(recorder.all == ["local:routes"])
    }

    @Test func managerWithSeveralServers() async throws {
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false)
        let servers = ["public", "admin"].map {
            Server(config: ServerConfig(name: $0, port: 0), lifecycle: RecordingAPI(recorder: recorder))
        }
        let ports = try await manager.test(servers) { clients async throws in
            #expect(clients.names == ["public", "admin"])
            #expect(try await clients["public"]!.execute(.get, "/name").text == "public")
            #expect(try await clients.client("admin").execute(.get, "/name").text == "admin")
            #expect(clients["nope"] == nil)
            let error = #expect(throws: TestClientError.self) { try clients.client("nope") }
            #expect(error?.kind == .unknownServer)
            return clients.names.compactMap { clients[$0]?.address?.port }
        }
        #expect(ports.count == 2)
        #expect(recorder.of("public").last == "public:shutdown")
        #expect(recorder.of("admin").last == "admin:shutdown")
        for port in ports { #expect(await connectionRefused(port)) }
    }

    @Test func managerSeesServersAddedDuringTheTest() async throws {
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false)
        try await manager.test([Server(config: ServerConfig(name: "first", port: 0), lifecycle: RecordingAPI(recorder: recorder))]) {
            clients async throws in
            #expect(clients["extra"] == nil)
            try await manager.addServer(
                Server(config: ServerConfig(name: "extra", port: 0), lifecycle: RecordingAPI(recorder: recorder)))
            #expect(try await clients.client("extra").execute(.get, "/name").text == "extra")
        }
    }
}

// MARK: The wire client against scripted servers

/// A server that accepts one connection, reads the request head and its announced body, sends
/// `answer`, then closes (or, with `answer` nil, waits for the client to leave). `received`
/// opens once the request is read.
private func withScriptedServer<T: Sendable>(
    answer: String?, timeout: Duration = .seconds(10), received: Gate = Gate(),
    _ body: @Sendable (TestClient) async throws -> T
) async throws -> (result: Result<T, any Error>, request: String) {
    let holder = try PortHolder()
    let client = TestClient(address: BoundAddress(host: "127.0.0.1", port: holder.port), timeout: timeout)
    async let served: String = offPool {
        let fd = accept(holder.fd, nil, nil)
        guard fd >= 0 else { throw ClientError.connect(errno) }
        defer { close(fd) }
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func complete() -> Bool {
            let text = String(decoding: request, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { return false }
            let length = text[..<end.lowerBound].split(separator: "\r\n")
                .first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            return text.utf8.count - text[..<end.upperBound].utf8.count >= length
        }
        while !complete() {
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { break }
            request += chunk[0..<count]
        }
        received.open()
        if let answer {
            var bytes = Array(answer.utf8)
            _ = send(fd, &bytes, bytes.count, Int32(MSG_NOSIGNAL))
        } else {
            while recv(fd, &chunk, chunk.count, 0) > 0 {}  // until the client closes
        }
        return String(decoding: request, as: UTF8.self)
    }
    let result: Result<T, any Error>
    do { result = .success(try await body(client)) } catch { result = .failure(error) }
    return (result, try await served)
}

@Suite("MHDServersTesting: the HTTP/1.1 client", .timeLimit(.minutes(2)))
struct TestClientWireTests {
    @Test func sendsAWellFormedRequest() async throws {
        let (result, request) = try await withScriptedServer(answer: "HTTP/1.1 204 No Content\r\n\r\n") { client async throws in
            try await client.execute(.post, "/items?x=1", headers: HTTPHeaders([("X-A", "1")]), body: "hello")
        }
        #expect(try result.get().status == .noContent)
        let lines = request.components(separatedBy: "\r\n")
        #expect(lines[0] == "POST /items?x=1 HTTP/1.1")
        #expect(lines.contains { $0.hasPrefix("Host: 127.0.0.1:") })
        #expect(lines.contains("X-A: 1"))
        #expect(lines.contains("Content-Length: 5"))
        #expect(lines.contains("Connection: close"))
        #expect(request.hasSuffix("\r\n\r\nhello"))
    }

    @Test func readsAChunkedBodyWithExtensionsAndTrailers() async throws {
        let answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Before: 1\r\n\r\n"
            + "5;name=value\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n"
        let (result, _) = try await withScriptedServer(answer: answer) { client async throws in
            try await client.execute(.get, "/")
        }
        let response = try result.get()
        #expect(response.text == "hello world!")
        #expect(response.headers["X-Before"] == "1")
    }

    @Test func readsABodyDelimitedByTheConnectionClose() async throws {
        let (result, _) = try await withScriptedServer(answer: "HTTP/1.0 200 OK\r\nX-Y: z\r\n\r\nuntil the end") { client async throws in
            try await client.execute(.get, "/")
        }
        #expect(try result.get().text == "until the end")
    }

    @Test func skipsInterimResponsesAndKeepsTheReasonPhrase() async throws {
        let answer = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Made It\r\nContent-Length: 2\r\n\r\nokEXTRA"
        let (result, _) = try await withScriptedServer(answer: answer) { client async throws in
            try await client.execute(.put, "/", body: "x")
        }
        let response = try result.get()
        #expect(response.status == .created)
        #expect(response.status.reasonPhrase == "Made It")
        #expect(response.text == "ok")
    }

    @Test func headAnswersHaveNoBodyWhateverTheirLength() async throws {
        let (result, _) = try await withScriptedServer(answer: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n") { client async throws in
            try await client.execute(.head, "/")
        }
        let response = try result.get()
        #expect(response.headers["Content-Length"] == "1000")
        #expect(response.body.isEmpty)
    }

    @Test func malformedAndTruncatedResponsesAreErrors() async throws {
        for (answer, kind) in [
            ("SSH-2.0-OpenSSH\r\n\r\n", TestClientError.Kind.malformedResponse),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab", .malformedResponse),
            ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", .connectionClosed),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformedResponse),
            ("HTTP/1.1 200 OK\r\nBad Field\r\n\r\n", .malformedResponse),
        ] {
            let (result, _) = try await withScriptedServer(answer: answer) { client async throws in
                try await client.execute(.get, "/")
            }
            #expect(throws: TestClientError.self, "\(answer.debugDescription)") { try result.get() }
            if case .failure(let error as TestClientError) = result {
                #expect(error.kind == kind, "\(error)")
                #expect(error.message.hasPrefix("GET / to 127.0.0.1:"))
            }
        }
    }

    @Test func aSilentServerTimesOut() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let (result, _) = try await withScriptedServer(answer: nil, timeout: .milliseconds(300)) { client async throws in
            try await client.execute(.get, "/")
        }
        #expect(clock.now - start >= .milliseconds(300))
        #expect(throws: TestClientError.self) { try result.get() }
        if case .failure(let error as TestClientError) = result { #expect(error.kind == .timedOut) }
    }

    @Test func cancellationAbortsTheRequest() async throws {
        let received = Gate()
        let (result, _) = try await withScriptedServer(answer: nil, received: received) { client async throws in
            let request = Task { try await client.execute(.get, "/") }
            try await received.wait("the request to arrive")
            request.cancel()
            return try await request.value
        }
        #expect(throws: CancellationError.self) { try result.get() }
    }

    @Test func aRefusedConnectionIsAnError() async throws {
        let port = try PortHolder().port  // free again once the holder is gone
        let client = TestClient(address: BoundAddress(host: "127.0.0.1", port: port), timeout: .seconds(5))
        let error = await #expect(throws: TestClientError.self) { try await client.execute(.get, "/") }
        #expect(error?.kind == .connectionFailed)
    }
}
