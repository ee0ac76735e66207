import CMicroHTTPD

/// A streamed request body between the engine thread that receives it and the handler that
/// reads it (``RequestBodyStream``). The ``UploadState`` under the lock decides; this class
/// carries the actions out under the same lock (suspend and resume the connection) or right
/// after it (wake the reader).
final class UploadStream: @unchecked Sendable {
    private struct Guarded {
        var state: UploadState
        var reader: CheckedContinuation<Void, Never>?
        /// Bytes handed to the reader since it last yielded.
        var readSinceYield = 0
    }
    private let guarded: Locked<Guarded>
    let connection: OpaquePointer
    /// The request, for the suspension registry; the request holds the stream, not the other
    /// way round.
    private weak var context: EngineRequest?
    private let contextID: ObjectIdentifier
    private let engine: Engine
    static let yieldEvery = 1 << 20

    init(context: EngineRequest, engine: Engine, limit: Int, highWater: Int) {
        self.context = context
        self.contextID = ObjectIdentifier(context)
        self.engine = engine
        self.connection = context.connection
        guarded = Locked(Guarded(state: UploadState(limit: limit, highWater: highWater)))
    }

    // MARK: Engine thread

    /// The engine hands over the next piece of the body.
    func receive(_ bytes: UnsafeRawBufferPointer) {
        let chunk = [UInt8](bytes)
        var reader: CheckedContinuation<Void, Never>?
        let behind = guarded.withLock { guarded -> Bool in
            if guarded.state.receive(chunk) != .proceed { reader = guarded.reader; guarded.reader = nil }
            return guarded.state.phase == .receiving && guarded.state.buffered > guarded.state.highWater
        }
        // The handler prefers the engine-thread executor: it reads the chunk right here.
        if let reader { EngineThreadExecutor.shared.drain { reader.resume() } }
        guard behind, let context else { return }
        // Suspend through the registry, so a shutdown either sees this connection or prevents
        // the suspension; the state decides again under both locks.
        _ = engine.suspended.register(context) { stopping in
            guard !stopping else { return false }
            return guarded.withLock { guarded in
                guard guarded.state.shouldSuspend() else { return false }
                MHD_suspend_connection(connection)
                return true
            }
        }
    }

    /// The engine received the whole body.
    func complete() {
        let reader = guarded.withLock { guarded -> CheckedContinuation<Void, Never>? in
            guard guarded.state.complete() != .proceed else { return nil }
            defer { guarded.reader = nil }
            return guarded.reader
        }
        if let reader { EngineThreadExecutor.shared.drain { reader.resume() } }
    }

    // MARK: Reader

    /// The next chunk, `nil` at the end of the body.
    func next() async throws -> [UInt8]? {
        while true {
            try Task.checkCancellation()
            var yield = false
            var result = UploadState.ReadResult.end
            // A read that resumes the connection leaves the registry in the same step.
            engine.suspended.resume(id: contextID) {
                guarded.withLock { guarded -> Bool in
                    result = guarded.state.next()
                    guard case .chunk(let chunk, let resume) = result else { return false }
                    if resume { MHD_resume_connection(connection) }
                    guarded.readSinceYield += chunk.count
                    if guarded.readSinceYield >= Self.yieldEvery {
                        guarded.readSinceYield = 0
                        yield = true
                    }
                    return resume
                }
            }
            switch result {
            case .chunk(let chunk, _):
                // A reader that never has to wait would keep its thread of the shared pool for
                // the whole body: let other tasks run every so often.
                if yield { await Task.yield() }
                return chunk
            case .end: return nil
            case .tooLarge: throw HTTPError(.contentTooLarge, message: "request body is too large")
            case .cancelled: throw CancellationError()
            case .wait: await waitForData()
            }
        }
    }

    private func waitForData() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = guarded.withLock { guarded -> Bool in
                    // Woken between `next()` and here: go on at once.
                    guard guarded.state.readerWaiting else { return true }
                    guarded.reader = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let reader = guarded.withLock { guarded -> CheckedContinuation<Void, Never>? in
                defer { guarded.reader = nil }
                return guarded.reader
            }
            reader?.resume()
        }
    }

    /// The reader is done (its handler returned or threw, or the server gave up): the rest of
    /// the body is dropped as it arrives, and a connection suspended for the reader resumes.
    func stopReading() {
        let (resumed, reader) = guarded.withLock { guarded -> (Bool, CheckedContinuation<Void, Never>?) in
            let resume = guarded.state.stopReading()
            if resume { MHD_resume_connection(connection) }
            defer { guarded.reader = nil }
            return (resume, guarded.reader)
        }
        reader?.resume()
        if resumed { engine.suspended.remove(id: contextID) }
    }
}
