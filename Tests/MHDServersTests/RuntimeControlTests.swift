import Foundation
@testable import MHDServers
import Logging
import Synchronization
import Testing

/// A lifecycle whose routes say which generation registered them.
struct GenerationAPI: ServerLifecycle {
    let registrations: Counter
    let recorder: Recorder
    /// `/slow` waits for this gate.
    var hold: Gate? = nil

    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        registrations.increment()
        let generation = registrations.count
        router.get("/gen") { _ in .text("\(generation)") }
        let hold = hold
        router.get("/slow") { _ in
            try await hold?.wait()
            return .text("slow done by \(generation)")
        }
    }
    func onStarted(_ address: BoundAddress, context: HTTPServerContext) async { recorder.record("\(context.name):started") }
    func onShutdown(context: HTTPServerContext) async { recorder.record("\(context.name):shutdown") }
    func onReload(context: HTTPServerContext) async throws { recorder.record("\(context.name):reload") }
}

/// Another set of routes, for replacements.
struct ReplacementAPI: ServerLifecycle {
    func registerRoutes(on router: inout Router, context: HTTPServerContext) {
        router.get("/replacement") { _ in .text("replaced") }
    }
}

extension CallbackLogHandler {
    /// Keeps what is logged at `error` level or above.
    static func errors(into messages: Locked<[String]>) -> CallbackLogHandler {
        CallbackLogHandler { event in
            if event.level >= .error { messages.withLock { $0.append("\(event.message)") } }
        }
    }
}

/// A paced load for the unit tests: Python's http.client (a client nobody here wrote) in four
/// threads, two on kept-alive connections (reopened only after `Connection: close`) and two
/// with a new connection per request, each pausing a little between requests so that the
/// tests that run in parallel keep their CPU (the full-speed load, wrk included, is in
/// scripts/runtime-control-test.sh, which runs alone). Any failed request or refused
/// connection is a failure; an idle kept-alive connection closed under the client counts too.
struct PacedLoad: CustomStringConvertible {
    let ok: Int
    let failures: [String]
    var description: String { "\(ok) ok, \(failures.count) failed: \(failures.prefix(5))" }

    static let script = """
        import http.client, json, ssl, sys, threading, time, urllib.parse
        url = urllib.parse.urlsplit(sys.argv[1]); seconds = float(sys.argv[2]); pause = float(sys.argv[3])
        end = time.monotonic() + seconds
        lock = threading.Lock(); ok = [0]; failures = []
        def connection():
            if url.scheme == "https":
                return http.client.HTTPSConnection(url.hostname, url.port, timeout=10, context=ssl._create_unverified_context())
            return http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        def worker(keep):
            conn = connection() if keep else None
            while time.monotonic() < end:
                c = conn or connection()
                try:
                    c.request("GET", url.path)
                    r = c.getresponse(); r.read()
                    with lock:
                        if r.status == 200: ok[0] += 1
                        else: failures.append(f"HTTP {r.status}")
                    if not keep or r.will_close: c.close()
                except Exception as error:
                    with lock: failures.append(repr(error))
                    c.close()
                time.sleep(pause)
        threads = [threading.Thread(target=worker, args=(k,)) for k in (True, True, False, False)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(json.dumps({"ok": ok[0], "failures": failures}))
        """

    /// Runs the load against `url` for `seconds`.
    static func run(_ url: String, seconds: Double, pause: Double = 0.001) async throws -> PacedLoad {
        let result = try await runCommandOnThread(["python3", "-c", script, url, "\(seconds)", "\(pause)"])
        struct Output: Decodable { let ok: Int; let failures: [String] }
        guard let output = try? JSONDecoder().decode(Output.self, from: Data(result.output.utf8)) else {
            return PacedLoad(ok: 0, failures: ["the load client failed: \(result.output)"])
        }
        return PacedLoad(ok: output.ok, failures: output.failures)
    }
}

@Suite("Runtime control", .timeLimit(.minutes(3)))
struct RuntimeControlTests {
    static func generationServer(
        _ name: String = "public", port: Int = 0, registrations: Counter = Counter(), recorder: Recorder = Recorder(),
        hold: Gate? = nil
    ) -> Server {
        Server(
            config: ServerConfig(name: name, port: port),
            lifecycle: GenerationAPI(registrations: registrations, recorder: recorder, hold: hold))
    }

    @Test func restartsUnderLoadWithoutARefusedConnectionOrAFailedRequest() async throws {
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false, handOverIdleTime: .milliseconds(200))
        let recorder = Recorder()
        try await withManager(manager, [Self.generationServer(recorder: recorder)]) { started in
            let port = try #require(started.first?.address?.port)
            async let load = PacedLoad.run("http://127.0.0.1:\(port)/gen", seconds: 4)
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(500))
                let address = try await manager.restartServer(named: "public")
                #expect(address.port == port)
            }
            let report = try await load
            #expect(report.failures.isEmpty && report.ok > 200, "\(report)")
            let info = try #require(manager.servers.first)
            #expect(info.generation == 6 && info.state == .running && info.draining == 0)
            #expect(try await request(port, "GET", "/gen").text == "6")
            // A restart is not a stop: no shutdown hook, a start hook per generation.
            #expect(recorder.of("public").filter { $0 == "public:started" }.count == 6)
            #expect(!recorder.of("public").contains("public:shutdown"))
        }
        #expect(recorder.of("public").last == "public:shutdown")
    }

    @Test func restartLetsTheRequestInFlightFinishOnThePredecessor() async throws {
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false, handOverIdleTime: .milliseconds(100))
        let gate = Gate()
        try await withManager(manager, [Self.generationServer(hold: gate)]) { started in
            let port = try #require(started.first?.address?.port)
            let slow = Task { try await request(port, "GET", "/slow") }
            try await waitUntil("the slow request in flight") { manager.servers.first?.stats.inFlight == 1 }
            let restart = Task { try await manager.restartServer(named: "public") }
            try await waitUntil("the new generation") { manager.servers.first?.generation == 2 }
            // The successor serves while the predecessor still holds its request.
            #expect(try await request(port, "GET", "/gen").text == "2")
            #expect(manager.servers.first?.draining == 1)
            gate.open()
            #expect(try await slow.value.text == "slow done by 1")
            _ = try await restart.value
            #expect(manager.servers.first?.draining == 0)
        }
    }

    @Test func stoppingOneServerLeavesTheOthersServing() async throws {
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false)
        let recorder = Recorder()
        let servers = ["a", "b"].map { Self.generationServer($0, recorder: recorder) }
        try await withManager(manager, servers) { started in
            let (a, b) = (started[0].address!.port, started[1].address!.port)
            try await manager.stopServer(named: "a")
            #expect(await connectionRefused(a))
            #expect(try await request(b, "GET", "/gen").status == 200)
            #expect(manager.servers.map(\.name) == ["b"])
            #expect(recorder.of("a").last == "a:shutdown")
            #expect(!recorder.of("b").contains("b:shutdown"))
            let unknown = await #expect(throws: ServerError.self) { try await manager.stopServer(named: "a") }
            #expect(unknown?.code == .unknownServer)
            // The name is free again.
            let address = try await manager.addServer(Self.generationServer("a"))
            #expect(try await request(address.port, "GET", "/gen").status == 200)
        }
        #expect(recorder.of("b").last == "b:shutdown")
    }

    @Test func replacementOnAnotherPortMovesAndTheOldPortCloses() async throws {
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false)
        let recorder = Recorder()
        try await withManager(manager, [Self.generationServer(recorder: recorder)]) { started in
            let old = try #require(started.first?.address?.port)
            let port = try ReservedPorts.take()
            let address = try await manager.replaceServer(
                Server(config: ServerConfig(name: "public", port: port), lifecycle: ReplacementAPI()))
            #expect(address.port == port)
            #expect(try await request(port, "GET", "/replacement").text == "replaced")
            #expect(try await request(port, "GET", "/gen").status == 404)
            #expect(await connectionRefused(old))
            // The replaced lifecycle is done: its shutdown hook ran.
            #expect(recorder.of("public").last == "public:shutdown")
            #expect(manager.servers.first?.generation == 2)
        }
    }

    @Test func replacementOnTheSameAddressKeepsThePort() async throws {
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false)
        try await withManager(manager, [Self.generationServer()]) { started in
            let port = try #require(started.first?.address?.port)
            let address = try await manager.replaceServer(
                Server(config: ServerConfig(name: "public", port: 0), lifecycle: ReplacementAPI()))
            #expect(address.port == port)
            #expect(try await request(port, "GET", "/replacement").text == "replaced")
        }
    }

    @Test func aReplacementThatCannotStartLeavesTheServerServing() async throws {
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false)
        try await withManager(manager, [Self.generationServer()]) { started in
            let port = try #require(started.first?.address?.port)
            var config = ServerConfig(name: "public", port: 0)
            config.tls = ServerConfig.TLS(certificatePEM: "not a certificate", privateKeyPEM: "not a key")
            let error = await #expect(throws: ServerError.self) {
                try await manager.replaceServer(Server(config: config, lifecycle: ReplacementAPI()))
            }
            #expect(error?.code == .startFailed)
            #expect(try await request(port, "GET", "/gen").text == "1")
            let info = try #require(manager.servers.first)
            #expect(info.generation == 1 && info.state == .running && info.draining == 0)
        }
    }

    @Test func changesAreRefusedWhenNotRunning() async throws {
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false)
        let error = await #expect(throws: ServerError.self) { try await manager.restartServer(named: "public") }
        #expect(error?.code == .invalidConfiguration)
        let upgrade = await #expect(throws: ServerError.self) { try await manager.upgrade(executable: "/bin/true") }
        #expect(upgrade?.code == .upgradeFailed)
    }

    @Test func reloadRunsEveryHookAndLogsAFailingOne() async throws {
        struct Failing: ServerLifecycle {
            func registerRoutes(on router: inout Router, context: HTTPServerContext) {}
            func onReload(context: HTTPServerContext) async throws { throw HTTPError(.internalServerError, message: "bad flags") }
        }
        let messages = Locked<[String]>([])
        let logger = Logger(label: "test") { _ in CallbackLogHandler.errors(into: messages) }
        let manager = ServerManager(logger: logger, notifiesSystemd: false)
        let recorder = Recorder()
        manager.onReload { recorder.record("manager:reload") }
        let servers = [
            Server(config: ServerConfig(name: "failing", port: 0), lifecycle: Failing()),
            Self.generationServer("b", recorder: recorder),
        ]
        try await withManager(manager, servers) { _ in
            await manager.reload()
            #expect(recorder.of("b") .contains("b:reload"))
            #expect(recorder.of("manager") == ["manager:reload"])
            #expect(messages.withLock { $0 }.filter { $0.contains("failing") && $0.contains("bad flags") }.count == 1)
        }
    }

    @Test func runtimeChangesWaitForEachOther() async throws {
        let manager = ServerManager(logger: quietLogger, notifiesSystemd: false, handOverIdleTime: .milliseconds(50))
        try await withManager(manager, [Self.generationServer()]) { _ in
            try await withThrowingTaskGroup(of: BoundAddress.self) { group in
                for _ in 0..<4 { group.addTask { try await manager.restartServer(named: "public") } }
                try await group.waitForAll()
            }
            #expect(manager.servers.first?.generation == 5)
            #expect(manager.servers.first?.draining == 0)
        }
    }
}

/// Certificates on disk rotated under load: SIGHUP's reload, driven by ``ServerManager/reload()``.
@Suite("Certificate reload", .timeLimit(.minutes(3)))
struct CertificateReloadTests {
    /// The common name of the certificate the server presents to a new connection.
    static func presentedName(_ port: Int) async throws -> String {
        let result = try await runCommandOnThread(
            ["curl", "-sk", "-v", "-o", "/dev/null", "https://127.0.0.1:\(port)/gen"], mergingErrors: true)
        let subject = result.output.split(separator: "\n").first { $0.contains("subject:") } ?? ""
        return subject.components(separatedBy: "CN=").last.map { String($0.prefix { $0 != "," && $0 != " " }) } ?? ""
    }

    @Test func newConnectionsGetTheNewCertificateAndNothingFails() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mhd-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let one = try TLSTests.makeCertificate(commonName: "one", in: directory)
        let two = try TLSTests.makeCertificate(commonName: "two", in: directory)
        let cert = directory.appendingPathComponent("server.crt").path
        let key = directory.appendingPathComponent("server.key").path
        func install(_ pair: (cert: String, key: String)) throws {
            try Data(contentsOf: URL(fileURLWithPath: pair.cert)).write(to: URL(fileURLWithPath: cert))
            try Data(contentsOf: URL(fileURLWithPath: pair.key)).write(to: URL(fileURLWithPath: key))
        }
        try install(one)

        let messages = Locked<[String]>([])
        let logger = Logger(label: "test") { _ in CallbackLogHandler.errors(into: messages) }
        let manager = ServerManager(logger: logger, notifiesSystemd: false, handOverIdleTime: .milliseconds(200))
        var config = ServerConfig(name: "secure", port: 0)
        config.tls = try .files(certificate: cert, privateKey: key)
        let server = Server(config: config, lifecycle: GenerationAPI(registrations: Counter(), recorder: Recorder()))
        try await withManager(manager, [server]) { started in
            let port = try #require(started.first?.address?.port)
            #expect(try await Self.presentedName(port) == "one")

            // Rotated under load: kept-alive TLS connections finish on the old certificate.
            async let load = PacedLoad.run("https://127.0.0.1:\(port)/gen", seconds: 3)
            try await Task.sleep(for: .seconds(1))
            try install(two)
            await manager.reload()
            let report = try await load
            #expect(report.failures.isEmpty && report.ok > 100, "\(report)")
            #expect(try await Self.presentedName(port) == "two")
            #expect(manager.servers.first?.generation == 2)

            // Unchanged files: nothing to do.
            await manager.reload()
            #expect(manager.servers.first?.generation == 2)
            #expect(messages.withLock { $0 }.isEmpty)

            // A damaged certificate is refused with one error; the server keeps the old one.
            try Data("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: cert))
            await manager.reload()
            #expect(try await Self.presentedName(port) == "two")
            #expect(manager.servers.first?.generation == 2)
            // A key that does not belong to the certificate, likewise.
            try Data(contentsOf: URL(fileURLWithPath: one.cert)).write(to: URL(fileURLWithPath: cert))
            await manager.reload()
            #expect(try await Self.presentedName(port) == "two")
            // A missing file, likewise.
            try FileManager.default.removeItem(atPath: key)
            await manager.reload()
            #expect(try await Self.presentedName(port) == "two")
            let errors = messages.withLock { $0 }
            #expect(errors.count == 3, "\(errors)")
            #expect(errors.allSatisfy { $0.contains("secure") && $0.contains("keeping the current certificate") }, "\(errors)")
            #expect(manager.servers.first?.state == .running)
        }
    }
}
