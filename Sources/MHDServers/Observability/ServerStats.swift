import Synchronization

/// Live counters of one server, updated by the engine threads without locks.
///
/// ```swift
/// let snapshot = server.stats.snapshot()
/// print(snapshot.requests, snapshot.inFlight, snapshot.latency.quantile(0.99))
/// ```
public final class ServerStats: Sendable {
    /// Upper bounds of the latency buckets, in seconds.
    public static let latencyBuckets: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    private static let bucketBoundsNanos: [UInt64] = latencyBuckets.map { UInt64($0 * 1e9) }

    let startedAt = ContinuousClock.now
    private let requests = Atomic<Int>(0)
    private let inFlightCount = Atomic<Int>(0)
    private let handlerErrors = Atomic<Int>(0)
    private let aborted = Atomic<Int>(0)
    private let byClass: [AtomicCounter] = (0..<6).map { _ in AtomicCounter() }
    private let latencyNanos = Atomic<Int>(0)
    private let latencyMaxNanos = Atomic<Int>(0)
    private let buckets: [AtomicCounter] = (0...latencyBuckets.count).map { _ in AtomicCounter() }
    /// Request contexts alive right now (created by the engine, not yet released). Returns to
    /// zero with ``inFlight`` once every request has ended; anything else is a leak.
    let liveContexts = Atomic<Int>(0)
    /// Latencies at a resolution of about 6 % (see ``LatencyScale``), for quantiles.
    private let distribution = AtomicCounts(count: LatencyScale.bucketCount)

    init() {}

    /// A request started (its headers were read).
    func began() { inFlightCount.add(1, ordering: .relaxed) }

    /// A handler threw.
    func handlerFailed() { handlerErrors.add(1, ordering: .relaxed) }

    /// A request ended: answered with `status`, or aborted when `status` is 0.
    func ended(status: Int, nanoseconds: UInt64) {
        // Sequentially consistent, like the drain's check (see DrainSignal): the request that
        // ends last and a drain that starts waiting cannot both miss each other.
        inFlightCount.subtract(1, ordering: .sequentiallyConsistent)
        guard status > 0 else {
            aborted.add(1, ordering: .relaxed)
            return
        }
        requests.add(1, ordering: .relaxed)
        byClass[min(5, max(0, status / 100))].increment()
        let nanos = Int(clamping: nanoseconds)
        latencyNanos.add(nanos, ordering: .relaxed)
        var current = latencyMaxNanos.load(ordering: .relaxed)
        while nanos > current {
            let (exchanged, original) = latencyMaxNanos.compareExchange(
                expected: current, desired: nanos, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        distribution.increment(LatencyScale.index(nanoseconds: nanoseconds))
        var index = 0
        let bounds = Self.bucketBoundsNanos
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        buckets[index].increment()
    }

    /// Requests being processed right now.
    public var inFlight: Int { inFlightCount.load(ordering: .relaxed) }

    /// ``inFlight``, read in order with every other sequentially consistent operation.
    var inFlightNow: Int { inFlightCount.load(ordering: .sequentiallyConsistent) }

    /// A consistent-enough copy of every counter.
    public func snapshot() -> Snapshot {
        let counts = buckets.map(\.value)
        let answered = requests.load(ordering: .relaxed)
        return Snapshot(
            requests: answered,
            inFlight: inFlight,
            handlerErrors: handlerErrors.load(ordering: .relaxed),
            aborted: aborted.load(ordering: .relaxed),
            statusClasses: [
                "1xx": byClass[1].value, "2xx": byClass[2].value,
                "3xx": byClass[3].value, "4xx": byClass[4].value,
                "5xx": byClass[5].value,
            ],
            latency: Latency(
                count: answered,
                totalSeconds: Double(latencyNanos.load(ordering: .relaxed)) / 1e9,
                maxSeconds: Double(latencyMaxNanos.load(ordering: .relaxed)) / 1e9,
                bucketCounts: counts, distribution: distribution.values),
            uptimeSeconds: (ContinuousClock.now - startedAt).seconds)
    }

    /// A point-in-time copy of a server's counters.
    public struct Snapshot: Sendable, Codable {
        /// Requests answered (any status).
        public var requests: Int
        /// Requests in progress.
        public var inFlight: Int
        /// Handlers that threw an error.
        public var handlerErrors: Int
        /// Requests that ended without a response (client went away, timeout, shutdown).
        public var aborted: Int
        /// Responses by status class: `"2xx"`, `"4xx"`...
        public var statusClasses: [String: Int]
        /// Latency from request headers read to response completely sent.
        public var latency: Latency
        /// Seconds since the server started.
        public var uptimeSeconds: Double

        /// Responses with a 5xx status.
        public var errors: Int { statusClasses["5xx"] ?? 0 }
    }

    /// A latency summary: a histogram over ``ServerStats/latencyBuckets`` (what metrics export)
    /// and a finer log-linear distribution that quantiles are estimated from.
    public struct Latency: Sendable, Codable {
        /// Number of observations.
        public var count: Int
        /// Sum of all observations, in seconds.
        public var totalSeconds: Double
        /// The largest observation, in seconds.
        public var maxSeconds: Double
        /// Observations per bucket; the last entry counts those above every bound.
        public var bucketCounts: [Int]
        /// Observations per bucket of the log-linear scale (microseconds, 8 buckets per power
        /// of two, so a bucket is at most about 12 % wide); empty when not recorded.
        public var distribution: [Int]

        /// Creates a summary.
        ///
        /// ```swift
        /// let latency = ServerStats.Latency(count: 0, totalSeconds: 0, maxSeconds: 0, bucketCounts: [])
        /// print(latency.quantile(0.99))   // 0 without observations
        /// ```
        public init(count: Int, totalSeconds: Double, maxSeconds: Double, bucketCounts: [Int], distribution: [Int] = []) {
            self.count = count
            self.totalSeconds = totalSeconds
            self.maxSeconds = maxSeconds
            self.bucketCounts = bucketCounts
            self.distribution = distribution
        }

        /// Mean latency in seconds (0 without observations).
        public var meanSeconds: Double { count == 0 ? 0 : totalSeconds / Double(count) }

        /// The latency at or below which `fraction` of the observations fall, in seconds: the
        /// middle of the log-linear bucket that holds that rank (within about 6 % of the real
        /// value), never above ``maxSeconds``. Without a distribution, the upper bound of the
        /// coarse bucket.
        ///
        /// ```swift
        /// let p99 = server.stats.snapshot().latency.quantile(0.99)
        /// ```
        public func quantile(_ fraction: Double) -> Double {
            let observed = distribution.reduce(0, +)
            if observed > 0 {
                let target = max(1, Int((Double(observed) * fraction).rounded(.up)))
                var seen = 0
                for (index, count) in distribution.enumerated() {
                    seen += count
                    if seen >= target { return min(maxSeconds, LatencyScale.midpointSeconds(of: index)) }
                }
                return maxSeconds
            }
            let total = bucketCounts.reduce(0, +)
            guard total > 0 else { return 0 }
            let target = Int((Double(total) * fraction).rounded(.up))
            var seen = 0
            for (index, count) in bucketCounts.enumerated() {
                seen += count
                if seen >= target {
                    return index < ServerStats.latencyBuckets.count ? ServerStats.latencyBuckets[index] : maxSeconds
                }
            }
            return maxSeconds
        }
    }
}

/// One atomic counter; arrays of these stand in for arrays of (non-copyable) atomics.
final class AtomicCounter: Sendable {
    private let atomic = Atomic<Int>(0)
    func increment() { atomic.add(1, ordering: .relaxed) }
    var value: Int { atomic.load(ordering: .relaxed) }
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A log-linear latency scale in microseconds, in the manner of HdrHistogram: exact below 8 µs,
/// then 8 buckets per power of two (each at most 1/8 of its lower bound wide) up to 2²⁶ µs
/// (67 s); slower requests share the last bucket.
enum LatencyScale {
    static let subBuckets = 8
    static let highestPower = 26
    static let bucketCount = subBuckets + (highestPower - 3 + 1) * subBuckets

    @inline(__always)
    static func index(nanoseconds: UInt64) -> Int {
        let micros = nanoseconds / 1000
        if micros < UInt64(subBuckets) { return Int(micros) }
        let power = min(highestPower, 63 - micros.leadingZeroBitCount)
        let sub = power == highestPower && micros >> UInt64(power) > 1
            ? subBuckets - 1 : Int((micros >> UInt64(power - 3)) & 7)
        return subBuckets + (power - 3) * subBuckets + sub
    }

    /// The middle of bucket `index`, in seconds.
    static func midpointSeconds(of index: Int) -> Double {
        if index < subBuckets { return (Double(index) + 0.5) / 1e6 }
        let power = (index - subBuckets) / subBuckets + 3
        let sub = (index - subBuckets) % subBuckets
        let width = Double(1 << (power - 3))
        let lower = Double(1 << power) + Double(sub) * width
        return (lower + width / 2) / 1e6
    }
}
