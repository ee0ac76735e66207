/// A read-only view of one managed server.
public struct ServerInfo: Sendable {
    /// The server's name.
    public let name: String
    /// Its configuration.
    public let config: ServerConfig
    /// Where it listens (nil before binding and after stopping).
    public let address: BoundAddress?
    /// Its counters at the time of the call.
    public let stats: ServerStats.Snapshot
}
