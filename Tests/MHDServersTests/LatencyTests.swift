@testable import MHDServers
import Testing

/// Quantiles come from a log-linear distribution: close to the real value, never above the
/// maximum (the coarse metric buckets alone gave p50 0.5 ms with a maximum of 0.07 ms).
@Suite("Latency quantiles", .timeLimit(.minutes(2)))
struct LatencyTests {
    @Test func quantilesAreCloseAndNeverAboveTheMaximum() {
        let stats = ServerStats()
        for _ in 0..<1000 { stats.ended(status: 200, nanoseconds: 70_000) }
        let latency = stats.snapshot().latency
        #expect(latency.maxSeconds == 0.000_07)
        #expect(latency.quantile(0.5) <= latency.maxSeconds)
        #expect(abs(latency.quantile(0.5) - 0.000_07) / 0.000_07 < 0.07)
    }

    @Test func spreadOutLatencies() {
        let stats = ServerStats()
        // 10 µs ... 10 ms, one observation each step of 10 µs.
        for step in 1...1000 { stats.ended(status: 200, nanoseconds: UInt64(step) * 10_000) }
        let latency = stats.snapshot().latency
        for (fraction, expected) in [(0.5, 0.005), (0.9, 0.009), (0.99, 0.0099)] {
            let estimate = latency.quantile(fraction)
            #expect(abs(estimate - expected) / expected < 0.07, "p\(fraction * 100): \(estimate) vs \(expected)")
            #expect(estimate <= latency.maxSeconds)
        }
    }

    @Test func scaleCoversTheRangeWithoutGaps() {
        var previous = -1
        for micros in [0, 1, 7, 8, 9, 15, 16, 100, 1_000, 65_535, 1 << 20, (1 << 27) - 1, 1 << 27, 1 << 40] {
            let index = LatencyScale.index(nanoseconds: UInt64(micros) * 1000)
            #expect(index >= previous && index < LatencyScale.bucketCount, "\(micros) µs → \(index)")
            previous = index
            if micros >= 8 && micros < 1 << 26 {
                // The bucket's middle is within 1/16 of its bounds of the value.
                let middle = LatencyScale.midpointSeconds(of: index) * 1e6
                #expect(abs(middle - Double(micros)) / Double(micros) <= 0.0625 + 1e-9, "\(micros) µs vs middle \(middle)")
            }
        }
    }
}
