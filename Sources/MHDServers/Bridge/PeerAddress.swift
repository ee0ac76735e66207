#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A copy of a client's socket address, formatted only on demand.
struct PeerAddress: Sendable, CustomStringConvertible {
    private var storage: sockaddr_in6

    init?(_ address: UnsafePointer<sockaddr>?) {
        guard let address else { return nil }
        storage = sockaddr_in6()
        let family = Int32(address.pointee.sa_family)
        let size = family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size
            : family == AF_INET ? MemoryLayout<sockaddr_in>.size : 0
        guard size > 0 else { return nil }
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(start: address, count: size))
        }
    }

    /// `a.b.c.d:port` or `[v6]:port`.
    var description: String {
        var copy = storage
        let family = Int32(copy.sin6_family)
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        return withUnsafeBytes(of: &copy) { raw -> String in
            if family == AF_INET {
                var v4 = raw.load(as: sockaddr_in.self)
                inet_ntop(AF_INET, &v4.sin_addr, &buffer, socklen_t(buffer.count))
                return "\(System.string(buffer)):\(UInt16(bigEndian: v4.sin_port))"
            }
            var v6 = raw.load(as: sockaddr_in6.self)
            inet_ntop(AF_INET6, &v6.sin6_addr, &buffer, socklen_t(buffer.count))
            return "[\(System.string(buffer))]:\(UInt16(bigEndian: v6.sin6_port))"
        }
    }
}
