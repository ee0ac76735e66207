import MHDServers
import ServiceLifecycle
import Synchronization
import Testing

@Suite("Graceful shutdown of one server")
struct ShutdownTests {
    @Test func inFlightRequestFinishesAndNewConnectionsAreRefused() async throws {
        let started = Mutex(false)
        var router = Router()
        router.get("/slow") { _ in
            started.withLock { $0 = true }
            try await Task.sleep(for: .milliseconds(600))
            return .text("finished")
        }
        let server = HTTPServer(config: ServerConfig(name: "drain", port: 0), router: router, logger: quietLogger)
        let group = ServiceGroup(services: [server], logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.listeningAddress().port
            let slow = Task { try await request(port, "GET", "/slow") }
            try await waitUntil { started.withLock { $0 } }
            await group.triggerGracefulShutdown()
            try await waitUntil { await connectionRefused(port) }
            // Refused while the slow request is still running.
            #expect(await connectionRefused(port))
            #expect(server.stats.inFlight == 1)
            let response = try await slow.value
            #expect(response.status == 200)
            #expect(response.text == "finished")
            #expect(response.header("Connection")?.lowercased() == "close")
            try await tasks.waitForAll()
        }
        #expect(server.stats.inFlight == 0)
    }

    @Test func drainDeadlineCancelsStragglers() async throws {
        let cancelled = Mutex(false)
        let started = Mutex(false)
        var router = Router()
        router.get("/stuck") { _ in
            started.withLock { $0 = true }
            do { try await Task.sleep(for: .seconds(30)) } catch {
                cancelled.withLock { $0 = true }
                throw error
            }
            return .text("never")
        }
        let server = HTTPServer(
            config: ServerConfig(name: "deadline", port: 0), router: router, logger: quietLogger,
            shutdownTimeout: .milliseconds(300))
        let group = ServiceGroup(services: [server], logger: quietLogger)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.listeningAddress().port
            let stuck = Task { try await request(port, "GET", "/stuck") }
            try await waitUntil { started.withLock { $0 } }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            let response = try await stuck.value
            #expect(response.status == 503)
        }
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(cancelled.withLock { $0 })
    }

    @Test func cancellationStopsAtOnce() async throws {
        var router = Router()
        router.get("/ping") { _ in .text("pong") }
        let server = HTTPServer(config: ServerConfig(name: "cancel", port: 0), router: router, logger: quietLogger)
        let task = Task { try await server.run() }
        let port = try await server.listeningAddress().port
        #expect(try await request(port, "GET", "/ping").status == 200)
        task.cancel()
        try await task.value
        #expect(await connectionRefused(port))
    }
}
