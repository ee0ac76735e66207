import Foundation
@testable import MHDServers
import ServiceLifecycle
import Testing

/// Server-Sent Events: the wire format, heartbeats, `Last-Event-ID`, and the drain, with curl
/// as the client.
@Suite("Server-Sent Events", .timeLimit(.minutes(2)))
struct ServerSentEventsTests {
    @Test func eventsAreFramedAsTheStandardSays() {
        #expect(ServerSentEvent(data: "hello").encoded == "data: hello\n\n")
        #expect(
            ServerSentEvent(data: "a\nb\r\nc\rd", event: "update", id: "7", retry: .milliseconds(2500)).encoded
                == "event: update\nid: 7\nretry: 2500\ndata: a\ndata: b\ndata: c\ndata: d\n\n")
        // A line break in the type or the ID cannot end the field early or inject one.
        #expect(ServerSentEvent(data: "x", event: "a\nid: 9", id: "1\r\n2\u{0}").encoded == "event: a id: 9\nid: 1  2\ndata: x\n\n")
        #expect(ServerSentEvent(data: "").encoded == "data: \n\n")
    }

    /// Starts curl -N on `url`; returns its output once it exits. It waits on a thread of its
    /// own: a blocking wait on the shared pool would starve the server's tasks.
    static func curl(_ url: String, _ extra: [String] = []) -> Task<(Int32, String), any Error> {
        Task { try await runCommandOnThread(["curl", "-sS", "-N", "--max-time", "20"] + extra + [url]) }
    }

    @Test func curlReceivesEventsHeartbeatsAndTheLastEventID() async throws {
        var router = Router()
        router.get("/feed") { request in
            let after = request.lastEventID.flatMap { Int($0) } ?? 0
            return Response.events(heartbeat: .milliseconds(100), retry: .seconds(3)) { events in
                for n in (after + 1)...(after + 3) {
                    try await events.send(ServerSentEvent(data: "update \(n)\nsecond line", event: "tick", id: "\(n)"))
                }
                try await Task.sleep(for: .milliseconds(500))  // idle: heartbeats go out
                try await events.send(ServerSentEvent(data: "done"))
            }
        }
        try await withServer(router) { port in
            let headers = try await request(port, "GET", "/feed")
            #expect(headers.header("Content-Type") == "text/event-stream")
            #expect(headers.header("Cache-Control") == "no-store")
            #expect(headers.header("Transfer-Encoding") == "chunked")

            let (status, output) = try await Self.curl("http://127.0.0.1:\(port)/feed", ["-H", "Last-Event-ID: 41"]).value
            #expect(status == 0, "curl exits 0: the stream ended cleanly")
            let expected = (42...44).map { "event: tick\nid: \($0)\ndata: update \($0)\ndata: second line\n\n" }.joined()
            #expect(output.hasPrefix("retry: 3000\n\n" + expected))
            // The last event, then at most heartbeat comments (one may be on its way as the
            // events end): nothing a client would dispatch.
            let tail = output.components(separatedBy: "data: done\n\n")
            #expect(tail.count == 2 && tail[1].split(separator: "\n").allSatisfy { $0.hasPrefix(":") }, "\(output)")
            let heartbeats = output.components(separatedBy: ":\n\n").count - 1
            #expect(heartbeats >= 1, "heartbeats while idle: \(heartbeats)")
        }
    }

    /// The drain ends an event stream cleanly at once (curl exits 0 with the events so far),
    /// long before the drain deadline.
    @Test func theDrainEndsAnEventStreamCleanly() async throws {
        let sent = Counter()
        var router = Router()
        router.get("/endless") { _ in
            Response.events { events in
                var n = 0
                while true {
                    n += 1
                    try await events.send(ServerSentEvent(data: "\(n)", id: "\(n)"))
                    sent.increment()
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        let server = HTTPServer(
            config: ServerConfig(name: "sse", port: 0), router: router, logger: quietLogger, shutdownTimeout: .seconds(30))
        let group = ServiceGroup(services: [server], logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await server.listeningAddress().port
            let client = Self.curl("http://127.0.0.1:\(port)/endless")
            try await sent.wait(for: 5, "events to flow")
            let start = ContinuousClock.now
            await group.triggerGracefulShutdown()
            let (status, output) = try await client.value
            try await tasks.waitForAll()
            #expect(status == 0, "a clean end, not a cut-off connection")
            #expect(output.hasPrefix("data: 1\n\n") || output.hasPrefix("id: 1\ndata: 1\n\n"))
            #expect(ContinuousClock.now - start < .seconds(10), "ended at the drain, not at the 30 s deadline")
            #expect(server.stats.inFlight == 0)
        }
    }
}
