/// Checks made on the headers-only callback, before any body is read. libmicrohttpd 0.9.75 is
/// lenient where a proxy in front of it may not be, so requests that could be read two ways are
/// refused outright (and the connection closed):
///
/// - duplicate or conflicting `Content-Length` → 400 (the engine would take the first);
/// - `Transfer-Encoding` together with `Content-Length` → 400 (the engine ignores the length);
/// - a transfer coding other than `chunked` → 501, and `chunked` written any other way than as
///   one field of exactly that word (` chunked `, two fields) → 400: the engine would read either
///   as a body of unknown length and wait for it forever;
/// - a `Content-Length` over the limit → one clean 413;
/// - a target containing `%00` → 400 (the decoded path would be cut at the NUL);
/// - a header name that is not a token, or a folded header line → 400 (see ``HeaderFacts``);
/// - an HTTP/1.1 request without exactly one `Host`, or any request with two → 400;
/// - `Transfer-Encoding` in an HTTP/1.0 request → 400 (faulty framing, RFC 9112 §6.1);
/// - a method that is not a token → 400 (checked by the engine callback as it reads the method).
enum RequestGuard {
    static let contentTooLarge = Response.error(.contentTooLarge, message: "request body is too large")
    static let duplicateLength = Response.error(.badRequest, message: "duplicate or conflicting Content-Length")
    static let invalidLength = Response.error(.badRequest, message: "invalid Content-Length")
    static let lengthAndChunked = Response.error(
        .badRequest, message: "Transfer-Encoding and Content-Length must not be combined")
    static let unsupportedCoding = Response.error(
        .notImplemented, message: "only the chunked transfer coding is supported")
    static let malformedCoding = Response.error(
        .badRequest, message: "Transfer-Encoding must be a single field reading exactly 'chunked'")
    static let malformedField = Response.error(
        .badRequest, message: "malformed header field (whitespace or a control character in its name, or a folded line)")
    static let hostRequired = Response.error(.badRequest, message: "exactly one Host header is required")
    static let codingInHTTP10 = Response.error(.badRequest, message: "Transfer-Encoding is not allowed in HTTP/1.0")
    static let invalidTarget = Response.error(.badRequest, message: "invalid request target")
    static let invalidMethod = Response.error(.badRequest, message: "the method must be a token (RFC 9110 §9.1)")

    /// A response that rejects the request outright, or `nil` to go on.
    static func check(_ context: EngineRequest, maxBodySize: Int) -> Response? {
        if context.invalidTarget { return invalidTarget }
        let facts = context.headerFacts
        if facts.malformed { return malformedField }
        // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; none is allowed in HTTP/1.0,
        // but never two.
        if facts.hosts > 1 || (facts.hosts == 0 && !context.http10) { return hostRequired }
        if facts.lengthFields > 1 { return duplicateLength }
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing.
        if facts.coding != nil && context.http10 { return codingInHTTP10 }
        if let coding = facts.coding {
            if facts.lengthFields > 0 { return lengthAndChunked }
            let codings = coding.split(separator: ",").map { trimmed(Substring($0)).lowercased() }
            if codings != ["chunked"] { return unsupportedCoding }
            // The engine reads a chunked body only when the first Transfer-Encoding field is
            // exactly "chunked"; anything else it would read until the client closes.
            if facts.codingFields != 1 || facts.inexactCoding { return malformedCoding }
        }
        if let length = facts.length {
            let digits = trimmed(Substring(length))
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return invalidLength }
            if digits.utf8.count > 18 || Int(digits)! > maxBodySize { return contentTooLarge }
        }
        return nil
    }

    /// Whether the raw request target contains `%00`.
    static func hasEncodedNUL(_ target: UnsafePointer<CChar>?) -> Bool {
        guard var cursor = target else { return false }
        while cursor.pointee != 0 {
            if cursor.pointee == 37 /* % */, cursor[1] == 48, cursor[2] == 48 { return true }
            cursor += 1
        }
        return false
    }

    /// Whether the request line had a raw NUL byte inside its target. The engine cuts the target
    /// at such a byte and would route `/admin\0/../x` as `/admin`. Its request-line parser leaves
    /// the version right behind the target's terminating NUL; a NUL inside the target puts more
    /// bytes in between. Both pointers point into the engine's read buffer.
    static func hasRawNUL(_ context: EngineRequest, url: UnsafePointer<CChar>, version: UnsafePointer<CChar>) -> Bool {
        guard let raw = context.rawTarget, raw == url else { return false }
        return raw + context.rawTargetLength + 1 != version
    }

    /// Whether `bytes` is an RFC 9110 token: one or more of ALPHA, DIGIT and ``!#$%&'*+-.^_`|~``.
    static func isToken(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return false }
        for byte in bytes {
            switch byte {
            case 48...57, 65...90, 97...122: continue
            case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: continue
            default: return false
            }
        }
        return true
    }

    /// `text` without leading and trailing spaces and tabs.
    private static func trimmed(_ text: Substring) -> String {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return String(text)
    }
}
