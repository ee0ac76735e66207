/// Code that runs around a router's handlers: it can change the request on its way in, change
/// the response on its way out, or answer by itself (short-circuit).
///
/// Add one to a ``Router`` (it then wraps every request the router answers, including its 404
/// and 405 answers), or to a group of routes with ``Router/group(_:middleware:_:)``. The first
/// added is the outermost. Middleware run once the route is resolved: they see its
/// ``Request/parameters`` and ``RequestContext/route``.
///
/// `next` never throws: an error thrown further in (by the handler, or an inner middleware) has
/// already been answered by the error mapping — an ``HTTPResponseError`` as it says, anything
/// else logged and answered 500 — so a middleware always gets a response to decorate. An error
/// a middleware throws itself is mapped the same way.
///
/// A middleware that only needs to act before and after, without awaiting anything, should be
/// an ``InlineMiddleware``: those keep inline handlers inline (no task, no thread hop).
///
/// ```swift
/// struct Timing: Middleware {
///     func handle(_ request: Request, next: Next) async throws -> Response {
///         let start = ContinuousClock.now
///         var response = await next(request)
///         response.headers["Server-Timing"] = "app;dur=\(ContinuousClock.now - start)"
///         return response
///     }
/// }
/// router.add(middleware: Timing())
/// ```
public protocol Middleware: Sendable {
    /// The rest of the chain: the inner middleware and the handler.
    typealias Next = @Sendable (Request) async -> Response

    /// Answers `request`, usually by calling `next` and returning what it returns, changed.
    func handle(_ request: Request, next: Next) async throws -> Response
}

/// A middleware that acts before and after the handler without awaiting anything: it runs
/// inline on the engine's thread with inline handlers, so a router of inline handlers and
/// inline middleware answers every request without a task or a thread hop.
///
/// ```swift
/// struct SecurityHeaders: InlineMiddleware {
///     func finish(_ response: inout Response, for request: Request) {
///         response.headers["X-Content-Type-Options"] = "nosniff"
///         response.headers["X-Frame-Options"] = "DENY"
///     }
/// }
/// router.add(middleware: SecurityHeaders())
/// ```
public protocol InlineMiddleware: Middleware {
    /// Before the handler: change the request, or return a response to answer with it (the
    /// handler and the inner middleware do not run, and neither does this middleware's
    /// ``finish(_:for:)``). A thrown error is answered by the error mapping. Default: nothing.
    func prepare(_ request: inout Request) throws -> Response?

    /// After the handler (or an inner middleware's answer): change the response. Default: nothing.
    func finish(_ response: inout Response, for request: Request)
}

extension InlineMiddleware {
    /// Lets the request through unchanged.
    public func prepare(_ request: inout Request) throws -> Response? { nil }

    /// Leaves the response unchanged.
    public func finish(_ response: inout Response, for request: Request) {}

    /// ``prepare(_:)``, then `next`, then ``finish(_:for:)``.
    public func handle(_ request: Request, next: Next) async throws -> Response {
        var request = request
        if let answer = try prepare(&request) { return answer }
        var response = await next(request)
        finish(&response, for: request)
        return response
    }
}

/// Builds handler chains: middleware around a route's handler, error mapping at each boundary.
enum MiddlewareChain {
    /// `handler` wrapped in `stack` (first = outermost). The chain stays inline as long as the
    /// handler and every middleware are inline.
    static func compose(_ stack: [any Middleware], around handler: Router.Handler) -> Router.Handler {
        var current = handler
        for middleware in stack.reversed() { current = wrap(middleware, around: current) }
        return current
    }

    private static func wrap(_ middleware: any Middleware, around inner: Router.Handler) -> Router.Handler {
        if let tracing = middleware as? TracingMiddleware { return tracing.wrap(inner) }
        switch (middleware as? any InlineMiddleware, inner) {
        case (let inline?, .sync(let handler)):
            return .sync { request in
                if let answer = try inline.prepare(&request) { return answer }
                var response: Response
                do { response = try handler(&request) } catch { response = .failure(error, for: request) }
                inline.finish(&response, for: request)
                return response
            }
        case (let inline?, .async(let handler)):
            return .async { request in
                var request = request
                if let answer = try inline.prepare(&request) { return answer }
                var response: Response
                do { response = try await handler(request) } catch { response = .failure(error, for: request) }
                inline.finish(&response, for: request)
                return response
            }
        case (nil, _):
            let next = answering(inner)
            return .async { request in try await middleware.handle(request, next: next) }
        }
    }

    /// The chain as a `next` that never throws: errors are answered by the error mapping.
    static func answering(_ handler: Router.Handler) -> Middleware.Next {
        switch handler {
        case .sync(let handler):
            return { request in
                var request = request
                do { return try handler(&request) } catch { return .failure(error, for: request) }
            }
        case .async(let handler):
            return { request in
                do { return try await handler(request) } catch { return .failure(error, for: request) }
            }
        }
    }
}
