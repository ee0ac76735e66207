import Logging

/// What the middleware before a handler learned about its request — the request ID, a logger
/// carrying the request's metadata, who is calling — and any value of your own under a typed
/// key. It travels with the ``Request`` (`request.context`), so a middleware fills it by changing
/// the request it passes on, and the handler reads it.
///
/// ```swift
/// enum CurrentUser: RequestContextKey { typealias Value = String }
///
/// struct Authenticate: InlineMiddleware {
///     func prepare(_ request: inout Request) throws -> Response? {
///         guard let user = request.headers["X-User"] else { return .error(.unauthorized) }
///         request.context[CurrentUser.self] = user
///         request.context.identity = user
///         request.context.logger[metadataKey: "user"] = "\(user)"
///         return nil
///     }
/// }
/// router.add(middleware: Authenticate())
/// router.get("/me") { request in .text(request.context[CurrentUser.self] ?? "nobody") }
/// ```
public struct RequestContext: Sendable {
    /// The request's ID: the caller's `X-Request-Id` or a generated one, once
    /// ``RequestIDMiddleware`` ran.
    public var requestID: String?
    /// Who is calling, once an authentication middleware established it (a user or client ID).
    public var identity: String?
    /// The pattern of the route that matched (`/users/:id`); `nil` when none did.
    public var route: String?
    /// A logger for this request: the server's logger (with `server` metadata), plus what
    /// middleware add, and `request-id` whenever ``requestID`` is set (``RequestIDMiddleware``
    /// sets it).
    ///
    /// The `request-id` metadata is attached when the logger is read, so a request that logs
    /// nothing pays nothing for it (a log handler may format its metadata each time it
    /// changes). Read it once into a local when a handler logs several times:
    ///
    /// ```swift
    /// router.get("/orders") { request in
    ///     let logger = request.context.logger
    ///     logger.info("listing orders")
    ///     return .text("[]")
    /// }
    /// ```
    public var logger: Logger {
        get {
            guard let requestID else { return baseLogger }
            var logger = baseLogger
            logger[metadataKey: "request-id"] = .string(requestID)
            return logger
        }
        set { baseLogger = newValue }
    }
    private var baseLogger: Logger
    private var values: [ObjectIdentifier: any Sendable] = [:]

    /// An empty context logging to `logger`.
    ///
    /// ```swift
    /// let context = RequestContext(logger: Logger(label: "test"))
    /// ```
    public init(logger: Logger = RequestContext.defaultLogger) {
        self.baseLogger = logger
    }

    /// The logger of a request built outside a server (in a test, say).
    public static let defaultLogger = Logger(label: "MHDServers.request")

    /// The value stored under `key`, if any.
    ///
    /// ```swift
    /// enum TenantKey: RequestContextKey { typealias Value = Int }
    /// var copy = request
    /// copy.context[TenantKey.self] = 42
    /// ```
    public subscript<Key: RequestContextKey>(key: Key.Type) -> Key.Value? {
        get { values[ObjectIdentifier(key)] as? Key.Value }
        set { values[ObjectIdentifier(key)] = newValue }
    }
}

/// A typed key for a value of your own in a ``RequestContext``.
///
/// ```swift
/// struct Account: Sendable { var id: Int }
/// enum AccountKey: RequestContextKey { typealias Value = Account }
/// ```
public protocol RequestContextKey {
    /// The type of the value stored under this key.
    associatedtype Value: Sendable
}
