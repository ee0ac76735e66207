#!/usr/bin/env bash
# Regenerates Sources/http-grpc/Generated from Protos/ (the generated code is committed, so a
# build never needs protoc). Needs protoc (Debian: protobuf-compiler); builds the swift-protobuf
# and grpc-swift-protobuf plugins from this package's own dependencies.
set -euo pipefail
cd "$(dirname "$0")"
swift build -c release --product protoc-gen-swift
swift build -c release --product protoc-gen-grpc-swift-2
bin=$(swift build -c release --show-bin-path)
out=Sources/http-grpc/Generated
rm -f "$out"/*.swift
protoc --proto_path=Protos \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
  --swift_out="$out" --swift_opt=Visibility=Internal,FileNaming=PathToUnderscores \
  --grpc-swift-2_out="$out" --grpc-swift-2_opt=Visibility=Internal,Server=true,Client=false,FileNaming=PathToUnderscores \
  grpc/health/v1/health.proto greeter/v1/greeter.proto
ls "$out"
