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

    init(fd: Int32) {
        self.fd = fd
        waitingSince.store(Monotonic.nanoseconds(), ordering: .relaxed)
    }

    func headersComplete() { waitingSince.store(0, ordering: .relaxed) }
    func requestComplete() { waitingSince.store(Monotonic.nanoseconds(), ordering: .relaxed) }
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
    }

    private let table = Locked(Table())
    private let deadlineNanos: UInt64
    private let interval: Duration
    private let logger: Logger
    private let name: String

    init(timeout: Duration, logger: Logger, name: String) {
        let (seconds, attoseconds) = timeout.components
        deadlineNanos = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        interval = max(.milliseconds(10), min(.seconds(1), timeout / 4))
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

    func closed(_ state: ConnectionState) {
        _ = table.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(state)) }
    }

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
                    return true
                }
                if !keepGoing { return }
            }
        }
    }
}
