/// An HTTP request method such as `GET` or `POST`.
///
/// Methods are compared by their exact, case-sensitive token, as HTTP requires.
///
/// ```swift
/// router.on(.patch, "/users/:id") { _ in Response(status: .noContent) }
/// router.on("PURGE", "/cache") { _ in .text("purged") }   // any token: string literals work
/// ```
public struct HTTPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    /// The method token as sent on the request line, for example `"GET"`.
    public let rawValue: String

    /// Creates a method from its token, for example `HTTPMethod(rawValue: "PURGE")`.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Creates a method from a string literal: `let method: HTTPMethod = "PURGE"`.
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }

    /// `GET`
    public static let get = HTTPMethod(rawValue: "GET")
    /// `HEAD`
    public static let head = HTTPMethod(rawValue: "HEAD")
    /// `POST`
    public static let post = HTTPMethod(rawValue: "POST")
    /// `PUT`
    public static let put = HTTPMethod(rawValue: "PUT")
    /// `PATCH`
    public static let patch = HTTPMethod(rawValue: "PATCH")
    /// `DELETE`
    public static let delete = HTTPMethod(rawValue: "DELETE")
    /// `OPTIONS`
    public static let options = HTTPMethod(rawValue: "OPTIONS")

    /// Interns the common methods so the hot path does not allocate a new string.
    static func interned(_ token: String) -> HTTPMethod {
        switch token {
        case "GET": return .get
        case "POST": return .post
        case "HEAD": return .head
        case "PUT": return .put
        case "PATCH": return .patch
        case "DELETE": return .delete
        case "OPTIONS": return .options
        default: return HTTPMethod(rawValue: token)
        }
    }
}
