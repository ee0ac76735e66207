// hb-bench - the Hummingbird 2 target of scripts/bench.sh --hummingbird.
//
// Serves the routes the benchmark measures with the same bodies and content types as the
// demo app (Sources/app/PublicAPI.swift) and the C reference (Benchmarks/reference/reference.c):
//
//   GET  /api/hello    {"message":"Hello from the public server!"}, application/json, one
//                      buffer built once and reused (like the app's reusable response)
//   GET  /bench/async  awaits Task.yield(), then answers like /api/hello
//   POST /bench/echo   collects the body (at most 1 MiB, like the C reference) and sends it
//                      back as application/json
//
// Bound to 127.0.0.1:PORT, Hummingbird's defaults otherwise: the shared NIO event loop group
// (System.coreCount threads), no middleware, logger at info. SIGTERM / SIGINT shut it down
// gracefully (swift-service-lifecycle) and it exits 0.
//
// Usage: hb-bench PORT
// Build: swift build -c release --package-path Benchmarks/hummingbird/hb-bench --scratch-path .build/bench/hummingbird

import Hummingbird

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let arguments = CommandLine.arguments
guard arguments.count == 2, let port = Int(arguments[1]), (1...65535).contains(port) else {
    print("usage: hb-bench PORT")
    exit(64)
}

let helloBody = ByteBuffer(string: #"{"message":"Hello from the public server!"}"#)
let jsonHeaders: HTTPFields = [.contentType: "application/json"]
@Sendable func hello() -> Response {
    Response(status: .ok, headers: jsonHeaders, body: ResponseBody(byteBuffer: helloBody))
}

let router = Router()
router.get("/api/hello") { _, _ in hello() }
router.get("/bench/async") { _, _ in
    await Task.yield()
    return hello()
}
router.post("/bench/echo") { request, _ in
    let body = try await request.body.collect(upTo: 1 << 20)
    return Response(status: .ok, headers: jsonHeaders, body: ResponseBody(byteBuffer: body))
}

let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: port))
)
try await app.runService()
