@testable import MHDServers
import Logging
import Synchronization
import Testing

/// Collects log records in memory.
final class CapturedLogs: Sendable {
    let records = Locked<[(level: Logger.Level, message: String, metadata: Logger.Metadata)]>([])

    func handler(level: Logger.Level) -> some LogHandler {
        Handler(store: self, logLevel: level)
    }

    struct Handler: LogHandler {
        let store: CapturedLogs
        var logLevel: Logger.Level
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            store.records.withLock { $0.append((event.level, "\(event.message)", merged)) }
        }
    }
}

@Suite("Access log", .timeLimit(.minutes(2)))
struct AccessLogTests {
    static func router() -> Router {
        var router = Router()
        router.get("/items/:id") { request in .text(request.parameters["id"] ?? "") }
        return router
    }

    @Test func oneStructuredLinePerRequestWhenEnabled() async throws {
        let logs = CapturedLogs()
        let logger = Logger(label: "access") { _ in logs.handler(level: .debug) }
        let server = HTTPServer(config: ServerConfig(name: "logged", port: 0), router: Self.router(), logger: logger)
        try await withRunning(server) { port async throws in
            _ = try await request(port, "GET", "/items/7", headers: ["X-Request-Id": "req-42"])
            _ = try await request(port, "GET", "/missing")
            try await waitUntil { logs.records.withLock { $0.filter { $0.message.hasPrefix("GET ") }.count } == 2 }
        }
        let lines = logs.records.withLock { $0.filter { $0.message.hasPrefix("GET ") } }
        #expect(lines.map(\.message) == ["GET /items/7 200", "GET /missing 404"])
        #expect(lines.allSatisfy { $0.level == .debug })
        let first = try #require(lines.first?.metadata)
        #expect(first["server"] == "logged")
        #expect(first["requestID"] == "req-42")
        #expect(first["status"] == "200")
        #expect(first["durationMs"] != nil)
        #expect(lines.last?.metadata["requestID"].map { "\($0)".hasPrefix("logged-") } == true)
    }

    @Test func nothingIsLoggedAboveTheLevelOrWhenOff() async throws {
        let logs = CapturedLogs()
        let infoLogger = Logger(label: "access") { _ in logs.handler(level: .info) }
        var quiet = ServerConfig(name: "quiet", port: 0)
        let off = HTTPServer(config: quiet, router: Self.router(), logger: infoLogger)
        try await withRunning(off) { port async throws in
            _ = try await request(port, "GET", "/items/1")
        }
        let debugLogger = Logger(label: "access") { _ in logs.handler(level: .debug) }
        quiet.accessLogLevel = nil
        let disabled = HTTPServer(config: quiet, router: Self.router(), logger: debugLogger)
        try await withRunning(disabled) { port async throws in
            _ = try await request(port, "GET", "/items/2")
        }
        #expect(logs.records.withLock { $0.filter { $0.message.hasPrefix("GET ") } }.isEmpty)
    }
}
