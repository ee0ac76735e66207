import Foundation
@testable import MHDServers
import Testing

/// Starting the new process of a binary upgrade, with real processes: what it inherits (the
/// sockets at 3, 4, ..., its own id in LISTEN_PID, default signals) and how the old process
/// hears that it is ready, that it exited, or nothing at all.
@Suite("Process upgrade", .timeLimit(.minutes(2)))
struct ProcessUpgradeTests {
    /// Spawns `sh -c script` with `sockets`, the way an upgrade starts the new process.
    static func spawn(_ script: String, sockets: [ProcessUpgrade.PassedSocket] = []) throws -> ProcessUpgrade.Child {
        try ProcessUpgrade.spawn(executable: "/bin/sh", arguments: ["sh", "-c", script], sockets: sockets)
    }

    @Test func theNewProcessGetsTheSocketsAndItsOwnId() async throws {
        let first = try PortHolder()
        let second = try PortHolder()
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("upgrade-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: report) }
        // The child reports what it got, then says it is ready on the descriptor it was told.
        let script = """
            {
              echo "pid=$$ listen_pid=$LISTEN_PID fds=$LISTEN_FDS names=$LISTEN_FDNAMES ready_fd=$MHDSERVERS_UPGRADE_FD shared=$MHDSERVERS_SHARED_FDNAMES"
              echo "fd3=$(readlink /proc/$$/fd/3) fd4=$(readlink /proc/$$/fd/4)"
            } > \(report)
            printf 'READY=1\\n' >&"$MHDSERVERS_UPGRADE_FD"
            """
        let child = try Self.spawn(script, sockets: [
            .init(name: "public", fd: first.fd, shared: false), .init(name: "admin", fd: second.fd, shared: true),
        ])
        #expect(await ProcessUpgrade.waitForReady(child.readiness, timeout: .seconds(10)) == .ready)
        #expect(await ProcessUpgrade.reap(child.pid) == "exited with status 0")
        let text = try String(contentsOfFile: report, encoding: .utf8)
        #expect(text.contains("pid=\(child.pid) listen_pid=\(child.pid) fds=2 names=public:admin ready_fd=5 shared=admin"), "\(text)")
        let sockets = [first.fd, second.fd].map { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? "?"
        }
        #expect(text.contains("fd3=\(sockets[0]) fd4=\(sockets[1])"), "\(text)")
        #expect(sockets[0].hasPrefix("socket:"))
    }

    @Test func theNewProcessStartsWithDefaultSignals() async throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("upgrade-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: report) }
        // The spawned process reads its own status (exec: no shell in between, which blocks
        // signals for itself while it waits for a child).
        let child = try Self.spawn("exec grep -E '^Sig(Ign|Blk)' /proc/self/status > \(report)")
        #expect(await ProcessUpgrade.waitForReady(child.readiness, timeout: .seconds(10)) == .ended)
        #expect(await ProcessUpgrade.reap(child.pid) == "exited with status 0")
        let text = try String(contentsOfFile: report, encoding: .utf8)
        // No standard signal (1-31) ignored or blocked; this test process ignores SIGPIPE, for
        // one. (The C library keeps signals 32 and 33 to itself.)
        func mask(_ field: String) -> UInt64? {
            text.split(separator: "\n").first { $0.hasPrefix(field + ":") }
                .flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
        }
        #expect(mask("SigIgn").map { $0 & 0x7fff_ffff } == 0, "\(text)")
        #expect(mask("SigBlk").map { $0 & 0x7fff_ffff } == 0, "\(text)")
    }

    @Test func aProcessThatExitsBeforeItIsReadyIsHeardAtOnce() async throws {
        let child = try Self.spawn("exit 3")
        let start = ContinuousClock.now
        #expect(await ProcessUpgrade.waitForReady(child.readiness, timeout: .seconds(30)) == .ended)
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(await ProcessUpgrade.reap(child.pid) == "exited with status 3")
    }

    @Test func aSilentProcessTimesOut() async throws {
        let child = try Self.spawn("sleep 30")
        #expect(await ProcessUpgrade.waitForReady(child.readiness, timeout: .milliseconds(300)) == .timedOut)
        kill(child.pid, SIGTERM)
        #expect(await ProcessUpgrade.reap(child.pid) == "was killed by signal 15")
    }

    @Test func aCancelledWaitSaysSo() async throws {
        let child = try Self.spawn("sleep 30")
        let wait = Task { await ProcessUpgrade.waitForReady(child.readiness, timeout: .seconds(30)) }
        wait.cancel()
        #expect(await wait.value == .cancelled)
        kill(child.pid, SIGKILL)
        #expect(await ProcessUpgrade.reap(child.pid) == "was killed by signal 9")
    }

    @Test func anExecutableThatCannotRunIsAnErrorNamingWhy() throws {
        let error = #expect(throws: ProcessUpgrade.SpawnError.self) {
            try ProcessUpgrade.spawn(executable: "/nonexistent/app", arguments: ["app"], sockets: [])
        }
        #expect(error?.description.contains("No such file") == true, "\(String(describing: error))")
    }

    @Test func onlyThisProcessDescriptorsPassedArePassed() async throws {
        // A descriptor of ours without close-on-exec does not leak into the new process.
        let leaky = open("/dev/null", O_RDONLY)
        defer { close(leaky) }
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("upgrade-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: report) }
        let child = try Self.spawn("ls /proc/$$/fd > \(report); printf 'READY=1\\n' >&3")
        #expect(await ProcessUpgrade.waitForReady(child.readiness, timeout: .seconds(10)) == .ready)
        _ = await ProcessUpgrade.reap(child.pid)
        let open = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
        // 0-2, the readiness pipe at 3, and the descriptor `ls` opens to read the directory.
        #expect(open.filter { $0 > 3 }.count <= 1, "\(open)")
        #expect(!open.contains(Int(leaky)) || leaky <= 3, "\(open)")
    }
}
