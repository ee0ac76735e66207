import MHDServers
import Testing

@Suite("Health and readiness", .timeLimit(.minutes(2)))
struct HealthTests {
    static func server(name: String = "h") -> Server {
        Server(config: ServerConfig(name: name, port: 0, health: .init()), lifecycle: RecordingAPI(recorder: Recorder()))
    }

    @Test func probesAnswerAndBypassAuthentication() async throws {
        var router = Router()
        router.get("/x") { _ in .text("x") }
        router.requireBearerToken("secret")
        let server = HTTPServer(
            config: ServerConfig(name: "p", port: 0, health: .init()), router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            let live = try await request(port, "GET", "/healthz")
            #expect(live.status == 200)
            #expect(live.text == #"{"status":"alive"}"#)
            let ready = try await request(port, "GET", "/readyz")
            #expect(ready.status == 200)
            #expect(ready.text == #"{"status":"ready"}"#)
            // No cache may keep a "ready" through a drain.
            #expect(live.header("Cache-Control") == "no-store")
            #expect(ready.header("Cache-Control") == "no-store")
            #expect(try await request(port, "GET", "/x").status == 401)
        }
    }

    @Test func probesAreOffUnlessConfigured() async throws {
        var router = Router()
        router.get("/x") { _ in .text("x") }
        try await withServer(router) { port async throws in
            #expect(try await request(port, "GET", "/healthz").status == 404)
        }
    }

    @Test func readinessTurns503WhenShutdownStartsWhileStillAccepting() async throws {
        let delay = Duration.seconds(4)
        let manager = ServerManager(logger: quietLogger, drainDelay: delay)
        let run = Task { try await manager.runAll([Self.server()], signals: []) }
        let port = try #require(try await manager.waitUntilStarted()[0].address?.port)
        #expect(try await request(port, "GET", "/readyz").status == 200)
        let start = ContinuousClock.now
        let shutdown = Task { await manager.shutdown() }
        try await waitUntil("readiness to turn 503") { (try? await request(port, "GET", "/readyz").status) == 503 }
        let draining = try await request(port, "GET", "/readyz")
        #expect(draining.status == 503)
        #expect(draining.text == #"{"status":"draining"}"#)
        // Still accepting and serving during the delay.
        #expect(try await request(port, "GET", "/name").text == "h")
        #expect(try await request(port, "GET", "/healthz").status == 200)
        // Then, after the delay and not before, new connections are refused.
        try await waitUntil("the listener to refuse", timeout: .seconds(15)) { await connectionRefused(port) }
        #expect(ContinuousClock.now - start >= delay)
        await shutdown.value
        try await run.value
    }
}
