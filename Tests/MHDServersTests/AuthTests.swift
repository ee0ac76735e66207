@testable import MHDServers
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
        try await withServer(Self.router()) { port async throws in
            for path in ["/secret", "/slow-secret", "/unknown"] {
                for headers in [[:], ["Authorization": "Bearer wrong"], ["Authorization": "Basic dDBrZW4tdmFsdWU="],
                                ["Authorization": "Bearer t0ken-valu"], ["Authorization": "Bearer t0ken-value2"]] {
                    let response = try await request(port, "GET", path, headers: headers)
                    #expect(response.status == 401, "\(path) \(headers)")
                    #expect(response.header("WWW-Authenticate") == #"Bearer realm="admin""#)
                    #expect(!response.text.contains("t0ken"))
                }
            }
        }
    }

    @Test func rightTokenPasses() async throws {
        try await withServer(Self.router()) { port async throws in
            let sync = try await request(port, "GET", "/secret", headers: ["Authorization": "Bearer t0ken-value"])
            #expect(sync.status == 200)
            #expect(sync.text == "the goods")
            let async = try await request(port, "GET", "/slow-secret", headers: ["authorization": "bearer t0ken-value"])
            #expect(async.text == "async goods")
            let missing = try await request(port, "GET", "/unknown", headers: ["Authorization": "Bearer t0ken-value"])
            #expect(missing.status == 404)
        }
    }

    @Test func interceptorsSurviveMounting() async throws {
        var admin = Router()
        admin.get("/stats") { _ in .text("stats") }
        admin.requireBearerToken("k")
        var root = Router()
        root.mount("/admin", admin)
        try await withServer(root) { port async throws in
            #expect(try await request(port, "GET", "/admin/stats").status == 401)
            #expect(try await request(port, "GET", "/admin/stats", headers: ["Authorization": "Bearer k"]).text == "stats")
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
