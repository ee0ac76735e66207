/// The forms of a request target (RFC 9112 §3.2) that need more than the path as sent.
enum RequestTarget {
    /// For an absolute-form target (`http://example.com/api/hello`): its authority and its path
    /// (`/` when it has none). An origin server routes on that path and takes the host from the
    /// target, not from the `Host` field (RFC 9112 §3.2.2). `nil` for any other form.
    static func absoluteForm(_ target: String) -> (authority: String, path: String)? {
        let scheme = target.prefix(8).lowercased()
        let rest: Substring
        if scheme.hasPrefix("http://") {
            rest = target.dropFirst(7)
        } else if scheme.hasPrefix("https://") {
            rest = target.dropFirst(8)
        } else {
            return nil
        }
        guard let slash = rest.firstIndex(of: "/") else { return (String(rest), "/") }
        return (String(rest[..<slash]), String(rest[slash...]))
    }
}
