/// The one piece of business logic, served over both protocols.
enum Greeting {
    /// The greeting for `name` (or for "world" when it is empty).
    static func message(for name: String) -> String {
        "Hello, \(name.isEmpty ? "world" : name)!"
    }
}
