/// A directory whose files are served by request path, with no way out of it.
///
/// The directory is opened once, when the value is made. A request's path (already
/// percent-decoded) is then walked one name at a time, each opened relative to the one before
/// (`openat`), never joined into a path string. A name that is empty, `.` or `..`, or holds a NUL,
/// is refused (`404`), as is a name starting with `.` (a dotfile, such as `.git` or `.env`)
/// unless `servesDotfiles`. Symbolic links are never followed (`O_NOFOLLOW` on every name), so
/// one inside the directory, wherever it points, is answered `404` like a missing file; put
/// real files (or hard links) in the directory. Only regular files are served: devices, FIFOs
/// and sockets are `404`, an unreadable file is `403`.
///
/// A directory's path answers its `index` file (`index.html` by default) when it ends with `/`,
/// and is redirected there (`301`, `Location: ./name/`) when it does not, so that the index's
/// relative links work; without an index file, or with `index: nil`, a directory is `404`.
/// Files are answered like ``Response/file(at:for:contentType:)``: type by extension,
/// `ETag`, `Last-Modified`, `304`, one range.
///
/// ```swift
/// let assets = try FileDirectory("/srv/www")
/// router.get("/assets/*") { request in
///     try assets.response(for: request, path: request.parameters["*"] ?? "")
/// }
/// ```
public struct FileDirectory: Sendable {
    let directory: DirectoryDescriptor
    /// The file answered for a directory's path (`nil`: a directory is `404`).
    ///
    /// ```swift
    /// let site = try FileDirectory("/srv/www")
    /// print(site.index ?? "no index")   // index.html
    /// ```
    public let index: String?
    /// Whether names that start with `.` are served (`.well-known/`, say); never `.` or `..`.
    ///
    /// ```swift
    /// let acme = try FileDirectory("/srv/acme", index: nil, servesDotfiles: true)
    /// router.files("/", from: acme)   // GET /.well-known/acme-challenge/TOKEN
    /// ```
    public let servesDotfiles: Bool

    /// Opens the directory at `path` (a symbolic link in `path` itself is followed: it is
    /// yours). Throws ``FileError`` when it is not an open-able directory, and when `index` is
    /// not a single plain name.
    ///
    /// ```swift
    /// let site = try FileDirectory("/srv/www", index: "index.html", servesDotfiles: false)
    /// ```
    public init(_ path: String, index: String? = "index.html", servesDotfiles: Bool = false) throws {
        if let index, !DirectoryDescriptor.isPlainName(index) {
            throw FileError(path: index, reason: "an index must be a single file name")
        }
        do {
            directory = try DirectoryDescriptor(path: path)
        } catch {
            throw FileError(path: path, reason: error.reason == .notFound ? "no such directory" : error.errorText)
        }
        self.index = index
        self.servesDotfiles = servesDotfiles
    }

    /// The answer to `request` for the file at `path`, relative to the directory: names
    /// separated by `/` (one leading and one trailing `/` allowed; an empty path is the directory
    /// itself). Throws ``HTTPError`` `404` for a name it refuses or a file that is not there,
    /// `403` for one it may not read.
    ///
    /// ```swift
    /// let downloads = try FileDirectory("/srv/downloads", index: nil)
    /// router.get("/files/:name") { request in
    ///     var response = try downloads.response(for: request, path: request.parameters["name"] ?? "")
    ///     response.headers[.cacheControl] = "public, max-age=3600"
    ///     return response
    /// }
    /// ```
    public func response(for request: Request, path: String) throws -> Response {
        guard let names = names(of: path) else { throw FileAnswers.notFound }
        let asDirectory = path.hasSuffix("/") || request.path.hasSuffix("/")
        let found: DirectoryDescriptor.Found
        do {
            found = try directory.open(names)
        } catch {
            throw FileAnswers.answer(error, path: path)
        }
        switch consume found {
        case .file(let file):
            guard !asDirectory else { throw FileAnswers.notFound }  // `name/` names a directory
            return try Response.serving(file, for: request, contentType: MediaTypes.guess(forPath: names.last ?? ""))
        case .directory(let opened):
            guard let index else { throw FileAnswers.notFound }
            let file: OpenedFile
            do {
                file = try DirectoryDescriptor.openFile(index, in: opened)
            } catch {
                throw FileAnswers.answer(error, path: path)
            }
            _ = consume opened
            guard asDirectory else {
                // Redirect to the path with a slash, relative to the request's own path.
                let last = request.path.split(separator: "/").last ?? ""
                return Response(status: .movedPermanently, headers: [.location: "./\(Self.percentEncoded(last))/"])
            }
            return try Response.serving(file, for: request, contentType: MediaTypes.guess(forPath: index))
        }
    }

    /// The names of a relative path, or `nil` when one is refused.
    func names(of path: String) -> [String]? {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if parts.first == "" { parts.removeFirst() }
        if parts.last == "" { parts.removeLast() }
        var names: [String] = []
        names.reserveCapacity(parts.count)
        for part in parts {
            let name = String(part)
            guard DirectoryDescriptor.isPlainName(name), servesDotfiles || !name.hasPrefix(".") else { return nil }
            names.append(name)
        }
        return names
    }

    /// `name` with every byte but the unreserved ones (RFC 3986 §2.3) percent-encoded.
    static func percentEncoded(_ name: Substring) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in name.utf8 {
            switch byte {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E: out.append(byte)
            default: out += [0x25, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
