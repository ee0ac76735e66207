import Logging
import MHDServers
import ServiceLifecycle
import Synchronization
import Testing

/// Records every hook call as "name:event".
final class Recorder: Sendable {
    let events = Mutex<[String]>([])
    func record(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }
    func of(_ name: String) -> [String] { all.filter { $0.hasPrefix(name + ":") } }
}

struct RecordingAPI: ServerLifecycle {
    let recorder: Recorder
    var slow: Duration = .zero

    func registerRoutes(on router: inout Router, context: ServerContext) {
        recorder.record("\(context.name):routes")
        router.get("/name") { _ in .text(context.name) }
        let slow = slow
        router.get("/slow") { _ in
            try await Task.sleep(for: slow)
            return .text("slow done")
        }
    }
    func onPortCheck(_ port: Int, context: ServerContext) { recorder.record("\(context.name):check \(port)") }
    func onPortUnavailable(_ port: Int, reason: String, context: ServerContext) {
        recorder.record("\(context.name):unavailable \(port)")
    }
    func onPortAvailable(_ port: Int, context: ServerContext) { recorder.record("\(context.name):available") }
    func onStarted(_ address: BoundAddress, context: ServerContext) async {
        recorder.record("\(context.name):started")
    }
    func onShutdown(context: ServerContext) async { recorder.record("\(context.name):shutdown") }
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

@Suite("ServerManager")
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
        let free = try PortHolder()
        let freePort = free.port
        _ = consume free
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
        let callbacks = Mutex(0)
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
        let manager = ServerManager(logger: quietLogger)
        let servers = [
            Server(config: ServerConfig(name: "busy", port: 0), lifecycle: RecordingAPI(recorder: recorder, slow: .milliseconds(800))),
            Server(config: ServerConfig(name: "idle", port: 0), lifecycle: RecordingAPI(recorder: recorder)),
        ]
        let run = Task { try await manager.runAll(servers, signals: []) }
        let started = try await manager.waitUntilStarted()
        let busyPort = started[0].address!.port
        let idlePort = started[1].address!.port
        let slow = Task { try await request(busyPort, "GET", "/slow") }
        try await waitUntil { manager.servers[0].stats.inFlight == 1 }
        await manager.shutdown()
        try await waitUntil {
            let busy = await connectionRefused(busyPort)
            let idle = await connectionRefused(idlePort)
            return busy && idle
        }
        #expect(await connectionRefused(busyPort))
        #expect(await connectionRefused(idlePort))
        #expect(manager.servers[0].stats.inFlight == 1)
        let response = try await slow.value
        #expect(response.status == 200)
        #expect(response.text == "slow done")
        try await run.value
    }

    @Test func drainDeadlineBoundsShutdown() async throws {
        let manager = ServerManager(logger: quietLogger, shutdownTimeout: .milliseconds(300))
        let servers = [
            Server(config: ServerConfig(name: "stuck", port: 0), lifecycle: RecordingAPI(recorder: Recorder(), slow: .seconds(60)))
        ]
        let run = Task { try await manager.runAll(servers, signals: []) }
        let port = try await manager.waitUntilStarted()[0].address!.port
        let stuck = Task { try await request(port, "GET", "/slow") }
        try await waitUntil { manager.servers[0].stats.inFlight == 1 }
        let start = ContinuousClock.now
        await manager.shutdown()
        try await run.value
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(try await stuck.value.status == 503)
    }

    @Test func otherServicesShareTheLifetime() async throws {
        struct Job: Service {
            let log: Recorder
            func run() async throws {
                log.record("job:running")
                try? await gracefulShutdown()
                log.record("job:stopped")
            }
        }
        let recorder = Recorder()
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "web", port: 0), lifecycle: RecordingAPI(recorder: recorder))]
        try await withManager(manager, servers, alongside: [Job(log: recorder)]) { _ in
            try await waitUntil { recorder.all.contains("job:running") }
        }
        let events = recorder.all
        #expect(events.contains("job:stopped"))
        // HTTP servers drain before the services they may depend on stop.
        #expect(events.firstIndex(of: "web:shutdown")! < events.firstIndex(of: "job:stopped")!)
    }
}

@Suite("ServerManager edge cases")
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
        let servers = [
            Server(config: ServerConfig(name: "first", port: 0), lifecycle: RecordingAPI(recorder: recorder, slow: .milliseconds(800)))
        ]
        let run = Task { try await manager.runAll(servers, signals: []) }
        let firstPort = try await manager.waitUntilStarted()[0].address!.port
        let added = try await manager.addServer(
            Server(config: ServerConfig(name: "added", port: 0), lifecycle: RecordingAPI(recorder: recorder, slow: .milliseconds(800))))
        // A slow request on the runtime-added server: the group stops that server first.
        let slow = Task { try await request(added.port, "GET", "/slow") }
        try await waitUntil { manager.servers[1].stats.inFlight == 1 }
        await manager.shutdown()
        // While it drains, the original server must already refuse new connections too.
        try await waitUntil { await connectionRefused(firstPort) }
        #expect(await connectionRefused(firstPort))
        #expect(manager.servers[1].stats.inFlight == 1)
        #expect(try await slow.value.status == 200)
        try await run.value
        #expect(recorder.all.filter { $0.hasSuffix(":shutdown") }.count == 2)
    }

    @Test func failedRuntimeAddReleasesItsPortClaim() async throws {
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "base", port: 0), lifecycle: RecordingAPI(recorder: Recorder()))]
        try await withManager(manager, servers) { _ in
            let free = try PortHolder()
            let port = free.port
            _ = consume free
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
