/// The streamed response bodies being sent: what a drain tells to end (streams that end at the
/// drain, such as events; see ``ResponseStream/drainStarted()``).
final class OpenStreams: Sendable {
    private let streams = Locked<[ObjectIdentifier: ResponseStream]>([:])

    func add(_ stream: ResponseStream) {
        streams.withLock { $0[ObjectIdentifier(stream)] = stream }
    }

    func remove(_ stream: ResponseStream) {
        _ = streams.withLock { $0.removeValue(forKey: ObjectIdentifier(stream)) }
    }

    var count: Int { streams.withLock { $0.count } }

    /// The server starts draining.
    func drainStarted() {
        for stream in streams.withLock({ Array($0.values) }) { stream.drainStarted() }
    }
}
