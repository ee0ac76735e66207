/// Where a server listens.
///
/// ```swift
/// let address = try await server.listeningAddress()
/// print(address.port, address.url)
/// ```
public struct BoundAddress: Sendable, Hashable, CustomStringConvertible {
    /// The configured host.
    public let host: String
    /// The port actually bound (never 0).
    public let port: Int
    /// `http` or `https`.
    public let scheme: String

    /// Creates an address.
    public init(host: String, port: Int, scheme: String = "http") {
        self.host = host
        self.port = port
        self.scheme = scheme
    }

    /// `scheme://host:port`, with IPv6 hosts in brackets.
    public var url: String {
        "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public var description: String { url }
}
