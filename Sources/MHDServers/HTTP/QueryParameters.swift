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

    /// Parses a raw query string, the part of a request target after `?`, exactly as the
    /// server does (see ``init(parsing:)``): for tests that build requests without a server.
    ///
    /// ```swift
    /// @_spi(Testing) import MHDServers
    ///
    /// let query = QueryParameters(rawQuery: "q=swift%20nio&tag=a&tag=b")   // q: "swift nio"
    /// ```
    @_spi(Testing) public init(rawQuery: String) { self.init(parsing: Array(rawQuery.utf8)) }

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
