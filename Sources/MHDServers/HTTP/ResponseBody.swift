/// Writes a streamed response body while the client reads it.
///
/// The server sends what is written as it comes: chunked on HTTP/1.1 (or with the
/// `Content-Length` the response declared), with back-pressure. A write returns once the
/// bytes are buffered, and waits while the client is behind (about `highWater` bytes), so a
/// slow client never makes the server buffer without bound. When the client goes away, or the
/// server stops the stream at its drain deadline, a waiting or later write throws and the
/// writer's task is cancelled: return, or let the error propagate (it is not logged).
///
/// ```swift
/// router.get("/numbers") { _ in
///     Response(status: .ok, headers: [.contentType: "text/plain"]) { writer in
///         for n in 1...1_000 {
///             try await writer.write("\(n)\n")
///         }
///     }
/// }
/// ```
public struct ResponseBodyWriter: Sendable {
    enum Target: Sendable {
        /// A live connection.
        case engine(ResponseStream)
        /// Collected in memory (in-process tests).
        case collector(Locked<[UInt8]>)
    }
    let target: Target

    /// Sends `bytes` (an empty array sends nothing).
    ///
    /// ```swift
    /// try await writer.write([0x89, 0x50, 0x4E, 0x47])
    /// ```
    public func write(_ bytes: [UInt8]) async throws {
        switch target {
        case .engine(let stream): try await stream.write(bytes)
        case .collector(let collected):
            try Task.checkCancellation()
            collected.withLock { $0.append(contentsOf: bytes) }
        }
    }

    /// Sends `text` as UTF-8.
    ///
    /// ```swift
    /// try await writer.write("line\n")
    /// ```
    public func write(_ text: String) async throws {
        try await write(Array(text.utf8))
    }

    /// Sends every chunk of `chunks`, in order.
    ///
    /// ```swift
    /// let parts = AsyncStream<[UInt8]> { continuation in
    ///     continuation.yield(Array("a".utf8))
    ///     continuation.finish()
    /// }
    /// try await writer.write(contentsOf: parts)
    /// ```
    public func write<Chunks: AsyncSequence>(contentsOf chunks: Chunks) async throws where Chunks.Element == [UInt8] {
        for try await chunk in chunks { try await write(chunk) }
    }
}

/// What a streamed body is made of: the producer and how it is sent.
struct StreamBody: Sendable {
    var length: Int?
    var highWater: Int
    var endsAtDrain: Bool
    var produce: @Sendable (ResponseBodyWriter) async throws -> Void
}

extension Response {
    /// The default back-pressure bound of a streamed body: a write waits while more than this
    /// many bytes wait to be sent.
    public static let defaultStreamBuffer = 256 * 1024

    /// A response whose body `body` writes while the client reads it.
    ///
    /// - Parameters:
    ///   - status: the status line's code and reason.
    ///   - headers: header fields to send (the server adds the framing ones and `Date`).
    ///   - contentLength: the body's length when known in advance (sent as `Content-Length`;
    ///     writing more throws, ending with less closes the connection so the client sees a
    ///     truncated body). `nil`: chunked on HTTP/1.1, until the connection closes on HTTP/1.0.
    ///   - bufferSize: back-pressure bound; a write waits while more than this is buffered.
    ///   - endsAtDrain: when the server starts draining, cancel the writer and end the body
    ///     cleanly there (for endless streams such as events, so clients reconnect elsewhere)
    ///     instead of letting it run to the drain deadline (for downloads, which should finish).
    ///   - body: writes the body; it runs in its own task, which is cancelled when the client
    ///     goes away. An error it throws ends the body with an error (the connection closes, so
    ///     the client cannot mistake a partial body for a whole one) and is logged.
    ///
    /// ```swift
    /// router.get("/export.csv") { _ in
    ///     Response(status: .ok, headers: [.contentType: "text/csv"]) { writer in
    ///         try await writer.write("id,name\n")
    ///         for id in 1...100_000 { try await writer.write("\(id),user\(id)\n") }
    ///     }
    /// }
    /// ```
    public init(
        status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), contentLength: Int? = nil,
        bufferSize: Int = Response.defaultStreamBuffer, endsAtDrain: Bool = false,
        body: @escaping @Sendable (ResponseBodyWriter) async throws -> Void
    ) {
        precondition(contentLength.map { $0 >= 0 } ?? true, "a negative Content-Length")
        self.init(status: status, headers: headers)
        storage.source = .stream(
            StreamBody(length: contentLength, highWater: max(1, bufferSize), endsAtDrain: endsAtDrain, produce: body))
    }

    /// A response whose body is the chunks of `chunks`, sent as they come.
    ///
    /// ```swift
    /// let (chunks, input) = AsyncStream.makeStream(of: [UInt8].self)
    /// input.yield(Array("hello ".utf8))
    /// input.yield(Array("world".utf8))
    /// input.finish()
    /// let response = Response(status: .ok, chunks: chunks)
    /// ```
    public init<Chunks: AsyncSequence & Sendable>(
        status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), contentLength: Int? = nil, chunks: Chunks
    ) where Chunks.Element == [UInt8] {
        self.init(status: status, headers: headers, contentLength: contentLength) { writer in
            try await writer.write(contentsOf: chunks)
        }
    }

    /// The whole body, produced now if it is streamed (for tests and in-process use: a stream
    /// that never ends never returns). A file body is read from its file.
    ///
    /// ```swift
    /// @_spi(Testing) import MHDServers
    /// let bytes = try await response.collectedBody()
    /// ```
    @_spi(Testing) public func collectedBody() async throws -> [UInt8] {
        switch storage.source {
        case nil: return storage.body
        case .stream(let stream)?:
            let collected = Locked<[UInt8]>([])
            try await stream.produce(ResponseBodyWriter(target: .collector(collected)))
            return collected.withLock { $0 }
        case .file(let file)?:
            return try file.readAll()
        }
    }
}
