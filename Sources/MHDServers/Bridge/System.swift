#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide facts and one-time settings.
enum System {
    /// The CPUs this process may use (affinity mask and cgroup quota; see ``CPUBudget``).
    static var coreCount: Int { CPUBudget.current.count }

    /// A write to a closed socket must fail with EPIPE, never kill the process.
    static let ignoreSIGPIPE: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// A string from a NUL-terminated C buffer.
    static func string(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The contents of a text file.
    static func readFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, reason: errorText(errno)) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 { throw FileError(path: path, reason: errorText(errno)) }
            if count == 0 { break }
            bytes += chunk[0..<count]
            if bytes.count > 1 << 20 { throw FileError(path: path, reason: "larger than 1 MiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The process's limit on open file descriptors (`RLIMIT_NOFILE`).
    static var openFileLimit: (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        func value(_ raw: rlim_t) -> Int { raw == rlim_t.max ? Int.max : Int(clamping: raw) }
        return (value(limit.rlim_cur), value(limit.rlim_max))
    }

    /// Makes room for `needed` open descriptors: raises the soft limit toward the hard limit
    /// when it is lower. Returns the limit in force afterwards and whether it covers `needed`.
    static func reserveDescriptors(_ needed: Int) -> (limit: Int, sufficient: Bool) {
        let (soft, hard) = openFileLimit
        if soft >= needed { return (soft, true) }
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (soft, false) }
        let target = min(hard, needed)
        limit.rlim_cur = rlim_t(target)
        if target > soft && setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            return (target, target >= needed)
        }
        return (soft, false)
    }

    /// The text for an errno value.
    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}

/// A file that could not be read.
public struct FileError: Error, Sendable, CustomStringConvertible {
    /// The file's path.
    public let path: String
    /// Why it could not be read.
    public let reason: String

    public var description: String { "cannot read '\(path)': \(reason)" }
}
