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

    /// A middleware for `header` (default `X-Request-Id`).
    ///
    /// ```swift
    /// let ids = RequestIDMiddleware(header: "X-Correlation-Id", acceptsIncoming: false)
    /// ```
    public init(header: String = "X-Request-Id", acceptsIncoming: Bool = true) {
        self.header = header
        self.acceptsIncoming = acceptsIncoming
    }

    public func prepare(_ request: inout Request) throws -> Response? {
        let id: String
        if acceptsIncoming, let incoming = request.headers[header], Self.isSane(incoming) {
            id = incoming
        } else {
            id = Self.generate()
        }
        request.context.requestID = id
        request.context.logger[metadataKey: "request-id"] = "\(id)"
        return nil
    }

    public func finish(_ response: inout Response, for request: Request) {
        if let id = request.context.requestID { response.headers[header] = id }
    }

    /// 1–128 visible ASCII characters: safe to log and to echo in a header.
    static func isSane(_ id: String) -> Bool {
        let bytes = id.utf8
        return !bytes.isEmpty && bytes.count <= 128 && bytes.allSatisfy { (0x21...0x7E).contains($0) }
    }

    /// 16 random bytes as 32 hex digits (a process-wide generator, never repeated in practice).
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let (high, low) = (generator.next() as UInt64, generator.next() as UInt64)
        return hex(high) + hex(low)
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
