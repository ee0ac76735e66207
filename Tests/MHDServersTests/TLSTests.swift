import Foundation
import MHDServers
import Testing

/// HTTPS with a certificate generated for the test (openssl) and checked by curl.
@Suite("TLS", .timeLimit(.minutes(2)))
struct TLSTests {
    /// A self-signed certificate for 127.0.0.1 and localhost, in a fresh directory.
    static func makeCertificate() throws -> (directory: URL, cert: String, key: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mhd-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let (cert, key) = try makeCertificate(commonName: "localhost", in: directory)
        return (directory, cert, key)
    }

    /// A self-signed certificate and key for 127.0.0.1 and localhost with the common name
    /// `commonName`, as `NAME.crt` and `NAME.key` in `directory` (made by openssl).
    static func makeCertificate(commonName: String, in directory: URL) throws -> (cert: String, key: String) {
        let cert = directory.appendingPathComponent("\(commonName).crt").path
        let key = directory.appendingPathComponent("\(commonName).key").path
        let result = try runCommand([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=\(commonName)", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        #expect(result.status == 0)
        return (cert, key)
    }

    @Test func servesHttpsVerifiedByCurl() async throws {
        let (directory, cert, key) = try Self.makeCertificate()
        defer { try? FileManager.default.removeItem(at: directory) }
        var router = Router()
        router.get("/secure") { _ in .text("over tls") }
        router.post("/echo") { request in Response(body: request.body) }
        var config = ServerConfig(name: "tls", port: 0)
        config.tls = try .files(certificate: cert, privateKey: key)
        let server = HTTPServer(config: config, router: router, logger: quietLogger)
        try await withRunning(server) { port async throws in
            #expect(server.address?.url == "https://127.0.0.1:\(port)")
            let get = try await offPool {
                try runCommand(["curl", "-sS", "--cacert", cert, "https://127.0.0.1:\(port)/secure"])
            }
            #expect(get.status == 0)
            #expect(get.output == "over tls")
            let post = try await offPool {
                try runCommand(["curl", "-sS", "--cacert", cert, "--data-binary", "ping", "https://localhost:\(port)/echo"])
            }
            #expect(post.output == "ping")
            // Without trusting the certificate, curl refuses the connection.
            let untrusted = try await offPool { try runCommand(["curl", "-sS", "https://127.0.0.1:\(port)/secure"]) }
            #expect(untrusted.status != 0)
        }
    }

    @Test func badCertificateIsAClearStartupError() async throws {
        var config = ServerConfig(name: "broken", port: 0)
        config.tls = ServerConfig.TLS(certificatePEM: "not a certificate", privateKeyPEM: "not a key")
        let server = HTTPServer(config: config, router: Router(), logger: quietLogger)
        let error = await #expect(throws: ServerError.self) { try await withRunning(server) { _ in } }
        #expect(error?.code == .startFailed)
        #expect(error?.server == "broken")
        #expect(error.map { "\($0)".contains("HTTP engine") } == true)
    }

    @Test func missingFilesAreNamed() {
        let error = #expect(throws: FileError.self) {
            _ = try ServerConfig.TLS.files(certificate: "/nonexistent/cert.pem", privateKey: "/nonexistent/key.pem")
        }
        #expect(error?.path == "/nonexistent/cert.pem")
        #expect(error.map { "\($0)".contains("No such file") } == true)
    }

    @Test func keyIsNeverPrinted() {
        let tls = ServerConfig.TLS(certificatePEM: "CERT", privateKeyPEM: "-----BEGIN PRIVATE KEY----- secret")
        #expect(!"\(tls)".contains("secret"))
    }
}
