/// The lifecycle of a ``ServerManager``: idle → starting → running → draining → finished.
///
/// A value with mutating transitions that say what to do; ``ServerManager`` holds it under its
/// lock and carries the actions out after unlocking. Generic over the service group so that
/// every ordering (a signal during start-up, a second signal during the drain, a server added
/// during shutdown, a failed start) is tested without sockets or processes.
struct ManagerStateMachine<Group: Sendable>: Sendable {
    enum State: Sendable {
        /// `runAll` not called yet. A shutdown asked for now makes `runAll` return at once.
        case idle(shutdownRequested: Bool)
        /// Binding and starting the servers.
        case starting(shutdownRequested: Bool, forced: Bool)
        /// Every server serves; the group runs.
        case running(Group)
        /// A shutdown is under way (`forced`: without waiting for in-flight requests).
        case draining(Group, forced: Bool)
        /// `runAll` is returning or has returned; `failure` if start-up failed.
        case finished(failure: (any Error)?)
    }

    private(set) var state = State.idle(shutdownRequested: false)
    /// SIGTERM/SIGINT received so far: the first starts a graceful shutdown, the next stops now.
    private(set) var signalsReceived = 0
    /// A binary upgrade is waiting for the new process to become ready (one at a time).
    private(set) var upgrading = false
    /// The drain leaves the listening sockets to a new process (an upgrade succeeded): they
    /// stay open and listening, readiness probes keep answering 200, there is no drain delay,
    /// and systemd is not told the service stops.
    private(set) var handingOver = false

    // MARK: Starting

    enum RunAction: Equatable {
        /// Bind and start the servers.
        case start
        /// A shutdown came first: return at once, binding nothing.
        case finishWithoutStarting
        /// A manager runs once.
        case reject
    }

    mutating func runAll() -> RunAction {
        guard case .idle(let shutdownRequested) = state else { return .reject }
        if shutdownRequested {
            state = .finished(failure: nil)
            return .finishWithoutStarting
        }
        state = .starting(shutdownRequested: false, forced: false)
        return .start
    }

    /// Checked just before binding: a shutdown that came during preparation ends the start-up
    /// cleanly, with nothing bound.
    mutating func shouldBind() -> Bool {
        guard case .starting(let shutdownRequested, _) = state else { return false }
        if shutdownRequested {
            state = .finished(failure: nil)
            return false
        }
        return true
    }

    /// Binding or starting failed: everything is rolled back and `runAll` throws.
    mutating func startFailed(_ error: any Error) {
        state = .finished(failure: error)
    }

    enum StartedAction {
        /// Run the group.
        case run(Group)
        /// Run the group and shut it down at once (a shutdown came during start-up);
        /// `forced` when a second signal came too.
        case runAndShutDown(Group, forced: Bool)
    }

    /// Every server listens and the group is built.
    mutating func started(_ group: Group) -> StartedAction {
        guard case .starting(let shutdownRequested, let forced) = state, shutdownRequested else {
            state = .running(group)
            return .run(group)
        }
        state = .draining(group, forced: forced)
        return .runAndShutDown(group, forced: forced)
    }

    // MARK: Shutting down

    enum ShutdownAction {
        case none
        /// Start the group's graceful shutdown.
        case triggerGracefulShutdown(Group)
        /// Stop every server now, without waiting for in-flight requests (the graceful shutdown
        /// has been triggered before).
        case forceStop
        /// Both: trigger the graceful shutdown and stop every server now.
        case triggerAndForceStop(Group)
    }

    /// ``ServerManager/shutdown()``, or the first signal.
    mutating func shutdownRequested() -> ShutdownAction {
        switch state {
        case .idle:
            state = .idle(shutdownRequested: true)
        case .starting(_, let forced):
            state = .starting(shutdownRequested: true, forced: forced)
        case .running(let group):
            state = .draining(group, forced: false)
            return .triggerGracefulShutdown(group)
        case .draining, .finished:
            break
        }
        return .none
    }

    /// A second signal, or an explicit forced stop: no more waiting for in-flight requests.
    mutating func forceStop() -> ShutdownAction {
        switch state {
        case .idle:
            state = .idle(shutdownRequested: true)
        case .starting:
            state = .starting(shutdownRequested: true, forced: true)
        case .running(let group):
            state = .draining(group, forced: true)
            return .triggerAndForceStop(group)
        case .draining(let group, let forced):
            if !forced {
                state = .draining(group, forced: true)
                return .forceStop
            }
        case .finished:
            break
        }
        return .none
    }

    /// SIGTERM or SIGINT: the first is a graceful shutdown, any later one a forced stop.
    mutating func signalReceived() -> ShutdownAction {
        signalsReceived += 1
        return signalsReceived == 1 ? shutdownRequested() : forceStop()
    }

    /// The group began its graceful shutdown by itself (a service ended), or the coordinator
    /// heard of it. Returns whether the drain is forced.
    mutating func drainBegan() -> Bool {
        switch state {
        case .running(let group):
            state = .draining(group, forced: false)
            return false
        case .draining(_, let forced):
            return forced
        case .starting(_, let forced):
            return forced
        case .idle, .finished:
            return false
        }
    }

    /// `runAll` is returning.
    mutating func finished() {
        if case .finished = state { return }
        state = .finished(failure: nil)
    }

    // MARK: Runtime additions

    enum AddAction {
        /// Add the server to this running group.
        case add(Group)
        /// Not running (not started yet, shutting down, or finished).
        case reject
    }

    func addServer() -> AddAction {
        if case .running(let group) = state { return .add(group) }
        return .reject
    }

    /// Whether servers may be stopped, restarted or replaced now (only while running).
    var acceptsRuntimeChanges: Bool {
        if case .running = state { return true }
        return false
    }

    // MARK: Binary upgrade

    enum UpgradeAction: Equatable {
        /// Start the new process.
        case spawn
        /// Not now, for this reason.
        case reject(String)
    }

    mutating func beginUpgrade() -> UpgradeAction {
        guard case .running = state else { return .reject("the manager is not running") }
        guard !upgrading else { return .reject("an upgrade is already in progress") }
        upgrading = true
        return .spawn
    }

    /// The new process failed or never became ready: this one goes on serving.
    mutating func upgradeFailed() {
        upgrading = false
    }

    enum UpgradeReadyAction {
        /// Drain and exit, leaving the sockets to the new process.
        case handOver(Group)
        /// A shutdown began while the new process started: stop the new process; the
        /// shutdown goes on as it began.
        case stopNewProcess
    }

    /// The new process reported ready.
    mutating func upgradeSucceeded() -> UpgradeReadyAction {
        upgrading = false
        guard case .running(let group) = state else { return .stopNewProcess }
        handingOver = true
        state = .draining(group, forced: false)
        return .handOver(group)
    }

    /// Whether a server that was added while running must join a shutdown that began meanwhile.
    var isShuttingDownOrFinished: Bool {
        switch state {
        case .draining, .finished: true
        case .idle, .starting, .running: false
        }
    }

    // MARK: Queries

    /// For ``ServerManager/waitUntilStarted()``: `nil` while starting.
    var startOutcome: Result<Void, any Error>? {
        switch state {
        case .idle, .starting: nil
        case .running, .draining: .success(())
        case .finished(let failure): failure.map { .failure($0) } ?? .failure(CancellationError())
        }
    }

    var isForced: Bool {
        switch state {
        case .draining(_, let forced), .starting(_, let forced): forced
        case .idle, .running, .finished: false
        }
    }
}
