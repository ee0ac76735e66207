import CMicroHTTPD
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The systemd notification protocol (`sd_notify`) without libsystemd: datagrams to the socket
/// named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). `READY=1` once every
/// server listens, `STOPPING=1` when the drain starts, `STATUS=` along the way, and the watchdog
/// (`WATCHDOG=1` every half of `WATCHDOG_USEC`) while the manager runs, when systemd asks for it.
final class SystemdNotifier: Sendable {
    /// Where the datagrams go.
    let socketPath: String
    /// How often systemd expects `WATCHDOG=1`, if it does.
    let watchdogInterval: Duration?
    private let fd: Int32
    private let watchdog = Mutex<Task<Void, Never>?>(nil)

    /// A notifier for `environment` (the process's), or `nil` when not run by systemd with
    /// `Type=notify` (no `NOTIFY_SOCKET`).
    static func fromEnvironment(
        _ environment: (String) -> String? = { getenv($0).map { String(cString: $0) } }
    ) -> SystemdNotifier? {
        guard let path = environment("NOTIFY_SOCKET"), !path.isEmpty else { return nil }
        var watchdog: Duration?
        // WATCHDOG_PID, when set, names the process the watchdog is meant for.
        if let usec = environment("WATCHDOG_USEC").flatMap(Int64.init), usec > 0,
            environment("WATCHDOG_PID").flatMap(Int32.init).map({ $0 == getpid() }) ?? true
        {
            watchdog = .microseconds(usec)
        }
        return SystemdNotifier(socketPath: path, watchdogInterval: watchdog)
    }

    init?(socketPath: String, watchdogInterval: Duration?) {
        guard socketPath.hasPrefix("/") || socketPath.hasPrefix("@"),
            socketPath.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        else { return nil }
        #if canImport(Glibc)
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
        let type = SOCK_DGRAM
        #endif
        let fd = socket(AF_UNIX, type, 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.socketPath = socketPath
        self.watchdogInterval = watchdogInterval
    }

    deinit {
        watchdog.withLock { $0 }?.cancel()
        close(fd)
    }

    /// Sends `message` (newline-separated `KEY=VALUE` lines); returns whether it was sent.
    @discardableResult
    func send(_ message: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
            // `@name`: the abstract namespace, a leading NUL instead of the `@`.
            if path.first == UInt8(ascii: "@") { raw[0] = 0 }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let bytes = Array(message.utf8)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        return sent == bytes.count
    }

    /// `READY=1`, the main PID and a status line.
    func ready(status: String) {
        send("READY=1\nMAINPID=\(getpid())\nSTATUS=\(Self.oneLine(status))")
    }

    /// `STOPPING=1` and a status line.
    func stopping(status: String) {
        send("STOPPING=1\nSTATUS=\(Self.oneLine(status))")
    }

    /// A status line.
    func status(_ status: String) {
        send("STATUS=\(Self.oneLine(status))")
    }

    /// Starts sending `WATCHDOG=1` at half the interval systemd asked for (until
    /// ``stopWatchdog()``), if it asked.
    func startWatchdog() {
        guard let interval = watchdogInterval else { return }
        let task = Task {
            while !Task.isCancelled {
                send("WATCHDOG=1")
                do { try await Task.sleep(for: interval / 2) } catch { return }
            }
        }
        watchdog.withLock { previous in
            previous?.cancel()
            previous = task
        }
    }

    func stopWatchdog() {
        watchdog.withLock { $0 }?.cancel()
    }

    private static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" ? " " : $0 })
    }
}
