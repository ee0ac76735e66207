/// The handlers of one path by method: a short list searched in order, since a path has one to
/// a few methods. A dictionary would hash the method's name on every request.
struct MethodTable<Value: Sendable>: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    private var entries: [(method: HTTPMethod, value: Value)] = []

    init(dictionaryLiteral elements: (HTTPMethod, Value)...) {
        for (method, value) in elements { self[method] = value }
    }

    var isEmpty: Bool { entries.isEmpty }

    /// The methods, in the order they were added.
    var methods: [HTTPMethod] { entries.map(\.method) }

    subscript(method: HTTPMethod) -> Value? {
        get {
            for entry in entries where entry.method == method { return entry.value }
            return nil
        }
        set {
            if let index = entries.firstIndex(where: { $0.method == method }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append((method, newValue))
            }
        }
    }

    /// The same methods, each value transformed.
    func mapValues<T>(_ transform: (Value) throws -> T) rethrows -> MethodTable<T> {
        var table = MethodTable<T>()
        for entry in entries { table[entry.method] = try transform(entry.value) }
        return table
    }

    func makeIterator() -> IndexingIterator<[(method: HTTPMethod, value: Value)]> {
        entries.makeIterator()
    }
}
