import Foundation
import Logging
import MHDServers
import MHDServersTesting
import Testing

// The examples of MHDServersTesting's documentation, as tests: they compile and they hold.

private struct User: Codable, Equatable {
    var id: Int
    var name: String
}

private struct CreateUser: Codable {
    var name: String
}

private let release = Gate()

private func exampleRouter() -> Router {
    var router = Router()
    router.get("/hello") { _ in .text("hello") }
    router.get("/users/:id") { request in
        guard request.parameters.get("id", as: Int.self) == 1 else { throw HTTPError(.notFound, message: "no such user") }
        return try .json(User(id: 1, name: "Ada"))
    }
    router.post("/users") { request in
        try .json(User(id: 2, name: try request.decode(CreateUser.self).name), status: .created)
    }
    router.put("/files/:name") { request in .text("\(request.body.count) bytes") }
    router.post("/notes") { request in .text(request.bodyText, status: .created) }
    router.get("/slow") { _ in
        try await release.wait()  // cancelled when the client gives up
        return .text("late")
    }
    return router
}

private struct PublicAPI: ServerLifecycle {
    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        router.get("/api/hello") { _ in .text("hello from \(context.name)") }
    }
}

private struct AdminAPI: ServerLifecycle {
    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        router.get("/admin/stats") { _ in .text("stats") }
    }
}

@Suite("MHDServersTesting: documentation examples", .timeLimit(.minutes(2)))
struct TestingExamplesTests {
    let router = exampleRouter()
    let logger = quietLogger

    @Test(arguments: [TestMode.inProcess, .live])
    func hello(mode: TestMode) async throws {
        var router = Router()
        router.get("/hello") { _ in .text("hello") }
        try await router.test(mode) { client in
            let response = try await client.execute(.get, "/hello")
            #expect(response.text == "hello")
        }
    }

    @Test func modes() async throws {
        try await router.test(.inProcess) { client async throws in
            #expect(try await client.execute(.get, "/hello").status == .ok)
        }
        try await router.test(.live) { client in
            let response = try await client.execute(.get, "/hello")
            #expect(response.headers["Content-Length"] == "5")
        }
        try await router.test(.live(timeout: .milliseconds(200))) { client in
            await #expect(throws: TestClientError.self) { try await client.execute(.get, "/slow") }
        }
        #expect("\(TestMode.inProcess) \(TestMode.live) \(TestMode.live(timeout: .seconds(2)))"
            == "inProcess live live(timeout: 2.0 seconds)")
    }

    @Test(arguments: [TestMode.inProcess, .live])
    func responses(mode: TestMode) async throws {
        try await router.test(mode) { client in
            let response = try await client.execute(.get, "/users/1")
            #expect(response.status == .ok)
            #expect(response.headers["Content-Type"] == "application/json")
            let user = try response.decode(User.self)
            #expect(user.name == "Ada")
            #expect(response.status == .ok, "\(response)")

            let missing = try await client.execute(.get, "/users/2")
            struct ErrorBody: Decodable { struct Detail: Decodable { var status: Int; var message: String }; var error: Detail }
            let failure = try missing.decode(ErrorBody.self)
            #expect(failure.error.status == 404)
            #expect("\(missing)".hasPrefix("404 Not Found\n"))
            #expect("\(missing)".contains("\nContent-Type: application/json\n"))
            #expect("\(missing)".hasSuffix("\n\n{\"error\":{\"status\":404,\"message\":\"no such user\"}}"))
        }
        let expected = TestResponse(status: .ok, headers: [.contentType: "text/plain"], body: Array("hi".utf8))
        #expect(expected.text == "hi")
    }

    @Test(arguments: [TestMode.inProcess, .live])
    func clients(mode: TestMode) async throws {
        try await router.test(mode) { client in
            let created = try await client.execute(.post, "/users", json: CreateUser(name: "Ada"))
            #expect(created.status == .created)
            let missing = try await client.execute(.get, "/users/999", headers: [.accept: "application/json"])
            #expect(missing.status == .notFound)
            let response = try await client.execute(.post, "/users", json: CreateUser(name: "Ada"))
            #expect(try response.decode(User.self).name == "Ada")
            let put = try await client.execute(
                .put, "/files/a.bin", headers: [.contentType: "application/octet-stream"], body: [1, 2, 3])
            #expect(put.text == "3 bytes")
            let note = try await client.execute(.post, "/notes", headers: [.contentType: "text/plain"], body: "remember")
            #expect(note.text == "remember")
            print(client.address?.url ?? "in process")
        }
    }

    @Test func errors() async throws {
        try await router.test(.live(timeout: .milliseconds(200))) { client in
            do {
                _ = try await client.execute(.get, "/slow")
                Issue.record("the request cannot end before its time limit")
            } catch let error as TestClientError {
                #expect(error.kind == .timedOut)
                #expect(error.description.hasPrefix("GET /slow to 127.0.0.1:"))
                #expect(error.message.hasSuffix("no complete response within 0.2 seconds"))
            }
        }
    }

    @Test func routerLifecycleAndManager() async throws {
        var router = Router()
        router.get("/users/:id") { request in .text("user \(request.parameters["id"]!)") }

        try await router.test(.inProcess) { client in
            let response = try await client.execute(.get, "/users/1")
            #expect(response.status == .ok)
            #expect(response.text == "user 1")
        }

        try await PublicAPI().test(.live, config: ServerConfig(name: "public", port: 0)) { client async throws in
            #expect(try await client.execute(.get, "/api/hello").text == "hello from public")
        }

        let manager = ServerManager(logger: logger, notifiesSystemd: false)
        let servers = [
            Server(config: ServerConfig(name: "public", port: 0), lifecycle: PublicAPI()),
            Server(config: ServerConfig(name: "admin", port: 0), lifecycle: AdminAPI()),
        ]
        try await manager.test(servers) { clients in
            #expect(try await clients["public"]!.execute(.get, "/api/hello").status == .ok)
            #expect(try await clients["admin"]!.execute(.get, "/api/hello").status == .notFound)
            let hello = try await clients["public"]!.execute(.get, "/api/hello")
            let stats = try await clients.client("admin").execute(.get, "/admin/stats")
            #expect(hello.status == .ok && stats.status == .ok)
            #expect(clients.names == ["public", "admin"])
        }
    }
}
