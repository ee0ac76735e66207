import CMicroHTTPD

/// A fixed number of counters, incremented and read atomically (relaxed) from any thread, in
/// one allocation.
final class AtomicCounts: @unchecked Sendable {
    let count: Int
    private let base: UnsafeMutablePointer<Int>

    init(count: Int) {
        self.count = count
        base = .allocate(capacity: count)
        base.initialize(repeating: 0, count: count)
    }

    deinit { base.deallocate() }

    @inline(__always)
    func increment(_ index: Int) { mhds_counter_add(base + index, 1) }

    /// Every counter's value, read one by one.
    var values: [Int] { (0..<count).map { mhds_counter_load(base + $0) } }
}
