@_spi(Testing) import MHDServers

/// A request as a test client sends it: checked once, then either written to a socket or
/// turned into the `Request` the server would build.
struct TestRequest: Sendable {
    var method: HTTPMethod
    /// The request target as sent on the request line: `/path?query`, an absolute URL, or `*`.
    var target: String
    var headers: HTTPHeaders
    var body: [UInt8]

    init(method: HTTPMethod, target: String, headers: HTTPHeaders, body: [UInt8]) throws {
        guard !method.rawValue.isEmpty, method.rawValue.utf8.allSatisfy(Self.isTokenByte) else {
            throw TestClientError(.invalidRequest, "invalid method \"\(method)\"")
        }
        guard target.hasPrefix("/") || target == "*" || Self.absoluteForm(target) != nil,
            target.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != 35 /* # */ })
        else {
            throw TestClientError(
                .invalidRequest,
                "invalid request target \"\(target)\": it starts with / (or is an absolute http URL), "
                    + "and spaces, control characters and # are percent-encoded")
        }
        // Header names and values need no check here: `HTTPFields` accepts only token names
        // and stores no CR, LF or NUL in a value.
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    /// `GET /users/1` and the like, for messages.
    var summary: String { "\(method) \(target)" }

    // MARK: In process

    /// The request the server would hand to its router: the path percent-decoded, the query
    /// parsed like the server parses it, an absolute-form target's authority as `Host`.
    func serverRequest() -> Request {
        var headers = headers
        var target = target
        if let (authority, path) = Self.absoluteForm(target) {
            target = path
            headers["Host"] = authority
        }
        var rawPath = Substring(target)
        var query = QueryParameters()
        if let mark = target.firstIndex(of: "?") {
            rawPath = target[..<mark]
            let rawQuery = target[target.index(after: mark)...]
            if !rawQuery.isEmpty { query = QueryParameters(rawQuery: String(rawQuery)) }
        }
        return Request(
            method: method, path: Self.percentDecoded(rawPath), query: query, headers: headers, body: body,
            remoteAddress: nil, version: "HTTP/1.1")
    }

    // MARK: On the wire

    /// The request as HTTP/1.1 bytes. `Host` is added unless set; `Content-Length` is added
    /// when there is a body (or the method usually has one) unless a length or transfer coding
    /// is set; `Connection: close` is added unless a `Connection` field is set.
    func serialized(authority: String) -> [UInt8] {
        var head = "\(method.rawValue) \(target) HTTP/1.1\r\n"
        if !headers.contains("Host") { head += "Host: \(authority)\r\n" }
        for field in headers { head += "\(field.name): \(field.value)\r\n" }
        let framed = headers.contains("Content-Length") || headers.contains("Transfer-Encoding")
        if !framed && (!body.isEmpty || [HTTPMethod.post, .put, .patch].contains(method)) {
            head += "Content-Length: \(body.count)\r\n"
        }
        if !headers.contains("Connection") { head += "Connection: close\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }

    // MARK: Helpers

    /// `tchar` of RFC 9110 §5.6.2.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 48...57, 65...90, 97...122: return true
        case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: return true
        default: return false
        }
    }

    /// The authority and path of an `http://` or `https://` target (`/` when it has no path).
    static func absoluteForm(_ target: String) -> (authority: String, path: String)? {
        let lowered = target.prefix(8).lowercased()
        let rest: Substring
        if lowered.hasPrefix("http://") {
            rest = target.dropFirst(7)
        } else if lowered.hasPrefix("https://") {
            rest = target.dropFirst(8)
        } else {
            return nil
        }
        guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else {
            return rest.isEmpty ? nil : (String(rest), "/")
        }
        let path = rest[slash...]
        return (String(rest[..<slash]), path.hasPrefix("/") ? String(path) : "/" + path)
    }

    /// `%XY` decoded, as the server decodes a path (`+` stays a plus; a `%` without two hex
    /// digits stays as it is).
    static func percentDecoded(_ path: Substring) -> String {
        guard path.contains("%") else { return String(path) }
        let bytes = Array(path.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == 37, index + 2 < bytes.count, let high = hex(bytes[index + 1]),
                let low = hex(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: return byte - 48
        case 65...70: return byte - 55
        case 97...102: return byte - 87
        default: return nil
        }
    }
}
