import Foundation
@testable import MHDServers
import Testing

/// Request bodies received as a stream on real sockets: order and size, back-pressure, limits,
/// early answers, hang-ups.
@Suite("Streaming request bodies", .timeLimit(.minutes(3)))
struct StreamingRequestTests {
    static func server(_ router: Router, maxBodySize: Int = 4096) -> HTTPServer {
        HTTPServer(
            config: ServerConfig(name: "upload", port: 0, limits: .init(maxBodySize: maxBodySize)), router: router,
            logger: quietLogger)
    }

    static func settled(_ server: HTTPServer) -> Bool {
        server.stats.inFlight == 0 && server.stats.liveContexts.load(ordering: .relaxed) == 0
    }

    /// Counts the bytes and checks a running checksum of a pattern the client sends.
    static func countingRouter(limit: Int, received: Shared<Int> = Shared(0)) -> Router {
        var router = Router()
        router.post("/upload", streamingBodyUpTo: limit) { request in
            var count = 0
            var sum: UInt64 = 0
            for try await chunk in request.bodyStream {
                for byte in chunk { sum = sum &+ UInt64(byte) }
                count += chunk.count
                received.value = count
            }
            return .json(raw: #"{"bytes":\#(count),"sum":\#(sum)}"#)
        }
        router.post("/small") { request in .text("\(request.body.count)") }
        return router
    }

    /// Runs curl with `arguments`; returns its exit status and output (errors included).
    static func curl(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await runCommandOnThread(["curl", "-sS", "--max-time", "120"] + arguments, mergingErrors: true)
    }

    @Test func aBodyLargerThanMaxBodySizeArrivesInOrder() async throws {
        let server = Self.server(Self.countingRouter(limit: 64 << 20))
        try await withRunning(server) { port in
            // 5 MB of a known pattern, with Content-Length and chunked.
            let body = (0..<5_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let sum = body.reduce(UInt64(0)) { $0 &+ UInt64($1) }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("upload-\(UUID().uuidString)")
            try Data(body).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let url = "http://127.0.0.1:\(port)/upload"
            let sized = try await Self.curl(["--data-binary", "@\(file.path)", url])
            #expect(sized.1 == #"{"bytes":5000000,"sum":\#(sum)}"#)
            let chunked = try await Self.curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file.path)", url])
            #expect(chunked.1 == #"{"bytes":5000000,"sum":\#(sum)}"#)
            // Other routes keep the buffered body and its limit.
            let refused = try await request(port, "POST", "/small", body: String(repeating: "x", count: 5000))
            #expect(refused.status == 413)
            try await waitUntil("uploads to end") { Self.settled(server) }
        }
    }

    /// A 1 GiB upload with bounded memory: the server holds the stream's buffer plus socket
    /// buffers, not the body (the test process is the server; its RSS is sampled throughout).
    @Test func aGigabyteUploadKeepsMemoryBounded() async throws {
        var router = Router()
        router.post("/upload", streamingBodyUpTo: 2 << 30) { request in
            var count = 0
            var zeros = true
            for try await chunk in request.bodyStream {
                count += chunk.count
                zeros = zeros && chunk.first == 0 && chunk.last == 0
            }
            return .json(raw: #"{"bytes":\#(count),"zeros":\#(zeros)}"#)
        }
        let server = Self.server(router)
        try await withRunning(server) { port in
            let started = ContinuousClock.now
            let ((status, output), before, peak) = try await ResidentMemory.peak {
                try await runCommandOnThread([
                    "sh", "-c",
                    "head -c \(Sanitizers.transferSize(1 << 30)) /dev/zero | curl -sS --max-time 120 -X POST -T - http://127.0.0.1:\(port)/upload",
                ], mergingErrors: true)
            }
            let growth = (peak - before) * 1024
            print("1 GiB upload: \(ContinuousClock.now - started), RSS growth \(growth / 1_048_576) MiB")
            #expect(status == 0)
            #expect(output == #"{"bytes":\#(Sanitizers.transferSize(1 << 30)),"zeros":true}"#)
            if !Sanitizers.active { #expect(growth < 64 << 20, "RSS grew by \(growth) bytes during a 1 GiB upload") }
        }
    }

    /// A handler that is not reading holds the client back: the connection is suspended, so the
    /// client can send only what the buffers take.
    @Test func aHandlerThatIsBehindHoldsTheClientBack() async throws {
        let go = Gate()
        let received = Shared(0)
        var router = Router()
        router.post("/slow", streamingBodyUpTo: 1 << 30) { request in
            try await go.wait("the test to let the handler read")
            var count = 0
            for try await chunk in request.bodyStream { count += chunk.count; received.value = count }
            return .text("\(count)")
        }
        let server = Self.server(router)
        try await withRunning(server) { port in
            let total = 64 << 20
            let sent = Shared(0)
            let connection = try Connection(port: port, timeout: 30)
            let client = Task {
                try await offPool { () -> RawResponse in
                    try connection.send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: \(total)\r\n\r\n")
                    let piece = [UInt8](repeating: 0x7A, count: 64 * 1024)
                    while sent.value < total {
                        try connection.send(piece)
                        sent.value += piece.count
                    }
                    return try connection.readResponse()
                }
            }
            // Let the client send until it is blocked.
            try await waitUntil("the client to start sending") { sent.value > 0 }
            var previous = -1
            while sent.value != previous {
                previous = sent.value
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(sent.value < 24 << 20, "the client sent \(sent.value) bytes to a handler that reads nothing")
            go.open()
            let response = try await client.value
            #expect(response.text == "\(total)")
            try await waitUntil("the upload to end") { Self.settled(server) }
        }
    }

    @Test func theRouteLimitIsEnforcedBothWays() async throws {
        let server = Self.server(Self.countingRouter(limit: 100_000))
        try await withRunning(server) { port in
            // Declared too large: 413 at once, before any body is sent.
            let declared = try await offPool { () -> RawResponse in
                let connection = try Connection(port: port)
                try connection.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100001\r\n\r\n")
                return try connection.readResponse()
            }
            #expect(declared.status == 413)
            // Chunked and growing past the limit: the stream throws 413, answered after the body.
            let directory = FileManager.default.temporaryDirectory
            let over = directory.appendingPathComponent("over-\(UUID().uuidString)")
            let exactly = directory.appendingPathComponent("exact-\(UUID().uuidString)")
            try Data(repeating: 0x79, count: 150_000).write(to: over)
            try Data(repeating: 0x79, count: 100_000).write(to: exactly)
            defer {
                try? FileManager.default.removeItem(at: over)
                try? FileManager.default.removeItem(at: exactly)
            }
            let chunked = try await Self.curl([
                "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(over.path)", "http://127.0.0.1:\(port)/upload",
            ])
            #expect(chunked.1.contains(#""status":413"#))
            // At the limit exactly: fine.
            let exact = try await Self.curl(["--data-binary", "@\(exactly.path)", "http://127.0.0.1:\(port)/upload"])
            #expect(exact.1.hasPrefix(#"{"bytes":100000,"#))
            try await waitUntil("uploads to end") { Self.settled(server) }
        }
    }

    /// A handler that answers without reading: the rest of the body is read and dropped, the
    /// answer sent, and the connection stays usable.
    @Test func anEarlyAnswerIsSentAfterTheBodyIsDropped() async throws {
        var router = Router()
        router.put("/reject", streamingBodyUpTo: 1 << 30) { _ in
            Response.error(.forbidden, message: "not you")
        }
        router.get("/next") { _ in .text("next") }
        let server = Self.server(router)
        try await withRunning(server) { port in
            try await offPool {
                let connection = try Connection(port: port)
                let body = String(repeating: "q", count: 3_000_000)
                try connection.send("PUT /reject HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
                let answer = try connection.readResponse()
                #expect(answer.status == 403)
                try connection.send("GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try connection.readResponse().text == "next")
            }
            try await waitUntil("the requests to end") { Self.settled(server) }
        }
    }

    /// The client hangs up in the middle of its body while the handler waits for more: the
    /// stream throws, and the request ends.
    @Test func aClientThatHangsUpMidBodyEndsTheStream() async throws {
        let failed = Gate()
        let reading = Gate()
        var router = Router()
        router.post("/upload", streamingBodyUpTo: 1 << 30) { request in
            do {
                for try await _ in request.bodyStream { reading.open() }
            } catch {
                failed.open()
                throw error
            }
            return .text("complete?")
        }
        let server = Self.server(router)
        try await withRunning(server) { port in
            let connection = try Connection(port: port)
            try connection.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n" + String(repeating: "a", count: 1000))
            try await reading.wait("the handler to read")
            connection.close()
            try await failed.wait("the stream to throw")
            try await waitUntil("the request to end") { Self.settled(server) }
        }
    }

    @Test func bufferedRoutesOfferTheirBodyAsAStreamToo() async throws {
        var router = Router()
        router.post("/echo") { request in
            Response(status: .ok, body: try await request.bodyStream.collect(upTo: 1 << 20))
        }
        try await router.test(.live) { client async throws in
            #expect(try await client.execute(.post, "/echo", body: "hello").text == "hello")
        }
        try await router.test(.inProcess) { client async throws in
            #expect(try await client.execute(.post, "/echo", body: "hello").text == "hello")
        }
    }

}
