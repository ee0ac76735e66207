#!/usr/bin/env bash
# End-to-end tests of the demo app: the real `app` process, real ports, real signals, curl.
#
#   scripts/integration-test.sh            # builds the app (debug) and runs every case
#   APP=/path/to/app scripts/integration-test.sh
#
# It picks its own free port range, so it can run beside other things, and only ever signals
# processes it started itself (by PID).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$(mktemp -d)
PIDS=()
PASSED=0
FAILED=0
FAILURES=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ -n "${KEEP_WORK:-}" ]] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "integration-test: '$tool' is required" >&2; exit 2; }
done
# A Python with prometheus_client (Debian: python3-prometheus-client), for parsing /admin/metrics.
PROM_PYTHON=
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c "import prometheus_client" 2>/dev/null; then PROM_PYTHON=$candidate; break; fi
done
[[ -n "$PROM_PYTHON" ]] || { echo "integration-test: prometheus_client is required (apt-get install python3-prometheus-client)" >&2; exit 2; }

if [[ -z "${APP:-}" ]]; then
    echo "building app..."
    swift build --product app >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 2; }
    APP="$(swift build --show-bin-path)/app"
fi

pass() { PASSED=$((PASSED + 1)); echo "  ok    $1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); echo "  FAIL  $1${2:+: $2}"; }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

# A run of 23 free ports (nothing listening, bindable now).
BASE=$(python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    base = random.randrange(20000, 40000)
    if all(free(base + i) for i in range(23)):
        print(base); break
PY
)
[[ -n "$BASE" ]] || { echo "no free port range" >&2; exit 2; }
echo "app: $APP"
echo "ports: $BASE..$((BASE + 22))"

# refused PORT: a TCP connect is refused right now.
refused() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except ConnectionRefusedError:
    sys.exit(0)
except OSError:
    sys.exit(1)
sys.exit(1)
PY
}

# hold PORT...: keep ports busy with a listener in the background; sets HOLDER.
HOLDS=0
hold() {
    HOLDS=$((HOLDS + 1))
    local out="$WORK/holder.$HOLDS.out"
    python3 - "$@" >"$out" 2>&1 <<'PY' &
import socket, sys, time
socks = []
for p in sys.argv[1:]:
    s = socket.socket()
    # Like the app: rebinding over TIME_WAIT is fine, a listener still blocks everyone else.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(p))); s.listen(8); socks.append(s)
print("holding", flush=True)
time.sleep(120)
PY
    HOLDER=$!
    PIDS+=("$HOLDER")
    for _ in $(seq 100); do grep -q holding "$out" 2>/dev/null && return 0; sleep 0.05; done
    fail "hold ports $*" "$(cat "$out")"; return 1
}

release() { kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; }

# start NAME ARGS...: start the app, wait for its ready line; sets APP_PID, LOG=$WORK/NAME.log.
start() {
    local name=$1; shift
    LOG="$WORK/$name.log"; ERR="$WORK/$name.err"
    "$APP" "$@" >"$LOG" 2>"$ERR" &
    APP_PID=$!
    PIDS+=("$APP_PID")
    for _ in $(seq 200); do
        grep -q "ready: " "$LOG" 2>/dev/null && return 0
        kill -0 "$APP_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# wait_exit PID SECONDS: wait for a process to exit on its own; kill it after SECONDS.
# Sets EXIT_CODE ("timeout" if it had to be killed).
wait_exit() {
    local pid=$1 limit=$(($2 * 20)) i
    for ((i = 0; i < limit; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; EXIT_CODE=timeout; return
    fi
    wait "$pid"; EXIT_CODE=$?
}

# stop_with SIGNAL: send it, wait up to 5 s; sets EXIT_CODE and STOP_MS.
stop_with() {
    local signal=$1 start_ns end_ns
    start_ns=$(date +%s%N)
    kill "-$signal" "$APP_PID"
    for _ in $(seq 100); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$APP_PID" 2>/dev/null; then EXIT_CODE=timeout; kill -KILL "$APP_PID"; fi
    wait "$APP_PID"; local code=$?
    [[ "${EXIT_CODE:-}" == timeout ]] || EXIT_CODE=$code
    end_ns=$(date +%s%N)
    STOP_MS=$(((end_ns - start_ns) / 1000000))
}

# json URL PYTHON-EXPRESSION: fetch URL (expects 200) and evaluate the expression on `d`.
json() {
    local body status
    body=$(curl -s -w '\n%{http_code}' "$1") || return 1
    status=${body##*$'\n'}; body=${body%$'\n'*}
    [[ "$status" == 200 ]] || { echo "    $1 -> HTTP $status" >&2; return 1; }
    python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if ($2) else 1)" "$body" \
        || { echo "    $1 -> $body" >&2; return 1; }
}

P=$BASE
A=$((BASE + 1))

echo
echo "== CLI"
check "--help describes the options" bash -c "'$APP' --help | grep -q -- '--public-port' && '$APP' --help | grep -q -- '--shutdown-timeout'"

echo
echo "== endpoints"
if start endpoints --public-port "$P" --admin-port "$A"; then
    pass "both servers start"
    check "log: public listening on http://127.0.0.1:$P" grep -q "public listening on http://127.0.0.1:$P" "$LOG"
    check "log: admin listening on http://127.0.0.1:$A" grep -q "admin listening on http://127.0.0.1:$A" "$LOG"
    check "GET /api/hello" json "http://127.0.0.1:$P/api/hello" "isinstance(d.get('message'), str) and 'Hello' in d['message']"
    check "GET /api/hello is application/json" bash -c "curl -sI http://127.0.0.1:$P/api/hello | grep -qi '^content-type: application/json'"
    check "GET /api/status" json "http://127.0.0.1:$P/api/status" "d['status']=='ok' and d['server']=='public' and d['port']==$P and d['uptimeSeconds']>=0"
    check "GET /admin/metrics (every server, live figures)" json "http://127.0.0.1:$A/admin/metrics" \
        "sorted(s['name'] for s in d['servers'])==['admin','public'] and [s for s in d['servers'] if s['name']=='public'][0]['requests']>=3 and all({'requests','errors','inFlight','latencyMs','uptimeSeconds'}<=set(s) for s in d['servers'])"
    check "GET /admin/config (effective configuration)" json "http://127.0.0.1:$A/admin/config" \
        "{s['name']:(s['preferredPort'],s['boundPort'],s['host'],s['fallbackPorts'][0],s['fallbackPorts'][-1]) for s in d['servers']}=={'public':($P,$P,'127.0.0.1',$P,$((P + 9))),'admin':($A,$A,'127.0.0.1',$A,$((A + 9)))} and all('maxBodyBytes' in s['limits'] and 'connectionTimeoutSeconds' in s['limits'] for s in d['servers'])"
    check "health: /healthz and /readyz on both servers" bash -c \
        "for u in $P/healthz $P/readyz $A/healthz $A/readyz; do [[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:\$u) == 200 ]] || exit 1; done"
    for _ in 1 2 3 4 5; do curl -s "http://127.0.0.1:$P/api/hello" >/dev/null; done
    curl -s "http://127.0.0.1:$P/nope/1" >/dev/null; curl -s "http://127.0.0.1:$P/nope/2" >/dev/null
    check "Prometheus exposition parses and counts the traffic" "$PROM_PYTHON" - "$A" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
port = sys.argv[1]
with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/metrics?format=prometheus") as r:
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers["Content-Type"]
    text = r.read().decode()
with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/admin/metrics", headers={"Accept": "text/plain"})) as r:
    assert r.read().decode().startswith("#"), "Accept: text/plain should give the text format"
samples = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
def get(name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)
hello = get("http_server_requests_total", server="public", method="GET", route="/api/hello", status="2xx")
missing = get("http_server_requests_total", server="public", method="*", route="unmatched", status="4xx")
count = get("http_server_request_duration_seconds_count", server="public", method="GET", route="/api/hello")
assert hello >= 6 and missing == 2 and count == hello, (hello, missing, count)
assert ("http_server_requests_in_flight", (("server", "public"),)) in samples
PY
    check "unknown path -> 404 JSON" bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$P/nope) == 404 ]]"
    check "admin routes are not on the public port" bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$P/admin/config) == 404 ]]"
    stop_with TERM
    check "SIGTERM -> exit 0 (took ${STOP_MS} ms)" test "$EXIT_CODE" = 0
    check "SIGTERM -> every port released" bash -c "$(declare -f refused); refused $P && refused $A"
    check "log: servers stopped" bash -c "grep -q 'public stopped' '$LOG' && grep -q 'admin stopped' '$LOG'"
else
    fail "both servers start" "$(cat "$ERR")"
fi

echo
echo "== SIGINT"
if start sigint --public-port "$P" --admin-port "$A"; then
    stop_with INT
    check "SIGINT -> exit 0 (took ${STOP_MS} ms)" test "$EXIT_CODE" = 0
    check "SIGINT -> every port released" bash -c "$(declare -f refused); refused $P && refused $A"
else
    fail "start for SIGINT" "$(cat "$ERR")"
fi

echo
echo "== port fallback"
hold "$P"
if start fallback --public-port "$P" --admin-port "$A"; then
    check "public moves to $((P + 1))" grep -q "public listening on http://127.0.0.1:$((P + 1))" "$LOG"
    check "admin moves to $((P + 2)) (the next one no other server of the app holds)" grep -q "admin listening on http://127.0.0.1:$((P + 2))" "$LOG"
    check "GET /api/hello on the fallback port" json "http://127.0.0.1:$((P + 1))/api/hello" "'message' in d"
    check "config shows preferred and bound ports" json "http://127.0.0.1:$((P + 2))/admin/config" \
        "[(s['preferredPort'],s['boundPort']) for s in d['servers']]==[($P,$((P + 1))),($A,$((P + 2)))]"
    stop_with TERM
    check "fallback run exits 0" test "$EXIT_CODE" = 0
else
    fail "start with $P busy" "$(cat "$ERR")"
fi
release

echo
echo "== all ports busy"
hold $(seq "$P" $((P + 9)))
"$APP" --public-port "$P" --admin-port $((P + 10)) >"$WORK/busy.log" 2>"$WORK/busy.err" &
APP_PID=$!; PIDS+=("$APP_PID")
wait_exit "$APP_PID" 10
check "non-zero exit (got $EXIT_CODE)" bash -c "[[ '$EXIT_CODE' != 0 && '$EXIT_CODE' != timeout ]]"
check "one clear message on stderr naming server, host and ports" bash -c \
    "[[ \$(wc -l < '$WORK/busy.err') == 1 ]] && grep -q \"server 'public' on 127.0.0.1\" '$WORK/busy.err' && grep -q '$P, $((P + 1)),' '$WORK/busy.err' && grep -q '$((P + 9))' '$WORK/busy.err'"
check "nothing left bound" bash -c "$(declare -f refused); refused $((P + 10))"
release
# The admin server fails after the public one bound: the public one is rolled back.
hold $(seq $((P + 11)) $((P + 20)))
"$APP" --public-port "$P" --admin-port $((P + 11)) >"$WORK/rollback.log" 2>"$WORK/rollback.err" &
APP_PID=$!; PIDS+=("$APP_PID")
wait_exit "$APP_PID" 10
check "admin busy -> non-zero exit (got $EXIT_CODE)" bash -c "[[ '$EXIT_CODE' != 0 && '$EXIT_CODE' != timeout ]]"
check "admin busy -> message names admin" grep -q "server 'admin' on 127.0.0.1" "$WORK/rollback.err"
check "admin busy -> public's port was released" bash -c "$(declare -f refused); refused $P"
release

echo
echo "== in-flight request during SIGTERM"
if start drain --public-port "$P" --admin-port "$A" --bench-routes --shutdown-timeout 10; then
    # A client whose request is in flight (headers sent, body still arriving) when SIGTERM lands.
    python3 - "$P" >"$WORK/slow.out" 2>&1 <<'PY' &
import json, socket, sys, time
body = json.dumps({"id": 1, "name": "slow", "tags": ["a"], "payload": "x" * 200}).encode()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(b"POST /bench/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
          + b"Content-Length: %d\r\n\r\n" % len(body) + body[:50])
print("in-flight", flush=True)
time.sleep(1.5)
s.sendall(body[50:])
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
print("status", data.split(b" ")[1].decode() if data else "none", flush=True)
PY
    SLOW=$!; PIDS+=("$SLOW")
    for _ in $(seq 100); do grep -q in-flight "$WORK/slow.out" && break; sleep 0.05; done
    sleep 0.2
    kill -TERM "$APP_PID"
    sleep 0.3
    check "new connections refused during the drain" bash -c "$(declare -f refused); refused $P && refused $A"
    check "the app is still draining" kill -0 "$APP_PID"
    wait_exit "$SLOW" 15
    check "the in-flight request completes with 200" grep -q "status 200" "$WORK/slow.out"
    wait_exit "$APP_PID" 10
    check "then exit 0" test "$EXIT_CODE" = 0
else
    fail "start for the drain case" "$(cat "$ERR")"
fi

echo
echo "== SIGTERM under load"
if start load --public-port "$P" --admin-port "$A"; then
    # 16 keep-alive clients hammer /api/hello; SIGTERM lands 1 s in. Every request sent before
    # the signal must get a complete 200; afterwards connections are refused.
    python3 - "$P" "$APP_PID" >"$WORK/load.out" 2>&1 <<'PY'
import os, signal, socket, sys, threading, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
lock = threading.Lock()
stats = {"before_ok": 0, "before_bad": 0, "after_ok": 0, "refused_after": 0, "errors_after": 0}
signalled_at = [None]
stop_at = time.monotonic() + 4

def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, False
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
    length = int(headers.get(b"content-length", b"0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None, False
        rest += chunk
    return (status if len(rest) == length else None), headers.get(b"connection", b"").lower() == b"close"

def client():
    sock = None
    while time.monotonic() < stop_at:
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                with lock:
                    if signalled_at[0] is not None: stats["refused_after"] += 1
                if signalled_at[0] is not None:
                    return
                time.sleep(0.01); continue
        sent_at = None
        try:
            sock.sendall(b"GET /api/hello HTTP/1.1\r\nHost: t\r\n\r\n")
            sent_at = time.monotonic()
            status, close = read_response(sock)
        except OSError:
            status, close = None, True
        # Sent before the signal: completely written before the moment taken just before kill().
        with lock:
            before = sent_at is not None and (signalled_at[0] is None or sent_at < signalled_at[0])
        with lock:
            if before:
                stats["before_ok" if status == 200 else "before_bad"] += 1
            else:
                stats["after_ok" if status == 200 else "errors_after"] += 1
        if close or status is None:
            sock.close(); sock = None

threads = [threading.Thread(target=client) for _ in range(16)]
for t in threads: t.start()
time.sleep(1)
with lock:
    signalled_at[0] = time.monotonic()
os.kill(pid, signal.SIGTERM)
for t in threads: t.join()
print(" ".join(f"{k}={v}" for k, v in stats.items()))
PY
    cat "$WORK/load.out" | sed 's/^/    /'
    check "requests sent before SIGTERM all completed with 200" bash -c \
        "grep -q 'before_bad=0 ' '$WORK/load.out' && ! grep -q 'before_ok=0 ' '$WORK/load.out'"
    check "new connections refused after SIGTERM" bash -c "! grep -q 'refused_after=0 ' '$WORK/load.out'"
    wait_exit "$APP_PID" 12
    check "exit 0 within the deadline" test "$EXIT_CODE" = 0
else
    fail "start for the load case" "$(cat "$ERR")"
fi

echo
echo "== admin bearer token"
if APP_ADMIN_TOKEN=s3cret-t0ken start token --public-port "$P" --admin-port "$A"; then
    check "admin route without token -> 401" bash -c \
        "[[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$A/admin/metrics) == 401 ]]"
    check "admin route with a wrong token -> 401" bash -c \
        "[[ \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' http://127.0.0.1:$A/admin/config) == 401 ]]"
    check "admin route with the token -> 200" bash -c \
        "[[ \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret-t0ken' http://127.0.0.1:$A/admin/metrics) == 200 ]]"
    check "config says how, never the token" bash -c \
        "out=\$(curl -s -H 'Authorization: Bearer s3cret-t0ken' http://127.0.0.1:$A/admin/config); [[ \$out == *'bearer token'* && \$out != *s3cret* ]]"
    check "public routes need no token" json "http://127.0.0.1:$P/api/hello" "'message' in d"
    stop_with TERM
    check "the token never appears in the logs" bash -c "! grep -q s3cret '$LOG' '$ERR'"
else
    fail "start with a token" "$(cat "$ERR")"
fi

echo
echo "== systemd socket activation"
if command -v systemd-socket-activate >/dev/null; then
    S=$((BASE + 21))
    LOG="$WORK/activated.log"
    # systemd-socket-activate listens on $S and starts the app on the first connection, passing
    # the socket as LISTEN_FDS with the name "public"; the app's own --public-port is not used.
    systemd-socket-activate -l "127.0.0.1:$S" --fdname=public \
        "$APP" --public-port "$P" --admin-port "$A" >"$LOG" 2>"$WORK/activated.err" &
    APP_PID=$!; PIDS+=("$APP_PID")
    sleep 0.3
    check "the first request on the activated socket is served" json "http://127.0.0.1:$S/api/status" \
        "d['server']=='public' and d['port']==$S"
    check "public did not bind its own port" bash -c "$(declare -f refused); refused $P"
    check "admin bound its port as usual" json "http://127.0.0.1:$A/admin/config" \
        "[s['boundPort'] for s in d['servers']]==[$S,$A]"
    stop_with TERM
    check "activated app exits 0 on SIGTERM" test "$EXIT_CODE" = 0
else
    echo "  skip  systemd-socket-activate is not installed (apt-get install systemd)"
fi

echo
echo "== second signal stops at once"
if start second --public-port "$P" --admin-port "$A" --bench-routes --shutdown-timeout 30; then
    python3 - "$P" >"$WORK/stuck.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=40)
s.sendall(b"POST /bench/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
print("in-flight", flush=True)
time.sleep(35)
PY
    STUCK=$!; PIDS+=("$STUCK")
    for _ in $(seq 100); do grep -q in-flight "$WORK/stuck.out" && break; sleep 0.05; done
    sleep 0.2
    kill -TERM "$APP_PID"; sleep 0.5
    check "first SIGTERM: still draining the stuck request" kill -0 "$APP_PID"
    stop_with TERM
    check "second SIGTERM: exit 0 at once (took ${STOP_MS} ms)" bash -c "[[ '$EXIT_CODE' == 0 && $STOP_MS -lt 3000 ]]"
    kill "$STUCK" 2>/dev/null; wait "$STUCK" 2>/dev/null
else
    fail "start for the second-signal case" "$(cat "$ERR")"
fi

echo
if ((FAILED > 0)); then
    echo "failed:"; printf '  - %s\n' "${FAILURES[@]}"
fi
echo "integration: $PASSED passed, $FAILED failed"
((FAILED == 0))
