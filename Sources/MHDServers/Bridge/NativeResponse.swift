import CMicroHTTPD

/// An engine response built from a ``Response``. Shared, immutable and reference counted by
/// the engine, so one instance can be queued on many connections at once.
final class NativeResponse: @unchecked Sendable {
    let pointer: OpaquePointer
    let status: UInt32

    convenience init(_ storage: Response.Storage, closeConnection: Bool = false) {
        let pointer = storage.body.withUnsafeBytes { bytes in
            MHD_create_response_from_buffer(
                bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
        }
        self.init(taking: pointer!, storage, closeConnection: closeConnection)
    }

    /// Takes over an engine response made elsewhere (a stream, a file) and adds the status and
    /// the header fields of `storage`.
    init(taking pointer: OpaquePointer, _ storage: Response.Storage, closeConnection: Bool) {
        self.pointer = pointer
        status = UInt32(clamping: storage.status.code)
        for field in storage.headers {
            // Names are tokens and values hold no CR, LF or NUL (HTTPFields checks both as the
            // field is built). The engine computes `Content-Length` and `Date` itself and keeps
            // its own over one set here.
            // Explicit C strings: short ones are copied to the stack, long ones lent in place
            // (an implicit conversion allocates an array for every short string).
            field.name.rawName.withCString { name in
                field.value.withCString { value in _ = MHD_add_response_header(pointer, name, value) }
            }
        }
        if closeConnection {
            _ = MHD_add_response_header(pointer, "Connection", "close")
        }
    }

    deinit {
        MHD_destroy_response(pointer)
    }
}
