#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Response {
    /// The file at `path`, answered as `request` asks: whole, in part, or not at all when the
    /// client's copy is current.
    ///
    /// - `200` with the file, its `Content-Length`, `Content-Type` (`contentType`, or guessed
    ///   from the extension: `html`, `css`, `js`, `json`, `csv`, `png`, `pdf`, … text types with
    ///   `; charset=utf-8`, anything else `application/octet-stream`), `Last-Modified`, a strong
    ///   `ETag` (from the file's inode, size and modification time in nanoseconds) and
    ///   `Accept-Ranges: bytes`.
    /// - `304` (with the `ETag`, and the `Content-Length` a `200` would have) when `If-None-Match` names the `ETag` (weak comparison, or `*`),
    ///   or, without `If-None-Match`, when `If-Modified-Since` is not older than the file; `412`
    ///   when `If-Match` or `If-Unmodified-Since` fails (RFC 9110 §13.2.2).
    /// - For `GET` and `HEAD`, one range (`Range: bytes=0-499`, `bytes=500-`, `bytes=-500`): `206`
    ///   with `Content-Range: bytes 0-499/1234` (an end past the file is clamped to its last byte),
    ///   or `416` with `Content-Range: bytes */1234` when it starts past the end. An `If-Range`
    ///   that is not the current `ETag` or exactly the `Last-Modified` date sends the whole file.
    ///   Several ranges, a malformed field or another unit: the whole file (`200`).
    ///
    /// A missing file throws ``HTTPError`` `404`, as does a directory or anything but a regular
    /// file; a file the process may not read throws `403`. The body is sent by the server from
    /// the open file (with `sendfile`, no copy, on plain HTTP); `HEAD` gets the same headers and
    /// no body. Symbolic links in `path` are followed: the path is yours; to serve paths that come
    /// from requests, use ``FileDirectory`` or ``Router/files(_:from:index:servesDotfiles:)``.
    ///
    /// ```swift
    /// router.get("/exports/latest.csv") { request in
    ///     try Response.file(at: "/var/lib/exports/latest.csv", for: request)
    /// }
    /// router.get("/download") { request in
    ///     var response = try Response.file(at: "/var/lib/exports/2024.bin", for: request, contentType: "application/x-report")
    ///     response.headers[.contentDisposition] = #"attachment; filename="2024.bin""#
    ///     return response
    /// }
    /// ```
    public static func file(at path: String, for request: Request, contentType: String? = nil) throws -> Response {
        let file = try FileAnswers.open(path: path)
        return try serving(file, for: request, contentType: contentType ?? MediaTypes.guess(forPath: path))
    }

    /// The file open at `descriptor`, which the response takes over: it is closed when the
    /// response has been sent (or dropped), at once when the answer does not use the file (`412`,
    /// `416`), and when this throws. The file is read from its start, whatever the descriptor's
    /// current offset; without `contentType` it is sent as `application/octet-stream`. Answers
    /// like ``file(at:for:contentType:)``.
    ///
    /// ```swift
    /// router.get("/snapshot") { request in
    ///     let descriptor = try exporter.openSnapshot()   // an open, readable descriptor, now the response's
    ///     return try Response.file(descriptor: descriptor, for: request, contentType: "application/json")
    /// }
    /// ```
    public static func file(descriptor: Int32, for request: Request, contentType: String? = nil) throws -> Response {
        let file = try FileAnswers.adopt(descriptor: descriptor)
        return try serving(file, for: request, contentType: contentType ?? MediaTypes.fallback)
    }

    /// The answer for an open file (see ``file(at:for:contentType:)``). Takes the file over.
    static func serving(_ file: consuming OpenedFile, for request: Request, contentType: String) throws -> Response {
        let status = file.status
        guard status.kind == .regular else { throw FileAnswers.notFound }
        let entityTag = EntityTag.strong(for: status)
        // A modification time in the future is sent as now (RFC 9110 §8.8.2.1).
        let modified = min(status.modifiedSeconds, Int64(Date().timeIntervalSince1970))
        let lastModified = HTTPDate.format(modified)
        switch Preconditions.evaluate(request, entityTag: entityTag, modified: modified) {
        case .notModified:
            // The engine sends a 304 without its body but with the body's `Content-Length`: with
            // the file's, it is the length a 200 would have (RFC 9110 §8.6 allows no other).
            var response = Response(status: .notModified, headers: [.eTag: entityTag, .lastModified: lastModified])
            response.storage.source = .file(file.body(offset: 0, length: status.size))
            return response
        case .failed:
            return HTTPError(.preconditionFailed, headers: [.eTag: entityTag]).response
        case .proceed:
            break
        }
        var headers: HTTPHeaders = [
            .contentType: contentType, .lastModified: lastModified, .eTag: entityTag, .acceptRanges: "bytes",
        ]
        var selection = ByteRange.Selection.whole
        let ranges = request.headers[values: .range]
        if request.method == .get || request.method == .head, ranges.count == 1, let range = ranges.first,
            Preconditions.rangeApplies(request, entityTag: entityTag, modified: modified)
        {
            selection = ByteRange.select(range, size: status.size)
        }
        var response: Response
        switch selection {
        case .whole:
            response = Response(status: .ok, headers: headers)
            response.storage.source = .file(file.body(offset: 0, length: status.size))
        case .part(let part):
            headers[.contentRange] = ByteRange.contentRange(part, size: status.size)
            response = Response(status: .partialContent, headers: headers)
            response.storage.source = .file(
                file.body(offset: part.lowerBound, length: part.upperBound - part.lowerBound + 1))
        case .unsatisfiable:
            response = HTTPError(
                .rangeNotSatisfiable, message: "the range starts past the end of the file",
                headers: [.contentRange: ByteRange.unsatisfiedRange(size: status.size)]
            ).response
        }
        return response
    }
}

/// How a failure to open a file is answered.
enum FileAnswers {
    static let notFound = HTTPError(.notFound, message: "no such file")

    static func open(path: String) throws -> OpenedFile {
        do {
            return try OpenedFile(path: path)
        } catch {
            throw answer(error, path: path)
        }
    }

    static func adopt(descriptor: Int32) throws -> OpenedFile {
        do {
            return try OpenedFile(adopting: descriptor)
        } catch {
            throw answer(error, path: "descriptor \(descriptor)")
        }
    }

    /// 404, 403 or 503 as the failure calls for; an unexpected one is a ``FileError``, which the
    /// server logs and answers 500.
    static func answer(_ failure: FileOpenFailure, path: String) -> any Error {
        switch failure.reason {
        case .notFound: return notFound
        case .forbidden: return HTTPError(.forbidden, message: "the file may not be read")
        case .exhausted: return HTTPError(.serviceUnavailable, message: "no file can be opened now")
        case .failed: return FileError(path: path, reason: failure.errorText)
        }
    }
}
