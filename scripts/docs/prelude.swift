// What the documentation's examples take as given: a logger, a router, a request, servers, a
// manager, and the user types they mention. Each example may declare its own instead.
import Logging
import MHDServers
import ServiceLifecycle
import Tracing

let logger = Logger(label: "docs")
nonisolated(unsafe) var router = Router()
let request = Request(method: .get, path: "/")
nonisolated(unsafe) var response = Response()
let context: HTTPServerContext = { fatalError("examples are type-checked, never run") }()
let server = HTTPServer(config: ServerConfig(name: "api", port: 0), router: Router(), logger: logger)
let manager = ServerManager(logger: logger)
let servers: [Server] = []
let address = BoundAddress(host: "127.0.0.1", port: 8080)
let publicConfig = ServerConfig(name: "public", port: 3400)
let adminConfig = ServerConfig(name: "admin", port: 3401)
let jobRunner: any Service = Idle()

struct Idle: Service { func run() async throws {} }

struct PublicAPI: ServerLifecycle {
    func registerRoutes(on router: inout Router, context: HTTPServerContext) {}
}
struct AdminAPI: ServerLifecycle {
    func registerRoutes(on router: inout Router, context: HTTPServerContext) {}
}
struct ExtraAPI: ServerLifecycle {
    func registerRoutes(on router: inout Router, context: HTTPServerContext) {}
}
struct CreateUser: Codable { var name: String }
struct User: Codable { var id: Int; var name: String }
enum database { static func close() async {} }
let listener: BoundListener = { fatalError("examples are type-checked, never run") }()
/// A side service's own health reporting (a gRPC health service, say).
enum health {
    enum Status { case serving, notServing }
    static func set(_ status: Status) {}
}
let writer: ResponseBodyWriter = { fatalError("examples are type-checked, never run") }()
let events: ServerSentEventWriter = { fatalError("examples are type-checked, never run") }()
/// Opens a file for an example that hands a descriptor over.
enum exporter { static func openSnapshot() throws -> Int32 { fatalError("examples are type-checked, never run") } }
struct PublicAPIv2: ServerLifecycle {
    func registerRoutes(on router: inout Router, context: HTTPServerContext) {}
}
enum settings { static func load() async throws {} }
enum featureFlags { static func load(from path: String) async throws {} }
