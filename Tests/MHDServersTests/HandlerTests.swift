import Foundation
import MHDServers
import MHDServersTesting
import Synchronization
import Testing

struct Greeting: Codable, Equatable {
    var name: String
    var count: Int
}

struct Boom: Error {}

@Suite("Handlers, bodies and errors", .timeLimit(.minutes(2)))
struct HandlerTests {
    static func router() -> Router {
        var router = Router()
        router.post("/echo") { request in
            let greeting = try request.decode(Greeting.self)
            return try .json(Greeting(name: greeting.name.uppercased(), count: greeting.count + 1), status: .created)
        }
        router.post("/size") { request in .text("\(request.body.count)") }
        router.get("/boom") { _ in throw Boom() }
        router.get("/boom-async") { _ in
            try await Task.sleep(for: .milliseconds(5))
            throw Boom()
        }
        router.get("/teapot") { _ in throw HTTPError(418, message: "short and stout") }
        router.get("/ok") { _ in .text("ok") }
        return router
    }

    // JSON decoding and encoding, and the error answers, are the handlers' and the router's
    // logic: tested in process. Whether the server answers errors alike is checked by
    // `throwingHandlerIs500AndServerKeepsServing` below and by the comparison of both test modes.

    @Test func jsonRoundTrip() async throws {
        try await Self.router().test(.inProcess) { client in
            let response = try await client.execute(
                .post, "/echo", headers: [.contentType: "application/json"], body: #"{"name":"ada","count":1}"#)
            #expect(response.status == .created)
            #expect(response.headers["Content-Type"] == "application/json")
            #expect(try response.decode(Greeting.self) == Greeting(name: "ADA", count: 2))
        }
    }

    @Test func malformedJsonIs400() async throws {
        try await Self.router().test(.inProcess) { client in
            let response = try await client.execute(.post, "/echo", body: #"{"name": "#)
            #expect(response.status == .badRequest)
            #expect(try response.decode(ErrorBody.self).error.message.hasPrefix("Malformed JSON body"))
        }
    }

    @Test func throwingHandlerIs500AndServerKeepsServing() async throws {
        let server = HTTPServer(
            config: ServerConfig(name: "t", port: 0), router: Self.router(), logger: quietLogger)
        try await withRunning(server) { port async throws in
            for path in ["/boom", "/boom-async"] {
                let response = try await request(port, "GET", path)
                #expect(response.status == 500)
                #expect(response.header("Content-Type") == "application/json")
                let error = try response.json()["error"] as? [String: Any]
                #expect(error?["status"] as? Int == 500)
                #expect(error?["message"] as? String == "Internal Server Error")
                #expect(try await request(port, "GET", "/ok").text == "ok")
            }
            #expect(server.stats.snapshot().handlerErrors == 2)
        }
    }

    @Test func httpErrorChoosesStatus() async throws {
        try await Self.router().test(.inProcess) { client in
            let response = try await client.execute(.get, "/teapot")
            #expect(response.status == 418)
            #expect(try response.decode(ErrorBody.self).error.message == "short and stout")
        }
    }

    @Test func bodyUpToTheLimitIsAccepted() async throws {
        try await withServer(Self.router(), limits: .init(maxBodySize: 1000)) { port async throws in
            let response = try await request(port, "POST", "/size", body: String(repeating: "a", count: 1000))
            #expect(response.status == 200)
            #expect(response.text == "1000")
        }
    }

    @Test func oversizedContentLengthIs413Early() async throws {
        try await withServer(Self.router(), limits: .init(maxBodySize: 1000)) { port async throws in
            let response = try await offPool { () -> RawResponse in
                let connection = try Connection(port: port)
                // Announce a huge body but send none: the answer must come from the headers alone.
                try connection.send("POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
                return try connection.readResponse()
            }
            #expect(response.status == 413)
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(try await request(port, "GET", "/ok").status == 200)
        }
    }

    @Test func oversizedChunkedBodyIs413AtTheEnd() async throws {
        try await withServer(Self.router(), limits: .init(maxBodySize: 1000)) { port async throws in
            let response = try await offPool { () -> RawResponse in
                let connection = try Connection(port: port)
                var text = "POST /size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                for _ in 0..<3 { text += "200\r\n" + String(repeating: "b", count: 512) + "\r\n" }
                text += "0\r\n\r\n"
                try connection.send(text)
                return try connection.readResponse()
            }
            #expect(response.status == 413)
            let small = try await offPool { () -> RawResponse in
                let connection = try Connection(port: port)
                try connection.send(
                    "POST /size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        + "5\r\nhello\r\n0\r\n\r\n")
                return try connection.readResponse()
            }
            #expect(small.text == "5")
        }
    }

    @Test func asyncHandlersRunConcurrentlyOnOneEngineThread() async throws {
        // Eight handlers that each wait until all eight have arrived. On a single engine thread
        // this only completes if a waiting handler frees the thread (suspend/resume); handlers
        // run one after another (or blocking the thread) never meet, and each gives up with 500.
        let arrived = Counter()
        var router = Router()
        router.get("/barrier") { _ in
            arrived.increment()
            guard try await arrived.reaches(8, within: .seconds(5)) else { throw HTTPError(.internalServerError) }
            return .text("met")
        }
        let server = HTTPServer(
            config: ServerConfig(name: "one-thread", port: 0, threadCount: 1), router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 { group.addTask { try await request(port, "GET", "/barrier").status } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 8))
        }
    }

    @Test func customHandlerType() async throws {
        struct Echo: HTTPHandler {
            func respond(to request: Request) async throws -> Response {
                Response(status: .ok, headers: HTTPHeaders([("X-Method", request.method.rawValue)]), body: request.body)
            }
        }
        let server = HTTPServer(config: ServerConfig(name: "echo", port: 0), handler: Echo(), logger: quietLogger)
        try await withRunning(server) { port async throws in
            let response = try await request(port, "PUT", "/anything", body: "payload")
            #expect(response.text == "payload")
            #expect(response.header("X-Method") == "PUT")
        }
    }

    @Test func clientDisconnectCancelsHandlerAndLeaksNothing() async throws {
        let started = Gate()
        let cancelled = Gate()
        let never = Gate()
        var router = Router()
        router.get("/hang") { _ in
            started.open()
            do { try await never.wait() } catch {
                cancelled.open()
                throw error
            }
            return .text("late")
        }
        let server = HTTPServer(config: ServerConfig(name: "t", port: 0), router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            let connection = try await offPool { () -> Connection in
                let connection = try Connection(port: port)
                try connection.send("GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
                return connection
            }
            try await started.wait("the handler to start")
            #expect(server.stats.inFlight == 1)
            connection.close()
            try await cancelled.wait("the handler to be cancelled")
            try await waitUntil("in-flight to return to 0") { server.stats.inFlight == 0 }
            #expect(server.stats.snapshot().aborted == 1)
            #expect(server.stats.snapshot().handlerErrors == 0)
            #expect(try await request(port, "GET", "/hang-not-there").status == 404)
        }
    }

    @Test func countersAddUpByOutcome() async throws {
        let server = HTTPServer(
            config: ServerConfig(name: "counted", port: 0, limits: .init(maxBodySize: 100)), router: Self.router(),
            logger: quietLogger)
        try await withRunning(server) { port async throws in
            #expect(try await request(port, "GET", "/ok").status == 200)
            #expect(try await request(port, "GET", "/ok").status == 200)
            #expect(try await request(port, "GET", "/missing").status == 404)
            #expect(try await request(port, "GET", "/teapot").status == 418)
            #expect(try await request(port, "GET", "/boom").status == 500)
            #expect(try await request(port, "POST", "/size", body: String(repeating: "x", count: 101)).status == 413)
            // A client that sends its request line and part of its headers, then leaves: aborted.
            try await offPool {
                let connection = try Connection(port: port)
                try connection.send("GET /ok HTTP/1.1\r\nHost: t\r\nX-Half: ab")
                _ = connection.unreadBytes(wait: .milliseconds(50))
                connection.close()
            }
            // Counters are recorded when the engine reports the request complete, just after the
            // client has read the response.
            try await waitUntil("every request to be recorded") {
                let snapshot = server.stats.snapshot()
                return snapshot.requests == 6 && snapshot.aborted == 1
            }
            let snapshot = server.stats.snapshot()
            #expect(snapshot.inFlight == 0)
            #expect(snapshot.statusClasses == ["1xx": 0, "2xx": 2, "3xx": 0, "4xx": 3, "5xx": 1])
            #expect(snapshot.handlerErrors == 1)
            #expect(snapshot.latency.count == 6)
            #expect(snapshot.latency.bucketCounts.reduce(0, +) == 6)
        }
    }
}

@Suite("Answers the engine makes by itself", .timeLimit(.minutes(2)))
struct EngineAnswerTests {
    /// libmicrohttpd answers some requests before the layer's handlers run (a malformed length, headers
    /// over the connection memory); they are counted by their status, not as aborted.
    @Test func engineMadeAnswersAreCountedByStatus() async throws {
        var router = Router()
        router.post("/echo") { request in Response(status: .ok, body: request.body) }
        let server = HTTPServer(config: ServerConfig(name: "engine", port: 0), router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            let manyHeaders = "GET /echo HTTP/1.1\r\nHost: t\r\n" + (0..<700).map { "X-H\($0): v\r\n" }.joined() + "\r\n"
            for raw in ["POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", manyHeaders] {
                let status = try await offPool { () -> Int in
                    let connection = try Connection(port: port, timeout: 3)
                    try? connection.send(raw)
                    return try connection.readResponse().status
                }
                #expect(status == 400 || status == 431, "\(status)")
            }
            try await waitUntil("both answers to be recorded") { server.stats.snapshot().requests == 2 }
            let snapshot = server.stats.snapshot()
            #expect(snapshot.statusClasses["4xx"] == 2)
            #expect(snapshot.aborted == 0)
            #expect(snapshot.inFlight == 0)
        }
    }
}

@Suite("Async handlers that finish without suspending", .timeLimit(.minutes(2)))
struct InlineAsyncTests {
    actor Store {
        var count = 0
        func next() -> Int { count += 1; return count }
    }

    @Test func answersWithoutSuspendingAndKeepsTheConnection() async throws {
        let store = Store()
        var router = Router()
        // Awaits, but the actor call may complete without a real suspension.
        router.get("/next") { _ in .text("\(await store.next())") }
        router.get("/fail") { _ in
            _ = await store.next()
            throw HTTPError(.conflict, message: "nope")
        }
        router.get("/yield") { _ in
            await Task.yield()
            return .text("yielded")
        }
        try await withServer(router) { port async throws in
            let texts = try await offPool { () -> [String] in
                let connection = try Connection(port: port)
                var texts: [String] = []
                for path in ["/next", "/yield", "/next", "/fail", "/yield"] {
                    try connection.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\r\n")
                    let response = try connection.readResponse()
                    texts.append("\(response.status) \(response.text)")
                }
                return texts
            }
            #expect(texts[0] == "200 1")
            #expect(texts[1] == "200 yielded")
            #expect(texts[2] == "200 2")
            #expect(texts[3].hasPrefix("409 "))
            #expect(texts[4] == "200 yielded")
        }
    }
}
