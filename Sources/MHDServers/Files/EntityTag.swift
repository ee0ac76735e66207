/// An entity tag (RFC 9110 §8.8.3): an opaque quoted string, weak when it starts with `W/`.
struct EntityTag: Sendable, Equatable {
    /// The tag with its quotes, without `W/`: `"abc"`.
    var opaque: Substring
    var isWeak: Bool

    /// The strong tag of a file: its inode, size and modification time in nanoseconds, in hex.
    /// Any write that changes the size or the time, or a replacement by another file, changes it.
    static func strong(for status: FileStatus) -> String {
        let nanoseconds = status.modifiedSeconds &* 1_000_000_000 &+ status.modifiedNanoseconds
        return "\"\(String(status.inode, radix: 16))-\(String(status.size, radix: 16))-"
            + "\(String(UInt64(bitPattern: nanoseconds), radix: 16))\""
    }

    /// The tags of an `If-Match` / `If-None-Match` field value (its lines joined by commas):
    /// `.any` for `*`, else the tags it holds. A malformed member ends the list there: the
    /// tags before it still count.
    enum List: Equatable {
        case any
        case tags([EntityTag])
    }

    static func list(_ value: String) -> List {
        let text = value.trimmingWhitespace()
        if text == "*" { return .any }
        var tags: [EntityTag] = []
        var rest = Substring(text)
        while true {
            rest = rest.drop { $0 == " " || $0 == "\t" || $0 == "," }
            guard !rest.isEmpty, let (tag, after) = parse(rest) else { break }
            tags.append(tag)
            rest = after
            // Between members: optional whitespace and a comma.
            rest = rest.drop { $0 == " " || $0 == "\t" }
            guard rest.isEmpty || rest.first == "," else { break }
        }
        return .tags(tags)
    }

    /// One tag at the start of `text`, and what follows it; `nil` when there is none.
    static func parse(_ text: Substring) -> (EntityTag, Substring)? {
        var rest = text
        var weak = false
        if rest.hasPrefix("W/") {
            weak = true
            rest = rest.dropFirst(2)
        }
        guard rest.first == "\"" else { return nil }
        let afterQuote = rest.index(after: rest.startIndex)
        // etagc = %x21 / %x23-7E / obs-text: anything visible but a quote.
        guard let closing = rest[afterQuote...].firstIndex(of: "\"") else { return nil }
        let inside = rest[afterQuote..<closing]
        guard inside.unicodeScalars.allSatisfy({ $0.value == 0x21 || (0x23...0x7E).contains($0.value) || $0.value >= 0x80 })
        else { return nil }
        let end = rest.index(after: closing)
        return (EntityTag(opaque: rest[rest.startIndex..<end], isWeak: weak), rest[end...])
    }

    /// A single tag making up the whole of `text` (for `If-Range`), or `nil`.
    static func single(_ text: String) -> EntityTag? {
        guard let (tag, rest) = parse(text.trimmingWhitespace()), rest.isEmpty else { return nil }
        return tag
    }

    /// Weak comparison: the opaque tags are equal, weak or not (used by `If-None-Match`).
    func weaklyMatches(_ strongTag: String) -> Bool { opaque == strongTag[...] }

    /// Strong comparison: both strong and equal (used by `If-Match` and `If-Range`).
    func stronglyMatches(_ strongTag: String) -> Bool { !isWeak && opaque == strongTag[...] }
}
