/// An HTTP response status: swift-http-types' `HTTPResponse.Status`, a three-digit code and a
/// reason phrase. Two statuses are equal when their codes are.
///
/// ```swift
/// let created = Response(status: .created)
/// let teapot = Response(status: 418)   // integer literals work too
/// print(created.status.code, teapot.status.phrase)   // 201 I'm a teapot
/// ```
public typealias HTTPStatus = HTTPResponse.Status

extension HTTPResponse.Status {
    /// Whether the code is in the 5xx range.
    ///
    /// ```swift
    /// if response.status.isServerError { logger.warning("failed: \(response.status)") }
    /// ```
    public var isServerError: Bool { kind == .serverError }

    /// The reason phrase, or the standard one for the code when none was given (a status
    /// built from an integer literal has none): what error bodies say by default.
    ///
    /// ```swift
    /// let status: HTTPStatus = 404
    /// print(status.phrase)   // Not Found
    /// ```
    public var phrase: String {
        reasonPhrase.isEmpty ? Self.standardReason(for: code) : reasonPhrase
    }

    static func standardReason(for code: Int) -> String {
        switch code {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
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
