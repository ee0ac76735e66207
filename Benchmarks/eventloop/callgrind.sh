#!/usr/bin/env bash
# Instructions per request under valgrind's callgrind for the C reference, the demo app and the
# prototype with one loop: each server runs under callgrind with instrumentation off; for each route
# the counters are zeroed, instrumentation is switched on for one bounded wrk run (-t1 -c64), then
# dumped. Instructions (Ir, all threads of the process) / requests wrk reported.
#
#   Benchmarks/eventloop/callgrind.sh [DURATION]     (default 5 s per route)
#
# Needs Benchmarks/eventloop/bench.sh to have built the three servers (OUT as there). The
# app's release binary is linked with lld and callgrind's debug-info reader rejects it, so a
# copy without debug sections (objcopy --strip-debug) is run; the code is the same.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROTO=$ROOT/Benchmarks/eventloop
OUT=${OUT:-$PROTO/.build/results}
DURATION=${1:-5}
HOST=127.0.0.1
APP="$(cd "$ROOT" && swift build -c release --show-bin-path)/app"
LOOP="$(cd "$PROTO" && swift build -c release --show-bin-path)/loop-bench"
objcopy --strip-debug "$APP" "$OUT/app-nodebug"

PID=
cleanup() { [[ -z $PID ]] || { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; }
trap cleanup EXIT

measure() {  # NAME PORT ROUTES... (server already started as $PID)
    local name=$1 port=$2 route n out requests ir
    shift 2
    for ((n = 0; n < 300; n++)); do
        curl -fsS -o /dev/null --max-time 2 "http://$HOST:$port/api/hello" 2>/dev/null && break
        sleep 0.2
    done
    for route in "$@"; do
        wrk -t1 -c64 -d1s "http://$HOST:$port$route" >/dev/null 2>&1
        callgrind_control -z "$PID" >/dev/null 2>&1
        callgrind_control -i on "$PID" >/dev/null 2>&1
        out=$(wrk -t1 -c64 -d"${DURATION}s" "http://$HOST:$port$route")
        callgrind_control -i off "$PID" >/dev/null 2>&1
        rm -f "$OUT"/cg."$name".out.*
        callgrind_control -d "$PID" >/dev/null 2>&1
        sleep 1
        requests=$(awk '/requests in/ { print $1 }' <<<"$out")
        ir=$(awk '/^totals:/ { total += $2 } END { print total + 0 }' "$OUT"/cg."$name".out.*)
        printf '| %s | %s | %s | %s | %.0f |\n' "$name" "$route" "$requests" "$ir" "$(awk -v a="$ir" -v b="$requests" 'BEGIN { print a / b }')"
    done
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
}

echo "| target | route | requests | instructions | instructions/request |"
echo "|---|---|---:|---:|---:|"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.c.out" \
    "$OUT/reference" 18790 >"$OUT/cg-c.log" 2>&1 &
PID=$!
measure c 18790 /api/hello
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.app.out" \
    "$OUT/app-nodebug" --public-port 18791 --admin-port 18801 --bench-routes --no-request-ids \
    --log-level info --shutdown-timeout 10 >"$OUT/cg-app.log" 2>&1 &
PID=$!
measure app 18791 /api/hello /bench/async /bench/suspend
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.loop1.out" \
    "$LOOP" 18792 1 >"$OUT/cg-loop1.log" 2>&1 &
PID=$!
measure loop1 18792 /api/hello /bench/async /bench/suspend
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.loop1-susp.out" \
    "$LOOP" 18793 1 --suspend-always >"$OUT/cg-loop1-susp.log" 2>&1 &
PID=$!
measure loop1-susp 18793 /bench/async
