import CMicroHTTPD

/// Checks made on the headers-only callback, before any body is read.
enum RequestGuard {
    static let contentTooLarge = Response.error(.contentTooLarge, message: "request body is too large")

    /// A response that rejects the request outright, or `nil` to go on.
    static func check(_ connection: OpaquePointer, limits: ServerConfig.Limits) -> Response? {
        if let length = MHD_lookup_connection_value(connection, .HEADER_KIND, "Content-Length") {
            if let value = UInt64(String(cString: length)), value > UInt64(limits.maxBodySize) {
                return contentTooLarge
            }
        }
        return nil
    }
}
