import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#endif

/// Listening sockets inherited from systemd (or `systemd-socket-activate`) through
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`.
///
/// A server takes the inherited socket named like it (`FileDescriptorName=public`, or
/// `--fdname=public`); otherwise the next unnamed one, in start order. The environment is read
/// once and then removed, so child processes do not inherit it.
enum SocketActivation {
    struct Inherited {
        let fd: Int32
        let name: String?
    }

    private static let pool = Locked<[Inherited]?>(nil)

    /// The inherited socket for the server called `name`, if there is one.
    static func take(for name: String) -> Int32? {
        pool.withLock { pool -> Int32? in
            var list = pool ?? readEnvironment()
            defer { pool = list }
            guard let index = list.firstIndex(where: { $0.name == name }) ?? list.firstIndex(where: { $0.name == nil })
            else { return nil }
            return list.remove(at: index).fd
        }
    }

    private static func readEnvironment() -> [Inherited] {
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let pid = environment("LISTEN_PID").flatMap(Int32.init), pid == getpid(),
            let count = environment("LISTEN_FDS").flatMap(Int.init), count > 0
        else { return [] }
        let names = environment("LISTEN_FDNAMES")?.split(separator: ":", omittingEmptySubsequences: false).map(String.init) ?? []
        return (0..<count).map { index in
            let name = index < names.count ? names[index] : ""
            // systemd calls sockets without a FileDescriptorName "unknown".
            return Inherited(fd: 3 + Int32(index), name: name.isEmpty || name == "unknown" ? nil : name)
        }
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
