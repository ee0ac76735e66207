#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MHDServers

/// A small HTTP/1.1 client: one TCP connection per request, blocking I/O on a thread of its
/// own (never on Swift's cooperative pool), one deadline for the whole exchange, and task
/// cancellation that aborts the connection.
struct WireClient: Sendable {
    /// The host to connect to: a wildcard bind address becomes the loopback address.
    let host: String
    let port: Int
    /// The `Host` field: `host:port`, IPv6 in brackets.
    let authority: String
    let timeout: Duration

    init(address: BoundAddress, timeout: Duration) {
        switch address.host {
        case "0.0.0.0", "": host = "127.0.0.1"
        case "::", "[::]": host = "::1"
        default: host = address.host
        }
        port = address.port
        authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.timeout = timeout
    }

    func send(_ request: TestRequest) async throws -> TestResponse {
        let bytes = request.serialized(authority: authority)
        let socket = ClientSocket(deadline: ContinuousClock.now + timeout, timeout: timeout)
        let (host, port, authority) = (host, port, authority)
        return try await withTaskCancellationHandler {
            try await Self.onOwnThread {
                defer { socket.close() }
                do {
                    try socket.connect(host: host, port: port)
                    let writeError = try socket.write(bytes)
                    var reader = ResponseReader(socket: socket)
                    do {
                        return try reader.response(toHead: request.method == .head)
                    } catch let error as TestClientError where error.kind == .connectionClosed {
                        // The server closed while the request was still being sent and said
                        // nothing: report the failed write.
                        throw writeError ?? error
                    }
                } catch let error as TestClientError {
                    if socket.isCancelled { throw CancellationError() }
                    throw TestClientError(error.kind, "\(request.summary) to \(authority): \(error.message)")
                }
            }
        } onCancel: {
            socket.cancel()
        }
    }

    /// Runs blocking work on a new thread and awaits its result. Not on a dispatch queue: on
    /// Linux its few threads do not grow when they block, so parallel tests would wait on each
    /// other.
    private static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let job = ThreadJob { continuation.resume(with: Result { try work() }) }
            if let failure = job.start() {
                continuation.resume(throwing: TestClientError(.connectionFailed, "cannot start a thread: \(failure)"))
            }
        }
    }
}

/// A closure run once on a detached thread of its own.
private final class ThreadJob: Sendable {
    let work: @Sendable () -> Void

    init(_ work: @escaping @Sendable () -> Void) { self.work = work }

    /// Starts the thread; returns the error code if it could not be created (`work` then
    /// never runs).
    func start() -> Int32? {
        let context = Unmanaged.passRetained(self).toOpaque()
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let result = pthread_create(&thread, nil, { context in
            #if canImport(Glibc)
            let job = Unmanaged<ThreadJob>.fromOpaque(context!).takeRetainedValue()
            #else
            let job = Unmanaged<ThreadJob>.fromOpaque(context).takeRetainedValue()
            #endif
            job.work()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<ThreadJob>.fromOpaque(context).release()
            return result
        }
        #if canImport(Glibc)
        pthread_detach(thread)
        #else
        pthread_detach(thread!)
        #endif
        return nil
    }
}

/// A client TCP socket in non-blocking mode, every wait bounded by one deadline. The thread
/// doing the I/O owns the descriptor; ``cancel()`` may come from any thread and only shuts the
/// connection down, which wakes that thread.
final class ClientSocket: Sendable {
    private struct State {
        var fd: Int32 = -1
        var cancelled = false
    }
    private let state = Guarded(State())
    let deadline: ContinuousClock.Instant
    let timeout: Duration

    init(deadline: ContinuousClock.Instant, timeout: Duration) {
        self.deadline = deadline
        self.timeout = timeout
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    private var fd: Int32 { state.withLock { $0.fd } }

    func cancel() {
        state.withLock { state in
            state.cancelled = true
            if state.fd >= 0 { _ = shutdown(state.fd, Int32(SHUT_RDWR)) }
        }
    }

    func close() {
        state.withLock { state in
            if state.fd >= 0 { _ = systemClose(state.fd) }
            state.fd = -1
        }
    }

    // MARK: Connecting

    /// Connects to the first address of `host` that accepts.
    func connect(host: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = streamSocketType
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else {
            throw TestClientError(.connectionFailed, "cannot resolve \(host): \(String(cString: gai_strerror(resolved)))")
        }
        defer { freeaddrinfo(first) }
        var failure: Int32 = 0
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = try open(family: info.pointee.ai_family)
            failure = systemConnect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 ? 0 : errno
            if failure == EINPROGRESS {
                try wait(for: Int16(POLLOUT), fd)
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
                failure = code
            }
            // A cancellation that came while connecting could not shut the socket down yet.
            if isCancelled { throw CancellationError() }
            if failure == 0 { return }
            close()
        }
        throw TestClientError(.connectionFailed, "cannot connect to \(host) port \(port): \(describe(failure))")
    }

    private func open(family: Int32) throws -> Int32 {
        try state.withLock { state in
            if state.cancelled { throw CancellationError() }
            let fd = socket(family, streamSocketType, 0)
            guard fd >= 0 else { throw TestClientError(.connectionFailed, "socket: \(describe(errno))") }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
            #if canImport(Darwin)
            var on: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
            #endif
            state.fd = fd
            return fd
        }
    }

    // MARK: Sending and receiving

    /// Sends every byte. Returns the error if the server closed the connection first (it may
    /// have answered already, for example a 413 to an announced body, so the caller reads on).
    func write(_ bytes: [UInt8]) throws -> TestClientError? {
        let fd = self.fd
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { systemSend(fd, $0.baseAddress, $0.count, sendFlags) }
            if sent >= 0 {
                offset += sent
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: try wait(for: Int16(POLLOUT), fd)
            case let code:
                return TestClientError(
                    .connectionClosed, "the connection closed while the request was sent (\(describe(code)))")
            }
        }
        return nil
    }

    /// Appends what arrives to `buffer`; returns `false` at the end of the stream.
    func receive(into buffer: inout [UInt8]) throws -> Bool {
        let fd = self.fd
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                return true
            }
            if count == 0 { return false }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: try wait(for: Int16(POLLIN), fd)
            case let code:
                throw TestClientError(.connectionClosed, "the connection failed: \(describe(code))")
            }
        }
    }

    /// Waits until `fd` is ready for `events` (or has an error to report), up to the deadline.
    private func wait(for events: Int16, _ fd: Int32) throws {
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else {
                throw TestClientError(.timedOut, "no complete response within \(timeout)")
            }
            let (seconds, attoseconds) = remaining.components
            let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR {
                throw TestClientError(.connectionClosed, "poll: \(describe(errno))")
            }
        }
    }

    private func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}

#if canImport(Glibc)
private let streamSocketType = Int32(SOCK_STREAM.rawValue)
private let sendFlags = Int32(MSG_NOSIGNAL)
private func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t) -> Int32 {
    Glibc.connect(fd, address, length)
}
private func systemSend(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int {
    Glibc.send(fd, bytes, count, flags)
}
private func systemClose(_ fd: Int32) -> Int32 { Glibc.close(fd) }
#else
private let streamSocketType = SOCK_STREAM
private let sendFlags: Int32 = 0
private func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t) -> Int32 {
    Darwin.connect(fd, address, length)
}
private func systemSend(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int {
    Darwin.send(fd, bytes, count, flags)
}
private func systemClose(_ fd: Int32) -> Int32 { Darwin.close(fd) }
#endif
