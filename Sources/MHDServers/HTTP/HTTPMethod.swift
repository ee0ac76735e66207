/// An HTTP request method such as `GET` or `POST`: swift-http-types' `HTTPRequest.Method`.
///
/// Methods are compared by their exact, case-sensitive token, as HTTP requires. A method that
/// is not a valid token cannot be built (`HTTPMethod("BAD METHOD")` is `nil`).
///
/// ```swift
/// router.on(.patch, "/users/:id") { _ in Response(status: .noContent) }
/// let purge = HTTPMethod("PURGE")!                   // any token
/// router.on(purge, "/cache") { _ in .text("purged") }
/// ```
public typealias HTTPMethod = HTTPRequest.Method

extension HTTPRequest.Method {
    /// The method for a token from a request line: the common ones shared, `nil` for a token
    /// that is not one (RFC 9110 §9.1).
    static func parsed(_ token: String) -> HTTPMethod? {
        switch token {
        case "GET": return .get
        case "POST": return .post
        case "HEAD": return .head
        case "PUT": return .put
        case "PATCH": return .patch
        case "DELETE": return .delete
        case "OPTIONS": return .options
        default: return HTTPMethod(token)
        }
    }
}
