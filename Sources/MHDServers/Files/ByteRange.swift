/// The `Range` field of a request (RFC 9110 §14.2), read for a representation of known size.
///
/// Only one range is served: a field with several (`bytes=0-1,5-6`) is ignored and the whole
/// representation is sent, as RFC 9110 allows (a server may always ignore `Range`). So is a
/// field that is malformed or names another unit.
enum ByteRange {
    enum Selection: Equatable {
        /// Send the whole representation (no usable `Range`).
        case whole
        /// Send these bytes (206).
        case part(ClosedRange<UInt64>)
        /// The one range asked for lies outside the representation (416).
        case unsatisfiable
    }

    /// What `value` asks of `size` bytes.
    static func select(_ value: String, size: UInt64) -> Selection {
        let text = value.trimmingWhitespace()
        guard let equals = text.firstIndex(of: "="), text[..<equals].lowercased() == "bytes" else { return .whole }
        // range-set = 1#range-spec; empty list elements are allowed and skipped (RFC 9110 §5.6.1.2).
        let specs = text[text.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        guard specs.count == 1, let spec = specs.first, let dash = spec.firstIndex(of: "-") else { return .whole }
        let firstText = spec[..<dash]
        let lastText = spec[spec.index(after: dash)...]
        if firstText.isEmpty {
            // suffix-range: the last N bytes; satisfiable when N > 0 and the representation is not empty.
            guard let length = digits(lastText) else { return .whole }
            guard length > 0, size > 0 else { return .unsatisfiable }
            return .part((size - min(length, size))...(size - 1))
        }
        guard let first = digits(firstText) else { return .whole }
        var last = UInt64.max
        if !lastText.isEmpty {
            guard let parsed = digits(lastText), parsed >= first else { return .whole }  // last < first: invalid
            last = parsed
        }
        // int-range: satisfiable when it starts inside; its end is clamped to the last byte.
        guard first < size else { return .unsatisfiable }
        return .part(first...min(last, size - 1))
    }

    /// A non-empty run of decimal digits; a value past `UInt64.max` saturates (it is only ever
    /// compared with a size).
    private static func digits(_ text: Substring) -> UInt64? {
        guard !text.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in text.utf8 {
            guard (48...57).contains(byte) else { return nil }
            let (times, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = times.addingReportingOverflow(UInt64(byte - 48))
            value = overflowA || overflowB ? UInt64.max : sum
        }
        return value
    }

    /// `Content-Range` of a part: `bytes 0-499/1234`.
    static func contentRange(_ part: ClosedRange<UInt64>, size: UInt64) -> String {
        "bytes \(part.lowerBound)-\(part.upperBound)/\(size)"
    }

    /// `Content-Range` of a 416: `bytes */1234`.
    static func unsatisfiedRange(size: UInt64) -> String { "bytes */\(size)" }
}
