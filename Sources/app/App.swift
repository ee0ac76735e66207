import ArgumentParser
import Logging
import MHDServers
import CoreMetrics
import Prometheus

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The entry point: runs ``App`` (parsing, validation, `run()`, exit codes: all ArgumentParser's)
/// on the shared concurrency pool and parks the main thread until it exits the process.
///
/// An `async` main would do the same, but Swift's async main ends the main thread with
/// `dispatch_main()`, i.e. `pthread_exit`, whose forced unwind reads the unwind tables for every
/// frame of the main thread: in the release app they stay resident, 1.2 MB of its idle RSS.
/// Nothing in the app runs on the main actor, so the parked main thread is never needed.
@main
enum Entry {
    static func main() {
        Task.detached {
            await App.main()
            exit(0)
        }
        while true { pause() }
    }
}

/// The demo: a public API and an admin API in one process, started together, stopped together.
struct App: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "app",
        abstract: "Runs the public API and the admin API of the multi-server demo.",
        discussion: """
            The public server answers GET /api/hello and GET /api/status; the admin server answers
            GET /admin/metrics and GET /admin/config. Each falls back to the next of ten ports when its
            port is busy. SIGTERM or SIGINT drains in-flight requests and exits 0. SIGHUP reads the
            --tls-cert/--tls-key files again and switches to them without refusing a connection.
            SIGUSR2 starts a new process of this executable on the same sockets and, once it serves,
            drains this one and exits 0. GET /admin/servers lists the servers and their states;
            POST /admin/servers/NAME/restart restarts one without dropping a request.
            """)

    @Option(help: "Address the public server binds (IPv4/IPv6 literal, localhost, 0.0.0.0 or ::).")
    var host = "127.0.0.1"

    @Option(help: "Address the admin server binds. Keep it on loopback unless it is protected.")
    var adminHost = "127.0.0.1"

    @Option(help: "Preferred public port; P+1 ... P+9 are the fallbacks.")
    var publicPort = 3400

    @Option(help: "Preferred admin port; P+1 ... P+9 are the fallbacks.")
    var adminPort = 3401

    @Option(help: "Seconds in-flight requests may take to finish after SIGTERM/SIGINT.")
    var shutdownTimeout: Double = 10

    @Option(help: "Seconds to keep accepting after SIGTERM while /readyz answers 503 (for load balancers).")
    var drainDelay: Double = 0

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(
        help: ArgumentHelp(
            "Require 'Authorization: Bearer TOKEN' on every admin route.",
            discussion: "Prefer the APP_ADMIN_TOKEN environment variable: command lines are visible to other users."))
    var adminToken: String?

    @Option(help: "PEM certificate file: serve the public API over HTTPS (with --tls-key).")
    var tlsCert: String?

    @Option(help: "PEM private key file for --tls-cert.")
    var tlsKey: String?

    @Option(help: "Extra copies of the public API on ephemeral ports (footprint and startup benchmarks).")
    var extraServers = 0

    @Flag(help: "Add the benchmark routes GET /bench/async, GET /bench/middleware, POST /bench/echo and POST /bench/json to the public server.")
    var benchRoutes = false

    @Option(help: ArgumentHelp(
        "An origin whose pages may call the public API from a browser (CORS), e.g. https://app.example.com; repeatable.",
        valueName: "origin"))
    var corsOrigin: [String] = []

    @Flag(inversion: .prefixedNo, help: "Accept or generate X-Request-Id on every request, echo it and log with it.")
    var requestIds = true

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        for (name, port) in [("public", publicPort), ("admin", adminPort)] where !(0...65526).contains(port) {
            throw ValidationError("--\(name)-port must be between 0 and 65526 (it has nine fallbacks)")
        }
        for origin in corsOrigin where !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) || origin.hasSuffix("/") {
            throw ValidationError("--cors-origin takes an origin such as https://app.example.com, not '\(origin)'")
        }
        guard shutdownTimeout >= 0 else { throw ValidationError("--shutdown-timeout must not be negative") }
        guard drainDelay >= 0 else { throw ValidationError("--drain-delay must not be negative") }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
    }

    /// The admin token from `--admin-token` or `APP_ADMIN_TOKEN` (an empty value means none).
    var resolvedAdminToken: String? {
        // getenv, not ProcessInfo: ProcessInfo copies the whole environment into a dictionary.
        let token = adminToken ?? getenv("APP_ADMIN_TOKEN").map { String(cString: $0) }
        return token?.isEmpty == false ? token : nil
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "app")
        // Request metrics go to a Prometheus registry that the admin server exposes, with
        // latency buckets that fit an API server (100 µs … 10 s).
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[RequestMetrics.durationLabel] = RequestMetrics.recommendedDurationBuckets
        MetricsSystem.bootstrap(factory)
        let manager = ServerManager(
            logger: logger, shutdownTimeout: .milliseconds(Int(shutdownTimeout * 1000)),
            drainDelay: .milliseconds(Int(drainDelay * 1000)))
        let health = ServerConfig.HealthChecks()
        var publicConfig = ServerConfig(
            name: "public", host: host, port: publicPort, ports: publicPort..<(publicPort + 10), health: health)
        if let tlsCert, let tlsKey {
            do {
                publicConfig.tls = try .files(certificate: tlsCert, privateKey: tlsKey)
            } catch {
                printError("error: \(error)")
                throw ExitCode(2)
            }
        }
        let servers = [
            Server(
                config: publicConfig,
                lifecycle: PublicAPI(benchRoutes: benchRoutes, requestIDs: requestIds, corsOrigins: corsOrigin)),
            Server(
                config: ServerConfig(
                    name: "admin", host: adminHost, port: adminPort, ports: adminPort..<(adminPort + 10), health: health),
                lifecycle: AdminAPI(
                    shutdownTimeout: shutdownTimeout, token: resolvedAdminToken, registry: registry, requestIDs: requestIds)),
        ] + (0..<max(0, extraServers)).map { index in
            Server(
                config: ServerConfig(name: "extra-\(index + 1)", host: host, port: 0),
                lifecycle: PublicAPI(benchRoutes: benchRoutes, requestIDs: requestIds))
        }
        let ready = Task {
            if let started = try? await manager.waitUntilStarted() {
                logger.info("ready: \(started.count) servers listening")
            }
        }
        defer { ready.cancel() }
        do {
            try await manager.runAll(servers)
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
