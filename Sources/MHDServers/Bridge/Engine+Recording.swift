import CMicroHTTPD

/// The end of a request: whatever ended it (a response sent, the client gone, a timeout, the
/// daemon stopping), the engine's completion notice releases the context here and records the
/// request, exactly once.
extension Engine {
    func completed(_ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_RequestTerminationCode) {
        guard let slot, let raw = slot.pointee else { return }
        slot.pointee = nil
        let context = Unmanaged<EngineRequest>.fromOpaque(raw).takeRetainedValue()
        // A stream outlives its request only in its writer's task, which this stops; the
        // request keeps `stream` and `upload` (a shutdown may be looking at them right now).
        if let stream = context.stream {
            stream.close()
            streams.remove(stream)
            suspended.remove(context)
        }
        context.upload?.stopReading()
        Engine.withConnectionState(context.connection) { $0.requestComplete() }
        guard
            let status = context.end(
                completedNormally: code == .REQUEST_TERMINATED_COMPLETED_OK,
                engineStatus: { Int(mhds_connection_http_status(context.connection)) })
        else { return }
        let elapsed = Monotonic.nanoseconds() &- context.startedAt
        stats.ended(status: status, nanoseconds: elapsed)
        metrics.ended(route: context.route, status: status, nanoseconds: elapsed)
        drainSignal.requestEnded()
        if let line = context.accessLog, let level = config.accessLogLevel {
            logger.log(
                level: level, "\(line.method) \(line.path) \(status)",
                metadata: [
                    "server": "\(config.name)", "method": "\(line.method)", "path": "\(line.path)",
                    "status": "\(status)",
                    "durationMs": "\(Double(elapsed / 1000) / 1000)", "requestID": "\(line.requestID)",
                ])
        }
    }
}
