@testable import MHDServers
import Testing

/// The lifecycle and request state machines, every ordering that was a bug before, with no
/// socket and no process: the machines are plain values.
@Suite("State machines", .timeLimit(.minutes(2)))
struct StateMachineTests {
    typealias Server = ServerStateMachine<String, Int>
    static let address = BoundAddress(host: "127.0.0.1", port: 8080)
    static let later = ContinuousClock.now.advanced(by: .seconds(10))

    // MARK: Server

    @Test func serverHappyPath() {
        var machine = Server()
        guard case .bind = machine.bindAction() else { Issue.record("idle must bind"); return }
        #expect(machine.bound("socket", at: Self.address).isNone)
        guard case .start("socket", Self.address) = machine.startAction() else { Issue.record("must start"); return }
        guard case .started(let started) = machine.engineStarted(1) else { Issue.record("must run"); return }
        #expect(!started.withdrawReadiness && !started.stopAccepting)
        let wake = machine.requestShutdown()
        #expect(wake)
        guard case .stopAccepting(1, handingOver: false) = machine.stopAccepting(deadline: Self.later) else { Issue.record("must quiesce"); return }
        guard case .drain(1, let deadline, false, _) = machine.beginDrain(defaultDeadline: .now) else {
            Issue.record("must drain"); return
        }
        #expect(deadline == Self.later)
        guard case .stop(1, "socket") = machine.stopped() else { Issue.record("must stop"); return }
        #expect(machine.isStopped)
        guard case .refuse = machine.bindAction() else { Issue.record("a server runs once"); return }
    }

    @Test func shutdownRequestedBeforeRunIsKept() {
        var machine = Server()
        let wake = machine.requestShutdown()
        #expect(!wake)
        #expect(machine.shutdownRequested)
        _ = machine.bound("socket", at: Self.address)
        _ = machine.engineStarted(1)
        // run() does not wait for a request that already came.
        #expect(machine.shutdownRequested)
    }

    @Test func lateStartJoinsAShutdownInProgress() {
        var machine = Server()
        _ = machine.bound("socket", at: Self.address)
        #expect(machine.withdrawReadiness().isNone)
        #expect(machine.stopAccepting(deadline: Self.later).isNone)
        // A second, later deadline does not move the first.
        _ = machine.stopAccepting(deadline: Self.later.advanced(by: .seconds(5)))
        guard case .started(let started) = machine.engineStarted(1) else { Issue.record("must run"); return }
        #expect(started.withdrawReadiness && started.stopAccepting)
        guard case .drain(_, let deadline, false, _) = machine.beginDrain(defaultDeadline: .now) else {
            Issue.record("must drain"); return
        }
        #expect(deadline == Self.later)
    }

    @Test func forcedStopInterruptsTheDrainOnce() {
        var machine = Server()
        _ = machine.bound("socket", at: Self.address)
        _ = machine.engineStarted(1)
        _ = machine.stopAccepting(deadline: Self.later)
        guard case .stopAcceptingAndInterruptDrain(1) = machine.forceStop() else { Issue.record("must interrupt"); return }
        #expect(machine.isForced)
        #expect(machine.forceStop().isNone)
        guard case .drain(_, _, true, _) = machine.beginDrain(defaultDeadline: .now) else { Issue.record("forced"); return }
    }

    @Test func failedStartClosesTheSocketAndNeverRuns() {
        var machine = Server()
        _ = machine.bound("socket", at: Self.address)
        guard case .close("socket"?) = machine.failed(CancellationError()) else { Issue.record("must close"); return }
        guard case .refuse = machine.startAction() else { Issue.record("must not start"); return }
        // An engine that started anyway (a race with the rollback) is stopped again.
        guard case .stop(7) = machine.engineStarted(7) else { Issue.record("must stop"); return }
        #expect(machine.stopped().isNone)
    }

    @Test func stoppedAfterBindingBeforeStartClosesTheSocketAndAnyLateEngine() {
        var machine = Server()
        _ = machine.bound("socket", at: Self.address)
        guard case .close("socket") = machine.stopped() else { Issue.record("must close the socket"); return }
        // The start that was under way finds it stopped: its engine is stopped again.
        guard case .stop(3) = machine.engineStarted(3) else { Issue.record("must stop the late engine"); return }
    }

    @Test func stoppedWhileBindingClosesTheNewSocket() {
        var machine = Server()
        _ = machine.failed(CancellationError())
        guard case .close("late") = machine.bound("late", at: Self.address) else { Issue.record("must close"); return }
    }

    // MARK: Manager

    typealias Manager = ManagerStateMachine<String>

    @Test func shutdownBeforeRunAllBindsNothing() {
        var machine = Manager()
        #expect(machine.shutdownRequested().isNone)
        #expect(machine.runAll() == .finishWithoutStarting)
        #expect(machine.runAll() == .reject)
    }

    @Test func signalDuringStartUpBeforeBindingEndsItCleanly() {
        var machine = Manager()
        #expect(machine.runAll() == .start)
        #expect(machine.signalReceived().isNone)
        let bind = machine.shouldBind()
        #expect(!bind)
        guard case .failure(let error)? = machine.startOutcome, error is CancellationError else {
            Issue.record("waiters learn that it never started"); return
        }
    }

    @Test func signalAfterBindingStartsThenShutsDownAtOnce() {
        var machine = Manager()
        _ = machine.runAll()
        let bind = machine.shouldBind()
        #expect(bind)
        _ = machine.signalReceived()
        guard case .runAndShutDown("group", forced: false) = machine.started("group") else {
            Issue.record("must shut down at once"); return
        }
        // A second signal now forces the stop.
        guard case .forceStop = machine.signalReceived() else { Issue.record("second signal forces"); return }
    }

    @Test func secondSignalDuringTheDrainForcesTheStopOnce() {
        var machine = Manager()
        _ = machine.runAll()
        _ = machine.shouldBind()
        guard case .run("group") = machine.started("group") else { Issue.record("must run"); return }
        guard case .triggerGracefulShutdown("group") = machine.signalReceived() else { Issue.record("graceful"); return }
        #expect(!machine.isForced)
        guard case .forceStop = machine.signalReceived() else { Issue.record("forced"); return }
        #expect(machine.isForced)
        #expect(machine.signalReceived().isNone)
    }

    @Test func shutdownCallThenSignalDoesNotForce() {
        var machine = Manager()
        _ = machine.runAll()
        _ = machine.shouldBind()
        _ = machine.started("group")
        guard case .triggerGracefulShutdown = machine.shutdownRequested() else { Issue.record("graceful"); return }
        // The first signal is a graceful request, already under way: nothing more.
        #expect(machine.signalReceived().isNone)
        #expect(!machine.isForced)
    }

    @Test func serverAddedDuringShutdownIsRejectedOrJoins() {
        var machine = Manager()
        #expect(machine.addServer().isReject)
        _ = machine.runAll()
        _ = machine.shouldBind()
        _ = machine.started("group")
        guard case .add("group") = machine.addServer() else { Issue.record("running accepts"); return }
        #expect(!machine.isShuttingDownOrFinished)
        _ = machine.shutdownRequested()
        #expect(machine.addServer().isReject)
        #expect(machine.isShuttingDownOrFinished)
    }

    @Test func failedStartReportsItsError() {
        struct Boom: Error {}
        var machine = Manager()
        _ = machine.runAll()
        machine.startFailed(Boom())
        guard case .failure(let error)? = machine.startOutcome, error is Boom else { Issue.record("the start error"); return }
        #expect(machine.runAll() == .reject)
    }

    // MARK: Async exchange

    @Test func handlerThatFinishesBeforeTheSuspensionIsAnsweredInline() {
        var exchange = AsyncExchange()
        #expect(exchange.handlerFinished(with: .text("a")) == .none)
        #expect(exchange.engineWillSuspend(serverStopping: false) == .answer)
        #expect(exchange.finishedInline)
        #expect(exchange.takeInlineResponse()?.body == Array("a".utf8))
        // Taken once: the engine thread queues it, nothing answers twice.
        #expect(exchange.takeInlineResponse()?.body == nil)
        #expect(!exchange.finishedInline)
        #expect(exchange.handlerFinished(with: .text("b")) == .none)
        #expect(exchange.abandon() == .none)
    }

    @Test func suspendedHandlerResumesExactlyOnce() {
        var exchange = AsyncExchange()
        #expect(exchange.engineWillSuspend(serverStopping: false) == .suspend)
        #expect(exchange.handlerFinished(with: .text("a")) == .resume)
        #expect(exchange.handlerFinished(with: .text("b")) == .none)
        #expect(exchange.abandon() == .none)
        guard case .respond(let response)? = exchange.outcome else { Issue.record("responds"); return }
        #expect(response.status == .ok)
    }

    @Test func stopRacingALateResume() {
        var exchange = AsyncExchange()
        _ = exchange.engineWillSuspend(serverStopping: false)
        // The drain deadline passes: the server resumes it with a 503...
        #expect(exchange.abandon() == .resume)
        // ...and the handler that finishes afterwards must not resume it again.
        #expect(exchange.handlerFinished(with: .text("late")) == .none)
        guard case .abandoned? = exchange.outcome else { Issue.record("abandoned"); return }
    }

    @Test func nothingIsSuspendedOnceTheServerStops() {
        var exchange = AsyncExchange()
        #expect(exchange.engineWillSuspend(serverStopping: true) == .refuse)
        #expect(exchange.handlerFinished(with: .text("late")) == .none)
        #expect(exchange.abandon() == .none)
    }

    @Test func clientThatHungUpGetsNoAnswer() {
        var exchange = AsyncExchange()
        _ = exchange.engineWillSuspend(serverStopping: false)
        _ = exchange.cancel(clientGone: true)
        #expect(exchange.cancelledByServer)
        #expect(exchange.handlerFinished(with: .text("cancelled")) == .resume)
        guard case .clientGone? = exchange.outcome else { Issue.record("client gone"); return }
    }

    // MARK: Utilities

    @Test func waitersSettleOnceAndLateWaitersGetTheOutcome() async throws {
        let state = Locked(Waiters<Int>())
        async let first: Int = withCheckedThrowingContinuation { continuation in
            if let ready = state.withLock({ $0.add(continuation) }) { continuation.resume(with: ready) }
        }
        // Settle until the waiter has been queued (or it saw the outcome).
        var resumption = state.withLock { $0.settle(.success(1)) }
        resumption.resume()
        resumption = state.withLock { $0.settle(.success(2)) }
        resumption.resume()
        #expect(try await first == 1)
        let late = try await withCheckedThrowingContinuation { continuation in
            if let ready = state.withLock({ $0.add(continuation) }) { continuation.resume(with: ready) }
        }
        #expect(late == 1)
    }
}

extension ServerStateMachine.BoundAction {
    var isNone: Bool { if case .none = self { true } else { false } }
}

extension ServerStateMachine.EngineAction {
    var isNone: Bool { if case .none = self { true } else { false } }
}

extension ServerStateMachine.StopAction {
    var isNone: Bool { if case .none = self { true } else { false } }
}

extension ManagerStateMachine.ShutdownAction {
    var isNone: Bool { if case .none = self { true } else { false } }
}

extension ManagerStateMachine.AddAction {
    var isReject: Bool { if case .reject = self { true } else { false } }
}

/// Hand-overs and binary upgrades in the server and manager machines.
@Suite("Hand-over state machines", .timeLimit(.minutes(1)))
struct HandOverStateMachineTests {
    typealias Server = ServerStateMachine<String, Int>
    typealias Manager = ManagerStateMachine<String>
    static let address = BoundAddress(host: "127.0.0.1", port: 8080)
    static let later = ContinuousClock.now.advanced(by: .seconds(10))

    @Test func aHandOverLeavesTheSocketListeningAndWaitsForQuietConnections() {
        var machine = Server()
        _ = machine.bound("socket", at: Self.address)
        _ = machine.engineStarted(1)
        #expect(machine.phase == .running)
        guard case .stopAccepting(1, handingOver: true) = machine.stopAccepting(deadline: Self.later, handingOver: true) else {
            Issue.record("must stop accepting, handing over"); return
        }
        #expect(machine.phase == .draining)
        guard case .drain(1, Self.later, false, handingOver: true) = machine.beginDrain(defaultDeadline: .now) else {
            Issue.record("must drain, handing over"); return
        }
        _ = machine.stopped()
        #expect(machine.phase == .stopped)
    }

    @Test func aHandOverAskedBeforeTheStartIsKept() {
        var machine = Server()
        _ = machine.bound("socket", at: Self.address)
        _ = machine.stopAccepting(deadline: Self.later, handingOver: true)
        guard case .started(let started) = machine.engineStarted(1) else { Issue.record("must run"); return }
        #expect(started.stopAccepting && started.handingOver)
    }

    @Test func aPlainShutdownIsNoHandOver() {
        var machine = Server()
        _ = machine.bound("socket", at: Self.address)
        _ = machine.engineStarted(1)
        guard case .drain(1, _, false, handingOver: false) = machine.beginDrain(defaultDeadline: Self.later) else {
            Issue.record("must drain without hand-over"); return
        }
    }

    @Test func phases() {
        var machine = Server()
        #expect(machine.phase == .starting)
        _ = machine.failed(CancellationError())
        #expect(machine.phase == .failed)
    }

    @Test func oneUpgradeAtATimeAndOnlyWhileRunning() {
        var machine = Manager()
        #expect(machine.beginUpgrade() == .reject("the manager is not running"))
        _ = machine.runAll()
        _ = machine.started("group")
        #expect(machine.acceptsRuntimeChanges)
        #expect(machine.beginUpgrade() == .spawn)
        #expect(machine.beginUpgrade() == .reject("an upgrade is already in progress"))
        machine.upgradeFailed()
        #expect(machine.beginUpgrade() == .spawn)
        guard case .handOver("group") = machine.upgradeSucceeded() else { Issue.record("must hand over"); return }
        #expect(machine.handingOver)
        #expect(machine.isShuttingDownOrFinished)
        #expect(!machine.acceptsRuntimeChanges)
        // The drain that follows is not forced.
        #expect(machine.drainBegan() == false)
    }

    @Test func aShutdownDuringAnUpgradeStopsTheNewProcess() {
        var machine = Manager()
        _ = machine.runAll()
        _ = machine.started("group")
        #expect(machine.beginUpgrade() == .spawn)
        _ = machine.signalReceived()
        guard case .stopNewProcess = machine.upgradeSucceeded() else { Issue.record("must stop the new process"); return }
        #expect(!machine.handingOver)
    }
}
