import CMicroHTTPD

/// An engine response built from a ``Response``. Shared, immutable and reference counted by
/// the engine, so one instance can be queued on many connections at once.
final class NativeResponse: @unchecked Sendable {
    let pointer: OpaquePointer
    let status: UInt32

    init(_ storage: Response.Storage, closeConnection: Bool = false) {
        pointer = storage.body.withUnsafeBytes { bytes in
            MHD_create_response_from_buffer(
                bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
        }
        status = UInt32(clamping: storage.status.code)
        for field in storage.headers {
            // The engine rejects header values with CR/LF; such a field is dropped, never sent.
            _ = MHD_add_response_header(pointer, field.name, field.value)
        }
        if closeConnection {
            _ = MHD_add_response_header(pointer, "Connection", "close")
        }
    }

    deinit {
        MHD_destroy_response(pointer)
    }
}
