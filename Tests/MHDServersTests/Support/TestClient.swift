@testable import MHDServers
import Foundation
import Glibc
import Synchronization

/// A deliberately small HTTP/1.1 client on raw blocking sockets, run on its own thread so tests
/// never block Swift's cooperative pool. Tests need exact control (keep-alive, raw bytes,
/// half-sent requests), which a full client would hide.
struct RawResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] ?? [:]
    }
}

enum ClientError: Error { case connect(Int32), closed, malformed(String), timeout }

final class Connection: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to 127.0.0.1:port (or ::1 when `ipv6`), on `socket` if one is given (it is
    /// then owned by the connection).
    init(port: Int, host: String = "127.0.0.1", timeout: Double = 10, socket existing: Int32? = nil) throws {
        let v6 = host.contains(":")
        fd = existing ?? socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var result: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &addr.sin6_addr)
            result = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &addr.sin_addr)
            result = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        if result != 0 {
            // deinit closes the descriptor: a class whose init throws after full initialisation
            // is deinitialised.
            throw ClientError.connect(errno)
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw ClientError.closed }
            offset += n
        }
    }

    /// Bytes the server sent that no response has consumed yet: what is buffered plus whatever
    /// arrives within `wait`. After a complete response this must be empty.
    func unreadBytes(wait: Duration = .milliseconds(200)) -> [UInt8] {
        var pending = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let (seconds, attoseconds) = wait.components
        let milliseconds = Int32(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        if poll(&pending, 1, milliseconds) > 0 {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { buffer.append(contentsOf: chunk[0..<n]) }
        }
        return buffer
    }

    /// Whether the peer has closed or reset the connection (checked without blocking).
    func peerClosed() -> Bool {
        var pending = pollfd(fd: fd, events: Int16(POLLIN) | 0x2000 /* POLLRDHUP */, revents: 0)
        guard poll(&pending, 1, 0) > 0 else { return false }
        if pending.revents & (0x2000 | Int16(POLLHUP) | Int16(POLLERR)) != 0 { return true }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) <= 0
    }

    /// How a read ended when no (further) response came.
    enum Ending: Equatable, Sendable {
        /// The server closed the connection (EOF or reset).
        case closed
        /// Nothing arrived before the read timeout: the connection was left open.
        case timedOut
    }

    /// Reads until the server closes or the read times out, and says which happened.
    func ending() -> Ending {
        do {
            while true { try fill() }
        } catch ClientError.timeout {
            return .timedOut
        } catch {
            return .closed
        }
    }

    /// Closes the connection abruptly.
    func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw errno == EAGAIN ? ClientError.timeout : ClientError.closed }
        if n == 0 { throw ClientError.closed }
        buffer.append(contentsOf: chunk[0..<n])
    }

    /// Whether the server closed the connection (reads EOF within `timeout` seconds).
    func isClosedByPeer() -> Bool {
        do {
            while true { try fill() }
        } catch ClientError.closed {
            return true
        } catch {
            return false
        }
    }

    /// Everything the server sends until it closes or the read times out, as text.
    func readAll() -> String {
        while (try? fill()) != nil {}
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Reads one response; `head` = the request was HEAD (no body follows).
    func readResponse(head: Bool = false) throws -> RawResponse {
        var headerEnd: Int?
        while headerEnd == nil {
            if let range = find([13, 10, 13, 10]) { headerEnd = range } else { try fill() }
        }
        let headText = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
        buffer.removeFirst(headerEnd! + 4)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        // RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason]. Anything else (for example the tail of a
        // body that should not have been sent) is a malformed response.
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard statusLine.hasPrefix("HTTP/1.1 "), parts.count >= 2, parts[1].utf8.count == 3,
            let status = Int(parts[1])
        else { throw ClientError.malformed(statusLine) }
        var headers: [(String, String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = RawResponse(status: status, headers: headers, body: [])
        if head || status == 204 || status == 304 || status / 100 == 1 { return response }
        if let length = response.header("Content-Length").flatMap(Int.init) {
            while buffer.count < length { try fill() }
            response.body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while true {
                var lineEnd = find([13, 10])
                while lineEnd == nil { try fill(); lineEnd = find([13, 10]) }
                let sizeText = String(decoding: buffer[0..<lineEnd!], as: UTF8.self)
                buffer.removeFirst(lineEnd! + 2)
                let size = Int(sizeText.split(separator: ";")[0], radix: 16) ?? 0
                while buffer.count < size + 2 { try fill() }
                response.body += buffer[0..<size]
                buffer.removeFirst(size + 2)
                if size == 0 { break }
            }
        } else {
            while (try? fill()) != nil {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        outer: for i in 0...(buffer.count - needle.count) {
            for j in 0..<needle.count where buffer[i + j] != needle[j] { continue outer }
            return i
        }
        return nil
    }
}

/// Runs blocking work on a fresh thread and awaits its result.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.start()
    }
}

/// One request on a new connection. It asks for `Connection: close` unless `keepAlive`.
func request(
    _ port: Int, _ method: String = "GET", _ path: String, headers: [String: String] = [:], body: String? = nil,
    host: String = "127.0.0.1", keepAlive: Bool = false
) async throws -> RawResponse {
    try await offPool {
        let connection = try Connection(port: port, host: host)
        var text = "\(method) \(path) HTTP/1.1\r\nHost: test\r\n" + (keepAlive ? "" : "Connection: close\r\n")
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        try connection.send(text)
        return try connection.readResponse(head: method == "HEAD")
    }
}

/// Whether a TCP connect to the port is refused right now.
func connectionRefused(_ port: Int, host: String = "127.0.0.1") async -> Bool {
    (try? await offPool { () -> Bool in
        do {
            _ = try Connection(port: port, host: host, timeout: 2)
            return false
        } catch ClientError.connect(let code) {
            return code == ECONNREFUSED
        }
    }) ?? false
}

/// A listening socket that holds a port busy for a test.
final class PortHolder: @unchecked Sendable {
    let fd: Int32
    let port: Int

    /// Listens on `host:port` (0 = any free port).
    init(port: Int = 0, host: String = "127.0.0.1") throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, host, &addr.sin_addr)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            self.port = 0
            throw ClientError.connect(errno)  // deinit closes fd
        }
        var out = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &out) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: out.sin_port))
    }

    deinit { Glibc.close(fd) }
}

/// Ports that tests free and bind again. They come from below the kernel's ephemeral range
/// (which starts at 32768 here), so no `port: 0` bind and no outgoing connection of a test
/// running in parallel can take one in between, and each is handed out once per process.
enum ReservedPorts {
    private static let next = Locked(10_000 + Int(getpid() % 1000) * 20)

    /// `count` consecutive ports, each free right now on 127.0.0.1 and never handed out before.
    static func take(_ count: Int = 1) throws -> Int {
        for _ in 0..<200 {
            let base = next.withLock { next -> Int in
                defer { next += count }
                if next + count > 32_000 { next = 10_000 }
                return next
            }
            if (0..<count).allSatisfy({ (try? PortHolder(port: base + $0)) != nil }) { return base }
        }
        throw ClientError.malformed("no run of \(count) free ports below the ephemeral range")
    }
}

/// `count` consecutive reserved ports (see ``ReservedPorts``), held busy by listeners until released.
func consecutivePorts(_ count: Int) throws -> (base: Int, holders: [PortHolder]) {
    let base = try ReservedPorts.take(count)
    return (base, try (0..<count).map { try PortHolder(port: base + $0) })
}
