import Logging
@_spi(Testing) import MHDServers
import ServiceLifecycle

extension Router {
    /// Runs `body` with a client for this router: in process, or live on a real server that
    /// runs for exactly as long as `body` (it is stopped when `body` returns or throws).
    ///
    /// - Parameters:
    ///   - mode: ``TestMode/inProcess`` or ``TestMode/live``.
    ///   - config: the live server's configuration (limits, health probes, TLS is not
    ///     supported by the client); by default `127.0.0.1` on a port the system chooses.
    ///   - logger: where the live server logs; by default nowhere.
    ///   - isolation: the caller's actor, inherited by `body` (leave the default).
    ///   - body: the test.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws, or the server's start error.
    ///
    /// A body whose only `try` is inside `#expect(...)` is written `{ client async throws in`:
    /// the compiler decides whether a closure throws before it expands macros.
    ///
    /// ```swift
    /// var router = Router()
    /// router.get("/users/:id") { request in .text("user \(request.parameters["id"]!)") }
    ///
    /// try await router.test(.inProcess) { client in
    ///     let response = try await client.execute(.get, "/users/1")
    ///     #expect(response.status == .ok)
    ///     #expect(response.text == "user 1")
    /// }
    /// ```
    @discardableResult
    public func test<Value>(
        _ mode: TestMode,
        config: ServerConfig = ServerConfig(name: "test", port: 0),
        logger: Logger? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TestClient) async throws -> Value
    ) async throws -> Value {
        switch mode.kind {
        case .inProcess:
            return try await body(TestClient(router: self))
        case .live:
            let server = HTTPServer(config: config, router: self, logger: logger ?? quietLogger)
            return try await runLive(server, timeout: mode.timeout, logger: logger ?? quietLogger, body)
        }
    }
}

extension ServerLifecycle {
    /// Runs `body` with a client for the server this lifecycle describes.
    ///
    /// In process, `ServerLifecycle.registerRoutes(on:context:)` builds the router
    /// with a context for `config` (its `manager`, `address` and `stats` are `nil`) and no
    /// other hook runs. Live, the lifecycle runs under a real `ServerManager`, so
    /// every hook runs: the port hooks and `onStarted` before `body`, `onShutdown` after it
    /// (also when `body` throws).
    ///
    /// ```swift
    /// struct PublicAPI: ServerLifecycle {
    ///     func registerRoutes(on router: inout Router, context: HTTPServerContext) {
    ///         router.get("/api/hello") { _ in .text("hello from \(context.name)") }
    ///     }
    /// }
    ///
    /// try await PublicAPI().test(.live, config: ServerConfig(name: "public", port: 0)) { client async throws in
    ///     #expect(try await client.execute(.get, "/api/hello").text == "hello from public")
    /// }
    /// ```
    @discardableResult
    public func test<Value>(
        _ mode: TestMode,
        config: ServerConfig = ServerConfig(name: "test", port: 0),
        logger: Logger? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TestClient) async throws -> Value
    ) async throws -> Value {
        let logger = logger ?? quietLogger
        switch mode.kind {
        case .inProcess:
            let context = HTTPServerContext(config: config, logger: logger)
            var router = Router()
            registerRoutes(on: &router, context: context)
            return try await body(TestClient(router: router))
        case .live:
            let manager = ServerManager(logger: logger, notifiesSystemd: false)
            return try await manager.test([Server(config: config, lifecycle: self)], timeout: mode.timeout) { clients in
                try await body(try clients.client(config.name))
            }
        }
    }
}

extension ServerManager {
    /// Runs `servers` (and `services`) with this manager for exactly as long as `body`: starts
    /// them as `ServerManager.runAll(_:alongside:signals:reloadSignals:upgradeSignals:)` does (without trapping
    /// signals), waits until every server listens, runs `body` with a client for each, then
    /// shuts down gracefully and waits until everything has stopped, also when `body` throws.
    /// Every lifecycle hook runs. A manager runs once: use a new one for each test.
    ///
    /// ```swift
    /// let manager = ServerManager(logger: logger, notifiesSystemd: false)
    /// let servers = [
    ///     Server(config: ServerConfig(name: "public", port: 0), lifecycle: PublicAPI()),
    ///     Server(config: ServerConfig(name: "admin", port: 0), lifecycle: AdminAPI()),
    /// ]
    /// try await manager.test(servers) { clients async throws in
    ///     #expect(try await clients["public"]!.execute(.get, "/api/hello").status == .ok)
    ///     #expect(try await clients["admin"]!.execute(.get, "/api/hello").status == .notFound)
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - servers: the servers, started in this order.
    ///   - services: services that live and stop with them.
    ///   - timeout: how long each request of a client may take.
    ///   - isolation: the caller's actor, inherited by `body` (leave the default).
    ///   - body: the test.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws, the start error (a `ServerError`), or the
    ///   error a service failed with.
    @discardableResult
    public func test<Value>(
        _ servers: [Server],
        alongside services: [any Service] = [],
        timeout: Duration = .seconds(30),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TestClients) async throws -> Value
    ) async throws -> Value {
        try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { tasks in
            tasks.addTask { try await self.runAll(servers, alongside: services, signals: []) }
            let outcome: Result<Value, any Error>
            do {
                _ = try await waitUntilStarted()
                outcome = .success(try await body(TestClients(manager: self, timeout: timeout)))
            } catch {
                outcome = .failure(error)
            }
            await shutdown()
            return try await finish(outcome, &tasks)
        }
    }
}

/// Runs `server` in a service group for as long as `body`.
func runLive<Value>(
    _ server: HTTPServer, timeout: Duration, logger: Logger, isolation: isolated (any Actor)? = #isolation,
    _ body: (TestClient) async throws -> Value
) async throws -> Value {
    let group = ServiceGroup(services: [server], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { tasks in
        tasks.addTask { try await group.run() }
        let outcome: Result<Value, any Error>
        do {
            let address = try await server.listeningAddress()
            outcome = .success(try await body(TestClient(address: address, timeout: timeout)))
        } catch {
            outcome = .failure(error)
        }
        await group.triggerGracefulShutdown()
        return try await finish(outcome, &tasks)
    }
}

/// Waits for the server's task, then returns the test's result; the test's own error wins
/// over the server's.
private func finish<Value>(
    _ outcome: Result<Value, any Error>, _ tasks: inout ThrowingTaskGroup<Void, any Error>,
    isolation: isolated (any Actor)? = #isolation
) async throws -> Value {
    do {
        try await tasks.waitForAll()
    } catch {
        if case .success = outcome { throw error }
    }
    return try outcome.get()
}

/// Test servers log nowhere unless given a logger.
let quietLogger = Logger(label: "MHDServersTesting", factory: { _ in SwiftLogNoOpLogHandler() })
