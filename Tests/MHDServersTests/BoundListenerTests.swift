@testable import MHDServers
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Bound listeners for side services", .timeLimit(.minutes(2)))
struct BoundListenerTests {
    @Test func busyPortMovesOnAndTheSocketListens() async throws {
        var (base, holders) = try consecutivePorts(2)
        holders.removeLast()  // base busy, base + 1 free
        let manager = ServerManager(logger: quietLogger)
        let listener = try manager.bindListener(ServerConfig(name: "grpc", port: base, ports: base..<(base + 2)))
        #expect(listener.address.port == base + 1)
        #expect(listener.address.host == "127.0.0.1")
        // Listening already: the kernel completes the handshake from the backlog.
        #expect(!(await connectionRefused(base + 1)))
        listener.close()
        #expect(await connectionRefused(base + 1))
        withExtendedLifetime(holders) {}
    }

    @Test func everyPortBusyNamesTheServerHostAndPorts() throws {
        let (base, holders) = try consecutivePorts(3)
        let manager = ServerManager(logger: quietLogger)
        let error = #expect(throws: ServerError.self) {
            _ = try manager.bindListener(ServerConfig(name: "grpc", port: base, ports: base..<(base + 3)))
        }
        #expect(error?.code == .portsUnavailable)
        #expect(error?.server == "grpc")
        #expect(error?.host == "127.0.0.1")
        #expect(error?.portsTried == [base, base + 1, base + 2])
        #expect(error?.description.contains("\(base), \(base + 1), \(base + 2)") == true)
        withExtendedLifetime(holders) {}
    }

    @Test func skipsPortsOfTheManagersServersAndReleasesItsClaimWhenClosed() async throws {
        let base = try ReservedPorts.take(2)
        let manager = ServerManager(logger: quietLogger)
        let servers = [Server(config: ServerConfig(name: "web", host: "127.0.0.1", port: base), lifecycle: RecordingAPI(recorder: Recorder()))]
        try await withManager(manager, servers) { _ in
            // 127.0.0.2:base is free for the kernel; the manager's claim on base moves it on.
            let config = ServerConfig(name: "grpc", host: "127.0.0.2", port: base, ports: [base, base + 1])
            let first = try manager.bindListener(config)
            #expect(first.address.port == base + 1)
            // Its own claim: a second listener cannot take base + 1 either.
            #expect(throws: ServerError.self) { _ = try manager.bindListener(config) }
            first.close()
            let again = try manager.bindListener(ServerConfig(name: "grpc", host: "127.0.0.2", port: base + 1))
            #expect(again.address.port == base + 1)
        }
    }

    @Test func theDescriptorIsHandedOverOnce() async throws {
        let manager = ServerManager(logger: quietLogger)
        let listener = try manager.bindListener(ServerConfig(name: "grpc", port: 0))
        let port = listener.address.port
        #expect(port != 0)
        let descriptor = try #require(listener.takeDescriptor())
        #expect(listener.takeDescriptor() == nil)
        // Taken: closing (or releasing) the listener leaves the socket to its new owner.
        listener.close()
        #expect(!(await connectionRefused(port)))
        #expect(Glibc.close(Int32(descriptor)) == 0)
        #expect(await connectionRefused(port))
    }

    @Test func aListenerNeverTakenIsClosedWhenReleased() async throws {
        let manager = ServerManager(logger: quietLogger)
        var port = 0
        do {
            let listener = try manager.bindListener(ServerConfig(name: "grpc", port: 0))
            port = listener.address.port
            #expect(!(await connectionRefused(port)))
        }
        #expect(await connectionRefused(port))
    }
}
