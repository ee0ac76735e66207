import Glibc
import Logging
import MHDServers
import Testing

/// SIGTERM at every point of start-up, in a process of its own (an exit test): a manager owns
/// the signals from the first instant of `runAll`, so the process always exits normally, with
/// exactly one shutdown, never through the signal's default disposition.
@Suite("Signals during start-up", .timeLimit(.minutes(2)))
struct ProcessSignalTests {
    /// Where in start-up the process sends itself SIGTERM.
    enum Point: String, CaseIterable, Codable, Sendable {
        /// While routes are registered: before anything binds.
        case beforeBinding
        /// While the first server checks its port.
        case whileBinding
        /// Once a port is bound, before the engines start.
        case afterBinding
        /// In the first `onStarted` hook: servers serve, the group does not run yet.
        case whileStarting
        /// Twice in a row while binding: the second forces the stop.
        case twiceWhileBinding
    }

    struct SignallingAPI: ServerLifecycle {
        let point: Point
        let events: Shared<[String]>

        func signal(_ here: Point) {
            guard here == point || (here == .whileBinding && point == .twiceWhileBinding) else { return }
            kill(getpid(), SIGTERM)
            if point == .twiceWhileBinding { kill(getpid(), SIGTERM) }
        }
        func registerRoutes(on router: inout Router, context: HTTPServerContext) {
            signal(.beforeBinding)
            router.get("/") { _ in .text("ok") }
        }
        func onPortCheck(_ port: Int, context: HTTPServerContext) { signal(.whileBinding) }
        func onPortAvailable(_ port: Int, context: HTTPServerContext) { signal(.afterBinding) }
        func onStarted(_ address: BoundAddress, context: HTTPServerContext) async {
            events.value.append("started \(context.name)")
            signal(.whileStarting)
        }
        func onShutdown(context: HTTPServerContext) async { events.value.append("stopped \(context.name)") }
    }

    /// Runs two servers, sending SIGTERM at `point`; returns the hook events, or throws.
    static func startUp(signallingAt point: Point) async throws -> [String] {
        let events = Shared<[String]>([])
        let manager = ServerManager(logger: quietLogger, shutdownTimeout: .seconds(30))
        let shutdowns = Shared(0)
        manager.onShutdown { shutdowns.value += 1 }
        try await manager.runAll(
            [
                Server(config: ServerConfig(name: "a", port: 0), lifecycle: SignallingAPI(point: point, events: events)),
                Server(config: ServerConfig(name: "b", port: 0), lifecycle: RecordingAPI(recorder: Recorder())),
            ], signals: [.sigterm, .sigint])
        return events.value + ["shutdowns \(shutdowns.value)"]
    }

    @Test(arguments: Point.allCases)
    func sigtermAtAnyPointOfStartUpShutsDownOnce(_ point: Point) async {
        let standardError = ChildStandardError()
        let result = await #expect(processExitsWith: .success) { [point, stderrPath = standardError.path as String] in
            ChildStandardError.redirect(to: stderrPath)
            defer { ChildStandardError.bodyReturned() }
            let started = ContinuousClock.now
            do {
                let events = try await ProcessSignalTests.startUp(signallingAt: point)
                // A signal is handled asynchronously: one sent before binding may be handled
                // before (nothing binds) or just after the binding began (the servers start
                // and stop at once). Either way: one shutdown, a normal exit.
                let expected: [[String]] =
                    switch point {
                    case .beforeBinding: [["shutdowns 1"], ["started a", "stopped a", "shutdowns 1"]]
                    case .whileBinding, .afterBinding, .whileStarting, .twiceWhileBinding:
                        [["started a", "stopped a", "shutdowns 1"]]
                    }
                guard expected.contains(events) else {
                    FileDescriptorTests.report("\(point): events \(events), expected \(expected)")
                    return  // the report on standard error fails the test
                }
                // A 30 s drain deadline with nothing in flight: the shutdown takes no time.
                guard ContinuousClock.now - started < .seconds(15) else {
                    FileDescriptorTests.report("\(point): took \(ContinuousClock.now - started)")
                    return  // the report on standard error fails the test
                }
            } catch {
                FileDescriptorTests.report("\(point): runAll threw \(error)")
                return  // the report on standard error fails the test
            }
        }
        // Read whatever the exit status: a child killed by a signal leaves its last words here.
        let report = standardError.text(exitMatched: result != nil)
        #expect(report.isEmpty, "standard error of the child:\n\(report)")
    }

    /// Many starts, each with SIGTERM a different time after the manager trapped its signals
    /// (it logs "starting" right then): spread over binding, starting and serving, every one
    /// exits normally.
    @Test func sigtermAfterAnyDelayFromTheStart() async {
        let standardError = ChildStandardError()
        let result = await #expect(processExitsWith: .success) { [stderrPath = standardError.path as String] in
            ChildStandardError.redirect(to: stderrPath)
            defer { ChildStandardError.bodyReturned() }
            for round in 0..<30 {
                let delay = useconds_t(round * 150)
                let logger = Logger(label: "signals") { _ in
                    CallbackLogHandler.onMessage(prefix: "starting") {
                        Task.detached {
                            usleep(delay)
                            kill(getpid(), SIGTERM)
                        }
                    }
                }
                let manager = ServerManager(logger: logger)
                do {
                    try await manager.runAll(
                        [Server(config: ServerConfig(name: "r\(round)", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))],
                        signals: [.sigterm])
                } catch {
                    FileDescriptorTests.report("round \(round): \(error)")
                    return  // the report on standard error fails the test
                }
            }
        }
        // Read whatever the exit status: a child killed by a signal leaves its last words here.
        let report = standardError.text(exitMatched: result != nil)
        #expect(report.isEmpty, "standard error of the child:\n\(report)")
    }

    /// A second SIGTERM during a long drain delay ends it at once: the delay is a sleep that a
    /// forced stop cancels, not a loop.
    @Test func secondSignalCutsTheDrainDelayShort() async {
        let standardError = ChildStandardError()
        let result = await #expect(processExitsWith: .success) { [stderrPath = standardError.path as String] in
            ChildStandardError.redirect(to: stderrPath)
            defer { ChildStandardError.bodyReturned() }
            let manager = ServerManager(logger: quietLogger, drainDelay: .seconds(60))
            let run = Task {
                try await manager.runAll(
                    [Server(config: ServerConfig(name: "d", port: 0, health: .init()), lifecycle: RecordingAPI(recorder: Recorder()))],
                    signals: [.sigterm])
            }
            do {
                guard let port = try await manager.waitUntilStarted().first?.address?.port else {
                    FileDescriptorTests.report("drain delay: no port")
                    return
                }
                kill(getpid(), SIGTERM)
                // Readiness turns 503 once the delay has begun.
                try await waitUntil("the drain delay to begin") { (try? await request(port, "GET", "/readyz").status) == 503 }
                let start = ContinuousClock.now
                kill(getpid(), SIGTERM)
                try await run.value
                let took = ContinuousClock.now - start
                if took > .seconds(3) { FileDescriptorTests.report("the second signal took \(took) to end a 60 s drain delay") }
            } catch {
                FileDescriptorTests.report("drain delay: \(error)")
            }
            return  // a report on standard error fails the test
        }
        // Read whatever the exit status: a child killed by a signal leaves its last words here.
        let report = standardError.text(exitMatched: result != nil)
        #expect(report.isEmpty, "standard error of the child:\n\(report)")
    }

    /// A second SIGTERM cancels a side service that is still finishing a long call, at once.
    @Test func secondSignalCancelsSideServices() async {
        let standardError = ChildStandardError()
        let result = await #expect(processExitsWith: .success) { [stderrPath = standardError.path as String] in
            ChildStandardError.redirect(to: stderrPath)
            defer { ChildStandardError.bodyReturned() }
            let manager = ServerManager(logger: quietLogger, shutdownTimeout: .seconds(30))
            let cancelled = Gate()
            let run = Task {
                try await manager.runAll(
                    [Server(config: ServerConfig(name: "s", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))],
                    alongside: [ManagerTests.LongCall(cancelled: cancelled)], signals: [.sigterm])
            }
            do {
                _ = try await manager.waitUntilStarted()
                kill(getpid(), SIGTERM)
                let start = ContinuousClock.now
                // The drain has begun (nothing in flight: the servers are done at once), while the
                // side service waits for its call.
                usleep(200_000)
                kill(getpid(), SIGTERM)
                try await run.value
                let took = ContinuousClock.now - start
                if took > .seconds(3) { FileDescriptorTests.report("side service: the second signal took \(took)") }
                if !cancelled.isOpen { FileDescriptorTests.report("side service: not cancelled") }
            } catch {
                FileDescriptorTests.report("side service: \(error)")
            }
        }
        // Read whatever the exit status: a child killed by a signal leaves its last words here.
        let report = standardError.text(exitMatched: result != nil)
        #expect(report.isEmpty, "standard error of the child:\n\(report)")
    }
}

/// A log handler that runs `action` when a message starts with `prefix`.
extension CallbackLogHandler {
    static func onMessage(prefix: String, _ action: @escaping @Sendable () -> Void) -> CallbackLogHandler {
        CallbackLogHandler { event in
            if "\(event.message)".hasPrefix(prefix) { action() }
        }
    }
}
