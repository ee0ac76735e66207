import MHDServers

/// The public server: a greeting and a status probe, every answer with its request ID, and
/// CORS for the origins given.
struct PublicAPI: ServerLifecycle {
    static let hello = Response.json(raw: #"{"message":"Hello from the public server!"}"#).reusable()

    /// Adds the routes `scripts/bench.sh` measures besides `/api/hello`.
    var benchRoutes = false
    /// Accept or generate `X-Request-Id` on every request, echo it, log with it.
    var requestIDs = true
    /// Origins whose pages may call this API from a browser (none: no CORS headers).
    var corsOrigins: [String] = []

    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        if requestIDs { router.add(middleware: RequestIDMiddleware()) }
        if !corsOrigins.isEmpty {
            router.add(middleware: CORSMiddleware(allowedOrigins: .list(corsOrigins), exposedHeaders: ["X-Request-Id"]))
        }
        router.get("/api/hello") { _ in Self.hello }
        router.get("/api/status") { _ in
            try Response.json(
                Status(
                    status: "ok", server: context.name, port: context.address?.port ?? 0,
                    uptimeSeconds: context.stats?.snapshot().uptimeSeconds ?? 0)
            ).uncached()
        }
        if benchRoutes {
            // An async handler that awaits something trivial: measures the suspend/resume bridge.
            router.get("/bench/async") { _ in
                await Task.yield()
                return Self.hello
            }
            // An async handler that really suspends: it awaits a task that runs on Swift's shared
            // pool (as awaiting I/O would), so its connection is suspended and resumed.
            router.get("/bench/suspend") { _ in
                await Task.detached {}.value
                return Self.hello
            }
            // Echoes a JSON body back: the body path of the bridge, with no JSON codec cost
            // (the C reference does the same, so the comparison is like for like).
            router.post("/bench/echo") { request in
                Response(status: .ok, headers: [.contentType: "application/json"], body: request.body)
            }
            // Decodes and re-encodes the body with Codable: what a typical JSON route costs.
            router.post("/bench/json") { request in
                try .json(try request.decode(Echo.self))
            }
            // The greeting behind the inline middleware users add most (request ID, CORS): what
            // an inline middleware chain costs.
            router.group("/bench", middleware: [RequestIDMiddleware(), CORSMiddleware(allowedOrigins: .any)]) { bench in
                bench.get("/middleware") { _ in Self.hello }
            }
            BenchStreams.register(on: &router)
            do {
                try BenchFiles.register(on: &router)
            } catch {
                context.logger.error("GET /bench/file is unavailable: \(error)")
            }
        }
    }

    struct Echo: Codable {
        var id: Int
        var name: String
        var tags: [String]
        var payload: String
    }

    struct Status: Encodable {
        var status: String
        var server: String
        var port: Int
        var uptimeSeconds: Double
    }
}
