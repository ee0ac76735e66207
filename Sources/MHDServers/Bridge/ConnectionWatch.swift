import CMicroHTTPD
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One open connection, tracked from the engine's connection-started notification to its
/// connection-closed notification.
final class ConnectionState: Sendable {
    let fd: Int32
    /// When the connection began waiting for a request's headers (monotonic ns); 0 while a
    /// request is being processed.
    let waitingSince = Atomic<UInt64>(0)
    /// Between the headers and the end of the request body.
    let receivingBody = Atomic<Bool>(false)
    /// Bumped whenever the engine hands over request bytes: a connection whose peer hung up and
    /// that makes no progress between two checks has been forgotten by the engine.
    let progress = Atomic<UInt32>(0)

    init(fd: Int32) {
        self.fd = fd
        waitingSince.store(Monotonic.nanoseconds(), ordering: .relaxed)
    }

    func headersComplete() {
        waitingSince.store(0, ordering: .relaxed)
        receivingBody.store(true, ordering: .relaxed)
    }
    func bodyReceived() { progress.add(1, ordering: .relaxed) }
    func dispatched() { receivingBody.store(false, ordering: .relaxed) }
    func requestComplete() { waitingSince.store(Monotonic.nanoseconds(), ordering: .relaxed) }

    /// Whether the engine is waiting for bytes from the client on this connection.
    var awaitingClient: Bool {
        waitingSince.load(ordering: .relaxed) != 0 || receivingBody.load(ordering: .relaxed)
    }
}

/// Enforces ``ServerConfig/Limits/requestHeaderTimeout``: a connection may spend at most that
/// long between connecting (or finishing its previous request) and completing the next request's
/// headers. libmicrohttpd's own timeout only measures idleness, so a client that sends a byte
/// every few seconds (slowloris) would otherwise hold a connection for hours.
///
/// The check runs on a timer only while connections are open. A connection over its deadline has
/// its socket shut down under the table lock; the engine sees the shutdown, closes the connection
/// and reports it closed, which cannot happen while the lock is held, so the descriptor is never
/// one that was closed and reused.
final class ConnectionWatch: Sendable {
    private struct Table {
        var connections: [ObjectIdentifier: ConnectionState] = [:]
        var timerRunning = false
        /// Connections whose peer had hung up at the last check, with their progress then.
        var hungUp: [ObjectIdentifier: UInt32] = [:]
    }

    private let table = Locked(Table())
    private let deadlineNanos: UInt64
    private let interval: Duration
    private let logger: Logger
    private let name: String

    init(timeout: Duration, logger: Logger, name: String) {
        let (seconds, attoseconds) = timeout.components
        deadlineNanos = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        interval = max(.milliseconds(10), min(.milliseconds(250), timeout / 4))
        self.logger = logger
        self.name = name
    }

    func opened(_ state: ConnectionState) {
        let start = table.withLock { table -> Bool in
            table.connections[ObjectIdentifier(state)] = state
            guard !table.timerRunning else { return false }
            table.timerRunning = true
            return true
        }
        if start { startTimer() }
    }

    /// Connections open right now.
    var openCount: Int { table.withLock { $0.connections.count } }

    func closed(_ state: ConnectionState) {
        table.withLock {
            $0.connections.removeValue(forKey: ObjectIdentifier(state))
            $0.hungUp.removeValue(forKey: ObjectIdentifier(state))
        }
    }

    /// libmicrohttpd 0.9.75 (edge-triggered epoll) now and then misses a client's hang-up while
    /// it waits for request bytes: the connection, and the request on it, would then stay until
    /// the idle timeout (a drain would wait for it). A connection whose peer has hung up and
    /// that made no progress since the previous check is shut down here, which wakes the
    /// engine with a hang-up it cannot miss; it closes the connection and ends the request.
    /// Two checks apart, so a client that sent a complete request and then half-closed is
    /// served first (its request is dispatched long before the next check).
    private func closeForgottenHangUps(_ table: inout Table) {
        var watched: [(ObjectIdentifier, ConnectionState)] = []
        var fds: [pollfd] = []
        for (id, state) in table.connections where state.awaitingClient {
            watched.append((id, state))
            fds.append(pollfd(fd: state.fd, events: ConnectionWatch.pollHangUp, revents: 0))
        }
        var stillHungUp: [ObjectIdentifier: UInt32] = [:]
        if !fds.isEmpty && poll(&fds, nfds_t(fds.count), 0) > 0 {
            for (index, entry) in fds.enumerated() where entry.revents & ConnectionWatch.hangUpEvents != 0 {
                let (id, state) = watched[index]
                let progress = state.progress.load(ordering: .relaxed)
                if let seen = table.hungUp[id], seen == progress {
                    _ = shutdown(state.fd, Int32(SHUT_RDWR))
                    logger.debug("\(name): closing a connection whose client hung up")
                } else {
                    stillHungUp[id] = progress
                }
            }
        }
        table.hungUp = stillHungUp
    }

    /// `POLLRDHUP`: the peer closed its side.
    static let pollHangUp: Int16 = 0x2000
    static let hangUpEvents: Int16 = pollHangUp | Int16(POLLHUP) | Int16(POLLERR)

    private func startTimer() {
        Task.detached { [self] in
            while true {
                try? await Task.sleep(for: interval)
                let keepGoing = table.withLock { table -> Bool in
                    if table.connections.isEmpty {
                        table.timerRunning = false
                        return false
                    }
                    let now = Monotonic.nanoseconds()
                    for state in table.connections.values {
                        let since = state.waitingSince.load(ordering: .relaxed)
                        if since != 0 && now > since && now - since > deadlineNanos {
                            state.waitingSince.store(0, ordering: .relaxed)
                            _ = shutdown(state.fd, Int32(SHUT_RDWR))
                            logger.debug("\(name): closing a connection that did not send its headers in time")
                        }
                    }
                    closeForgottenHangUps(&table)
                    return true
                }
                if !keepGoing { return }
            }
        }
    }
}
