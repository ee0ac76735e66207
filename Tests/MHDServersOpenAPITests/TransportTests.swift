import Foundation
import HTTPTypes
import MHDServers
import MHDServersOpenAPI
import OpenAPIRuntime
import Testing

struct Pet: Codable, Equatable, Sendable {
    var id: Int
    var name: String
}

struct Boom: Error {}

/// What an operation handler saw, sent back as JSON by the echo operation.
struct Seen: Codable {
    var petId: String?
    var id: String?
    var path: String?
    var authority: String?
    var requestId: String?
    var hasBody: Bool
}

/// Operations registered on the transport the way generated code registers them, with
/// hand-written handlers.
func petRoutes(maxResponseBodySize: Int = OpenAPITransport.defaultMaxResponseBodySize) throws -> OpenAPITransport {
    let transport = OpenAPITransport(maxResponseBodySize: maxResponseBodySize)
    let echo: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?) = {
        request, body, metadata in
        let seen = Seen(
            petId: metadata.pathParameters["petId"].map(String.init), id: metadata.pathParameters["id"].map(String.init),
            path: request.path, authority: request.authority,
            requestId: request.headerFields[HTTPField.Name("X-Request-Id")!], hasBody: body != nil)
        var fields: HTTPFields = [.contentType: "application/json"]
        fields[HTTPField.Name("X-Method")!] = request.method.rawValue
        return (HTTPResponse(status: .ok, headerFields: fields), HTTPBody(try JSONEncoder().encode(seen)))
    }
    try transport.register(echo, method: .get, path: "/pets/{petId}")
    // The same position under another name: the transport must keep both working.
    try transport.register(echo, method: .get, path: "/pets/{id}/toys")
    try transport.register({ _, body, _ in
        guard let body else { throw HTTPError(.badRequest, message: "a pet is required") }
        var pet = try JSONDecoder().decode(Pet.self, from: await Data(collecting: body, upTo: 1024))
        pet.id = 7
        let fields: HTTPFields = [.contentType: "application/json", .location: "/pets/\(pet.id)"]
        return (HTTPResponse(status: .created, headerFields: fields), HTTPBody(try JSONEncoder().encode(pet)))
    }, method: .post, path: "/pets")
    try transport.register({ _, _, metadata in
        let fields: HTTPFields = [HTTPField.Name("X-Deleted")!: String(metadata.pathParameters["petId"] ?? "")]
        return (HTTPResponse(status: .noContent, headerFields: fields), nil)
    }, method: .delete, path: "/pets/{petId}")
    try transport.register({ _, _, _ in throw Boom() }, method: .get, path: "/boom")
    try transport.register({ _, _, _ in
        // A Content-Length of its own: the server must frame the body itself, once.
        (HTTPResponse(status: .ok, headerFields: [.contentLength: "999"]), HTTPBody(String(repeating: "x", count: 32)))
    }, method: .get, path: "/big")
    return transport
}

func mounted(_ transport: OpenAPITransport, at prefix: String = "/") -> Router {
    var router = Router()
    router.mount(prefix, transport.router)
    return router
}

@Suite("OpenAPITransport over a real socket", .timeLimit(.minutes(2)))
struct TransportTests {
    @Test func pathParameterReachesTheHandler() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let response = try await request(port, "/pets/42")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.header("X-Method") == "GET")
            let seen = try JSONDecoder().decode(Seen.self, from: Data(response.body))
            #expect(seen.petId == "42")
            #expect(seen.path == "/pets/42")
            #expect(seen.hasBody == false)
        }
    }

    @Test func pathParameterIsPercentEncodedForTheRuntime() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let spaced = try JSONDecoder().decode(Seen.self, from: Data(try await request(port, "/pets/a%20b%2Bc").body))
            #expect(spaced.petId == "a%20b%2Bc")
            #expect(spaced.path == "/pets/a%20b+c")
            // `,` separates the items of an array parameter and stays as it is.
            let list = try JSONDecoder().decode(Seen.self, from: Data(try await request(port, "/pets/1,2,3").body))
            #expect(list.petId == "1,2,3")
        }
    }

    @Test func queryItemsAreEncodedAgain() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let response = try await request(port, "/pets/1?q=swift+lang&tag=a&tag=b&amp=1%262&flag&tags=x,y")
            #expect(response.status == 200)
            let seen = try JSONDecoder().decode(Seen.self, from: Data(response.body))
            #expect(seen.path == "/pets/1?q=swift%20lang&tag=a&tag=b&amp=1%262&flag=&tags=x,y")
        }
    }

    @Test func headersAndHostReachTheHandler() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let response = try await request(port, "/pets/1", headers: [("X-Request-Id", "req-77")])
            let seen = try JSONDecoder().decode(Seen.self, from: Data(response.body))
            #expect(seen.requestId == "req-77")
            #expect(seen.authority == "test.local")
        }
    }

    @Test func jsonBodyBothWaysWithStatusAndHeader() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let response = try await request(
                port, "POST", "/pets", headers: [("Content-Type", "application/json")], body: #"{"id":0,"name":"Rex"}"#)
            #expect(response.status == 201)
            #expect(response.header("Location") == "/pets/7")
            #expect(response.header("Content-Type") == "application/json")
            #expect(try JSONDecoder().decode(Pet.self, from: Data(response.body)) == Pet(id: 7, name: "Rex"))
        }
    }

    @Test func emptyRequestBodyIsNil() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            // The handler sees no body and throws an HTTPError, which the server answers as it says.
            let response = try await request(port, "POST", "/pets", body: "")
            #expect(response.status == 400)
            let error = try #require(try response.json()["error"] as? [String: Any])
            #expect(error["message"] as? String == "a pet is required")
        }
    }

    @Test func noContentWithHeader() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let response = try await request(port, "DELETE", "/pets/5")
            #expect(response.status == 204)
            #expect(response.header("X-Deleted") == "5")
            #expect(response.body.isEmpty)
        }
    }

    @Test func unknownRouteAndMethod() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            #expect(try await request(port, "/owners/1").status == 404)
            let wrongMethod = try await request(port, "PUT", "/pets/1", body: "{}")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.header("Allow") == "DELETE, GET, HEAD")
        }
    }

    @Test func plainErrorIsA500WithoutDetails() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let response = try await request(port, "/boom")
            #expect(response.status == 500)
            #expect(!response.text.contains("Boom"))
            let error = try #require(try response.json()["error"] as? [String: Any])
            #expect(error["status"] as? Int == 500)
        }
    }

    @Test func headIsAnsweredByTheGetOperationWithoutBody() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let get = try await request(port, "GET", "/pets/42")
            let head = try await request(port, "HEAD", "/pets/42")
            #expect(head.status == 200)
            #expect(head.header("X-Method") == "HEAD")  // the handler sees the real method
            #expect(head.body.isEmpty)
            #expect(head.header("Content-Length") == get.header("Content-Length"))
            #expect(get.header("Content-Length") == String(get.body.count))
        }
    }

    @Test func responseBodyIsFramedByTheServerAndBounded() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let response = try await request(port, "/big")
            #expect(response.status == 200)
            #expect(response.headers.filter { $0.0.lowercased() == "content-length" }.map(\.1) == ["32"])
            #expect(response.text == String(repeating: "x", count: 32))
        }
        try await withServer(mounted(try petRoutes(maxResponseBodySize: 16))) { (port: Int) async throws in
            #expect(try await request(port, "/big").status == 500)
            #expect(try await request(port, "/pets/1").status == 500)  // its JSON is longer than 16 bytes
        }
    }

    @Test func parametersAtOnePositionWithDifferentNames() async throws {
        try await withServer(mounted(try petRoutes())) { (port: Int) async throws in
            let toys = try JSONDecoder().decode(Seen.self, from: Data(try await request(port, "/pets/9/toys").body))
            #expect(toys.id == "9")
            #expect(toys.petId == nil)
            let pet = try JSONDecoder().decode(Seen.self, from: Data(try await request(port, "/pets/9").body))
            #expect(pet.petId == "9")
            #expect(pet.id == nil)
        }
    }

    @Test func mountedUnderAPrefix() async throws {
        try await withServer(mounted(try petRoutes(), at: "/v1")) { (port: Int) async throws in
            #expect(try await request(port, "/v1/pets/3").status == 200)
            #expect(try await request(port, "/pets/3").status == 404)
        }
    }

    @Test func templatesTheRouterCannotServeAreRejected() throws {
        let transport = OpenAPITransport()
        let handler: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?) = {
            _, _, _ in (HTTPResponse(status: .ok), nil)
        }
        for path in ["/files/{name}.json", "/a/:b", "/static/*", "/x/{a}{b}"] {
            #expect(throws: OpenAPITransportError.unsupportedPathTemplate(path)) {
                try transport.register(handler, method: .get, path: path)
            }
        }
        #expect(throws: Never.self) { try transport.register(handler, method: .get, path: "/files/{name}") }
    }
}
