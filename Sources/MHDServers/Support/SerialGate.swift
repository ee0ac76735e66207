/// Runs async operations one at a time, in the order they arrive. An operation started from
/// inside one that holds the gate (the same task, or a task it created) runs at once instead of
/// waiting for itself.
///
/// ```swift
/// let gate = SerialGate()
/// try await gate.run { try await restart() }   // a second caller waits for the first
/// ```
final class SerialGate: Sendable {
    private struct State {
        var busy = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Locked(State())

    /// The gates the current task holds.
    @TaskLocal private static var held: Set<ObjectIdentifier> = []

    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let id = ObjectIdentifier(self)
        if Self.held.contains(id) { return try await body() }
        await acquire()
        defer { release() }
        return try await Self.$held.withValue(Self.held.union([id])) { try await body() }
    }

    private func acquire() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                guard state.busy else {
                    state.busy = true
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
