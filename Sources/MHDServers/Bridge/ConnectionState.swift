import Synchronization

/// One open connection, tracked from the engine's connection-started notification to its
/// connection-closed notification.
final class ConnectionState: Sendable {
    let fd: Int32
    /// When the connection began waiting for a request's headers (monotonic ns); 0 while a
    /// request is being processed.
    let waitingSince = Atomic<UInt64>(0)
    /// Between the headers and the end of the request body.
    let receivingBody = Atomic<Bool>(false)
    /// Bumped whenever the engine hands over request bytes: a connection whose peer hung up and
    /// that makes no progress between two checks has been forgotten by the engine.
    let progress = Atomic<UInt32>(0)

    init(fd: Int32) {
        self.fd = fd
        waitingSince.store(Monotonic.nanoseconds(), ordering: .relaxed)
    }

    func headersComplete() {
        waitingSince.store(0, ordering: .relaxed)
        receivingBody.store(true, ordering: .relaxed)
    }
    func bodyReceived() { progress.add(1, ordering: .relaxed) }
    func dispatched() { receivingBody.store(false, ordering: .relaxed) }
    func requestComplete() { waitingSince.store(Monotonic.nanoseconds(), ordering: .relaxed) }

    /// Whether the engine is waiting for bytes from the client on this connection.
    var awaitingClient: Bool {
        waitingSince.load(ordering: .relaxed) != 0 || receivingBody.load(ordering: .relaxed)
    }
}
