/// Where a streamed request body is, as seen by the engine thread that receives it and the
/// handler that reads it. ``UploadStream`` keeps it under a lock and carries the actions out
/// there, so the connection is suspended at most once per wait and resumed exactly once per
/// suspension, and the reader never waits without someone to wake it.
///
/// ```
/// receiving ──last byte──▶ complete ──read out──▶ (end of body)
///     │
///     ├─over the limit──▶ failed(413)           (the rest is read and dropped)
///     ├─reader done early──▶ discarding         (the rest is read and dropped)
///     └─server gives up──▶ failed(cancelled)
/// ```
///
/// Back-pressure: the engine thread appends each piece the engine hands it and, while more
/// than `highWater` bytes wait for the reader, suspends the connection; the reader resumes it
/// once it has taken the buffer down to `lowWater`. So the body held in memory stays within
/// `highWater` plus one engine read.
struct UploadState: Sendable {
    enum Phase: Sendable, Equatable {
        case receiving
        /// The whole body arrived.
        case complete
        /// Past the size limit: the reader gets a 413 error.
        case tooLarge
        /// The reader stopped reading (it returned, or it was cancelled): the rest is dropped.
        case discarding
    }

    private(set) var phase = Phase.receiving
    private var chunks: [[UInt8]] = []
    private var head = 0
    private(set) var buffered = 0
    private(set) var received = 0
    /// The engine suspended the connection until the reader catches up.
    private(set) var engineSuspended = false
    /// The reader waits for the next chunk.
    private(set) var readerWaiting = false
    let limit: Int
    let highWater: Int
    var lowWater: Int { highWater / 2 }

    init(limit: Int, highWater: Int) {
        self.limit = limit
        self.highWater = highWater
    }

    // MARK: Engine side

    enum ReceiveAction: Equatable {
        /// Go on reading.
        case proceed
        /// Wake the waiting reader, then go on.
        case wakeReader
        /// The reader is behind: suspend the connection (under the lock that decided it).
        case suspend
        /// The limit was just crossed: wake the reader with the error.
        case tooLarge
    }

    /// The engine received `count` more body bytes (appended by the caller with `append`).
    mutating func receive(_ chunk: [UInt8]) -> ReceiveAction {
        switch phase {
        case .complete, .tooLarge, .discarding:
            return .proceed  // dropped
        case .receiving:
            received += chunk.count
            if received > limit {
                phase = .tooLarge
                dropBuffer()
                return takeReader(.tooLarge)
            }
            chunks.append(chunk)
            buffered += chunk.count
            return takeReader(.wakeReader)
        }
    }

    /// Whether the engine should suspend now (after `receive`): the reader is behind.
    mutating func shouldSuspend() -> Bool {
        guard phase == .receiving, buffered > highWater, !engineSuspended else { return false }
        engineSuspended = true
        return true
    }

    /// The engine received the last byte.
    mutating func complete() -> ReceiveAction {
        guard phase == .receiving else { return .proceed }
        phase = .complete
        return takeReader(.wakeReader)
    }

    // MARK: Reader side

    enum ReadResult: Equatable {
        /// A chunk; resume the connection first if `resumeEngine`.
        case chunk([UInt8], resumeEngine: Bool)
        /// Nothing yet: wait (the caller registered its continuation under the lock).
        case wait
        /// The body ended.
        case end
        /// The body grew past the limit.
        case tooLarge
        /// The stream was given up (server stopping, client gone).
        case cancelled
    }

    /// The reader asks for the next chunk.
    mutating func next() -> ReadResult {
        if !chunks.isEmpty {
            let chunk = chunks[head]
            head += 1
            if head == chunks.count {
                chunks.removeAll(keepingCapacity: true)
                head = 0
            }
            buffered -= chunk.count
            var resume = false
            if engineSuspended && buffered <= lowWater {
                engineSuspended = false
                resume = true
            }
            return .chunk(chunk, resumeEngine: resume)
        }
        switch phase {
        case .receiving:
            readerWaiting = true
            // Nothing buffered: the engine cannot be suspended for this reader any more.
            return .wait
        case .complete: return .end
        case .tooLarge: return .tooLarge
        case .discarding: return .cancelled
        }
    }

    /// The reader stopped (returned or cancelled): drop what is buffered and what follows.
    /// Returns whether the connection must be resumed.
    mutating func stopReading() -> Bool {
        if phase == .receiving { phase = .discarding }
        dropBuffer()
        readerWaiting = false
        defer { engineSuspended = false }
        return engineSuspended
    }

    private mutating func takeReader(_ action: ReceiveAction) -> ReceiveAction {
        guard readerWaiting else { return .proceed }
        readerWaiting = false
        return action
    }

    private mutating func dropBuffer() {
        chunks = []
        head = 0
        buffered = 0
    }
}
