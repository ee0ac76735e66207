/// One Server-Sent Event (the `text/event-stream` format of the HTML standard).
///
/// ```swift
/// let event = ServerSentEvent(data: #"{"inFlight":3}"#, event: "stats", id: "42")
/// // event: stats
/// // id: 42
/// // data: {"inFlight":3}
/// ```
public struct ServerSentEvent: Sendable, Hashable {
    /// The data; each of its lines is sent as a `data:` line (the client joins them with `\n`).
    public var data: String
    /// The event type (`event:`), or `nil` for the default `message`.
    public var event: String?
    /// The event ID (`id:`), which the client sends back as `Last-Event-ID` when it reconnects.
    public var id: String?
    /// How long the client waits before reconnecting (`retry:`), if set.
    public var retry: Duration?

    /// Creates an event.
    ///
    /// ```swift
    /// let tick = ServerSentEvent(data: "tick")
    /// ```
    public init(data: String, event: String? = nil, id: String? = nil, retry: Duration? = nil) {
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
    }

    /// The event in the wire format, ending with the blank line that dispatches it. Line breaks
    /// (CR, LF, CRLF) in `data` become separate `data:` lines; in `event` and `id`, where they
    /// would end the field early, they become spaces, and `id` loses any NUL (the client would
    /// ignore the whole field).
    ///
    /// ```swift
    /// let bytes = ServerSentEvent(data: "a\nb").encoded   // "data: a\ndata: b\n\n"
    /// ```
    public var encoded: String {
        var text = ""
        if let event { text += "event: \(Self.oneLine(event))\n" }
        if let id { text += "id: \(Self.oneLine(id).replacing("\u{0}", with: ""))\n" }
        if let retry {
            let milliseconds = retry.components.seconds * 1000 + retry.components.attoseconds / 1_000_000_000_000_000
            text += "retry: \(max(0, milliseconds))\n"
        }
        for line in Self.lines(data) { text += "data: \(line)\n" }
        return text + "\n"
    }

    private static func lines(_ text: String) -> [Substring] {
        // CRLF is one grapheme in Swift: split on Unicode scalars so CR, LF and CRLF all count.
        var lines: [Substring] = []
        var start = text.startIndex
        var index = text.startIndex
        let scalars = text.unicodeScalars
        var scalarIndex = scalars.startIndex
        while scalarIndex < scalars.endIndex {
            let scalar = scalars[scalarIndex]
            if scalar == "\r" || scalar == "\n" {
                index = scalarIndex
                lines.append(text[start..<index])
                var next = scalars.index(after: scalarIndex)
                if scalar == "\r", next < scalars.endIndex, scalars[next] == "\n" { next = scalars.index(after: next) }
                scalarIndex = next
                start = next
            } else {
                scalarIndex = scalars.index(after: scalarIndex)
            }
        }
        lines.append(text[start...])
        return lines
    }

    private static func oneLine(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == "\r" || $0 == "\n" ? " " : $0 }))
    }
}

/// Sends Server-Sent Events on a streamed response (see ``Response/events(heartbeat:retry:headers:_:)``).
///
/// ```swift
/// router.get("/clock") { _ in
///     Response.events { events in
///         while true {
///             try await events.send(ServerSentEvent(data: "\(ContinuousClock.now)"))
///             try await Task.sleep(for: .seconds(1))
///         }
///     }
/// }
/// ```
public struct ServerSentEventWriter: Sendable {
    let writer: ResponseBodyWriter
    let lastSent: Locked<ContinuousClock.Instant>

    /// Sends one event.
    public func send(_ event: ServerSentEvent) async throws {
        try await writer.write(event.encoded)
        lastSent.withLock { $0 = .now }
    }

    /// Sends a comment line (`: text`), which clients ignore: keeps idle connections and the
    /// proxies in between from timing out.
    ///
    /// ```swift
    /// try await events.comment("still here")
    /// ```
    public func comment(_ text: String = "") async throws {
        let line = text.isEmpty ? ":\n\n" : ": \(text.replacing("\n", with: " ").replacing("\r", with: " "))\n\n"
        try await writer.write(line)
        lastSent.withLock { $0 = .now }
    }
}

extension Response {
    /// A `text/event-stream` response: `body` sends events while the client listens.
    ///
    /// The stream is sent uncached and unbuffered by proxies (`Cache-Control: no-store`,
    /// `X-Accel-Buffering: no`). When nothing was sent for `heartbeat`, a comment line is sent,
    /// so idle connections stay open through proxies and a client that went away is noticed.
    /// The stream ends cleanly when the server starts draining (its task is cancelled), so
    /// clients reconnect to another instance at once instead of at the drain deadline; send
    /// `retry` to tell them how soon. The client's `Last-Event-ID` is
    /// `request.headers["Last-Event-ID"]` (see ``Request/lastEventID``).
    ///
    /// ```swift
    /// router.get("/feed") { request in
    ///     let resumeAfter = request.lastEventID.flatMap { Int($0) } ?? 0
    ///     return Response.events(retry: .seconds(2)) { events in
    ///         for n in (resumeAfter + 1)... {
    ///             try await events.send(ServerSentEvent(data: "update \(n)", id: "\(n)"))
    ///             try await Task.sleep(for: .seconds(1))
    ///         }
    ///     }
    /// }
    /// ```
    public static func events(
        heartbeat: Duration? = .seconds(15), retry: Duration? = nil, headers: HTTPHeaders = HTTPHeaders(),
        _ body: @escaping @Sendable (ServerSentEventWriter) async throws -> Void
    ) -> Response {
        var fields = headers
        fields[.contentType] = "text/event-stream"
        fields[.cacheControl] = "no-store"
        fields["X-Accel-Buffering"] = "no"
        return Response(status: .ok, headers: fields, bufferSize: 64 * 1024, endsAtDrain: true) { writer in
            let events = ServerSentEventWriter(writer: writer, lastSent: Locked(.now))
            if let retry {
                let milliseconds = retry.components.seconds * 1000 + retry.components.attoseconds / 1_000_000_000_000_000
                try await writer.write("retry: \(max(0, milliseconds))\n\n")
            }
            guard let heartbeat else { return try await body(events) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await body(events) }
                group.addTask {
                    while true {
                        let due = events.lastSent.withLock { $0 } + heartbeat
                        try await Task.sleep(until: due)
                        if events.lastSent.withLock({ $0 }) + heartbeat <= .now { try await events.comment() }
                    }
                }
                // The events' task decides: when it returns or throws, the heartbeat stops.
                defer { group.cancelAll() }
                try await group.next()
            }
        }
    }
}

extension Request {
    /// The `Last-Event-ID` an `EventSource` sends when it reconnects: the `id` of the last
    /// event it received.
    ///
    /// ```swift
    /// let resumeAfter = request.lastEventID ?? "0"
    /// ```
    public var lastEventID: String? { headers["Last-Event-ID"] }
}
