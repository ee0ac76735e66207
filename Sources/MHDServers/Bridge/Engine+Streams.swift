import CMicroHTTPD

/// Responses whose body is produced while it is sent: streams (a writer task, through the
/// engine's content-reader callback, chunked when the length is unknown) and files (the
/// engine's descriptor responses).
extension Engine {
    func queueProduced(
        _ response: Response, _ source: Response.BodySource, on context: EngineRequest, closing: Bool
    ) -> MHD_Result {
        switch source {
        case .file(let file):
            guard let pointer = file.nativeResponse() else {
                return queue(Engine.fileUnavailable, on: context, close: true)
            }
            let native = NativeResponse(taking: pointer, response.storage, closeConnection: closing)
            return MHD_queue_response(context.connection, native.status, native.pointer)
        case .stream(let body) where context.method == .head && body.length == nil:
            // Nothing is written for HEAD. libmicrohttpd 0.9.75 sends the last chunk
            // ("0\r\n\r\n") after the header block of any chunked answer to HEAD, so this one is
            // not chunked: the header block without the framing fields (RFC 9110 §9.3.2 lets a
            // HEAD answer leave out what only the body decides), then the connection closes.
            let pointer = MHD_create_response_from_callback(UInt64.max, 1, { _, _, _, _ in -1 }, nil, nil)!
            _ = mhds_response_without_chunks(pointer)
            let native = NativeResponse(taking: pointer, response.storage, closeConnection: true)
            return MHD_queue_response(context.connection, native.status, native.pointer)
        case .stream(let body):
            context.fd = mhds_connection_fd(context.connection)
            let stream = ResponseStream(context: context, engine: self, body: body)
            let retained = Unmanaged.passRetained(stream).toOpaque()
            guard
                let pointer = MHD_create_response_from_callback(
                    body.length.map(UInt64.init) ?? UInt64.max, Engine.streamBlockSize, streamReader, retained,
                    streamReleaser)
            else {
                Unmanaged<ResponseStream>.fromOpaque(retained).release()
                return queue(Engine.fileUnavailable, on: context, close: true)
            }
            context.stream = stream
            streams.add(stream)
            let native = NativeResponse(taking: pointer, response.storage, closeConnection: closing)
            let queued = MHD_queue_response(context.connection, native.status, native.pointer)
            // For HEAD (with a declared length) the engine never reads the body.
            if context.method != .head { stream.start(body.produce, logger: logger) }
            return queued
        }
    }

    /// How much the engine asks a stream for at once (it may ask for less).
    static let streamBlockSize = 64 * 1024

    static let fileUnavailable = Response.error(.serviceUnavailable, message: "the response body cannot be sent now")
}

/// The engine asks a stream for bytes (on the connection's thread).
private let streamReader: MHD_ContentReaderCallback = { cls, _, buffer, max in
    Unmanaged<ResponseStream>.fromOpaque(cls!)._withUnsafeGuaranteedRef { $0.read(into: buffer!, max: max) }
}

/// The engine is done with the response: release its reference to the stream.
private let streamReleaser: MHD_ContentReaderFreeCallback = { cls in
    Unmanaged<ResponseStream>.fromOpaque(cls!).release()
}
