import CoreMetrics
import Synchronization

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
/// bounded; requests no route matched share the route `unmatched`. A route's series appear with
/// its first request.
final class RequestMetrics: Sendable {
    /// Handles of one route, created on the route's first request: a server with many routes
    /// (or a process with many servers) starts fast and registers only what is used.
    private final class Slot: Sendable {
        let byClass: [Counter]
        let duration: Timer
        let errors: Counter

        init(server: String, method: String, pattern: String) {
            let base = [("server", server), ("method", method), ("route", pattern)]
            byClass = (1...5).map { Counter(label: "http_server_requests_total", dimensions: base + [("status", "\($0)xx")]) }
            duration = Timer(label: "http_server_request_duration_seconds", dimensions: base, preferredDisplayUnit: .seconds)
            errors = Counter(label: "http_server_handler_errors_total", dimensions: base)
        }
    }

    /// One lazily filled slot (slot 0 = unmatched, slot n+1 = route n).
    private final class LazySlot: Sendable {
        let reference = AtomicLazyReference<Slot>()
        let method: String
        let pattern: String

        init(method: String, pattern: String) {
            self.method = method
            self.pattern = pattern
        }
    }

    private let server: String
    private let slots: [LazySlot]
    private let inFlight: Meter
    private let aborted: Counter

    init(server: String, routes: [(method: String, pattern: String)]) {
        self.server = server
        slots = ([("*", "unmatched")] + routes).map { LazySlot(method: $0.0, pattern: $0.1) }
        inFlight = Meter(label: "http_server_requests_in_flight", dimensions: [("server", server)])
        aborted = Counter(label: "http_server_aborted_requests_total", dimensions: [("server", server)])
    }

    private func slot(_ route: Int) -> Slot {
        let lazy = slots[route + 1]
        if let slot = lazy.reference.load() { return slot }
        return lazy.reference.storeIfNil(Slot(server: server, method: lazy.method, pattern: lazy.pattern))
    }

    func began() { inFlight.increment() }

    func handlerFailed(route: Int) { slot(route).errors.increment() }

    /// A request ended: answered with `status`, or aborted when `status` is 0.
    func ended(route: Int, status: Int, nanoseconds: UInt64) {
        inFlight.decrement()
        guard status > 0 else {
            aborted.increment()
            return
        }
        let slot = slot(route)
        slot.byClass[min(4, max(0, status / 100 - 1))].increment()
        slot.duration.recordNanoseconds(Int64(clamping: nanoseconds))
    }
}
