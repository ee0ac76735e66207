import Foundation
import MHDServers
import MHDServersTesting
import Testing

/// Routing is the router's own logic, so it is tested in process; what needs the wire (HEAD
/// framing, keep-alive, the peer's address) runs on a real server.
@Suite("Routing", .timeLimit(.minutes(2)))
struct RoutingTests {
    static func router() -> Router {
        var router = Router()
        router.get("/hello") { _ in .text("hello") }
        router.get("/users/:id") { request in .text("user \(request.parameters["id"] ?? "-")") }
        router.get("/users/me") { _ in .text("me") }
        router.get("/users/:id/posts/:post") { request in
            .text("\(request.parameters["id"]!)/\(request.parameters.get("post", as: Int.self)! + 1)")
        }
        router.get("/files/*") { request in .text("file \(request.parameters["*"] ?? "")") }
        router.get("/search") { request in
            .text("q=\(request.query["q"] ?? "nil") tags=\(request.query.values(for: "tag").joined(separator: ","))")
        }
        router.post("/hello") { _ in .text("posted") }
        router.delete("/hello") { _ in Response(status: .noContent) }
        router.get("/headers") { request in .text(request.headers["x-custom-thing"] ?? "none") }
        router.get("/peer") { request in .text(request.remoteAddress ?? "none") }
        return router
    }

    @Test func literalRoute() async throws {
        try await Self.router().test(.inProcess) { client in
            let response = try await client.execute(.get, "/hello")
            #expect(response.status == .ok)
            #expect(response.text == "hello")
            #expect(response.headers["Content-Type"] == "text/plain; charset=utf-8")
        }
    }

    @Test func parametersLiteralsWinAndWildcard() async throws {
        try await Self.router().test(.inProcess) { client async throws in
            #expect(try await client.execute(.get, "/users/42").text == "user 42")
            #expect(try await client.execute(.get, "/users/me").text == "me")
            #expect(try await client.execute(.get, "/users/7/posts/9").text == "7/10")
            #expect(try await client.execute(.get, "/files/a/b/c.txt").text == "file a/b/c.txt")
            #expect(try await client.execute(.get, "/hello/").text == "hello")
        }
    }

    @Test func queryParameters() async throws {
        try await Self.router().test(.inProcess) { client in
            let response = try await client.execute(.get, "/search?q=swift%20nio&tag=a&tag=b")
            #expect(response.text == "q=swift nio tags=a,b")
            #expect(try await client.execute(.get, "/search").text == "q=nil tags=")
        }
    }

    @Test func headersAreCaseInsensitive() async throws {
        try await Self.router().test(.inProcess) { client async throws in
            #expect(try await client.execute(.get, "/headers", headers: HTTPHeaders([("X-Custom-Thing", "42")])).text == "42")
        }
    }

    @Test func peerIsKnown() async throws {
        try await withServer(Self.router()) { port async throws in
            #expect(try await request(port, "GET", "/peer").text.hasPrefix("127.0.0.1:"))
        }
    }

    @Test func unknownPathIs404Json() async throws {
        try await Self.router().test(.inProcess) { client in
            let response = try await client.execute(.get, "/nope")
            #expect(response.status == .notFound)
            #expect(response.headers["Content-Type"] == "application/json")
            #expect(try response.decode(ErrorBody.self).error.status == 404)
        }
    }

    @Test func wrongMethodIs405WithAllow() async throws {
        try await Self.router().test(.inProcess) { client in
            let response = try await client.execute(.put, "/hello", body: "x")
            #expect(response.status == .methodNotAllowed)
            #expect(response.headers["Allow"] == "DELETE, GET, HEAD, POST")
            let dynamic = try await client.execute(.post, "/users/1", body: "")
            #expect(dynamic.status == .methodNotAllowed)
            #expect(dynamic.headers["Allow"] == "GET, HEAD")
        }
    }

    @Test func headIsAnsweredFromGetWithoutBody() async throws {
        try await withServer(Self.router()) { port async throws in
            let (head, leaked, next) = try await offPool { () -> (RawResponse, [UInt8], RawResponse) in
                let connection = try Connection(port: port)
                try connection.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                let head = try connection.readResponse(head: true)
                // Nothing may follow the header block of a HEAD response.
                let leaked = connection.unreadBytes()
                try connection.send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return (head, leaked, try connection.readResponse())
            }
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == "5")
            #expect(leaked.isEmpty, "bytes after the HEAD response: \(String(decoding: leaked, as: UTF8.self))")
            #expect(next.status == 200)
            #expect(next.text == "hello")
        }
    }

    @Test func deleteAnswers204() async throws {
        try await Self.router().test(.inProcess) { client async throws in
            #expect(try await client.execute(.delete, "/hello").status == .noContent)
        }
    }

    @Test func keepAliveServesTwoRequestsOnOneConnection() async throws {
        try await withServer(Self.router()) { port async throws in
            let (first, second) = try await offPool { () -> (RawResponse, RawResponse) in
                let connection = try Connection(port: port)
                try connection.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                let first = try connection.readResponse()
                try connection.send("GET /users/5 HTTP/1.1\r\nHost: t\r\n\r\n")
                return (first, try connection.readResponse())
            }
            #expect(first.status == 200)
            #expect(second.status == 200)
            #expect(first.header("Connection")?.lowercased() != "close")
            #expect(second.text == "user 5")
        }
    }

    @Test func mountedRouter() async throws {
        var api = Router()
        api.get("/ping") { _ in .text("pong") }
        api.get("/items/:id") { request in .text(request.parameters["id"]!) }
        var root = Router()
        root.mount("/api/v1", api)
        try await root.test(.inProcess) { client async throws in
            #expect(try await client.execute(.get, "/api/v1/ping").text == "pong")
            #expect(try await client.execute(.get, "/api/v1/items/x").text == "x")
            #expect(try await client.execute(.get, "/ping").status == .notFound)
        }
    }
}

/// The JSON body of every error answer: `{"error":{"status":N,"message":"..."}}`.
struct ErrorBody: Decodable {
    struct Detail: Decodable {
        var status: Int
        var message: String
    }
    var error: Detail
}
