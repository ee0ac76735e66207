import CMicroHTTPD
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A streamed response body between the task that writes it and the engine thread that sends
/// it (the engine's content-reader callback). The ``StreamState`` under the lock decides; this
/// class carries the actions out under the same lock (suspend and resume the connection) or
/// right after it (wake the writer, cancel the task).
///
/// Lifetime: created when the response is queued, retained by the engine's response (its
/// free callback releases it) and by the writer's task; ``close()`` at the request's end.
final class ResponseStream: @unchecked Sendable {
    private struct Guarded {
        var state: StreamState
        /// Writers waiting for room (several tasks may write one stream: events and their
        /// heartbeat), by a number of their own.
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiter: UInt64 = 0
        /// Bytes written since a writer last yielded.
        var writtenSinceYield = 0

        /// Takes every waiter out, to resume outside the lock.
        mutating func takeWaiters() -> [CheckedContinuation<Void, any Error>] {
            defer { waiters = [:] }
            return Array(waiters.values)
        }
        var task: Task<Void, Never>?
        /// The server ended the writer's task for the drain: a clean end, not a failure.
        var endedForDrain = false
    }
    private let guarded: Locked<Guarded>
    let connection: OpaquePointer
    /// The request, for the suspension registry (shutdown and hang-ups); the request holds
    /// the stream, not the other way round.
    private weak var context: EngineRequest?
    private let contextID: ObjectIdentifier
    /// The connection's socket.
    private let fd: Int32
    private let engine: Engine
    static let yieldEvery = 1 << 20
    /// Whether the server ends this stream when it starts draining (events) rather than at the
    /// drain deadline (downloads).
    let endsAtDrain: Bool

    init(context: EngineRequest, engine: Engine, body: StreamBody) {
        self.context = context
        self.contextID = ObjectIdentifier(context)
        self.fd = context.fd
        self.engine = engine
        self.connection = context.connection
        self.endsAtDrain = body.endsAtDrain
        guarded = Locked(Guarded(state: StreamState(highWater: body.highWater, declaredLength: body.length.map(UInt64.init))))
    }

    /// Starts the writer's task. It begins at once on this thread and runs until its first
    /// suspension (a write that waits, or the producer's own awaits).
    func start(_ produce: @escaping @Sendable (ResponseBodyWriter) async throws -> Void, logger: Logger) {
        let writer = ResponseBodyWriter(target: .engine(self))
        // Started on the engine thread and preferring it: the writer fills the buffer right away
        // (until it waits for room or for something of its own), with no hop to the shared pool.
        var started: Task<Void, Never>?
        EngineThreadExecutor.shared.drain {
            started = Task(executorPreference: EngineThreadExecutor.shared) {
                let failure: (any Error)?
                do {
                    try await produce(writer)
                    failure = nil
                } catch {
                    failure = error
                }
                self.producerEnded(failure, logger: logger)
            }
        }
        let task = started!
        let over = guarded.withLock { guarded in
            guarded.task = task
            return guarded.state.phase == .closed || guarded.state.phase == .failed
        }
        if over { task.cancel() }
    }

    private func producerEnded(_ failure: (any Error)?, logger: Logger) {
        let (action, quiet) = guarded.withLock { guarded -> (StreamState.EndAction, Bool) in
            let cleanEnd = failure == nil || (guarded.endedForDrain && failure is CancellationError)
            let action = cleanEnd ? guarded.state.finish() : guarded.state.fail(sendBuffered: true)
            let quiet = guarded.state.phase == .closed || failure is CancellationError || failure is StreamClosed
            carryOut(action)
            return (action, quiet)
        }
        if let failure, !quiet {
            logger.error("streamed response failed: \(String(describing: failure))", metadata: ["server": "\(engine.config.name)"])
        }
        if action == .resumeEngine { engine.suspended.remove(id: contextID) }
    }

    // MARK: Writer

    func write(_ chunk: [UInt8]) async throws {
        // A write that resumes the connection leaves the registry in the same step.
        var action = StreamState.WriteAction.proceed
        engine.suspended.resume(id: contextID) {
            guarded.withLock { guarded in
                action = guarded.state.write(chunk)
                guard action == .resumeEngine || action == .resumeEngineAndWait else { return false }
                MHD_resume_connection(connection)
                return true
            }
        }
        switch action {
        case .proceed:
            // A writer that never has to wait would keep its thread of the shared pool for the
            // whole body: let other tasks run every so often.
            let yield = guarded.withLock { guarded in
                guarded.writtenSinceYield += chunk.count
                guard guarded.writtenSinceYield >= Self.yieldEvery else { return false }
                guarded.writtenSinceYield = 0
                return true
            }
            if yield { await Task.yield() }
        case .resumeEngine:
            break
        case .resumeEngineAndWait:
            try await waitForRoom()
        case .wait:
            try await waitForRoom()
        case .closed:
            throw StreamClosed()
        case .tooLong:
            throw StreamClosed(reason: "more bytes than the declared Content-Length")
        }
    }

    private func waitForRoom() async throws {
        let id = guarded.withLock { guarded in
            defer { guarded.nextWaiter += 1 }
            return guarded.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = guarded.withLock { guarded in
                    if Task.isCancelled || guarded.state.writerMayProceed {
                        if guarded.waiters.isEmpty { guarded.state.writerStoppedWaiting() }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        return guarded.state.phase == .open ? .success(()) : .failure(StreamClosed())
                    }
                    guarded.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let waiter = guarded.withLock { guarded -> CheckedContinuation<Void, any Error>? in
                let waiter = guarded.waiters.removeValue(forKey: id)
                if guarded.waiters.isEmpty { guarded.state.writerStoppedWaiting() }
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    // MARK: Engine thread

    /// The content-reader callback: bytes, 0 after suspending the connection, or the end.
    func read(into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        let destination = UnsafeMutableRawBufferPointer(start: buffer, count: max)
        var waiters: [CheckedContinuation<Void, any Error>] = []
        let read = { (guarded: inout Guarded) -> StreamState.ReadResult in
            let result = guarded.state.read(into: destination)
            if case .bytes(_, true) = result { waiters = guarded.takeWaiters() }
            return result
        }
        var result = guarded.withLock { guarded in guarded.state.wouldSuspend ? nil : read(&guarded) }
        if result == nil {
            // Nothing to send yet: suspend, through the registry, so a shutdown either sees
            // this connection or prevents the suspension (the engine must never stop with one
            // suspended). The state decides again under both locks: the writer may have
            // written or ended meanwhile, and it resumes only a suspension it can see.
            // The engine calls back only for a request it still holds.
            guard let context else { return -2 }
            _ = engine.suspended.register(context) { stopping in
                guarded.withLock { guarded in
                    if stopping {
                        _ = guarded.state.fail()
                        result = .endWithError
                        return false
                    }
                    result = read(&guarded)
                    guard result == .suspend else { return false }
                    MHD_suspend_connection(connection)
                    return true
                }
            }
        }
        // A writer that waits for room prefers the engine-thread executor: it refills the
        // buffer right here, before the engine sends what it just took.
        if !waiters.isEmpty { EngineThreadExecutor.shared.drain { for waiter in waiters { waiter.resume() } } }
        switch result ?? .endWithError {
        case .bytes(let count, _): return count
        case .suspend: return 0
        case .endOfStream: return -1  // MHD_CONTENT_READER_END_OF_STREAM
        case .endWithError:
            // The engine marks the connection closed but leaves the socket to its next wake-up
            // (up to its idle timeout): shut it down now, so the client sees the end at once.
            if fd >= 0 { _ = shutdown(fd, Int32(SHUT_RDWR)) }
            return -2  // MHD_CONTENT_READER_END_WITH_ERROR
        }
    }

    /// The request is over (sent, or the client is gone): stop the writer.
    func close() {
        let (task, waiters) = guarded.withLock { guarded in
            let writing = guarded.state.close()
            return (writing ? guarded.task : nil, guarded.takeWaiters())
        }
        for waiter in waiters { waiter.resume(throwing: StreamClosed()) }
        task?.cancel()
    }

    /// The server gives up on the stream (drain deadline, stop, client gone): the body ends
    /// with an error (the connection closes) and the writer's task is cancelled.
    func abandon() {
        let (task, waiters) = guarded.withLock { guarded in
            carryOut(guarded.state.fail())
            return (guarded.task, guarded.takeWaiters())
        }
        for waiter in waiters { waiter.resume(throwing: StreamClosed()) }
        task?.cancel()
    }

    /// The server starts draining: a stream that ends at the drain (events) has its writer's
    /// task cancelled, and the body ends cleanly after what was written.
    func drainStarted() {
        guard endsAtDrain else { return }
        let (task, waiters) = guarded.withLock { guarded -> (Task<Void, Never>?, [CheckedContinuation<Void, any Error>]) in
            guard guarded.state.phase == .open else { return (nil, []) }
            guarded.endedForDrain = true
            return (guarded.task, guarded.takeWaiters())
        }
        for waiter in waiters { waiter.resume(throwing: CancellationError()) }
        task?.cancel()
    }

    /// Resumes the connection if the state says so (under the lock that decided it).
    private func carryOut(_ action: StreamState.EndAction) {
        if action == .resumeEngine { MHD_resume_connection(connection) }
    }
}

/// Thrown by a write after the stream ended (the client went away, or the server stopped the
/// stream): the writer should simply return.
struct StreamClosed: Error, CustomStringConvertible {
    var reason = "the response stream is closed (the client went away or the server stopped it)"
    var description: String { reason }
}
