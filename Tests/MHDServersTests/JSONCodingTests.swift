import Foundation
@testable import MHDServers
import Testing

struct Event: Codable, Equatable {
    var title: String
    var startsAt: Date
}

@Suite("JSON configuration", .timeLimit(.minutes(2)))
struct JSONCodingTests {
    static func router() -> Router {
        var router = Router()
        router.get("/event") { _ in try .json(Event(title: "launch", startsAt: Date(timeIntervalSince1970: 1_800_000_000))) }
        router.post("/event") { request in try .json(try request.decode(Event.self)) }
        return router
    }

    @Test func whatTheServerSendsItReadsBackDatesIncluded() async throws {
        try await withServer(Self.router()) { port in
            let sent = try await request(port, "GET", "/event")
            #expect(sent.text == #"{"startsAt":"2027-01-15T08:00:00Z","title":"launch"}"#)
            let back = try await request(port, "POST", "/event", headers: ["Content-Type": "application/json"], body: sent.text)
            #expect(back.status == 200)
            #expect(back.text == sent.text)
        }
    }

    @Test func aBodyThatSaysItIsNotJSONIs415UnlessAllowed() async throws {
        let body = #"{"startsAt":"2027-01-15T08:00:00Z","title":"launch"}"#
        try await withServer(Self.router()) { port in
            let text = try await request(port, "POST", "/event", headers: ["Content-Type": "text/plain"], body: body)
            #expect(text.status == 415)
            #expect(text.text.contains("must be JSON"))
            let form = try await request(port, "POST", "/event", headers: ["Content-Type": "application/x-www-form-urlencoded"], body: body)
            #expect(form.status == 415)
            for contentType in ["application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json", nil] {
                let headers = contentType.map { ["Content-Type": $0] } ?? [:]
                let accepted = try await request(port, "POST", "/event", headers: headers, body: body)
                #expect(accepted.status == 200, "Content-Type \(contentType ?? "none")")
            }
        }
        var lenient = Self.router()
        lenient.json = JSONCoding(requiresJSONContentType: false)
        try await withServer(lenient) { port in
            let text = try await request(port, "POST", "/event", headers: ["Content-Type": "text/plain"], body: body)
            #expect(text.status == 200)
        }
    }

    @Test func aRoutersCodingAppliesToItsRoutesAndMiddlewareAndAMountedRouterKeepsItsOwn() async throws {
        struct Wrapped: Middleware {
            func handle(_ request: Request, next: Next) async throws -> Response {
                let response = await next(request)
                return try .json(["inner_status": response.status.code, "start_date": 0])
            }
        }
        let encoder = JSONCoding.standardEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .secondsSince1970
        let decoder = JSONCoding.standardDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .secondsSince1970
        var snake = Self.router()
        snake.json = JSONCoding(encoder: encoder, decoder: decoder)
        var wrapped = Router()
        wrapped.json = JSONCoding(encoder: encoder, decoder: decoder)
        wrapped.add(middleware: Wrapped())
        wrapped.get("/x") { _ in .text("x") }
        var root = Self.router()  // standard coding
        root.mount("/snake", snake)
        try await withServer(root) { port in
            #expect(try await request(port, "GET", "/event").text == #"{"startsAt":"2027-01-15T08:00:00Z","title":"launch"}"#)
            let snakeEvent = try await request(port, "GET", "/snake/event")
            #expect(snakeEvent.text == #"{"starts_at":1800000000,"title":"launch"}"#)
            let back = try await request(port, "POST", "/snake/event", headers: ["Content-Type": "application/json"], body: snakeEvent.text)
            #expect(back.text == snakeEvent.text)
        }
        try await withServer(wrapped) { port async throws in
            // The middleware's own JSON uses the router's coding too.
            #expect(try await request(port, "GET", "/x").text == #"{"inner_status":200,"start_date":0}"#)
        }
    }
}
