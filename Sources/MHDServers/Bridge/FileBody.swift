import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#endif

/// A body sent from an open file: `length` bytes from `offset`. Owns its descriptor (closed
/// when the last copy of the response goes away); the engine gets a duplicate for each
/// response it sends, and sends it with `sendfile` where it can (plain HTTP).
final class FileBody: Sendable {
    let descriptor: Int32
    let offset: UInt64
    let length: UInt64

    /// Takes ownership of `descriptor`.
    init(descriptor: Int32, offset: UInt64, length: UInt64) {
        self.descriptor = descriptor
        self.offset = offset
        self.length = length
    }

    deinit { _ = Glibc.close(descriptor) }

    /// An engine response for the file, or `nil` when none can be made (no descriptor left).
    func nativeResponse() -> OpaquePointer? {
        let copy = dup(descriptor)
        guard copy >= 0 else { return nil }
        guard let response = MHD_create_response_from_fd_at_offset64(length, copy, offset) else {
            _ = Glibc.close(copy)
            return nil
        }
        return response
    }

    /// The bytes, read now (in-process tests).
    func readAll() throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(length))
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw FileReadError(errno: count < 0 ? errno : 0) }
            done += count
        }
        return bytes
    }
}

/// A file body could not be read (it shrank, or the read failed).
struct FileReadError: Error, CustomStringConvertible {
    var errno: Int32
    var description: String { errno == 0 ? "the file ended early" : String(cString: strerror(errno)) }
}
