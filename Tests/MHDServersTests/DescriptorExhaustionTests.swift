import Glibc
import MHDServers
import Testing

/// Out of file descriptors: a server that cannot accept must back off, not spin. Run in a
/// process of its own (an exit test) under a low `RLIMIT_NOFILE`.
@Suite("Descriptor exhaustion", .timeLimit(.minutes(2)))
struct DescriptorExhaustionTests {
    /// CPU seconds (user + system) this process has used.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func exhaustAndMeasure() async throws -> [String] {
        var original = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &original)
        var limit = original
        limit.rlim_cur = 128
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return ["setrlimit failed: \(errno)"] }
        // The test framework needs descriptors of its own once the test is over.
        defer { setrlimit(Int32(RLIMIT_NOFILE.rawValue), &original) }
        // Small connection limits, so the manager's own budget (it raises the soft limit to
        // what the servers need, when the hard limit allows) stays near this low limit.
        var limits = ServerConfig.Limits()
        limits.maxConnections = 40
        let manager = ServerManager(logger: quietLogger)
        let servers = [
            Server(
                config: ServerConfig(name: "public", port: 0, limits: limits, threadCount: 1),
                lifecycle: RecordingAPI(recorder: Recorder())),
            Server(
                config: ServerConfig(name: "admin", port: 0, limits: limits, threadCount: 1),
                lifecycle: RecordingAPI(recorder: Recorder())),
        ]
        return try await withManager(manager, servers) { started async throws -> [String] in
            // Warm up what the runtime opens lazily (Dispatch's timer descriptors for both
            // clocks, worker threads): with no descriptor left it could not, and would trap.
            try await Task.sleep(until: .now + .milliseconds(1), clock: .continuous)
            try await Task.sleep(until: .now + .milliseconds(1), clock: .suspending)
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try? await Task.sleep(for: .milliseconds(5)) } }
            }
            _ = try await offPool { 0 }
            // Nothing here may talk to the test framework (no #expect, no #require): while the
            // descriptors are used up it could not record the event.
            guard let publicPort = started[0].address?.port, let adminPort = started[1].address?.port else {
                return ["the servers did not report their ports"]
            }
            return try await offPool { () -> [String] in
                // The late client's own socket exists before the descriptors run out.
                let reserved = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var clients: [Connection] = []
                while let client = try? Connection(port: publicPort, timeout: 5) { clients.append(client) }
                usleep(200_000)  // let the engine accept what it still can
                var fillers: [Int32] = []
                while case let fd = open("/dev/null", O_RDONLY), fd >= 0 { fillers.append(fd) }
                // A new client of the admin server, whose worker has no connection: its accept
                // fails with EMFILE (libmicrohttpd 0.9.75 retries at once, in a busy loop).
                let waiting = try Connection(port: adminPort, timeout: 5, socket: reserved)
                let before = cpuSeconds()
                usleep(1_000_000)
                let used = cpuSeconds() - before
                var problems: [String] = []
                // Two cores: spinning would show as ~1 s of CPU in this second.
                if used > 0.3 { problems.append("\(used) s of CPU in 1 s while out of descriptors") }
                // Descriptors come back: the waiting client is served.
                for fd in fillers { close(fd) }
                clients.removeAll()
                try waiting.send("GET /name HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                let response = try waiting.readResponse()
                if response.text != "admin" { problems.append("after recovery: \(response.status) \(response.text)") }
                return problems
            }
        }
    }

    /// Judged by the exit status: the child ends with `exit` as soon as it has measured. (Left
    /// to return normally, the test framework's own teardown in a process that has just run out
    /// of descriptors now and then traps; ending at once avoids it, at the cost of the
    /// framework adding bytes of its own to standard error, which is therefore not read.)
    @Test func acceptBacksOffInsteadOfSpinning() async {
        await #expect(processExitsWith: .success) {
            let problems: [String]
            do {
                problems = try await DescriptorExhaustionTests.exhaustAndMeasure()
            } catch {
                problems = ["\(error)"]
            }
            for problem in problems { FileDescriptorTests.report("descriptors: \(problem)") }
            exit(problems.isEmpty ? 0 : 1)
        }
    }
}
