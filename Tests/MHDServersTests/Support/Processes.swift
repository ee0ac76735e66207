import Foundation
import Glibc

/// Runs a command (no shell; `PATH` finds it) and returns its exit status and standard output
/// (with standard error after it when `mergingErrors`). It blocks: call it from a thread of its
/// own (``runCommandOnThread(_:mergingErrors:)``), never on the shared pool, whose few threads the
/// servers under test need. Spawned with `posix_spawnp`, not Foundation's `Process`, whose
/// descriptor scan reads past its buffer under AddressSanitizer when many descriptors are open.
func runCommand(_ arguments: [String], mergingErrors: Bool = false) throws -> (status: Int32, output: String) {
    var pipeEnds: [Int32] = [0, 0]
    guard pipe(&pipeEnds) == 0 else { throw CommandError(message: "pipe: \(errno)") }
    // Only the child's copies (made by dup2) stay open in it.
    _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
    if mergingErrors {
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
    } else {
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, &argv, environ)
    close(pipeEnds[1])
    guard spawned == 0 else {
        close(pipeEnds[0])
        throw CommandError(message: "\(arguments[0]): \(String(cString: strerror(spawned)))")
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        output += buffer[0..<count]
    }
    close(pipeEnds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    // The exit status as a shell reports it: the code, or 128 + the signal.
    let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (exit, String(decoding: output, as: UTF8.self))
}

struct CommandError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// ``runCommand(_:mergingErrors:)`` on a thread of its own.
func runCommandOnThread(_ arguments: [String], mergingErrors: Bool = false) async throws -> (status: Int32, output: String) {
    try await offPool { try runCommand(arguments, mergingErrors: mergingErrors) }
}

/// The resident memory of this process (`VmRSS` of /proc/self/status).
enum ResidentMemory {
    /// In kB, or -1 if it cannot be read.
    static func kilobytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        return -1
    }

    /// The peak over `body`, sampled every 20 ms, with the value before it: in kB.
    static func peak<T: Sendable>(during body: () async throws -> T) async rethrows -> (result: T, before: Int, peak: Int) {
        let before = kilobytes()
        let peak = Shared(before)
        let sampler = Task {
            while !Task.isCancelled {
                peak.value = max(peak.value, kilobytes())
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        let result = try await body()
        sampler.cancel()
        _ = await sampler.value
        peak.value = max(peak.value, kilobytes())
        return (result, before, peak.value)
    }
}
