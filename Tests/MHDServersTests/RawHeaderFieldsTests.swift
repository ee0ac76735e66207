import Foundation
import Testing

@testable import MHDServers

/// A request's header fields are kept as the engine's bytes and become `HTTPFields` when first
/// read: what is built must be exactly what building them at once built.
@Suite("Header fields built when read")
struct RawHeaderFieldsTests {
    /// Names and values as a client may send them: common and rare names, odd case, duplicates,
    /// an empty value, control bytes, a byte that is not UTF-8, obs-text.
    static let sent: [(String, [UInt8])] = [
        ("Host", Array("example.com:8080".utf8)),
        ("host", Array("second".utf8)),
        ("Accept", Array("*/*".utf8)),
        ("Accept-Language", Array("en-US,en;q=0.5".utf8)),
        ("Cookie", Array("a=1".utf8)),
        ("Cookie", Array("b=2".utf8)),
        ("X-Empty", []),
        ("X-Control", [0x61, 0x01, 0x62, 0x09, 0x63]),
        ("X-Latin1", [0x63, 0x61, 0x66, 0xE9]),
        ("X-UTF8", Array("café ☕".utf8)),
        ("x-lower-CASE", Array("  padded  ".utf8)),
        ("Content-Length", Array("5".utf8)),
    ]

    static func raw(_ fields: [(String, [UInt8])]) -> RawHeaderFields {
        var builder = RawHeaderFields.Builder()
        for (name, value) in fields {
            Array(name.utf8).withUnsafeBytes { name in
                value.withUnsafeBytes { value in builder.append(name: name, value: value) }
            }
        }
        return RawHeaderFields(builder)
    }

    /// How the engine's fields were converted before they were kept as bytes.
    static func eager(_ fields: [(String, [UInt8])]) -> HTTPFields {
        var headers = HTTPFields()
        for (name, value) in fields {
            headers.append(HTTPField(name: HTTPField.Name(name)!, value: String(decoding: value, as: UTF8.self)))
        }
        return headers
    }

    @Test func builtFieldsEqualTheEagerConversionFieldForField() {
        let built = Self.raw(Self.sent).fields
        let expected = Self.eager(Self.sent)
        #expect(built.count == Self.sent.count)
        #expect(Array(built) == Array(expected))
        // Spelling kept, lookup case-insensitive, duplicates kept in order.
        #expect(built.map(\.name.rawName) == Self.sent.map(\.0))
        #expect(built.values(for: "HOST") == ["example.com:8080", "second"])
        #expect(built[.cookie] == "a=1; b=2")
        #expect(built["X-Empty"] == "")
        #expect(built["X-Control"] == "a b\tc")
        #expect(built["X-Latin1"] == "caf\u{FFFD}")
        #expect(built["X-UTF8"] == "café ☕")
    }

    @Test func noFieldsAndTheSharedEmptyValue() {
        #expect(Self.raw([]).fields.isEmpty)
        #expect(RawHeaderFields.empty.fields.isEmpty)
    }

    @Test func aRequestReadsSetsAndCopiesItsHeadersAsBefore() {
        var request = Request(
            method: .get, path: "/", query: QueryParameters(), headers: .raw(Self.raw(Self.sent)), body: [],
            remoteAddress: nil, version: "HTTP/1.1", logger: RequestContext.defaultLogger)
        let copy = request
        #expect(request.headers[.accept] == "*/*")
        request.headers[.accept] = "text/plain"
        request.headers.append(HTTPField(name: .contentType, value: "a/b"))
        #expect(request.headers[.accept] == "text/plain")
        #expect(request.headers[.contentType] == "a/b")
        #expect(request.headers.count == Self.sent.count + 1)
        // The copy made before is untouched.
        #expect(copy.headers[.accept] == "*/*")
        #expect(copy.headers[.contentType] == nil)
    }

    /// Many tasks read the same request's headers at once: one builds them, all see the same.
    @Test func concurrentFirstReadsAgree() async {
        let request = Request(
            method: .get, path: "/", query: QueryParameters(), headers: .raw(Self.raw(Self.sent)), body: [],
            remoteAddress: nil, version: "HTTP/1.1", logger: RequestContext.defaultLogger)
        let expected = Self.eager(Self.sent)
        let results = await withTaskGroup(of: HTTPFields.self) { group in
            for _ in 0..<16 { group.addTask { request.headers } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 16)
        #expect(results.allSatisfy { Array($0) == Array(expected) })
    }

    /// Over a real socket: a handler that reads no header and one that reads them all see
    /// what was sent; the engine's checks that need the fields (Host, Content-Length) still
    /// work without them being built.
    @Test func handlersSeeTheFieldsAsSentWhetherOrNotTheyReadThem() async throws {
        var router = Router()
        router.get("/none") { _ in .text("none") }
        router.get("/all") { request in
            .text(request.headers.map { "\($0.name.rawName)=\($0.value)" }.joined(separator: "|"))
        }
        router.post("/echo") { request in Response(status: .ok, body: request.body) }
        try await withServer(router) { port async throws in
            let none = try await request(port, "GET", "/none", headers: ["X-One": "1"])
            #expect(none.text == "none")
            let all = try await offPool { () -> RawResponse in
                let connection = try Connection(port: port, timeout: 5)
                try connection.send("GET /all HTTP/1.1\r\nHost: t\r\nX-A:  spaced  \r\nx-b: 2\r\nX-A: again\r\n\r\n")
                return try connection.readResponse()
            }
            #expect(all.text == "Host=t|X-A=spaced|x-b=2|X-A=again")
            let echo = try await offPool { () -> RawResponse in
                let connection = try Connection(port: port, timeout: 5)
                try connection.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
                return try connection.readResponse()
            }
            #expect(echo.status == 200 && echo.text == "hello")
        }
    }
}
