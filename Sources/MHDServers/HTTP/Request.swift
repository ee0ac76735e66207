import Logging

#if canImport(FoundationEssentials)
import FoundationEssentials  // JSON and Data without ICU and the rest of Foundation: a smaller footprint
#else
import Foundation
#endif

/// An HTTP request as the handler sees it: fully read, immutable and `Sendable`.
///
/// ```swift
/// struct Note: Codable { var text: String }
///
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
    ///
    /// A request from a server builds them from the engine's bytes the first time they are
    /// read, so a handler that never reads them does not pay for them.
    public var headers: HTTPHeaders {
        get {
            switch headerStorage {
            case .fields(let fields): fields
            case .raw(let raw): raw.fields
            }
        }
        set { headerStorage = .fields(newValue) }
    }
    /// The headers as set, or as the engine read them (see ``RawHeaderFields``).
    var headerStorage: HeaderStorage

    /// Where a request's headers are.
    enum HeaderStorage: Sendable {
        case fields(HTTPHeaders)
        case raw(RawHeaderFields)
    }
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
    /// What middleware learned about this request, for the handler (request ID, logger,
    /// identity, values of your own).
    public var context: RequestContext
    /// The body arriving as a stream, on a route that streams it (see ``bodyStream``).
    var upload: UploadStream?

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
        self.init(
            method: method, path: path, query: query, headers: .fields(headers), body: body, remoteAddress: remoteAddress,
            version: version, logger: RequestContext.defaultLogger)
    }

    /// A request whose context logs to `logger` (the server's), built once per request.
    init(
        method: HTTPMethod, path: String, query: QueryParameters, headers: HeaderStorage, body: [UInt8],
        remoteAddress: String?, peer: PeerAddress? = nil, version: String, logger: Logger
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headerStorage = headers
        self.body = body
        self.remoteOverride = remoteAddress
        self.peer = peer
        self.parameters = Parameters()
        self.version = version
        self.context = RequestContext(logger: logger)
        self.upload = nil
    }

    /// The body as UTF-8 text (invalid sequences are repaired).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Decodes the JSON body as `type` with the router's ``JSONCoding`` (or `decoder`). A body
    /// that says it is not JSON (`Content-Type`) throws ``HTTPError`` 415, unless the coding
    /// allows it; a malformed or mismatched body throws ``HTTPError`` 400.
    ///
    /// ```swift
    /// let input = try request.decode(CreateUser.self)
    /// ```
    public func decode<T: Decodable>(_ type: T.Type, decoder: JSONDecoder? = nil) throws -> T {
        let coding = JSONCoding.current
        if coding.requiresJSONContentType, let contentType = headers[.contentType], !JSONCoding.isJSON(contentType) {
            throw HTTPError(.unsupportedMediaType, message: "the body must be JSON (Content-Type: application/json), not \(contentType)")
        }
        do {
            return try (decoder ?? coding.decoder).decode(T.self, from: Data(body))
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
