import Foundation
import HTTPTypes
import MHDServers
import MHDServersOpenAPI
@_spi(Generated) import OpenAPIRuntime
import Testing

/// The handler of a small pet store, in the shape swift-openapi-generator gives an
/// `APIProtocol`: one async method per operation, from its input to its output.
struct PetStore: Sendable {
    struct ListInput: Sendable {
        var limit: Int
        var tags: [String]?
    }

    struct Busy: Error, HTTPResponseConvertible {
        var httpStatus: HTTPResponse.Status { .serviceUnavailable }
        var httpHeaderFields: HTTPFields { [.retryAfter: "5"] }
    }

    func listPets(_ input: ListInput) async throws -> [Pet] {
        (0..<input.limit).map { Pet(id: $0, name: input.tags?[$0 % (input.tags?.count ?? 1)] ?? "pet") }
    }

    func getPet(_ id: String) async throws -> Pet {
        switch id {
        case "missing": throw HTTPError(.notFound, message: "no such pet")
        case "broken": throw Boom()
        case "busy": throw Busy()
        default: return Pet(id: 1, name: id)
        }
    }

    /// What the generated `registerHandlers(on:serverURL:configuration:middlewares:)` does for
    /// these two operations: the runtime's `UniversalServer` decodes the input, calls the
    /// handler, encodes the output and wraps every error in a `ServerError`.
    func registerHandlers(on transport: any ServerTransport, serverURL: URL = .defaultOpenAPIServerURL) throws {
        let server = UniversalServer(serverURL: serverURL, handler: self)
        try transport.register(
            { request, body, metadata in
                try await server.handle(
                    request: request, requestBody: body, metadata: metadata, forOperation: "listPets",
                    using: { $0.listPets },
                    deserializer: { request, _, _ in
                        ListInput(
                            limit: try server.converter.getRequiredQueryItemAsURI(
                                in: request.soar_query, style: .form, explode: false, name: "limit", as: Int.self),
                            tags: try server.converter.getOptionalQueryItemAsURI(
                                in: request.soar_query, style: .form, explode: false, name: "tags", as: [String].self))
                    },
                    serializer: { pets, _ in
                        var fields = HTTPFields()
                        let body = try server.converter.setResponseBodyAsJSON(
                            pets, headerFields: &fields, contentType: "application/json; charset=utf-8")
                        return (HTTPResponse(status: .ok, headerFields: fields), body)
                    })
            }, method: .get, path: try server.apiPathComponentsWithServerPrefix("/pets"))
        try transport.register(
            { request, body, metadata in
                try await server.handle(
                    request: request, requestBody: body, metadata: metadata, forOperation: "getPet",
                    using: { $0.getPet },
                    deserializer: { _, _, metadata in
                        try server.converter.getPathParameterAsURI(
                            in: metadata.pathParameters, name: "petId", as: String.self)
                    },
                    serializer: { pet, _ in
                        var fields = HTTPFields()
                        let body = try server.converter.setResponseBodyAsJSON(
                            pet, headerFields: &fields, contentType: "application/json; charset=utf-8")
                        return (HTTPResponse(status: .ok, headerFields: fields), body)
                    })
            }, method: .get, path: try server.apiPathComponentsWithServerPrefix("/pets/{petId}"))
    }
}

func petStoreRouter(serverURL: URL = .defaultOpenAPIServerURL) throws -> Router {
    let transport = OpenAPITransport()
    try PetStore().registerHandlers(on: transport, serverURL: serverURL)
    var router = Router()
    router.mount("/", transport.router)
    return router
}

@Suite("OpenAPITransport with the runtime's UniversalServer", .timeLimit(.minutes(2)))
struct GeneratedStyleTests {
    @Test func requiredAndArrayQueryItems() async throws {
        try await withServer(try petStoreRouter()) { (port: Int) async throws in
            let response = try await request(port, "/pets?limit=3&tags=cat,dog%20x")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json; charset=utf-8")
            let pets = try JSONDecoder().decode([Pet].self, from: Data(response.body))
            #expect(pets.map(\.name) == ["cat", "dog x", "cat"])
        }
    }

    @Test func missingRequiredQueryItemIsA400WithTheCause() async throws {
        try await withServer(try petStoreRouter()) { (port: Int) async throws in
            let response = try await request(port, "/pets")
            #expect(response.status == 400)
            let error = try #require(try response.json()["error"] as? [String: Any])
            #expect(error["status"] as? Int == 400)
            #expect((error["message"] as? String)?.contains("limit") == true)
        }
    }

    @Test func malformedQueryItemIsA400() async throws {
        try await withServer(try petStoreRouter()) { (port: Int) async throws in
            #expect(try await request(port, "/pets?limit=many").status == 400)
        }
    }

    @Test func pathParameterIsDecodedOnceByTheRuntime() async throws {
        try await withServer(try petStoreRouter()) { (port: Int) async throws in
            let response = try await request(port, "/pets/Rex%20the%2Bdog%25")
            #expect(response.status == 200)
            #expect(try JSONDecoder().decode(Pet.self, from: Data(response.body)).name == "Rex the+dog%")
        }
    }

    @Test func httpErrorFromAnOperationKeepsItsStatusAndMessage() async throws {
        try await withServer(try petStoreRouter()) { (port: Int) async throws in
            let response = try await request(port, "/pets/missing")
            #expect(response.status == 404)
            let error = try #require(try response.json()["error"] as? [String: Any])
            #expect(error["message"] as? String == "no such pet")
        }
    }

    @Test func convertibleErrorKeepsItsStatusAndHeaders() async throws {
        try await withServer(try petStoreRouter()) { (port: Int) async throws in
            let response = try await request(port, "/pets/busy")
            #expect(response.status == 503)
            #expect(response.header("Retry-After") == "5")
            let error = try #require(try response.json()["error"] as? [String: Any])
            #expect(error["message"] as? String == "Service Unavailable")
        }
    }

    @Test func plainErrorFromAnOperationIsA500WithoutDetails() async throws {
        try await withServer(try petStoreRouter()) { (port: Int) async throws in
            let response = try await request(port, "/pets/broken")
            #expect(response.status == 500)
            #expect(!response.text.contains("Boom"))
            #expect(!response.text.contains("getPet"))
        }
    }

    @Test func plainErrorIsLoggedWithItsOperationButWithoutTheRequest() async throws {
        let recorder = LogRecorder()
        try await withServer(try petStoreRouter(), logger: recorder.logger) { (port: Int) async throws in
            let response = try await request(port, "/pets/broken", headers: [("Authorization", "Bearer s3cret-token")])
            #expect(response.status == 500)
        }
        let log = recorder.text
        #expect(log.contains("getPet"))
        #expect(log.contains("Boom"))
        #expect(!log.contains("s3cret-token"))
    }

    @Test func serverURLPrefixesThePaths() async throws {
        try await withServer(try petStoreRouter(serverURL: URL(string: "https://example.com/api/v1")!)) { (port: Int) async throws in
            #expect(try await request(port, "/api/v1/pets?limit=1").status == 200)
            #expect(try await request(port, "/api/v1/pets/Rex").status == 200)
            #expect(try await request(port, "/pets?limit=1").status == 404)
        }
    }
}
