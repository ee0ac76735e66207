import Logging
import MHDServers
import ServiceLifecycle

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Runs `server` in a ServiceGroup, hands its bound port to `body`, then shuts it down
/// gracefully and waits until it has stopped.
func withRunning<T: Sendable>(
    _ server: HTTPServer, _ body: (Int) async throws -> T
) async throws -> T {
    let group = ServiceGroup(services: [server], logger: quietLogger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let port: Int
        do {
            port = try await server.listeningAddress().port
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
        do {
            let result = try await body(port)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}

/// A server on 127.0.0.1, port 0, answering with `router`.
func withServer<T: Sendable>(
    _ router: Router, limits: ServerConfig.Limits = .init(), shutdownTimeout: Duration = .seconds(10),
    _ body: (Int) async throws -> T
) async throws -> T {
    let server = HTTPServer(
        config: ServerConfig(name: "test", port: 0, limits: limits), router: router, logger: quietLogger,
        shutdownTimeout: shutdownTimeout)
    return try await withRunning(server, body)
}
