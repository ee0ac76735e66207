import ServiceLifecycle

/// The place of one named server in its manager's service group.
///
/// The group runs slots rather than servers, so that one server can be stopped, restarted or
/// replaced while the group runs: a restart swaps the server behind the slot, and a stop ends
/// the slot without ending the group. When the group shuts down, the slot shuts down whichever
/// server is current then, and waits for predecessors still draining after a restart.
final class ServerSlot: Service, Sendable {
    let name: String
    private weak let manager: ServerManager?
    private let state = Locked(Locals())

    private struct Locals {
        /// `run()`, waiting for the group's shutdown or for the server's own stop.
        var waiter: CheckedContinuation<Void, Never>?
        var ended = false
        /// The server was stopped on its own (``ServerManager/stopServer(named:)``).
        var stoppedAlone = false
    }

    init(name: String, manager: ServerManager) {
        self.name = name
        self.manager = manager
    }

    func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            await waitUntilEnded()
        } onCancelOrGracefulShutdown: {
            self.end(stoppedAlone: false)
        }
        // Stopped on its own: that stop drained and stopped it already.
        if state.withLock({ $0.stoppedAlone }) { return }
        await manager?.shutDownServer(named: name, cancelled: Task.isCancelled)
    }

    /// The server stopped on its own: `run()` returns without doing anything more.
    func serverStoppedAlone() { end(stoppedAlone: true) }

    private func end(stoppedAlone: Bool) {
        let waiter = state.withLock { locals -> CheckedContinuation<Void, Never>? in
            guard !locals.ended else { return nil }
            locals.ended = true
            locals.stoppedAlone = stoppedAlone
            defer { locals.waiter = nil }
            return locals.waiter
        }
        waiter?.resume()
    }

    private func waitUntilEnded() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { locals -> Bool in
                if locals.ended { return true }
                locals.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}
