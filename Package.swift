// swift-tools-version:6.0
import PackageDescription
#if canImport(Glibc)
import Glibc
#endif

/// How the demo app (and nothing else: the libraries' settings are untouched) is linked in
/// release builds on Linux, for a small resident footprint. Only touched pages count, but the
/// kernel maps a whole page-cache folio (often 64 KiB to 2 MiB) on a fault, so what matters is
/// how many places of the code and data a start touches. Each flag cuts them:
///
/// - `-static-stdlib`: the Swift runtime, Foundation and Dispatch are linked in, so the dynamic
///   loader does not relocate and symbol-search their shared libraries at every start. The app's
///   objects are compiled against the shared runtime's modules, which do not autolink the static
///   libraries' own helpers: `_FoundationCollections` and `_FoundationCShims` are named here.
/// - libstdc++ and libgcc linked in as well (the runtime uses a few dozen of their functions;
///   loading libstdc++.so costs about 1 MB): `Sources/app/link/libstdc++.so` is a one-line
///   linker script that turns the runtime's `-lstdc++` into `-l:libstdc++.a`.
/// - lld (shipped in the swift.org toolchains) with `--symbol-ordering-file=Sources/app/startup.order`:
///   the code that runs from start to idle, then the code the first requests add, is placed
///   together instead of across 11 MB. lld moves whole input sections, so the list names one
///   function per section. `scripts/startup-order.sh` regenerates it (its header says how and
///   when); a stale list costs footprint, never correctness. SwiftPM does not see the list as an
///   input of the link: after editing it by hand, delete `.build/release/app` to link again.
/// - `-z pack-relative-relocs`: the executable's relative relocations as a compact bitmap
///   (DT_RELR, glibc 2.36 and later) instead of 1 MB of table read at every start.
/// - `--no-export-dynamic`: with a static runtime nothing looks the app's symbols up, and the
///   exported table would be searched by every shared library's symbol lookups.
///
/// It is used where glibc is 2.36 or later (Debian 12, Ubuntu 24.04, Fedora 37 and later), which
/// DT_RELR needs; elsewhere the app is linked as before. Besides the toolchain it needs
/// libstdc++.a (Debian/Ubuntu: libstdc++-N-dev, which the toolchain needs anyway; Fedora:
/// libstdc++-static). Debug builds, tests and packages that depend on this one are not affected.
let appFootprintLink: [LinkerSetting] = {
    #if canImport(Glibc)
    var buffer = [UInt8](repeating: 0, count: 32)
    let length = buffer.withUnsafeMutableBytes {
        confstr(Int32(_CS_GNU_LIBC_VERSION), $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count)
    }
    // "glibc 2.36"
    let text = String(decoding: buffer.prefix(max(0, length - 1)), as: UTF8.self)
    let version = (text.split(separator: " ").last ?? "").split(separator: ".")
    guard version.count >= 2, let major = Int(version[0]), let minor = Int(version[1]),
        (major, minor) >= (2, 36)
    else { return [] }
    let app = "\(Context.packageDirectory)/Sources/app"
    return [
        .unsafeFlags(
            [
                "-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims",
                "-L\(app)/link", "-Xclang-linker", "-static-libgcc",
                "-use-ld=lld",
                "-Xlinker", "--symbol-ordering-file=\(app)/startup.order", "-Xlinker", "--no-warn-symbol-ordering",
                "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                "-Xlinker", "--no-export-dynamic",
            ], .when(platforms: [.linux], configuration: .release))
    ]
    #else
    return []
    #endif
}()

let package = Package(
    name: "MHDServers",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MHDServers", targets: ["MHDServers"]),
        .library(name: "MHDServersOpenAPI", targets: ["MHDServersOpenAPI"]),
        .library(name: "MHDServersTesting", targets: ["MHDServersTesting"]),
        .executable(name: "app", targets: ["app"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"]), .brew(["libmicrohttpd"])]
        ),
        .target(
            name: "MHDServers",
            dependencies: [
                "CMicroHTTPD",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(
            name: "MHDServersOpenAPI",
            dependencies: [
                "MHDServers",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(
            name: "MHDServersTesting",
            dependencies: [
                "MHDServers",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "app",
            dependencies: [
                "MHDServers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            exclude: ["startup.order", "link"],
            linkerSettings: appFootprintLink
        ),
        .testTarget(
            name: "MHDServersTests",
            dependencies: [
                "MHDServers",
                "MHDServersTesting",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
        .testTarget(
            name: "MHDServersOpenAPITests",
            dependencies: [
                "MHDServers",
                "MHDServersOpenAPI",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
