import Foundation
@testable import MHDServers
import Testing

/// A datagram socket standing in for systemd's notification socket: collects every message.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let received: Locked<[String]>
    private let reader: Thread

    init() throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw ClientError.connect(errno)
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let received = Locked<[String]>([])
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !Thread.current.isCancelled {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count > 0 { received.withLock { $0.append(String(decoding: buffer[0..<count], as: UTF8.self)) } }
            }
        }
        reader.start()
        (self.path, self.fd, self.received, self.reader) = (path, fd, received, reader)
    }

    var messages: [String] { received.withLock { $0 } }

    /// Index of the first message with `line` as one of its lines.
    func index(of line: String) -> Int? { messages.firstIndex { $0.split(separator: "\n").contains { $0 == line } } }

    deinit {
        reader.cancel()
        usleep(150_000)  // the reader wakes within its 100 ms receive timeout
        close(fd)
        unlink(path)
    }
}

@Suite("systemd notification (sd_notify)", .timeLimit(.minutes(2)))
struct SystemdNotifyTests {
    @Test func readyOnceEveryServerListensStoppingWhenTheDrainStartsAndTheWatchdogMeanwhile() async throws {
        let socket = try NotifySocket()
        let notifier = try #require(SystemdNotifier(socketPath: socket.path, watchdogInterval: .milliseconds(200)))
        let manager = ServerManager(logger: quietLogger, shutdownTimeout: .seconds(5), drainDelay: .zero, notifier: notifier)
        let web = RecordingAPI(recorder: Recorder(), hold: Gate())
        let servers = [
            Server(config: ServerConfig(name: "web", port: 0), lifecycle: web),
            Server(config: ServerConfig(name: "admin", port: 0), lifecycle: RecordingAPI(recorder: Recorder())),
        ]
        let run = Task { try await manager.runAll(servers, signals: []) }
        let started = try await manager.waitUntilStarted()
        let (webPort, adminPort) = (try #require(started[0].address?.port), try #require(started[1].address?.port))
        try await waitUntil("READY=1") { socket.index(of: "READY=1") != nil }
        let ready = try #require(socket.messages.first { $0.hasPrefix("READY=1\n") })
        #expect(ready.contains("MAINPID=\(getpid())"))
        #expect(ready.contains("STATUS=serving: web http://127.0.0.1:\(webPort), admin http://127.0.0.1:\(adminPort)"))
        #expect(socket.index(of: "STATUS=starting 2 servers")! < socket.index(of: "READY=1")!)
        // The watchdog, every 100 ms.
        try await waitUntil("three watchdog pings") { socket.messages.filter { $0 == "WATCHDOG=1" }.count >= 3 }

        // A request in flight holds the drain: STOPPING=1 comes when the drain starts, not after.
        let slow = Task { try await request(webPort, "GET", "/slow") }
        try await web.slowStarted.wait(for: 1, "the slow request to start")
        await manager.shutdown()
        try await waitUntil("STOPPING=1") { socket.index(of: "STOPPING=1") != nil }
        #expect(socket.index(of: "STATUS=stopped") == nil)
        web.hold?.open()
        #expect(try await slow.value.status == 200)
        try await run.value
        try await waitUntil("STATUS=stopped") { socket.index(of: "STATUS=stopped") != nil }
        #expect(socket.index(of: "READY=1")! < socket.index(of: "STOPPING=1")!)
        #expect(socket.messages.filter { $0.contains("READY=1") }.count == 1)
        #expect(socket.messages.filter { $0.contains("STOPPING=1") }.count == 1)
        // The watchdog stopped with the manager.
        let count = socket.messages.count
        try await Task.sleep(for: .milliseconds(350))
        #expect(socket.messages.count == count)
    }

    @Test func theEnvironmentDecides() throws {
        func notifier(_ environment: [String: String]) -> SystemdNotifier? {
            SystemdNotifier.fromEnvironment { environment[$0] }
        }
        #expect(notifier([:]) == nil)
        #expect(notifier(["NOTIFY_SOCKET": ""]) == nil)
        #expect(notifier(["NOTIFY_SOCKET": "relative/path"]) == nil)
        let plain = try #require(notifier(["NOTIFY_SOCKET": "/run/systemd/notify"]))
        #expect(plain.watchdogInterval == nil)
        #expect(notifier(["NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "30000000"])?.watchdogInterval == .seconds(30))
        // The watchdog is meant for another process.
        #expect(notifier(["NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "\(getpid() + 1)"])?.watchdogInterval == nil)
        #expect(notifier(["NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "\(getpid())"])?.watchdogInterval == .milliseconds(1))
    }

    @Test func nothingIsSentWithoutTheSocket() {
        #expect(ServerManager(logger: quietLogger, notifiesSystemd: true).notifier == nil || getenv("NOTIFY_SOCKET") != nil)
        #expect(ServerManager(logger: quietLogger, notifiesSystemd: false).notifier == nil)
    }
}
