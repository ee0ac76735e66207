#!/usr/bin/env bash
# Type-checks every Swift example of the documentation (README, DocC catalog, doc comments of
# public symbols) against the library as built, with the Swift 6 language mode. Messages point
# at the document and line of the example. Whole programs are built by readme-example.sh; the
# README's excerpts of the app and the examples (`// Excerpt of PATH`) are checked line by line
# against that code.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --target MHDServers >/dev/null
MODULES="$(swift build --show-bin-path)/Modules"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

python3 scripts/docs/examples.py "$WORK/examples.swift"
swiftc -typecheck -swift-version 6 -suppress-warnings -I "$MODULES" -I Sources/CMicroHTTPD \
    scripts/docs/prelude.swift "$WORK/examples.swift"
echo "doc examples: every example type-checks"
python3 scripts/docs/excerpts.py
