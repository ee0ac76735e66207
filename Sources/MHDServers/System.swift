#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide facts and one-time settings.
enum System {
    /// Online CPU cores.
    static let coreCount: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// A write to a closed socket must fail with EPIPE, never kill the process.
    static let ignoreSIGPIPE: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// A string from a NUL-terminated C buffer.
    static func string(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The text for an errno value.
    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
