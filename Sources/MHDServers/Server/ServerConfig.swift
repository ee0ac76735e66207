import Logging

/// Describes one HTTP server: its name, where it listens, and its engine limits.
///
/// The server binds `host` on `port` first, then on each of `ports` in order (repeats are
/// skipped) until a bind succeeds. Port `0` asks the system for a free ephemeral port.
///
/// ```swift
/// // 3400, or 3401...3409 when 3400 is taken
/// let config = ServerConfig(name: "public", port: 3400, ports: 3400..<3410)
///
/// // all interfaces, IPv6 and IPv4, bigger uploads
/// var upload = ServerConfig(name: "upload", host: "::", port: 8080)
/// upload.limits.maxBodySize = 16 << 20
/// ```
public struct ServerConfig: Sendable, Hashable {
    /// The server's name, used in logs, errors and metrics.
    public var name: String
    /// The address to bind: an IPv4 or IPv6 literal, `localhost`, or `0.0.0.0` / `::` for all
    /// interfaces. Defaults to `127.0.0.1`.
    public var host: String
    /// The preferred port (`0` for an ephemeral port).
    public var port: Int
    /// Fallback ports tried in order after ``port`` when it is busy.
    public var ports: [Int]
    /// Connection and request limits.
    public var limits: Limits
    /// Whether every request gets a server span (``TracingMiddleware``) when a tracer is
    /// bootstrapped (`InstrumentationSystem.bootstrap`); with none, nothing is traced and nothing
    /// costs. Default true.
    public var tracesRequests = true
    /// Threads serving this server's connections; `nil` uses one per CPU this process may use
    /// (see ``effectiveThreadCount``).
    public var threadCount: Int?
    /// Liveness and readiness routes, answered before any other route or interceptor (probes
    /// carry no credentials). Off unless set.
    public var health: HealthChecks?
    /// The level of the access log line each request writes when it ends (server, method,
    /// path, status, duration, request id). Lines are only built when the logger is at this
    /// level or lower; `nil` turns the access log off. Default `.debug`.
    public var accessLogLevel: Logger.Level?
    /// Certificate and key that make this server speak HTTPS; `nil` for plain HTTP.
    public var tls: TLS?

    /// Creates a configuration.
    ///
    /// ```swift
    /// ServerConfig(name: "admin", host: "127.0.0.1", port: 3401, ports: 3401..<3411)
    /// ```
    public init(
        name: String,
        host: String = "127.0.0.1",
        port: Int,
        ports: some Sequence<Int> = [Int](),
        limits: Limits = Limits(),
        threadCount: Int? = nil,
        health: HealthChecks? = nil
    ) {
        self.name = name
        self.host = host
        self.port = port
        self.ports = Array(ports)
        self.limits = limits
        self.threadCount = threadCount
        self.health = health
        self.accessLogLevel = .debug
        self.tls = nil
    }

    /// A PEM certificate (chain) and private key for HTTPS.
    ///
    /// ```swift
    /// var config = ServerConfig(name: "public", host: "0.0.0.0", port: 8443)
    /// config.tls = try .files(certificate: "/etc/app/cert.pem", privateKey: "/etc/app/key.pem")
    /// ```
    public struct TLS: Sendable, Hashable, CustomStringConvertible {
        /// The certificate, PEM encoded (a chain may follow the leaf).
        public var certificatePEM: String
        /// The private key, PEM encoded. Never printed by ``description``.
        public var privateKeyPEM: String

        /// The file the certificate was read from (``files(certificate:privateKey:)``): a
        /// reload (SIGHUP, ``ServerManager/reload()``) reads it again.
        public private(set) var certificateFile: String?
        /// The file the private key was read from.
        public private(set) var privateKeyFile: String?

        /// Uses PEM text already in memory.
        public init(certificatePEM: String, privateKeyPEM: String) {
            self.certificatePEM = certificatePEM
            self.privateKeyPEM = privateKeyPEM
        }

        /// Reads the certificate and key from PEM files; a missing or unreadable file throws an
        /// error naming it. A server configured this way picks up new files on SIGHUP or
        /// ``ServerManager/reload()`` without refusing a connection.
        public static func files(certificate: String, privateKey: String) throws -> TLS {
            var tls = TLS(certificatePEM: try System.readFile(certificate), privateKeyPEM: try System.readFile(privateKey))
            tls.certificateFile = certificate
            tls.privateKeyFile = privateKey
            return tls
        }

        /// The same files read again, or `nil` when this material did not come from files.
        func reread() throws -> TLS? {
            guard let certificateFile, let privateKeyFile else { return nil }
            return try .files(certificate: certificateFile, privateKey: privateKeyFile)
        }

        public var description: String { "TLS(certificate: \(certificatePEM.utf8.count) bytes, key: redacted)" }
    }

    /// Probe routes for load balancers and orchestrators.
    ///
    /// The liveness route answers 200 `{"status":"alive"}` while the process serves. The
    /// readiness route answers 200 `{"status":"ready"}`, and 503 `{"status":"draining"}` from
    /// the moment a graceful shutdown starts, so traffic is steered away before the drain ends.
    ///
    /// ```swift
    /// var config = ServerConfig(name: "public", port: 3400)
    /// config.health = .init()                 // GET /healthz, GET /readyz
    /// ```
    public struct HealthChecks: Sendable, Hashable {
        /// The liveness path. Default `/healthz`.
        public var livenessPath: String
        /// The readiness path. Default `/readyz`.
        public var readinessPath: String

        /// Creates probe routes at the given paths.
        public init(livenessPath: String = "/healthz", readinessPath: String = "/readyz") {
            self.livenessPath = livenessPath
            self.readinessPath = readinessPath
        }
    }

    /// The ports a bind will try, in order, without repeats: ``port`` then ``ports``.
    public var candidatePorts: [Int] {
        var seen = Set<Int>()
        return ([port] + ports).filter { seen.insert($0).inserted }
    }

    /// The number of engine threads this configuration runs with: ``threadCount``, or else the
    /// number of CPUs the process may actually use — its CPU affinity (`taskset`, cpusets) capped
    /// by its cgroup CPU quota (v2 `cpu.max`, v1 CFS quota) rounded up — and at least 1.
    public var effectiveThreadCount: Int {
        max(1, threadCount ?? System.coreCount)
    }

    /// Limits that protect a server from slow, greedy or hostile clients. Every limit has a
    /// finite default.
    ///
    /// ```swift
    /// var limits = ServerConfig.Limits()
    /// limits.connectionTimeout = .seconds(10)
    /// limits.maxConnectionsPerIP = 32
    /// ```
    public struct Limits: Sendable, Hashable {
        /// The most connections the server holds open at once; more wait in the kernel's listen
        /// backlog until a slot frees (the limit is split across the engine's threads). Default 1024.
        public var maxConnections: Int
        /// The most connections one client address may hold open at once. Default 256.
        public var maxConnectionsPerIP: Int
        /// How long a connection may stay idle (no bytes received or sent) before it is closed.
        /// Default 30 seconds; whole seconds, at least one.
        public var connectionTimeout: Duration
        /// The longest a connection may take to send a request's headers, counted from when it
        /// connected or finished its previous request. Unlike ``connectionTimeout`` this is not
        /// reset by each byte, so a client dribbling its headers (slowloris) is cut off. Default
        /// 30 seconds.
        public var requestHeaderTimeout: Duration
        /// The largest request body accepted; a larger one is answered with 413. Default 1 MiB.
        public var maxBodySize: Int
        /// Memory for one connection's request line, headers and write buffer; requests whose
        /// headers do not fit are rejected (431/414). Default 32 KiB (the engine's own default; the
        /// engine clears this much memory between requests, so larger values cost throughput).
        public var connectionMemory: Int
        /// The listen backlog. Default 1024 (the kernel may clip it).
        public var listenBacklog: Int

        /// Creates limits with the defaults, overriding any you pass.
        public init(
            maxConnections: Int = 1024,
            maxConnectionsPerIP: Int = 256,
            connectionTimeout: Duration = .seconds(30),
            requestHeaderTimeout: Duration = .seconds(30),
            maxBodySize: Int = 1 << 20,
            connectionMemory: Int = 32 << 10,
            listenBacklog: Int = 1024
        ) {
            self.maxConnections = maxConnections
            self.maxConnectionsPerIP = maxConnectionsPerIP
            self.connectionTimeout = connectionTimeout
            self.requestHeaderTimeout = requestHeaderTimeout
            self.maxBodySize = maxBodySize
            self.connectionMemory = connectionMemory
            self.listenBacklog = listenBacklog
        }

        /// ``connectionTimeout`` in whole seconds, never less than one.
        var timeoutSeconds: UInt32 {
            let (seconds, attoseconds) = connectionTimeout.components
            let rounded = seconds + (attoseconds > 0 ? 1 : 0)
            return UInt32(clamping: max(1, rounded))
        }
    }
}
