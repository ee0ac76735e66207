/// An HTTP response status: a three-digit code and its reason phrase.
///
/// ```swift
/// let created = Response(status: .created)
/// let teapot = Response(status: 418)   // integer literals work too
/// print(created.status.code, teapot.status.reasonPhrase)
/// ```
public struct HTTPStatus: Hashable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// The numeric status code, for example `404`.
    public let code: Int
    /// The reason phrase, for example `"Not Found"`.
    public let reasonPhrase: String

    /// Creates a status from a code and an optional reason phrase (a standard one is used if omitted).
    public init(code: Int, reasonPhrase: String? = nil) {
        self.code = code
        self.reasonPhrase = reasonPhrase ?? HTTPStatus.standardReason(for: code)
    }

    /// Creates a status from an integer literal: `let status: HTTPStatus = 404`.
    public init(integerLiteral value: Int) { self.init(code: value) }

    public var description: String { "\(code) \(reasonPhrase)" }

    /// Whether the code is in the 5xx range.
    public var isServerError: Bool { code >= 500 && code < 600 }

    public static func == (lhs: HTTPStatus, rhs: HTTPStatus) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// 200
    public static let ok = HTTPStatus(code: 200)
    /// 201
    public static let created = HTTPStatus(code: 201)
    /// 202
    public static let accepted = HTTPStatus(code: 202)
    /// 204
    public static let noContent = HTTPStatus(code: 204)
    /// 301
    public static let movedPermanently = HTTPStatus(code: 301)
    /// 302
    public static let found = HTTPStatus(code: 302)
    /// 304
    public static let notModified = HTTPStatus(code: 304)
    /// 400
    public static let badRequest = HTTPStatus(code: 400)
    /// 401
    public static let unauthorized = HTTPStatus(code: 401)
    /// 403
    public static let forbidden = HTTPStatus(code: 403)
    /// 404
    public static let notFound = HTTPStatus(code: 404)
    /// 405
    public static let methodNotAllowed = HTTPStatus(code: 405)
    /// 409
    public static let conflict = HTTPStatus(code: 409)
    /// 413
    public static let contentTooLarge = HTTPStatus(code: 413)
    /// 415
    public static let unsupportedMediaType = HTTPStatus(code: 415)
    /// 422
    public static let unprocessableContent = HTTPStatus(code: 422)
    /// 429
    public static let tooManyRequests = HTTPStatus(code: 429)
    /// 500
    public static let internalServerError = HTTPStatus(code: 500)
    /// 501
    public static let notImplemented = HTTPStatus(code: 501)
    /// 503
    public static let serviceUnavailable = HTTPStatus(code: 503)

    static func standardReason(for code: Int) -> String {
        switch code {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 418: return "I'm a teapot"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Status \(code)"
        }
    }
}
