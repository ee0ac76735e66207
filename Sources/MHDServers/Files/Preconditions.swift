/// The conditional request fields of RFC 9110 §13, evaluated in the order of §13.2.2 against
/// a file's strong entity tag and modification time (whole seconds, as HTTP dates carry).
enum Preconditions {
    enum Outcome: Equatable {
        /// Answer as usual (200, or 206/416 when a `Range` applies).
        case proceed
        /// 304: the client's copy is current (`If-None-Match`, or `If-Modified-Since` when
        /// there is no `If-None-Match`), for `GET` and `HEAD`.
        case notModified
        /// 412: `If-Match` or `If-Unmodified-Since` does not hold, or `If-None-Match` matched a
        /// request other than `GET` or `HEAD`.
        case failed
    }

    static func evaluate(_ request: Request, entityTag: String, modified: Int64) -> Outcome {
        let headers = request.headers
        let readOnly = request.method == .get || request.method == .head
        // 1. If-Match: a strong match with any of its tags (or `*`, the file exists).
        let ifMatch = headers[values: .ifMatch]
        if !ifMatch.isEmpty {
            switch EntityTag.list(ifMatch.joined(separator: ",")) {
            case .any: break
            case .tags(let tags): if !tags.contains(where: { $0.stronglyMatches(entityTag) }) { return .failed }
            }
        } else if let since = singleDate(headers[values: .ifUnmodifiedSince]), modified > since {
            // 2. If-Unmodified-Since, only without If-Match.
            return .failed
        }
        // 3. If-None-Match: a weak match with any of its tags (or `*`) means the client has it.
        let ifNoneMatch = headers[values: .ifNoneMatch]
        if !ifNoneMatch.isEmpty {
            let matched: Bool
            switch EntityTag.list(ifNoneMatch.joined(separator: ",")) {
            case .any: matched = true
            case .tags(let tags): matched = tags.contains { $0.weaklyMatches(entityTag) }
            }
            if matched { return readOnly ? .notModified : .failed }
        } else if readOnly, let since = singleDate(headers[values: .ifModifiedSince]), modified <= since {
            // 4. If-Modified-Since, only without If-None-Match and only for GET and HEAD.
            return .notModified
        }
        return .proceed
    }

    /// Whether a `Range` may be served (RFC 9110 §13.1.5): always without `If-Range`; with it,
    /// when it is the file's strong entity tag (a weak tag never matches) or exactly its
    /// `Last-Modified` date. Anything else sends the whole file.
    static func rangeApplies(_ request: Request, entityTag: String, modified: Int64) -> Bool {
        let values = request.headers[values: .ifRange]
        guard !values.isEmpty else { return true }
        guard values.count == 1, let value = values.first else { return false }
        if let tag = EntityTag.single(value) { return tag.stronglyMatches(entityTag) }
        return HTTPDate.parse(value) == modified
    }

    /// The date of a field sent once with a valid HTTP date; `nil` (the field is ignored)
    /// otherwise.
    private static func singleDate(_ values: [String]) -> Int64? {
        guard values.count == 1, let value = values.first else { return nil }
        return HTTPDate.parse(value)
    }
}
