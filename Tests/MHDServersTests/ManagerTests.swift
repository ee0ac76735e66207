@testable import MHDServers
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Records every hook call as "name:event".
final class Recorder: Sendable {
    let events = Locked<[String]>([])
    func record(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }
    func of(_ name: String) -> [String] { all.filter { $0.hasPrefix(name + ":") } }
}

struct RecordingAPI: ServerLifecycle {
    let recorder: Recorder
    /// `/slow` waits for this gate (answers at once without one).
    var hold: Gate?
    /// Counts `/slow` handlers that started.
    var slowStarted = Counter()

    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        recorder.record("\(context.name):routes")
        router.get("/name") { _ in .text(context.name) }
        let (hold, slowStarted) = (hold, slowStarted)
        router.get("/slow") { _ in
            slowStarted.increment()
            try await hold?.wait()
            return .text("slow done")
        }
    }
    func onPortCheck(_ port: Int, context: HTTPServerContext) { recorder.record("\(context.name):check \(port)") }
    func onPortUnavailable(_ port: Int, reason: String, context: HTTPServerContext) {
        recorder.record("\(context.name):unavailable \(port)")
    }
    func onPortAvailable(_ port: Int, context: HTTPServerContext) { recorder.record("\(context.name):available") }
    func onStarted(_ address: BoundAddress, context: HTTPServerContext) async {
        recorder.record("\(context.name):started")
    }
    func onShutdown(context: HTTPServerContext) async { recorder.record("\(context.name):shutdown") }
}

/// Runs `manager.runAll(servers, signals: [])` in the background while `body` runs, then
/// shuts down and waits for runAll to return.
func withManager<T: Sendable>(
    _ manager: ServerManager, _ servers: [Server], alongside services: [any Service] = [],
    _ body: ([ServerInfo]) async throws -> T
) async throws -> T {
    let run = Task { try await manager.runAll(servers, alongside: services, signals: []) }
    let started: [ServerInfo]
    do {
        started = try await manager.waitUntilStarted()
    } catch {
        _ = try? await run.value
        throw error
    }
    do {
        let result = try await body(started)
        await manager.shutdown()
        try await run.value
        return result
    } catch {
        await manager.shutdown()
        _ = try? await run.value
        throw error
    }
}

@Suite("ServerManager", .timeLimit(.minutes(2)))
struct ManagerTests {
    @Test func startsEveryServerAndStopsThemTogether() async throws {
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger)
        let servers = ["a", "b", "c"].map {
            Server(config: ServerConfig(name: $0, port: 0), lifecycle: RecordingAPI(recorder: recorder))
        }
        let ports = try await withManager(manager, servers) { started in
            #expect(started.map(\.name) == ["a", "b", "c"])
            var ports: [Int] = []
            for info in started {
                let port = try #require(info.address?.port)
                #expect(try await request(port, "GET", "/name").text == info.name)
                ports.append(port)
            }
            #expect(Set(ports).count == 3)
            return ports
        }
        for port in ports { #expect(await connectionRefused(port)) }
        // Hook order: all bound before any started; shutdown in reverse start order.
        let events = recorder.all.filter { !$0.contains("check") }
        #expect(events == [
            "a:routes", "b:routes", "c:routes",
            "a:available", "b:available", "c:available",
            "a:started", "b:started", "c:started",
            "c:shutdown", "b:shutdown", "a:shutdown",
        ])
        #expect(recorder.of("a").filter { $0.contains("check") } == ["a:check 0"])
    }

    /// Records, from inside its hooks, what the outside world sees at that moment.
    struct ProbingAPI: ServerLifecycle {
        let recorder: Recorder
        /// An idle keep-alive connection to this server, opened by the test.
        let idle = Shared<Connection?>(nil)

        func registerRoutes(on router: inout Router, context: HTTPServerContext) {
            router.get("/name") { _ in .text(context.name) }
        }
        func onStarted(_ address: BoundAddress, context: HTTPServerContext) async {
            // Every server of the manager, not just this one, must already answer.
            for server in context.manager?.servers ?? [] {
                guard let port = server.address?.port else {
                    recorder.record("\(context.name):started, \(server.name) unbound")
                    continue
                }
                let answer = try? await offPool { () -> String in
                    let connection = try Connection(port: port, timeout: 2)
                    try connection.send("GET /name HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    return try connection.readResponse().text
                }
                recorder.record("\(context.name):started, \(server.name) answers \(answer ?? "nothing")")
            }
        }
        func onShutdown(context: HTTPServerContext) async {
            // The daemon has stopped: idle connections are closed and the port refuses.
            let closed = idle.value?.peerClosed() ?? false
            let refused = await connectionRefused(context.config.port)
            recorder.record("\(context.name):shutdown, idle \(closed ? "closed" : "open"), port \(refused ? "refused" : "open")")
        }
    }

    @Test func onStartedRunsWhenEveryServerServesAndOnShutdownAfterItsDaemonStopped() async throws {
        let recorder = Recorder()
        let base = try ReservedPorts.take(2)
        let apis = [ProbingAPI(recorder: recorder), ProbingAPI(recorder: recorder)]
        let servers = [
            Server(config: ServerConfig(name: "a", port: base), lifecycle: apis[0]),
            Server(config: ServerConfig(name: "b", port: base + 1), lifecycle: apis[1]),
        ]
        try await withManager(ServerManager(logger: quietLogger), servers) { started in
            for (api, info) in zip(apis, started) {
                let port = try #require(info.address?.port)
                let connection = try await offPool { () -> Connection in
                    let connection = try Connection(port: port)
                    try connection.send("GET /name HTTP/1.1\r\nHost: t\r\n\r\n")
                    _ = try connection.readResponse()
                    return connection
                }
                api.idle.value = connection
            }
        }
        #expect(recorder.all == [
            "a:started, a answers a", "a:started, b answers b",
            "b:started, a answers a", "b:started, b answers b",
            "b:shutdown, idle closed, port refused", "a:shutdown, idle closed, port refused",
        ])
    }

    @Test func portsClaimedByOneServerAreSkippedByTheNextEvenOnAnotherAddress() async throws {
        // 127.0.0.1:P and 127.0.0.2:P could both be bound: only the manager's own claim on P
        // makes the second server move on.
        let base = try ReservedPorts.take(2)
        let recorder = Recorder()
        let servers = [
            Server(config: ServerConfig(name: "one", host: "127.0.0.1", port: base), lifecycle: RecordingAPI(recorder: recorder)),
            Server(
                config: ServerConfig(name: "two", host: "127.0.0.2", port: base, ports: [base, base + 1]),
                lifecycle: RecordingAPI(recorder: recorder)),
        ]
        try await withManager(ServerManager(logger: quietLogger), servers) { started async throws in
            #expect(started.map { $0.address?.port } == [base, base + 1])
            #expect(try await request(base + 1, "GET", "/name", host: "127.0.0.2").text == "two")
            // The kernel would have allowed it: 127.0.0.2:base is free.
            #expect(await connectionRefused(base, host: "127.0.0.2"))
        }
        #expect(recorder.of("two").contains("two:unavailable \(base)"))
    }

    @Test func overlappingRangesAreDeterministic() async throws {
        var (base, holders) = try consecutivePorts(12)
        holders.removeLast(11)  // only `base` stays busy
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger)
        let servers = [
            Server(config: ServerConfig(name: "public", port: base, ports: base..<(base + 10)), lifecycle: RecordingAPI(recorder: recorder)),
            Server(config: ServerConfig(name: "admin", port: base + 1, ports: (base + 1)..<(base + 11)), lifecycle: RecordingAPI(recorder: recorder)),
        ]
        try await withManager(manager, servers) { started in
            #expect(started.map { $0.address?.port } == [base + 1, base + 2])
        }
        #expect(recorder.of("public").contains("public:unavailable \(base)"))
        #expect(recorder.of("admin").contains("admin:unavailable \(base + 1)"))
        withExtendedLifetime(holders) {}
    }

    @Test func failedServerRollsBackTheOthers() async throws {
        let (base, holders) = try consecutivePorts(2)
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger)
        let servers = [
            Server(config: ServerConfig(name: "ok", port: 0), lifecycle: RecordingAPI(recorder: recorder)),
            Server(config: ServerConfig(name: "blocked", port: base, ports: [base + 1]), lifecycle: RecordingAPI(recorder: recorder)),
        ]
        let error = await #expect(throws: ServerError.self) {
            try await manager.runAll(servers, signals: [])
        }
        #expect(error?.code == .portsUnavailable)
        #expect(error?.server == "blocked")
        #expect(error?.portsTried == [base, base + 1])
        #expect(!recorder.all.contains { $0.hasSuffix(":started") })
        // The server that had bound released its port.
        #expect(manager.servers.allSatisfy { $0.address == nil })
        await #expect(throws: ServerError.self) { _ = try await manager.waitUntilStarted() }
        withExtendedLifetime(holders) {}
    }

    @Test func rolledBackPortIsFreeAgain() async throws {
        let (base, holders) = try consecutivePorts(1)
        let freePort = try ReservedPorts.take()
        let manager = ServerManager(logger: quietLogger)
        let servers = [
            Server(config: ServerConfig(name: "first", port: freePort), lifecycle: RecordingAPI(recorder: Recorder())),
            Server(config: ServerConfig(name: "second", port: base), lifecycle: RecordingAPI(recorder: Recorder())),
        ]
        await #expect(throws: ServerError.self) { try await manager.runAll(servers, signals: []) }
        #expect(await connectionRefused(freePort))
        let again = try PortHolder(port: freePort)
        #expect(again.port == freePort)
        withExtendedLifetime(holders) {}
    }

    @Test func duplicateNamesAreRejected() async throws {
        let manager = ServerManager(logger: quietLogger)
        let servers = [
            Server(config: ServerConfig(name: "x", port: 0), lifecycle: RecordingAPI(recorder: Recorder())),
            Server(config: ServerConfig(name: "x", port: 0), lifecycle: RecordingAPI(recorder: Recorder())),
        ]
        let error = await #expect(throws: ServerError.self) { try await manager.runAll(servers, signals: []) }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test func serverAddedAtRuntimeServesAndStopsWithTheOthers() async throws {
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger)
        let first = Server(config: ServerConfig(name: "first", port: 0), lifecycle: RecordingAPI(recorder: recorder))
        let port = try await withManager(manager, [first]) { started in
            let firstPort = started[0].address!.port
            // A runtime server asking for a port this manager already uses moves on.
            let address = try await manager.addServer(
                Server(
                    config: ServerConfig(name: "late", port: firstPort, ports: [firstPort, 0]),
                    lifecycle: RecordingAPI(recorder: recorder)))
            #expect(address.port != firstPort)
            #expect(try await request(address.port, "GET", "/name").text == "late")
            #expect(manager.servers.map(\.name) == ["first", "late"])
            return address.port
        }
        #expect(await connectionRefused(port))
        #expect(recorder.all.filter { $0.hasSuffix("shutdown") }.sorted() == ["first:shutdown", "late:shutdown"])
    }

    @Test func shutdownRunsExactlyOnce() async throws {
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger)
        let callbacks = Locked(0)
        manager.onShutdown { callbacks.withLock { $0 += 1 } }
        let servers = [Server(config: ServerConfig(name: "s", port: 0), lifecycle: RecordingAPI(recorder: recorder))]
        try await withManager(manager, servers) { _ in
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<5 { group.addTask { await manager.shutdown() } }
            }
        }
        await manager.shutdown()
        #expect(callbacks.withLock { $0 } == 1)
        #expect(recorder.of("s").filter { $0.hasSuffix("shutdown") } == ["s:shutdown"])
        // A manager runs once.
        await #expect(throws: ServerError.self) { try await manager.runAll(servers, signals: []) }
    }

    @Test func everyServerStopsAcceptingAtOnceWhileOneDrains() async throws {
        let recorder = Recorder()
        let busy = RecordingAPI(recorder: recorder, hold: Gate())
        let manager = ServerManager(logger: quietLogger)
        let servers = [
            Server(config: ServerConfig(name: "busy", port: 0), lifecycle: busy),
            Server(config: ServerConfig(name: "idle", port: 0), lifecycle: RecordingAPI(recorder: recorder)),
        ]
        let run = Task { try await manager.runAll(servers, signals: []) }
        let started = try await manager.waitUntilStarted()
        let busyPort = try #require(started[0].address?.port)
        let idlePort = try #require(started[1].address?.port)
        let slow = Task { try await request(busyPort, "GET", "/slow", keepAlive: true) }
        try await busy.slowStarted.wait(for: 1, "the slow handler to start")
        // shutdown() returns once the drain has started: both listeners are closed by then.
        await manager.shutdown()
        try await waitUntil("both listeners to refuse") {
            let busy = await connectionRefused(busyPort)
            let idle = await connectionRefused(idlePort)
            return busy && idle
        }
        #expect(manager.servers[0].stats.inFlight == 1)
        busy.hold?.open()
        let response = try await slow.value
        #expect(response.header("Connection")?.lowercased() == "close")
        #expect(response.status == 200)
        #expect(response.text == "slow done")
        try await run.value
    }

    @Test func drainDeadlineBoundsShutdown() async throws {
        let manager = ServerManager(logger: quietLogger, shutdownTimeout: .seconds(1))
        let stuckAPI = RecordingAPI(recorder: Recorder(), hold: Gate())
        let servers = [Server(config: ServerConfig(name: "stuck", port: 0), lifecycle: stuckAPI)]
        let run = Task { try await manager.runAll(servers, signals: []) }
        let port = try #require(try await manager.waitUntilStarted()[0].address?.port)
        let stuck = Task { try await request(port, "GET", "/slow") }
        try await stuckAPI.slowStarted.wait(for: 1, "the stuck handler to start")
        let start = ContinuousClock.now
        await manager.shutdown()
        try await run.value
        let elapsed = ContinuousClock.now - start
        // The one deadline, kept: waited for, and ended by it (the handler never ends by itself).
        #expect(elapsed >= .milliseconds(950))
        #expect(elapsed < .seconds(10))
        #expect(try await stuck.value.status == 503)
    }

    struct Job: Service {
        let log: Recorder
        func run() async throws {
            log.record("job:running")
            try? await gracefulShutdown()
            log.record("job:stopped")
        }
    }

    @Test func sideServicesAreAskedToStopWhenTheDrainStarts() async throws {
        let recorder = Recorder()
        let web = RecordingAPI(recorder: recorder, hold: Gate())
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "web", port: 0), lifecycle: web)]
        let run = Task { try await manager.runAll(servers, alongside: [Job(log: recorder)], signals: []) }
        let port = try #require(try await manager.waitUntilStarted()[0].address?.port)
        try await waitUntil("the job to run") { recorder.all.contains("job:running") }
        let slow = Task { try await request(port, "GET", "/slow") }
        try await web.slowStarted.wait(for: 1, "the slow request to start")
        await manager.shutdown()
        // While the HTTP request is still in flight, the side service has been asked to stop.
        try await waitUntil("the job to stop during the drain") { recorder.all.contains("job:stopped") }
        #expect(!recorder.all.contains("web:shutdown"))
        web.hold?.open()
        #expect(try await slow.value.status == 200)
        try await run.value
    }

    @Test func sideServicesCanStopAfterTheServers() async throws {
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "web", port: 0), lifecycle: RecordingAPI(recorder: recorder))]
        try await withManager(manager, servers, alongside: [SideService(Job(log: recorder), stops: .afterTheServers)]) { _ in
            try await waitUntil("the job to run") { recorder.all.contains("job:running") }
        }
        let events = recorder.all
        // Servers drain before the services they depend on stop.
        let web = try #require(events.firstIndex(of: "web:shutdown"))
        let job = try #require(events.firstIndex(of: "job:stopped"))
        #expect(web < job)
    }

    /// A side service with a call that outlasts the deadline (a long gRPC call, say).
    struct LongCall: Service {
        let cancelled: Gate
        func run() async throws {
            try? await gracefulShutdown()
            // Shutting down, it still waits for its long call to end.
            do { try await Gate().wait() } catch { cancelled.open() }
        }
    }

    /// A side service that becomes ready when the test says so (or fails to).
    struct SlowStarter: Service, ReadinessReporting {
        let ready: Gate
        var failure: (any Error & Sendable)?
        func run() async throws { try? await gracefulShutdown() }
        func waitUntilReady() async throws {
            try await ready.wait()
            if let failure { throw failure }
        }
    }

    @Test func sideServiceReadinessHoldsTheStart() async throws {
        let recorder = Recorder()
        let ready = Gate()
        let manager = ServerManager(logger: quietLogger)
        let servers = [
            Server(config: ServerConfig(name: "web", port: 0, health: .init()), lifecycle: RecordingAPI(recorder: recorder))
        ]
        let run = Task { try await manager.runAll(servers, alongside: [SlowStarter(ready: ready)], signals: []) }
        let started = Gate()
        let waiter = Task {
            _ = try await manager.waitUntilStarted()
            started.open()
        }
        try await waitUntil("the server to listen") { manager.servers.first?.address != nil }
        let port = try #require(manager.servers.first?.address?.port)
        // Serving, but not ready: the side service is not.
        #expect(try await request(port, "GET", "/readyz").status == 503)
        #expect(try await request(port, "GET", "/name").text == "web")
        #expect(!started.isOpen)
        #expect(!recorder.all.contains("web:started"))
        ready.open()
        try await started.wait("the manager to report its start")
        #expect(recorder.all.contains("web:started"))
        #expect(try await request(port, "GET", "/readyz").status == 200)
        await manager.shutdown()
        try await run.value
        try await waiter.value
    }

    /// A ready side service that records when its readiness is withdrawn and when it is asked to stop.
    struct Withdrawing: Service, ReadinessReporting {
        let log: Recorder
        func run() async throws {
            try? await gracefulShutdown()
            log.record("side:asked")
        }
        func waitUntilReady() async throws {}
        func readinessWithdrawn() async { log.record("side:withdrawn") }
    }

    @Test func sideServiceReadinessIsWithdrawnWithTheProbesBeforeTheDrainDelayEnds() async throws {
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger, drainDelay: .seconds(1))
        let servers = [
            Server(config: ServerConfig(name: "web", port: 0, health: .init()), lifecycle: RecordingAPI(recorder: recorder))
        ]
        let run = Task { try await manager.runAll(servers, alongside: [Withdrawing(log: recorder)], signals: []) }
        let port = try #require(try await manager.waitUntilStarted()[0].address?.port)
        #expect(try await request(port, "GET", "/readyz").status == 200)
        let shutdown = Task { await manager.shutdown() }
        try await waitUntil("the side service to hear of the shutdown") { recorder.all.contains("side:withdrawn") }
        // Still in the drain delay: the probe says not ready, requests are still served, and the
        // side service has not been asked to stop yet.
        #expect(try await request(port, "GET", "/readyz").status == 503)
        #expect(try await request(port, "GET", "/name").text == "web")
        #expect(!recorder.all.contains("side:asked"))
        await shutdown.value
        try await run.value
        #expect(recorder.all.filter { $0 == "side:withdrawn" }.count == 1)
        let withdrawn = try #require(recorder.all.firstIndex(of: "side:withdrawn"))
        let asked = try #require(recorder.all.firstIndex(of: "side:asked"))
        #expect(withdrawn < asked)
    }

    @Test func sideServiceThatCannotBecomeReadyFailsTheStart() async throws {
        struct NoBroker: Error {}
        let ready = Gate()
        ready.open()
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "web", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))]
        await #expect(throws: NoBroker.self) {
            try await manager.runAll(servers, alongside: [SlowStarter(ready: ready, failure: NoBroker())], signals: [])
        }
        await #expect(throws: (any Error).self) { _ = try await manager.waitUntilStarted() }
        #expect(manager.servers.allSatisfy { $0.address == nil })
    }

    @Test(arguments: [SideService.StopOrder.withTheDrain, .afterTheServers])
    func sideServicesAreCancelledAtTheOneDeadline(_ order: SideService.StopOrder) async throws {
        let cancelled = Gate()
        let manager = ServerManager(logger: quietLogger, shutdownTimeout: .seconds(5))
        let servers = [Server(config: ServerConfig(name: "web", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))]
        let run = Task {
            try await manager.runAll(servers, alongside: [SideService(LongCall(cancelled: cancelled), stops: order)], signals: [])
        }
        _ = try await manager.waitUntilStarted()
        let start = ContinuousClock.now
        await manager.shutdown()
        // Bounded: a side service that is never cancelled would keep runAll forever.
        let returned = Gate()
        Task {
            _ = try? await run.value
            returned.open()
        }
        try await returned.wait("runAll to return", timeout: .seconds(20))
        let elapsed = ContinuousClock.now - start
        // Not before the deadline, and well before a second one would end (a side service
        // given a deadline of its own after the servers' would take 10 s); the margin absorbs a
        // busy machine (a full parallel test run has delayed the deadline's wake-up by 3 s).
        #expect(elapsed >= .milliseconds(4950))
        #expect(elapsed < .milliseconds(9500))
        #expect(cancelled.isOpen)
    }
}

@Suite("ServerManager edge cases", .timeLimit(.minutes(2)))
struct ManagerEdgeTests {
    @Test func secondRunAllDoesNotDisturbTheRunningManager() async throws {
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "one", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))]
        try await withManager(manager, servers) { started in
            await #expect(throws: ServerError.self) { try await manager.runAll(servers, signals: []) }
            // Still running: the first run's servers serve and servers can still be added.
            #expect(try await request(started[0].address!.port, "GET", "/name").text == "one")
            let extra = try await manager.addServer(
                Server(config: ServerConfig(name: "two", port: 0), lifecycle: RecordingAPI(recorder: Recorder())))
            #expect(try await request(extra.port, "GET", "/name").text == "two")
        }
    }

    @Test func runtimeAddedServerStopsAcceptingWithTheOthers() async throws {
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "first", port: 0), lifecycle: RecordingAPI(recorder: recorder))]
        let run = Task { try await manager.runAll(servers, signals: []) }
        let firstPort = try #require(try await manager.waitUntilStarted()[0].address?.port)
        let addedAPI = RecordingAPI(recorder: recorder, hold: Gate())
        let added = try await manager.addServer(Server(config: ServerConfig(name: "added", port: 0), lifecycle: addedAPI))
        // A slow request on the runtime-added server: the group stops that server first.
        let slow = Task { try await request(added.port, "GET", "/slow") }
        try await addedAPI.slowStarted.wait(for: 1, "the slow handler to start")
        await manager.shutdown()
        // While it drains, the original server must already refuse new connections too.
        try await waitUntil("the first server to refuse") { await connectionRefused(firstPort) }
        #expect(manager.servers[1].stats.inFlight == 1)
        addedAPI.hold?.open()
        #expect(try await slow.value.status == 200)
        try await run.value
        #expect(recorder.all.filter { $0.hasSuffix(":shutdown") }.count == 2)
    }

    @Test func cancellingRunAllStopsAtOnceEvenWithADrainDelay() async throws {
        let manager = ServerManager(logger: quietLogger, shutdownTimeout: .seconds(60), drainDelay: .seconds(60))
        let servers = [Server(config: ServerConfig(name: "c", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))]
        let run = Task { try await manager.runAll(servers, signals: []) }
        let port = try #require(try await manager.waitUntilStarted()[0].address?.port)
        let start = ContinuousClock.now
        run.cancel()
        _ = try? await run.value
        #expect(ContinuousClock.now - start < .seconds(20))
        #expect(await connectionRefused(port))
    }

    @Test func runtimeAddedServerKeepsAcceptingThroughTheDrainDelay() async throws {
        let delay = Duration.seconds(3)
        let manager = ServerManager(logger: quietLogger, drainDelay: delay)
        let servers = [Server(config: ServerConfig(name: "base", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))]
        let run = Task { try await manager.runAll(servers, signals: []) }
        _ = try await manager.waitUntilStarted()
        let added = try await manager.addServer(
            Server(config: ServerConfig(name: "added", port: 0), lifecycle: RecordingAPI(recorder: Recorder())))
        let start = ContinuousClock.now
        await manager.shutdown()
        // The group reaches the added server first; it must still accept, like the others,
        // until the delay is over.
        #expect(try await request(added.port, "GET", "/name").text == "added")
        try await waitUntil("the added server to refuse", timeout: .seconds(15)) { await connectionRefused(added.port) }
        #expect(ContinuousClock.now - start >= delay)
        try await run.value
    }

    @Test func failedRuntimeAddReleasesItsPortClaim() async throws {
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "base", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))]
        try await withManager(manager, servers) { _ in
            let port = try ReservedPorts.take()
            // Binds `port`, then fails to start (invalid TLS): the claim on `port` must be released.
            var broken = ServerConfig(name: "broken", port: port)
            broken.tls = ServerConfig.TLS(certificatePEM: "x", privateKeyPEM: "y")
            await #expect(throws: ServerError.self) {
                try await manager.addServer(Server(config: broken, lifecycle: RecordingAPI(recorder: Recorder())))
            }
            #expect(await connectionRefused(port))
            let retry = try await manager.addServer(
                Server(config: ServerConfig(name: "retry", port: port), lifecycle: RecordingAPI(recorder: Recorder())))
            #expect(retry.port == port)
        }
    }
}
