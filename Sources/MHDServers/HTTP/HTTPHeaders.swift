/// An ordered list of HTTP header fields with case-insensitive name lookup.
///
/// ```swift
/// var headers = HTTPHeaders()
/// headers.add(name: "Cache-Control", value: "no-store")
/// headers["content-type"] = "text/plain"
/// let agent = request.headers["User-Agent"]   // same as request.headers["user-agent"]
/// ```
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One header field.
    public struct Field: Sendable, Hashable {
        /// The field name as it was sent or added.
        public var name: String
        /// The field value.
        public var value: String
    }

    @usableFromInline var fields: [Field]

    /// Creates an empty header list.
    public init() { fields = [] }

    /// Creates headers from pairs, keeping their order: `HTTPHeaders([("Allow", "GET")])`.
    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    /// Creates headers from a literal: `["Content-Type": "text/plain"]`.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// The number of fields.
    public var count: Int { fields.count }

    /// Whether there are no fields.
    public var isEmpty: Bool { fields.isEmpty }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    /// The first value for `name` (case-insensitive); setting replaces every field of that name,
    /// and setting `nil` removes them.
    public subscript(name: String) -> String? {
        get {
            for field in fields where Self.equalsIgnoringCase(field.name, name) { return field.value }
            return nil
        }
        set {
            remove(name: name)
            if let newValue { fields.append(Field(name: name, value: newValue)) }
        }
    }

    /// Every value sent for `name`, in order (case-insensitive).
    public func values(for name: String) -> [String] {
        fields.filter { Self.equalsIgnoringCase($0.name, name) }.map(\.value)
    }

    /// Whether a field named `name` is present (case-insensitive).
    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// Appends a field, keeping any existing fields of the same name.
    public mutating func add(name: String, value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Removes every field named `name` (case-insensitive).
    public mutating func remove(name: String) {
        fields.removeAll { Self.equalsIgnoringCase($0.name, name) }
    }

    public var description: String {
        fields.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }

    /// ASCII case-insensitive comparison without allocating.
    static func equalsIgnoringCase(_ lhs: String, _ rhs: String) -> Bool {
        var lhs = lhs, rhs = rhs
        return lhs.withUTF8 { a in
            rhs.withUTF8 { b in
                guard a.count == b.count else { return false }
                for i in 0..<a.count {
                    let x = a[i], y = b[i]
                    if x == y { continue }
                    let lx = (x >= 65 && x <= 90) ? x | 0x20 : x
                    let ly = (y >= 65 && y <= 90) ? y | 0x20 : y
                    if lx != ly { return false }
                }
                return true
            }
        }
    }
}
