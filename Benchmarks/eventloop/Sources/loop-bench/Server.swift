import CMHDLoop

#if canImport(Glibc)
import Glibc
#endif

/// One async request's state. Confined to its loop's thread: the access callback, the task's
/// last step (the task prefers the loop's executor) and the completion callback all run there.
final class Exchange: @unchecked Sendable {
    let connection: OpaquePointer
    unowned let loop: EventLoop
    var suspended = false
    var done = false
    var resumed = false
    var closed = false

    init(connection: OpaquePointer, loop: EventLoop) {
        self.connection = connection
        self.loop = loop
    }

    /// The handler finished (on the loop thread): resume the connection, exactly once, if it
    /// was suspended; the daemon then calls the access handler again, which queues the response.
    func finish() {
        precondition(loop.isCurrent, "a handler ended off its loop thread")
        precondition(!done, "a handler ended twice")
        done = true
        if suspended, !closed, !resumed {
            resumed = true
            loop.resume(connection)
        }
    }
}

enum Server {
    nonisolated(unsafe) static var hello: OpaquePointer?
    nonisolated(unsafe) static var notFound: OpaquePointer?
    /// The per-request slot's value between the headers call and the final call of a request
    /// answered inline (no allocation for those).
    nonisolated(unsafe) static let sentinel = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)

    static func makeResponses() {
        hello = loop_constant_response(#"{"message":"Hello from the public server!"}"#, "application/json")
        notFound = loop_constant_response(#"{"error":"not found"}"#, "application/json")
        precondition(hello != nil && notFound != nil)
    }

    static let access: MHD_AccessHandlerCallback = { cls, connection, url, method, _, _, uploadSize, slot in
        guard let cls, let connection, let url, let method, let uploadSize, let slot else { return .NO }
        // First call: headers only; never answer here (it would cost keep-alive).
        guard let state = slot.pointee else {
            slot.pointee = Server.sentinel
            return .YES
        }
        if uploadSize.pointee != 0 {  // no route takes a body: drop it
            uploadSize.pointee = 0
            return .YES
        }
        if state != Server.sentinel {
            // Called again after the task resumed the connection: answer.
            let exchange = Unmanaged<Exchange>.fromOpaque(state).takeUnretainedValue()
            precondition(exchange.done)
            return MHD_queue_response(connection, 200, Server.hello)
        }
        guard strcmp(method, "GET") == 0 else { return MHD_queue_response(connection, 404, Server.notFound) }
        if strcmp(url, "/api/hello") == 0 {
            return MHD_queue_response(connection, 200, Server.hello)
        }
        let loop = Unmanaged<EventLoop>.fromOpaque(cls).takeUnretainedValue()
        if strcmp(url, "/bench/async") == 0 {
            return start(loop, connection, slot) { await Task.yield() }
        }
        if strcmp(url, "/bench/suspend") == 0 {
            return start(loop, connection, slot) { await Task.detached {}.value }
        }
        return MHD_queue_response(connection, 404, Server.notFound)
    }

    /// Starts `handler` as a task preferring the loop. With inline draining, what it makes ready
    /// on the loop runs before the callback returns; if it has not finished by then, the
    /// connection is suspended until it does.
    static func start(
        _ loop: EventLoop, _ connection: OpaquePointer, _ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
        _ handler: @escaping @Sendable () async -> Void
    ) -> MHD_Result {
        let exchange = Exchange(connection: connection, loop: loop)
        slot.pointee = Unmanaged.passRetained(exchange).toOpaque()  // released in `completed`
        if !loop.inlineDrain {
            // Suspend first, then start: the task can only end on this thread, after we return.
            MHD_suspend_connection(connection)
            exchange.suspended = true
        }
        Task(executorPreference: loop) {
            await handler()
            exchange.finish()
        }
        if loop.inlineDrain {
            loop.runLocal()
            if exchange.done { return MHD_queue_response(connection, 200, Server.hello) }
            MHD_suspend_connection(connection)
            exchange.suspended = true
        }
        return .YES
    }

    static let completed: MHD_RequestCompletedCallback = { _, _, slot, _ in
        guard let slot, let state = slot.pointee else { return }
        slot.pointee = nil
        if state == Server.sentinel { return }
        let exchange = Unmanaged<Exchange>.fromOpaque(state).takeRetainedValue()
        exchange.closed = true
    }
}
