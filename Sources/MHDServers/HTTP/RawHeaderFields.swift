import Synchronization

/// A request's header fields as the engine read them — every name and value, in order, in one
/// byte buffer — made into `HTTPFields` the first time anyone reads ``Request/headers``.
///
/// Building `HTTPFields` costs about 1,500 instructions a field (a validated name, a validated
/// UTF-8 string for the value, an array entry, all released again at the end), which a route
/// that never looks at its headers does not need: a browser sends 8 to 15 fields. Copying the
/// bytes is a few dozen instructions a field. What is built is exactly what the eager
/// conversion built: names keep their spelling, values are decoded as UTF-8 with invalid
/// sequences repaired, and `HTTPFields` legalizes them (control bytes become spaces).
///
/// Thread-safe: a request may be read from several tasks; the first reader builds the fields
/// under a lock and every later one gets the same value.
final class RawHeaderFields: Sendable {
    /// `name NUL value NUL`, for every field in order (names and values never hold a NUL).
    private let bytes: [UInt8]
    private let built = Mutex<HTTPFields?>(nil)

    /// Fields gathered one at a time (see ``append(name:value:)``).
    struct Builder {
        fileprivate var bytes: [UInt8] = []

        /// Adds a field, its name a token and its value without NUL bytes.
        mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
            bytes.append(contentsOf: name)
            bytes.append(0)
            bytes.append(contentsOf: value)
            bytes.append(0)
        }

        /// Reserves room for about `count` more bytes.
        mutating func reserve(_ count: Int) { bytes.reserveCapacity(bytes.count + count) }
    }

    init(_ builder: Builder) {
        bytes = builder.bytes
    }

    /// No fields.
    static let empty = RawHeaderFields(Builder())

    /// The fields, built on first use.
    var fields: HTTPFields {
        built.withLock { built in
            if let fields = built { return fields }
            let fields = makeFields()
            built = fields
            return fields
        }
    }

    private func makeFields() -> HTTPFields {
        var fields = HTTPFields()
        bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            var name: UnsafeBufferPointer<UInt8>.SubSequence?
            for index in buffer.indices where buffer[index] == 0 {
                let part = buffer[start..<index]
                start = index + 1
                guard let fieldName = name else {
                    name = part
                    continue
                }
                name = nil
                if let fieldName = Self.commonName(fieldName) ?? HTTPField.Name(String(decoding: fieldName, as: UTF8.self)) {
                    fields.append(HTTPField(name: fieldName, value: String(decoding: part, as: UTF8.self)))
                }
            }
        }
        return fields
    }

    /// The field name `bytes` when it is one that clients send on nearly every request, spelled
    /// the usual way (exact case, so the name keeps its spelling as sent): taken as the
    /// library's constant instead of being copied, validated and lowercased again.
    private static func commonName(_ bytes: UnsafeBufferPointer<UInt8>.SubSequence) -> HTTPField.Name? {
        func matches(_ name: StaticString) -> Bool {
            name.utf8CodeUnitCount == bytes.count
                && UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount).elementsEqual(bytes)
        }
        switch bytes.count {
        case 4 where matches("Host"): return .hostField
        case 6 where matches("Accept"): return .accept
        case 6 where matches("Cookie"): return .cookie
        case 6 where matches("Origin"): return .origin
        case 7 where matches("Referer"): return .referer
        case 10 where matches("User-Agent"): return .userAgent
        case 10 where matches("Connection"): return .connection
        case 12 where matches("Content-Type"): return .contentType
        case 13 where matches("Authorization"): return .authorization
        case 13 where matches("Cache-Control"): return .cacheControl
        case 13 where matches("If-None-Match"): return .ifNoneMatch
        case 14 where matches("Content-Length"): return .contentLength
        case 15 where matches("Accept-Encoding"): return .acceptEncoding
        case 15 where matches("Accept-Language"): return .acceptLanguage
        default: return nil
        }
    }
}
