import Logging
@testable import MHDServers
import Testing

/// Appends its name to `X-Trace` on the way in (request) and on the way out (response).
struct Tag: InlineMiddleware {
    let name: String
    func prepare(_ request: inout Request) throws -> Response? {
        request.headers["X-Trace"] = (request.headers["X-Trace"].map { $0 + "," } ?? "") + "in:" + name
        return nil
    }
    func finish(_ response: inout Response, for request: Request) {
        response.headers["X-Trace"] = (response.headers["X-Trace"].map { $0 + "," } ?? "") + "out:" + name
    }
}

/// The same as an async middleware.
struct AsyncTag: Middleware {
    let name: String
    func handle(_ request: Request, next: Next) async throws -> Response {
        var request = request
        request.headers["X-Trace"] = (request.headers["X-Trace"].map { $0 + "," } ?? "") + "in:" + name
        await Task.yield()
        var response = await next(request)
        response.headers["X-Trace"] = (response.headers["X-Trace"].map { $0 + "," } ?? "") + "out:" + name
        return response
    }
}

struct Teapot: HTTPResponseError {
    var status: HTTPStatus { .init(code: 418) }
    var response: Response {
        var response = Response.error(status, message: "short and stout")
        response.headers["X-Teapot"] = "yes"
        return response
    }
}

struct Unexpected: Error {}

enum UserKey: RequestContextKey { typealias Value = String }

@Suite("Middleware over real HTTP", .timeLimit(.minutes(2)))
struct MiddlewareTests {
    @Test func orderIsOutsideInAndBackWithInlineAndAsyncMixed() async throws {
        var router = Router()
        router.add(middleware: Tag(name: "a"))
        router.get("/seen") { request in .text(request.headers["X-Trace"] ?? "") }
        router.add(middleware: AsyncTag(name: "b"))  // added after the route: still wraps it
        router.add(middleware: Tag(name: "c"))
        try await withServer(router) { port in
            let reply = try await request(port, "GET", "/seen")
            #expect(reply.text == "in:a,in:b,in:c")
            #expect(reply.header("X-Trace") == "out:c,out:b,out:a")
        }
    }

    @Test func inlineMiddlewareKeepsInlineHandlersInlineAndAnAsyncOneMovesThemToATask() async throws {
        var inline = Router()
        inline.add(middleware: Tag(name: "a"))
        inline.get("/where") { _ in .text(withUnsafeCurrentTask { $0 == nil } ? "inline" : "task") }
        var async = Router()
        async.add(middleware: AsyncTag(name: "a"))
        async.get("/where") { _ in .text(withUnsafeCurrentTask { $0 == nil } ? "inline" : "task") }
        try await withServer(inline) { port async throws in #expect(try await request(port, "GET", "/where").text == "inline") }
        try await withServer(async) { port async throws in #expect(try await request(port, "GET", "/where").text == "task") }
        // Without middleware, as before.
        var plain = Router()
        plain.get("/where") { _ in .text(withUnsafeCurrentTask { $0 == nil } ? "inline" : "task") }
        try await withServer(plain) { port async throws in #expect(try await request(port, "GET", "/where").text == "inline") }
    }

    @Test func shortCircuitSkipsTheHandlerAndInnerMiddlewareButOuterOnesStillFinish() async throws {
        struct Gate: InlineMiddleware {
            func prepare(_ request: inout Request) throws -> Response? {
                request.headers["X-Let-In"] == nil ? .error(.forbidden, message: "no") : nil
            }
        }
        let handlerRuns = Counter()
        var router = Router()
        router.add(middleware: Tag(name: "outer"))
        router.add(middleware: Gate())
        router.add(middleware: Tag(name: "inner"))
        router.get("/door") { _ in
            handlerRuns.increment()
            return .text("in")
        }
        try await withServer(router) { port in
            let refused = try await request(port, "GET", "/door")
            #expect(refused.status == 403)
            #expect(refused.header("X-Trace") == "out:outer")
            #expect(handlerRuns.count == 0)
            let admitted = try await request(port, "GET", "/door", headers: ["X-Let-In": "1"])
            #expect(admitted.text == "in")
            #expect(admitted.header("X-Trace") == "out:inner,out:outer")
            #expect(handlerRuns.count == 1)
        }
    }

    @Test func errorsAreMappedBeforeMiddlewareSeesThemWhereverThrown() async throws {
        struct Throws: Middleware {
            func handle(_ request: Request, next: Next) async throws -> Response {
                if request.path == "/middleware-throws" { throw Teapot() }
                return await next(request)
            }
        }
        var router = Router()
        router.add(middleware: Tag(name: "a"))
        router.add(middleware: Throws())
        router.get("/http-error") { _ in throw HTTPError(.conflict, message: "taken") }
        router.get("/own-error") { _ in throw Teapot() }
        router.get("/unexpected") { _ in throw Unexpected() }
        router.get("/async-unexpected") { _ in
            await Task.yield()
            throw Unexpected()
        }
        router.get("/middleware-throws") { _ in .text("never") }
        let server = HTTPServer(config: ServerConfig(name: "errors", port: 0), router: router, logger: quietLogger)
        try await withRunning(server) { port in
            let conflict = try await request(port, "GET", "/http-error")
            #expect(conflict.status == 409)
            #expect(conflict.text.contains("taken"))
            #expect(conflict.header("X-Trace") == "out:a")
            let teapot = try await request(port, "GET", "/own-error")
            #expect(teapot.status == 418)
            #expect(teapot.header("X-Teapot") == "yes")
            #expect(teapot.header("X-Trace") == "out:a")
            for path in ["/unexpected", "/async-unexpected"] {
                let failed = try await request(port, "GET", path)
                #expect(failed.status == 500)
                #expect(failed.text == #"{"error":{"status":500,"message":"Internal Server Error"}}"#)
                #expect(failed.header("X-Trace") == "out:a")
            }
            let thrownByMiddleware = try await request(port, "GET", "/middleware-throws")
            #expect(thrownByMiddleware.status == 418)
            #expect(thrownByMiddleware.header("X-Trace") == "out:a")
        }
        // Counted once each, where answered: the two unexpected errors (5xx); 409 and 418 are not failures.
        #expect(server.stats.snapshot().handlerErrors == 2)
    }

    @Test func notFoundAndMethodNotAllowedGoThroughTheRoutersMiddleware() async throws {
        var router = Router()
        router.add(middleware: Tag(name: "a"))
        router.post("/only-post") { _ in .text("posted") }
        try await withServer(router) { port in
            let missing = try await request(port, "GET", "/nope")
            #expect(missing.status == 404)
            #expect(missing.header("X-Trace") == "out:a")
            let wrongMethod = try await request(port, "GET", "/only-post")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.header("Allow") == "POST")
            #expect(wrongMethod.header("X-Trace") == "out:a")
        }
    }

    @Test func groupMiddlewareWrapsOnlyTheGroupsRoutesInsideTheRouters() async throws {
        var router = Router()
        router.add(middleware: Tag(name: "router"))
        router.group("/admin", middleware: [Tag(name: "group")]) { admin in
            admin.get("/stats") { request in .text(request.headers["X-Trace"] ?? "") }
            admin.add(middleware: AsyncTag(name: "added-in-group"))
        }
        router.get("/public") { request in .text(request.headers["X-Trace"] ?? "") }
        var mounted = Router()
        mounted.add(middleware: Tag(name: "mounted"))
        mounted.get("/x") { request in .text(request.headers["X-Trace"] ?? "") }
        router.mount("/m", mounted)
        try await withServer(router) { port in
            let admin = try await request(port, "GET", "/admin/stats")
            #expect(admin.text == "in:router,in:group,in:added-in-group")
            #expect(admin.header("X-Trace") == "out:added-in-group,out:group,out:router")
            let open = try await request(port, "GET", "/public")
            #expect(open.text == "in:router")
            let viaMount = try await request(port, "GET", "/m/x")
            #expect(viaMount.text == "in:router,in:mounted")
        }
    }

    @Test func contextCarriesWhatMiddlewareLearnedAndTheRoutePattern() async throws {
        struct Authenticate: InlineMiddleware {
            func prepare(_ request: inout Request) throws -> Response? {
                guard let user = request.headers["X-User"] else { return .error(.unauthorized) }
                request.context[UserKey.self] = user
                request.context.identity = user
                request.context.logger[metadataKey: "user"] = "\(user)"
                return nil
            }
        }
        var router = Router()
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: Authenticate())
        router.get("/users/:id") { request in
            .text([
                request.context[UserKey.self] ?? "-", request.context.identity ?? "-",
                request.context.route ?? "-", request.context.requestID ?? "-",
                "\(request.context.logger[metadataKey: "request-id"] ?? "-")",
                "\(request.context.logger[metadataKey: "server"] ?? "-")",
                "\(request.context.logger[metadataKey: "user"] ?? "-")",
            ].joined(separator: "|"))
        }
        // A logger that keeps metadata (the no-op logger of the other tests drops it), silent.
        let logger = Logger(label: "test") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .critical
            return handler
        }
        let server = HTTPServer(config: ServerConfig(name: "test", port: 0), router: router, logger: logger)
        try await withRunning(server) { port in
            let reply = try await request(port, "GET", "/users/7", headers: ["X-User": "ada", "X-Request-Id": "abc-123"])
            #expect(reply.text == "ada|ada|/users/:id|abc-123|abc-123|test|ada")
            #expect(reply.header("X-Request-Id") == "abc-123")
        }
    }

    @Test func requestIDIsAcceptedWhenSaneGeneratedOtherwiseAndEchoedOnEveryAnswer() async throws {
        var router = Router()
        router.add(middleware: RequestIDMiddleware())
        router.get("/id") { request in .text(request.context.requestID ?? "") }
        try await withServer(router) { port in
            let kept = try await request(port, "GET", "/id", headers: ["X-Request-Id": "client-42"])
            #expect(kept.text == "client-42" && kept.header("X-Request-Id") == "client-42")
            let generated = try await request(port, "GET", "/id")
            let id = try #require(generated.header("X-Request-Id"))
            #expect(id.count == 32 && id.allSatisfy(\.isHexDigit) && generated.text == id)
            let another = try await request(port, "GET", "/id")
            #expect(another.header("X-Request-Id") != id)
            // Too long, or with spaces: replaced, never echoed.
            let insane = try await request(port, "GET", "/id", headers: ["X-Request-Id": String(repeating: "x", count: 129)])
            #expect(insane.header("X-Request-Id")?.count == 32)
            let spaced = try await request(port, "GET", "/id", headers: ["X-Request-Id": "a b"])
            #expect(spaced.header("X-Request-Id") != "a b")
            // A 404 carries it too.
            let missing = try await request(port, "GET", "/nope", headers: ["X-Request-Id": "lost-1"])
            #expect(missing.status == 404 && missing.header("X-Request-Id") == "lost-1")
        }
    }

    @Test func bearerTokenMiddlewareGuardsEveryAnswerAndNamesTheCaller() async throws {
        var router = Router()
        router.add(middleware: BearerTokenMiddleware(tokens: ["tok-ci": "ci", "tok-ops": "ops"], realm: "admin"))
        router.get("/whoami") { request in .text(request.context.identity ?? "") }
        try await withServer(router) { port in
            for headers in [[:], ["Authorization": "Bearer nope"], ["Authorization": "Basic tok-ci"], ["Authorization": "Bearer tok-c"]] {
                let denied = try await request(port, "GET", "/whoami", headers: headers)
                #expect(denied.status == 401)
                #expect(denied.header("WWW-Authenticate") == #"Bearer realm="admin""#)
                #expect(!denied.text.contains("tok-"))
            }
            #expect(try await request(port, "GET", "/nope").status == 401)  // routes are not revealed
            #expect(try await request(port, "GET", "/whoami", headers: ["Authorization": "Bearer tok-ci"]).text == "ci")
            #expect(try await request(port, "GET", "/whoami", headers: ["Authorization": "bearer tok-ops"]).text == "ops")
            #expect(try await request(port, "GET", "/nope", headers: ["Authorization": "Bearer tok-ops"]).status == 404)
        }
    }

    @Test func corsPreflightActualRequestsAndCredentials() async throws {
        var router = Router()
        router.add(middleware: CORSMiddleware(
            allowedOrigins: .list(["https://app.example.com"]), allowedHeaders: ["Content-Type", "X-Token"],
            exposedHeaders: ["X-Request-Id"], allowsCredentials: true, maxAge: .seconds(300)))
        router.get("/data") { _ in .text("data") }
        router.post("/data") { _ in .text("posted") }
        router.get("/fails") { _ in throw HTTPError(.badRequest) }
        try await withServer(router) { port in
            let preflight = try await request(port, "OPTIONS", "/data", headers: [
                "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-token",
            ])
            #expect(preflight.status == 204)
            #expect(preflight.header("Access-Control-Allow-Origin") == "https://app.example.com")
            #expect(preflight.header("Access-Control-Allow-Credentials") == "true")
            #expect(preflight.header("Access-Control-Allow-Methods")?.contains("POST") == true)
            #expect(preflight.header("Access-Control-Allow-Headers") == "Content-Type, X-Token")
            #expect(preflight.header("Access-Control-Max-Age") == "300")
            #expect(preflight.header("Vary")?.hasPrefix("Origin") == true)

            let otherOrigin = try await request(port, "OPTIONS", "/data", headers: [
                "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
            ])
            #expect(otherOrigin.status == 403 && otherOrigin.header("Access-Control-Allow-Origin") == nil)
            let badHeader = try await request(port, "OPTIONS", "/data", headers: [
                "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-secret",
            ])
            #expect(badHeader.status == 403)
            let badMethod = try await request(port, "OPTIONS", "/data", headers: [
                "Origin": "https://app.example.com", "Access-Control-Request-Method": "TRACE",
            ])
            #expect(badMethod.status == 403)

            let actual = try await request(port, "GET", "/data", headers: ["Origin": "https://APP.example.com"])
            #expect(actual.text == "data")
            #expect(actual.header("Access-Control-Allow-Origin") == "https://APP.example.com")
            #expect(actual.header("Access-Control-Expose-Headers") == "X-Request-Id")
            #expect(actual.header("Vary") == "Origin")
            let failed = try await request(port, "GET", "/fails", headers: ["Origin": "https://app.example.com"])
            #expect(failed.status == 400 && failed.header("Access-Control-Allow-Origin") == "https://app.example.com")
            let foreign = try await request(port, "GET", "/data", headers: ["Origin": "https://evil.example"])
            #expect(foreign.text == "data" && foreign.header("Access-Control-Allow-Origin") == nil)
            #expect(foreign.header("Vary") == "Origin")
            // A plain OPTIONS without the preflight headers is not a preflight: 405 as usual.
            #expect(try await request(port, "OPTIONS", "/data").status == 405)
        }
    }

    @Test func corsForAnyOriginWithoutCredentialsSaysStar() async throws {
        var router = Router()
        router.add(middleware: CORSMiddleware(allowedOrigins: .any))
        router.get("/data") { _ in .text("data") }
        try await withServer(router) { port in
            let reply = try await request(port, "GET", "/data", headers: ["Origin": "https://anyone.example"])
            #expect(reply.header("Access-Control-Allow-Origin") == "*")
            #expect(reply.header("Vary") == nil)
            #expect(reply.header("Access-Control-Allow-Credentials") == nil)
        }
    }

    @Test func respondToAnswersLikeTheServerWithoutOne() async throws {
        var router = Router()
        router.add(middleware: Tag(name: "a"))
        router.get("/ok") { _ in .text("ok") }
        router.get("/boom") { _ in throw Unexpected() }
        func get(_ path: String) async throws -> Response {
            var request = Request(method: .get, path: path)
            request.context.logger = quietLogger
            return try await router.respond(to: request)
        }
        let ok = try await get("/ok")
        #expect(ok.headers["X-Trace"] == "out:a" && ok.body == Array("ok".utf8))
        let boom = try await get("/boom")
        #expect(boom.status.code == 500 && boom.headers["X-Trace"] == "out:a")
        let missing = try await get("/missing")
        #expect(missing.status.code == 404 && missing.headers["X-Trace"] == "out:a")
    }
}
