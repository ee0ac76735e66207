/// How many file descriptors a set of servers may hold at once: each connection, plus the
/// listening socket and the engine's own descriptors (an epoll set and a wake-up descriptor per
/// thread), plus a margin for the rest of the process.
///
/// ```swift
/// let needed = DescriptorBudget.needed(for: [publicConfig, adminConfig])   // 2 × (1024 + 8) + 64
/// ```
enum DescriptorBudget {
    /// Descriptors the rest of the process may use (logs, files, clients of other services).
    static let margin = 64

    static func needed(for configs: [ServerConfig]) -> Int {
        configs.reduce(margin) { total, config in
            total + max(1, config.limits.maxConnections) + 2 + 2 * config.effectiveThreadCount
        }
    }
}
