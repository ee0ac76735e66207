import Foundation
import Glibc
@_spi(Testing) @testable import MHDServers
import MHDServersTesting
import Testing

/// A tree of files in a fresh temporary directory: `www/` is served, everything beside it is
/// outside and must never be reached through it.
final class FileTree: Sendable {
    let root: String
    var www: String { root + "/www" }
    /// What every file outside `www/` holds: a response containing it has escaped.
    static let outside = "OUTSIDE-THE-TREE"
    /// The modification time of every file: Tue, 02 Jan 2024 03:04:05 GMT.
    static let modified: Int64 = 1_704_164_645
    static let modifiedText = "Tue, 02 Jan 2024 03:04:05 GMT"
    static let hello = "hello, files\n"
    /// 256 bytes: 0, 1, …, 255.
    static let data = (0...255).map { UInt8($0) }

    init() throws {
        let manager = FileManager.default
        root = manager.temporaryDirectory.appendingPathComponent("mhd-files-\(UUID().uuidString)").path
        let www = root + "/www"
        for directory in [www, www + "/sub", www + "/noindex", www + "/.hidden", root + "/outside"] {
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let files: [(String, [UInt8])] = [
            (www + "/hello.txt", Array(Self.hello.utf8)),
            (www + "/data.bin", Self.data),
            (www + "/index.html", Array("<h1>root index</h1>".utf8)),
            (www + "/sub/index.html", Array("<h1>sub index</h1>".utf8)),
            (www + "/sub/style.css", Array("body{}".utf8)),
            (www + "/sub/a b.txt", Array("spaced".utf8)),
            (www + "/noindex/file.json", Array("{}".utf8)),
            (www + "/empty.txt", []),
            (www + "/.env", Array("SECRET=\(Self.outside)".utf8)),
            (www + "/.hidden/file.txt", Array(Self.outside.utf8)),
            (root + "/Package.swift", Array(Self.outside.utf8)),
            (root + "/secret.txt", Array(Self.outside.utf8)),
            (root + "/outside/secret.txt", Array(Self.outside.utf8)),
        ]
        for (path, bytes) in files {
            guard manager.createFile(atPath: path, contents: Data(bytes)) else { throw ClientError.malformed(path) }
        }
        try manager.createSymbolicLink(atPath: www + "/link-out", withDestinationPath: root + "/secret.txt")
        try manager.createSymbolicLink(atPath: www + "/link-relative", withDestinationPath: "../secret.txt")
        try manager.createSymbolicLink(atPath: www + "/link-dir", withDestinationPath: root + "/outside")
        try manager.createSymbolicLink(atPath: www + "/link-in", withDestinationPath: "hello.txt")
        for (path, _) in files {
            try manager.setAttributes(
                [.modificationDate: Date(timeIntervalSince1970: TimeInterval(Self.modified))], ofItemAtPath: path)
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    /// The strong entity tag the server must send for `path`: inode, size, mtime in ns, in hex.
    static func entityTag(of path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "missing" }
        let nanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        return "\"\(String(UInt64(info.st_ino), radix: 16))-\(String(UInt64(info.st_size), radix: 16))-"
            + "\(String(UInt64(bitPattern: nanoseconds), radix: 16))\""
    }

    /// A router serving `www/` at `/static`, and single files through `Response.file(at:)`.
    func router(servesDotfiles: Bool = false) throws -> Router {
        var router = Router()
        try router.files("/static", from: www, servesDotfiles: servesDotfiles)
        let hello = www + "/hello.txt"
        router.get("/one") { request in try Response.file(at: hello, for: request) }
        router.post("/one") { request in try Response.file(at: hello, for: request) }
        let root = self.root
        router.get("/missing") { request in try Response.file(at: root + "/nope.txt", for: request) }
        router.get("/directory") { request in try Response.file(at: root + "/www", for: request) }
        router.get("/typed") { request in try Response.file(at: hello, for: request, contentType: "text/x-greeting") }
        return router
    }
}

@Suite("File responses", .timeLimit(.minutes(5)))
struct FileResponseTests {
    /// Headers of a raw response but `Date`, in order, names lowercased.
    static func headersButDate(_ response: RawResponse) -> [String] {
        response.headers.filter { $0.0.lowercased() != "date" }.map { "\($0.0.lowercased()): \($0.1)" }
    }

    // MARK: Whole files

    @Test func wholeFileWithExactHeadersAndBytes() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let entityTag = FileTree.entityTag(of: tree.www + "/hello.txt")
        try await withServer(try tree.router()) { port async throws in
            for path in ["/static/hello.txt", "/one"] {
                let response = try await request(port, "GET", path)
                #expect(response.status == 200)
                #expect(response.text == FileTree.hello)
                #expect(response.header("Content-Length") == "\(FileTree.hello.utf8.count)")
                #expect(response.header("Content-Type") == "text/plain; charset=utf-8")
                #expect(response.header("Last-Modified") == FileTree.modifiedText)
                #expect(response.header("ETag") == entityTag)
                #expect(response.header("Accept-Ranges") == "bytes")
                #expect(response.header("Content-Range") == nil)
            }
            let binary = try await request(port, "GET", "/static/data.bin")
            #expect(binary.body == FileTree.data)
            #expect(binary.header("Content-Type") == "application/octet-stream")
            #expect(try await request(port, "GET", "/static/sub/style.css").header("Content-Type") == "text/css; charset=utf-8")
            #expect(try await request(port, "GET", "/typed").header("Content-Type") == "text/x-greeting")
            let spaced = try await request(port, "GET", "/static/sub/a%20b.txt")
            #expect(spaced.status == 200 && spaced.text == "spaced")
            let empty = try await request(port, "GET", "/static/empty.txt")
            #expect(empty.status == 200 && empty.body.isEmpty && empty.header("Content-Length") == "0")
        }
    }

    @Test func headHasTheHeadersOfGetAndNoBody() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        try await withServer(try tree.router()) { port async throws in
            for (path, headers) in [
                ("/static/data.bin", [String: String]()), ("/static/data.bin", ["Range": "bytes=10-19"]),
                ("/static/empty.txt", [:]),
            ] {
                // HEAD then GET on one connection: a body after the HEAD would be read as the
                // start of the GET's response and fail to parse.
                let (head, get, unread) = try await offPool {
                    let connection = try Connection(port: port)
                    let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
                    try connection.send("HEAD \(path) HTTP/1.1\r\nHost: t\r\n\(extra)\r\n")
                    let head = try connection.readResponse(head: true)
                    try connection.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\(extra)Connection: close\r\n\r\n")
                    return (head, try connection.readResponse(), connection.unreadBytes())
                }
                #expect(head.status == (headers.isEmpty ? 200 : 206))
                #expect(head.status == get.status)
                #expect(head.header("Content-Length") == "\(get.body.count)")
                #expect(Self.headersButDate(head) == Self.headersButDate(get).filter { $0 != "connection: close" })
                #expect(unread.isEmpty)
            }
            // curl agrees: the length of the file, no body.
            let curl = try await offPool {
                try runCommand(["curl", "-sS", "-I", "http://127.0.0.1:\(port)/static/data.bin"])
            }
            #expect(curl.status == 0)
            #expect(curl.output.lowercased().contains("content-length: 256"))
        }
    }

    // MARK: Conditional GET

    @Test func notModifiedByEntityTag() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let tag = FileTree.entityTag(of: tree.www + "/hello.txt")
        try await withServer(try tree.router()) { port async throws in
            for value in [tag, #""other", "# + tag, "W/" + tag, "*", #""a","b" ,  "# + tag] {
                let response = try await request(port, "GET", "/static/hello.txt", headers: ["If-None-Match": value])
                #expect(response.status == 304, "If-None-Match: \(value)")
                #expect(response.header("ETag") == tag)
                #expect(response.header("Last-Modified") == FileTree.modifiedText)
                // The length a 200 would have, or none (RFC 9110 §8.6): never a 0 for a file of 13 bytes.
                #expect(response.header("Content-Length") == "\(FileTree.hello.utf8.count)")
                #expect(response.header("Content-Type") == nil)
            }
            for value in [#""other""#, "W/\"other\"", String(tag.dropLast()) + "0\"", "garbage"] {
                let response = try await request(port, "GET", "/static/hello.txt", headers: ["If-None-Match": value])
                #expect(response.status == 200, "If-None-Match: \(value)")
                #expect(response.text == FileTree.hello)
            }
            // A 304 on a kept-alive connection has no body: the next response follows at once.
            let (notModified, next, unread) = try await offPool {
                let connection = try Connection(port: port)
                try connection.send("GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \(tag)\r\n\r\n")
                let notModified = try connection.readResponse()
                try connection.send("GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return (notModified, try connection.readResponse(), connection.unreadBytes())
            }
            #expect(notModified.status == 304)
            #expect(next.text == FileTree.hello)
            #expect(unread.isEmpty)
            // Not for other methods: the precondition fails.
            let post = try await request(port, "POST", "/one", headers: ["If-None-Match": tag], body: "")
            #expect(post.status == 412)
        }
    }

    @Test func notModifiedByDate() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        try await withServer(try tree.router()) { port async throws in
            let path = "/static/hello.txt"
            for date in [
                FileTree.modifiedText, "Tue, 02 Jan 2024 03:04:06 GMT", "Wed, 03 Jan 2024 00:00:00 GMT",
                "Tuesday, 02-Jan-24 03:04:05 GMT", "Tue Jan  2 03:04:05 2024",
            ] {
                let response = try await request(port, "GET", path, headers: ["If-Modified-Since": date])
                #expect(response.status == 304, "If-Modified-Since: \(date)")
                #expect(response.body.isEmpty)
            }
            for date in ["Tue, 02 Jan 2024 03:04:04 GMT", "Mon, 01 Jan 2024 03:04:05 GMT", "yesterday", ""] {
                let response = try await request(port, "GET", path, headers: ["If-Modified-Since": date])
                #expect(response.status == 200, "If-Modified-Since: \(date)")
            }
            // If-None-Match present: If-Modified-Since is not looked at.
            let both = try await request(
                port, "GET", path, headers: ["If-None-Match": #""other""#, "If-Modified-Since": FileTree.modifiedText])
            #expect(both.status == 200)
            // HEAD too.
            let head = try await request(port, "HEAD", path, headers: ["If-Modified-Since": FileTree.modifiedText])
            #expect(head.status == 304)
        }
    }

    @Test func failedPreconditions() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let tag = FileTree.entityTag(of: tree.www + "/hello.txt")
        try await withServer(try tree.router()) { port async throws in
            let path = "/static/hello.txt"
            #expect(try await request(port, "GET", path, headers: ["If-Match": tag]).status == 200)
            #expect(try await request(port, "GET", path, headers: ["If-Match": "*"]).status == 200)
            #expect(try await request(port, "GET", path, headers: ["If-Match": #""other""#]).status == 412)
            #expect(try await request(port, "GET", path, headers: ["If-Match": "W/" + tag]).status == 412)  // strong comparison
            #expect(
                try await request(port, "GET", path, headers: ["If-Unmodified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"]).status
                    == 412)
            #expect(try await request(port, "GET", path, headers: ["If-Unmodified-Since": FileTree.modifiedText]).status == 200)
        }
    }

    // MARK: Ranges

    @Test func singleRanges() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let data = FileTree.data
        try await withServer(try tree.router()) { port async throws in
            let cases: [(String, ClosedRange<Int>)] = [
                ("bytes=0-9", 0...9), ("bytes=250-", 250...255), ("bytes=-6", 250...255), ("bytes=200-999", 200...255),
                ("bytes=0-0", 0...0), ("bytes=255-255", 255...255), ("bytes=-1000", 0...255),
                ("bytes=3-4,", 3...4), (" bytes=3-4 ", 3...4), ("bytes=10-99999999999999999999999", 10...255),
            ]
            for (range, expected) in cases {
                let response = try await request(port, "GET", "/static/data.bin", headers: ["Range": range])
                #expect(response.status == 206, "Range: \(range)")
                #expect(response.header("Content-Range") == "bytes \(expected.lowerBound)-\(expected.upperBound)/256")
                #expect(response.header("Content-Length") == "\(expected.count)")
                #expect(response.body == Array(data[expected]), "Range: \(range)")
                #expect(response.header("Content-Type") == "application/octet-stream")
                #expect(response.header("ETag") == FileTree.entityTag(of: tree.www + "/data.bin"))
            }
            // The unit is case-insensitive.
            #expect(try await request(port, "GET", "/static/data.bin", headers: ["Range": "Bytes=1-2"]).body == [1, 2])
            // curl's -r sends a Range and gets exactly those bytes.
            let curl = try await offPool {
                try runCommand(["curl", "-sS", "-r", "100-103", "-w", " %{http_code}", "http://127.0.0.1:\(port)/static/hello.txt"])
            }
            #expect(curl.output.hasSuffix(" 416"))  // hello.txt has 13 bytes
            let curlPart = try await offPool {
                try runCommand(["curl", "-sS", "-r", "0-4", "-w", " %{http_code}", "http://127.0.0.1:\(port)/static/hello.txt"])
            }
            #expect(curlPart.output == "hello 206")
        }
    }

    @Test func unsatisfiableAndIgnoredRanges() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        try await withServer(try tree.router()) { port async throws in
            for (path, range, size) in [
                ("/static/data.bin", "bytes=256-", 256), ("/static/data.bin", "bytes=1000-2000", 256),
                ("/static/data.bin", "bytes=-0", 256), ("/static/empty.txt", "bytes=0-", 0),
                ("/static/empty.txt", "bytes=-5", 0),
            ] {
                let response = try await request(port, "GET", path, headers: ["Range": range])
                #expect(response.status == 416, "Range: \(range) of \(path)")
                #expect(response.header("Content-Range") == "bytes */\(size)")
            }
            // Several ranges, a malformed one, another unit: the whole file.
            for range in ["bytes=0-1,5-6", "bytes=0-1, 300-400", "bytes=5-1", "bytes=a-b", "bytes=", "items=0-1", "bytes 0-1", "bytes=--1", "bytes = 3-4"] {
                let response = try await request(port, "GET", "/static/data.bin", headers: ["Range": range])
                #expect(response.status == 200, "Range: \(range)")
                #expect(response.body == FileTree.data)
                #expect(response.header("Content-Range") == nil)
            }
            // Ranges are for GET (and HEAD) only.
            let post = try await request(port, "POST", "/one", headers: ["Range": "bytes=0-1"], body: "")
            #expect(post.status == 200 && post.text == FileTree.hello)
        }
    }

    @Test func ifRange() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let tag = FileTree.entityTag(of: tree.www + "/data.bin")
        try await withServer(try tree.router()) { port async throws in
            for (value, status) in [
                (tag, 206), (FileTree.modifiedText, 206), (#""stale""#, 200), ("W/" + tag, 200),
                ("Tue, 02 Jan 2024 03:04:06 GMT", 200), ("Mon, 01 Jan 2024 03:04:05 GMT", 200), ("nonsense", 200),
            ] {
                let response = try await request(
                    port, "GET", "/static/data.bin", headers: ["Range": "bytes=0-3", "If-Range": value])
                #expect(response.status == status, "If-Range: \(value)")
                #expect(response.body == (status == 206 ? [0, 1, 2, 3] : FileTree.data))
            }
            // A failed If-Range with an unsatisfiable range still sends the whole file.
            let whole = try await request(
                port, "GET", "/static/data.bin", headers: ["Range": "bytes=900-", "If-Range": #""stale""#])
            #expect(whole.status == 200)
        }
    }

    // MARK: Directories and traversal

    @Test func directoriesAndIndexes() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        try await withServer(try tree.router()) { port async throws in
            let root = try await request(port, "GET", "/static/")
            #expect(root.status == 200 && root.text == "<h1>root index</h1>")
            #expect(root.header("Content-Type") == "text/html; charset=utf-8")
            let sub = try await request(port, "GET", "/static/sub/")
            #expect(sub.status == 200 && sub.text == "<h1>sub index</h1>")
            for (path, location) in [("/static", "./static/"), ("/static/sub", "./sub/")] {
                let redirect = try await request(port, "GET", path)
                #expect(redirect.status == 301, "\(path)")
                #expect(redirect.header("Location") == location)
            }
            // curl follows the redirect to the index.
            let followed = try await offPool {
                try runCommand(["curl", "-sSL", "http://127.0.0.1:\(port)/static/sub"])
            }
            #expect(followed.output == "<h1>sub index</h1>")
            #expect(try await request(port, "GET", "/static/noindex/").status == 404)
            #expect(try await request(port, "GET", "/static/noindex").status == 404)
            #expect(try await request(port, "GET", "/static/noindex/file.json").header("Content-Type") == "application/json")
            #expect(try await request(port, "GET", "/static/hello.txt/").status == 404)
            #expect(try await request(port, "GET", "/static/nope.txt").status == 404)
            #expect(try await request(port, "POST", "/static/hello.txt", body: "").status == 405)
            // Response.file(at:) refuses what is not a regular file, and a missing one.
            #expect(try await request(port, "GET", "/missing").status == 404)
            #expect(try await request(port, "GET", "/directory").status == 404)
        }
        // With index: nil a directory is not found.
        var router = Router()
        try router.files("/files", from: tree.www, index: nil)
        try await withServer(router) { port async throws in
            #expect(try await request(port, "GET", "/files/").status == 404)
            #expect(try await request(port, "GET", "/files/hello.txt").status == 200)
        }
    }

    @Test func traversalNeverLeavesTheDirectory() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        try await withServer(try tree.router()) { port async throws in
            let targets = [
                "/static/../Package.swift", "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/%2E%2E/secret.txt",
                "/static/..%2fsecret.txt", "/static/%2e%2e%2fsecret.txt", "/static/sub/../../secret.txt",
                "/static/sub/%2e%2e/%2e%2e/secret.txt", "/static/./hello.txt", "/static/%2e/hello.txt",
                "/static/..", "/static/%2e%2e", "/static/%2e%2e/", "/static/%00", "/static/hello.txt%00.png",
                "/static/%00/../secret.txt", "/static/link-out", "/static/link-relative", "/static/link-dir/secret.txt",
                "/static/link-dir/", "/static/link-in", "/static/.env", "/static/%2eenv", "/static/.hidden/file.txt",
                "/static/.hidden/", "/static//..//secret.txt", "/static/\\..\\secret.txt", "/static/%5c..%5csecret.txt",
                "http://t/static/../secret.txt", "/static/%c0%ae%c0%ae/secret.txt",
            ]
            for target in targets {
                let response = try await offPool {
                    let connection = try Connection(port: port)
                    try connection.send("GET \(target) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    return try connection.readResponse()
                }
                #expect([400, 404].contains(response.status), "\(target): \(response.status)")
                #expect(!response.text.contains(FileTree.outside), "\(target) escaped: \(response.text)")
            }
            // `.` is refused too, even on the way to a file that exists.
            #expect(try await request(port, "GET", "/static/./hello.txt").status == 404)
            // An encoded NUL never reaches a handler: the engine answers 400.
            #expect(try await request(port, "GET", "/static/hello.txt%00.png").status == 400)
            // curl, told to send the path as it is.
            for path in ["/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/link-out"] {
                let curl = try await offPool {
                    try runCommand(["curl", "-sS", "--path-as-is", "-w", " %{http_code}", "http://127.0.0.1:\(port)\(path)"])
                }
                #expect(curl.output.hasSuffix(" 404"), "\(path): \(curl.output)")
                #expect(!curl.output.contains(FileTree.outside))
            }
        }
        // Dotfiles when asked for; `..`, `.` and links still refused.
        try await withServer(try tree.router(servesDotfiles: true)) { port async throws in
            #expect(try await request(port, "GET", "/static/.env").status == 200)
            #expect(try await request(port, "GET", "/static/.hidden/file.txt").status == 200)
            for path in ["/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/./hello.txt", "/static/link-out"] {
                let response = try await request(port, "GET", path)
                #expect(response.status == 404, "\(path)")
                #expect(!response.text.contains(FileTree.outside))
            }
        }
    }

    // MARK: In process, TLS

    @Test func inProcessReadsTheFile() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let tag = FileTree.entityTag(of: tree.www + "/data.bin")
        try await tree.router().test(.inProcess) { client in
            let whole = try await client.execute(.get, "/static/data.bin")
            #expect(whole.status == .ok && whole.body == FileTree.data)
            #expect(whole.headers[.eTag] == tag && whole.headers[.lastModified] == FileTree.modifiedText)
            let part = try await client.execute(.get, "/static/data.bin", headers: [.range: "bytes=-3"])
            #expect(part.status == .partialContent && part.body == [253, 254, 255])
            #expect(part.headers[.contentRange] == "bytes 253-255/256")
            let notModified = try await client.execute(.get, "/static/data.bin", headers: [.ifNoneMatch: tag])
            #expect(notModified.status == .notModified && notModified.body.isEmpty)
            let head = try await client.execute(.head, "/static/data.bin")
            #expect(head.status == .ok && head.body.isEmpty && head.headers[.eTag] == tag)
            #expect(try await client.execute(.get, "/static/").text == "<h1>root index</h1>")
            for target in ["/static/%2e%2e/secret.txt", "/static/hello.txt%00.png", "/static/..%2fsecret.txt", "/static/link-out"] {
                let response = try await client.execute(.get, target)
                #expect(response.status == .notFound, "\(target)")
                #expect(!response.text.contains(FileTree.outside))
            }
        }
    }

    @Test func overTLSTheEngineReadsTheFile() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let (directory, cert, key) = try TLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A file larger than the engine's buffers, so it is read in many blocks.
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }
        _ = FileManager.default.createFile(atPath: tree.www + "/big.bin", contents: Data(big))
        var config = ServerConfig(name: "tls-files", port: 0)
        config.tls = try .files(certificate: cert, privateKey: key)
        let server = HTTPServer(config: config, router: try tree.router(), logger: quietLogger)
        try await withRunning(server) { port async throws in
            let output = tree.root + "/downloaded.bin"
            let whole = try await offPool {
                try runCommand([
                    "curl", "-sS", "--cacert", cert, "-o", output, "-w", "%{http_code} %{size_download}",
                    "https://127.0.0.1:\(port)/static/big.bin",
                ])
            }
            #expect(whole.output == "200 \(big.count)")
            #expect(FileManager.default.contents(atPath: output) == Data(big))
            let part = try await offPool {
                try runCommand([
                    "curl", "-sS", "--cacert", cert, "-r", "1000000-1000099", "-o", output, "-w", "%{http_code}",
                    "https://127.0.0.1:\(port)/static/big.bin",
                ])
            }
            #expect(part.output == "206")
            #expect(FileManager.default.contents(atPath: output) == Data(big[1_000_000...1_000_099]))
        }
    }

    // MARK: Errors of Response.file

    @Test func notRegularFilesAndDescriptors() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let fifo = tree.www + "/fifo"
        #expect(mkfifo(fifo, 0o644) == 0)
        let get = Request(method: .get, path: "/")
        // A FIFO is refused without blocking on its open.
        #expect(throws: HTTPError.self) { _ = try Response.file(at: fifo, for: get) }
        #expect((try? Response.file(at: fifo, for: get)) == nil)
        for path in [tree.www, tree.root + "/none", "/dev/null", tree.www + "/hello.txt\0.png"] {
            do {
                _ = try Response.file(at: path, for: get)
                Issue.record("\(path) was served")
            } catch let error as HTTPError {
                #expect(error.status == .notFound, "\(path)")
            }
        }
        // The directory served must exist.
        #expect(throws: FileError.self) { _ = try FileDirectory(tree.root + "/none") }
        #expect(throws: FileError.self) { _ = try FileDirectory(tree.www + "/hello.txt") }
        #expect(throws: FileError.self) { _ = try FileDirectory(tree.www, index: "../index.html") }
        // A descriptor: read from its start, whatever its offset.
        let descriptor = open(tree.www + "/data.bin", O_RDONLY)
        #expect(lseek(descriptor, 100, SEEK_SET) == 100)
        let response = try Response.file(
            descriptor: descriptor, for: Request(method: .get, path: "/", headers: [.range: "bytes=0-1"]))
        #expect(response.status == .partialContent)
        #expect(response.headers[.contentType] == "application/octet-stream")
        #expect(try await response.collectedBody() == [0, 1])
        #expect(throws: FileError.self) { _ = try Response.file(descriptor: -1, for: get) }  // a bug, answered 500
    }
}

/// What only a process where nothing else runs can measure: memory, descriptors, and a file
/// root may not read (its rights are dropped). Each runs as an exit test that records its own
/// issues (they reach this process through the exit test's back channel): observing the
/// child's standard error would hold a second thread of the few every other test shares, for
/// as long as the child runs. One at a time, for the same reason.
@Suite("File responses in processes of their own", .serialized, .timeLimit(.minutes(5)))
struct FileResponseProcessTests {
    /// 403: a file the process may not read. The process drops root's rights (root reads
    /// anything) while it serves: its effective user becomes `nobody`.
    @Test func unreadableFileIsForbidden() async {
        await #expect(processExitsWith: .success) {
            do {
                try await FileResponseProcessTests.forbiddenCheck()
            } catch {
                Issue.record(error)
            }
        }
    }

    static func forbiddenCheck() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        chmod(tree.root, 0o755)
        chmod(tree.www, 0o755)
        chmod(tree.www + "/hello.txt", 0o644)
        _ = FileManager.default.createFile(atPath: tree.www + "/locked.txt", contents: Data("locked".utf8))
        chmod(tree.www + "/locked.txt", 0o000)
        try FileManager.default.createDirectory(atPath: tree.www + "/closed", withIntermediateDirectories: false)
        _ = FileManager.default.createFile(atPath: tree.www + "/closed/inside.txt", contents: Data("inside".utf8))
        chmod(tree.www + "/closed", 0o000)
        let router = try tree.router()
        let wasRoot = geteuid() == 0
        if wasRoot { try #require(seteuid(65534) == 0, "seteuid: \(errno)") }
        defer { if wasRoot { _ = seteuid(0) } }
        try await withServer(router) { port async throws in
            for (path, status) in [
                ("/static/locked.txt", 403), ("/static/closed/inside.txt", 403), ("/static/closed/", 403),
                ("/static/hello.txt", 200),
            ] {
                #expect(try await request(port, "GET", path).status == status, "\(path)")
            }
            #expect(try await request(port, "GET", "/static/locked.txt").text.contains("may not be read"))
        }
    }

    // MARK: Memory and descriptors


    /// A sparse file of `size` bytes (no disk space used).
    static func makeSparseFile(_ path: String, size: Int) throws {
        let descriptor = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        defer { close(descriptor) }
        guard descriptor >= 0, ftruncate(descriptor, off_t(size)) == 0 else { throw ClientError.malformed("\(path): \(errno)") }
    }

    /// The bound on the server's memory growth while it sends a file.
    static let rssGrowthBoundKB = 64 * 1024

    /// Where the exit test of the process `parent` leaves its figures.
    static func figuresPath(parent: pid_t) -> String { "/tmp/mhd-files-figures-\(parent).txt" }

    /// A 1 GiB file (sparse) downloaded with curl to /dev/null over plain HTTP (sendfile), and
    /// a 64 MiB one over TLS (the engine reads the file into its buffers): all of it arrives,
    /// and the resident memory of the process, which is the server, grows by less than 64 MB,
    /// sampled every 20 ms during the download (under a sanitizer, which keeps memory of its
    /// own, 64 MiB and no bound: see ``Sanitizers``). The figures are printed.
    @Test func gigabyteDownloadKeepsMemoryBounded() async throws {
        let figures = Self.figuresPath(parent: getpid())
        defer { unlink(figures) }
        await #expect(processExitsWith: .success) {
            do {
                try await FileResponseProcessTests.gigabyteDownload()
            } catch {
                Issue.record(error)
            }
        }
        let text = try String(contentsOfFile: figures, encoding: .utf8)
        #expect(text.contains("\(Sanitizers.transferSize(1 << 30) >> 20) MiB over http"), "\(text)")
        print(text, terminator: "")
    }

    static func gigabyteDownload() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        try makeSparseFile(tree.www + "/big.bin", size: Sanitizers.transferSize(1 << 30))
        try makeSparseFile(tree.www + "/medium.bin", size: 64 << 20)
        let (certificates, cert, key) = try TLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: certificates) }
        var tls = ServerConfig(name: "tls-files", port: 0)
        tls.tls = try .files(certificate: cert, privateKey: key)
        let servers = [
            ("http", "big.bin", Sanitizers.transferSize(1 << 30),
                HTTPServer(config: ServerConfig(name: "files", port: 0), router: try tree.router(), logger: quietLogger)),
            ("https", "medium.bin", 64 << 20, HTTPServer(config: tls, router: try tree.router(), logger: quietLogger)),
        ]
        var figures = ""
        for (scheme, file, size, server) in servers {
            try await withRunning(server) { port async throws in
                let url = "\(scheme)://127.0.0.1:\(port)/static/\(file)"
                // Warm up: the first request of a server allocates what every later one reuses.
                _ = try await offPool { try runCommand(["curl", "-sS", "--cacert", cert, "-o", "/dev/null", "-r", "0-99", url]) }
                let before = ResidentMemory.kilobytes()
                let peak = Shared(before)
                let sampler = Task {
                    while !Task.isCancelled {
                        let now = ResidentMemory.kilobytes()
                        if now > peak.value { peak.value = now }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
                let start = ContinuousClock.now
                let curl = try await offPool {
                    try runCommand(["curl", "-sS", "--cacert", cert, "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url])
                }
                let elapsed = ContinuousClock.now - start
                sampler.cancel()
                _ = await sampler.value
                let after = ResidentMemory.kilobytes()
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                figures += "measured: \(size >> 20) MiB over \(scheme) in \(String(format: "%.2f", seconds)) s "
                    + "(\(String(format: "%.0f", Double(size) / seconds / 1e6)) MB/s): RSS before \(before) kB, "
                    + "peak \(peak.value) kB (+\(peak.value - before) kB), after \(after) kB\n"
                #expect(curl.output == "200 \(size)", "\(scheme)")
                if !Sanitizers.active {
                    #expect(peak.value - before < rssGrowthBoundKB, "\(scheme): RSS grew by \(peak.value - before) kB")
                    #expect(after - before < rssGrowthBoundKB, "\(scheme): RSS grew by \(after - before) kB")
                }
            }
        }
        try figures.write(toFile: figuresPath(parent: getppid()), atomically: true, encoding: .utf8)
    }

    /// Many file responses of every kind — whole, ranges, 304, 412, 416, HEAD, refused paths,
    /// descriptors handed over, downloads the client abandons — and the process has no more
    /// descriptors open than before; during a download exactly one more than its two sockets
    /// (the engine's duplicate of the file), and none once it is over.
    @Test func fileResponsesLeaveNoDescriptorBehind() async {
        await #expect(processExitsWith: .success) {
            do {
                try await FileResponseProcessTests.descriptorCheck()
            } catch {
                Issue.record(error)
            }
        }
    }

    static func descriptorCheck() async throws {
        let tree = try FileTree()
        defer { tree.remove() }
        try makeSparseFile(tree.www + "/big.bin", size: 64 << 20)
        var router = try tree.router()
        let data = tree.www + "/data.bin"
        router.get("/descriptor") { request in
            try Response.file(descriptor: open(data, O_RDONLY | O_CLOEXEC), for: request)
        }
        let tag = FileTree.entityTag(of: data)
        /// Waits until `holds` (the server closes a connection's descriptors when it notices
        /// the close), up to 10 s; records an issue if it never does.
        func expectCount(_ what: String, _ expected: Int, _ holds: (Int) -> Bool) async {
            let deadline = ContinuousClock.now + .seconds(10)
            while !holds(FileDescriptorTests.openDescriptors()) && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            let now = FileDescriptorTests.openDescriptors()
            #expect(holds(now), "\(what): \(now) open, \(expected) expected")
        }
        /// The count once it has not changed for 300 ms (connections closed a moment ago are gone).
        func settledCount() async -> Int {
            var last = FileDescriptorTests.openDescriptors()
            var steady = 0
            while steady < 30 {
                try? await Task.sleep(for: .milliseconds(10))
                let now = FileDescriptorTests.openDescriptors()
                steady = now == last ? steady + 1 : 0
                last = now
            }
            return last
        }
        try await FileDescriptorTests.serveOnce()  // the runtime's own descriptors, opened on first use
        let beforeServer = await settledCount()
        try await withServer(router) { port async throws in
            _ = try await request(port, "GET", "/static/hello.txt")
            let baseline = await settledCount()
            let requests: [(String, String, [String: String])] = [
                ("GET", "/static/data.bin", [:]), ("GET", "/static/data.bin", ["Range": "bytes=1-2"]),
                ("GET", "/static/data.bin", ["Range": "bytes=999-"]), ("GET", "/static/data.bin", ["If-None-Match": tag]),
                ("GET", "/static/data.bin", ["If-Match": #""x""#]), ("HEAD", "/static/data.bin", [:]),
                ("GET", "/static/", [:]), ("GET", "/static/sub", [:]), ("GET", "/static/%2e%2e/secret.txt", [:]),
                ("GET", "/static/link-out", [:]), ("GET", "/static/nope", [:]), ("GET", "/descriptor", [:]),
                ("GET", "/descriptor", ["If-None-Match": tag]), ("GET", "/descriptor", ["Range": "bytes=300-"]),
                ("HEAD", "/descriptor", [:]), ("GET", "/one", [:]), ("GET", "/missing", [:]),
            ]
            for _ in 0..<10 {
                for (method, path, headers) in requests { _ = try await request(port, method, path, headers: headers) }
            }
            // One keep-alive connection, many responses.
            try await offPool {
                let connection = try Connection(port: port)
                for (method, path, headers) in requests {
                    let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
                    try connection.send("\(method) \(path) HTTP/1.1\r\nHost: t\r\n\(extra)\r\n")
                    _ = try connection.readResponse(head: method == "HEAD")
                }
            }
            await expectCount("after \(requests.count * 11) file responses", baseline) { $0 <= baseline }
            // A download under way holds one descriptor besides the two sockets; abandoned, none.
            for round in 0..<5 {
                let before = round == 0 ? await settledCount() : 0
                let connection = try Connection(port: port)
                try connection.send("GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
                var byte: UInt8 = 0
                _ = recv(connection.fd, &byte, 1, 0)  // the response has started
                if round == 0 { await expectCount("during a download", before + 3) { $0 == before + 3 } }
                connection.close()
            }
            await expectCount("after abandoned downloads", baseline) { $0 <= baseline }
        }
        await expectCount("after the server stopped", beforeServer) { $0 <= beforeServer }
    }
}

/// The pieces a file response is made of, checked one by one.
@Suite("File response parts")
struct FileResponsePartTests {
    @Test func httpDates() {
        // RFC 9110 §5.6.7's example, in its three forms.
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.parse("Sun Nov  6 08:49:37 1994") == 784_111_777)
        #expect(HTTPDate.parse(" Sun, 06 Nov 1994 08:49:37 GMT ") == 784_111_777)
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.format(-1) == "Wed, 31 Dec 1969 23:59:59 GMT")
        // Every day of four years (a leap year among them) writes and reads back.
        for day in stride(from: Int64(19_000), to: 19_000 + 4 * 366, by: 1) {
            let seconds = day * 86_400 + 45_296
            #expect(HTTPDate.parse(HTTPDate.format(seconds)) == seconds)
        }
        for bad in [
            "", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "Mon, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT", "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        ] {
            #expect(HTTPDate.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func byteRanges() {
        #expect(ByteRange.select("bytes=0-9", size: 100) == .part(0...9))
        #expect(ByteRange.select("bytes=90-", size: 100) == .part(90...99))
        #expect(ByteRange.select("bytes=-10", size: 100) == .part(90...99))
        #expect(ByteRange.select("bytes=-1000", size: 100) == .part(0...99))
        #expect(ByteRange.select("bytes=50-1000", size: 100) == .part(50...99))
        #expect(ByteRange.select("bytes=99-99", size: 100) == .part(99...99))
        #expect(ByteRange.select("bytes=100-", size: 100) == .unsatisfiable)
        #expect(ByteRange.select("bytes=-0", size: 100) == .unsatisfiable)
        #expect(ByteRange.select("bytes=0-", size: 0) == .unsatisfiable)
        #expect(ByteRange.select("bytes=99999999999999999999999-", size: 100) == .unsatisfiable)
        for ignored in ["bytes=0-1,3-4", "bytes=5-4", "bytes=x-1", "bytes=", "bytes=-", "lines=0-1", "bytes=1-2-3", "bytes=+1-2"] {
            #expect(ByteRange.select(ignored, size: 100) == .whole, "\(ignored)")
        }
        #expect(ByteRange.contentRange(0...9, size: 100) == "bytes 0-9/100")
        #expect(ByteRange.unsatisfiedRange(size: 100) == "bytes */100")
    }

    @Test func entityTags() {
        #expect(EntityTag.list("*") == .any)
        #expect(EntityTag.list(#" "a" , W/"b","c""#)
            == .tags([EntityTag(opaque: #""a""#, isWeak: false), EntityTag(opaque: #""b""#, isWeak: true), EntityTag(opaque: #""c""#, isWeak: false)]))
        #expect(EntityTag.list(#""a", garbage, "b""#) == .tags([EntityTag(opaque: #""a""#, isWeak: false)]))
        #expect(EntityTag.list(#""unterminated"#) == .tags([]))
        #expect(EntityTag.single(#"W/"x""#)?.stronglyMatches(#""x""#) == false)
        #expect(EntityTag.single(#"W/"x""#)?.weaklyMatches(#""x""#) == true)
        #expect(EntityTag.single(#""x""#)?.stronglyMatches(#""x""#) == true)
        #expect(EntityTag.single(#""x" "y""#) == nil)
        let status = FileStatus(
            kind: .regular, size: 255, device: 1, inode: 0xABC, modifiedSeconds: 1, modifiedNanoseconds: 2)
        #expect(EntityTag.strong(for: status) == #""abc-ff-3b9aca02""#)
        var touched = status
        touched.modifiedNanoseconds += 1
        #expect(EntityTag.strong(for: touched) != EntityTag.strong(for: status))
    }

    @Test func mediaTypes() {
        #expect(MediaTypes.guess(forPath: "/a/b/index.HTML") == "text/html; charset=utf-8")
        #expect(MediaTypes.guess(forPath: "report.csv") == "text/csv; charset=utf-8")
        #expect(MediaTypes.guess(forPath: "app.mjs") == "text/javascript; charset=utf-8")
        #expect(MediaTypes.guess(forPath: "data.json") == "application/json")
        #expect(MediaTypes.guess(forPath: "font.woff2") == "font/woff2")
        #expect(MediaTypes.guess(forPath: "archive.tar.gz") == "application/gzip")
        #expect(MediaTypes.guess(forPath: "photo.jpeg") == MediaTypes.guess(forPath: "photo.jpg"))
        for none in ["README", ".profile", "dir.d/file", "file.unknown", ""] {
            #expect(MediaTypes.guess(forPath: none) == "application/octet-stream", "\(none)")
        }
        for (ext, type) in MediaTypes.byExtension where type.hasPrefix("text/") {
            #expect(type.hasSuffix("; charset=utf-8"), "\(ext)")
        }
    }

    @Test func directoryNames() throws {
        let tree = try FileTree()
        defer { tree.remove() }
        let directory = try FileDirectory(tree.www)
        #expect(directory.names(of: "") == [])
        #expect(directory.names(of: "/") == [])
        #expect(directory.names(of: "/a/b/") == ["a", "b"])
        for refused in ["a//b", "..", "a/../b", "./a", "a/.", ".env", "a/.git/config", "a\0b", "//"] {
            #expect(directory.names(of: refused) == nil, "\(refused)")
        }
        #expect(try FileDirectory(tree.www, servesDotfiles: true).names(of: ".well-known/x") == [".well-known", "x"])
        #expect(FileDirectory.percentEncoded("a b/ü?#") == "a%20b%2F%C3%BC%3F%23")
    }
}
