import CMicroHTTPD
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One per running engine: watches what the engine itself does not, started with the engine
/// and stopped with it. While connections are open it checks, every `interval`:
///
/// - the request-header deadline (``ServerConfig/Limits/requestHeaderTimeout``): a connection
///   may spend at most that long between connecting (or finishing its previous request) and
///   completing the next request's headers. libmicrohttpd's own timeout only measures
///   idleness, so a client that sends a byte every few seconds (slowloris) would otherwise hold
///   a connection for hours;
/// - hang-ups the engine missed (see ``closeForgottenHangUps(_:)``);
/// - clients that hung up while their request is suspended in an async handler: suspended
///   connections are invisible to the engine's polling, so their handler task is cancelled here.
///
/// With no connection open it waits, without a timer, until one opens.
///
/// A connection is closed here by shutting its socket down under the table lock; the engine
/// sees the shutdown, closes the connection and reports it closed, which cannot happen while the
/// lock is held, so the descriptor is never one that was closed and reused.
final class Supervisor: Sendable {
    private struct Table {
        var connections: [ObjectIdentifier: ConnectionState] = [:]
        /// Connections whose peer had hung up at the last check, with their progress then.
        var hungUp: [ObjectIdentifier: UInt32] = [:]
        /// The supervisor, waiting for a connection to open.
        var idle: CheckedContinuation<Void, Never>?
        var stopped = false
        /// A hand-over waiting for the connections to go quiet (see ``waitUntilQuiet(idleFor:until:)``).
        var quiet: QuietWait?
    }

    private struct QuietWait {
        let continuation: CheckedContinuation<Bool, Never>
        /// How long every connection must have waited for a request.
        let idleNanos: UInt64
    }

    private let table = Locked(Table())
    private let task = Locked<Task<Void, Never>?>(nil)
    private let suspended: SuspendedConnections
    /// Requests in flight: a connection is quiet only while none is.
    private let stats: ServerStats
    private let deadlineNanos: UInt64
    let interval: Duration
    private let logger: Logger
    private let name: String

    init(headerTimeout: Duration, suspended: SuspendedConnections, stats: ServerStats, logger: Logger, name: String) {
        self.stats = stats
        let (seconds, attoseconds) = headerTimeout.components
        deadlineNanos = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        interval = max(.milliseconds(10), min(.milliseconds(100), headerTimeout / 4))
        self.suspended = suspended
        self.logger = logger
        self.name = name
    }

    func start() {
        task.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [self] in await supervise() }
        }
    }

    func stop() {
        let (idle, quiet) = table.withLock { table -> (CheckedContinuation<Void, Never>?, QuietWait?) in
            table.stopped = true
            defer {
                table.idle = nil
                table.quiet = nil
            }
            return (table.idle, table.quiet)
        }
        idle?.resume()
        quiet?.continuation.resume(returning: true)
        task.withLock { $0 }?.cancel()
    }

    func opened(_ state: ConnectionState) {
        let idle = table.withLock { table -> CheckedContinuation<Void, Never>? in
            table.connections[ObjectIdentifier(state)] = state
            defer { table.idle = nil }
            return table.idle
        }
        idle?.resume()
    }

    func closed(_ state: ConnectionState) {
        let quiet = table.withLock { table -> QuietWait? in
            table.connections.removeValue(forKey: ObjectIdentifier(state))
            table.hungUp.removeValue(forKey: ObjectIdentifier(state))
            return takeQuietWaiterIfQuiet(&table, now: Monotonic.nanoseconds())
        }
        quiet?.continuation.resume(returning: true)
    }

    /// Waits until no request is in flight and every open connection has waited at least `idle`
    /// for its next request (or none is open): true; false when `deadline` passes first.
    ///
    /// A server handing its socket over uses it after its in-flight requests finished: a client
    /// that keeps its connection busy gets `Connection: close` on its next response and
    /// reconnects to the successor, so closing the connections that are still open then cannot
    /// cut off a request that was already on its way. Only connections idle that long are closed
    /// with the engine (a client sending on one at that instant meets the same race as with any
    /// idle timeout, and retries).
    func waitUntilQuiet(idleFor idle: Duration, until deadline: ContinuousClock.Instant) async -> Bool {
        let (seconds, attoseconds) = idle.components
        let idleNanos = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.table.withLock { table -> Bool in
                        if table.stopped { return true }
                        table.quiet = QuietWait(continuation: continuation, idleNanos: idleNanos)
                        return self.takeQuietWaiterIfQuiet(&table, now: Monotonic.nanoseconds()) != nil
                    }
                    if now { continuation.resume(returning: true) }
                }
            }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return false
            }
            let first = await group.next() ?? false
            // Whichever ended first, the other ends now.
            let waiter = table.withLock { table -> QuietWait? in
                defer { table.quiet = nil }
                return table.quiet
            }
            waiter?.continuation.resume(returning: false)
            group.cancelAll()
            return first
        }
    }

    /// The quiet waiter, removed from the table, if the connections are quiet now.
    private func takeQuietWaiterIfQuiet(_ table: inout Table, now: UInt64) -> QuietWait? {
        guard let quiet = table.quiet, stats.inFlightNow == 0 else { return nil }
        for state in table.connections.values {
            let since = state.waitingSince.load(ordering: .relaxed)
            guard since != 0, now >= since, now - since >= quiet.idleNanos else { return nil }
        }
        table.quiet = nil
        return quiet
    }

    /// Connections open right now.
    var openConnections: Int { table.withLock { $0.connections.count } }

    private func supervise() async {
        while await waitForConnections() {
            try? await Task.sleep(for: interval)
            if table.withLock({ $0.stopped }) { return }
            check()
        }
    }

    /// Returns at once while connections are open; otherwise waits for one. False once stopped.
    private func waitForConnections() async -> Bool {
        await withCheckedContinuation { continuation in
            let now = table.withLock { table -> Bool in
                if table.stopped || !table.connections.isEmpty { return true }
                table.idle = continuation
                return false
            }
            if now { continuation.resume() }
        }
        return !table.withLock { $0.stopped }
    }

    private func check() {
        let quiet = table.withLock { table -> QuietWait? in
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
            return takeQuietWaiterIfQuiet(&table, now: now)
        }
        quiet?.continuation.resume(returning: true)
        cancelHandlersOfClientsThatHungUp()
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
            fds.append(pollfd(fd: state.fd, events: Self.pollHangUp, revents: 0))
        }
        var stillHungUp: [ObjectIdentifier: UInt32] = [:]
        if !fds.isEmpty && poll(&fds, nfds_t(fds.count), 0) > 0 {
            for (index, entry) in fds.enumerated() where entry.revents & Self.hangUpEvents != 0 {
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

    /// Cancels the handler tasks of suspended requests whose client hung up. The request then
    /// ends aborted (see ``AsyncExchange/Outcome/clientGone``).
    private func cancelHandlersOfClientsThatHungUp() {
        let watched = suspended.all
        guard !watched.isEmpty else { return }
        var fds = watched.map { pollfd(fd: $0.fd, events: Self.pollHangUp, revents: 0) }
        guard poll(&fds, nfds_t(fds.count), 0) > 0 else { return }
        for (index, entry) in fds.enumerated()
        where entry.revents & (Self.hangUpEvents | Int16(POLLNVAL)) != 0 {
            logger.debug("client went away; cancelling its handler", metadata: ["server": "\(name)"])
            watched[index].cancelTask(clientGone: true)
        }
    }

    /// `POLLRDHUP`: the peer closed its side.
    static let pollHangUp: Int16 = 0x2000
    static let hangUpEvents: Int16 = pollHangUp | Int16(POLLHUP) | Int16(POLLERR)
}
