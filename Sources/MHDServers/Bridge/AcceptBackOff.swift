import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Exponential back-off for an engine worker that cannot accept a connection for lack of file
/// descriptors: 1 ms, doubling up to 250 ms, reset when a connection is accepted again.
final class AcceptBackOff: Sendable {
    /// The current delay in microseconds; 0 while accepting works.
    private let delay = Atomic<Int>(0)

    static let first = 1_000
    static let longest = 250_000

    /// An accept failed. Returns whether this starts a new episode (worth one log line).
    func failed() -> Bool {
        let previous = delay.load(ordering: .relaxed)
        delay.store(previous == 0 ? Self.first : min(previous * 2, Self.longest), ordering: .relaxed)
        return previous == 0
    }

    /// Blocks the calling worker for the current delay. Only a worker with no connection of its
    /// own gets here, so nothing else waits on its thread.
    func wait() {
        let micros = delay.load(ordering: .relaxed)
        if micros > 0 { usleep(useconds_t(micros)) }
    }

    /// A connection was accepted.
    @inline(__always)
    func succeeded() {
        if delay.load(ordering: .relaxed) != 0 { delay.store(0, ordering: .relaxed) }
    }
}
