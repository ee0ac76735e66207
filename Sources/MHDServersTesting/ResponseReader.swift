import MHDServers

/// Reads one HTTP/1.1 response from a ``ClientSocket`` (RFC 9112): interim 1xx responses are
/// skipped; the body is framed by chunked transfer coding, then `Content-Length`, else by the
/// end of the connection; `HEAD`, `204` and `304` answers have none.
struct ResponseReader {
    let socket: ClientSocket
    private var buffer: [UInt8] = []
    /// Bytes of ``buffer`` already consumed.
    private var position = 0

    /// Upper bounds that keep a broken server from making a test read forever.
    static let maxLineLength = 64 << 10
    static let maxHeaderFields = 1000

    init(socket: ClientSocket) { self.socket = socket }

    mutating func response(toHead head: Bool) throws -> TestResponse {
        while true {
            let status = try statusLine()
            let headers = try headerFields()
            let code = status.code
            if code >= 100 && code < 200 && code != 101 { continue }  // interim: the real answer follows
            var response = TestResponse(status: status, headers: headers)
            if head || code == 204 || code == 304 || code < 200 { return response }
            let codings = headers.values(for: "Transfer-Encoding")
                .flatMap { $0.split(separator: ",") }
                .map { $0.trimmingSpaces.lowercased() }
            let lengths = headers.values(for: "Content-Length")
            if let last = codings.last {
                response.body = last == "chunked" ? try chunkedBody() : try bodyUntilClose()
            } else if !lengths.isEmpty {
                response.body = try bytes(try contentLength(lengths))
            } else {
                response.body = try bodyUntilClose()
            }
            return response
        }
    }

    // MARK: Head

    private mutating func statusLine() throws -> HTTPStatus {
        let line = String(decoding: try self.line(), as: UTF8.self)
        // HTTP-version SP 3DIGIT SP [reason-phrase]
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[0].count == 8,
            parts[1].utf8.count == 3, parts[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let code = Int(parts[1])
        else {
            throw TestClientError(.malformedResponse, "not an HTTP/1.x status line: \(line.debugDescription)")
        }
        let reason = parts.count == 3 ? String(parts[2]) : ""
        return HTTPStatus(code: code, reasonPhrase: reason)
    }

    private mutating func headerFields() throws -> HTTPHeaders {
        var headers = HTTPHeaders()
        var count = 0
        while true {
            let line = try self.line()
            if line.isEmpty { return headers }
            count += 1
            guard count <= Self.maxHeaderFields else {
                throw TestClientError(.malformedResponse, "more than \(Self.maxHeaderFields) header fields")
            }
            let text = String(decoding: line, as: UTF8.self)
            guard let colon = text.firstIndex(of: ":"), colon != text.startIndex,
                text[..<colon].utf8.allSatisfy(TestRequest.isTokenByte)
            else {
                throw TestClientError(.malformedResponse, "malformed header field: \(text.debugDescription)")
            }
            headers.add(name: String(text[..<colon]), value: text[text.index(after: colon)...].trimmingSpaces)
        }
    }

    private func contentLength(_ values: [String]) throws -> Int {
        // Repeated fields, or a list, are only valid when every value is the same.
        let all = values.flatMap { $0.split(separator: ",") }.map(\.trimmingSpaces)
        guard let first = all.first, all.allSatisfy({ $0 == first }), !first.isEmpty, first.count <= 18,
            first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let length = Int(first)
        else {
            throw TestClientError(.malformedResponse, "invalid Content-Length \(values)")
        }
        return length
    }

    // MARK: Body

    private mutating func chunkedBody() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = String(decoding: try self.line(), as: UTF8.self)
            let sizeText = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingSpaces
            guard !sizeText.isEmpty, sizeText.count <= 15, let size = Int(sizeText, radix: 16) else {
                throw TestClientError(.malformedResponse, "invalid chunk size line \(line.debugDescription)")
            }
            if size == 0 { break }
            body += try bytes(size)
            guard try self.line().isEmpty else {
                throw TestClientError(.malformedResponse, "a chunk is longer than its size \(sizeText)")
            }
        }
        // Trailer fields, read and dropped, up to the empty line.
        while try !self.line().isEmpty {}
        return body
    }

    private mutating func bodyUntilClose() throws -> [UInt8] {
        while try socket.receive(into: &buffer) {}
        defer { position = buffer.count }
        return Array(buffer[position...])
    }

    // MARK: Buffer

    /// The next line without its line ending (CRLF, or a bare LF).
    private mutating func line() throws -> ArraySlice<UInt8> {
        var scanned = 0  // bytes after `position` known to hold no LF
        while true {
            if let newline = buffer[(position + scanned)...].firstIndex(of: 10) {
                var end = newline
                if end > position && buffer[end - 1] == 13 { end -= 1 }
                let line = buffer[position..<end]
                position = newline + 1
                return line
            }
            scanned = buffer.count - position
            guard scanned <= Self.maxLineLength else {
                throw TestClientError(.malformedResponse, "a line longer than \(Self.maxLineLength) bytes")
            }
            try fill()
        }
    }

    /// Exactly `count` bytes.
    private mutating func bytes(_ count: Int) throws -> [UInt8] {
        while buffer.count - position < count { try fill() }
        defer { position += count }
        return Array(buffer[position..<(position + count)])
    }

    private mutating func fill() throws {
        if position > 0 && position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        }
        guard try socket.receive(into: &buffer) else {
            throw TestClientError(.connectionClosed, "the server closed the connection before the response was complete")
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmingSpaces: String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view.removeFirst() }
        while let last = view.last, last == " " || last == "\t" { view.removeLast() }
        return String(view)
    }
}
