import Synchronization

/// Lets a drain wait for a server's in-flight requests to reach zero without polling: the
/// request that ends last wakes it. A deadline and a forced stop end the wait too.
///
/// The wait starts no earlier than 10 ms after the listener closed, so a request whose bytes
/// reached a connection just before is read and counted, not cut off. (All servers of a
/// manager close their listeners together, so servers stopped later in turn do not wait again.)
final class DrainSignal: Sendable {
    private struct State {
        var waiter: CheckedContinuation<Bool, Never>?
        var interrupted = false
        /// The wait in progress was cancelled before its continuation was registered.
        var cancelPending = false
        var listenerClosedAt: ContinuousClock.Instant?
    }
    private let state = Locked(State())
    /// Set while a drain waits: the only cost on the request path is reading it.
    private let waiting = Atomic<Bool>(false)
    private let stats: ServerStats

    static let settleTime = Duration.milliseconds(10)

    init(stats: ServerStats) { self.stats = stats }

    func listenerClosed() {
        state.withLock { $0.listenerClosedAt = $0.listenerClosedAt ?? .now }
    }

    /// A request ended (called by the engine thread after it was counted out).
    @inline(__always)
    func requestEnded() {
        guard waiting.load(ordering: .sequentiallyConsistent), stats.inFlightNow == 0 else { return }
        resume(with: true)
    }

    /// Whether a drain is waiting for in-flight requests right now.
    var isWaiting: Bool { waiting.load(ordering: .sequentiallyConsistent) }

    /// Ends the wait in progress at once; with none in progress, the next wait ends at once.
    func interrupt() { endWait(orRemember: \.interrupted) }

    /// Ends the registered wait with `false`; with none registered yet, sets `flag`, which the
    /// next registration sees and returns at once.
    private func endWait(orRemember flag: WritableKeyPath<State, Bool>) {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard let waiter = state.waiter else {
                state[keyPath: flag] = true
                return nil
            }
            state.waiter = nil
            waiting.store(false, ordering: .sequentiallyConsistent)
            return waiter
        }
        waiter?.resume(returning: false)
    }

    /// Forgets an interrupt that no wait has consumed (a forced stop that came before the drain
    /// began), so that the short wait for abandoned requests' answers is not cut short too.
    func clearInterrupt() { state.withLock { $0.interrupted = false } }

    /// Waits until nothing is in flight (true), or `deadline` passes or the wait is
    /// interrupted or cancelled (false).
    func wait(until deadline: ContinuousClock.Instant) async -> Bool {
        let settled = state.withLock { state -> ContinuousClock.Instant in
            state.cancelPending = false
            return (state.listenerClosedAt ?? .now).advanced(by: Self.settleTime)
        }
        if settled > .now { try? await Task.sleep(until: settled, clock: .continuous) }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.waitForZero() }
            group.addTask {
                do {
                    try await Task.sleep(until: deadline, clock: .continuous)
                    return false
                } catch {
                    return false
                }
            }
            let first = await group.next() ?? false
            group.cancelAll()
            // The other child ends at once: a cancelled sleep throws, a cancelled wait resumes.
            resume(with: first)
            return first
        }
    }

    private func waitForZero() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate = state.withLock { state -> Bool? in
                    if state.interrupted {
                        state.interrupted = false
                        return false
                    }
                    if state.cancelPending {
                        state.cancelPending = false
                        return false
                    }
                    state.waiter = continuation
                    waiting.store(true, ordering: .sequentiallyConsistent)
                    return nil
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                    return
                }
                // Registered first, checked second (both sequentially consistent, like the
                // request side's decrement and check): the last request either sees the waiter
                // or ended before this check.
                if stats.inFlightNow == 0 { resume(with: true) }
            }
        } onCancel: {
            endWait(orRemember: \.cancelPending)
        }
    }

    private func resume(with result: Bool) {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            defer { state.waiter = nil }
            if state.waiter != nil { waiting.store(false, ordering: .sequentiallyConsistent) }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }
}
