#!/usr/bin/env bash
# Renders the API documentation of MHDServers (the DocC catalog and the doc comments of public
# symbols) into the DocC archive .build/docs, with every DocC warning an error: an
# unresolved or ambiguous symbol link fails the run. Prints how many pages and symbols were
# rendered and how long it took. Serve the folder statically to read it, for example
# `python3 -m http.server -d .build/docs 8000`, then open /documentation/mhdservers.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.build/docs
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT"

start=$(date +%s%N)
status=0
swift package --allow-writing-to-directory "$OUT" \
    generate-documentation --target MHDServers --warnings-as-errors --output-path "$OUT" \
    >"$LOG" 2>&1 || status=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
# The build's progress lines are noise here; everything else (DocC's diagnostics) is shown.
grep -v '^\[[0-9]*/[0-9]*\] ' "$LOG" || true
if [ "$status" -ne 0 ]; then
    printf 'docs: FAILED after %d.%03d s (exit %d)\n' $((elapsed / 1000)) $((elapsed % 1000)) "$status" >&2
    exit "$status"
fi

if [ ! -d "$OUT/data/documentation" ]; then
    echo "docs: FAILED: no rendered pages under $OUT" >&2
    exit 1
fi
python3 - "$OUT/data/documentation" "$elapsed" <<'EOF'
import glob, json, os, sys

root, elapsed = sys.argv[1], int(sys.argv[2])
pages = symbols = articles = 0
for path in glob.glob(os.path.join(root, "**", "*.json"), recursive=True):
    with open(path) as f:
        kind = json.load(f).get("kind")
    pages += 1
    symbols += kind == "symbol"
    articles += kind == "article"
if pages == 0 or symbols == 0:
    sys.exit(f"docs: FAILED: {pages} pages, {symbols} symbols rendered")
print(f"docs: {pages} pages rendered ({symbols} symbols, {articles} articles and groups) "
      f"in {elapsed // 1000}.{elapsed % 1000:03d} s, no DocC warning")
EOF
echo "docs: archive in $OUT (serve it statically; pages under /documentation/mhdservers)"
