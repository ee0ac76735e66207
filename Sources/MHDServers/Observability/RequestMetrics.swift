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
/// bounded; requests no route matched share the route `unmatched`. Every route's series are
/// registered when its server starts, so a dashboard sees zeros before the first request (and
/// `rate()` sees the first burst). ``ServerManager/runAll(_:alongside:signals:reloadSignals:upgradeSignals:)``
/// registers them once all its servers serve, in a task of its own beside the `onStarted` hooks,
/// not before: with some backends registering costs time that grows with the square of the
/// series under one name (swift-prometheus 2.4.1 copies a metric's whole table of series for
/// each series it adds), which made 102 servers of 11 routes take 5 times longer to start. A
/// route whose first request ends before then registers its own series at that moment.
///
/// Backends that keep histograms need buckets that fit an API server: give the duration timer
/// ``recommendedDurationBuckets`` (100 µs … 10 s). With swift-prometheus:
///
/// ```swift
/// import CoreMetrics
/// import MHDServers
/// import Prometheus
///
/// let registry = PrometheusCollectorRegistry()
/// var factory = PrometheusMetricsFactory(registry: registry)
/// factory.durationHistogramBuckets[RequestMetrics.durationLabel] = RequestMetrics.recommendedDurationBuckets
/// MetricsSystem.bootstrap(factory)
/// ```
public final class RequestMetrics: Sendable {
    /// The label of the request duration timer.
    public static let durationLabel = "http_server_request_duration_seconds"

    /// Histogram buckets for request durations, from 100 µs to 10 s in 1–2.5–5 steps: what an
    /// API server answers in, from a cached answer on loopback to a slow upstream call.
    public static let recommendedDurationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// The handles of one route (or of the unmatched requests).
    private final class Slot: Sendable {
        let byClass: [Counter]
        let duration: Timer
        let errors: Counter

        init(server: String, method: String, pattern: String, factory: any MetricsFactory) {
            let base = [("server", server), ("method", method), ("route", pattern)]
            byClass = (1...5).map {
                Counter(label: "http_server_requests_total", dimensions: base + [("status", "\($0)xx")], factory: factory)
            }
            duration = Timer(label: RequestMetrics.durationLabel, dimensions: base, preferredDisplayUnit: .seconds, factory: factory)
            errors = Counter(label: "http_server_handler_errors_total", dimensions: base, factory: factory)
        }
    }

    /// A route's slot, made when the series are registered or by the route's first use,
    /// whichever comes first.
    private final class LazySlot: Sendable {
        let method: String
        let pattern: String
        private let made = Atomic<Unmanaged<Slot>?>(nil)

        init(method: String, pattern: String) {
            self.method = method
            self.pattern = pattern
        }

        deinit { made.load(ordering: .acquiring)?.release() }

        func slot(server: String, factory: any MetricsFactory) -> Slot {
            if let slot = made.load(ordering: .acquiring) { return slot.takeUnretainedValue() }
            // Two threads may both make it: the backend hands both the same series, one is kept.
            let fresh = Unmanaged.passRetained(Slot(server: server, method: method, pattern: pattern, factory: factory))
            let (exchanged, current) = made.compareExchange(
                expected: nil, desired: fresh, successOrdering: .acquiringAndReleasing, failureOrdering: .acquiring)
            if exchanged { return fresh.takeUnretainedValue() }
            fresh.release()
            return current!.takeUnretainedValue()
        }
    }

    private let server: String
    private let factory: any MetricsFactory
    private let slots: [LazySlot]
    private let inFlight: Meter
    private let aborted: Counter

    /// Slot 0 is the unmatched requests, slot n + 1 route n. The server's own series are
    /// registered now, the routes' by ``registerSeries()`` (or by their first use).
    init(server: String, routes: [(method: String, pattern: String)], factory: any MetricsFactory = MetricsSystem.factory) {
        self.server = server
        self.factory = factory
        slots = ([("*", "unmatched")] + routes).map { LazySlot(method: $0.0, pattern: $0.1) }
        inFlight = Meter(label: "http_server_requests_in_flight", dimensions: [("server", server)], factory: factory)
        aborted = Counter(label: "http_server_aborted_requests_total", dimensions: [("server", server)], factory: factory)
    }

    /// Registers every route's series (at zero) that is not registered yet.
    func registerSeries() {
        for slot in slots { _ = slot.slot(server: server, factory: factory) }
    }

    private func slot(_ route: Int) -> Slot { slots[route + 1].slot(server: server, factory: factory) }

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
