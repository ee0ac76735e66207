import Foundation
import Glibc
import Logging
import MHDServers
import ServiceLifecycle
import Synchronization

let quietLogger = Logger(label: "openapi-test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Runs a server for `router` on 127.0.0.1, port 0, hands its port to `body`, then shuts it
/// down gracefully and waits until it has stopped.
func withServer<T: Sendable>(
    _ router: Router, logger: Logger = quietLogger, _ body: (Int) async throws -> T
) async throws -> T {
    let server = HTTPServer(config: ServerConfig(name: "api", port: 0), router: router, logger: logger)
    let group = ServiceGroup(services: [server], logger: quietLogger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let result = try await body(try await server.listeningAddress().port)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}

/// Keeps every log line (message and metadata) written through its loggers.
final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])

    var logger: Logger {
        Logger(label: "openapi-test") { _ in Handler(recorder: self) }
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            recorder.lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
        }
    }
}

/// A response as read off the socket.
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

enum ClientError: Error { case connect(Int32), closed, malformed(String) }

/// One HTTP/1.1 request with `Connection: close` on a new blocking socket, run on its own
/// thread so the cooperative pool never blocks. `head`: no body follows the response head.
func request(
    _ port: Int, _ target: String, headers: [(String, String)] = [], body: String? = nil
) async throws -> RawResponse {
    try await request(port, "GET", target, headers: headers, body: body)
}

/// One request with `method` (see ``request(_:_:headers:body:)``).
func request(
    _ port: Int, _ method: String, _ target: String, headers: [(String, String)] = [], body: String? = nil
) async throws -> RawResponse {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(
                with: Result {
                    var text = "\(method) \(target) HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n"
                    for (name, value) in headers { text += "\(name): \(value)\r\n" }
                    if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
                    text += "\r\n" + (body ?? "")
                    return try exchange(port, Array(text.utf8), head: method == "HEAD")
                })
        }.start()
    }
}

private func exchange(_ port: Int, _ bytes: [UInt8], head: Bool) throws -> RawResponse {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    let connected = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw ClientError.connect(errno) }
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { throw ClientError.closed }
        offset += n
    }
    // The server closes the connection after the response (`Connection: close`).
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw ClientError.closed }
        if n == 0 { break }
        received += chunk[0..<n]
    }
    return try parse(received, head: head)
}

private func parse(_ bytes: [UInt8], head: Bool) throws -> RawResponse {
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
        throw ClientError.malformed(String(decoding: bytes, as: UTF8.self))
    }
    var lines = String(decoding: bytes[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst()
    let parts = statusLine.split(separator: " ", maxSplits: 2)
    guard statusLine.hasPrefix("HTTP/1.1 "), parts.count >= 2, let status = Int(parts[1]) else {
        throw ClientError.malformed(statusLine)
    }
    var headers: [(String, String)] = []
    for line in lines {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    }
    var response = RawResponse(status: status, headers: headers, body: Array(bytes[(end + 4)...]))
    // After a HEAD response nothing may follow: whatever did stays in `body` for the test to see.
    if let length = response.header("Content-Length").flatMap(Int.init), !head {
        guard response.body.count >= length else { throw ClientError.malformed("short body") }
        response.body = Array(response.body.prefix(length))
    }
    return response
}
