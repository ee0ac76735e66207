#if canImport(FoundationEssentials)
import FoundationEssentials  // JSON and Data without ICU and the rest of Foundation: a smaller footprint
#else
import Foundation
#endif

/// An HTTP request as the handler sees it: fully read, immutable and `Sendable`.
///
/// ```swift
/// router.post("/users/:id/notes") { request in
///     let id = request.parameters["id"] ?? ""
///     let verbose = request.query["verbose"] == "1"
///     let note = try request.decode(Note.self)          // 400 on malformed JSON
///     return try .json(["user": id, "text": note.text, "verbose": "\(verbose)"])
/// }
/// ```
public struct Request: Sendable {
    /// The request method.
    public var method: HTTPMethod
    /// The decoded path, without the query string, for example `/users/42`.
    public var path: String
    /// The decoded query parameters, in order.
    public var query: QueryParameters
    /// The request headers (case-insensitive lookup).
    public var headers: HTTPHeaders
    /// The request body, already read completely (bounded by the server's `maxBodySize`).
    public var body: [UInt8]
    /// The peer's address as `host:port` (`[v6]:port` for IPv6), when known.
    public var remoteAddress: String? {
        get { remoteOverride ?? peer?.description }
        set { remoteOverride = newValue }
    }
    var remoteOverride: String?
    /// The raw peer address; formatted only when ``remoteAddress`` is read.
    var peer: PeerAddress?
    /// Values captured by the route pattern: `:name` segments and the `*` wildcard (key `"*"`).
    public var parameters: Parameters
    /// The HTTP version from the request line, for example `HTTP/1.1`.
    public var version: String

    /// Creates a request, mostly useful for calling a handler directly in unit tests.
    public init(
        method: HTTPMethod,
        path: String,
        query: QueryParameters = QueryParameters(),
        headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = [],
        remoteAddress: String? = nil,
        version: String = "HTTP/1.1"
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.remoteOverride = remoteAddress
        self.peer = nil
        self.parameters = Parameters()
        self.version = version
    }

    /// The body as UTF-8 text (invalid sequences are repaired).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Decodes the JSON body as `type`; a malformed or mismatched body throws ``HTTPError`` 400.
    ///
    /// ```swift
    /// let input = try request.decode(CreateUser.self)
    /// ```
    public func decode<T: Decodable>(_ type: T.Type, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        do {
            return try decoder.decode(T.self, from: Data(body))
        } catch {
            throw HTTPError(.badRequest, message: "Malformed JSON body: \(Self.describe(error))")
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .dataCorrupted(let context)?: return context.debugDescription
        case .keyNotFound(let key, _)?: return "missing key '\(key.stringValue)'"
        case .typeMismatch(_, let context)?:
            return "type mismatch at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        case .valueNotFound(_, let context)?:
            return "missing value at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        default: return "invalid JSON"
        }
    }

    /// Route parameters captured from the path pattern.
    ///
    /// ```swift
    /// router.get("/files/*") { request in .text(request.parameters["*"] ?? "") }
    /// ```
    public struct Parameters: Sendable, Sequence {
        var storage: [(String, String)] = []

        /// Creates an empty set of parameters.
        public init() {}

        /// The value captured for `name`, if the route has such a parameter.
        public subscript(name: String) -> String? {
            for (key, value) in storage where key == name { return value }
            return nil
        }

        /// The value for `name` converted with `LosslessStringConvertible`, for example `Int`.
        public func get<T: LosslessStringConvertible>(_ name: String, as type: T.Type = T.self) -> T? {
            self[name].flatMap(T.init)
        }

        mutating func append(_ name: String, _ value: String) { storage.append((name, value)) }
        mutating func removeLast() { storage.removeLast() }

        public func makeIterator() -> IndexingIterator<[(String, String)]> { storage.makeIterator() }
    }
}

/// Decoded query-string parameters, in order; a name can repeat.
///
/// ```swift
/// // GET /search?q=swift&tag=a&tag=b
/// request.query["q"]              // "swift"
/// request.query.values(for: "tag") // ["a", "b"]
/// request.query.get("limit", as: Int.self) ?? 20
/// ```
public struct QueryParameters: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    var storage: [(String, String)]

    /// Creates empty query parameters.
    public init() { storage = [] }

    /// Creates query parameters from a literal: `["q": "swift"]`.
    public init(dictionaryLiteral elements: (String, String)...) { storage = elements }

    init(pairs: [(String, String)]) { storage = pairs }

    /// Parses a raw query string (the bytes after `?`) the way libmicrohttpd does: pairs split
    /// at `&`, name and value at the first `=` (no `=`: value `""`), `+` as a space, then `%XY`
    /// decoded (a `%` not followed by two hex digits stays as it is). An empty pair between two
    /// `&` gives an empty name; a trailing `&` gives nothing.
    init(parsing raw: [UInt8]) {
        var pairs: [(String, String)] = []
        var start = 0
        while start < raw.count {
            var end = start
            while end < raw.count && raw[end] != 38 /* & */ { end += 1 }
            let pair = raw[start..<end]
            if let equals = pair.firstIndex(of: 61 /* = */) {
                pairs.append((Self.decode(pair[..<equals]), Self.decode(pair[(equals + 1)...])))
            } else {
                pairs.append((Self.decode(pair), ""))
            }
            start = end + 1
        }
        storage = pairs
    }

    private static func decode(_ bytes: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == 43 /* + */ {
                out.append(32)
            } else if byte == 37 /* % */, let high = hex(bytes, index + 1), let low = hex(bytes, index + 2) {
                out.append(high << 4 | low)
                index += 3
                continue
            } else {
                out.append(byte)
            }
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ bytes: ArraySlice<UInt8>, _ index: Int) -> UInt8? {
        guard index < bytes.endIndex else { return nil }
        switch bytes[index] {
        case 48...57: return bytes[index] - 48
        case 65...70: return bytes[index] - 55
        case 97...102: return bytes[index] - 87
        default: return nil
        }
    }

    /// The first value for `name`, or `nil`. A parameter given without `=` has the value `""`.
    public subscript(name: String) -> String? {
        for (key, value) in storage where key == name { return value }
        return nil
    }

    /// Every value for `name`, in order.
    public func values(for name: String) -> [String] { storage.filter { $0.0 == name }.map(\.1) }

    /// The first value for `name` converted with `LosslessStringConvertible`.
    public func get<T: LosslessStringConvertible>(_ name: String, as type: T.Type = T.self) -> T? {
        self[name].flatMap(T.init)
    }

    /// The number of parameters.
    public var count: Int { storage.count }

    /// Whether there are no parameters.
    public var isEmpty: Bool { storage.isEmpty }

    public func makeIterator() -> IndexingIterator<[(String, String)]> { storage.makeIterator() }
}
