import Synchronization

/// A listening TCP socket bound the way a ``ServerManager`` binds its servers — each candidate
/// port bound for real, the next one tried only when the port is in use, socket activation by
/// name — for a side service that accepts its own connections, such as a gRPC server.
///
/// Get one from ``ServerManager/bindListener(_:)`` and hand its descriptor to the service, which
/// then owns it. A listener whose descriptor was never taken closes it when released.
///
/// ```swift
/// let config = ServerConfig(name: "grpc", host: "127.0.0.1", port: 50051, ports: 50051..<50061)
/// let listener = try manager.bindListener(config)   // ServerError naming host and ports if all are busy
/// print("gRPC on port", listener.address.port)
/// let descriptor = listener.takeDescriptor()        // e.g. HTTP2ServerTransport.Posix(listeningSocketDescriptor:)
/// ```
public final class BoundListener: Sendable {
    /// Where the socket listens (the configured host, the port actually bound).
    public let address: BoundAddress
    /// The configuration it was bound for.
    public let config: ServerConfig
    private let socket: ListeningSocket
    private let taken = Atomic<Bool>(false)
    private let onRelease: @Sendable () -> Void

    init(socket: ListeningSocket, config: ServerConfig, onRelease: @escaping @Sendable () -> Void) {
        self.socket = socket
        self.config = config
        self.address = BoundAddress(host: config.host, port: socket.port, scheme: config.tls == nil ? "http" : "https")
        self.onRelease = onRelease
    }

    /// Hands the listening descriptor over: the caller owns it from now on and must close it.
    /// Returns `nil` if it was already taken or closed.
    ///
    /// ```swift
    /// guard let descriptor = listener.takeDescriptor() else { return }
    /// ```
    public func takeDescriptor() -> Int? {
        guard !taken.exchange(true, ordering: .acquiringAndReleasing) else { return nil }
        return Int(socket.fd)
    }

    /// Closes the socket now, unless its descriptor was taken.
    ///
    /// ```swift
    /// listener.close()   // the port is free again
    /// ```
    public func close() {
        guard !taken.exchange(true, ordering: .acquiringAndReleasing) else { return }
        socket.close()
        onRelease()
    }

    deinit { close() }
}

extension ServerManager {
    /// Binds a listening socket for `config` with the servers' port fallback, skipping ports
    /// this manager's servers use (and claiming the one it binds), for a side service that
    /// accepts its own connections. Logs like a server does when a port is busy.
    ///
    /// A binary upgrade (``upgrade(executable:arguments:readyTimeout:)``) passes the socket to
    /// the new process under the configuration's name, as long as its descriptor is still open
    /// on this socket.
    ///
    /// - Throws: ``ServerError`` naming the configuration's name, host and every port tried
    ///   when none is free, or when the host cannot be bound.
    ///
    /// ```swift
    /// let listener = try manager.bindListener(ServerConfig(name: "grpc", port: 50051, ports: 50051..<50061))
    /// ```
    public func bindListener(_ config: ServerConfig) throws -> BoundListener {
        let events = ServerEvents.logging(config.name, logger)
        return try claimingPort { claimed in
            let socket = try ListeningSocket.bind(config, excluding: claimed, observe: events.bindAttempt)
            let port = socket.port
            // Remembered for a binary upgrade to pass on, while the descriptor still is this
            // socket (the service that took it may have closed it).
            let handedOut = SideListener(name: config.name, socket: socket)
            state.withLock { $0.sideListeners.append(handedOut) }
            let listener = BoundListener(socket: socket, config: config) { [weak self] in
                self?.releasePortClaim(port)
                self?.state.withLock { $0.sideListeners.removeAll { $0 === handedOut } }
            }
            logger.info("\(config.name) listening on \(listener.address.url)", metadata: [
                "server": "\(config.name)", "port": "\(port)",
            ])
            return (listener, port)
        }
    }
}

/// A listening socket handed to a side service, as a binary upgrade finds it: its descriptor
/// number and which socket that number was, so that a descriptor the service has closed (and
/// the system may have reused) is not passed on.
final class SideListener: Sendable {
    let name: String
    let fd: Int32
    let inherited: Bool
    private let identity: ListeningSocket.Identity?

    init(name: String, socket: ListeningSocket) {
        self.name = name
        self.fd = socket.fd
        self.inherited = socket.inherited
        self.identity = ListeningSocket.identity(of: socket.fd)
    }

    /// Whether the descriptor is still open on the same listening socket.
    var isStillOpen: Bool {
        identity != nil && ListeningSocket.identity(of: fd) == identity
    }
}
