import MHDServers
import Testing

@Suite("Binding and port fallback", .timeLimit(.minutes(2)))
struct BindingTests {
    static func router() -> Router {
        var router = Router()
        router.get("/ping") { _ in .text("pong") }
        return router
    }

    @Test func portZeroBindsAnEphemeralPort() async throws {
        let server = HTTPServer(config: ServerConfig(name: "zero", port: 0), router: Self.router(), logger: quietLogger)
        try await withRunning(server) { port async throws in
            #expect(port > 0)
            #expect(server.address?.port == port)
            #expect(server.address?.url == "http://127.0.0.1:\(port)")
            #expect(try await request(port, "GET", "/ping").text == "pong")
        }
    }

    @Test func busyPreferredPortFallsBackToTheNext() async throws {
        var (base, holders) = try consecutivePorts(3)
        // Keep the first port busy; free the other two for the server.
        holders.removeLast(2)
        let config = ServerConfig(name: "fallback", port: base, ports: base..<(base + 3))
        let server = HTTPServer(config: config, router: Self.router(), logger: quietLogger)
        try await withRunning(server) { port async throws in
            #expect(port == base + 1)
            #expect(try await request(port, "GET", "/ping").text == "pong")
        }
        #expect(holders[0].port == base)
    }

    @Test func allPortsBusyIsAClearError() async throws {
        let (base, holders) = try consecutivePorts(3)
        let config = ServerConfig(name: "crowded", port: base, ports: base..<(base + 3))
        let server = HTTPServer(config: config, router: Self.router(), logger: quietLogger)
        let error = await #expect(throws: ServerError.self) {
            try await withRunning(server) { _ in }
        }
        #expect(error?.code == .portsUnavailable)
        #expect(error?.server == "crowded")
        #expect(error?.host == "127.0.0.1")
        #expect(error?.portsTried == [base, base + 1, base + 2])
        let text = "\(error!)"
        #expect(text.contains("crowded") && text.contains("127.0.0.1"))
        #expect(text.contains("\(base), \(base + 1), \(base + 2)"))
        withExtendedLifetime(holders) {}
    }

    @Test func repeatedPortsAreTriedOnce() {
        let config = ServerConfig(name: "r", port: 3400, ports: [3400, 3401, 3401, 3402])
        #expect(config.candidatePorts == [3400, 3401, 3402])
    }

    @Test func invalidHostIsNotReportedAsBusy() async throws {
        let server = HTTPServer(
            config: ServerConfig(name: "bad", host: "no-such-host.invalid", port: 0), router: Self.router(),
            logger: quietLogger)
        let error = await #expect(throws: ServerError.self) { try await withRunning(server) { _ in } }
        #expect(error?.code == .invalidHost)
    }

    @Test func unavailableAddressIsABindError() async throws {
        // 192.0.2.1 (TEST-NET-1) is never a local address: EADDRNOTAVAIL, not "busy".
        let server = HTTPServer(
            config: ServerConfig(name: "elsewhere", host: "192.0.2.1", port: 0), router: Self.router(),
            logger: quietLogger)
        let error = await #expect(throws: ServerError.self) { try await withRunning(server) { _ in } }
        #expect(error?.code == .bindFailed)
        #expect(error?.message.contains("errno") == true)
    }

    @Test func ipv6LoopbackAndLocalhost() async throws {
        let v6 = HTTPServer(config: ServerConfig(name: "v6", host: "::1", port: 0), router: Self.router(), logger: quietLogger)
        try await withRunning(v6) { port async throws in
            #expect(v6.address?.url == "http://[::1]:\(port)")
            #expect(try await request(port, "GET", "/ping", host: "::1").text == "pong")
        }
        let local = HTTPServer(
            config: ServerConfig(name: "local", host: "localhost", port: 0), router: Self.router(), logger: quietLogger)
        try await withRunning(local) { port async throws in
            #expect(try await request(port, "GET", "/ping").text == "pong")
        }
    }

    @Test func wildcardHostServesLoopback() async throws {
        let server = HTTPServer(config: ServerConfig(name: "all", host: "0.0.0.0", port: 0), router: Self.router(), logger: quietLogger)
        try await withRunning(server) { port async throws in
            #expect(try await request(port, "GET", "/ping").text == "pong")
        }
    }

    @Test func portIsReleasedAfterStop() async throws {
        // A reserved port: nothing else in this process binds it between the two servers.
        let port = try ReservedPorts.take()
        let server = HTTPServer(config: ServerConfig(name: "rel", port: port), router: Self.router(), logger: quietLogger)
        try await withRunning(server) { bound async throws in #expect(bound == port) }
        #expect(await connectionRefused(port))
        // The same port can be bound again at once.
        let again = HTTPServer(config: ServerConfig(name: "again", port: port), router: Self.router(), logger: quietLogger)
        try await withRunning(again) { second async throws in #expect(second == port) }
    }
}
