import MHDServers
#if canImport(Glibc)
import Glibc
#endif
import Prometheus

/// The admin server: live figures and the effective configuration of every server.
struct AdminAPI: ServerLifecycle {
    let shutdownTimeout: Double
    /// When set, every admin route requires `Authorization: Bearer <token>`.
    let token: String?
    /// Where the servers' request metrics are collected.
    let registry: PrometheusCollectorRegistry

    /// Accept or generate `X-Request-Id` on every request, echo it, log with it.
    var requestIDs = true

    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        if requestIDs { router.add(middleware: RequestIDMiddleware()) }
        if let token { router.add(middleware: BearerTokenMiddleware(token: token, realm: "admin", identity: "admin")) }
        router.get("/admin/metrics") { [registry] request in
            // Prometheus text exposition on request; JSON otherwise.
            // The body depends on Accept: caches must key on it (and keep none of it anyway).
            if request.query["format"] == "prometheus" || Self.prefersText(request.headers[.accept]) {
                return Response(
                    status: .ok,
                    headers: [
                        .contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store",
                        .vary: "Accept",
                    ],
                    body: registry.emitToBuffer())
            }
            var metrics = try Response.json(Metrics(servers: (context.manager?.servers ?? []).map(Metrics.Server.init)))
                .uncached()
            metrics.headers[.vary] = "Accept"
            return metrics
        }
        // The same figures as /admin/metrics, as Server-Sent Events, one a second: a dashboard
        // can follow them live. The drain ends the stream cleanly (clients reconnect elsewhere).
        router.get("/admin/events") { _ in
            Response.events(retry: .seconds(2)) { events in
                var sequence = 0
                while true {
                    sequence += 1
                    let figures = Metrics(servers: (context.manager?.servers ?? []).map(Metrics.Server.init))
                    let data = String(decoding: try JSONCoding.standard.encoder.encode(figures), as: UTF8.self)
                    try await events.send(ServerSentEvent(data: data, event: "metrics", id: "\(sequence)"))
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
        // Runtime control: every server's state, and a restart of one without dropping a request.
        router.get("/admin/servers") { _ in
            try Response.json(
                ServerList(pid: Int(getpid()), servers: (context.manager?.servers ?? []).map(ServerList.Server.init))
            ).uncached()
        }
        router.post("/admin/servers/:name/restart") { request in
            guard let manager = context.manager else { throw HTTPError(.serviceUnavailable) }
            let name = request.parameters["name"] ?? ""
            guard let info = manager.servers.first(where: { $0.name == name }) else {
                throw HTTPError(.notFound, message: "no server named '\(name)'")
            }
            // This very request is in flight on the admin server: its restart waits for it to
            // finish, so it runs after the answer.
            if name == context.name {
                Task { try? await manager.restartServer(named: name) }
                return try Response.json(ServerList.Server(info), status: .accepted).uncached()
            }
            do {
                try await manager.restartServer(named: name)
            } catch let error as ServerError where error.code == .invalidConfiguration {
                throw HTTPError(.conflict, message: error.message)
            }
            let restarted = manager.servers.first { $0.name == name }.map(ServerList.Server.init)
            return try Response.json(restarted).uncached()
        }
        router.get("/admin/config") { _ in
            try Response.json(
                Config(
                    shutdownTimeoutSeconds: shutdownTimeout,
                    adminAuthentication: token == nil ? "none" : "bearer token",
                    servers: (context.manager?.servers ?? []).map(Config.Server.init))
            ).uncached()
        }
    }

    /// Whether an `Accept` header asks for plain text (as Prometheus scrapers do) over JSON.
    static func prefersText(_ accept: String?) -> Bool {
        guard let accept = accept?.lowercased() else { return false }
        return accept.contains("text/plain") && !accept.contains("application/json")
    }

    struct Metrics: Encodable {
        var servers: [Server]

        struct Server: Encodable {
            var name: String
            var port: Int?
            var requests: Int
            var errors: Int
            var handlerErrors: Int
            var aborted: Int
            var inFlight: Int
            var statusClasses: [String: Int]
            var latencyMs: Latency
            var uptimeSeconds: Double

            init(_ info: ServerInfo) {
                let stats = info.stats
                name = info.name
                port = info.address?.port
                requests = stats.requests
                errors = stats.errors
                handlerErrors = stats.handlerErrors
                aborted = stats.aborted
                inFlight = stats.inFlight
                statusClasses = stats.statusClasses
                latencyMs = Latency(
                    mean: stats.latency.meanSeconds * 1000, p50: stats.latency.quantile(0.5) * 1000,
                    p99: stats.latency.quantile(0.99) * 1000, max: stats.latency.maxSeconds * 1000)
                uptimeSeconds = stats.uptimeSeconds
            }
        }

        struct Latency: Encodable {
            var mean: Double
            var p50: Double
            var p99: Double
            var max: Double
        }
    }

    /// `GET /admin/servers`: this process and where each server is in its life.
    struct ServerList: Encodable {
        var pid: Int
        var servers: [Server]

        struct Server: Encodable {
            var name: String
            var state: String
            var address: String?
            var generation: Int
            /// Predecessors still draining after a restart.
            var draining: Int
            var inFlight: Int

            init(_ info: ServerInfo) {
                name = info.name
                state = info.state.rawValue
                address = info.address?.url
                generation = info.generation
                draining = info.draining
                inFlight = info.stats.inFlight
            }
        }
    }

    struct Config: Encodable {
        var shutdownTimeoutSeconds: Double
        /// How admin routes are protected; never the secret itself.
        var adminAuthentication: String
        var servers: [Server]

        struct Server: Encodable {
            var name: String
            var host: String
            var preferredPort: Int
            var boundPort: Int?
            var fallbackPorts: [Int]
            var threads: Int
            var limits: Limits

            init(_ info: ServerInfo) {
                name = info.name
                host = info.config.host
                preferredPort = info.config.port
                boundPort = info.address?.port
                fallbackPorts = info.config.ports
                threads = info.config.effectiveThreadCount
                let limits = info.config.limits
                self.limits = Limits(
                    maxConnections: limits.maxConnections, maxConnectionsPerIP: limits.maxConnectionsPerIP,
                    connectionTimeoutSeconds: limits.connectionTimeout.components.seconds,
                    requestHeaderTimeoutSeconds: limits.requestHeaderTimeout.components.seconds,
                    maxBodyBytes: limits.maxBodySize, connectionMemoryBytes: limits.connectionMemory,
                    listenBacklog: limits.listenBacklog)
            }
        }

        struct Limits: Encodable {
            var maxConnections: Int
            var maxConnectionsPerIP: Int
            var connectionTimeoutSeconds: Int64
            var requestHeaderTimeoutSeconds: Int64
            var maxBodyBytes: Int
            var connectionMemoryBytes: Int
            var listenBacklog: Int
        }
    }
}
