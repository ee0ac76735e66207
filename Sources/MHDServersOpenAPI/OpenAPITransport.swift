import HTTPTypes
import MHDServers
import OpenAPIRuntime

/// Serves the operations of a swift-openapi-generator `APIProtocol` on a `Router`.
///
/// The generated `registerHandlers(on:serverURL:configuration:middlewares:)` hands every
/// operation to the transport, which turns it into an ordinary route. ``router`` holds those
/// routes; mount it on the server's router:
///
/// ```swift
/// import MHDServers
/// import MHDServersOpenAPI
///
/// struct PetStoreServer: ServerLifecycle {
///     func registerRoutes(on router: inout Router, context: HTTPServerContext) {
///         let transport = OpenAPITransport()
///         // Throws only for a server URL or a path template the router cannot serve.
///         try! PetStore().registerHandlers(on: transport)
///         router.mount("/", transport.router)
///     }
/// }
/// ```
///
/// Every operation runs as an async route, so a slow operation never blocks other requests.
/// Routes, `HEAD` answered by `GET` routes, 404 and 405 answers, interceptors and metrics are
/// the router's own; the transport only translates between the two request and response types:
///
/// - The handler gets an `HTTPRequest` with the method, the path with its query string
///   (percent-encoded again from the decoded parameters), the `Host` field as its authority and
///   the other header fields, the body (`nil` when the request has none) and the path
///   parameters named as in the OpenAPI document. Path parameters are percent-encoded again
///   too, as the runtime decodes them; `,` and `=` stay as they are, since they separate the
///   items of array and object parameters (so an encoded `%2C` in a value separates items too).
/// - The response's body is collected up to ``maxResponseBodySize`` bytes and sent with its
///   status and header fields; the server sets `Content-Length` itself.
/// - An error that carries an HTTP status (the runtime's `ServerError` wrapping a malformed or
///   incomplete request, any `HTTPResponseConvertible`, or an `HTTPError` thrown by
///   an operation) is answered with that status. Without a body of its own, it gets the
///   server's JSON error body; for a request the operation could not decode, its message is
///   the runtime's description, for example `Missing required query parameter named: limit`.
///   Any other error is logged by the server and answered with a 500.
///
/// Mounted next to routes of your own, a parameter at the same position of a path needs the
/// same name in both (the router's rule); operations of one document may name it differently,
/// the transport reconciles them.
///
/// The transport is used while routes are declared, on one task; the routes it creates are
/// `Sendable` and run concurrently.
public final class OpenAPITransport: ServerTransport {
    /// The default bound for one response body: 16 MiB.
    ///
    /// ```swift
    /// let transport = OpenAPITransport(maxResponseBodySize: OpenAPITransport.defaultMaxResponseBodySize / 4)
    /// ```
    public static let defaultMaxResponseBodySize = 16 * 1024 * 1024

    /// The most bytes a response body may have; a larger one fails the request with a 500.
    ///
    /// ```swift
    /// let transport = OpenAPITransport(maxResponseBodySize: 1 << 20)
    /// print(transport.maxResponseBodySize)   // 1048576
    /// ```
    public let maxResponseBodySize: Int

    /// The routes registered so far, to mount on the server's router.
    ///
    /// ```swift
    /// try api.registerHandlers(on: transport)
    /// router.mount("/", transport.router)        // the paths of the document
    /// router.mount("/v2", transport.router)      // the same operations under /v2
    /// ```
    public private(set) var router = Router()

    /// The router parameter name chosen for each parameter position, so that operations that
    /// name the same position differently (`/pets/{petId}` and `/pets/{id}/toys`) share one.
    private var parameterNames: [String: String] = [:]

    /// Creates a transport with no routes.
    ///
    /// ```swift
    /// let transport = OpenAPITransport()                               // 16 MiB responses
    /// let small = OpenAPITransport(maxResponseBodySize: 64 * 1024)     // 64 KiB responses
    /// ```
    public init(maxResponseBodySize: Int = OpenAPITransport.defaultMaxResponseBodySize) {
        precondition(maxResponseBodySize >= 0, "maxResponseBodySize must not be negative")
        self.maxResponseBodySize = maxResponseBodySize
    }

    /// Adds a route for one operation: `path` is an OpenAPI path template such as
    /// `/pets/{petId}`, with each parameter a whole segment. Generated code calls it; tests and
    /// hand-written operations can too.
    ///
    /// ```swift
    /// let transport = OpenAPITransport()
    /// try transport.register({ request, body, metadata in
    ///     let id = metadata.pathParameters["petId"] ?? ""
    ///     return (HTTPResponse(status: .ok), HTTPBody("pet \(id)"))
    /// }, method: .get, path: "/pets/{petId}")
    /// ```
    ///
    /// - Throws: ``OpenAPITransportError/unsupportedPathTemplate(_:)`` for a template the router
    ///   cannot match: a parameter that is only part of a segment (`/files/{name}.json`), or a
    ///   literal segment the router reads as a pattern (`:name`, `*`).
    public func register(
        _ handler: @Sendable @escaping (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (
            HTTPResponse, HTTPBody?
        ),
        method: HTTPRequest.Method,
        path: String
    ) throws {
        let (pattern, parameters) = try routePattern(for: path)
        let limit = maxResponseBodySize
        router.on(method, pattern) { (request: Request) async throws -> Response in
            let httpRequest = try OpenAPIConversion.httpRequest(from: request)
            let body = request.body.isEmpty ? nil : HTTPBody(request.body)
            var metadata = ServerRequestMetadata()
            for parameter in parameters {
                guard let value = request.parameters[parameter.routerName] else { continue }
                metadata.pathParameters[parameter.name] = Substring(OpenAPIConversion.encodedPathParameter(value))
            }
            do {
                let (response, responseBody) = try await handler(httpRequest, body, metadata)
                return try await OpenAPIConversion.response(from: response, body: responseBody, limit: limit)
            } catch {
                return try await OpenAPIConversion.answer(to: error, limit: limit)
            }
        }
    }

    /// Converts an OpenAPI path template to a router pattern, and lists its parameters with
    /// the router name each is captured under.
    private func routePattern(for template: String) throws -> (String, [(name: String, routerName: String)]) {
        var segments: [String] = []
        var parameters: [(name: String, routerName: String)] = []
        for segment in template.split(separator: "/", omittingEmptySubsequences: true) {
            if segment.first == "{", segment.last == "}", segment.count > 2 {
                let name = String(segment.dropFirst().dropLast())
                guard !name.contains("{"), !name.contains("}") else {
                    throw OpenAPITransportError.unsupportedPathTemplate(template)
                }
                // The position is the path so far with every parameter written as `{}`.
                let position = (segments.map { $0.hasPrefix(":") ? "{}" : $0 } + ["{}"]).joined(separator: "/")
                var routerName = name
                if let existing = parameterNames[position] {
                    routerName = existing  // unique among its ancestors, which every such path shares
                } else {
                    var suffix = 2
                    while parameters.contains(where: { $0.routerName == routerName }) {
                        routerName = "\(name)_\(suffix)"
                        suffix += 1
                    }
                    parameterNames[position] = routerName
                }
                parameters.append((name, routerName))
                segments.append(":" + routerName)
            } else {
                guard !segment.contains("{"), !segment.contains("}"), !segment.hasPrefix(":"), segment != "*" else {
                    throw OpenAPITransportError.unsupportedPathTemplate(template)
                }
                segments.append(String(segment))
            }
        }
        return ("/" + segments.joined(separator: "/"), parameters)
    }
}

/// Why ``OpenAPITransport`` could not register an operation.
///
/// ```swift
/// do {
///     try api.registerHandlers(on: transport)
/// } catch OpenAPITransportError.unsupportedPathTemplate(let path) {
///     print("cannot serve \(path)")
/// }
/// ```
public enum OpenAPITransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The path template has a parameter that is only part of a segment (`/files/{name}.json`)
    /// or a literal segment the router reads as a pattern (`:name`, `*`).
    case unsupportedPathTemplate(String)

    public var description: String {
        switch self {
        case .unsupportedPathTemplate(let path):
            return "unsupported OpenAPI path template '\(path)': each parameter must be a whole segment"
        }
    }
}
