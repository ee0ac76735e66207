#if canImport(FoundationEssentials)
import FoundationEssentials  // JSON and Data without ICU and the rest of Foundation: a smaller footprint
#else
import Foundation
#endif

/// An HTTP response: status, headers and a body of bytes.
///
/// ```swift
/// router.get("/hello") { _ in .text("hello") }                              // 200 text/plain
/// router.post("/users") { _ in try .json(User(id: 1, name: "Ada"), status: .created) }
/// router.delete("/users/:id") { _ in Response(status: .noContent) }
/// ```
///
/// `Content-Length` and `Date` are added by the server. A response returned for a `HEAD`
/// request is sent without its body.
public struct Response: Sendable {
    /// The status line's code and reason.
    public var status: HTTPStatus {
        get { storage.status }
        set { storage.status = newValue; native = nil }
    }
    /// Header fields to send (the server adds `Content-Length` and `Date`).
    public var headers: HTTPHeaders {
        get { storage.headers }
        set { storage.headers = newValue; native = nil }
    }
    /// The body bytes. Empty for a streamed or file response (see ``isStreamed``); setting it
    /// makes the response a plain one with these bytes.
    public var body: [UInt8] {
        get { storage.body }
        set { storage.body = newValue; storage.source = nil; native = nil }
    }

    /// Whether the body is produced as it is sent (a stream, events, a file) rather than held
    /// in ``body``.
    ///
    /// ```swift
    /// let events = Response(status: .ok) { writer in try await writer.write("tick\n") }
    /// print(events.isStreamed, events.body.isEmpty)   // true true
    /// ```
    public var isStreamed: Bool { storage.source != nil }

    struct Storage: Sendable {
        var status: HTTPStatus
        var headers: HTTPHeaders
        var body: [UInt8]
        /// Where a body that is not held in `body` comes from.
        var source: BodySource? = nil
    }

    /// A body produced while it is sent.
    enum BodySource: Sendable {
        /// Written by a task as the client reads it (see ``ResponseBodyWriter``).
        case stream(StreamBody)
        /// Sent from an open file by the engine (zero-copy where the kernel allows).
        case file(FileBody)
    }

    var storage: Storage
    /// A native response built once and shared by every request (see ``reusable()``).
    var native: NativeResponse?
    /// The error this response answers, when it comes from the error mapping.
    var error: (any Error)?

    /// Creates a response from a status, headers and body bytes.
    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        storage = Storage(status: status, headers: headers, body: body)
        native = nil
        error = nil
    }

    /// A `text/plain; charset=utf-8` response.
    ///
    /// ```swift
    /// router.get("/ping") { _ in .text("pong") }
    /// ```
    public static func text(_ text: String, status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: Array(text.utf8))
    }

    /// An `application/json` response encoding `value`.
    ///
    /// Without an `encoder`, the router's ``JSONCoding`` encodes it (``JSONCoding/standard`` by
    /// default: one shared encoder, never one per request).
    ///
    /// ```swift
    /// router.get("/status") { _ in try .json(["status": "ok"]) }
    /// ```
    public static func json<T: Encodable>(
        _ value: T, status: HTTPStatus = .ok, encoder: JSONEncoder? = nil
    ) throws -> Response {
        let data = try (encoder ?? JSONCoding.current.encoder).encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: Array(data))
    }

    /// An `application/json` response from JSON text you already have.
    ///
    /// ```swift
    /// router.get("/hello") { _ in .json(raw: #"{"message":"hello"}"#) }
    /// ```
    public static func json(raw: String, status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: Array(raw.utf8))
    }

    /// The JSON error body every error answer uses: `{"error":{"status":N,"message":"..."}}`.
    ///
    /// ```swift
    /// router.post("/names") { _ in .error(.conflict, message: "name taken") }
    /// ```
    public static func error(_ status: HTTPStatus, message: String? = nil) -> Response {
        let message = message ?? status.phrase
        let json = #"{"error":{"status":\#(status.code),"message":\#(jsonQuoted(message))}}"#
        return .json(raw: json, status: status)
    }

    /// A copy that the server converts to a native response once and then shares between
    /// requests, with no per-request copy of the body. Use it for constant answers; changing the
    /// copy afterwards simply drops the shared form.
    ///
    /// ```swift
    /// let hello = Response.json(raw: #"{"message":"hello"}"#).reusable()
    /// router.get("/api/hello") { _ in hello }
    /// ```
    public func reusable() -> Response {
        guard storage.source == nil else { return self }  // produced per request, never shared
        var copy = self
        copy.native = NativeResponse(copy.storage)
        return copy
    }

    /// The same response with `Cache-Control: no-store`: for answers that describe this moment
    /// (status, health, metrics), which no cache should keep.
    ///
    /// ```swift
    /// router.get("/api/status") { _ in Response.json(raw: #"{"status":"ok"}"#).uncached() }
    /// ```
    public func uncached() -> Response {
        var copy = self
        copy.headers[.cacheControl] = "no-store"
        return copy
    }

    /// The standard encoder (sorted keys, no escaped slashes, ISO 8601 dates): a new instance
    /// each time, to adjust and pass in. The same as ``JSONCoding/standardEncoder()``.
    public static var defaultEncoder: JSONEncoder { JSONCoding.standardEncoder() }
}

/// Quotes a string as a JSON string literal.
func jsonQuoted(_ string: String) -> String {
    var out = "\""
    out.reserveCapacity(string.utf8.count + 2)
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case let s where s.value < 0x20:
            let hex = String(s.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    out += "\""
    return out
}
