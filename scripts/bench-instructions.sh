#!/usr/bin/env bash
# Instructions per request: the plain-C libmicrohttpd server (Benchmarks/reference/reference.c)
# and the release demo app, each under valgrind's callgrind, which counts every instruction the
# server process executes instead of sampling time. Unlike req/s and CPU time on a shared
# machine, the counts repeat to within a few per cent from run to run, so they show what a
# change to the Swift layer costs or saves, however busy the machine is. They do not count the
# kernel (the same system calls for both servers: one recvfrom and one sendmsg per request),
# nor what an instruction costs (an atomic retain costs more than an add).
#
#   scripts/bench-instructions.sh [--duration SECONDS] [--markdown FILE] [--smoke]
#
#   --duration S     seconds of load per measurement (default 8; smoke 2)
#   --markdown FILE  also write the table as markdown to FILE
#   --smoke          CI mode: plain and async only, 2 s each
#
# Scenarios (wrk -t1 -c8 after a 2 s warm-up, callgrind's counters zeroed in between, so start-up
# is not counted; the app runs with --bench-routes --no-request-ids like scripts/bench.sh):
#   plain  GET /api/hello        C: the same route (wrk sends one header field, Host)
#   fields GET /api/hello        the same with the 9 fields a browser sends (Accept, User-Agent,
#                                Accept-Language, Accept-Encoding, Cookie, Referer, ...)
#   async  GET /bench/async      C: /api/hello (C has no async handler)
#   mw     GET /bench/middleware C: /api/hello (request ID + CORS middleware on the app)
#
# Columns: all instructions per request; the same without libc's memset (libmicrohttpd clears
# connection memory twice per request in both servers: about 49,000 counted instructions, since
# callgrind counts a repeated string store once per iteration, far above its cost in time);
# the server binary's own instructions (for the app: the Swift layer, Swift's runtime and the
# standard library, all linked in; for C: its ~100); libmicrohttpd's; libc's without memset. Needs valgrind (Debian: valgrind),
# wrk, curl, a C compiler, pkg-config and libmicrohttpd-dev. Build outputs go to
# .build/bench-instructions/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib.sh

DURATION=8
MARKDOWN=
SMOKE=0
while (($#)); do
    case "$1" in
        --duration) DURATION=${2:?--duration needs a value}; shift ;;
        --markdown) MARKDOWN=${2:?--markdown needs a file}; shift ;;
        --smoke) SMOKE=1; DURATION=2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-instructions: unknown argument $1" >&2; exit 64 ;;
    esac
    shift
done
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "bench-instructions: --duration must be a positive integer" >&2; exit 64; }
die() { echo "bench-instructions: $*" >&2; exit 1; }
for tool in valgrind callgrind_control callgrind_annotate wrk curl cc pkg-config objcopy; do
    command -v "$tool" >/dev/null || die "$tool is required (Debian: apt-get install valgrind wrk curl build-essential pkg-config binutils)"
done

OUT=$ROOT/.build/bench-instructions
mkdir -p "$OUT"
PID=
cleanup() { [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=; }
trap cleanup EXIT

echo "building the reference server (cc -O2) and the release app"
cc -O2 -o "$OUT/reference" Benchmarks/reference/reference.c $(pkg-config --cflags --libs libmicrohttpd)
swift build -c release --product app >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; die "the release build failed"; }
# valgrind cannot read the debug information lld writes for the release app; the code is the same.
objcopy --strip-debug "$(swift build -c release --show-bin-path)/app" "$OUT/app"

BROWSER=(-H "Accept: text/html,application/xhtml+xml,*/*;q=0.8" -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    -H "Accept-Language: en-US,en;q=0.5" -H "Accept-Encoding: gzip, deflate, br" -H "Connection: keep-alive"
    -H "Cookie: session=0123456789abcdef" -H "Referer: http://127.0.0.1/" -H "Cache-Control: no-cache")
# measure NAME PORT PATH FIELDS COMMAND...: prints "requests total no-memset app-binary engine libc"
# per request; FIELDS is "browser" for the browser's header fields, anything else for none.
measure() {
    local name=$1 port=$2 path=$3 fields=() n
    [[ $4 == browser ]] && fields=("${BROWSER[@]}")
    shift 4
    rm -f "$OUT/$name".callgrind*
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.callgrind" "$@" >"$OUT/$name.log" 2>&1 &
    PID=$!
    for ((n = 0; n < 300; n++)); do
        curl -fs -o /dev/null "http://127.0.0.1:$port$path" && break
        kill -0 "$PID" 2>/dev/null || { cat "$OUT/$name.log" >&2; die "$name did not start"; }
        sleep 0.2
    done
    ((n < 300)) || die "$name did not answer $path"
    wrk -t1 -c8 -d2s "${fields[@]}" "http://127.0.0.1:$port$path" >/dev/null
    callgrind_control -z "$PID" >/dev/null 2>&1
    local report requests
    report=$(wrk -t1 -c8 -d"${DURATION}s" "${fields[@]}" "http://127.0.0.1:$port$path")
    requests=$(awk '/requests in/ { print $1 }' <<<"$report")
    grep -q "Non-2xx\|Socket errors" <<<"$report" && { echo "$report" >&2; die "$name: wrk saw errors"; }
    callgrind_control -d "$PID" >/dev/null 2>&1
    cleanup
    local dump
    dump=$(ls -t "$OUT/$name".callgrind.* | head -1)
    callgrind_annotate --auto=no --threshold=100 "$dump" 2>/dev/null | awk -v r="$requests" -v bin="$(basename "$1")" '
        /^ *[0-9,]+ +\([ 0-9.]+%\) +.*\[.*\]$/ {
            gsub(",", "", $1); v = $1
            if ($0 ~ /clone\.S|start_thread/) next     # inclusive roots of every thread
            total += v
            if ($0 ~ /memset/) { memset += v; next }
            if ($NF ~ "/" bin "\\]$") own += v
            else if ($NF ~ /libmicrohttpd/) engine += v
            else if ($NF ~ /libc\.so/) libc += v
        }
        END { printf "%d %d %d %d %d %d\n", r, total / r, (total - memset) / r, own / r, engine / r, libc / r }'
}

SCENARIOS=("plain /api/hello /api/hello -" "async /bench/async /api/hello -" "fields /api/hello /api/hello browser"
    "mw /bench/middleware /api/hello -")
((SMOKE)) && SCENARIOS=("${SCENARIOS[@]:0:2}")
ROWS=()
printf '%-6s %-7s %9s %12s %12s %10s %8s %8s\n' scenario server requests "instr/req" "w/o memset" "own code" engine libc
for scenario in "${SCENARIOS[@]}"; do
    read -r name app_path c_path fields <<<"$scenario"
    port=$(free_port_run 2)
    [[ -n $port ]] || die "no free ports"
    read -r c_req c_all c_net c_own c_engine c_libc < <(measure "$name-c" "$port" "$c_path" "$fields" "$OUT/reference" "$port")
    read -r a_req a_all a_net a_own a_engine a_libc < <(measure "$name-app" "$port" "$app_path" "$fields" "$OUT/app" \
        --public-port "$port" --admin-port "$((port + 1))" --bench-routes --no-request-ids --log-level error)
    printf '%-6s %-7s %9d %12d %12d %10d %8d %8d\n' "$name" C "$c_req" "$c_all" "$c_net" "$c_own" "$c_engine" "$c_libc"
    printf '%-6s %-7s %9d %12d %12d %10d %8d %8d\n' "" app "$a_req" "$a_all" "$a_net" "$a_own" "$a_engine" "$a_libc"
    ratio=$(awk -v a="$a_all" -v c="$c_all" 'BEGIN { printf "%.2f", a / c }')
    net_ratio=$(awk -v a="$a_net" -v c="$c_net" 'BEGIN { printf "%.2f", a / c }')
    echo "       app/C: ${ratio}x all, ${net_ratio}x without memset"
    ROWS+=("| $name | $app_path | $c_all | $a_all | ${ratio}× | $c_net | $a_net | ${net_ratio}× | $a_own | $a_engine / $c_engine |")
done

if [[ -n $MARKDOWN ]]; then
    {
        echo "| scenario | app route | C instr/req | app instr/req | app/C | C w/o memset | app w/o memset | app/C | app's own code | engine (app / C) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        printf '%s\n' "${ROWS[@]}"
    } >"$MARKDOWN"
    echo "markdown written to $MARKDOWN"
fi
