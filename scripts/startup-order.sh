#!/usr/bin/env bash
# Regenerates Sources/app/startup.order, the order lld places code in when it links the release
# demo app on Linux (appFootprintLink in Package.swift): the code that runs while the app starts
# and idles comes first, then the code its requests add, so the pages they touch are next to
# each other instead of spread over the binary's 11 MB of code.
#
#   scripts/startup-order.sh                   # writes Sources/app/startup.order (a minute or so)
#   scripts/startup-order.sh --every-function  # every function that ran, not one per section
#   scripts/startup-order.sh --out FILE        # writes FILE instead
#   KEEP_WORK=1 scripts/startup-order.sh       # keeps the callgrind dumps, link map and log
#
# What it runs: `swift build -c release --product app` (with a link map), then that binary, debug
# info stripped, under `valgrind --tool=callgrind --demangle=no`, on ephemeral ports of
# 127.0.0.1, twice: with the default options, then with --bench-routes (what scripts/bench.sh
# starts for its idle RSS). Callgrind records every function that runs, not a sample.
# `callgrind_control -d` dumps what ran from the start to 2 s after the app logs "ready", then
# what the load added: three rounds of curl requests (one keep-alive connection per command
# line) to every route: /api/hello, /api/status, /healthz, /readyz, a 404, the admin
# /admin/metrics (text and JSON), /admin/config and /admin/events, and in the second run the
# /bench routes. The list keeps the binary's own functions (callgrind's `ob=`), both starts
# first, then what the requests added, each once, and only names `nm --defined-only` shows
# exactly once (a name defined in several objects, a static C++ function say, would drag them
# all). lld moves whole input sections and most Swift objects
# (the standard library's, Foundation's, this package's) keep most functions in one .text, so
# only the first name of each section is written: the binary is byte for byte the one the
# --every-function list gives, from about a third of the names. A list from the default start
# and the hot routes alone was barely shorter (1203 names, not 1400) and left 1.3 MiB more
# resident in the benchmark's --bench-routes start, for the same idle RSS without it.
#
# Needs: Linux with glibc >= 2.36 (where Package.swift uses the footprint link), valgrind
# (Debian: `valgrind`, with callgrind_control, a Perl script), curl, binutils (nm, objcopy,
# readelf), python3, libmicrohttpd-dev and the toolchain's lld.
#
# When to rerun: after a toolchain or dependency update, or a change to what the app does at
# start or per request (servers, middleware, routes on the hot path), and whenever the release
# app's idle RSS creeps up. A stale list never breaks the build or the app (names that no longer
# exist are skipped): it only costs footprint. Commit the new list with the idle RSS before and
# after. The script deletes the built app: SwiftPM does not see the list as an input of the link.
set -euo pipefail
cd "$(dirname "$0")/.."

out=Sources/app/startup.order
every=0
while [ $# -gt 0 ]; do
    case "$1" in
        --every-function) every=1 ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "startup-order: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

for tool in swift valgrind callgrind_control curl nm objcopy readelf python3; do
    command -v "$tool" >/dev/null || { echo "startup-order: $tool is required" >&2; exit 2; }
done

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "startup-order: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The link map tells which input section holds each function (see the end).
swift build -c release --product app -Xlinker "-Map=$work/app.map" -Xlinker --no-demangle
bin="$(swift build -c release --show-bin-path)/app"
if readelf -d "$bin" | grep -q 'libswiftCore'; then
    echo "startup-order: the app loads the shared Swift runtime: the footprint link needs glibc >= 2.36" >&2
    exit 2
fi

# Without debug info valgrind starts in seconds; the symbol table, which names the functions, stays.
objcopy --strip-debug "$bin" "$work/app"
nm --defined-only "$work/app" | awk '{ print $NF }' | sort | uniq -u >"$work/unique-names"

# profile NAME [app options]: runs the app under callgrind, writes NAME.start and NAME.requests.
profile() {
    local name=$1; shift
    local log="$work/$name.log"
    valgrind --tool=callgrind --demangle=no --dump-instr=no --dump-line=no \
        --callgrind-out-file="$work/$name.cg.%p" \
        "$work/app" --public-port 0 --admin-port 0 "$@" >"$log" 2>&1 &
    pid=$!
    local i
    for i in $(seq 600); do
        grep -q "ready:" "$log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "startup-order: the app exited" >&2; exit 1; }
        sleep 0.1
    done
    grep -q "ready:" "$log" || { cat "$log" >&2; echo "startup-order: the app did not get ready" >&2; exit 1; }
    local public admin
    public=$(sed -n 's|.*public listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
    admin=$(sed -n 's|.*admin listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
    sleep 2
    callgrind_control -d "$pid" >/dev/null 2>&1
    local p="http://127.0.0.1:$public" a="http://127.0.0.1:$admin"
    get() { curl -s -m 60 "$@" >/dev/null; }
    for i in 1 2 3; do
        get "$p/api/hello" "$p/api/status" "$p/healthz" "$p/readyz"
        get "$a/admin/metrics" "$a/admin/config"
        get -H 'Accept: application/json' "$a/admin/metrics"
        get "$p/missing" "$a/healthz"
        get -N -m 2 "$a/admin/events" || true  # an event stream: curl ends it
        if [ "$name" = bench ]; then
            get "$p/bench/async" "$p/bench/suspend" "$p/bench/middleware" "$p/bench/file" "$p/bench/stream?bytes=65536"
            get -H 'Range: bytes=0-99' "$p/bench/file"
            get -H 'Content-Type: application/json' --data '{"name":"x","count":1}' "$p/bench/echo"
            get -H 'Content-Type: application/json' --data '{"name":"x","count":1}' "$p/bench/json"
            head -c 100000 /dev/zero | get -H 'Content-Type: application/octet-stream' --data-binary @- "$p/bench/upload"
        fi
    done
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill -TERM "$pid"
    wait "$pid" || { cat "$log" >&2; echo "startup-order: the app did not exit 0 on SIGTERM" >&2; exit 1; }
    pid=
    # Dumps .1 (start and idle) and .2 (requests); the last one, written at exit, is the shutdown.
    local files=("$work/$name".cg.*)
    mv "$(printf '%s\n' "${files[@]}" | grep '\.1$')" "$work/$name.start"
    mv "$(printf '%s\n' "${files[@]}" | grep '\.2$')" "$work/$name.requests"
}

profile default
profile bench --bench-routes
phases=("$work/default.start" "$work/bench.start" "$work/default.requests" "$work/bench.requests")

python3 - "$work/app" "$work/unique-names" "$work/app.map" "$every" "$out" "${phases[@]}" <<'EOF'
import re, sys

binary, unique_file, map_file, every, out, *dumps = sys.argv[1:]
unique = set(open(unique_file).read().split())
seen, order = set(), []
# fn=(12) name names function 12 the first time (cfn=, a callee, may do it first), fn=(12) after.
spec = re.compile(r"^(c?)(ob|fn)=(?:\((\d+)\))?\s*(.*)$")
for dump in dumps:
    objects, functions = {}, {}
    current_object = None
    for line in open(dump, errors="replace"):
        m = spec.match(line.rstrip("\n"))
        if not m:
            continue
        callee, kind, ident, text = m.groups()
        table = objects if kind == "ob" else functions
        if ident is not None and text:
            table[ident] = text
        if callee:
            continue
        value = table.get(ident, text) if ident is not None else text
        if kind == "ob":
            current_object = value
        elif current_object == binary:
            name = re.sub(r"'\d+$", "", value)  # callgrind marks recursion levels as name'2
            if name in unique and name not in seen:
                seen.add(name)
                order.append(name)
functions = len(order)

# lld places whole input sections: a section goes where the first of its names in the list says.
# The C and C++ runtime has a section per function, but most Swift objects (the standard
# library's, Foundation's, this package's and its dependencies') put most of their functions in
# one .text section. The first name of each section places it exactly as the whole list would.
if every != "1":
    section_of, section = {}, None
    for line in open(map_file):
        # lld's map: VMA LMA Size Align, then the output section, an input section (8 more
        # spaces) or a symbol (16 more spaces).
        rest = line[49:].rstrip("\n")
        indent = len(rest) - len(rest.lstrip(" "))
        if indent == 0:
            section = None
        elif indent == 8:
            section = rest.strip()
        elif indent == 16 and section is not None:
            section_of.setdefault(rest.strip(), section)
    if not any(name in section_of for name in order):
        sys.exit("startup-order: no function found in the link map (has lld's -Map format changed?)")
    placed, kept = set(), []
    for name in order:
        key = section_of.get(name, name)
        if key not in placed:
            placed.add(key)
            kept.append(name)
    order = kept

with open(out, "w") as f:
    f.write("".join(name + "\n" for name in order))
print(f"startup-order: {functions} functions ran, {len(order)} names written to {out}")
EOF
# SwiftPM does not know the list is an input of the link: without the binary it links again.
rm -f "$bin"
echo "startup-order: now 'swift build -c release --product app' links the app with it; measure the idle RSS"
