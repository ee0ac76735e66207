@testable import MHDServers
import Glibc
import ServiceLifecycle
import Synchronization
import Testing

/// Thousands of clients that hang up in every phase of a request, and requests the engine
/// cannot hold. Afterwards nothing may be in flight, no request context may be alive, and a
/// graceful shutdown (with a long drain deadline) must not wait for anything.
@Suite("Request accounting under a storm of hostile clients", .timeLimit(.minutes(2)))
struct StormTests {
    static func router(release: Gate) -> Router {
        var router = Router()
        router.get("/hello") { _ in .text("hello") }
        router.post("/echo") { request in Response(status: .ok, body: request.body) }
        router.get("/wait") { _ in
            try await release.wait()
            return .text("released")
        }
        router.get("/yield") { _ in
            await Task.yield()
            return .text("yielded")
        }
        return router
    }

    /// What one client sends before it hangs up, and whether it waits to read first.
    struct Shape: Sendable {
        let name: String
        let bytes: [UInt8]
        /// Read (up to 50 ms) before hanging up, so the request reaches its handler.
        var pause = false
    }

    static let shapes: [Shape] = {
        func text(_ name: String, _ text: String, pause: Bool = false) -> Shape {
            Shape(name: name, bytes: Array(text.utf8), pause: pause)
        }
        let manyParameters = "GET /hello?" + (0..<600).map { "a\($0)=1" }.joined(separator: "&") + " HTTP/1.1\r\nHost: x\r\n\r\n"
        let manyHeaders = "GET /hello HTTP/1.1\r\nHost: x\r\n" + (0..<700).map { "X-H\($0): v\r\n" }.joined() + "\r\n"
        return [
            text("mid request line", "GET /hel"),
            text("mid headers", "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1"),
            text("mid body", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"),
            text("mid body, after a pause", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789", pause: true),
            text("mid chunk", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"),
            text("mid chunk size", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1"),
            text("during an async handler", "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n", pause: true),
            text("right after an async handler started", "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"),
            text("during a yielding handler", "GET /yield HTTP/1.1\r\nHost: x\r\n\r\n"),
            text(
                "pipelined, hung up in the third",
                "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /yield HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab"),
            text("600 query parameters", manyParameters),
            text("600 query parameters, read first", manyParameters, pause: true),
            text("700 headers", manyHeaders, pause: true),
            text("chunked with a trailing space", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n", pause: true),
            text("chunked with a tab", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            text("complete, not read", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
        ]
    }()

    /// Connects, sends, maybe reads a little, and hangs up: with a reset every other time.
    static func hangUp(port: Int, shape: Shape, reset: Bool) {
        guard let connection = try? Connection(port: port, timeout: 1) else { return }
        try? connection.send(shape.bytes)
        if shape.pause { _ = connection.unreadBytes(wait: .milliseconds(50)) }
        if reset {
            var linger = linger(l_onoff: 1, l_linger: 0)
            setsockopt(connection.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        }
        connection.close()
    }

    @Test func everyRequestEndsExactlyOnceWhateverTheClientDoes() async throws {
        let release = Gate()
        var limits = ServerConfig.Limits()
        limits.connectionTimeout = .seconds(30)
        limits.requestHeaderTimeout = .seconds(30)
        let server = HTTPServer(
            config: ServerConfig(name: "storm", port: 0, limits: limits), router: Self.router(release: release),
            logger: quietLogger, shutdownTimeout: .seconds(30))
        let group = ServiceGroup(services: [server], logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.listeningAddress().port
            // Each shape on its own, so a leak names its shape.
            var leaks: [String] = []
            for shape in Self.shapes {
                let rounds = shape.pause ? 40 : 150
                try await withThrowingTaskGroup(of: Void.self) { clients in
                    for worker in 0..<4 {
                        clients.addTask {
                            try await offPool {
                                for round in 0..<rounds / 4 { Self.hangUp(port: port, shape: shape, reset: (round + worker) % 2 == 0) }
                            }
                        }
                    }
                    try await clients.waitForAll()
                }
                // Connections closed by the client end their requests as soon as the engine
                // notices (at most one poll round later); nothing here waits on a timeout.
                do {
                    try await waitUntil("\(shape.name): nothing in flight") {
                        server.stats.inFlight == 0 && server.stats.liveContexts.load(ordering: .relaxed) == 0
                            && server.openConnections == 0
                    }
                } catch {
                    leaks.append(
                        "\(shape.name): \(server.stats.inFlight) in flight, \(server.stats.liveContexts.load(ordering: .relaxed)) contexts, \(server.openConnections) connections")
                    break
                }
            }
            #expect(leaks.isEmpty, "\(leaks)")
            // The server still serves, and the oversized query is answered, not dropped.
            #expect(try await request(port, "GET", "/hello").text == "hello")
            let query = "/hello?" + (0..<600).map { "a\($0)=\($0)" }.joined(separator: "&")
            #expect(try await request(port, "GET", query).status == 200)
            // Nothing is left to drain: a graceful shutdown with a 30 s deadline returns at once
            // (a third of the deadline leaves any load on the machine far from the failure).
            let start = ContinuousClock.now
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            #expect(ContinuousClock.now - start < .seconds(10))
        }
        #expect(server.stats.inFlight == 0)
        #expect(server.stats.liveContexts.load(ordering: .relaxed) == 0)
        release.open()
    }

    /// A small, repeatable fuzz: valid requests cut, spliced and corrupted at random, each sent
    /// on its own connection, read briefly, and hung up. Whatever the engine or the layer makes
    /// of them, every request must end.
    @Test func fuzzedRequestsAllEnd() async throws {
        let release = Gate()
        let server = HTTPServer(
            config: ServerConfig(name: "fuzz", port: 0), router: Self.router(release: release), logger: quietLogger,
            shutdownTimeout: .seconds(30))
        let seeds: [[UInt8]] = [
            "GET /hello?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n",
            "GET /yield HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
            "HEAD /hello HTTP/1.0\r\n\r\n",
        ].map { Array($0.utf8) }
        let alphabet = Array(" \r\n:;=&?%0aZ\t-\u{0}\u{7f}".utf8)
        try await withRunning(server) { port async throws in
            try await withThrowingTaskGroup(of: Void.self) { clients in
                for worker in 0..<4 {
                    clients.addTask {
                        try await offPool {
                            var random = SplitMix64(seed: UInt64(worker) &* 0x9E37_79B9_7F4A_7C15 &+ 1)
                            for _ in 0..<150 {
                                var bytes = seeds[Int(random.next() % UInt64(seeds.count))]
                                for _ in 0..<(1 + random.next() % 4) {
                                    let at = Int(random.next() % UInt64(bytes.count))
                                    switch random.next() % 4 {
                                    case 0: bytes[at] = alphabet[Int(random.next() % UInt64(alphabet.count))]
                                    case 1: bytes.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: at)
                                    case 2: bytes.remove(at: at)
                                    default: bytes = Array(bytes[..<max(1, at)])
                                    }
                                }
                                let shape = Shape(name: "fuzz", bytes: bytes, pause: random.next() % 2 == 0)
                                Self.hangUp(port: port, shape: shape, reset: random.next() % 2 == 0)
                            }
                        }
                    }
                }
                try await clients.waitForAll()
            }
            try await waitUntil("every fuzzed request to end", timeout: .seconds(5)) {
                server.stats.inFlight == 0 && server.stats.liveContexts.load(ordering: .relaxed) == 0
                    && server.openConnections == 0
            }
            #expect(try await request(port, "GET", "/hello").text == "hello")
        }
        release.open()
    }
}

/// A tiny seeded generator, so a fuzz run can be repeated exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
