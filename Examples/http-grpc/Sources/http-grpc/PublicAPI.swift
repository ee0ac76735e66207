import MHDServers

/// The HTTP side: the greeting over REST, and a status that shows both protocols.
struct PublicAPI: ServerLifecycle {
    let grpc: GRPCService
    let health: HealthService

    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        router.get("/api/hello") { request in
            try .json(Hello(message: Greeting.message(for: request.query["name"] ?? "")))
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
