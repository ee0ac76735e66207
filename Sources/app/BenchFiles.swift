#if canImport(FoundationEssentials)
import FoundationEssentials  // FileManager without ICU and the rest of Foundation
#else
import Foundation
#endif
import MHDServers
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `GET /bench/file` for the benchmark mode: a 1 MiB file served from disk through
/// `Response.file(at:for:)` (opened and `fstat`ed per request, sent with `sendfile` on plain
/// HTTP), with its `ETag`, `Last-Modified`, conditional GET and ranges.
///
/// The file is made once, at the first registration, in a fresh temporary directory (byte `i`
/// is `i % 251`, so a range can be checked), and the directory is removed when the process exits.
enum BenchFiles {
    /// The file's size.
    static let size = 1 << 20

    /// The directory made for the file, and the file's path, once made.
    private static let made = Mutex<(directory: String, file: String)?>(nil)

    /// Adds `GET /bench/file` (and `HEAD`). Throws when the file cannot be made.
    static func register(on router: inout Router) throws {
        let file = try makeFile()
        router.get("/bench/file") { request in try Response.file(at: file, for: request) }
    }

    /// The file's path, made now unless it already was.
    private static func makeFile() throws -> String {
        try made.withLock { made in
            if let made { return made.file }
            let manager = FileManager.default
            let directory = manager.temporaryDirectory
                .appendingPathComponent("mhd-bench-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)").path
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: false)
            let file = directory + "/file.bin"
            let bytes = (0..<size).map { UInt8($0 % 251) }
            guard manager.createFile(atPath: file, contents: Data(bytes)) else {
                try? manager.removeItem(atPath: directory)
                throw BenchFileError(path: file)
            }
            made = (directory, file)
            atexit { BenchFiles.removeDirectory() }
            return file
        }
    }

    /// Removes the directory made for the file (at exit).
    private static func removeDirectory() {
        guard let directory = made.withLock({ $0?.directory }) else { return }
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct BenchFileError: Error, CustomStringConvertible {
        var path: String
        var description: String { "cannot write the benchmark file \(path)" }
    }
}
