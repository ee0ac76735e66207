#!/usr/bin/env bash
# Checks deploy/Dockerfile without a container engine: reproduces its build stage in a fresh
# folder (exactly the files its COPY lines name, .dockerignore applied, then its swift build),
# and checks its runtime stage (non-root USER, admin API on loopback unless a token protects it,
# every shared library of the binary provided by the runtime image) and the built app (--help,
# start on loopback, /healthz and /readyz on the public port, exit 0 on SIGTERM).
#
#   scripts/check-dockerfile.sh                # a clean release build: minutes
#   scripts/check-dockerfile.sh --no-build     # the copies and the runtime stage only: seconds
#   scripts/check-dockerfile.sh [--no-build] path/to/Dockerfile
#
# The build stage's apt-get lines are not run: libmicrohttpd-dev and pkg-config must be installed,
# as in CI. The runtime stage is judged against this machine's Debian packages, so it must run
# the release of the runtime image (bookworm). Without a Package.resolved it runs
# `swift package resolve` first, as a user does before `docker build`.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in swift python3 pkg-config ldd dpkg-query git; do
    command -v "$tool" >/dev/null || { echo "check-dockerfile: $tool is required" >&2; exit 2; }
done
pkg-config --exists libmicrohttpd || { echo "check-dockerfile: libmicrohttpd-dev is required" >&2; exit 2; }

exec python3 scripts/check-dockerfile.py "$@"
