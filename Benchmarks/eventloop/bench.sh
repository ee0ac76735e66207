#!/usr/bin/env bash
# Interleaved CPU-per-request benchmark of the event-loop prototype (Benchmarks/eventloop)
# against the plain-C reference server and the demo app, with the method of scripts/bench.sh:
# release builds, wrk on 127.0.0.1, server CPU = utime+stime from /proc/PID/stat before and
# after each wrk run, divided by the requests wrk reported.
#
#   Benchmarks/eventloop/bench.sh [ROUNDS] [DURATION]     (defaults: 6 rounds, 4 s)
#
# Every run: a 1 s warm-up, then wrk -t1 -c64 -dDURATION. Each round runs every target+route
# once, in the same order (C, app, prototype variants), so slow phases of a shared machine hit
# all targets alike. Per-run rows go to OUT/runs.tsv, the summary (medians) to stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROTO=$ROOT/Benchmarks/eventloop
OUT=${OUT:-$PROTO/.build/results}
ROUNDS=${1:-6} DURATION=${2:-4}
HOST=127.0.0.1
mkdir -p "$OUT"

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

port_busy() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v hex="$hex" 'FNR > 1 { split($2, a, ":"); if (a[2] == hex && $4 != "06") found = 1 }
        END { exit found ? 0 : 1 }' /proc/net/tcp /proc/net/tcp6
}
NEXT_PORT=18700
free_port() {
    while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    PORT=$NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
}

echo "==> building: reference (cc -O2), app (swift build -c release --product app), prototype (swift build -c release)"
# shellcheck disable=SC2046
cc -O2 -o "$OUT/reference" "$ROOT/Benchmarks/reference/reference.c" $(pkg-config --cflags --libs libmicrohttpd)
(cd "$ROOT" && swift build -c release --product app) >"$OUT/app-build.log" 2>&1
(cd "$PROTO" && swift build -c release) >"$OUT/proto-build.log" 2>&1
APP="$(cd "$ROOT" && swift build -c release --show-bin-path)/app"
LOOP="$(cd "$PROTO" && swift build -c release --show-bin-path)/loop-bench"

declare -A PID_OF PORT_OF
# start NAME COMMAND...  (the command gets the port as its first argument via @PORT@)
start() {
    local name=$1 args=() a n
    shift
    free_port
    for a in "$@"; do args+=("${a//@PORT@/$PORT}"); done
    "${args[@]}" >"$OUT/$name.log" 2>&1 &
    PIDS+=("$!")
    PID_OF[$name]=$!
    PORT_OF[$name]=$PORT
    for ((n = 0; n < 100; n++)); do
        curl -fsS -o /dev/null --max-time 1 "http://$HOST:$PORT/api/hello" 2>/dev/null && return 0
        kill -0 "${PID_OF[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    cat "$OUT/$name.log" >&2
    echo "bench: $name did not start" >&2
    exit 1
}

start c "$OUT/reference" @PORT@
free_port; ADMIN=$PORT
start app "$APP" --public-port @PORT@ --admin-port "$ADMIN" --bench-routes --no-request-ids \
    --log-level info --shutdown-timeout 10
start loop1 "$LOOP" @PORT@ 1
start loop2 "$LOOP" @PORT@ 2
start loop1-susp "$LOOP" @PORT@ 1 --suspend-always
start loop2-susp "$LOOP" @PORT@ 2 --suspend-always
start loop2-rp "$LOOP" @PORT@ 2 --reuseport

# The runs of one round, in order: TARGET ROUTE.
PLAN=(
    "c /api/hello"
    "app /api/hello" "app /bench/async" "app /bench/suspend"
    "loop1 /api/hello" "loop1 /bench/async" "loop1 /bench/suspend"
    "loop2 /api/hello" "loop2 /bench/async" "loop2 /bench/suspend"
    "loop1-susp /bench/async" "loop2-susp /bench/async"
    "loop2-rp /api/hello" "loop2-rp /bench/async"
)

for entry in "${PLAN[@]}"; do
    read -r name route <<<"$entry"
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://$HOST:${PORT_OF[$name]}$route")
    [[ $code == 200 ]] || { echo "bench: $name $route answered $code" >&2; exit 1; }
done

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

RUNS=$OUT/runs.tsv
printf 'round\ttarget\troute\treq_per_s\trequests\tcpu_ticks\tcpu_us_per_req\n' >"$RUNS"
echo "==> $ROUNDS rounds x ${#PLAN[@]} runs (wrk -t1 -c64 -d${DURATION}s after a 1 s warm-up); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= ROUNDS; round++)); do
    for entry in "${PLAN[@]}"; do
        read -r name route <<<"$entry"
        url="http://$HOST:${PORT_OF[$name]}$route"
        pid=${PID_OF[$name]}
        wrk -t1 -c64 -d1s "$url" >/dev/null
        before=$(cpu_ticks "$pid")
        out=$(wrk -t1 -c64 -d"${DURATION}s" "$url")
        after=$(cpu_ticks "$pid")
        if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
            echo "bench: errors from $name $route:" >&2
            echo "$out" >&2
            exit 1
        fi
        requests=$(awk '/requests in/ { print $1 }' <<<"$out")
        rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
        us=$(awk -v t=$((after - before)) -v n="$requests" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$route" "$rps" "$requests" $((after - before)) "$us" >>"$RUNS"
        printf '  round %d  %-11s %-15s %9.0f req/s  %6.2f us/req\n' "$round" "$name" "$route" "$rps" "$us"
    done
done
echo "==> load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "==> medians (ratio: CPU per request / C's /api/hello CPU per request, both medians)"
awk -F'\t' '
    function median(list,   n, v, i, j, t) {
        n = split(list, v, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    NR > 1 {
        key = $2 " " $3
        if (!(key in rps)) order[++count] = key
        rps[key] = rps[key] " " $4
        us[key] = us[key] " " $7
    }
    END {
        base = median(us["c /api/hello"])
        printf "| target | route | median req/s | median CPU us/req | x C hello |\n|---|---|---:|---:|---:|\n"
        for (i = 1; i <= count; i++) {
            k = order[i]; split(k, p, " "); m = median(us[k])
            printf "| %s | %s | %.0f | %.2f | %.2f |\n", p[1], p[2], median(rps[k]), m, m / base
        }
    }' "$RUNS" | tee "$OUT/summary.md"
