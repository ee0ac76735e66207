#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How JSON bodies are written and read: one configuration for ``Response/json(_:status:encoder:)``
/// and ``Request/decode(_:decoder:)``, so what the server sends it can read back (dates as
/// ISO 8601 both ways by default).
///
/// Set it on a router (``Router/json``) and every response and decode in that router's
/// handlers and middleware uses it; mounted routers and groups keep their own.
///
/// ```swift
/// let encoder = JSONCoding.standardEncoder()
/// encoder.keyEncodingStrategy = .convertToSnakeCase
/// let decoder = JSONCoding.standardDecoder()
/// decoder.keyDecodingStrategy = .convertFromSnakeCase
/// router.json = JSONCoding(encoder: encoder, decoder: decoder)
/// ```
public struct JSONCoding: Sendable {
    /// Writes JSON responses.
    public var encoder: JSONEncoder
    /// Reads JSON request bodies.
    public var decoder: JSONDecoder
    /// Whether ``Request/decode(_:decoder:)`` answers 415 when the request says its body is
    /// something else than JSON (`application/json` or `application/*+json`; a request without
    /// `Content-Type` is read as JSON).
    public var requiresJSONContentType: Bool

    /// A configuration; by default the standard encoder and decoder, and 415 for non-JSON bodies.
    ///
    /// ```swift
    /// let lenient = JSONCoding(requiresJSONContentType: false)
    /// ```
    public init(
        encoder: JSONEncoder = JSONCoding.standardEncoder(), decoder: JSONDecoder = JSONCoding.standardDecoder(),
        requiresJSONContentType: Bool = true
    ) {
        self.encoder = encoder
        self.decoder = decoder
        self.requiresJSONContentType = requiresJSONContentType
    }

    /// The default: sorted keys, no escaped slashes, ISO 8601 dates.
    public static let standard = JSONCoding()

    /// The configuration in effect for the current request (the router's, or ``standard``).
    ///
    /// ```swift
    /// let data = try JSONCoding.current.encoder.encode(["ok": true])
    /// ```
    @TaskLocal public static var current: JSONCoding = .standard

    /// A new encoder configured like the standard one, to adjust.
    ///
    /// ```swift
    /// let encoder = JSONCoding.standardEncoder()
    /// encoder.outputFormatting.insert(.prettyPrinted)
    /// ```
    public static func standardEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// A new decoder that reads what ``standardEncoder()`` writes, to adjust.
    ///
    /// ```swift
    /// let decoder = JSONCoding.standardDecoder()
    /// decoder.keyDecodingStrategy = .convertFromSnakeCase
    /// ```
    public static func standardDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    /// Whether a `Content-Type` value names JSON (`application/json`, `application/problem+json`, …).
    static func isJSON(_ contentType: String) -> Bool {
        let type = contentType.prefix { $0 != ";" }.lowercased().filter { $0 != " " && $0 != "\t" }
        return type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json"))
    }

    /// `handler` run with this configuration as ``current``.
    func binding(_ handler: Router.Handler) -> Router.Handler {
        switch handler {
        case .sync(let handler):
            return .sync { request in try JSONCoding.$current.withValue(self) { try handler(&request) } }
        case .async(let handler):
            return .async { request in try await JSONCoding.$current.withValue(self) { try await handler(request) } }
        }
    }
}
