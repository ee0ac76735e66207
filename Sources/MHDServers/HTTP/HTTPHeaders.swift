/// The header fields of a request or a response: swift-http-types' `HTTPFields`, an ordered
/// list of fields with case-insensitive names.
///
/// Fields are checked where they are built. A name must be an RFC 9110 token:
/// `HTTPField.Name("Bad Name")` is `nil`, and setting a field through a string name that is
/// not a token stops the program, like an index out of range (names are nearly always
/// literals; check one that comes from input with `HTTPField.Name(_:)`). A value cannot carry
/// a field of its own: CR, LF, NUL and the other control bytes but tab become spaces as the
/// value is stored, so what a handler reads back is exactly what is sent.
///
/// ```swift
/// var headers: HTTPHeaders = [.contentType: "text/plain", .cacheControl: "no-store"]
/// headers["X-Trace"] = "on"                        // any valid name, as a string
/// headers.append(HTTPField(name: .setCookie, value: "a=1"))
/// let agent = request.headers[.userAgent]         // same as request.headers["user-agent"]
/// headers["X-Note"] = "a\r\nSet-Cookie: b=2"     // stored and sent as "a  Set-Cookie: b=2"
/// ```
public typealias HTTPHeaders = HTTPFields

extension HTTPFields {
    /// Creates fields from name–value pairs, in order: `HTTPHeaders([("Allow", "GET")])`.
    /// Each name must be a valid field name.
    public init(_ pairs: [(String, String)]) {
        self.init()
        reserveCapacity(pairs.count)
        for (name, value) in pairs { append(HTTPField(name: Self.checkedName(name), value: value)) }
    }

    /// The first value of the field named `name` (case-insensitive; `nil` when `name` is not a
    /// valid field name); setting replaces every field of that name, `nil` removes them.
    ///
    /// ```swift
    /// let id = request.headers["X-Request-Id"]
    /// response.headers["X-Request-Id"] = id
    /// ```
    public subscript(name: String) -> String? {
        get { HTTPField.Name(name).flatMap { self[$0] } }
        set { self[Self.checkedName(name)] = newValue }
    }

    /// Every value sent for `name`, in order (case-insensitive).
    ///
    /// ```swift
    /// let forwarded = request.headers.values(for: "X-Forwarded-For")
    /// ```
    public func values(for name: String) -> [String] {
        HTTPField.Name(name).map { self[values: $0] } ?? []
    }

    /// Whether a field named `name` is present (case-insensitive).
    ///
    /// ```swift
    /// if request.headers.contains("X-Debug") { logger.debug("debug requested") }
    /// ```
    public func contains(_ name: String) -> Bool {
        HTTPField.Name(name).map { contains($0) } ?? false
    }

    /// Appends a field, keeping any fields of the same name (`Set-Cookie`, say).
    ///
    /// ```swift
    /// response.headers.add(name: "Set-Cookie", value: "a=1")
    /// response.headers.add(name: "Set-Cookie", value: "b=2")
    /// ```
    public mutating func add(name: String, value: String) {
        append(HTTPField(name: Self.checkedName(name), value: value))
    }

    /// Removes every field named `name` (case-insensitive).
    ///
    /// ```swift
    /// response.headers.remove(name: "Server")
    /// ```
    public mutating func remove(name: String) {
        if let name = HTTPField.Name(name) { self[name] = nil }
    }

    static func checkedName(_ name: String) -> HTTPField.Name {
        guard let checked = HTTPField.Name(name) else {
            preconditionFailure("\"\(name)\" is not a valid HTTP field name (RFC 9110 §5.1: a token)")
        }
        return checked
    }
}

extension HTTPField.Name {
    /// `X-Request-Id`, looked up on every request when access logs are on.
    static let requestID = HTTPField.Name("X-Request-Id")!
    /// `Host`: a field of its own in HTTP/1.1 (swift-http-types keeps it as a request's
    /// authority and has no name for it).
    static let hostField = HTTPField.Name("Host")!
}
