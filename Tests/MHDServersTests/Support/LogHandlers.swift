import Logging

/// A log handler that hands every event at `logLevel` or above to `handle`: tests that act on,
/// or keep, what is logged.
///
/// ```swift
/// let logger = Logger(label: "test") { _ in CallbackLogHandler { event in print(event.message) } }
/// ```
struct CallbackLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    let handle: @Sendable (LogEvent) -> Void

    init(_ handle: @escaping @Sendable (LogEvent) -> Void) { self.handle = handle }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) { handle(event) }
}
