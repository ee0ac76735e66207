import Logging
import MHDServers
import ServiceLifecycle

var router = Router()
router.get("/api/hello") { _ in .json(raw: #"{"message":"hello"}"#) }
let logger = Logger(label: "app")
let server = HTTPServer(config: ServerConfig(name: "public", port: 3400, ports: 3400..<3410), router: router, logger: logger)
try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
