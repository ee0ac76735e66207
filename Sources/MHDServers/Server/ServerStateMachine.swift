/// The lifecycle of one ``HTTPServer``: idle → bound → running → draining(deadline) → stopped.
///
/// A value with mutating transitions that say what to do; ``HTTPServer`` holds it under its lock
/// and carries the actions out after unlocking. It is generic over the socket and engine types
/// so every ordering can be tested without sockets.
///
/// Requests that arrive before the server runs are remembered and applied when it starts: a
/// runtime-added server that starts while its manager is already shutting down joins the
/// shutdown at once (not ready, not accepting, same drain deadline).
struct ServerStateMachine<Socket: Sendable, Engine: Sendable>: Sendable {
    typealias Instant = ContinuousClock.Instant

    enum State: Sendable {
        /// Not bound yet.
        case idle(Requests)
        /// Listening socket bound; the engine is not running yet.
        case bound(Socket, BoundAddress, Requests)
        /// The engine serves.
        case running(Running)
        /// No longer accepting; in-flight requests finish until `deadline` (or at once if forced).
        case draining(Running, deadline: Instant, forced: Bool)
        /// Stopped, or failed to start (`failure`). A server runs once.
        case stopped(failure: (any Error)?)
    }

    /// What was asked of the server, kept until it can be applied.
    struct Requests: Sendable {
        /// Readiness probes answer 503 (a shutdown has begun).
        var readinessWithdrawn = false
        /// Stop accepting; drain until this instant.
        var drainDeadline: Instant?
        /// Skip the drain.
        var forced = false
        /// A graceful shutdown was asked for: `run()` may go on to drain and stop.
        var shutdownRequested = false
        /// Another engine takes over the listening socket (a restart, a binary upgrade): it is
        /// left listening when this one stops accepting, and the drain also waits for open
        /// connections to go quiet.
        var handingOver = false
    }

    struct Running: Sendable {
        let socket: Socket
        let engine: Engine
        let address: BoundAddress
        var requests: Requests
    }

    private(set) var state: State = .idle(Requests())

    // MARK: Starting

    enum BindAction {
        /// Bind a socket now.
        case bind
        /// Already bound: this is the address.
        case alreadyBound(BoundAddress)
        /// It ran (or failed) before: a server runs once.
        case refuse
    }

    func bindAction() -> BindAction {
        switch state {
        case .idle: .bind
        case .bound(_, let address, _): .alreadyBound(address)
        case .running(let running), .draining(let running, _, _): .alreadyBound(running.address)
        case .stopped: .refuse
        }
    }

    enum BoundAction {
        case none
        /// The server was stopped while binding: close the socket again.
        case close(Socket)
    }

    mutating func bound(_ socket: Socket, at address: BoundAddress) -> BoundAction {
        guard case .idle(let requests) = state else { return .close(socket) }
        state = .bound(socket, address, requests)
        return .none
    }

    enum StartAction {
        /// Start the engine on this socket.
        case start(Socket, BoundAddress)
        /// Running already.
        case none
        /// Nothing to start: not bound, or stopped.
        case refuse
    }

    func startAction() -> StartAction {
        switch state {
        case .bound(let socket, let address, _): .start(socket, address)
        case .running, .draining: .none
        case .idle, .stopped: .refuse
        }
    }

    /// What to do once the engine runs: tell the waiters, then apply what was asked meanwhile.
    struct StartedAction {
        var address: BoundAddress
        var withdrawReadiness: Bool
        var stopAccepting: Bool
        var handingOver: Bool
    }

    enum EngineStartedAction {
        case started(StartedAction)
        /// Stopped while the engine was starting: stop it again.
        case stop(Engine)
    }

    mutating func engineStarted(_ engine: Engine) -> EngineStartedAction {
        guard case .bound(let socket, let address, let requests) = state else { return .stop(engine) }
        let running = Running(socket: socket, engine: engine, address: address, requests: requests)
        if let deadline = requests.drainDeadline {
            state = .draining(running, deadline: deadline, forced: requests.forced)
        } else if requests.forced {
            state = .draining(running, deadline: .now, forced: true)
        } else {
            state = .running(running)
        }
        return .started(
            StartedAction(
                address: address, withdrawReadiness: requests.readinessWithdrawn,
                stopAccepting: requests.drainDeadline != nil || requests.forced, handingOver: requests.handingOver))
    }

    enum FailAction {
        case none
        /// Close the socket (bound but never started).
        case close(Socket?)
    }

    /// Binding or starting failed, or the manager rolled the server back: it never runs.
    mutating func failed(_ error: any Error) -> FailAction {
        switch state {
        case .idle:
            state = .stopped(failure: error)
            return .close(nil)
        case .bound(let socket, _, _):
            state = .stopped(failure: error)
            return .close(socket)
        case .running, .draining, .stopped:
            return .none
        }
    }

    // MARK: Requests

    enum EngineAction {
        case none
        /// Readiness probes answer 503 from now on.
        case withdrawReadiness(Engine)
        /// Stop accepting: new connections are refused (or, `handingOver`, go to the successor).
        case stopAccepting(Engine, handingOver: Bool)
        /// Stop accepting, and end a drain in progress at once.
        case stopAcceptingAndInterruptDrain(Engine)
    }

    mutating func withdrawReadiness() -> EngineAction {
        switch state {
        case .idle(var requests):
            requests.readinessWithdrawn = true
            state = .idle(requests)
        case .bound(let socket, let address, var requests):
            requests.readinessWithdrawn = true
            state = .bound(socket, address, requests)
        case .running(var running):
            running.requests.readinessWithdrawn = true
            state = .running(running)
            return .withdrawReadiness(running.engine)
        case .draining, .stopped:
            break
        }
        return .none
    }

    /// Stop accepting and drain until `deadline` (the first deadline given wins). `handingOver`:
    /// a successor accepts on the same socket (see ``Requests/handingOver``).
    mutating func stopAccepting(deadline: Instant, handingOver: Bool = false) -> EngineAction {
        switch state {
        case .idle(var requests):
            requests.drainDeadline = requests.drainDeadline ?? deadline
            requests.handingOver = requests.handingOver || handingOver
            state = .idle(requests)
        case .bound(let socket, let address, var requests):
            requests.drainDeadline = requests.drainDeadline ?? deadline
            requests.handingOver = requests.handingOver || handingOver
            state = .bound(socket, address, requests)
        case .running(var running):
            running.requests.handingOver = handingOver
            state = .draining(running, deadline: deadline, forced: false)
            return .stopAccepting(running.engine, handingOver: handingOver)
        case .draining, .stopped:
            break
        }
        return .none
    }

    /// Skip (or end) the drain: whatever is in flight is cancelled when the server stops.
    mutating func forceStop() -> EngineAction {
        switch state {
        case .idle(var requests):
            requests.forced = true
            state = .idle(requests)
        case .bound(let socket, let address, var requests):
            requests.forced = true
            state = .bound(socket, address, requests)
        case .running(let running):
            state = .draining(running, deadline: .now, forced: true)
            return .stopAcceptingAndInterruptDrain(running.engine)
        case .draining(let running, let deadline, let forced):
            if !forced {
                state = .draining(running, deadline: deadline, forced: true)
                return .stopAcceptingAndInterruptDrain(running.engine)
            }
        case .stopped:
            break
        }
        return .none
    }

    /// A graceful shutdown was asked for (the group's, or cancellation). Returns whether `run()`
    /// should be woken now.
    mutating func requestShutdown() -> Bool {
        switch state {
        case .idle(var requests):
            requests.shutdownRequested = true
            state = .idle(requests)
            return false
        case .bound(let socket, let address, var requests):
            requests.shutdownRequested = true
            state = .bound(socket, address, requests)
            return false
        case .running(var running):
            running.requests.shutdownRequested = true
            state = .running(running)
            return true
        case .draining(var running, let deadline, let forced):
            let wake = !running.requests.shutdownRequested
            running.requests.shutdownRequested = true
            state = .draining(running, deadline: deadline, forced: forced)
            return wake
        case .stopped:
            return true
        }
    }

    /// Whether `run()` may stop waiting and go on to drain.
    var shutdownRequested: Bool {
        switch state {
        case .idle(let requests), .bound(_, _, let requests): requests.shutdownRequested
        case .running(let running), .draining(let running, _, _): running.requests.shutdownRequested
        case .stopped: true
        }
    }

    // MARK: Stopping

    enum DrainAction {
        /// Drain `engine` until `deadline`; skip the wait if `forced`. `handingOver`: then also
        /// wait for its open connections to go quiet, by the same deadline.
        case drain(Engine, deadline: Instant, forced: Bool, handingOver: Bool)
        /// Nothing runs.
        case none
    }

    /// What the shutdown drains. A running server that was never told to stop accepting stops
    /// accepting now, with `deadline`.
    mutating func beginDrain(defaultDeadline: Instant) -> DrainAction {
        switch state {
        case .running(let running):
            state = .draining(running, deadline: defaultDeadline, forced: running.requests.forced)
            return .drain(running.engine, deadline: defaultDeadline, forced: running.requests.forced, handingOver: false)
        case .draining(let running, let deadline, let forced):
            return .drain(running.engine, deadline: deadline, forced: forced, handingOver: running.requests.handingOver)
        case .idle, .bound, .stopped:
            return .none
        }
    }

    /// Whether the drain should end now (a forced stop came).
    var isForced: Bool {
        if case .draining(_, _, true) = state { return true }
        return false
    }

    enum StopAction {
        case none
        /// Stop the engine (closing every connection) and release the socket.
        case stop(Engine, Socket)
        /// Bound but never started: release the socket.
        case close(Socket)
    }

    /// The drain is over.
    mutating func stopped() -> StopAction {
        switch state {
        case .running(let running), .draining(let running, _, _):
            state = .stopped(failure: nil)
            return .stop(running.engine, running.socket)
        case .idle:
            state = .stopped(failure: nil)
            return .none
        case .bound(let socket, _, _):
            // A start that comes later finds it stopped and stops its engine again.
            state = .stopped(failure: nil)
            return .close(socket)
        case .stopped:
            return .none
        }
    }

    // MARK: Queries

    var address: BoundAddress? {
        switch state {
        case .bound(_, let address, _): address
        case .running(let running), .draining(let running, _, _): running.address
        case .idle, .stopped: nil
        }
    }

    /// The listening socket, while bound or serving.
    var socket: Socket? {
        switch state {
        case .bound(let socket, _, _): socket
        case .running(let running), .draining(let running, _, _): running.socket
        case .idle, .stopped: nil
        }
    }

    var engine: Engine? {
        switch state {
        case .running(let running), .draining(let running, _, _): running.engine
        case .idle, .bound, .stopped: nil
        }
    }

    /// Readiness probes answer 503: a shutdown has begun.
    var isShuttingDown: Bool {
        switch state {
        case .idle(let requests), .bound(_, _, let requests):
            requests.readinessWithdrawn || requests.drainDeadline != nil || requests.forced
        case .running(let running): running.requests.readinessWithdrawn
        case .draining, .stopped: true
        }
    }

    var isStopped: Bool {
        if case .stopped = state { return true }
        return false
    }

    /// The phase reported in ``ServerInfo/state``.
    var phase: ServerInfo.State {
        switch state {
        case .idle, .bound: .starting
        case .running: .running
        case .draining: .draining
        case .stopped(let failure): failure == nil ? .stopped : .failed
        }
    }
}
