/// Where an async handler's exchange is, as seen by three parties: the handler's task, the
/// engine thread that dispatched it, and the shutdown path. A value with mutating transitions
/// that say what to do; ``EngineRequest`` keeps it under a lock and carries the actions out
/// there, so the connection is suspended at most once and resumed exactly once, whoever comes
/// first.
///
/// ```
/// running ──finished──▶ finishedInline ──taken──▶ answeredInline   (answered on the engine
///    │                                                              thread, no suspension)
///    │
///    └─suspend──▶ suspended ──finished / abandon──▶ resumed(outcome)
///    └─suspend while stopping──▶ refused            (answered 503 at once)
/// ```
struct AsyncExchange: Sendable {
    enum State: Sendable {
        /// The handler runs; the connection is not suspended.
        case running
        /// The handler finished before the engine thread suspended the connection.
        case finishedInline(Response)
        /// The engine thread took that response to queue it.
        case answeredInline
        /// The connection is suspended until someone resumes it.
        case suspended
        /// Resumed, exactly once, with what the engine thread is to do next.
        case resumed(Outcome)
        /// The server was stopping when the engine thread came to suspend: answered at once.
        case refused
    }

    /// What a resumed connection does.
    enum Outcome: Sendable {
        /// Send the handler's response.
        case respond(Response)
        /// The server gave up on the handler (drain deadline): send a 503.
        case abandoned
        /// The client hung up: nobody to answer; close the connection (the request is aborted).
        case clientGone
    }

    private(set) var state = State.running
    /// The handler's task, once the engine thread has seen it start.
    var task: Task<Void, Never>?
    /// The server cancelled the task (client gone, or shutdown): its error is not a failure.
    private(set) var cancelledByServer = false
    /// The client hung up while the handler ran.
    private(set) var clientGone = false

    /// What the engine thread does when the handler did not finish inline.
    enum SuspendDecision: Equatable {
        /// Suspend the connection now (under the lock that decided it).
        case suspend
        /// The handler finished meanwhile on another thread: answer at once.
        case answer
        /// The server is stopping: cancel the handler and answer 503 at once.
        case refuse
    }

    /// The engine thread found the handler still running after it started.
    mutating func engineWillSuspend(serverStopping: Bool) -> SuspendDecision {
        switch state {
        case .running:
            if serverStopping {
                state = .refused
                return .refuse
            }
            state = .suspended
            return .suspend
        case .finishedInline:
            return .answer
        case .answeredInline, .suspended, .resumed, .refused:
            // Not reachable: the engine thread decides once.
            return .refuse
        }
    }

    /// Whether the connection must be resumed now (exactly once, under the caller's lock).
    enum ResumeAction: Equatable {
        case none
        case resume
    }

    /// The handler finished with `response`.
    mutating func handlerFinished(with response: consuming Response) -> ResumeAction {
        switch state {
        case .running:
            state = .finishedInline(response)
            return .none
        case .suspended:
            state = .resumed(clientGone ? .clientGone : .respond(response))
            return .resume
        case .finishedInline, .answeredInline, .resumed, .refused:
            return .none
        }
    }

    /// The server gives up on the handler (its drain deadline passed, or it stops).
    mutating func abandon() -> ResumeAction {
        guard case .suspended = state else { return .none }
        state = .resumed(clientGone ? .clientGone : .abandoned)
        return .resume
    }

    /// The server cancels the handler's task; returns the task to cancel (outside the lock).
    mutating func cancel(clientGone: Bool) -> Task<Void, Never>? {
        cancelledByServer = true
        if clientGone { self.clientGone = true }
        return task
    }

    /// Whether the handler finished inline (its response not taken yet).
    var finishedInline: Bool {
        if case .finishedInline = state { return true }
        return false
    }

    /// Takes the response of a handler that finished inline, to queue it: moved out, not
    /// copied (a response copy retains its body and header storage).
    mutating func takeInlineResponse() -> Response? {
        guard case .finishedInline = state else { return nil }
        var taken = State.answeredInline
        swap(&state, &taken)
        guard case .finishedInline(let response) = consume taken else { return nil }
        return response
    }

    /// What to do now that the engine calls back after the resume.
    var outcome: Outcome? {
        if case .resumed(let outcome) = state { return outcome }
        return nil
    }
}
