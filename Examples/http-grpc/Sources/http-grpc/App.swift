import ArgumentParser
import Logging
import MHDServers

#if canImport(Glibc)
import Glibc
#endif

/// One process, two protocols: the public HTTP API (MHDServers) and a gRPC server (grpc-swift-2)
/// with the standard health service, bound, reported ready, drained and stopped together.
@main
struct HTTPGRPCExample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-grpc",
        abstract: "Runs an HTTP API and a gRPC server side by side under one ServerManager.",
        discussion: """
            HTTP: GET /api/hello?name=NAME, GET /api/wait?ms=N, GET /api/status, /healthz, /readyz.
            gRPC: greeter.v1.Greeter (SayHello, Wait) and grpc.health.v1.Health (Check, Watch).
            Each falls back to the next of ten ports when its port is busy. /readyz and the
            manager's start wait until both listen. SIGTERM or SIGINT: /readyz turns 503 and gRPC
            health NOT_SERVING at once; after the drain delay both stop accepting; calls in
            flight get until the shutdown timeout, then are cancelled; a second signal stops at once.
            """)

    @Option(help: "Address both servers bind.")
    var host = "127.0.0.1"

    @Option(help: "Preferred HTTP port; P+1 ... P+9 are the fallbacks.")
    var httpPort = 8080

    @Option(help: "Preferred gRPC port; P+1 ... P+9 are the fallbacks.")
    var grpcPort = 50051

    @Option(help: "Seconds in-flight requests and calls may take to finish after SIGTERM/SIGINT.")
    var shutdownTimeout: Double = 10

    @Option(help: "Seconds to keep serving after SIGTERM while /readyz answers 503 and gRPC health NOT_SERVING.")
    var drainDelay: Double = 0

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level '\(logLevel)'") }
        for (name, port) in [("http", httpPort), ("grpc", grpcPort)] where !(0...65526).contains(port) {
            throw ValidationError("--\(name)-port must be between 0 and 65526 (it has nine fallbacks)")
        }
        guard shutdownTimeout >= 0, drainDelay >= 0 else { throw ValidationError("durations must not be negative") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "http-grpc")
        let manager = ServerManager(
            logger: logger, shutdownTimeout: .milliseconds(Int(shutdownTimeout * 1000)),
            drainDelay: .milliseconds(Int(drainDelay * 1000)))

        let health = HealthService(services: ["greeter.v1.Greeter"])
        let grpc = GRPCService(
            manager: manager,
            config: ServerConfig(name: "grpc", host: host, port: grpcPort, ports: grpcPort..<(grpcPort + 10)),
            services: [GreeterService()], health: health, logger: logger)
        let http = Server(
            config: ServerConfig(
                name: "http", host: host, port: httpPort, ports: httpPort..<(httpPort + 10),
                health: ServerConfig.HealthChecks()),
            lifecycle: PublicAPI(grpc: grpc, health: health))

        let ready = Task {
            guard let started = try? await manager.waitUntilStarted() else { return }
            let urls = started.map { $0.address?.url ?? "" } + [grpc.address.map { "grpc \($0.host):\($0.port)" } ?? ""]
            logger.info("ready: \(urls.joined(separator: ", "))")
        }
        defer { ready.cancel() }
        do {
            try await manager.runAll([http], alongside: [grpc])
        } catch let error as ServerError {
            printError("error: \(error)")
            throw ExitCode(2)
        }
    }
}

/// Writes one line to standard error.
func printError(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}
