#!/usr/bin/env bash
# Bounded soak: mixed load against the demo app for SECONDS (default 60) with wrk on loopback.
# Passes when no request fails (socket errors, non-2xx) and RSS stays flat after warm-up.
#
#   scripts/soak.sh            # 60 s, release build
#   scripts/soak.sh 20         # shorter
#   APP=.build/debug/app scripts/soak.sh 10
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-60}
MAX_GROWTH_KB=${MAX_GROWTH_KB:-2048}
command -v wrk >/dev/null || { echo "soak: wrk is required (apt-get install wrk)" >&2; exit 2; }

if [[ -z "${APP:-}" ]]; then
    swift build -c release --product app >/dev/null
    APP="$(swift build -c release --show-bin-path)/app"
fi
WORK=$(mktemp -d)
APP_PID=
cleanup() {
    if [[ -n "$APP_PID" ]]; then kill -KILL "$APP_PID" 2>/dev/null || true; wait "$APP_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$APP" --public-port "$PORT" --admin-port 0 --bench-routes --log-level warning >"$WORK/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/api/hello" >/dev/null && break; sleep 0.05; done
BOUND=$(curl -sf "http://127.0.0.1:$PORT/api/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
[[ "$BOUND" == "$PORT" ]] || { echo "soak: app did not start on $PORT" >&2; exit 1; }

# Mixed traffic: plain, JSON status, async handler, POST with a JSON body. Every answer must be 200.
cat >"$WORK/mix.lua" <<'LUA'
local body = '{"id":7,"name":"soak","tags":["a","b","c"],"payload":"' .. string.rep("x", 900) .. '"}'
local requests = {
  wrk.format("GET", "/api/hello"),
  wrk.format("GET", "/api/status"),
  wrk.format("GET", "/bench/async"),
  wrk.format("POST", "/bench/echo", {["Content-Type"] = "application/json"}, body),
}
local i = 0
request = function()
  i = i + 1
  return requests[(i % #requests) + 1]
end
LUA

rss() { awk '/VmRSS/ {print $2}' "/proc/$APP_PID/status"; }
echo "soak: ${SECONDS_TOTAL}s of mixed load on 127.0.0.1:$PORT (pid $APP_PID)"
wrk -t2 -c32 -d"${SECONDS_TOTAL}s" -s "$WORK/mix.lua" "http://127.0.0.1:$PORT" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!
STEP=$(( SECONDS_TOTAL >= 20 ? 5 : 2 ))
SAMPLES=()
ELAPSED=0
while kill -0 "$WRK_PID" 2>/dev/null; do
    sleep "$STEP"; ELAPSED=$((ELAPSED + STEP))
    kill -0 "$WRK_PID" 2>/dev/null || break
    SAMPLES+=("$(rss)"); echo "  t=${ELAPSED}s rss=${SAMPLES[-1]} kB"
done
wait "$WRK_PID"
sed 's/^/  /' "$WORK/wrk.out"

FAIL=0
if grep -qE "Socket errors|Non-2xx" "$WORK/wrk.out"; then echo "soak: FAIL: requests failed"; FAIL=1; fi
kill -0 "$APP_PID" 2>/dev/null || { echo "soak: FAIL: the app died"; FAIL=1; }
# Flat: compare the sample after warm-up (a third of the way in) with the last one.
if ((${#SAMPLES[@]} >= 3)); then
    FIRST=${SAMPLES[$(( ${#SAMPLES[@]} / 3 ))]}; LAST=${SAMPLES[-1]}
    GROWTH=$((LAST - FIRST))
    echo "soak: rss after warm-up ${FIRST} kB, at the end ${LAST} kB, growth ${GROWTH} kB (limit ${MAX_GROWTH_KB} kB)"
    if ((GROWTH > MAX_GROWTH_KB)); then echo "soak: FAIL: memory keeps growing"; FAIL=1; fi
fi
kill -TERM "$APP_PID"; wait "$APP_PID"; CODE=$?; APP_PID=
[[ $CODE == 0 ]] || { echo "soak: FAIL: exit code $CODE after SIGTERM"; FAIL=1; }
if ((FAIL)); then echo "soak: 0 passed, 1 failed"; exit 1; fi
echo "soak: 1 passed, 0 failed"
