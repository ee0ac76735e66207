import Logging
import Synchronization

/// What a lifecycle and its handlers can know about their server at run time.
///
/// ```swift
/// router.get("/api/status") { _ in
///     try .json(["server": context.name, "port": "\(context.address?.port ?? 0)"])
/// }
/// ```
public final class HTTPServerContext: Sendable {
    /// The server's configuration.
    public let config: ServerConfig
    /// The logger the manager was given, with `server` metadata set.
    public let logger: Logger
    /// Weak: the server's routes usually capture this context, so a strong reference would
    /// form a cycle and keep every stopped server alive.
    private let server = Locked(WeakServer())

    private struct WeakServer {
        weak var value: HTTPServer?
    }
    private weak let _manager: ServerManager?

    init(config: ServerConfig, logger: Logger, manager: ServerManager?) {
        self.config = config
        var logger = logger
        logger[metadataKey: "server"] = "\(config.name)"
        self.logger = logger
        self._manager = manager
    }

    /// A context for a server that no manager runs: for tests that call a lifecycle's
    /// ``ServerLifecycle/registerRoutes(on:context:)`` themselves. Its ``manager``, ``address``
    /// and ``stats`` are `nil`.
    ///
    /// ```swift
    /// @_spi(Testing) import MHDServers
    ///
    /// let context = HTTPServerContext(config: ServerConfig(name: "public", port: 0), logger: logger)
    /// var router = Router()
    /// PublicAPI().registerRoutes(on: &router, context: context)
    /// ```
    @_spi(Testing) public convenience init(config: ServerConfig, logger: Logger) {
        self.init(config: config, logger: logger, manager: nil)
    }

    func attach(_ server: HTTPServer) { self.server.withLock { $0.value = server } }

    /// The server's name.
    public var name: String { config.name }

    /// The manager running this server (for servers that report on their siblings).
    public var manager: ServerManager? { _manager }

    /// Where the server listens, once bound.
    public var address: BoundAddress? { server.withLock { $0.value }?.address }

    /// The server's live counters.
    public var stats: ServerStats? { server.withLock { $0.value }?.stats }
}
