import Tracing

/// One server span per request, through swift-distributed-tracing: named `METHOD /route/:pattern`,
/// with the OpenTelemetry HTTP attributes (`http.request.method`, `http.route`, `url.path`,
/// `network.protocol.version`, `http.response.status_code`), the error it answered recorded, and
/// its status set to error for a 5xx. The caller's trace context is extracted from the request
/// headers by the tracer's own propagation (W3C `traceparent` for OpenTelemetry), and the span's
/// context is the current `ServiceContext` while the handler runs, so spans it starts and calls it
/// makes are children of the request's span.
///
/// Servers add it by themselves, outside every other middleware, when a tracer is bootstrapped
/// (`InstrumentationSystem.bootstrap(...)` before the servers start) and
/// ``ServerConfig/tracesRequests`` is on; with no tracer it is not there at all. Add it yourself
/// to trace with a tracer of your choice. It keeps inline handlers inline.
///
/// ```swift
/// import Tracing
///
/// router.add(middleware: TracingMiddleware(tracer: InstrumentationSystem.tracer))
/// ```
public struct TracingMiddleware: Middleware {
    /// The tracer spans are started with.
    public let tracer: any Tracer

    /// Traces with `tracer`.
    ///
    /// ```swift
    /// let tracing = TracingMiddleware(tracer: InstrumentationSystem.tracer)
    /// ```
    public init(tracer: any Tracer) {
        self.tracer = tracer
    }

    /// A middleware for the bootstrapped tracer, or `nil` when none is (nothing to do).
    static func bootstrapped() -> TracingMiddleware? {
        let tracer = InstrumentationSystem.tracer
        return tracer is NoOpTracer ? nil : TracingMiddleware(tracer: tracer)
    }

    public func handle(_ request: Request, next: Next) async throws -> Response {
        let span = begin(request)
        let response = await ServiceContext.withValue(span.context) { await next(request) }
        end(span, response)
        return response
    }

    /// The chain around `inner`, inline when `inner` is.
    func wrap(_ inner: Router.Handler) -> Router.Handler {
        switch inner {
        case .sync(let handler):
            return .sync { request in
                let span = begin(request)
                let response = ServiceContext.withValue(span.context) {
                    do { return try handler(&request) } catch { return Response.failure(error, for: request) }
                }
                end(span, response)
                return response
            }
        case .async(let handler):
            return .async { request in
                let span = begin(request)
                let response = await ServiceContext.withValue(span.context) {
                    do { return try await handler(request) } catch { return Response.failure(error, for: request) }
                }
                end(span, response)
                return response
            }
        }
    }

    private func begin(_ request: Request) -> any Span {
        var context = ServiceContext.current ?? .topLevel
        tracer.extract(request.headers, into: &context, using: HeaderExtractor())
        let route = request.context.route
        let span = tracer.startSpan(
            route.map { "\(request.method.rawValue) \($0)" } ?? request.method.rawValue, context: context, ofKind: .server)
        span.attributes["http.request.method"] = request.method.rawValue
        if let route { span.attributes["http.route"] = route }
        span.attributes["url.path"] = request.path
        if request.version.hasPrefix("HTTP/") { span.attributes["network.protocol.version"] = String(request.version.dropFirst(5)) }
        return span
    }

    private func end(_ span: any Span, _ response: Response) {
        span.attributes["http.response.status_code"] = response.status.code
        if let error = response.error { span.recordError(error) }
        if response.status.isServerError { span.setStatus(SpanStatus(code: .error)) }
        span.end()
    }
}

/// Reads trace context from request headers (names compared without regard to case).
struct HeaderExtractor: Extractor {
    func extract(key: String, from carrier: HTTPHeaders) -> String? { carrier[key] }
}
