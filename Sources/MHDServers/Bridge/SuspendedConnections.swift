/// The connections suspended while their async handler runs: what the ``Supervisor`` watches
/// for hang-ups and what a shutdown abandons. Once the server is stopping nothing more is
/// suspended, so `MHD_stop_daemon` never meets a suspended connection (it would abort).
final class SuspendedConnections: Sendable {
    private struct State {
        var contexts: [ObjectIdentifier: EngineRequest] = [:]
        var stopping = false
    }
    private let state = Locked(State())

    /// Runs `suspend` and registers `context`, unless the server is stopping; both under the
    /// registry's lock, so a shutdown either sees the context or prevents the suspension.
    /// Returns whether the context was registered.
    func register(_ context: EngineRequest, _ suspend: (_ stopping: Bool) -> Bool) -> Bool {
        state.withLock { state in
            guard suspend(state.stopping) else { return false }
            state.contexts[ObjectIdentifier(context)] = context
            return true
        }
    }

    /// Runs `resume` and, if it resumed the connection, removes the context; both under the
    /// registry's lock, the order ``register(_:_:)`` takes. Resuming first and removing after
    /// would race the engine: between the two it can take the resumption, find nothing to do
    /// and suspend the connection again, registering it anew, and the late removal would then
    /// drop a connection that *is* suspended, which the shutdown would not see (the engine
    /// aborts when it is stopped with one).
    func resume(id: ObjectIdentifier, _ resume: () -> Bool) {
        state.withLock { state in
            guard resume() else { return }
            state.contexts.removeValue(forKey: id)
        }
    }

    /// The request is over: nothing of it can be suspended any more.
    func remove(_ context: EngineRequest) { remove(id: ObjectIdentifier(context)) }

    /// The same, by identity (for a stream that may outlive its request).
    func remove(id: ObjectIdentifier) {
        _ = state.withLock { $0.contexts.removeValue(forKey: id) }
    }

    /// Everything suspended now (for the supervisor's hang-up check).
    var all: [EngineRequest] { state.withLock { Array($0.contexts.values) } }

    /// From now on nothing is suspended; returns what still is, to abandon.
    func stopSuspending() -> [EngineRequest] {
        state.withLock { state in
            state.stopping = true
            return Array(state.contexts.values)
        }
    }
}
