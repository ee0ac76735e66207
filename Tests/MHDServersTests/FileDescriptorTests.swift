import Glibc
import MHDServers
import ServiceLifecycle
import Testing

/// Descriptors are counted in a child process of their own (an exit test): the other tests of
/// this process open and close sockets all the time, so only a process running nothing else
/// can compare its descriptor count before and after.
///
/// The exit tests here report what went wrong on standard error and return normally (calling
/// `exit` would add bytes of the test framework's own to standard error); the parent fails on
/// any report (an exit test's output is only available when its exit status matched), and on
/// any other exit (a crash, or death by a signal).
@Suite("File descriptors", .timeLimit(.minutes(2)))
struct FileDescriptorTests {
    /// Entries of /proc/self/fd (the directory's own descriptor excluded).
    static func openDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        return count - 1
    }

    /// One full life of a server: start, serve on a keep-alive connection, stop gracefully.
    static func serveOnce(port: Int = 0) async throws {
        var router = Router()
        router.get("/ping") { _ in .text("pong") }
        router.get("/async") { _ in
            try await Task.sleep(for: .milliseconds(1))
            return .text("later")
        }
        let server = HTTPServer(config: ServerConfig(name: "fd", port: port), router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            _ = try await request(port, "GET", "/ping", keepAlive: true)
            _ = try await request(port, "GET", "/async")
        }
    }

    @Test func startStopAndFailedStartsLeaveNoDescriptorBehind() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            do {
                let failures = try await FileDescriptorTests.descriptorsLeftBehind()
                for failure in failures { FileDescriptorTests.report("descriptor leak: \(failure)") }
                return  // a report on standard error fails the test
            } catch {
                FileDescriptorTests.report("descriptor test failed: \(error)")
                return
            }
        }
        let report = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(!report.contains("descriptor"), "\(report)")
    }

    /// Writes a line to standard error, unbuffered (the parent reads it).
    static func report(_ line: String) {
        var line = line + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// Runs every step and returns the ones after which more descriptors are open than before.
    static func descriptorsLeftBehind() async throws -> [String] {
        // Warm up: the runtime opens a few descriptors of its own on first use (timers, the
        // thread pool). Counted from after that.
        try await serveOnce()
        let baseline = openDescriptors()
        var failures: [String] = []
        func check(_ step: String, against expected: Int = baseline) {
            let now = openDescriptors()
            if now != expected { failures.append("\(step): \(now) open, \(expected) expected") }
        }

        for _ in 0..<3 { try await serveOnce() }
        check("after three starts and stops")

        do {
            // Every candidate port busy: the start fails after trying each.
            let (base, holders) = try consecutivePorts(2)
            let withHolders = openDescriptors()
            let crowded = HTTPServer(
                config: ServerConfig(name: "crowded", port: base, ports: [base + 1]), router: Router(), logger: quietLogger)
            _ = try? await withRunning(crowded) { _ in }
            check("after a start with every port busy", against: withHolders)
            withExtendedLifetime(holders) {}
        }
        check("after releasing the held ports")

        do {
            // Binds, then the engine refuses to start (invalid TLS material).
            var broken = ServerConfig(name: "broken", port: 0)
            broken.tls = ServerConfig.TLS(certificatePEM: "x", privateKeyPEM: "y")
            _ = try? await withRunning(HTTPServer(config: broken, router: Router(), logger: quietLogger)) { _ in }
        }
        check("after an engine that failed to start")

        do {
            // A manager whose second server cannot start rolls the first back.
            let (busy, holders) = try consecutivePorts(1)
            let withHolders = openDescriptors()
            let manager = ServerManager(logger: quietLogger)
            _ = try? await manager.runAll(
                [
                    Server(config: ServerConfig(name: "ok", port: 0), lifecycle: RecordingAPI(recorder: Recorder())),
                    Server(config: ServerConfig(name: "blocked", port: busy), lifecycle: RecordingAPI(recorder: Recorder())),
                ], signals: [])
            check("after a manager rolled back", against: withHolders)
            withExtendedLifetime(holders) {}
        }

        do {
            // A manager that ran, served and shut down.
            let manager = ServerManager(logger: quietLogger)
            let servers = ["a", "b"].map {
                Server(config: ServerConfig(name: $0, port: 0), lifecycle: RecordingAPI(recorder: Recorder()))
            }
            try await withManager(manager, servers) { started in
                for info in started { _ = try await request(info.address!.port, "GET", "/name", keepAlive: true) }
            }
        }
        check("after a manager ran and stopped")
        return failures
    }
}
