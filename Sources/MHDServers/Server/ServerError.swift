/// Why a server could not start, or why a change to a running one (a stop, restart,
/// replacement or upgrade) was refused or failed.
///
/// ```swift
/// do {
///     try await manager.runAll(servers)
/// } catch let error as ServerError where error.code == .portsUnavailable {
///     print(error)   // server 'public' on 127.0.0.1: every port is busy (tried 3400, 3401, ...)
/// }
/// ```
public struct ServerError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Value: String { case portsUnavailable, bindFailed, invalidHost, startFailed, invalidConfiguration, unknownServer, upgradeFailed }
        let value: Value

        /// Every candidate port was already in use.
        public static let portsUnavailable = Code(value: .portsUnavailable)
        /// Binding failed for a reason other than a busy port (permission, address not available...).
        public static let bindFailed = Code(value: .bindFailed)
        /// The host is neither an IP literal nor a resolvable name.
        public static let invalidHost = Code(value: .invalidHost)
        /// The engine refused to start.
        public static let startFailed = Code(value: .startFailed)
        /// The configuration is inconsistent (for example a duplicate server name).
        public static let invalidConfiguration = Code(value: .invalidConfiguration)
        /// No running server of the manager has the name given to a runtime change.
        public static let unknownServer = Code(value: .unknownServer)
        /// A binary upgrade failed: the new process could not start or did not become ready
        /// (this process goes on serving).
        public static let upgradeFailed = Code(value: .upgradeFailed)

        public var description: String { value.rawValue }
    }

    /// The kind of failure.
    public let code: Code
    /// The name of the server that failed.
    public let server: String
    /// The host it tried to bind.
    public let host: String
    /// The ports it tried, in order.
    public let portsTried: [Int]
    /// A human-readable explanation.
    public let message: String

    init(_ code: Code, server: String, host: String, portsTried: [Int], message: String) {
        self.code = code
        self.server = server
        self.host = host
        self.portsTried = portsTried
        self.message = message
    }

    public var description: String {
        "server '\(server)' on \(host): \(message)"
    }

    static func portsUnavailable(_ config: ServerConfig, tried: [Int]) -> ServerError {
        let list = tried.map(String.init).joined(separator: ", ")
        return ServerError(
            .portsUnavailable, server: config.name, host: config.host, portsTried: tried,
            message: "every port is busy (tried \(list))")
    }
}
