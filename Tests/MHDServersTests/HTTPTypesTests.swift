import Glibc
import MHDServers
import MHDServersTesting
import Testing

/// `HTTPMethod`, `HTTPStatus` and `HTTPHeaders` are swift-http-types' types: what a handler
/// builds is checked where it is built, and what it reads back is what goes on the wire.
@Suite("HTTP types", .timeLimit(.minutes(2)))
struct HTTPTypesTests {
    @Test func theCurrencyTypesAreSwiftHTTPTypes() {
        let method: HTTPRequest.Method = HTTPMethod.post
        let status: HTTPResponse.Status = HTTPStatus.created
        let fields: HTTPFields = HTTPHeaders([("X-A", "1")])
        #expect(method.rawValue == "POST" && status.code == 201 && fields[HTTPField.Name("x-a")!] == "1")
    }

    @Test func stringNamesAreCaseInsensitiveAndKeepTheirOrder() {
        var headers: HTTPHeaders = [.contentType: "text/plain"]
        headers.add(name: "Set-Cookie", value: "a=1")
        headers.add(name: "set-cookie", value: "b=2")
        headers["X-Trace"] = "on"
        #expect(headers["content-type"] == "text/plain")
        #expect(headers[.contentType] == "text/plain")
        #expect(headers.values(for: "SET-COOKIE") == ["a=1", "b=2"])
        #expect(headers.contains("x-trace") && !headers.contains("x-other"))
        #expect(headers.map(\.name.rawName) == ["Content-Type", "Set-Cookie", "set-cookie", "X-Trace"])
        headers["x-trace"] = nil
        headers.remove(name: "Set-Cookie")
        #expect(headers.count == 1)
        // A name that is not a token finds nothing and removes nothing.
        #expect(headers["Bad Name"] == nil && headers.values(for: "a:b").isEmpty && !headers.contains(""))
    }

    @Test func invalidNamesAndMethodsCannotBeBuilt() {
        for name in ["", "Bad Name", "X-A:", "X\r\nY", "Ünicode", "a\u{0}b"] {
            #expect(HTTPField.Name(name) == nil, "\(name.debugDescription)")
        }
        for method in ["", "GE T", "GET\r\n", "G(T", "GÉT"] {
            #expect(HTTPMethod(method) == nil, "\(method.debugDescription)")
        }
        #expect(HTTPMethod("PURGE")?.rawValue == "PURGE")
    }

    @Test func settingAFieldThroughAnInvalidNameStopsTheProgram() async {
        await #expect(processExitsWith: .failure) {
            var headers = HTTPHeaders()
            headers["Bad Name"] = "x"
        }
        await #expect(processExitsWith: .failure) {
            _ = HTTPHeaders([("X-Injected:", "x")])
        }
    }

    /// CR, LF and NUL in a value become spaces as it is stored: no field can be smuggled in,
    /// and the value read back is the one sent.
    @Test func controlBytesInAValueBecomeSpacesWhereItIsBuilt() {
        var headers = HTTPHeaders()
        headers["X-Note"] = "a\r\nSet-Cookie: b=2\u{0}"
        #expect(headers["X-Note"] == "a  Set-Cookie: b=2")  // and trimmed
        #expect(headers.count == 1 && !headers.contains("Set-Cookie"))
        let error = HTTPError(.badRequest, headers: HTTPHeaders([("X-Why", "line1\nline2")]))
        #expect(error.response.headers["X-Why"] == "line1 line2")
    }

    @Test func statusesCompareByCodeAndKnowTheirPhrase() {
        let literal: HTTPStatus = 404
        #expect(literal == .notFound && literal.reasonPhrase.isEmpty && literal.phrase == "Not Found")
        #expect(HTTPStatus(code: 418).phrase == "I'm a teapot")
        #expect(HTTPStatus(code: 599).phrase == "Status 599")
        #expect(HTTPStatus.serviceUnavailable.isServerError && !HTTPStatus.notFound.isServerError)
        #expect(Response.error(599).bodyText.contains(#""message":"Status 599""#))
    }

    /// On a real socket: a value with CR/LF taken from the query is sent as one field, and the
    /// response carries no field the value tried to add.
    @Test func aValueFromInputCannotAddAFieldOnTheWire() async throws {
        var router = Router()
        router.get("/note") { request in
            var response = Response.text("noted")
            response.headers["X-Note"] = request.query["text"] ?? ""
            return response
        }
        try await withServer(router) { port in
            let raw = try await request(port, "GET", "/note?text=a%0D%0ASet-Cookie:%20admin=1%0D%0A%0D%0Abody")
            #expect(raw.status == 200)
            #expect(raw.header("X-Note") == "a  Set-Cookie: admin=1    body")
            #expect(raw.header("Set-Cookie") == nil)
            #expect(raw.text == "noted")
        }
    }

    /// The methods a router sees are the swift-http-types values, shared for the common ones.
    @Test func methodsReachHandlersAsTokens() async throws {
        var router = Router()
        router.on(HTTPMethod("PURGE")!, "/cache") { request in .text(request.method.rawValue) }
        try await router.test(.live) { client async throws in
            #expect(try await client.execute(HTTPMethod("PURGE")!, "/cache").text == "PURGE")
            #expect(try await client.execute(.get, "/cache").status == .methodNotAllowed)
        }
    }
}

extension Response {
    fileprivate var bodyText: String { String(decoding: body, as: UTF8.self) }
}
