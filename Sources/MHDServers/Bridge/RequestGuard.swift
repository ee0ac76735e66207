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
/// - a target containing `%00` → 400 (the decoded path would be cut at the NUL).
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
    static let invalidTarget = Response.error(.badRequest, message: "invalid request target")

    /// A response that rejects the request outright, or `nil` to go on.
    static func check(_ context: RequestContext, limits: ServerConfig.Limits) -> Response? {
        if context.invalidTarget { return invalidTarget }
        var length: String?
        var lengthCount = 0
        var coding: String?
        var codingFields = 0
        for field in context.headers {
            if HTTPHeaders.equalsIgnoringCase(field.name, "Content-Length") {
                lengthCount += 1
                length = field.value
            } else if HTTPHeaders.equalsIgnoringCase(field.name, "Transfer-Encoding") {
                coding = coding.map { $0 + "," + field.value } ?? field.value
                codingFields += 1
            }
        }
        if lengthCount > 1 { return duplicateLength }
        if let coding {
            if lengthCount > 0 { return lengthAndChunked }
            let codings = coding.split(separator: ",").map { trimmed(Substring($0)).lowercased() }
            if codings != ["chunked"] { return unsupportedCoding }
            // The engine reads a chunked body only when the first Transfer-Encoding field is
            // exactly "chunked"; anything else it would read until the client closes.
            if codingFields != 1 || !HTTPHeaders.equalsIgnoringCase(coding, "chunked") { return malformedCoding }
        }
        if let length {
            let digits = trimmed(Substring(length))
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return invalidLength }
            if digits.utf8.count > 18 || Int(digits)! > limits.maxBodySize { return contentTooLarge }
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
    static func hasRawNUL(_ context: RequestContext, url: UnsafePointer<CChar>, version: UnsafePointer<CChar>) -> Bool {
        guard let raw = context.rawTarget, raw == url else { return false }
        return raw + context.rawTargetLength + 1 != version
    }

    /// `text` without leading and trailing spaces and tabs.
    private static func trimmed(_ text: Substring) -> String {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return String(text)
    }
}
