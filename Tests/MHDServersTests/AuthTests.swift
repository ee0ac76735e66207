@testable import MHDServers
import MHDServersTesting
import Testing

@Suite("Bearer token and interceptors", .timeLimit(.minutes(2)))
struct AuthTests {
    static func router() -> Router {
        var router = Router()
        router.get("/secret") { _ in .text("the goods") }
        router.get("/slow-secret") { _ in
            await Task.yield()
            return .text("async goods")
        }
        router.requireBearerToken("t0ken-value")
        return router
    }

    @Test func missingOrWrongTokenIs401EverywhereAndNeverEchoesTheToken() async throws {
        try await Self.router().test(.inProcess) { client in
            for path in ["/secret", "/slow-secret", "/unknown"] {
                for headers: HTTPHeaders in [[:], [.authorization: "Bearer wrong"], [.authorization: "Basic dDBrZW4tdmFsdWU="],
                                [.authorization: "Bearer t0ken-valu"], [.authorization: "Bearer t0ken-value2"]] {
                    let response = try await client.execute(.get, path, headers: headers)
                    #expect(response.status == .unauthorized, "\(path) \(headers)")
                    #expect(response.headers["WWW-Authenticate"] == #"Bearer realm="admin""#)
                    #expect(!response.text.contains("t0ken"))
                }
            }
        }
    }

    @Test func rightTokenPasses() async throws {
        try await Self.router().test(.inProcess) { client in
            let sync = try await client.execute(.get, "/secret", headers: [.authorization: "Bearer t0ken-value"])
            #expect(sync.status == .ok)
            #expect(sync.text == "the goods")
            let async = try await client.execute(.get, "/slow-secret", headers: HTTPHeaders([("authorization", "bearer t0ken-value")]))
            #expect(async.text == "async goods")
            let missing = try await client.execute(.get, "/unknown", headers: [.authorization: "Bearer t0ken-value"])
            #expect(missing.status == .notFound)
        }
    }

    @Test func interceptorsSurviveMounting() async throws {
        var admin = Router()
        admin.get("/stats") { _ in .text("stats") }
        admin.requireBearerToken("k")
        var root = Router()
        root.mount("/admin", admin)
        try await root.test(.inProcess) { client async throws in
            #expect(try await client.execute(.get, "/admin/stats").status == .unauthorized)
            #expect(try await client.execute(.get, "/admin/stats", headers: [.authorization: "Bearer k"]).text == "stats")
        }
    }

    @Test func constantTimeComparison() {
        #expect(constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!constantTimeEquals(Array("abc".utf8), Array("abd".utf8)))
        #expect(!constantTimeEquals(Array("abc".utf8), Array("ab".utf8)))
        #expect(!constantTimeEquals(Array("".utf8), Array("a".utf8)))
        #expect(constantTimeEquals([], []))
        // Lengths differing by a multiple of 256 must not compare equal.
        #expect(!constantTimeEquals([UInt8](repeating: 0, count: 256), []))
    }
}
