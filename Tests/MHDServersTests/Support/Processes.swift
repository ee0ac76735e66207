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

/// An exit test's standard error, kept in a file that outlives the child, so it can be read
/// however the child ended. (`#expect(processExitsWith:observing:)` returns its result, and
/// with it `standardErrorContent`, only when the exit condition matched: a child that died of a
/// signal, say an engine panic or a glibc abort, took its last words with it.)
///
/// The parent makes one before the exit test and captures ``path``; the child calls
/// ``redirect(to:)`` first and ``bodyReturned()`` in a `defer`; the parent reads
/// ``text(exitMatched:)`` afterwards, whatever the result.
struct ChildStandardError {
    let path: String
    /// Written by the child when the body returns: what follows comes from the process's exit,
    /// where the testing library writes bytes of its own.
    static let bodyReturnedLine = "-- exit test body returned --\n"

    init() {
        let directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(directory)/mhdservers-exit-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        if fd >= 0 { close(fd) }
        path = fd >= 0 ? String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "/dev/null"
    }

    /// In the child, first thing: standard error goes to the file (unbuffered writes, the C
    /// library's and the engine's last messages included) until the process ends.
    static func redirect(to path: String) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = dup2(fd, 2)
        close(fd)
    }

    /// In the child, when the body returns.
    static func bodyReturned() { FileDescriptorTests.report(String(bodyReturnedLine.dropLast())) }

    /// What the child wrote while its body ran, and, unless the exit condition matched, what
    /// it wrote while it exited. Removes the file.
    func text(exitMatched: Bool) -> String {
        guard path != "/dev/null" else { return "" }
        defer { unlink(path) }
        let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        guard let end = text.range(of: Self.bodyReturnedLine) else { return text }
        let exiting = text[end.upperBound...]
        return exitMatched || exiting.isEmpty
            ? String(text[..<end.lowerBound])
            : text[..<end.lowerBound] + "[after the body returned:]\n" + exiting
    }
}
