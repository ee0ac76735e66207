/// A server for a ``ServerManager``: its configuration and its lifecycle.
///
/// ```swift
/// Server(config: ServerConfig(name: "admin", port: 3401, ports: 3401..<3411), lifecycle: AdminAPI())
/// ```
public struct Server: Sendable {
    /// Where and how the server listens.
    public var config: ServerConfig
    /// Its routes and hooks.
    public var lifecycle: any ServerLifecycle

    /// Pairs a configuration with a lifecycle.
    public init(config: ServerConfig, lifecycle: any ServerLifecycle) {
        self.config = config
        self.lifecycle = lifecycle
    }
}
