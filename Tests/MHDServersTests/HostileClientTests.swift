import Glibc
import MHDServers
import Testing

/// Raw-socket abuse. After every case the server must still answer a normal request.
@Suite("Hostile clients")
struct HostileClientTests {
    static func router() -> Router {
        var router = Router()
        router.get("/hello") { _ in .text("hello") }
        router.post("/echo") { request in Response(status: .ok, body: request.body) }
        router.get("/slow") { _ in
            try await Task.sleep(for: .milliseconds(300))
            return .text("slow")
        }
        return router
    }

    static let limits = ServerConfig.Limits(
        maxConnections: 16, maxConnectionsPerIP: 16, connectionTimeout: .seconds(1), maxBodySize: 4096)

    /// Sends `bytes` on a fresh connection and reads one response (nil if the server closed
    /// without answering). A reset while sending is fine: the answer may already be there.
    static func exchange(_ port: Int, _ bytes: [UInt8]) async throws -> RawResponse? {
        try await offPool {
            let connection = try Connection(port: port, timeout: 5)
            try? connection.send(bytes)
            return try? connection.readResponse()
        }
    }

    static func exchange(_ port: Int, _ text: String) async throws -> RawResponse? {
        try await exchange(port, Array(text.utf8))
    }

    /// The server still serves a normal request.
    static func stillServes(_ port: Int) async throws {
        let response = try await request(port, "GET", "/hello")
        #expect(response.status == 200)
        #expect(response.text == "hello")
    }

    static func run(_ body: (Int) async throws -> Void) async throws {
        try await withServer(router(), limits: limits) { port async throws in
            try await body(port)
            try await stillServes(port)
        }
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "GET /hello HTTP/1.1 extra\r\nHost: t\r\n\r\n",
        "GET /hello HTTP/9.9\r\nHost: t\r\n\r\n",
        "GET /hello HTTP/1.1\r\nNo colon here\r\n\r\n",
    ])
    func malformedRequestLinesAndHeadersAre4xx(_ text: String) async throws {
        try await Self.run { port in
            let response = try await Self.exchange(port, text)
            if let response { #expect((400..<500).contains(response.status) || response.status == 505) }
        }
    }

    @Test func unknownMethodIs405WithAllow() async throws {
        try await Self.run { port in
            let response = try #require(try await Self.exchange(port, "BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n"))
            #expect(response.status == 405)
            #expect(response.header("Allow") == "GET, HEAD")
        }
    }

    @Test func http09AndHttp2PrefacesAreRefused() async throws {
        try await Self.run { port in
            let old = try await Self.exchange(port, "GET /hello\r\n\r\n")
            #expect(old.map { $0.status >= 400 } ?? true)
            let h2 = try #require(try await Self.exchange(port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
            #expect(h2.status == 505)
        }
    }

    @Test func hugeUrlIs414AndHugeHeaderIs431() async throws {
        try await Self.run { port in
            let url = try #require(
                try await Self.exchange(port, "GET /" + String(repeating: "a", count: 70_000) + " HTTP/1.1\r\nHost: t\r\n\r\n"))
            #expect(url.status == 414)
            let header = try #require(
                try await Self.exchange(
                    port, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + String(repeating: "b", count: 70_000) + "\r\n\r\n"))
            #expect(header.status == 431)
        }
    }

    @Test func nulBytesInThePathAreRejected() async throws {
        try await Self.run { port in
            let encoded = try #require(try await Self.exchange(port, "GET /hello%00.txt HTTP/1.1\r\nHost: t\r\n\r\n"))
            #expect(encoded.status == 400)
            let raw = try await Self.exchange(port, Array("GET /hel".utf8) + [0] + Array("lo HTTP/1.1\r\nHost: t\r\n\r\n".utf8))
            #expect(raw.map { $0.status == 400 } ?? true)
        }
    }

    @Test func bareLineFeedsAreHandled() async throws {
        try await Self.run { port in
            let response = try await Self.exchange(port, "GET /hello HTTP/1.1\nHost: t\nConnection: close\n\n")
            if let response { #expect(response.status == 200 || response.status == 400) }
        }
    }

    @Test(arguments: [
        ("zz\r\nhello\r\n0\r\n\r\n", "bad size"),
        ("FFFFFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", "huge size"),
        ("-5\r\nhello\r\n0\r\n\r\n", "negative size"),
    ])
    func brokenChunkedBodiesAreRejected(_ body: String, _ label: String) async throws {
        try await Self.run { port in
            let response = try await Self.exchange(
                port, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
            if let response { #expect(response.status == 400 || response.status == 413, "\(label)") }
        }
    }

    @Test func chunkExtensionsAndTrailersAreAccepted() async throws {
        try await Self.run { port in
            let response = try #require(
                try await Self.exchange(
                    port,
                    "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        + "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"))
            #expect(response.status == 200)
            #expect(response.text == "hello world")
        }
    }

    @Test func smugglingShapedRequestsAreRefusedAndClosed() async throws {
        try await Self.run { port in
            let cases: [(String, Int)] = [
                ("Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
                ("Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
                ("Content-Length: 5, 5\r\n\r\nhello", 400),
                ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
                ("Transfer-Encoding: gzip\r\n\r\nhello", 501),
                ("Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
                ("Content-Length: 99999999\r\n\r\n", 413),
            ]
            for (headers, status) in cases {
                let (response, closed) = try await offPool { () -> (RawResponse, Bool) in
                    let connection = try Connection(port: port, timeout: 3)
                    try connection.send("POST /echo HTTP/1.1\r\nHost: t\r\n" + headers)
                    let response = try connection.readResponse()
                    return (response, connection.isClosedByPeer())
                }
                #expect(response.status == status, "\(headers)")
                #expect(response.header("Connection")?.lowercased() == "close")
                #expect(closed, "connection closed after \(headers)")
            }
        }
    }

    @Test func oversizedContentLengthGetsExactlyOneResponse() async throws {
        try await Self.run { port in
            let bytes = try await offPool { () -> String in
                let connection = try Connection(port: port, timeout: 3)
                try connection.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n")
                _ = try connection.readResponse()
                return connection.isClosedByPeer() ? "closed" : "open"
            }
            #expect(bytes == "closed")
            // Read the raw stream once more to count status lines.
            let raw = try await offPool { () -> String in
                let connection = try Connection(port: port, timeout: 3)
                try connection.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n")
                return connection.readAll()
            }
            #expect(raw.components(separatedBy: "HTTP/1.1 413").count == 2)
        }
    }

    @Test func expectContinue() async throws {
        try await Self.run { port in
            let (interim, final) = try await offPool { () -> (RawResponse, RawResponse) in
                let connection = try Connection(port: port)
                try connection.send(
                    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
                let interim = try connection.readResponse()
                try connection.send("hello")
                return (interim, try connection.readResponse())
            }
            #expect(interim.status == 100)
            #expect(final.status == 200)
            #expect(final.text == "hello")
            // Too large: refused before the body is sent, without a 100.
            let refused = try #require(
                try await Self.exchange(
                    port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n"))
            #expect(refused.status == 413)
            // No body at all.
            let empty = try #require(
                try await Self.exchange(
                    port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"))
            #expect(empty.status == 200 || empty.status == 100)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await Self.run { port in
            let responses = try await offPool { () -> [RawResponse] in
                let connection = try Connection(port: port)
                try connection.send(
                    "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                        + "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                        + "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                        + "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return try (0..<4).map { _ in try connection.readResponse() }
            }
            #expect(responses.map(\.status) == [200, 200, 200, 404])
            #expect(responses.map(\.text).prefix(3) == ["hello", "abc", "slow"])
        }
    }

    @Test func idleAndSlowClientsAreClosedWhileOthersAreServed() async throws {
        try await Self.run { port in
            // One byte, then silence: the 1 s idle timeout closes it.
            let idle = try await offPool { () -> Connection in
                let connection = try Connection(port: port, timeout: 5)
                try connection.send("G")
                return connection
            }
            // Others are served normally meanwhile.
            for _ in 0..<5 { try await Self.stillServes(port) }
            let start = ContinuousClock.now
            let closed = try await offPool { idle.isClosedByPeer() }
            #expect(closed)
            #expect(ContinuousClock.now - start < .seconds(4))
        }
    }

    @Test func slowlorisDribblingHeadersIsCutOffByTheHeaderDeadline() async throws {
        var limits = Self.limits
        limits.connectionTimeout = .seconds(5)
        limits.requestHeaderTimeout = .seconds(1)
        try await withServer(Self.router(), limits: limits) { port async throws in
            let dribbler = Task {
                try await offPool { () -> Bool in
                    let connection = try Connection(port: port, timeout: 10)
                    // One byte every 200 ms: never idle long enough for the idle timeout.
                    for byte in Array("GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ".utf8) + Array(repeating: UInt8(97), count: 200) {
                        do { try connection.send([byte]) } catch { return true }
                        usleep(200_000)
                    }
                    return false
                }
            }
            for _ in 0..<5 { try await Self.stillServes(port) }
            // Dribbling all 240 bytes would take 48 s, and every gap is far below the idle
            // timeout: only the header deadline can end it early.
            let cut = try await dribbler.value
            #expect(cut)
            try await Self.stillServes(port)
        }
    }

    @Test func connectionFloodPastTheLimitIsHeldOffAndServiceRecovers() async throws {
        var limits = Self.limits
        limits.connectionTimeout = .seconds(10)
        limits.requestHeaderTimeout = .seconds(10)
        try await withServer(Self.router(), limits: limits) { port async throws in
            // Fill every slot (16) with keep-alive connections that stay open.
            let holders = try await offPool { () -> [Connection] in
                try (0..<16).map { _ in
                    let connection = try Connection(port: port, timeout: 5)
                    try connection.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                    _ = try connection.readResponse()
                    return connection
                }
            }
            // Past the limit a new client is not served...
            let blocked = try await offPool { () -> Bool in
                let connection = try Connection(port: port, timeout: 1)
                try connection.send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return (try? connection.readResponse()) == nil
            }
            #expect(blocked)
            // ...and once the flood goes away, service recovers at once.
            for connection in holders { connection.close() }
            try await waitUntil { (try? await request(port, "GET", "/hello").status) == 200 }
            try await Self.stillServes(port)
        }
    }

    @Test func disconnectDuringAsyncHandlerLeavesNothingInFlight() async throws {
        let server = HTTPServer(
            config: ServerConfig(name: "t", port: 0, limits: Self.limits), router: Self.router(), logger: quietLogger)
        try await withRunning(server) { port async throws in
            for _ in 0..<10 {
                let connection = try await offPool { () -> Connection in
                    let connection = try Connection(port: port)
                    try connection.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
                    return connection
                }
                connection.close()
            }
            try await waitUntil { server.stats.inFlight == 0 }
            #expect(server.stats.inFlight == 0)
            try await Self.stillServes(port)
        }
    }
}
