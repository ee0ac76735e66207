#!/usr/bin/env bash
# Every test: unit tests (Swift Testing, real daemons on loopback), the end-to-end tests of the
# demo app (real process, real signals), and a smoke run of the benchmark so it cannot rot.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== unit tests"
swift test

echo
echo "== README library example (built as a dependent package)"
scripts/readme-example.sh

echo
echo "== integration tests"
scripts/integration-test.sh

if [[ -x scripts/bench.sh ]]; then
    echo
    echo "== benchmark smoke run"
    scripts/bench.sh --smoke
fi
