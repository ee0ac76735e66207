import Foundation
import Glibc
@testable import MHDServers
import MHDServersTesting
import ServiceLifecycle
import Testing

/// Streamed response bodies on real sockets: chunked framing, declared lengths, back-pressure
/// against a client that does not read, hang-ups, errors, HEAD, and the drain.
@Suite("Streaming responses", .timeLimit(.minutes(2)))
struct StreamingResponseTests {
    static func server(_ router: Router, shutdownTimeout: Duration = .seconds(10)) -> HTTPServer {
        HTTPServer(
            config: ServerConfig(name: "stream", port: 0), router: router, logger: quietLogger,
            shutdownTimeout: shutdownTimeout)
    }

    /// Nothing in flight, no request context alive, no stream open.
    static func settled(_ server: HTTPServer) -> Bool {
        server.stats.inFlight == 0 && server.stats.liveContexts.load(ordering: .relaxed) == 0
    }

    @Test func aStreamIsSentChunkedAsItIsWritten() async throws {
        var router = Router()
        router.get("/lines") { _ in
            Response(status: .ok, headers: [.contentType: "text/plain"]) { writer in
                for n in 1...2_000 { try await writer.write("line \(n)\n") }
            }
        }
        let server = Self.server(router)
        try await withRunning(server) { port in
            let response = try await request(port, "GET", "/lines")
            #expect(response.status == 200)
            #expect(response.header("Transfer-Encoding") == "chunked")
            #expect(response.header("Content-Length") == nil)
            #expect(response.header("Content-Type") == "text/plain")
            let expected = (1...2_000).map { "line \($0)\n" }.joined()
            #expect(response.text == expected)
            try await waitUntil("the stream to end") { Self.settled(server) }
        }
    }

    /// The writer pauses (the connection is suspended with nothing to send) and goes on: the
    /// client gets every piece, and keep-alive survives for the next request.
    @Test func aWriterThatPausesResumesTheConnection() async throws {
        var router = Router()
        router.get("/ticks") { _ in
            Response { writer in
                for n in 0..<5 {
                    try await Task.sleep(for: .milliseconds(30))
                    try await writer.write("tick \(n)\n")
                }
            }
        }
        router.get("/after") { _ in .text("after") }
        try await withServer(router) { port in
            try await offPool {
                let connection = try Connection(port: port)
                try connection.send("GET /ticks HTTP/1.1\r\nHost: t\r\n\r\n")
                let ticks = try connection.readResponse()
                #expect(ticks.text == (0..<5).map { "tick \($0)\n" }.joined())
                try connection.send("GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try connection.readResponse().text == "after")
            }
        }
    }

    @Test func aDeclaredLengthIsSentAsContentLengthAndEnforced() async throws {
        var router = Router()
        router.get("/exact") { _ in
            Response(contentLength: 10) { writer in
                try await writer.write("01234")
                try await writer.write("56789")
            }
        }
        let overrun = Shared<String?>(nil)
        router.get("/long") { _ in
            Response(contentLength: 4) { writer in
                do { try await writer.write("too long") } catch { overrun.value = "\(error)" }
                try await writer.write("fits")
            }
        }
        router.get("/short") { _ in
            Response(contentLength: 100) { writer in try await writer.write("only this") }
        }
        try await withServer(router) { port in
            let exact = try await request(port, "GET", "/exact")
            #expect(exact.header("Content-Length") == "10" && exact.header("Transfer-Encoding") == nil)
            #expect(exact.text == "0123456789")
            let long = try await request(port, "GET", "/long")
            #expect(long.text == "fits")
            #expect(overrun.value?.contains("Content-Length") == true)
            // Fewer bytes than declared: the connection closes, so the client cannot take the
            // partial body for a whole one.
            await #expect(throws: (any Error).self) { try await request(port, "GET", "/short") }
        }
    }

    /// A writer that throws ends the body with an error: the chunked body never gets its final
    /// chunk, the connection closes, and the server keeps serving.
    @Test func aFailingWriterCutsTheBodyOff() async throws {
        struct Broken: Error {}
        var router = Router()
        router.get("/broken") { _ in
            Response { writer in
                try await writer.write("partial")
                throw Broken()
            }
        }
        router.get("/ok") { _ in .text("ok") }
        let server = Self.server(router)
        try await withRunning(server) { port in
            let outcome = try await offPool { () -> (String, Bool) in
                let connection = try Connection(port: port, timeout: 5)
                try connection.send("GET /broken HTTP/1.1\r\nHost: t\r\n\r\n")
                let all = connection.readAll()
                return (all, all.hasSuffix("\r\n0\r\n\r\n"))
            }
            #expect(outcome.0.contains("200 OK") && outcome.0.contains("partial"))
            #expect(!outcome.1, "a failed stream must not look complete")
            #expect(try await request(port, "GET", "/ok").text == "ok")
            try await waitUntil("the failed stream to end") { Self.settled(server) }
        }
    }

    /// A client that stops reading: the writer is held back, so the server buffers a bounded
    /// amount (the stream's buffer plus socket buffers), not the 1 GiB it would produce.
    @Test func aClientThatDoesNotReadHoldsTheWriterBack() async throws {
        let written = Shared(0)
        let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
        let total = 1 << 30
        var router = Router()
        router.get("/big") { _ in
            Response(bufferSize: 256 * 1024) { writer in
                var sent = 0
                while sent < total {
                    try await writer.write(chunk)
                    sent += chunk.count
                    written.value = sent
                }
            }
        }
        let server = Self.server(router)
        try await withRunning(server) { port in
            var connection: Connection? = try Connection(port: port, timeout: 10)
            var small: Int32 = 64 * 1024
            setsockopt(connection!.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            try connection!.send("GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            // Let the writer run until it is blocked.
            try await waitUntil("the writer to start") { written.value > 0 }
            var previous = -1
            while written.value != previous {
                previous = written.value
                try await Task.sleep(for: .milliseconds(200))
            }
            let bound = 32 << 20
            #expect(written.value < bound, "the writer got \(written.value) bytes ahead of a client that reads nothing")
            // The client goes away (closing with unread data resets the connection): the writer
            // is cancelled and everything is released.
            connection = nil
            try await waitUntil("the abandoned stream to end") { Self.settled(server) }
        }
    }

    /// A 1 GiB download streamed to curl with the server's memory bounded (the test process is
    /// the server; its RSS is sampled throughout).
    @Test func aGigabyteDownloadKeepsMemoryBounded() async throws {
        let piece = [UInt8](repeating: 0x6D, count: 64 * 1024)
        var router = Router()
        router.get("/gigabyte") { _ in
            Response(status: .ok) { writer in
                for _ in 0..<(Sanitizers.transferSize(1 << 30) / piece.count) { try await writer.write(piece) }
            }
        }
        let server = Self.server(router)
        try await withRunning(server) { port in
            let ((_, size), before, peak) = try await ResidentMemory.peak {
                try await runCommandOnThread([
                    "curl", "-sS", "--max-time", "120", "-o", "/dev/null", "-w", "%{size_download}",
                    "http://127.0.0.1:\(port)/gigabyte",
                ])
            }
            #expect(size == "\(Sanitizers.transferSize(1 << 30))")
            let growth = (peak - before) * 1024
            if !Sanitizers.active { #expect(growth < 64 << 20, "RSS grew by \(growth) bytes during a 1 GiB download") }
            try await waitUntil("the stream to end") { Self.settled(server) }
        }
    }


    /// A client that hangs up while the writer waits for data of its own (the connection is
    /// suspended): the writer's task is cancelled, and the request ends.
    @Test func aClientThatHangsUpCancelsTheWriter() async throws {
        let cancelled = Gate()
        let started = Gate()
        var router = Router()
        router.get("/forever") { _ in
            Response { writer in
                try await writer.write("first\n")
                started.open()
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    cancelled.open()
                    throw error
                }
            }
        }
        let server = Self.server(router)
        try await withRunning(server) { port in
            let connection = try Connection(port: port, timeout: 5)
            try connection.send("GET /forever HTTP/1.1\r\nHost: t\r\n\r\n")
            try await started.wait("the writer to start", timeout: .seconds(5))
            #expect(server.stats.inFlight == 1)
            connection.close()
            try await cancelled.wait("the writer to be cancelled", timeout: .seconds(5))
            try await waitUntil("the request to end") { Self.settled(server) }
        }
    }

    /// HEAD gets the header block only, without the framing fields a GET answer's body decides
    /// (RFC 9110 §9.3.2 allows leaving them out), and the writer never runs.
    @Test func headGetsNoBodyAndStopsTheWriter() async throws {
        var router = Router()
        router.get("/stream") { _ in
            Response { writer in
                for _ in 0..<1_000 { try await writer.write([UInt8](repeating: 0x62, count: 65536)) }
            }
        }
        let server = Self.server(router)
        try await withRunning(server) { port in
            try await offPool {
                let connection = try Connection(port: port)
                try connection.send("HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n")
                let head = try connection.readResponse(head: true)
                #expect(head.status == 200)
                #expect(head.header("Transfer-Encoding") == nil && head.header("Content-Length") == nil)
                #expect(connection.unreadBytes().isEmpty, "no body, not even a last chunk, after a HEAD answer")
            }
            try await waitUntil("the HEAD request to end") { Self.settled(server) }
        }
    }

    /// At the drain: a download runs on to the deadline and completes; an endless stream is cut
    /// off at the deadline; a stream that ends at the drain ends cleanly at once.
    @Test func theDrainGivesStreamsTheDeadlineOrEndsThemCleanly() async throws {
        let chunksSent = Counter()
        var router = Router()
        router.get("/download") { _ in
            Response { writer in
                for n in 0..<6 {
                    try await Task.sleep(for: .milliseconds(50))
                    try await writer.write("part \(n)\n")
                    chunksSent.increment()
                }
            }
        }
        router.get("/endless") { _ in
            Response { writer in
                while true {
                    try await writer.write("tick\n")
                    chunksSent.increment()
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        router.get("/events") { _ in
            Response(endsAtDrain: true) { writer in
                while true {
                    try await writer.write("event\n")
                    chunksSent.increment()
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        let server = Self.server(router, shutdownTimeout: .seconds(3))
        let group = ServiceGroup(services: [server], logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.listeningAddress().port
            // A complete body is read to its last chunk (the connection may stay open for the
            // next request); the endless one is read until the server closes it.
            let reads = ["/download", "/endless", "/events"].map { path in
                Task { () -> (String, ContinuousClock.Instant) in
                    let text = try await offPool { () -> String in
                        let connection = try Connection(port: port, timeout: 10)
                        try connection.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\r\n")
                        if path == "/endless" { return connection.readAll() }
                        return (try? connection.readResponse().text).map { $0 + "<complete>" } ?? "<cut off>"
                    }
                    return (text, .now)
                }
            }
            try await chunksSent.wait(for: 3, "every stream to start")
            let signalled = ContinuousClock.now
            await group.triggerGracefulShutdown()
            let (download, _) = try await reads[0].value
            let (endless, endlessEnd) = try await reads[1].value
            let (events, eventsEnd) = try await reads[2].value
            try await tasks.waitForAll()
            #expect(download == (0..<6).map { "part \($0)\n" }.joined() + "<complete>", "the download completes")
            #expect(!endless.hasSuffix("\r\n0\r\n\r\n"), "an endless stream is cut off at the deadline")
            #expect(endlessEnd - signalled >= .seconds(2.8))
            #expect(events.hasPrefix("event\n") && events.hasSuffix("<complete>"), "a stream that ends at the drain ends cleanly")
            // It completed (not cut off), and before the endless one was cut at the deadline.
            #expect(eventsEnd < endlessEnd, "before the 3 s deadline")
            #expect(Self.settled(server))
        }
    }

    @Test func inProcessTestsCollectTheStream() async throws {
        var router = Router()
        router.get("/s") { _ in
            Response(chunks: AsyncStream { continuation in
                for part in ["a", "b", "c"] { continuation.yield(Array(part.utf8)) }
                continuation.finish()
            })
        }
        try await router.test(.inProcess) { client async throws in
            #expect(try await client.execute(.get, "/s").text == "abc")
        }
        try await router.test(.live) { client async throws in
            #expect(try await client.execute(.get, "/s").text == "abc")
        }
    }
}
