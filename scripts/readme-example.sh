#!/usr/bin/env bash
# Builds the README's complete library example as its own package that depends on this one
# (the way users consume MHDServers), so the example cannot drift from the API.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR="$ROOT/.build/readme-example"
rm -rf "$DIR/Sources"
mkdir -p "$DIR/Sources/Example"
# The first ```swift block after the <!-- readme-example --> marker.
awk '/<!-- readme-example -->/{found=1; next} found && /^```swift/{inside=1; next} inside && /^```/{exit} inside{print}' \
    README.md >"$DIR/Sources/Example/Example.swift"
[[ -s "$DIR/Sources/Example/Example.swift" ]] || { echo "no README example found" >&2; exit 1; }
cat >"$DIR/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Example",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "$ROOT"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(name: "Example", dependencies: [
            .product(name: "MHDServers", package: "$(basename "$ROOT")"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
SWIFT
swift build --package-path "$DIR" 2>&1 | tail -n 5
echo "README example builds against MHDServers"
