import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Per-request state, owned by the engine through its `con_cls` slot from the first callback
/// until `MHD_OPTION_NOTIFY_COMPLETED`, and by a handler task while one runs.
///
/// Fields under "engine thread" are touched only by the engine thread that is processing the
/// connection (the engine serialises callbacks per connection). ``exchange`` is what a handler
/// task and the shutdown path may touch from other threads.
final class EngineRequest: @unchecked Sendable {
    // engine thread
    let connection: OpaquePointer
    let startedAt: UInt64
    /// The header fields, read on the headers-only callback.
    var headers = RawHeaderFields.empty
    /// The request method, read on the headers-only callback.
    var method: HTTPMethod = .get
    var body: [UInt8] = []
    /// The raw query string (after `?`), taken from the request line before the engine sees it.
    var query: [UInt8] = []
    var bodyOverflow = false
    var invalidTarget = false
    /// What the request guard checks about the header fields.
    var headerFacts = HeaderFacts()
    /// The request line said HTTP/1.0.
    var http10 = false
    /// The raw request target as the URI callback saw it (a pointer into the engine's buffer,
    /// compared by address only).
    var rawTarget: UnsafePointer<CChar>?
    var rawTargetLength = 0
    var phase: Phase = .receivingHeaders
    var status = 0
    /// The matched route (index into the router's labels), or -1.
    var route = -1
    /// Set only when the access log is on: what its line needs at the end.
    var accessLog: (method: String, path: String, requestID: String)?
    var fd: Int32 = -1
    /// The streamed body being sent, if the response is one (engine thread sets it once; the
    /// shutdown path and the supervisor reach it through ``SuspendedConnections``).
    var stream: ResponseStream?
    /// The request body as it arrives, on a route that streams it.
    var upload: UploadStream?

    /// Where the request is, as the engine thread sees it. Every request that began ends
    /// exactly once, in ``Phase/ended``.
    enum Phase: Equatable {
        /// The request line arrived; the headers are being read.
        case receivingHeaders
        /// Reading the body.
        case receivingBody
        /// Suspended while its handler task runs (see ``AsyncExchange``).
        case suspended
        /// A response was queued (or the connection is being closed without one).
        case answered
        /// The engine reported the request complete: recorded, released.
        case ended
    }

    /// The async handler's exchange, shared with its task and the shutdown path. Created by the
    /// engine thread just before an async handler starts (inline handlers never need it), and
    /// published to other threads through the task and ``SuspendedConnections``.
    var exchange: Locked<AsyncExchange>!
    /// The request on its way from the engine thread to its handler's task (see
    /// ``Engine/startHandler(_:_:_:)``): moved in and taken out, never copied.
    var handedOver: Request?

    /// Counts live contexts: every one the engine creates must be released exactly once.
    private let stats: ServerStats

    init(connection: OpaquePointer, stats: ServerStats) {
        self.connection = connection
        self.stats = stats
        self.startedAt = Monotonic.nanoseconds()
        stats.liveContexts.add(1, ordering: .relaxed)
    }

    deinit { stats.liveContexts.subtract(1, ordering: .relaxed) }

    /// The request ended (the engine's completion notice). Returns the status to record, 0 for
    /// an aborted request, or `nil` if it had ended already. A request the engine answered by
    /// itself (a 431 for headers over the memory limit, a 400 for a malformed length, ...) is
    /// recorded with the engine's status, `engineStatus()`: the engine closes such connections
    /// after its answer, so it reports them ended with an error even when the answer went out.
    func end(completedNormally: Bool, engineStatus: () -> Int) -> Int? {
        guard phase != .ended else { return nil }
        defer { phase = .ended }
        if phase == .answered { return completedNormally ? status : 0 }
        let engine = engineStatus()
        return engine >= 100 ? engine : 0
    }

    /// The handler finished with `response`: resumes the connection if it is suspended. The
    /// engine call happens under the lock, so once this returns nobody is between deciding to
    /// resume and resuming. Returns whether this resumed it.
    func finish(with response: Response) -> Bool {
        exchange.withLock { exchange in
            guard exchange.handlerFinished(with: response) == .resume else { return false }
            MHD_resume_connection(connection)
            return true
        }
    }

    /// Resumes a suspended connection without the handler's response (the server answers 503,
    /// or closes if the client is gone).
    func abandon() {
        if let stream { return stream.abandon() }
        upload?.stopReading()
        exchange.withLock { exchange in
            guard exchange.abandon() == .resume else { return }
            MHD_resume_connection(connection)
        }
    }

    /// Cancels the handler task, if any (client gone, or shutdown).
    func cancelTask(clientGone: Bool = false) {
        if let stream { return stream.abandon() }
        upload?.stopReading()
        let task = exchange.withLock { $0.cancel(clientGone: clientGone) }
        task?.cancel()
    }
}

/// A cheap monotonic clock in nanoseconds.
enum Monotonic {
    static func nanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}
