import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Per-request state, owned by the engine through its `con_cls` slot from the first callback
/// until `MHD_OPTION_NOTIFY_COMPLETED`, and by a handler task while one runs.
///
/// Fields under "engine thread" are touched only by the engine thread that is processing the
/// connection (the engine serialises callbacks per connection). ``shared`` is what a handler
/// task and the shutdown path may touch from other threads.
final class RequestContext: @unchecked Sendable {
    // engine thread
    let connection: OpaquePointer
    let startedAt: UInt64
    var headers = HTTPHeaders()
    var body: [UInt8] = []
    /// The raw query string (after `?`), taken from the request line before the engine sees it.
    var query: [UInt8] = []
    var bodyOverflow = false
    var invalidTarget = false
    /// The raw request target as the URI callback saw it (a pointer into the engine's buffer,
    /// compared by address only).
    var rawTarget: UnsafePointer<CChar>?
    var rawTargetLength = 0
    var phase: Phase = .created
    var status = 0
    /// The matched route (index into the router's labels), or -1.
    var route = -1
    /// Set only when the access log is on: what its line needs at the end.
    var accessLog: (method: String, path: String, requestID: String)?
    var fd: Int32 = -1

    enum Phase {
        /// The request line arrived; headers are being read.
        case created
        /// Reading the body.
        case receiving
        /// Suspended while a handler task runs.
        case suspended
        /// A response was queued.
        case answered
    }

    /// Where an async handler is, as seen by its task, the engine thread and the shutdown path.
    enum Stage {
        /// Running; the connection is not suspended (yet).
        case running
        /// Finished before the engine thread suspended the connection: no suspension needed.
        case completed(Response)
        /// The connection is suspended until someone resumes it.
        case suspended
        /// Resumed, exactly once; `Shared.response` holds the answer (`nil`: the server's 503).
        case resumed
        /// The server gave up on it before it suspended (shutdown); a late finish is ignored.
        case abandoned
    }

    struct Shared {
        var stage = Stage.running
        /// The handler's response; `nil` when the server resumed the connection itself.
        var response: Response?
        var task: Task<Void, Never>?
        /// The server cancelled the task (client gone or shutdown).
        var cancelled = false
        /// The client hung up while the handler ran: the request ends aborted, unanswered.
        var clientGone = false
    }

    /// Created by the engine thread just before an async handler starts (sync requests never
    /// need it), and published to other threads through the task and the engine's registry.
    var shared: Locked<Shared>!

    /// Counts live contexts: every one the engine creates must be released exactly once.
    private let stats: ServerStats

    init(connection: OpaquePointer, stats: ServerStats) {
        self.connection = connection
        self.stats = stats
        self.startedAt = Monotonic.nanoseconds()
        stats.liveContexts.add(1, ordering: .relaxed)
    }

    deinit { stats.liveContexts.subtract(1, ordering: .relaxed) }

    /// The handler finished with `response`. Returns whether this resumed the connection.
    func finish(with response: Response) -> Bool {
        shared.withLock { state in
            switch state.stage {
            case .running:
                state.stage = .completed(response)
                return false
            case .suspended:
                state.stage = .resumed
                state.response = response
                MHD_resume_connection(connection)
                return true
            case .completed, .resumed, .abandoned:
                return false
            }
        }
    }

    /// Resumes a suspended connection without a response (the server answers 503). The engine
    /// call happens under the lock, so once this returns nobody is between deciding to resume
    /// and resuming.
    func abandon() {
        shared.withLock { state in
            guard case .suspended = state.stage else { return }
            state.stage = .resumed
            state.response = nil
            MHD_resume_connection(connection)
        }
    }

    /// Cancels the handler task, if any (client gone or shutdown).
    func cancelTask(clientGone: Bool = false) {
        let task = shared.withLock { state -> Task<Void, Never>? in
            state.cancelled = true
            if clientGone { state.clientGone = true }
            return state.task
        }
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
