import CMicroHTTPD
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The process side of a binary upgrade: starting a new copy of the executable with the
/// listening sockets (the way systemd passes them: `LISTEN_FDS`, `LISTEN_FDNAMES`,
/// `LISTEN_PID`, descriptors from 3), and hearing from it when it is ready.
///
/// The new process reports on a pipe whose write end it inherits after the sockets (its number
/// in `MHDSERVERS_UPGRADE_FD`): `READY=1` once every server serves. If it exits first, the pipe
/// closes and the old process hears that at once.
enum ProcessUpgrade {
    /// Names the descriptor a new process reports its readiness on.
    static let readinessVariable = "MHDSERVERS_UPGRADE_FD"
    /// The `LISTEN_FDNAMES` names of passed sockets that systemd holds too (socket activation):
    /// those are never shut down.
    static let sharedVariable = "MHDSERVERS_SHARED_FDNAMES"

    /// A socket to pass on.
    struct PassedSocket {
        let name: String
        let fd: Int32
        /// Held by systemd too.
        let shared: Bool
    }

    /// A started process and the read end of its readiness pipe.
    struct Child: Sendable {
        let pid: pid_t
        let readiness: Int32
    }

    /// Why a spawn failed.
    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// Starts `executable` with `arguments` (the first is its name) and this process's
    /// environment, passing `sockets` as descriptors 3, 4, ... and a readiness pipe after them.
    static func spawn(executable: String, arguments: [String], sockets: [PassedSocket]) throws(SpawnError) -> Child {
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else { throw SpawnError(description: "pipe: \(System.errorText(errno))") }
        _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeEnds[0], F_SETFL, fcntl(pipeEnds[0], F_GETFL) | O_NONBLOCK)
        defer { close(pipeEnds[1]) }

        let passed = sockets.map(\.fd) + [pipeEnds[1]]
        let replaced: Set<String> = [
            "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_PID", readinessVariable, sharedVariable,
        ]
        var environment = currentEnvironment().filter { entry in
            !replaced.contains(String(entry.prefix { $0 != "=" }))
        }
        environment += [
            "LISTEN_FDS=\(sockets.count)",
            "LISTEN_FDNAMES=\(sockets.map(\.name).joined(separator: ":"))",
            "\(readinessVariable)=\(3 + sockets.count)",
            "\(sharedVariable)=\(sockets.filter(\.shared).map(\.name).joined(separator: ":"))",
        ]
        // The child writes its own id here, between fork and exec.
        let pidEntry = strdup("LISTEN_PID=" + String(repeating: "0", count: 11))!
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [pidEntry, nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        let pid = passed.withUnsafeBufferPointer { fds in
            mhds_spawn_with_descriptors(
                executable, argv, envp, fds.baseAddress, Int32(fds.count), pidEntry + "LISTEN_PID=".utf8.count)
        }
        guard pid > 0 else {
            let code = errno
            close(pipeEnds[0])
            throw SpawnError(description: "\(System.errorText(code)) (errno \(code))")
        }
        return Child(pid: pid, readiness: pipeEnds[0])
    }

    /// How waiting for a new process ended.
    enum Outcome: Sendable, Equatable {
        /// It said `READY=1`.
        case ready
        /// It closed the pipe (exited) before that.
        case ended
        /// It said nothing in time.
        case timedOut
        /// The wait was cancelled (a shutdown began).
        case cancelled
    }

    /// Waits for `READY=1` on the readiness pipe, its end, `timeout` or cancellation. Closes the
    /// pipe.
    static func waitForReady(_ fd: Int32, timeout: Duration) async -> Outcome {
        let settled = Locked<(continuation: CheckedContinuation<Outcome, Never>?, early: Outcome?)>((nil, nil))
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: .global())
        // The first outcome wins; one that comes before the continuation is registered waits for it.
        @Sendable func finish(_ outcome: Outcome) {
            settled.withLock { settled -> CheckedContinuation<Outcome, Never>? in
                guard let continuation = settled.continuation else {
                    settled.early = settled.early ?? outcome
                    return nil
                }
                settled.continuation = nil
                settled.early = outcome
                return continuation
            }?.resume(returning: outcome)
        }
        let timer = Task {
            do {
                try await Task.sleep(for: timeout)
                finish(.timedOut)
            } catch {}
        }
        let received = Mutex<[UInt8]>([])
        source.setEventHandler {
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = read(fd, &buffer, buffer.count)
            if count > 0 {
                let text = received.withLock { bytes -> String in
                    bytes += buffer[0..<count]
                    return String(decoding: bytes, as: UTF8.self)
                }
                if text.split(separator: "\n").contains("READY=1") { finish(.ready) }
            } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                finish(.ended)
            }
        }
        source.setCancelHandler { close(fd) }
        source.resume()
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let early = settled.withLock { settled -> Outcome? in
                    if settled.early == nil { settled.continuation = continuation }
                    return settled.early
                }
                if let early { continuation.resume(returning: early) }
            }
        } onCancel: {
            finish(.cancelled)
        }
        timer.cancel()
        source.cancel()
        return outcome
    }

    /// Waits for `pid` to end (on a thread that may block) and says how it ended.
    static func reap(_ pid: pid_t) async -> String {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var status: Int32 = 0
                var result: pid_t
                repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
                guard result == pid else {
                    continuation.resume(returning: "ended")
                    return
                }
                let signal = status & 0x7f
                if signal == 0 {
                    continuation.resume(returning: "exited with status \((status >> 8) & 0xff)")
                } else {
                    continuation.resume(returning: "was killed by signal \(signal)")
                }
            }
        }
    }

    /// The running executable's path (after a binary upgrade replaced the file, the new one).
    static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return CommandLine.arguments.first ?? "" }
        let path = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let deleted = " (deleted)"
        return path.hasSuffix(deleted) ? String(path.dropLast(deleted.count)) : path
    }

    private static func currentEnvironment() -> [String] {
        var entries: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            entries.append(String(cString: entry))
            cursor += 1
        }
        return entries
    }

    // MARK: The new process's side

    /// The predecessor's readiness pipe and process id, when this process was started by an
    /// upgrade: read from the environment once (and removed from it); the pipe is closed once
    /// readiness is reported.
    private struct Channel {
        var fd: Int32 = -1
        var read = false
        var predecessor: pid_t?
    }
    private static let channel = Mutex(Channel())

    /// Reads `MHDSERVERS_UPGRADE_FD` (once; later calls do nothing).
    static func takePredecessorChannel() {
        channel.withLock { channel in
            guard !channel.read else { return }
            channel.read = true
            defer { unsetenv(readinessVariable) }
            guard let value = getenv(readinessVariable).flatMap({ Int32(String(cString: $0)) }), value >= 3,
                fcntl(value, F_GETFD) >= 0
            else { return }
            _ = fcntl(value, F_SETFD, FD_CLOEXEC)
            channel.fd = value
            channel.predecessor = getppid()
        }
    }

    /// The process that started this one by an upgrade.
    static var predecessor: pid_t? {
        takePredecessorChannel()
        return channel.withLock { $0.predecessor }
    }

    /// Tells the predecessor that this process serves (`READY=1`) and closes the channel.
    static func reportReady() {
        let fd = channel.withLock { channel -> Int32 in
            defer { channel.fd = -1 }
            return channel.fd
        }
        guard fd >= 0 else { return }
        let message = Array("READY=1\n".utf8)
        _ = message.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// Whether the sockets passed by the predecessor must be left listening when this process
    /// stops accepting: the predecessor is still there and may still serve on them.
    static var predecessorMayServe: Bool {
        guard let predecessor else { return false }
        return getppid() == predecessor
    }

    /// The names, from `MHDSERVERS_SHARED_FDNAMES`, of passed sockets systemd holds too.
    static func sharedSocketNames() -> Set<String>? {
        guard let value = getenv(sharedVariable).map({ String(cString: $0) }) else { return nil }
        unsetenv(sharedVariable)
        return Set(value.split(separator: ":").map(String.init))
    }
}
