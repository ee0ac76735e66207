import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bound, listening TCP socket that is handed to the engine.
///
/// Port fallback binds for real: each candidate is bound and put in listen state, and only a
/// failure with `EADDRINUSE` moves on to the next. Nothing probes a port and binds it later.
final class ListeningSocket: @unchecked Sendable {
    let fd: Int32
    let port: Int
    let family: Int32
    /// Received through socket activation and held by systemd too: never shut down here.
    let inherited: Bool
    /// Passed by the process this one upgraded (see ``ProcessUpgrade``), which may still serve
    /// on it for a while.
    let fromPredecessor: Bool

    private init(fd: Int32, port: Int, family: Int32, inherited: Bool = false, fromPredecessor: Bool = false) {
        self.fd = fd
        self.port = port
        self.family = family
        self.inherited = inherited
        self.fromPredecessor = fromPredecessor
    }

    /// Progress of a bind, for the lifecycle's port hooks.
    enum BindAttempt {
        case checking(Int)
        case unavailable(Int, reason: String)
        case available(Int)
    }

    /// Why one bind attempt failed.
    enum Failure: Error {
        case addressInUse
        case system(operation: String, errno: Int32)
    }

    /// Binds the first free port of `config.candidatePorts`, skipping `excluded`.
    static func bind(
        _ config: ServerConfig, excluding excluded: Set<Int> = [],
        observe: (BindAttempt) -> Void = { _ in }
    ) throws -> ListeningSocket {
        _ = System.ignoreSIGPIPE
        if let inherited = SocketActivation.take(for: config.name) {
            let socket: ListeningSocket
            do {
                socket = try adopt(inherited, config)
            } catch {
                _ = Glibc.close(inherited.fd)
                throw error
            }
            observe(.available(socket.port))
            return socket
        }
        let addresses = try resolve(config)
        guard !addresses.isEmpty else {
            throw ServerError(
                .invalidHost, server: config.name, host: config.host, portsTried: [],
                message: "host '\(config.host)' has no IPv4 or IPv6 address")
        }
        var tried: [Int] = []
        for port in config.candidatePorts {
            guard (0...65535).contains(port) else {
                throw ServerError(
                    .invalidConfiguration, server: config.name, host: config.host, portsTried: tried + [port],
                    message: "port \(port) is out of range 0...65535")
            }
            tried.append(port)
            observe(.checking(port))
            if port != 0 && excluded.contains(port) {
                observe(.unavailable(port, reason: "taken by another server of this manager"))
                continue
            }
            var lastError: Failure?
            for address in addresses {
                do {
                    let socket = try bind(address, port: port, backlog: config.limits.listenBacklog)
                    observe(.available(socket.port))
                    return socket
                } catch .addressInUse {
                    lastError = .addressInUse
                    break
                } catch {
                    lastError = error
                }
            }
            switch lastError {
            case .addressInUse?, nil:
                observe(.unavailable(port, reason: "address in use"))
                continue
            case .system(let operation, let code)?:
                throw ServerError(
                    .bindFailed, server: config.name, host: config.host, portsTried: tried,
                    message: "\(operation) on port \(port) failed: \(System.errorText(code)) (errno \(code))")
            }
        }
        throw ServerError.portsUnavailable(config, tried: tried)
    }

    /// Takes over a listening socket inherited through socket activation.
    private static func adopt(_ inherited: SocketActivation.Inherited, _ config: ServerConfig) throws -> ListeningSocket {
        let fd = inherited.fd
        func failure(_ what: String) -> ServerError {
            ServerError(
                .bindFailed, server: config.name, host: config.host, portsTried: [],
                message: "inherited socket \(fd): \(what)")
        }
        var listening: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0, listening == 1 else {
            throw failure("not a listening stream socket")
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        guard let (port, family) = localPort(fd) else { throw failure(System.errorText(errno)) }
        return ListeningSocket(
            fd: fd, port: port, family: family, inherited: inherited.sharedWithSystemd,
            fromPredecessor: inherited.fromPredecessor)
    }

    /// A resolved address to bind, without its port.
    struct Address {
        var storage: sockaddr_storage
        var length: socklen_t
        var family: Int32
    }

    /// Resolves the host to socket addresses (numeric literals never touch DNS).
    static func resolve(_ config: ServerConfig) throws -> [Address] {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        var status = getaddrinfo(config.host, "0", &hints, &result)
        if status != 0 {
            // Loopback literals must work even on hosts where AI_ADDRCONFIG hides them.
            hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
            status = getaddrinfo(config.host, "0", &hints, &result)
        }
        guard status == 0, let first = result else {
            throw ServerError(
                .invalidHost, server: config.name, host: config.host, portsTried: [],
                message: "cannot resolve host '\(config.host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var addresses: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            let entry = info.pointee
            if entry.ai_family == AF_INET || entry.ai_family == AF_INET6, let sockaddr = entry.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: sockaddr, count: Int(entry.ai_addrlen)))
                }
                addresses.append(Address(storage: storage, length: entry.ai_addrlen, family: entry.ai_family))
            }
            cursor = entry.ai_next
        }
        // Prefer IPv4 for names such as `localhost`, which most clients try first.
        addresses.sort { $0.family == AF_INET && $1.family != AF_INET }
        return addresses
    }

    private static func bind(_ address: Address, port: Int, backlog: Int) throws(Failure) -> ListeningSocket {
        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        let fd = socket(address.family, type, 0)
        guard fd >= 0 else { throw .system(operation: "socket", errno: errno) }
        var one: Int32 = 1
        // SO_REUSEADDR only lets us rebind over TIME_WAIT; Linux still refuses a port that has a
        // listener. SO_REUSEPORT is never set: it would let two servers share a port.
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = address.storage
        withUnsafeMutableBytes(of: &storage) { raw in
            let netPort = UInt16(port).bigEndian
            if address.family == AF_INET {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port = netPort
            } else {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port = netPort
            }
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, address.length) }
        }
        if bound != 0 {
            let code = errno
            Glibc.close(fd)
            throw code == EADDRINUSE ? .addressInUse : .system(operation: "bind", errno: code)
        }
        if listen(fd, Int32(clamping: backlog)) != 0 {
            let code = errno
            Glibc.close(fd)
            throw code == EADDRINUSE ? .addressInUse : .system(operation: "listen", errno: code)
        }
        guard let (boundPort, _) = localPort(fd) else {
            let code = errno
            Glibc.close(fd)
            throw .system(operation: "getsockname", errno: code)
        }
        return ListeningSocket(fd: fd, port: boundPort, family: address.family)
    }

    /// The local port and address family of a socket (`getsockname`), or `nil` with `errno` set.
    private static func localPort(_ fd: Int32) -> (port: Int, family: Int32)? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        let family = Int32(address.ss_family)
        let port = withUnsafeBytes(of: &address) { raw -> Int in
            family == AF_INET
                ? Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
                : Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
        }
        return (port, family)
    }

    /// A second descriptor for the same socket, for an engine that takes over from the one
    /// using this one (a restart on the same address): connections waiting in the backlog are
    /// accepted by whichever engine polls the socket.
    func duplicate() throws(Failure) -> ListeningSocket {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw .system(operation: "dup", errno: errno) }
        return ListeningSocket(fd: copy, port: port, family: family, inherited: inherited, fromPredecessor: fromPredecessor)
    }

    /// Which socket a descriptor is open on (device and inode).
    struct Identity: Equatable {
        let device: UInt64
        let inode: UInt64
    }

    /// The identity of what `fd` is open on, if it is a listening socket.
    static func identity(of fd: Int32) -> Identity? {
        var info = stat()
        var listening: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard fstat(fd, &info) == 0, getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0, listening == 1
        else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Refuses new connections at once (pending ones in the backlog are reset) without closing
    /// the descriptor, which the engine may still hold.
    ///
    /// An inherited (socket-activated) socket is left listening: it is shared with systemd,
    /// which keeps queueing connections for the next instance. So is one passed by an upgrade
    /// while the process that passed it is still there (it may serve on it still).
    func stopListening() {
        guard !inherited, !(fromPredecessor && ProcessUpgrade.predecessorMayServe) else { return }
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }

    private let closed = Atomic<Bool>(false)

    /// Closes the descriptor, once.
    func close() {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        _ = Glibc.close(fd)
    }
}
