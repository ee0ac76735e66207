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

// MARK: Opening files

/// What `fstat` says about an open file: its kind, size, identity and modification time.
struct FileStatus: Sendable, Equatable {
    enum Kind: Sendable, Equatable { case regular, directory, other }
    var kind: Kind
    var size: UInt64
    var device: UInt64
    var inode: UInt64
    /// The modification time: whole seconds since 1970 and the nanoseconds past them.
    var modifiedSeconds: Int64
    var modifiedNanoseconds: Int64

    /// The status of `descriptor`, or the `errno` of a failed `fstat`.
    static func of(_ descriptor: Int32) -> Result<FileStatus, FileOpenFailure> {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return .failure(FileOpenFailure(errno: errno)) }
        let kind: Kind
        switch info.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
        return .success(
            FileStatus(
                kind: kind, size: UInt64(max(0, info.st_size)), device: UInt64(info.st_dev), inode: UInt64(info.st_ino),
                modifiedSeconds: Int64(info.st_mtim.tv_sec), modifiedNanoseconds: Int64(info.st_mtim.tv_nsec)))
    }
}

/// Why a file could not be opened, as the answer it calls for.
struct FileOpenFailure: Error, Sendable, Equatable {
    enum Reason: Sendable, Equatable {
        /// No such file, a path through something that is not a directory, a symbolic link
        /// (never followed), a name too long, or not a regular file.
        case notFound
        /// The permissions forbid it.
        case forbidden
        /// The process has no descriptor left.
        case exhausted
        /// Anything else (an I/O error): `errno`.
        case failed(Int32)
    }
    var reason: Reason

    init(_ reason: Reason) { self.reason = reason }

    init(errno code: Int32) {
        switch code {
        case ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, ENXIO, ENODEV: reason = .notFound
        case EACCES, EPERM: reason = .forbidden
        case EMFILE, ENFILE: reason = .exhausted
        default: reason = .failed(code)
        }
    }

    /// The text of the `errno` behind a ``Reason/failed(_:)``.
    var errorText: String {
        if case .failed(let code) = reason { return String(cString: strerror(code)) }
        return "\(reason)"
    }
}

/// An open descriptor and its status, owned: closed when it goes away unless it became a
/// ``FileBody``.
struct OpenedFile: ~Copyable {
    let descriptor: Int32
    let status: FileStatus

    /// Takes ownership of `descriptor` (closed here if its status cannot be read).
    init(adopting descriptor: Int32) throws(FileOpenFailure) {
        switch FileStatus.of(descriptor) {
        case .success(let status):
            self.descriptor = descriptor
            self.status = status
        case .failure(let failure):
            _ = Glibc.close(descriptor)
            throw failure
        }
    }

    /// Opens `path` for reading (symbolic links in it are followed: the path is the caller's).
    /// `O_NONBLOCK` keeps a FIFO from blocking the open; it changes nothing for a regular file.
    init(path: String) throws(FileOpenFailure) {
        guard !path.utf8.contains(0) else { throw FileOpenFailure(.notFound) }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard descriptor >= 0 else { throw FileOpenFailure(errno: errno) }
        try self.init(adopting: descriptor)
    }

    deinit { _ = Glibc.close(descriptor) }

    /// The body for `length` bytes from `offset`, which takes the descriptor over.
    consuming func body(offset: UInt64, length: UInt64) -> FileBody {
        let descriptor = self.descriptor
        discard self
        return FileBody(descriptor: descriptor, offset: offset, length: length)
    }
}

/// A directory opened once, by path, whose entries are then opened relative to it one name at
/// a time (`openat`), never by a path string: a name holds no `/`, and symbolic links are
/// never followed (`O_NOFOLLOW` applies to the one name opened), so nothing outside the
/// directory can be reached through it.
final class DirectoryDescriptor: Sendable {
    let descriptor: Int32

    /// Opens the directory at `path` (symbolic links in `path` itself are followed: it is the
    /// caller's).
    init(path: String) throws(FileOpenFailure) {
        guard !path.utf8.contains(0) else { throw FileOpenFailure(.notFound) }
        let descriptor = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileOpenFailure(errno: errno) }
        self.descriptor = descriptor
    }

    deinit { _ = Glibc.close(descriptor) }

    /// What a walk found: a file, or a directory (open, for its index).
    enum Found: ~Copyable {
        case file(OpenedFile)
        case directory(OpenedFile)
    }

    /// Opens `names` one after the other from this directory: every name but the last must be a
    /// directory, the last may be a file or a directory. Each name must be a single, non-empty
    /// path component other than `.` and `..` (checked by the caller; checked again here).
    func open(_ names: [String]) throws(FileOpenFailure) -> Found {
        var current: OpenedFile? = nil
        for (index, name) in names.enumerated() {
            guard Self.isPlainName(name) else { throw FileOpenFailure(.notFound) }
            let last = index == names.count - 1
            let parent = current?.descriptor ?? descriptor
            let flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | (last ? O_NONBLOCK : O_DIRECTORY)
            let opened = openat(parent, name, flags)
            guard opened >= 0 else { throw FileOpenFailure(errno: errno) }
            current = try OpenedFile(adopting: opened)  // the parent is closed as it is replaced
        }
        guard let file = current.take() else {
            // No name: this directory itself.
            let copy = dup(descriptor)
            guard copy >= 0 else { throw FileOpenFailure(errno: errno) }
            return .directory(try OpenedFile(adopting: copy))
        }
        switch file.status.kind {
        case .regular: return .file(file)
        case .directory: return .directory(file)
        case .other: throw FileOpenFailure(.notFound)
        }
    }

    /// Opens `name` inside the open directory `directory` (no symbolic link followed): a
    /// regular file, or ``FileOpenFailure/Reason/notFound``.
    static func openFile(_ name: String, in directory: borrowing OpenedFile) throws(FileOpenFailure) -> OpenedFile {
        guard isPlainName(name) else { throw FileOpenFailure(.notFound) }
        let opened = openat(directory.descriptor, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK)
        guard opened >= 0 else { throw FileOpenFailure(errno: errno) }
        let file = try OpenedFile(adopting: opened)
        guard file.status.kind == .regular else { throw FileOpenFailure(.notFound) }
        return file
    }

    /// A single path component: not empty, not `.` or `..`, no `/` and no NUL.
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(where: { $0 == 0 || $0 == 47 })
    }
}
