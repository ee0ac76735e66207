@testable import MHDServers
import Glibc
import Testing

/// Async handlers prefer the engine-thread executor: what becomes ready on the engine thread
/// runs there, what becomes ready elsewhere runs on the shared pool.
@Suite("Engine-thread executor", .timeLimit(.minutes(1)))
struct EngineExecutorTests {
    actor Tally {
        var count = 0
        func add() -> Int { count += 1; return count }
    }

    /// A handler whose awaits complete at once stays on the engine thread: no suspension of
    /// the connection, no hop (the thread before and after the awaits is the same).
    @Test func awaitsThatCompleteAtOnceStayOnTheEngineThread() async throws {
        let tally = Tally()
        var router = Router()
        router.get("/local") { _ in
            let before = pthread_self()
            await Task.yield()
            _ = await tally.add()  // an uncontended actor
            await Task.yield()
            return .text(pthread_equal(before, pthread_self()) != 0 ? "same thread" : "moved")
        }
        let server = HTTPServer(config: ServerConfig(name: "exec", port: 0), router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            for _ in 0..<20 { #expect(try await request(port, "GET", "/local").text == "same thread") }
        }
    }

    /// A handler that keeps yielding past the drain budget still finishes: the rest of its
    /// work goes to the shared pool, and the connection is suspended and resumed as usual.
    @Test func aHandlerPastTheBudgetFinishesOnTheSharedPool() async throws {
        var router = Router()
        router.get("/busy") { _ in
            for _ in 0..<(EngineThreadExecutor.budget * 4) { await Task.yield() }
            return .text("done")
        }
        router.get("/sleepy") { _ in
            try await Task.sleep(for: .milliseconds(20))
            return .text("slept")
        }
        let server = HTTPServer(config: ServerConfig(name: "exec", port: 0), router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            #expect(try await request(port, "GET", "/busy").text == "done")
            #expect(try await request(port, "GET", "/sleepy").text == "slept")
            try await waitUntil("requests to end") { server.stats.inFlight == 0 }
        }
    }

    /// Outside a drain (any other thread), jobs go to the shared pool as usual.
    @Test func jobsFromElsewhereGoToTheSharedPool() async throws {
        let result = await Task(executorPreference: EngineThreadExecutor.shared) { () -> Int in
            await Task.yield()
            return 42
        }.value
        #expect(result == 42)
    }
}
