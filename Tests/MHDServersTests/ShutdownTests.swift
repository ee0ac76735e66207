@testable import MHDServers
import ServiceLifecycle
import Synchronization
import Testing

@Suite("Graceful shutdown of one server", .timeLimit(.minutes(2)))
struct ShutdownTests {
    /// A router whose `/held` handler starts, then waits for `release` (throwing if cancelled).
    static func heldRouter(started: Gate, release: Gate, cancelled: Gate = Gate()) -> Router {
        var router = Router()
        router.get("/held") { _ in
            started.open()
            do { try await release.wait() } catch {
                cancelled.open()
                throw error
            }
            return .text("finished")
        }
        router.get("/ping") { _ in .text("pong") }
        return router
    }

    @Test func inFlightRequestFinishesWithCloseAndIdleConnectionsAreClosed() async throws {
        let started = Gate()
        let release = Gate()
        let server = HTTPServer(
            config: ServerConfig(name: "drain", port: 0), router: Self.heldRouter(started: started, release: release),
            logger: quietLogger, shutdownTimeout: .seconds(30))
        let group = ServiceGroup(services: [server], logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.listeningAddress().port
            // An idle keep-alive connection that has already been served once.
            let idle = try await offPool { () -> Connection in
                let connection = try Connection(port: port, timeout: 10)
                try connection.send("GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
                _ = try connection.readResponse()
                return connection
            }
            // A keep-alive request (it does not ask for the close) that is in flight at shutdown.
            let held = Task {
                try await offPool { () -> (RawResponse, Connection.Ending) in
                    let connection = try Connection(port: port, timeout: 10)
                    try connection.send("GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
                    let response = try connection.readResponse()
                    return (response, connection.ending())
                }
            }
            try await started.wait("the held handler to start")
            await group.triggerGracefulShutdown()
            try await waitUntil("the listener to refuse") { await connectionRefused(port) }
            // Refused while the held request is still running.
            #expect(server.stats.inFlight == 1)
            // The drain is waiting for it: its end must wake the drain.
            try await waitUntil("the drain to wait") { server.isWaitingForInFlightRequests }
            release.open()
            let released = ContinuousClock.now
            let (response, after) = try await held.value
            #expect(response.status == 200)
            #expect(response.text == "finished")
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(after == .closed)
            try await tasks.waitForAll()
            // The drain ended when the last request did, not at its 30 s deadline.
            #expect(ContinuousClock.now - released < .seconds(10))
            // The daemon stopped: the idle keep-alive connection was closed, not left hanging.
            #expect(try await offPool { idle.ending() } == .closed)
        }
        #expect(server.stats.inFlight == 0)
    }

    @Test func drainDeadlineCancelsStragglersWithA503() async throws {
        let started = Gate()
        let cancelled = Gate()
        let server = HTTPServer(
            config: ServerConfig(name: "deadline", port: 0),
            router: Self.heldRouter(started: started, release: Gate(), cancelled: cancelled), logger: quietLogger,
            shutdownTimeout: .seconds(1))
        let group = ServiceGroup(services: [server], logger: quietLogger)
        let elapsed = try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.listeningAddress().port
            let stuck = Task { try await request(port, "GET", "/held", keepAlive: true) }
            try await started.wait("the stuck handler to start")
            let start = ContinuousClock.now
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            let elapsed = ContinuousClock.now - start
            let response = try await stuck.value
            #expect(response.status == 503)
            #expect(response.header("Connection")?.lowercased() == "close")
            return elapsed
        }
        // It waited for the deadline; the handler never ends by itself, so only the deadline
        // can have ended the wait (the bound is far from "never", whatever the machine's load).
        #expect(elapsed >= .milliseconds(950))
        #expect(elapsed < .seconds(10))
        #expect(cancelled.isOpen)
        #expect(server.stats.inFlight == 0)
    }

    @Test func cancellationStopsAtOnceEvenWithARequestInFlight() async throws {
        let started = Gate()
        let cancelled = Gate()
        let server = HTTPServer(
            config: ServerConfig(name: "cancel", port: 0),
            router: Self.heldRouter(started: started, release: Gate(), cancelled: cancelled), logger: quietLogger,
            shutdownTimeout: .seconds(60))
        let task = Task { try await server.run() }
        let port = try await server.listeningAddress().port
        #expect(try await request(port, "GET", "/ping").status == 200)
        let stuck = Task { try await request(port, "GET", "/held") }
        try await started.wait("the stuck handler to start")
        let start = ContinuousClock.now
        task.cancel()
        try await task.value
        // A 60 s drain deadline was not waited for.
        #expect(ContinuousClock.now - start < .seconds(20))
        #expect(cancelled.isOpen)
        #expect(await connectionRefused(port))
        #expect(try await stuck.value.status == 503)
    }
}
