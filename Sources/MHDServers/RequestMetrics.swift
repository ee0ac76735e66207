import CoreMetrics

/// Per-route request metrics, recorded through swift-metrics so any backend can collect them
/// (`MetricsSystem.bootstrap(...)` before the servers start; without it they cost a no-op call).
///
/// | metric | type | dimensions |
/// |---|---|---|
/// | `http_server_requests_total` | counter | `server`, `method`, `route`, `status` (`2xx`…) |
/// | `http_server_request_duration_seconds` | timer | `server`, `method`, `route` |
/// | `http_server_handler_errors_total` | counter | `server`, `method`, `route` |
/// | `http_server_aborted_requests_total` | counter | `server` |
/// | `http_server_requests_in_flight` | meter | `server` |
///
/// `route` is the route's pattern (`/users/:id`), never the raw path, so cardinality stays
/// bounded; requests no route matched share the route `unmatched`.
final class RequestMetrics: Sendable {
    /// Handles per route slot (slot 0 = unmatched, slot n+1 = route n).
    private struct Slot: Sendable {
        let byClass: [Counter]
        let duration: Timer
        let errors: Counter
    }

    private let slots: [Slot]
    private let inFlight: Meter
    private let aborted: Counter

    init(server: String, routes: [(method: String, pattern: String)]) {
        let labels = [("*", "unmatched")] + routes
        slots = labels.map { method, pattern in
            let base = [("server", server), ("method", method), ("route", pattern)]
            return Slot(
                byClass: (1...5).map { Counter(label: "http_server_requests_total", dimensions: base + [("status", "\($0)xx")]) },
                duration: Timer(label: "http_server_request_duration_seconds", dimensions: base, preferredDisplayUnit: .seconds),
                errors: Counter(label: "http_server_handler_errors_total", dimensions: base))
        }
        inFlight = Meter(label: "http_server_requests_in_flight", dimensions: [("server", server)])
        aborted = Counter(label: "http_server_aborted_requests_total", dimensions: [("server", server)])
    }

    func began() { inFlight.increment() }

    func handlerFailed(route: Int) { slots[route + 1].errors.increment() }

    /// A request ended: answered with `status`, or aborted when `status` is 0.
    func ended(route: Int, status: Int, nanoseconds: UInt64) {
        inFlight.decrement()
        guard status > 0 else {
            aborted.increment()
            return
        }
        let slot = slots[route + 1]
        slot.byClass[min(4, max(0, status / 100 - 1))].increment()
        slot.duration.recordNanoseconds(Int64(clamping: nanoseconds))
    }
}
