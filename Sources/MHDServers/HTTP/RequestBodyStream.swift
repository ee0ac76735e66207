/// A request body as it arrives: an `AsyncSequence` of byte chunks (see
/// ``Router/on(_:_:streamingBodyUpTo:use:)``). For a route that buffers its body, the stream
/// yields ``Request/body`` as one chunk.
///
/// Iterate it once. It throws ``HTTPError`` 413 when the body grows past the route's limit,
/// and `CancellationError` when the client goes away or the server gives up on the request.
///
/// ```swift
/// router.post("/count", streamingBodyUpTo: 1 << 30) { request in
///     var bytes = 0
///     for try await chunk in request.bodyStream { bytes += chunk.count }
///     return try .json(["bytes": bytes])
/// }
/// ```
public struct RequestBodyStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]

    /// How many bytes may wait for the handler before the connection is suspended (the rest
    /// stays with the client): the most a streamed body holds in memory, plus one read.
    public static let bufferSize = 256 * 1024

    enum Source: Sendable {
        case buffered([UInt8])
        case upload(UploadStream)
    }
    let source: Source

    public struct AsyncIterator: AsyncIteratorProtocol {
        var source: Source?

        public mutating func next() async throws -> [UInt8]? {
            switch source {
            case nil: return nil
            case .buffered(let bytes)?:
                source = nil
                return bytes.isEmpty ? nil : bytes
            case .upload(let upload)?:
                guard let chunk = try await upload.next() else {
                    source = nil
                    return nil
                }
                return chunk
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: source) }

    /// The whole body, collected (for a body known to be small).
    ///
    /// ```swift
    /// let bytes = try await request.bodyStream.collect(upTo: 1 << 20)
    /// ```
    public func collect(upTo limit: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in self {
            guard bytes.count + chunk.count <= limit else {
                throw HTTPError(.contentTooLarge, message: "request body is too large")
            }
            bytes += chunk
        }
        return bytes
    }
}

extension Request {
    /// The body as a stream of chunks: as it arrives on a route registered with
    /// ``Router/on(_:_:streamingBodyUpTo:use:)`` (where ``body`` is empty), otherwise
    /// ``body`` in one chunk.
    ///
    /// ```swift
    /// for try await chunk in request.bodyStream { print(chunk.count) }
    /// ```
    public var bodyStream: RequestBodyStream {
        RequestBodyStream(source: upload.map { .upload($0) } ?? .buffered(body))
    }
}
