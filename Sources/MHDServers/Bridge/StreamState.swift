/// Where a streamed response body is, as seen by the task that writes it and the engine
/// thread that sends it. A value with mutating transitions that say what to do;
/// ``ResponseStream`` keeps it under a lock and carries the actions out there, so the
/// connection is suspended at most once per wait and resumed exactly once per suspension, and
/// the writer never waits without someone to wake it.
///
/// ```
/// open ──writer finishes──▶ finishing ──buffer sent──▶ (end of stream)
///   │                          
///   ├─writer throws──▶ failed ──buffer sent──▶ (end with error: the connection closes)
///   ├─server abandons──▶ failed ──▶ (end with error at once)
///   └─request completes (sent, or client gone)──▶ closed   (a writer still writing gets an error)
/// ```
///
/// Back-pressure: the writer appends a chunk and then waits while more than `highWater` bytes
/// are buffered, until the engine has sent the buffer down to `lowWater`. The engine thread
/// never waits: with nothing buffered it suspends the connection, and the next write (or the
/// end) resumes it. A stream therefore holds at most `highWater` bytes plus one chunk.
struct StreamState: Sendable {
    enum Phase: Sendable, Equatable {
        /// The writer may write.
        case open
        /// The writer is done: send what is buffered, then end the body.
        case finishing
        /// The body cannot be completed (the writer failed, or the server gave up on it): the
        /// connection is closed so the client sees a truncated body, never a complete one.
        case failed
        /// The request is over (sent, or the client is gone): nothing more is sent.
        case closed
    }

    private(set) var phase = Phase.open
    /// Chunks not yet handed to the engine; the first one from `headOffset`.
    private var chunks: [[UInt8]] = []
    private var headOffset = 0
    private(set) var buffered = 0
    /// The engine suspended the connection waiting for data.
    private(set) var engineSuspended = false
    /// The writer waits for room (its continuation is held by ``ResponseStream``).
    private(set) var writerWaiting = false
    /// Total bytes written, checked against a declared length.
    private(set) var written: UInt64 = 0
    let highWater: Int
    let lowWater: Int
    let declaredLength: UInt64?

    init(highWater: Int, declaredLength: UInt64? = nil) {
        self.highWater = highWater
        self.lowWater = highWater / 2
        self.declaredLength = declaredLength
    }

    // MARK: Writer side

    enum WriteAction: Equatable {
        /// Go on writing.
        case proceed
        /// Resume the suspended connection, then go on.
        case resumeEngine
        /// Resume the suspended connection, then wait for room.
        case resumeEngineAndWait
        /// Wait for room.
        case wait
        /// The stream is over (client gone, server stopping): stop writing.
        case closed
        /// The bytes would exceed the declared length.
        case tooLong
    }

    /// The writer appends `chunk`.
    mutating func write(_ chunk: [UInt8]) -> WriteAction {
        guard phase == .open else { return .closed }
        if let declaredLength, written + UInt64(chunk.count) > declaredLength { return .tooLong }
        guard !chunk.isEmpty else { return .proceed }
        chunks.append(chunk)
        buffered += chunk.count
        written += UInt64(chunk.count)
        let wait = buffered > highWater
        if wait { writerWaiting = true }
        if engineSuspended {
            engineSuspended = false
            return wait ? .resumeEngineAndWait : .resumeEngine
        }
        return wait ? .wait : .proceed
    }

    /// Whether the writer may stop waiting now (it rechecks after registering its wait, so a
    /// drain between the write and the wait is not missed).
    var writerMayProceed: Bool { phase != .open || buffered <= lowWater }

    /// What ending the body means for the engine.
    enum EndAction: Equatable {
        case none
        /// Resume the suspended connection so it sends the end (or closes).
        case resumeEngine
    }

    /// The writer returned: send what is buffered, then end the body. A body shorter than its
    /// declared length cannot end well: it fails.
    mutating func finish() -> EndAction {
        guard phase == .open else { return .none }
        if let declaredLength, written != declaredLength { return fail() }
        phase = .finishing
        return takeSuspension()
    }

    /// The writer threw (what it wrote is still sent, then the connection closes), or the
    /// server gave up on the stream (drain deadline, client gone: nothing more is sent).
    mutating func fail(sendBuffered: Bool = false) -> EndAction {
        guard phase == .open || phase == .finishing else { return .none }
        phase = .failed
        if !sendBuffered { dropBuffer() }
        return takeSuspension()
    }

    // MARK: Engine side

    enum ReadResult: Equatable {
        /// `count` bytes were copied; wake the writer if `wakeWriter`.
        case bytes(count: Int, wakeWriter: Bool)
        /// Nothing buffered yet: the engine thread suspends the connection (under the lock that
        /// decided it) and returns 0.
        case suspend
        /// The body is complete.
        case endOfStream
        /// The body cannot be completed: close the connection.
        case endWithError
    }

    /// Whether a read now would suspend (nothing buffered, the writer still writing).
    var wouldSuspend: Bool { phase == .open && buffered == 0 }

    /// The engine asks for up to `max` bytes into `destination`.
    mutating func read(into destination: UnsafeMutableRawBufferPointer) -> ReadResult {
        switch phase {
        case .closed:
            return .endWithError
        case .open, .finishing, .failed:
            if buffered == 0 {
                if phase == .finishing { return .endOfStream }
                if phase == .failed { return .endWithError }
                engineSuspended = true
                return .suspend
            }
            var copied = 0
            while copied < destination.count, !chunks.isEmpty {
                let head = chunks[0]
                let take = min(destination.count - copied, head.count - headOffset)
                head.withUnsafeBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: destination[copied..<(copied + take)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[headOffset..<(headOffset + take)]))
                }
                copied += take
                headOffset += take
                if headOffset == head.count {
                    chunks.removeFirst()
                    headOffset = 0
                }
            }
            buffered -= copied
            let wake = writerWaiting && buffered <= lowWater
            if wake { writerWaiting = false }
            return .bytes(count: copied, wakeWriter: wake)
        }
    }

    /// The request is over (the engine's completion notice). Returns whether a writer is to be
    /// told (it waits, or will write again) — the caller cancels its task.
    mutating func close() -> Bool {
        let wasWriting = phase == .open
        phase = .closed
        dropBuffer()
        engineSuspended = false  // a completed request is no longer suspended
        writerWaiting = false
        return wasWriting
    }

    /// The writer gave up waiting (its task was cancelled).
    mutating func writerStoppedWaiting() { writerWaiting = false }

    private mutating func dropBuffer() {
        chunks = []
        headOffset = 0
        buffered = 0
    }

    private mutating func takeSuspension() -> EndAction {
        guard engineSuspended else { return .none }
        engineSuspended = false
        return .resumeEngine
    }
}
