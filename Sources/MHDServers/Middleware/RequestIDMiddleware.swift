import Synchronization

/// Gives every request an ID: the caller's `X-Request-Id` when it is a sane one (1–128 visible
/// ASCII characters), else a new one. The ID goes into ``RequestContext/requestID``, into the
/// request's logger metadata (`request-id`), and back to the caller in the response's
/// `X-Request-Id`, so one ID follows a request through logs, proxies and clients.
///
/// ```swift
/// router.add(middleware: RequestIDMiddleware())
/// router.get("/work") { request in
///     request.context.logger.info("working")   // logged with request-id=...
///     return .text(request.context.requestID ?? "")
/// }
/// ```
public struct RequestIDMiddleware: InlineMiddleware {
    /// The header read and written.
    public let header: String
    /// Whether a caller's ID is kept (otherwise every request gets a new one).
    public let acceptsIncoming: Bool
    /// `header` as a field name, checked once.
    private let name: HTTPField.Name

    /// A middleware for `header` (default `X-Request-Id`), which must be a valid field name (a
    /// token): another traps here, when the middleware is made.
    ///
    /// ```swift
    /// let ids = RequestIDMiddleware(header: "X-Correlation-Id", acceptsIncoming: false)
    /// ```
    public init(header: String = "X-Request-Id", acceptsIncoming: Bool = true) {
        guard let name = HTTPField.Name(header) else {
            preconditionFailure("RequestIDMiddleware: \"\(header)\" is not a valid header field name")
        }
        self.header = header
        self.name = name
        self.acceptsIncoming = acceptsIncoming
    }

    public func prepare(_ request: inout Request) throws -> Response? {
        let id: String
        if acceptsIncoming, let incoming = request.headers[name], Self.isSane(incoming) {
            id = incoming
        } else {
            id = Self.generate()
        }
        // The request's logger carries it as `request-id` from now on.
        request.context.requestID = id
        return nil
    }

    public func finish(_ response: inout Response, for request: Request) {
        guard let id = request.context.requestID else { return }
        // Appended when the response has none (the usual case: a replacing set costs several
        // times as much).
        if response.headers.contains(name) {
            response.headers[name] = id
        } else {
            response.headers.append(HTTPField(name: name, value: id))
        }
    }

    /// 1–128 visible ASCII characters: safe to log and to echo in a header.
    static func isSane(_ id: String) -> Bool {
        let bytes = id.utf8
        return !bytes.isEmpty && bytes.count <= 128 && bytes.allSatisfy { (0x21...0x7E).contains($0) }
    }

    /// 32 hex digits that look random and never repeat within the process: two rounds of
    /// SplitMix64 over a counter, keyed by random bits drawn once (no system call per request).
    static func generate() -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        return hex(mix(key.0 &+ n), mix(key.1 ^ n))
    }

    private static let key: (UInt64, UInt64) = {
        var generator = SystemRandomNumberGenerator()
        return (generator.next(), generator.next())
    }()
    private static let counter = Atomic<UInt64>(0)

    /// SplitMix64's finaliser: a bijection, so distinct inputs give distinct outputs.
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Two words as 32 lowercase hex digits, in one allocation.
    private static func hex(_ high: UInt64, _ low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for (offset, word) in [(0, high), (16, low)] {
                for index in 0..<16 {
                    let nibble = Int((word >> UInt64(60 - 4 * index)) & 0xF)
                    buffer[offset + index] = digits.utf8Start[nibble]
                }
            }
            return 32
        }
    }
}
