#!/usr/bin/env bash
# Every test: unit tests (Swift Testing, real daemons on loopback), the documentation's examples
# type-checked, the README's library example built as a dependent package, the end-to-end tests
# of the demo app (real process, real signals), runtime control under load, the HTTP + gRPC example against grpcio, and smoke runs of the benchmarks (req/s and CPU, and instructions per request) so they cannot rot. In CI (CI=true), or with
# --sanitizers, the unit tests also run under ThreadSanitizer and AddressSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."

SANITIZERS=0
if [[ "${CI:-}" == true || "${1:-}" == --sanitizers ]]; then SANITIZERS=1; fi

echo "== unit tests"
swift test

echo
echo "== stress tests that keep both cores busy, on their own (busy streams cut at the drain deadline)"
MHDSERVERS_STRESS=1 swift test --skip-build --filter SuspensionRaceTests

echo
echo "== documentation examples (README, DocC, doc comments) type-check"
scripts/doc-examples.sh

echo
echo "== README library example (built as a dependent package)"
scripts/readme-example.sh

echo
echo "== integration tests"
scripts/integration-test.sh

echo
echo "== runtime control under load: restart, certificate reload (SIGHUP), binary upgrade (SIGUSR2)"
scripts/runtime-control-test.sh

echo
echo "== every response of the demo app through a strict HTTP/1.1 parser (h11)"
H11_PYTHON=
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c "import h11" 2>/dev/null; then H11_PYTHON=$candidate; break; fi
done
[[ -n "$H11_PYTHON" ]] || { echo "test: h11 is required (apt-get install python3-h11)" >&2; exit 2; }
"$H11_PYTHON" scripts/strict-http.py "$(swift build --show-bin-path)/app"

echo
echo "== HTTP + gRPC example (Examples/http-grpc) end to end, with grpcio as the client"
scripts/grpc-example-test.sh

echo
echo "== deploy files checked by the real tools"
scripts/check-systemd.sh
scripts/check-kubernetes.sh
scripts/check-dockerfile.sh

echo
echo "== API documentation (DocC, warnings as errors)"
scripts/docs.sh

echo
echo "== benchmark smoke run"
scripts/bench.sh --smoke

echo
echo "== instructions per request under callgrind, C and the app (smoke: plain and async)"
scripts/bench-instructions.sh --smoke

if ((SANITIZERS)); then
    echo
    echo "== unit tests under ThreadSanitizer"
    swift test --sanitize=thread --scratch-path .build-tsan
    MHDSERVERS_STRESS=1 swift test --sanitize=thread --scratch-path .build-tsan --skip-build --filter SuspensionRaceTests
    echo
    echo "== unit tests under AddressSanitizer and LeakSanitizer"
    LSAN_OPTIONS="suppressions=$PWD/Tests/lsan-suppressions.txt" \
        swift test --sanitize=address --scratch-path .build-asan
fi
