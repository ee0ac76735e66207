#if canImport(Glibc)
import Glibc
#endif
import InMemoryTracing
@testable import MHDServers
import Testing
import Tracing

struct Unexpected2: Error {}

@Suite("Tracing: one server span per request", .timeLimit(.minutes(2)))
struct TracingTests {
    static func router(_ tracer: InMemoryTracer) -> Router {
        var router = Router()
        router.add(middleware: TracingMiddleware(tracer: tracer))
        router.get("/users/:id") { request in
            // A span started by the handler is a child of the request's span.
            let child = tracer.startSpan("load user", context: ServiceContext.current ?? .topLevel)
            child.end()
            return .text(withUnsafeCurrentTask { $0 == nil } ? "inline" : "task")
        }
        router.get("/boom") { _ in throw Unexpected2() }
        router.get("/slow") { _ in
            await Task.yield()
            return .text("slow")
        }
        return router
    }

    @Test func spanPerRequestWithTheHTTPAttributesAndAChildForTheHandlersWork() async throws {
        let tracer = InMemoryTracer()
        try await withServer(Self.router(tracer)) { port in
            let reply = try await request(port, "GET", "/users/7")
            #expect(reply.status == 200)
            #expect(reply.text == "inline")  // tracing keeps inline handlers inline
            #expect(try await request(port, "GET", "/slow").text == "slow")
        }
        let spans = tracer.finishedSpans
        let server = try #require(spans.first { $0.operationName == "GET /users/:id" })
        #expect(server.kind == .server)
        #expect(server.attributes["http.request.method"]?.toSpanAttribute() == "GET")
        #expect(server.attributes["http.route"]?.toSpanAttribute() == "/users/:id")
        #expect(server.attributes["url.path"]?.toSpanAttribute() == "/users/7")
        #expect(server.attributes["http.response.status_code"]?.toSpanAttribute() == 200)
        #expect(server.attributes["network.protocol.version"]?.toSpanAttribute() == "1.1")
        #expect(server.status == nil && server.errors.isEmpty)
        let child = try #require(spans.first { $0.operationName == "load user" })
        #expect(child.traceID == server.traceID)
        #expect(child.parentSpanID == server.spanID)
        #expect(spans.contains { $0.operationName == "GET /slow" })
    }

    @Test func errorsAndServerStatusesMarkTheSpanAndUnmatchedRequestsAreTracedToo() async throws {
        let tracer = InMemoryTracer()
        let server = HTTPServer(config: ServerConfig(name: "t", port: 0), router: Self.router(tracer), logger: quietLogger)
        try await withRunning(server) { port async throws in
            #expect(try await request(port, "GET", "/boom").status == 500)
            #expect(try await request(port, "GET", "/missing").status == 404)
        }
        let boom = try #require(tracer.finishedSpans.first { $0.operationName == "GET /boom" })
        #expect(boom.status?.code == .error)
        #expect(boom.errors.count == 1 && boom.errors.first?.error is Unexpected2)
        #expect(boom.attributes["http.response.status_code"]?.toSpanAttribute() == 500)
        let missing = try #require(tracer.finishedSpans.first { $0.operationName == "GET" })
        #expect(missing.attributes["http.response.status_code"]?.toSpanAttribute() == 404)
        #expect(missing.attributes["http.route"] == nil)
        #expect(missing.status == nil)
    }

    @Test func theCallersTraceContextIsExtractedByTheTracersPropagation() async throws {
        let tracer = InMemoryTracer(recordExtractions: true)
        try await withServer(Self.router(tracer)) { port in
            _ = try await request(port, "GET", "/users/1", headers: [
                InMemoryTracer.traceIDKey: "trace-from-caller", InMemoryTracer.spanIDKey: "span-from-caller",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ])
        }
        let span = try #require(tracer.finishedSpans.first { $0.operationName == "GET /users/:id" })
        #expect(span.traceID == "trace-from-caller")
        #expect(span.parentSpanID == "span-from-caller")
        // Every header is readable by a propagator (W3C's reads `traceparent`), whatever its case.
        let carrier = try #require(tracer.performedContextExtractions.first?.carrier as? HTTPHeaders)
        #expect(HeaderExtractor().extract(key: "traceparent", from: carrier) == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        #expect(HeaderExtractor().extract(key: "TraceParent", from: carrier) != nil)
    }

    /// A bootstrapped tracer is used by every server without any code, and only then; a
    /// process of its own, since bootstrapping is once per process.
    @Test func serversTraceByThemselvesWhenATracerIsBootstrapped() async {
        await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            var problems: [String] = []
            func expect(_ condition: Bool, _ what: String) { if !condition { problems.append(what) } }
            do {
                // Nothing bootstrapped: no middleware at all.
                expect(TracingMiddleware.bootstrapped() == nil, "no tracer, yet a tracing middleware")
                let tracer = InMemoryTracer()
                InstrumentationSystem.bootstrap(tracer)
                var router = Router()
                router.get("/hello") { _ in .text(withUnsafeCurrentTask { $0 == nil } ? "inline" : "task") }
                let traced = HTTPServer(config: ServerConfig(name: "traced", port: 0), router: router, logger: quietLogger)
                try await withRunning(traced) { port async throws in
                    expect(try await request(port, "GET", "/hello").text == "inline", "not inline with tracing")
                }
                expect(tracer.finishedSpans.map(\.operationName) == ["GET /hello"], "spans: \(tracer.finishedSpans.map(\.operationName))")
                var config = ServerConfig(name: "untraced", port: 0)
                config.tracesRequests = false
                let untraced = HTTPServer(config: config, router: router, logger: quietLogger)
                try await withRunning(untraced) { port in _ = try await request(port, "GET", "/hello") }
                expect(tracer.finishedSpans.count == 1, "tracesRequests = false still traced")
            } catch {
                problems.append("\(error)")
            }
            for problem in problems { FileDescriptorTests.report("tracing: \(problem)") }
            #expect(problems.isEmpty)
        }
    }
}
