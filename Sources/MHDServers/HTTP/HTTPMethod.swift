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

