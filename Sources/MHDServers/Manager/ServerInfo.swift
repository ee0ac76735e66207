/// A read-only view of one managed server.
///
/// ```swift
/// for server in manager.servers {
///     print(server.name, server.state, server.address?.url ?? "-", server.generation)
/// }
/// ```
public struct ServerInfo: Sendable {
    /// Where a server is in its life.
    public enum State: String, Sendable, Hashable, Codable {
        /// Binding its socket, or bound and starting its engine.
        case starting
        /// Serving.
        case running
        /// No longer accepting (a shutdown, a stop of this server, or a restart that handed its
        /// socket to a successor); in-flight requests are finishing.
        case draining
        /// Stopped; its port is released (unless a successor took the socket over).
        case stopped
        /// It could not bind or start.
        case failed
    }

    /// The server's name.
    public let name: String
    /// Its configuration.
    public let config: ServerConfig
    /// Where it listens (nil before binding and after stopping).
    public let address: BoundAddress?
    /// Its counters at the time of the call (a restart starts them again from zero).
    public let stats: ServerStats.Snapshot
    /// Where it is in its life.
    public let state: State
    /// 1 for the server as first started; one more after each restart or replacement.
    public let generation: Int
    /// Predecessors still draining after a restart or replacement (their in-flight requests
    /// finish on the old routes and configuration).
    public let draining: Int
}
