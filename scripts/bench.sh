#!/usr/bin/env bash
# Side-by-side benchmark: a plain-C libmicrohttpd server (Benchmarks/reference/reference.c)
# against the Swift demo app, both on 127.0.0.1 with the same engine settings.
#
#   scripts/bench.sh [--smoke] [--rounds N] [--duration SECONDS] [--markdown FILE] [--strict] [--hummingbird]
#
#   --smoke          CI mode: 1 round x 2 s (stream/file/upload: 1 s), smaller counts; targets shown, not checked
#   --rounds N       interleaved rounds per scenario (default 5, smoke 1)
#   --duration S     seconds per wrk run (default 10, smoke 2)
#   --markdown FILE  also write the results as markdown to FILE
#   --strict         exit 1 when a target is missed (full mode)
#   --hummingbird    also build and measure Benchmarks/hummingbird/hb-bench (Hummingbird 2)
#
# Scenarios (wrk -t2 -c64 --latency, a short warm-up first, runs interleaved C, Swift, C, ...):
#   plain  GET /api/hello     constant response, inline handler
#   async  GET /bench/async   Swift: async handler (suspend/resume + Task); C: answered inline
#   echo   POST /bench/echo   1 KiB JSON body, copied back by both servers (the body path)
#   (mw     GET /bench/middleware on the app: request ID + CORS, against C's /api/hello)
# Big-body scenarios (wrk -t2 -c8: 64 connections x 1 MiB only fill loopback socket buffers, see
# BENCHMARKS.md), reported also as MB/s (10^6 bytes/s = req/s x body size):
#   stream GET /bench/stream    1 MiB chunked, made in 64 KiB pieces (Swift task; C: the engine's
#                               content-reader callback)
#   file   GET /bench/file      a 1 MiB file sent from a descriptor (skipped, with a note, when the
#                               app answers 404 for it)
#   upload POST /bench/upload   a 1 MiB body, counted as it arrives, answered {"bytes":N}
# After the stream rounds the app also sends one 256 MiB stream; the app's peak RSS over the
# stream scenario (VmHWM, reset before it) must stay within 16 MB of its RSS before it.
# Each run also reports server CPU per request: utime+stime of the server process from
# /proc/PID/stat before and after the wrk run, divided by the requests wrk reported.
# With --hummingbird a third target, a Hummingbird 2 server with the same routes and bodies,
# joins the rounds (C, Swift, Hummingbird, C, ...); it has no mw route, so it skips mw.
# Plus: idle RSS of the 2-server app, RSS growth over ~1M /api/hello requests (smoke: 50k),
# RSS per extra server (--extra-servers 100), time until "ready: 102 servers listening",
# and SIGTERM -> exit with idle servers.
#
# Exits non-zero when a server fails to start or stop cleanly, a check request fails, or wrk
# reports errors (socket errors or non-2xx responses). Build outputs go to .build/bench/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/.build/bench
HOST=127.0.0.1

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

MODE=full ROUNDS= DURATION= MARKDOWN= STRICT=0 HUMMINGBIRD=0
COMMAND_LINE="scripts/bench.sh${*:+ $*}"
while [[ $# -gt 0 ]]; do
    case $1 in
        --smoke) MODE=smoke ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift ;;
        --duration) DURATION=${2:?--duration needs a value}; shift ;;
        --markdown) MARKDOWN=${2:?--markdown needs a file}; shift ;;
        --strict) STRICT=1 ;;
        --hummingbird) HUMMINGBIRD=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 64 ;;
    esac
    shift
done
# The big-body scenarios (stream, file, upload) run 1 s rounds in smoke mode unless --duration
# says otherwise, and use BIG_CONNECTIONS connections.
if [[ $MODE == smoke ]]; then
    BIG_DURATION=${DURATION:-1}
    ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2} GROWTH_TARGET=50000 FOOTPRINT_RUNS=2
else
    ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-10} GROWTH_TARGET=1000000 FOOTPRINT_RUNS=5
    BIG_DURATION=$DURATION
fi
WARMUP=1 THREADS=2 CONNECTIONS=64 EXTRA=100
BIG_CONNECTIONS=8 BIG_BYTES=$((1 << 20)) BIG_STREAM_BYTES=$((256 << 20)) STREAM_RSS_BOUND_MB=16
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench: --rounds must be a positive integer" >&2; exit 64; }
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "bench: --duration must be a positive integer" >&2; exit 64; }
[[ -z $MARKDOWN || $MARKDOWN == /* ]] || MARKDOWN=$PWD/$MARKDOWN

die() { echo "bench: error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# ---------------------------------------------------------------- processes and cleanup
PIDS=()      # every background process this script started
cleanup() {
    local pid n
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((n = 0; n < 50; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget() { local pid=$1 kept=() p; for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done; PIDS=("${kept[@]}"); }

# Sends SIGTERM, waits (at most 20 s) and sets STOP_RC to the exit status.
stop_process() {
    local pid=$1 n
    kill -TERM "$pid" 2>/dev/null || true
    for ((n = 0; n < 200; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    STOP_RC=0
    wait "$pid" || STOP_RC=$?
    forget "$pid"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# ---------------------------------------------------------------- ports
# A port is taken when any TCP socket other than a TIME_WAIT one has it as its local port.
port_busy() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v hex="$hex" 'FNR > 1 { split($2, a, ":"); if (a[2] == hex && $4 != "06") found = 1 }
        END { exit found ? 0 : 1 }' /proc/net/tcp /proc/net/tcp6
}
CHOSEN=" "
# free_port BASE: sets PORT to the first free port >= BASE not handed out before.
free_port() {
    local p
    for ((p = $1; p < $1 + 1000; p++)); do
        [[ $CHOSEN == *" $p "* ]] && continue
        port_busy "$p" && continue
        CHOSEN+="$p "
        PORT=$p
        return 0
    done
    die "no free port from $1 to $(($1 + 999))"
}

# ---------------------------------------------------------------- prerequisites and build
need() { command -v "$1" >/dev/null || die "$1 is not installed ($2)"; }
need wrk "install it with: sudo apt-get install wrk"
need curl "sudo apt-get install curl"
need cc "sudo apt-get install build-essential"
need pkg-config "sudo apt-get install pkg-config"
need swift "see https://swift.org/install"
pkg-config --exists libmicrohttpd || die "libmicrohttpd not found by pkg-config (sudo apt-get install libmicrohttpd-dev)"
[[ -r /proc/self/status ]] || die "needs Linux /proc"
CLK_TCK=$(getconf CLK_TCK) || die "getconf CLK_TCK failed"
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || die "unexpected CLK_TCK '$CLK_TCK'"

mkdir -p "$OUT"
say "building the reference server and the timing helper (cc -O2)"
# shellcheck disable=SC2046 # pkg-config output is meant to be split
cc -O2 -o "$OUT/reference" "$ROOT/Benchmarks/reference/reference.c" $(pkg-config --cflags --libs libmicrohttpd) \
    || die "cannot build the reference server"
cc -O2 -o "$OUT/launch" "$ROOT/scripts/bench/launch.c" || die "cannot build scripts/bench/launch.c"
say "building the app (swift build -c release --product app; log: .build/bench/build.log)"
(cd "$ROOT" && swift build -c release --product app) >"$OUT/build.log" 2>&1 \
    || { tail -n 30 "$OUT/build.log" >&2; die "swift build failed"; }
APP="$(cd "$ROOT" && swift build -c release --show-bin-path)/app"
REF=$OUT/reference
[[ -x $APP ]] || die "no app binary at $APP"
TARGETS=(reference app)
if ((HUMMINGBIRD)); then
    HB_PACKAGE=$ROOT/Benchmarks/hummingbird/hb-bench
    HB_SCRATCH=$OUT/hummingbird
    say "building the Hummingbird target (swift build -c release; log: .build/bench/hummingbird-build.log)"
    swift build -c release --package-path "$HB_PACKAGE" --scratch-path "$HB_SCRATCH" >"$OUT/hummingbird-build.log" 2>&1 \
        || { tail -n 30 "$OUT/hummingbird-build.log" >&2; die "swift build of Benchmarks/hummingbird/hb-bench failed"; }
    HB="$(swift build -c release --package-path "$HB_PACKAGE" --scratch-path "$HB_SCRATCH" --show-bin-path)/hb-bench"
    [[ -x $HB ]] || die "no hb-bench binary at $HB"
    TARGETS+=(hummingbird)
fi

SECONDS=0
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- footprint, startup, shutdown
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# launch_once EXTRA: one start/stop of the app through scripts/bench/launch.c; sets L_READY,
# L_RSS, L_STOP (ms, kB, ms). The app must exit 0 after SIGTERM.
launch_once() {
    local extra=$1 servers=$(($1 + 2)) public admin line log
    free_port 18500; public=$PORT
    free_port 18520; admin=$PORT
    log=$OUT/launch-$servers.log
    line=$("$OUT/launch" "$log" "ready: $servers servers listening" 500 -- "$APP" \
        --public-port "$public" --admin-port "$admin" --bench-routes --extra-servers "$extra" \
        --log-level info --shutdown-timeout 10) || { tail -n 20 "$log" >&2; die "the app with $servers servers did not start"; }
    CHOSEN=" "
    [[ $line =~ ready_ms=([0-9.]+)\ rss_kb=([0-9-]+)\ stop_ms=([0-9.]+)\ status=([0-9]+) ]] \
        || die "unexpected output from launch: $line"
    L_READY=${BASH_REMATCH[1]} L_RSS=${BASH_REMATCH[2]} L_STOP=${BASH_REMATCH[3]}
    [[ ${BASH_REMATCH[4]} == 0 ]] || { tail -n 20 "$log" >&2; die "the app with $servers servers exited ${BASH_REMATCH[4]} after SIGTERM"; }
}

say "footprint: $FOOTPRINT_RUNS starts of the 2-server app and of the $((EXTRA + 2))-server app"
r2=() s2=() t2=() r102=() s102=() t102=()
for ((i = 0; i < FOOTPRINT_RUNS; i++)); do
    launch_once 0; r2+=("$L_RSS") s2+=("$L_STOP") t2+=("$L_READY")
    launch_once "$EXTRA"; r102+=("$L_RSS") s102+=("$L_STOP") t102+=("$L_READY")
done
IDLE_RSS=$(median "${r2[@]}") RSS102=$(median "${r102[@]}")
fixed() { printf "%.${2:-1}f" "$1"; }
READY2=$(fixed "$(median "${t2[@]}")") READY102=$(fixed "$(median "${t102[@]}")")
STOP2=$(fixed "$(median "${s2[@]}")") STOP102=$(fixed "$(median "${s102[@]}")")
PER_SERVER_KB=$(awk -v a="$RSS102" -v b="$IDLE_RSS" -v n="$EXTRA" 'BEGIN { printf "%.1f", (a - b) / n }')

# ---------------------------------------------------------------- start both servers
# wait_until_answering PID LOG URL [PATTERN]
wait_until_answering() {
    local pid=$1 log=$2 url=$3 pattern=${4:-} n
    for ((n = 0; n < 300; n++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$(basename "$log" .log) exited during start"; }
        if [[ -z $pattern ]] || grep -q "$pattern" "$log"; then
            curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "$(basename "$log" .log) did not answer $url within 30 s"
}

REF_PORT=
for attempt in 1 2 3; do
    free_port 18400; port=$PORT
    : >"$OUT/reference.log"
    "$REF" "$port" >"$OUT/reference.log" 2>&1 &
    REF_PID=$!
    PIDS+=("$REF_PID")
    sleep 0.2
    if kill -0 "$REF_PID" 2>/dev/null; then REF_PORT=$port; break; fi
    wait "$REF_PID" || true
    forget "$REF_PID"
done
[[ -n $REF_PORT ]] || { cat "$OUT/reference.log" >&2; die "the reference server failed to start"; }
wait_until_answering "$REF_PID" "$OUT/reference.log" "http://$HOST:$REF_PORT/api/hello"

free_port 18410; public=$PORT
free_port 18430; admin=$PORT
: >"$OUT/app.log"    # exists before the background process opens it
# Without the demo's request IDs, so plain/async/echo measure the library's bare path; the mw
# scenario measures an inline middleware chain (request ID + CORS) on its own route.
"$APP" --public-port "$public" --admin-port "$admin" --bench-routes --no-request-ids \
    --log-level info --shutdown-timeout 10 >"$OUT/app.log" 2>&1 &
APP_PID=$!
PIDS+=("$APP_PID")
for ((n = 0; n < 300; n++)); do
    grep -q "ready: 2 servers listening" "$OUT/app.log" && break
    kill -0 "$APP_PID" 2>/dev/null || { tail -n 20 "$OUT/app.log" >&2; die "the app exited during start"; }
    sleep 0.1
done
APP_PORT=$(sed -n 's|.*public listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$OUT/app.log" | head -n 1)
[[ -n $APP_PORT ]] || { tail -n 20 "$OUT/app.log" >&2; die "the app did not report its public port"; }
wait_until_answering "$APP_PID" "$OUT/app.log" "http://$HOST:$APP_PORT/api/hello"
REF_IDLE_RSS=$(rss_kb "$REF_PID")
say "reference (pid $REF_PID) on $HOST:$REF_PORT, app (pid $APP_PID) on $HOST:$APP_PORT"

HB_PID= HB_PORT=
if ((HUMMINGBIRD)); then
    free_port 18450; HB_PORT=$PORT
    : >"$OUT/hummingbird.log"
    "$HB" "$HB_PORT" >"$OUT/hummingbird.log" 2>&1 &
    HB_PID=$!
    PIDS+=("$HB_PID")
    wait_until_answering "$HB_PID" "$OUT/hummingbird.log" "http://$HOST:$HB_PORT/api/hello" "listening on"
    HB_IDLE_RSS=$(rss_kb "$HB_PID")
    say "hummingbird (pid $HB_PID) on $HOST:$HB_PORT"
fi

# ---------------------------------------------------------------- correctness checks
PAYLOAD_PREFIX='{"id":12345,"name":"benchmark","tags":["alpha","beta","gamma","delta"],"payload":"'
PAYLOAD=$(head -c $((1024 - ${#PAYLOAD_PREFIX} - 2)) /dev/zero | tr '\0' 'x')
BODY="$PAYLOAD_PREFIX$PAYLOAD\"}"
cat >"$OUT/echo.lua" <<EOF
-- generated by scripts/bench.sh: POST /bench/echo with a ${#BODY}-byte JSON body
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$BODY'
EOF
cat >"$OUT/upload.lua" <<EOF
-- generated by scripts/bench.sh: POST /bench/upload with a $BIG_BYTES-byte body
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("a", $BIG_BYTES)
EOF
head -c "$BIG_BYTES" /dev/zero | tr '\0' 'a' >"$OUT/upload.bin"
HELLO='{"message":"Hello from the public server!"}'

# check NAME URL EXPECTED [curl args...]: 200, application/json, and a body containing EXPECTED
# (the Swift encoder may order keys differently, so for the echo only the payload is compared).
check() {
    local name=$1 url=$2 expected=$3 got
    shift 3
    got=$(curl -sS --max-time 5 -o "$OUT/check.body" -w '%{http_code} %{content_type}' "$@" "$url") \
        || die "$name: request to $url failed"
    [[ $got == "200 application/json"* ]] || die "$name: $url answered '$got'"
    grep -qF "$expected" "$OUT/check.body" || die "$name: unexpected body from $url: $(head -c 200 "$OUT/check.body")"
}
# check_bytes NAME URL SIZE HEADER: 200 with a SIZE-byte body and the response header HEADER
# (an extended regular expression for the whole line, matched case-insensitively).
check_bytes() {
    local name=$1 url=$2 size=$3 header=$4 got
    got=$(curl -sS --max-time 30 -D "$OUT/check.headers" -o "$OUT/check.body" -w '%{http_code} %{size_download}' "$url") \
        || die "$name: request to $url failed"
    [[ $got == "200 $size" ]] || die "$name: $url answered '$got' (status, bytes), expected '200 $size'"
    tr -d '\r' <"$OUT/check.headers" | grep -qiE "^$header\$" || die "$name: no '$header' in the answer from $url"
}
# GET /bench/file on the app: the route may not exist yet (it comes with file responses).
FILE_SKIP=
file_status=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$HOST:$APP_PORT/bench/file") \
    || die "app: request to /bench/file failed"
[[ $file_status == 404 ]] && FILE_SKIP="the app answers 404 for GET /bench/file (no file route in this build)"
for target in "${TARGETS[@]}"; do
    case $target in reference) port=$REF_PORT ;; app) port=$APP_PORT ;; hummingbird) port=$HB_PORT ;; esac
    base="http://$HOST:$port"
    check "$target" "$base/api/hello" "$HELLO"
    check "$target" "$base/bench/async" "$HELLO"
    [[ $target == app ]] && check "$target" "$base/bench/middleware" "$HELLO"
    check "$target" "$base/bench/echo" "\"payload\":\"$PAYLOAD\"" -X POST -H 'Content-Type: application/json' --data-binary "$BODY"
    [[ $target == hummingbird ]] && continue   # no stream, file or upload routes
    check_bytes "$target" "$base/bench/stream" "$BIG_BYTES" 'transfer-encoding: *chunked'
    [[ $(tr -d a <"$OUT/check.body" | wc -c) == 0 ]] || die "$target: /bench/stream sent bytes other than 'a'"
    check_bytes "$target" "$base/bench/stream?bytes=100000" 100000 'transfer-encoding: *chunked'
    if [[ $target == reference || -z $FILE_SKIP ]]; then
        check_bytes "$target" "$base/bench/file" "$BIG_BYTES" "content-length: *$BIG_BYTES"
    fi
    check "$target" "$base/bench/upload" "{\"bytes\":$BIG_BYTES}" -X POST -H 'Content-Type: application/octet-stream' \
        --data-binary "@$OUT/upload.bin"
done
[[ -n $FILE_SKIP ]] && say "file: skipped: $FILE_SKIP"

# ---------------------------------------------------------------- wrk
# run_wrk FILE URL DURATION [LUA]: sets W_RPS, W_P99 (ms), W_ERR, W_REQ. Uses WRK_CONNECTIONS.
WRK_CONNECTIONS=$CONNECTIONS
run_wrk() {
    local file=$1 url=$2 duration=$3 lua=${4:-}
    local args=(-t"$THREADS" -c"$WRK_CONNECTIONS" -d"${duration}s" --latency)
    [[ -n $lua ]] && args+=(-s "$lua")
    wrk "${args[@]}" "$url" >"$file" 2>&1 || { cat "$file" >&2; die "wrk failed against $url"; }
    local parsed
    parsed=$(awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
            if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v + 0 }
        /^ +99% / { p99 = ms($2) }
        / requests in / { req = $1 }
        /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /^Requests\/sec:/ { rps = $2 }
        END { if (rps == "" || p99 == "") exit 1; printf "%s %.3f %d %d\n", rps, p99, err, req }' "$file") \
        || { cat "$file" >&2; die "cannot parse the wrk output for $url"; }
    read -r W_RPS W_P99 W_ERR W_REQ <<<"$parsed"
}

# cpu_ticks PID: utime + stime of the whole process (all threads), in clock ticks: fields 14
# and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || die "process $1 is gone (cannot read /proc/$1/stat)"
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}
# run_wrk_cpu PID FILE URL DURATION [LUA]: run_wrk, plus W_CPU, the server's CPU time per
# request in µs over that run.
run_wrk_cpu() {
    local pid=$1 before after
    shift
    before=$(cpu_ticks "$pid")
    run_wrk "$@"
    after=$(cpu_ticks "$pid")
    ((W_REQ > 0)) || { cat "$1" >&2; die "wrk reported no requests against $2"; }
    W_CPU=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$W_REQ" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
}

TOTAL_ERRORS=0
ERROR_RUNS=()
count_errors() {   # count_errors ERRORS WHAT
    if (($1 > 0)); then TOTAL_ERRORS=$((TOTAL_ERRORS + $1)); ERROR_RUNS+=("$2: $1 errors"); fi
}

SMALL_SCENARIOS=(plain mw async echo)
BIG_SCENARIOS=(stream file upload)
[[ -n $FILE_SKIP ]] && BIG_SCENARIOS=(stream upload)
SCENARIOS=("${SMALL_SCENARIOS[@]}" "${BIG_SCENARIOS[@]}")
declare -A PATH_OF=([plain]=/api/hello [mw]=/api/hello [async]=/bench/async [echo]=/bench/echo
    [stream]=/bench/stream [file]=/bench/file [upload]=/bench/upload)
# Where the app's route differs from the reference's (the C server has no middleware route).
declare -A APP_PATH_OF=([mw]=/bench/middleware)
declare -A LUA_OF=([plain]= [mw]= [async]= [echo]=$OUT/echo.lua [stream]= [file]= [upload]=$OUT/upload.lua)
declare -A TITLE=([plain]="plain  GET /api/hello" [mw]="mw     GET /bench/middleware (request ID + CORS, inline; C: /api/hello)" [async]="async  GET /bench/async" [echo]="echo   POST /bench/echo (${#BODY} B JSON)"
    [stream]="stream GET /bench/stream ($BIG_BYTES B chunked, 64 KiB pieces; -c$BIG_CONNECTIONS)"
    [file]="file   GET /bench/file ($BIG_BYTES B file, descriptor response; -c$BIG_CONNECTIONS)"
    [upload]="upload POST /bench/upload ($BIG_BYTES B body, counted; -c$BIG_CONNECTIONS)")
# Body bytes per request of the big-body scenarios (their MB/s is req/s x this / 10^6).
declare -A BYTES_OF=([stream]=$BIG_BYTES [file]=$BIG_BYTES [upload]=$BIG_BYTES)
declare -A PORT_OF=([reference]=$REF_PORT [app]=$APP_PORT [hummingbird]=$HB_PORT)
declare -A PID_OF=([reference]=$REF_PID [app]=$APP_PID [hummingbird]=$HB_PID)
declare -A LABEL_OF=([reference]="C reference" [app]="Swift app" [hummingbird]=Hummingbird)
declare -A MED_RPS MED_P99 MED_CPU ERRS ROUND_RPS ROUND_CPU
GROWTH_BEFORE= GROWTH_AFTER= GROWTH_REQUESTS=0
STREAM_RSS_BEFORE= STREAM_RSS_AFTER= STREAM_HWM= HWM_RESET=0
mbps() { awk -v r="$1" -v b="$2" 'BEGIN { printf "%.1f", r * b / 1e6 }'; }   # mbps REQ/S BYTES
vm_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

path_for() {   # path_for TARGET: the scenario's path on that target
    if [[ $1 == app && -n ${APP_PATH_OF[$scenario]:-} ]]; then echo "${APP_PATH_OF[$scenario]}"; else echo "$path"; fi
}
targets_for() {   # targets_for SCENARIO: sets RUN_TARGETS (Hummingbird has only plain, async, echo)
    local t
    RUN_TARGETS=()
    for t in "${TARGETS[@]}"; do
        [[ $t == hummingbird && $1 != plain && $1 != async && $1 != echo ]] || RUN_TARGETS+=("$t")
    done
}
for scenario in "${SCENARIOS[@]}"; do
    path=${PATH_OF[$scenario]} lua=${LUA_OF[$scenario]}
    if [[ -n ${BYTES_OF[$scenario]:-} ]]; then
        WRK_CONNECTIONS=$BIG_CONNECTIONS duration=$BIG_DURATION
    else
        WRK_CONNECTIONS=$CONNECTIONS duration=$DURATION
    fi
    targets_for "$scenario"
    order=$(printf '%s, ' "${RUN_TARGETS[@]}")
    if [[ $scenario == stream ]]; then
        # Bounded memory: the app's RSS before the stream scenario, and its peak over it (VmHWM,
        # reset here where the kernel allows it: "5" in clear_refs, Linux 4.0+).
        STREAM_RSS_BEFORE=$(rss_kb "$APP_PID")
        if { echo 5 >"/proc/$APP_PID/clear_refs"; } 2>/dev/null; then HWM_RESET=1; fi
    fi
    say "$scenario: warm-up ${WARMUP} s each, then $ROUNDS x (${order%, }) x ${duration} s, -c$WRK_CONNECTIONS"
    for target in "${RUN_TARGETS[@]}"; do
        run_wrk "$OUT/wrk-$scenario-$target-warmup.txt" "http://$HOST:${PORT_OF[$target]}$(path_for "$target")" "$WARMUP" "$lua"
        count_errors "$W_ERR" "$scenario warm-up $target"
    done
    [[ $scenario == plain ]] && GROWTH_BEFORE=$(rss_kb "$APP_PID")
    declare -A rps=() p99=() cpu=()
    for target in "${RUN_TARGETS[@]}"; do ERRS[$scenario.$target]=0 rps[$target]= p99[$target]= cpu[$target]=; done
    for ((round = 1; round <= ROUNDS; round++)); do
        for target in "${RUN_TARGETS[@]}"; do
            run_wrk_cpu "${PID_OF[$target]}" "$OUT/wrk-$scenario-$target-$round.txt" \
                "http://$HOST:${PORT_OF[$target]}$(path_for "$target")" "$duration" "$lua"
            rps[$target]+="$W_RPS " p99[$target]+="$W_P99 " cpu[$target]+="$W_CPU "
            ERRS[$scenario.$target]=$((${ERRS[$scenario.$target]} + W_ERR))
            count_errors "$W_ERR" "$scenario round $round $target"
            [[ $scenario == plain && $target == app ]] && GROWTH_REQUESTS=$((GROWTH_REQUESTS + W_REQ))
            if [[ -n ${BYTES_OF[$scenario]:-} ]]; then
                printf '    round %d %-11s %10.1f req/s %8s MB/s  p99 %8.3f ms  CPU %8.3f us/req  errors %d\n' \
                    "$round" "$target" "$W_RPS" "$(mbps "$W_RPS" "${BYTES_OF[$scenario]}")" "$W_P99" "$W_CPU" "$W_ERR"
            else
                printf '    round %d %-11s %10.1f req/s  p99 %8.3f ms  CPU %7.3f us/req  errors %d\n' \
                    "$round" "$target" "$W_RPS" "$W_P99" "$W_CPU" "$W_ERR"
            fi
        done
    done
    if [[ $scenario == stream ]]; then
        # One long stream: a body kept whole in memory would show here as ~256 MB of RSS.
        got=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code} %{size_download}' \
            "http://$HOST:$APP_PORT/bench/stream?bytes=$BIG_STREAM_BYTES") || die "app: the $BIG_STREAM_BYTES-byte stream failed"
        [[ $got == "200 $BIG_STREAM_BYTES" ]] || die "app: the $BIG_STREAM_BYTES-byte stream answered '$got' (status, bytes)"
        STREAM_RSS_AFTER=$(rss_kb "$APP_PID")
        # Without the reset, the peak may come from an earlier scenario: an upper bound.
        STREAM_HWM=$(vm_hwm_kb "$APP_PID")
    fi
    for target in "${RUN_TARGETS[@]}"; do
        # shellcheck disable=SC2086 # word splitting intended
        MED_RPS[$scenario.$target]=$(median ${rps[$target]})
        # shellcheck disable=SC2086
        MED_P99[$scenario.$target]=$(median ${p99[$target]})
        # shellcheck disable=SC2086
        MED_CPU[$scenario.$target]=$(median ${cpu[$target]})
        ROUND_RPS[$scenario.$target]=${rps[$target]% }
        ROUND_CPU[$scenario.$target]=${cpu[$target]% }
    done
    if [[ $scenario == plain ]]; then
        # Top up with more /api/hello load on the app until the growth target is reached.
        while ((GROWTH_REQUESTS < GROWTH_TARGET)); do
            need_s=$(awk -v left=$((GROWTH_TARGET - GROWTH_REQUESTS)) -v rps="${MED_RPS[plain.app]}" \
                'BEGIN { s = int(left / (rps > 1 ? rps : 1)) + 1; print (s > 60 ? 60 : s) }')
            say "growth: $GROWTH_REQUESTS of $GROWTH_TARGET requests done; $need_s s more"
            run_wrk "$OUT/wrk-growth-$GROWTH_REQUESTS.txt" "http://$HOST:$APP_PORT/api/hello" "$need_s"
            count_errors "$W_ERR" "growth top-up"
            GROWTH_REQUESTS=$((GROWTH_REQUESTS + W_REQ))
        done
        GROWTH_AFTER=$(rss_kb "$APP_PID")
    fi
done
APP_LOADED_RSS=$(rss_kb "$APP_PID")

HB_LOADED_RSS=
[[ -n $HB_PID ]] && HB_LOADED_RSS=$(rss_kb "$HB_PID")

# ---------------------------------------------------------------- stop the servers
APP_ERROR_LINES=$(awk '$2 == "error" || $2 == "critical"' "$OUT/app.log" | wc -l)
stop_process "$APP_PID"; APP_RC=$STOP_RC
stop_process "$REF_PID"; REF_RC=$STOP_RC
HB_RC=0 HB_ERROR_LINES=0
if [[ -n $HB_PID ]]; then
    HB_ERROR_LINES=$(awk '$2 == "error" || $2 == "critical"' "$OUT/hummingbird.log" | wc -l)
    stop_process "$HB_PID"; HB_RC=$STOP_RC
fi

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
GROWTH_KB=$((GROWTH_AFTER - GROWTH_BEFORE))
GROWTH_MB=$(awk -v kb="$GROWTH_KB" 'BEGIN { printf "%.2f", kb / 1024 }')
# Peak (or, when VmHWM could not be reset, the larger of the peak so far and the end) minus before.
PEAK_NAME=peak
((HWM_RESET)) || PEAK_NAME="peak since start (VmHWM not reset)"
STREAM_GROWTH_MB=$(awk -v a="$STREAM_HWM" -v e="$STREAM_RSS_AFTER" -v b="$STREAM_RSS_BEFORE" \
    'BEGIN { if (e > a) a = e; printf "%.2f", (a - b) / 1024 }')

MD=""
md() { MD+="$*"$'\n'; }
md_name() {   # md_name SCENARIO: the scenario's name and path(s) for the markdown tables
    if [[ -n ${APP_PATH_OF[$1]:-} ]]; then
        echo "$1 \`${APP_PATH_OF[$1]}\` (C: \`${PATH_OF[$1]}\`)"
    else
        echo "$1 \`${PATH_OF[$1]}\`"
    fi
}

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
BIG_NOTE="stream/file/upload: ${BIG_DURATION} s, -c$BIG_CONNECTIONS"
echo "Results ($MODE: $ROUNDS round(s) x ${DURATION} s per target, wrk -t$THREADS -c$CONNECTIONS; $BIG_NOTE; $(nproc) cores)"
md "| scenario | target | req/s (median) | p99 ms (median) | CPU µs/req (median) | errors | req/s vs C | p99 vs C | CPU/req vs C |"
md "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for scenario in "${SCENARIOS[@]}"; do
    targets_for "$scenario"
    bytes=${BYTES_OF[$scenario]:-}
    if [[ -n $bytes && $scenario == "${BIG_SCENARIOS[0]}" ]]; then
        # The big-body scenarios get their own table, with MB/s (its ratio to C is req/s's).
        md ""
        md "| scenario (1 MiB bodies, wrk -c$BIG_CONNECTIONS) | target | req/s (median) | MB/s (median) | p99 ms (median) | CPU µs/req (median) | errors | MB/s vs C | p99 vs C | CPU/req vs C |"
        md "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    fi
    echo
    echo "${TITLE[$scenario]}"
    if [[ -n $bytes ]]; then
        printf '  %-12s %14s %9s %14s %14s %7s %11s %9s %11s\n' target "req/s (median)" "MB/s" "p99 (median)" "CPU us/req" \
            errors "MB/s vs C" "p99 vs C" "CPU vs C"
    else
        printf '  %-12s %14s %14s %14s %7s %11s %9s %11s\n' target "req/s (median)" "p99 (median)" "CPU us/req" errors \
            "req/s vs C" "p99 vs C" "CPU vs C"
    fi
    for target in "${RUN_TARGETS[@]}"; do
        k=$scenario.$target
        label=${LABEL_OF[$target]}
        rr=$(ratio "${MED_RPS[$k]}" "${MED_RPS[$scenario.reference]}")
        pr=$(ratio "${MED_P99[$k]}" "${MED_P99[$scenario.reference]}")
        cr=$(ratio "${MED_CPU[$k]}" "${MED_CPU[$scenario.reference]}")
        if [[ -n $bytes ]]; then
            mb=$(mbps "${MED_RPS[$k]}" "$bytes")
            printf '  %-12s %14.1f %9s %11.3f ms %14.3f %7d %10sx %8sx %10sx\n' "$label" "${MED_RPS[$k]}" "$mb" \
                "${MED_P99[$k]}" "${MED_CPU[$k]}" "${ERRS[$k]}" "$rr" "$pr" "$cr"
            md "| $(md_name "$scenario") | $label | $(printf '%.1f' "${MED_RPS[$k]}") | $mb | $(printf '%.3f' "${MED_P99[$k]}") | $(printf '%.1f' "${MED_CPU[$k]}") | ${ERRS[$k]} | ${rr}× | ${pr}× | ${cr}× |"
        else
            printf '  %-12s %14.1f %11.3f ms %14.3f %7d %10sx %8sx %10sx\n' "$label" "${MED_RPS[$k]}" "${MED_P99[$k]}" \
                "${MED_CPU[$k]}" "${ERRS[$k]}" "$rr" "$pr" "$cr"
            md "| $(md_name "$scenario") | $label | $(printf '%.0f' "${MED_RPS[$k]}") | $(printf '%.3f' "${MED_P99[$k]}") | $(printf '%.2f' "${MED_CPU[$k]}") | ${ERRS[$k]} | ${rr}× | ${pr}× | ${cr}× |"
        fi
    done
    if [[ -n ${MED_RPS[$scenario.hummingbird]:-} ]]; then
        echo "  Swift app / Hummingbird: req/s $(ratio "${MED_RPS[$scenario.app]}" "${MED_RPS[$scenario.hummingbird]}")x," \
            "p99 $(ratio "${MED_P99[$scenario.app]}" "${MED_P99[$scenario.hummingbird]}")x," \
            "CPU/req $(ratio "${MED_CPU[$scenario.app]}" "${MED_CPU[$scenario.hummingbird]}")x"
    fi
    if ((ROUNDS > 1)); then
        for target in "${RUN_TARGETS[@]}"; do
            printf '  rounds %-12s req/s: %s\n' "${LABEL_OF[$target]}" "${ROUND_RPS[$scenario.$target]}"
            printf '  %-19s CPU us/req: %s\n' "" "${ROUND_CPU[$scenario.$target]}"
        done
    fi
done
if [[ -n $FILE_SKIP ]]; then
    echo
    echo "file   GET /bench/file: skipped: $FILE_SKIP"
    md ""
    md "file \`/bench/file\`: skipped: $FILE_SKIP."
fi
if ((HUMMINGBIRD)); then
    md ""
    md "| scenario | Swift app / Hummingbird req/s | p99 | CPU/req |"
    md "|---|---:|---:|---:|"
    for scenario in "${SCENARIOS[@]}"; do
        [[ -n ${MED_RPS[$scenario.hummingbird]:-} ]] || continue
        md "| $(md_name "$scenario") | $(ratio "${MED_RPS[$scenario.app]}" "${MED_RPS[$scenario.hummingbird]}")× | $(ratio "${MED_P99[$scenario.app]}" "${MED_P99[$scenario.hummingbird]}")× | $(ratio "${MED_CPU[$scenario.app]}" "${MED_CPU[$scenario.hummingbird]}")× |"
    done
fi

echo
echo "Footprint and lifecycle (medians of $FOOTPRINT_RUNS starts)"
EXTRAS=(
    "idle RSS, 2-server app|$(mib "$IDLE_RSS") MB"
    "idle RSS, C reference|$(mib "$REF_IDLE_RSS") MB"
    ${HB_PID:+"idle RSS, Hummingbird|$(mib "$HB_IDLE_RSS") MB"}
    ${HB_PID:+"RSS after all scenarios, Hummingbird|$(mib "$HB_LOADED_RSS") MB"}
    "RSS growth, $GROWTH_REQUESTS requests to /api/hello|$GROWTH_MB MB ($(mib "$GROWTH_BEFORE") -> $(mib "$GROWTH_AFTER") MB)"
    "RSS after all scenarios|$(mib "$APP_LOADED_RSS") MB"
    "RSS around stream (+ one $((BIG_STREAM_BYTES >> 20)) MiB stream)|before -> $PEAK_NAME -> after: $(mib "$STREAM_RSS_BEFORE") -> $(mib "$STREAM_HWM") -> $(mib "$STREAM_RSS_AFTER") MB (+$STREAM_GROWTH_MB MB)"
    "RSS, $((EXTRA + 2))-server app|$(mib "$RSS102") MB"
    "RSS per extra server|$PER_SERVER_KB kB"
    "start -> ready, 2 servers|$READY2 ms"
    "start -> ready, $((EXTRA + 2)) servers|$READY102 ms"
    "SIGTERM -> exit, 2 idle servers|$STOP2 ms"
    "SIGTERM -> exit, $((EXTRA + 2)) idle servers|$STOP102 ms"
)
md ""
md "| measurement | value |"
md "|---|---:|"
for row in "${EXTRAS[@]}"; do
    printf '  %-48s %s\n' "${row%%|*}" "${row#*|}"
    md "| ${row%%|*} | ${row#*|} |"
done

MISSED=0
if [[ $MODE == full ]]; then
    echo
    echo "Targets"
    md ""
    md "| target | value | result |"
    md "|---|---:|---|"
    target_check() {   # target_check DESCRIPTION VALUE AWK_CONDITION(v)
        local result
        if awk -v v="$2" "BEGIN { exit !($3) }"; then result=PASS; else result=MISS; MISSED=$((MISSED + 1)); fi
        printf '  %-4s  %-44s %s\n' "$result" "$1" "$2"
        md "| $1 | $2 | $result |"
    }
    target_skip() {   # target_skip DESCRIPTION WHY: not measured, neither met nor missed
        printf '  %-4s  %-44s (%s)\n' SKIP "$1" "$2"
        md "| $1 | – | SKIP: $2 |"
    }
    target_check "plain req/s >= 0.90x C" "$(ratio "${MED_RPS[plain.app]}" "${MED_RPS[plain.reference]}")" "v >= 0.90"
    target_check "async req/s >= 0.75x C" "$(ratio "${MED_RPS[async.app]}" "${MED_RPS[async.reference]}")" "v >= 0.75"
    target_check "plain CPU/request <= 1.05x C" "$(ratio "${MED_CPU[plain.app]}" "${MED_CPU[plain.reference]}")" "v <= 1.05"
    target_check "async CPU/request <= 1.5x C" "$(ratio "${MED_CPU[async.app]}" "${MED_CPU[async.reference]}")" "v <= 1.5"
    if ((HUMMINGBIRD)); then
        target_check "plain req/s >= 2x Hummingbird" "$(ratio "${MED_RPS[plain.app]}" "${MED_RPS[plain.hummingbird]}")" "v >= 2"
        target_check "async req/s >= 1.5x Hummingbird" "$(ratio "${MED_RPS[async.app]}" "${MED_RPS[async.hummingbird]}")" "v >= 1.5"
    fi
    for scenario in "${SMALL_SCENARIOS[@]}"; do
        target_check "$scenario p99 <= 1.5x C" "$(ratio "${MED_P99[$scenario.app]}" "${MED_P99[$scenario.reference]}")" "v <= 1.5"
    done
    target_check "stream MB/s >= 0.90x C" "$(ratio "${MED_RPS[stream.app]}" "${MED_RPS[stream.reference]}")" "v >= 0.90"
    if [[ -n $FILE_SKIP ]]; then
        target_skip "file MB/s >= 0.90x C" "$FILE_SKIP"
    else
        target_check "file MB/s >= 0.90x C" "$(ratio "${MED_RPS[file.app]}" "${MED_RPS[file.reference]}")" "v >= 0.90"
    fi
    target_check "stream peak RSS growth <= $STREAM_RSS_BOUND_MB MB" "$STREAM_GROWTH_MB" "v <= $STREAM_RSS_BOUND_MB"
    target_check "idle RSS <= 12 MB" "$(mib "$IDLE_RSS")" "v <= 12"
    target_check "RSS growth < 2 MB over 1M requests" "$GROWTH_MB" "v < 2"
    target_check "$((EXTRA + 2)) servers listening < 250 ms" "$READY102" "v < 250"
    target_check "idle SIGTERM -> exit < 100 ms" "$STOP2" "v < 100"
else
    echo
    echo "(smoke mode: targets are not checked)"
fi

FAILED=0
echo
if ((TOTAL_ERRORS > 0)); then
    echo "FAIL: $TOTAL_ERRORS request errors (${ERROR_RUNS[*]}); wrk output in .build/bench/" >&2; FAILED=1
fi
if ((APP_RC != 0)); then echo "FAIL: the app exited $APP_RC after SIGTERM (log: .build/bench/app.log)" >&2; FAILED=1; fi
if ((REF_RC != 0)); then echo "FAIL: the reference exited $REF_RC after SIGTERM" >&2; FAILED=1; fi
if ((HB_RC != 0)); then echo "FAIL: hb-bench exited $HB_RC after SIGTERM (log: .build/bench/hummingbird.log)" >&2; FAILED=1; fi
if ((HB_ERROR_LINES > 0)); then echo "FAIL: hb-bench logged $HB_ERROR_LINES error lines (.build/bench/hummingbird.log)" >&2; FAILED=1; fi
if ((APP_ERROR_LINES > 0)); then echo "FAIL: the app logged $APP_ERROR_LINES error lines (.build/bench/app.log)" >&2; FAILED=1; fi

if [[ -n $MARKDOWN ]]; then
    {
        echo "Run: $STARTED_AT, \`$COMMAND_LINE\` ($ROUNDS round(s) × ${DURATION} s, wrk -t$THREADS -c$CONNECTIONS; $BIG_NOTE; $(nproc) cores)"
        echo
        echo "Load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
        echo
        printf '%s' "$MD"
    } >"$MARKDOWN"
    echo "markdown written to $MARKDOWN"
fi
echo "done in ${SECONDS} s after the build"
((FAILED == 0)) || exit 1
((STRICT == 0 || MISSED == 0)) || { echo "FAIL: $MISSED target(s) missed (--strict)" >&2; exit 1; }
exit 0
