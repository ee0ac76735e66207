#!/usr/bin/env bash
# Builds Examples/http-grpc and tests it end to end with real clients: Python grpcio and
# grpcio-health-checking (from PyPI, in a virtual environment under .build-grpc-venv/) for gRPC,
# urllib for HTTP, real signals. Needs protoc (Debian: protobuf-compiler) for the descriptor set
# the client reads the example's messages from, and python3 with venv (Debian: python3-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EXAMPLE=Examples/http-grpc

for tool in protoc python3; do
    command -v "$tool" >/dev/null || { echo "grpc-example-test: $tool is required" >&2; exit 2; }
done

echo "== building $EXAMPLE (a first build compiles grpc-swift, SwiftNIO and BoringSSL: minutes)"
swift build --package-path "$EXAMPLE" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\] (Compiling|Write|Emitting|Linking|Applying)' || true
BIN=$(swift build --package-path "$EXAMPLE" --show-bin-path)/http-grpc
[[ -x "$BIN" ]] || { echo "grpc-example-test: the example did not build" >&2; exit 1; }

VENV="$ROOT/.build-grpc-venv"
if ! "$VENV/bin/python" -c 'import grpc, grpc_health.v1.health_pb2, google.protobuf' 2>/dev/null; then
    echo "== installing grpcio and grpcio-health-checking into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check grpcio grpcio-health-checking protobuf
fi
"$VENV/bin/python" - <<'PY'
import grpc, google.protobuf
from importlib.metadata import version
print(f"== clients: grpcio {grpc.__version__}, grpcio-health-checking {version('grpcio-health-checking')}, protobuf {google.protobuf.__version__}")
PY

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
protoc --proto_path="$EXAMPLE/Protos" --include_imports --descriptor_set_out="$WORK/greeter.pb" greeter/v1/greeter.proto

echo "== HTTP + gRPC side by side"
"$VENV/bin/python" scripts/grpc-example-test.py "$BIN" "$WORK/greeter.pb"
