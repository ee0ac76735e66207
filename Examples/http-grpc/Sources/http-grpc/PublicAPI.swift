import MHDServers

/// The HTTP side: the greeting over REST, a request as long as the client asks (the HTTP twin of
/// gRPC's `Wait`), and a status that shows both protocols.
struct PublicAPI: ServerLifecycle {
    let grpc: GRPCService
    let health: HealthService

    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        router.get("/api/hello") { request in
            try .json(Hello(message: Greeting.message(for: request.query["name"] ?? "")))
        }
        router.get("/api/wait") { request in
            let milliseconds = min(request.query.get("ms", as: Int.self) ?? 0, 120_000)
            try await Task.sleep(for: .milliseconds(milliseconds))
            return try .json(Waited(waitedMilliseconds: milliseconds))
        }
        router.get("/api/status") { _ in
            try Response.json(
                Status(
                    http: context.address?.url ?? "",
                    grpc: grpc.address?.url.replacingPrefix("http://", with: "") ?? "",
                    grpcHealth: "\(health.status(of: "") ?? .unknown)")
            ).uncached()
        }
    }

    struct Hello: Encodable {
        var message: String
    }

    struct Waited: Encodable {
        var waitedMilliseconds: Int
    }

    struct Status: Encodable {
        var http: String
        var grpc: String
        var grpcHealth: String
    }
}

extension String {
    fileprivate func replacingPrefix(_ prefix: String, with replacement: String) -> String {
        hasPrefix(prefix) ? replacement + dropFirst(prefix.count) : self
    }
}
