// swift-tools-version:6.2
// hb-bench: the Hummingbird 2 comparison target for scripts/bench.sh --hummingbird.
// A standalone package (not part of MHDServers): its only dependency is Hummingbird.
import PackageDescription

let package = Package(
    name: "hb-bench",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hb-bench", targets: ["hb-bench"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1")
    ],
    targets: [
        .executableTarget(
            name: "hb-bench",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")]
        )
    ]
)
