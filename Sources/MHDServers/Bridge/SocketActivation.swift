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
        /// systemd holds it too: it is never shut down here.
        let sharedWithSystemd: Bool
        /// Passed by the process this one upgraded (see ``ProcessUpgrade``).
        let fromPredecessor: Bool
    }

    private static let pool = Locked<[Inherited]?>(nil)

    /// The inherited socket for the server called `name`, if there is one.
    static func take(for name: String) -> Inherited? {
        pool.withLock { pool -> Inherited? in
            var list = pool ?? readEnvironment()
            defer { pool = list }
            guard let index = list.firstIndex(where: { $0.name == name }) ?? list.firstIndex(where: { $0.name == nil })
            else { return nil }
            return list.remove(at: index)
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
        // Passed by an upgrade: only the sockets it names are systemd's too.
        let fromPredecessor = ProcessUpgrade.predecessor != nil
        let shared = ProcessUpgrade.sharedSocketNames()
        return (0..<count).map { index in
            let name = index < names.count ? names[index] : ""
            // systemd calls sockets without a FileDescriptorName "unknown".
            let named = name.isEmpty || name == "unknown" ? nil : name
            return Inherited(
                fd: 3 + Int32(index), name: named,
                sharedWithSystemd: fromPredecessor ? shared?.contains(name) ?? false : true,
                fromPredecessor: fromPredecessor)
        }
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
