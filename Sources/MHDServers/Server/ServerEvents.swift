import Logging

/// What an ``HTTPServer`` reports while it binds, starts and stops. Standalone servers log;
/// servers run by a ``ServerManager`` forward to their ``ServerLifecycle`` (the manager starts
/// and stops them itself, through their slots, so only the bind attempts and the stop reach it
/// this way).
struct ServerEvents: Sendable {
    var bindAttempt: @Sendable (ListeningSocket.BindAttempt) -> Void
    var started: @Sendable (BoundAddress) async -> Void
    var stopped: @Sendable () async -> Void

    static func logging(_ name: String, _ logger: Logger) -> ServerEvents {
        ServerEvents(
            bindAttempt: { attempt in
                if case .unavailable(let port, let reason) = attempt {
                    logger.notice("\(name): port \(port) unavailable (\(reason))", metadata: ["server": "\(name)"])
                }
            },
            started: { address in
                logger.info("\(name) listening on \(address.url)", metadata: ["server": "\(name)", "port": "\(address.port)"])
            },
            stopped: {
                logger.info("\(name) stopped", metadata: ["server": "\(name)"])
            })
    }
}
