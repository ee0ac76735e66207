import Glibc
import MHDServers
import Testing

/// Raw-socket abuse. After every case the server must still answer a normal request.
@Suite("Hostile clients", .timeLimit(.minutes(2)))
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

    /// What the server did with one hostile request.
    struct Outcome: Sendable {
        /// The one response it sent.
        var response: RawResponse
        /// What followed the response: the server closed the connection, or kept it open.
        var then: Connection.Ending

        var status: Int { response.status }
        var closed: Bool { then == .closed }
    }

    /// Sends `bytes` on a fresh connection, reads the one response the server must send (a
    /// server that hangs up or stays silent fails the test), then what follows it: nothing more,
    /// then either the close or silence. A reset while sending is fine: the answer may be there.
    static func exchange(_ port: Int, _ bytes: [UInt8], readTimeout: Double = 3) async throws -> Outcome {
        try await offPool {
            let connection = try Connection(port: port, timeout: readTimeout)
            try? connection.send(bytes)
            let response = try connection.readResponse()
            var then = connection.ending()
            // A second response (or stray bytes) after the first is a framing error of its own.
            if !connection.unreadBytes(wait: .zero).isEmpty { then = .timedOut }
            return Outcome(response: response, then: then)
        }
    }

    static func exchange(_ port: Int, _ text: String, readTimeout: Double = 3) async throws -> Outcome {
        try await exchange(port, Array(text.utf8), readTimeout: readTimeout)
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
        ("GET /hello HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400),
        ("GET /hello HTTP/9.9\r\nHost: t\r\n\r\n", 505),
        ("GET /hello HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
    ])
    func malformedRequestLinesAndHeadersAreRefusedAndClosed(_ text: String, _ status: Int) async throws {
        try await Self.run { port in
            let outcome = try await Self.exchange(port, text)
            #expect(outcome.status == status)
            #expect(outcome.closed)
        }
    }

    /// A request line without spaces: the engine drops the connection before any callback runs.
    /// Issue #10 (RFC 9112 conformance) makes this a 400; until then it is a known issue, and
    /// this test fails as soon as it is fixed so the expectation can be made plain.
    @Test(arguments: ["GARBAGE\r\n\r\n", "GET\r\n\r\n"])
    func requestLineWithoutSpacesIs400AndClose(_ text: String) async throws {
        try await Self.run { port in
            await withKnownIssue("engine closes without an answer (issue #10)") {
                let outcome = try await Self.exchange(port, text)
                #expect(outcome.status == 400)
                #expect(outcome.closed)
            }
        }
    }

    @Test func unknownMethodIs405WithAllow() async throws {
        try await Self.run { port in
            let outcome = try await Self.exchange(port, "BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n", readTimeout: 0.5)
            #expect(outcome.status == 405)
            #expect(outcome.response.header("Allow") == "GET, HEAD")
            // A well-formed request for a method nobody routes: the connection stays usable.
            #expect(outcome.then == .timedOut)
        }
    }

    @Test func http09AndHttp2PrefacesAreRefused() async throws {
        try await Self.run { port in
            let old = try await Self.exchange(port, "GET /hello\r\n\r\n")
            #expect(old.status == 400)
            #expect(old.closed)
            let h2 = try await Self.exchange(port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            #expect(h2.status == 505)
            #expect(h2.closed)
        }
    }

    @Test func hugeUrlIs414AndHugeHeaderIs431() async throws {
        try await Self.run { port in
            let url = try await Self.exchange(
                port, "GET /" + String(repeating: "a", count: 70_000) + " HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(url.status == 414)
            #expect(url.closed)
            let header = try await Self.exchange(
                port, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + String(repeating: "b", count: 70_000) + "\r\n\r\n")
            #expect(header.status == 431)
            #expect(header.closed)
        }
    }

    @Test func nulBytesInThePathAreRejected() async throws {
        try await Self.run { port in
            let encoded = try await Self.exchange(port, "GET /hello%00.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(encoded.status == 400)
            #expect(encoded.closed)
            let raw = try await Self.exchange(port, Array("GET /hel".utf8) + [0] + Array("lo HTTP/1.1\r\nHost: t\r\n\r\n".utf8))
            #expect(raw.status == 400)
            #expect(raw.closed)
        }
    }

    @Test func bareLineFeedsAreHandled() async throws {
        try await Self.run { port in
            // RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator; the engine does.
            let outcome = try await Self.exchange(port, "GET /hello HTTP/1.1\nHost: t\nConnection: close\n\n")
            #expect(outcome.status == 200)
            #expect(outcome.response.text == "hello")
            #expect(outcome.closed)
        }
    }

    @Test(arguments: [
        ("zz\r\nhello\r\n0\r\n\r\n", 400),
        ("FFFFFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", 413),
        ("-5\r\nhello\r\n0\r\n\r\n", 400),
    ])
    func brokenChunkedBodiesAreRejectedAndClosed(_ body: String, _ status: Int) async throws {
        try await Self.run { port in
            let outcome = try await Self.exchange(
                port, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
            #expect(outcome.status == status, "\(body)")
            #expect(outcome.closed)
        }
    }

    @Test func chunkExtensionsAndTrailersAreAccepted() async throws {
        try await Self.run { port in
            let outcome = try await Self.exchange(
                port,
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    + "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n")
            #expect(outcome.status == 200)
            #expect(outcome.response.text == "hello world")
        }
    }

    @Test func smugglingShapedRequestsAreRefusedAndClosed() async throws {
        try await Self.run { port in
            let cases: [(String, Int)] = [
                ("Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
                ("Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
                ("Content-Length: 5, 5\r\n\r\nhello", 400),
                ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
                ("Transfer-Encoding: chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
                ("Transfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
                ("Transfer-Encoding: chunked\u{0B}\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
                ("Transfer-Encoding: chun\u{01}ked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
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

    /// RFC 9112 rules libmicrohttpd 0.9.75 does not enforce: each is refused with 400 and the
    /// connection closed, with exactly one response.
    @Test(arguments: [
        ("HTTP/1.1 without Host", "GET /hello HTTP/1.1\r\n\r\n"),
        ("two Host fields", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("whitespace before the colon of Host", "GET /hello HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("whitespace before the colon of Content-Length", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello"),
        ("a bare CR inside a field name", "GET /hello HTTP/1.1\r\nHost: a\r\nX-A\rB: 1\r\n\r\n"),
        ("Transfer-Encoding folded onto a continuation line",
         "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("any folded field", "GET /hello HTTP/1.1\r\nHost: a\r\nX-Fold: one\r\n two\r\n\r\n"),
        ("a method that is not a token", "GE(T /hello HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("a method with a non-ASCII byte", "G\u{E9}T /hello HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("HTTP/1.0 with Transfer-Encoding, then a pipelined request",
         "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n"),
    ])
    func requestsRFC9112RejectsAre400AndClose(_ label: String, _ text: String) async throws {
        try await Self.run { port in
            let outcome = try await Self.exchange(port, text)
            #expect(outcome.status == 400, "\(label)")
            #expect(outcome.closed, "\(label): closed after exactly one response")
        }
    }

    /// libmicrohttpd 0.9.75 rejects an invalid `Content-Length` itself, before any callback of
    /// the layer, and sends its header block twice (it builds the header again after the state
    /// change that overwrites its error state); a 33 KB chunk extension gets its HTML 500. Both
    /// are written as the right expectation (issue #10) and fail the day they are fixed.
    @Test(arguments: [
        ("invalid Content-Length", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 400),
        ("Content-Length over 64 bits", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
        ("33 KB chunk extension",
         "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;" + String(repeating: "e", count: 33_000) + "\r\nhello\r\n0\r\n\r\n", 400),
    ])
    func engineAnswersOneWellFormedJSONError(_ label: String, _ text: String, _ status: Int) async throws {
        try await Self.run { port in
            let outcome = try await Self.exchange(port, text)
            withKnownIssue("the engine answers by itself (issue #10)") {
                #expect(outcome.status == status, "\(label)")
                #expect(outcome.response.header("Content-Type") == "application/json", "\(label)")
                #expect(outcome.closed && outcome.status == status, "\(label): one response, then the close")
            }
        }
    }

    @Test func hostRulesLeaveValidRequestsAlone() async throws {
        try await Self.run { port in
            // HTTP/1.0 needs no Host.
            let old = try await Self.exchange(port, "GET /hello HTTP/1.0\r\n\r\n")
            #expect(old.status == 200)
            #expect(old.response.text == "hello")
        }
    }

    @Test func absoluteFormTargetIsRoutedOnItsPath() async throws {
        var router = Self.router()
        router.get("/host") { request in .text(request.headers["Host"] ?? "none") }
        try await withServer(router, limits: Self.limits) { port async throws in
            let hello = try await Self.exchange(port, "GET http://example.com/hello HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
            #expect(hello.status == 200)
            #expect(hello.response.text == "hello")
            // The host comes from the target, not from the Host field (RFC 9112 §3.2.2).
            let host = try await Self.exchange(port, "GET HTTP://target.example:8080/host HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
            #expect(host.response.text == "target.example:8080")
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
            let refused = try await Self.exchange(
                port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n")
            #expect(refused.status == 413)
            #expect(refused.closed)
            // No body at all: an interim 100 is allowed (RFC 9110 §10.1.1), then the real answer.
            let empty = try await offPool { () -> [RawResponse] in
                let connection = try Connection(port: port, timeout: 3)
                try connection.send(
                    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
                var responses = [try connection.readResponse()]
                if responses[0].status == 100 { responses.append(try connection.readResponse()) }
                return responses
            }
            #expect(empty.last?.status == 200)
            #expect(empty.last?.body.isEmpty == true)
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
            let start = ContinuousClock.now
            let idle = try await offPool { () -> Connection in
                let connection = try Connection(port: port, timeout: 30)
                try connection.send("G")
                return connection
            }
            // Others are served normally meanwhile.
            for _ in 0..<5 { try await Self.stillServes(port) }
            let ending = try await offPool { idle.ending() }
            let elapsed = ContinuousClock.now - start
            #expect(ending == .closed)
            // Closed by the 1 s timeout: not before it, and long before the client's own 30 s.
            #expect(elapsed >= .milliseconds(900))
            #expect(elapsed < .seconds(10))
        }
    }

    @Test func slowlorisDribblingHeadersIsCutOffByTheHeaderDeadline() async throws {
        var limits = Self.limits
        limits.connectionTimeout = .seconds(5)
        limits.requestHeaderTimeout = .seconds(1)
        try await withServer(Self.router(), limits: limits) { port async throws in
            let dribbler = Task {
                try await offPool { () -> Duration? in
                    let start = ContinuousClock.now
                    let connection = try Connection(port: port, timeout: 60)
                    // One byte every 100 ms: never idle long enough for the 5 s idle timeout.
                    for byte in Array("GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ".utf8) + Array(repeating: UInt8(97), count: 400) {
                        do { try connection.send([byte]) } catch { return ContinuousClock.now - start }
                        if connection.unreadBytes(wait: .milliseconds(100)).count > 0 || connection.peerClosed() {
                            return ContinuousClock.now - start
                        }
                    }
                    return nil
                }
            }
            for _ in 0..<5 { try await Self.stillServes(port) }
            // Dribbling all 440 bytes would take 44 s, and every gap is far below the idle
            // timeout: only the 1 s header deadline (checked every 250 ms) can end it this early.
            let cut = try #require(try await dribbler.value, "the dribbling client was never cut off")
            #expect(cut >= .milliseconds(900))
            #expect(cut < .seconds(15))
            try await Self.stillServes(port)
        }
    }

    @Test func connectionFloodPastTheLimitWaitsInTheBacklogUntilASlotFrees() async throws {
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
            // Past the limit a new client is neither served nor refused: it waits in the
            // kernel's backlog (README: "more wait in the kernel's backlog until a slot frees").
            let waiting = try await offPool { () -> (Connection, [UInt8], Bool) in
                let connection = try Connection(port: port, timeout: 10)
                try connection.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                let early = connection.unreadBytes(wait: .seconds(1))
                return (connection, early, connection.peerClosed())
            }
            #expect(waiting.1.isEmpty, "answered while every slot was taken")
            #expect(!waiting.2, "closed instead of waiting")
            // One slot frees: the waiting client is served on the connection it already has.
            holders[0].close()
            let served = try await offPool { try waiting.0.readResponse() }
            #expect(served.status == 200)
            #expect(served.text == "hello")
            for connection in holders { connection.close() }
            try await Self.stillServes(port)
        }
    }

    @Test func disconnectDuringAsyncHandlerCancelsItAndLeavesNothingInFlight() async throws {
        let started = Counter()
        let cancelled = Counter()
        let never = Gate()
        var router = Self.router()
        router.get("/hang") { _ in
            started.increment()
            do { try await never.wait() } catch {
                cancelled.increment()
                throw error
            }
            return .text("late")
        }
        let server = HTTPServer(
            config: ServerConfig(name: "t", port: 0, limits: Self.limits), router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            for round in 1...10 {
                let connection = try await offPool { () -> Connection in
                    let connection = try Connection(port: port)
                    try connection.send("GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
                    return connection
                }
                try await started.wait(for: round, "handler \(round) to start")
                #expect(server.stats.inFlight == 1)
                connection.close()
                try await cancelled.wait(for: round, "handler \(round) to be cancelled")
                // The request ends once the engine has closed the connection after the handler.
                try await waitUntil("request \(round) to end") { server.stats.inFlight == 0 }
            }
            try await waitUntil("in-flight to return to 0") { server.stats.inFlight == 0 }
            let snapshot = server.stats.snapshot()
            #expect(snapshot.aborted == 10)
            #expect(snapshot.handlerErrors == 0)
            try await Self.stillServes(port)
        }
    }
}
