@testable import MHDServers
import Testing

/// The query string is parsed in Swift (the engine's own parser stores every parameter in the
/// connection's fixed memory pool), with the engine's rules.
@Suite("Query string parsing", .timeLimit(.minutes(2)))
struct QueryParsingTests {
    static func pairs(_ raw: String) -> [String] {
        QueryParameters(parsing: Array(raw.utf8)).map { "\($0.0)=\($0.1)" }
    }

    @Test func pairsNamesAndValues() {
        #expect(Self.pairs("q=swift&tag=a&tag=b") == ["q=swift", "tag=a", "tag=b"])
        #expect(Self.pairs("flag&x=1") == ["flag=", "x=1"])
        #expect(Self.pairs("a=1=2") == ["a=1=2"])
        #expect(Self.pairs("=v") == ["=v"])
    }

    @Test func emptyPairsAndTrailingAmpersand() {
        #expect(Self.pairs("a&&b") == ["a=", "=", "b="])
        #expect(Self.pairs("a=1&") == ["a=1"])
        #expect(Self.pairs("&") == ["="])
    }

    @Test func plusAndPercentDecoding() {
        #expect(Self.pairs("q=swift+nio%21&k%3D=v%26w") == ["q=swift nio!", "k==v&w"])
        #expect(Self.pairs("q=%E2%9C%93") == ["q=✓"])
        // A `%` without two hex digits stays as it is; `%2B` is a literal plus.
        #expect(Self.pairs("a=%zz&b=%4&c=100%&d=%2B") == ["a=%zz", "b=%4", "c=100%", "d=+"])
    }

    @Test func manyParameters() {
        let raw = (0..<5000).map { "p\($0)=\($0)" }.joined(separator: "&")
        let query = QueryParameters(parsing: Array(raw.utf8))
        #expect(query.count == 5000)
        #expect(query["p4999"] == "4999")
    }
}
