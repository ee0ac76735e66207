// swift-tools-version:6.0
import PackageDescription

// A standalone prototype: Swift-owned event-loop threads that drive libmicrohttpd in external
// epoll mode and double as Swift task executors. See RESULTS.md.
let package = Package(
    name: "loop-bench",
    products: [
        .executable(name: "loop-bench", targets: ["loop-bench"])
    ],
    targets: [
        .systemLibrary(
            name: "CMHDLoop",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"]), .brew(["libmicrohttpd"])]
        ),
        .executableTarget(
            name: "loop-bench",
            dependencies: ["CMHDLoop"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
