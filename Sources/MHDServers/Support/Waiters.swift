/// Continuations that wait for one outcome and are resumed together, exactly once.
///
/// Lives inside a lock-protected state: ``add(_:)`` and ``settle(_:)`` run under the lock and
/// hand back what to resume, which the caller resumes after unlocking.
///
/// ```swift
/// let ready: Result<BoundAddress, any Error>? = state.withLock { $0.waiters.add(continuation) }
/// if let ready { continuation.resume(with: ready) }
/// ```
struct Waiters<Value: Sendable>: Sendable {
    private var pending: [CheckedContinuation<Value, any Error>] = []
    /// The outcome, once settled; later waiters get it at once.
    private(set) var outcome: Result<Value, any Error>?

    /// Queues `continuation`, or returns the outcome to resume it with right away.
    mutating func add(_ continuation: CheckedContinuation<Value, any Error>) -> Result<Value, any Error>? {
        if let outcome { return outcome }
        pending.append(continuation)
        return nil
    }

    /// Settles the outcome (the first call wins) and returns the waiters to resume with it.
    mutating func settle(_ result: Result<Value, any Error>) -> Resumption {
        if outcome == nil { outcome = result }
        defer { pending = [] }
        return Resumption(continuations: pending, result: outcome!)
    }

    /// Waiters taken out of the lock, to be resumed outside it.
    struct Resumption: Sendable {
        fileprivate let continuations: [CheckedContinuation<Value, any Error>]
        fileprivate let result: Result<Value, any Error>

        func resume() { for continuation in continuations { continuation.resume(with: result) } }
    }
}

/// Work that runs once however many callers ask for it; every caller waits for that one run.
///
/// ```swift
/// let shutdown = OnceTask()
/// await shutdown.run { await self.performShutdown() }
/// ```
final class OnceTask: Sendable {
    private let task = Locked<Task<Void, Never>?>(nil)

    /// Starts `body` on the first call; every call returns when that run has finished.
    func run(_ body: @escaping @Sendable () async -> Void) async {
        let running = task.withLock { task -> Task<Void, Never> in
            if let task { return task }
            let started = Task { await body() }
            task = started
            return started
        }
        await running.value
    }
}
