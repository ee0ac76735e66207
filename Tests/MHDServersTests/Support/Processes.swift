import Foundation

/// Runs a command (no shell; `/usr/bin/env` finds it) and returns its exit status and standard
/// output (with standard error after it when `mergingErrors`). It blocks: call it from a thread
/// of its own (``runCommandOnThread(_:mergingErrors:)``), never on the shared pool, whose few
/// threads the servers under test need.
func runCommand(_ arguments: [String], mergingErrors: Bool = false) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = mergingErrors ? pipe : FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
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
