extension Router {
    /// Serves the files under `directory` at `prefix`: `GET` (and `HEAD`) of `prefix/a/b.css`
    /// answers the file `a/b.css` of the directory, as ``FileDirectory`` describes (no way out of
    /// the directory, no symbolic link followed, dotfiles refused unless `servesDotfiles`, the
    /// `index` file for a directory's path). The directory is opened now: throws ``FileError``
    /// when it cannot be.
    ///
    /// ```swift
    /// try router.files("/static", from: "/srv/www")                     // GET /static/app.js, /static/
    /// try router.files("/exports", from: "/var/lib/exports", index: nil)  // files only
    /// ```
    public mutating func files(
        _ prefix: String, from directory: String, index: String? = "index.html", servesDotfiles: Bool = false
    ) throws {
        files(prefix, from: try FileDirectory(directory, index: index, servesDotfiles: servesDotfiles))
    }

    /// Serves the files of an open ``FileDirectory`` at `prefix` (`GET` and `HEAD` of `prefix`
    /// and of every path under it).
    ///
    /// ```swift
    /// let site = try FileDirectory("/srv/www")
    /// router.files("/", from: site)
    /// ```
    public mutating func files(_ prefix: String, from directory: FileDirectory) {
        let answer: @Sendable (Request) throws -> Response = { request in
            try directory.response(for: request, path: request.parameters["*"] ?? "")
        }
        get(prefix, use: answer)
        get(Self.join(prefix, "*"), use: answer)
    }
}
