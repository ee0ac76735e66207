import HTTPTypes
import MHDServers
import OpenAPIRuntime

/// Translation between the server's `Request`/`Response` and the runtime's `HTTPRequest`,
/// `HTTPResponse` and `HTTPBody`.
enum OpenAPIConversion {
    /// The request as the OpenAPI handler sees it. The path and query were decoded by the
    /// server; they are percent-encoded again, as the runtime decodes them itself.
    static func httpRequest(from request: Request) throws -> HTTPRequest {
        var fields = HTTPFields()
        fields.reserveCapacity(request.headers.count)
        var authority: String?
        for field in request.headers {
            if field.name.canonicalName == "host", authority == nil {
                authority = field.value  // HTTP/1 `Host` is the request's authority
                continue
            }
            fields.append(field)
        }
        var target = encodedPath(request.path)
        if !request.query.isEmpty { target += "?" + encodedQuery(request.query) }
        return HTTPRequest(method: request.method, scheme: nil, authority: authority, path: target, headerFields: fields)
    }

    /// The server response for an OpenAPI response: its body is collected up to `limit` bytes.
    static func response(from response: HTTPResponse, body: HTTPBody?, limit: Int) async throws -> Response {
        var bytes: [UInt8] = []
        if let body { bytes = try await [UInt8](collecting: body, upTo: limit) }
        return Response(status: response.status, headers: headers(from: response.headerFields), body: bytes)
    }

    /// The answer to an error thrown by an OpenAPI handler, or the error to let the server
    /// answer (`HTTPError`, or anything without a status of its own: logged, 500).
    static func answer(to error: any Error, limit: Int) async throws -> Response {
        let status: HTTPResponse.Status
        let fields: HTTPFields
        let body: HTTPBody?
        var message: String?
        if let error = error as? OpenAPIRuntime.ServerError {
            if let httpError = error.underlyingError as? HTTPError { throw httpError }
            // The runtime gives 500 to errors without a status of their own.
            if error.httpStatus == .internalServerError, error.httpHeaderFields.isEmpty, error.httpBody == nil {
                throw OperationFailure(error)
            }
            (status, fields, body) = (error.httpStatus, error.httpHeaderFields, error.httpBody)
            // No input yet: the request could not be decoded, and the runtime says why.
            if error.operationInput == nil, error.httpStatus.kind == HTTPResponse.Status.Kind.clientError { message = error.causeDescription }
        } else if let error = error as? any HTTPResponseConvertible {
            (status, fields, body) = (error.httpStatus, error.httpHeaderFields, error.httpBody)
        } else {
            throw error
        }
        if let body {
            return try await response(from: HTTPResponse(status: status, headerFields: fields), body: body, limit: limit)
        }
        throw HTTPError(status, message: message, headers: headers(from: fields))
    }

    /// Header fields for the server; the server frames the body itself, so the framing fields
    /// of the OpenAPI response are left out.
    static func headers(from fields: HTTPFields) -> HTTPHeaders {
        fields.filter { !framing.contains($0.name) }
    }

    private static let framing: Set<HTTPField.Name> = [.contentLength, .transferEncoding, .connection]

    // MARK: Percent-encoding

    /// A decoded path encoded again: every byte that may not stand in a path segment as it is
    /// is percent-encoded (`/` separates segments).
    static func encodedPath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false)
            .map { percentEncoded($0, keeping: pathCharacters) }
            .joined(separator: "/")
    }

    /// A decoded path parameter encoded for the runtime's URI decoder: `,` and `=` stay as they
    /// are, since they separate the items of array and object parameters (`/items/1,2,3`).
    static func encodedPathParameter(_ value: String) -> String {
        percentEncoded(value[...], keeping: parameterCharacters)
    }

    /// The query string for decoded parameters: `name=value` pairs joined by `&`, with `,` kept
    /// (it separates the items of an array parameter: `tags=a,b`).
    static func encodedQuery(_ query: QueryParameters) -> String {
        query.map { name, value in
            percentEncoded(name[...], keeping: queryCharacters) + "=" + percentEncoded(value[...], keeping: queryCharacters)
        }.joined(separator: "&")
    }

    /// RFC 3986 unreserved characters: `A-Z a-z 0-9 - . _ ~`.
    private static let unreserved: Set<UInt8> = Set(
        Array(UInt8(ascii: "A")...UInt8(ascii: "Z")) + Array(UInt8(ascii: "a")...UInt8(ascii: "z"))
            + Array(UInt8(ascii: "0")...UInt8(ascii: "9")) + Array("-._~".utf8))
    /// Unreserved characters, sub-delimiters, `:` and `@` (RFC 3986 `pchar` without `%`).
    private static let pathCharacters = unreserved.union("!$&'()*+,;=:@".utf8)
    private static let parameterCharacters = unreserved.union(",=".utf8)
    private static let queryCharacters = unreserved.union(",".utf8)

    private static func percentEncoded(_ text: Substring, keeping allowed: Set<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            if allowed.contains(byte) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// An OpenAPI operation failed without a status of its own. What the server logs: the
/// operation, the cause and the underlying error, but not the request (its header fields may
/// hold credentials).
struct OperationFailure: Error, CustomStringConvertible {
    let operationID: String
    let cause: String
    let underlyingError: any Error

    init(_ error: OpenAPIRuntime.ServerError) {
        operationID = error.operationID
        cause = error.causeDescription
        underlyingError = error.underlyingError
    }

    var description: String {
        "OpenAPI operation '\(operationID)' failed: \(cause) Underlying error: \(String(reflecting: underlyingError))"
    }
}
