#!/usr/bin/env bash
# Runtime control of the demo app, end to end and under load: a server restarted through the
# admin API, certificates rotated on SIGHUP, the binary upgraded on SIGUSR2 (and an upgrade
# that fails). Each change happens while wrk (kept-alive connections) and a Python client (a new
# connection per request, and kept-alive http.client connections) load the public server;
# every run must end with zero failed requests and zero refused connections.
#
#   scripts/runtime-control-test.sh            # builds the app (debug) and runs every case
#   APP=/path/to/app scripts/runtime-control-test.sh
#
# Only processes this script started are signalled, by PID; every wait is bounded.
set -uo pipefail

cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
PIDS=()
source scripts/lib.sh

cleanup() {
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    [[ -n "${KEEP_WORK:-}" ]] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

for tool in curl python3 openssl wrk; do
    command -v "$tool" >/dev/null || { echo "runtime-control-test: '$tool' is required" >&2; exit 2; }
done
if [[ -z "${APP:-}" ]]; then
    echo "building app..."
    swift build --product app >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 2; }
    APP="$(swift build --show-bin-path)/app"
fi
# The app runs from a copy, so that the upgrade cases can replace the file it was started from.
mkdir -p "$WORK/bin"
cp "$APP" "$WORK/bin/app"
BIN="$WORK/bin/app"


BASE=$(free_port_run 20)
[[ -n "$BASE" ]] || { echo "no free port range" >&2; exit 2; }
P=$BASE
A=$((BASE + 1))
echo "app: $APP (run as $BIN)"
echo "ports: $P (public), $A (admin)"

LOAD="$WORK/load.py"
cat >"$LOAD" <<'PY'
# load URL SECONDS: for SECONDS, 2 threads send requests on a new connection each and 2 threads
# on kept-alive http.client connections (reopened only after the server said Connection: close).
# Prints the counts; exits 0 only if every request got a 200 and no connection was refused.
import http.client, socket, ssl, sys, threading, time, urllib.parse

url = urllib.parse.urlsplit(sys.argv[1])
seconds = float(sys.argv[2])
end = time.monotonic() + seconds
lock = threading.Lock()
counts = {"ok": 0, "refused": 0, "failed": 0}
examples = []

def connection():
    if url.scheme == "https":
        context = ssl._create_unverified_context()
        return http.client.HTTPSConnection(url.hostname, url.port, timeout=10, context=context)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=10)

def note(kind, detail=None):
    with lock:
        counts[kind] += 1
        if detail and len(examples) < 5:
            examples.append(detail)

def worker(keep_alive):
    conn = connection() if keep_alive else None
    while time.monotonic() < end:
        c = conn or connection()
        try:
            c.request("GET", url.path or "/")
            response = c.getresponse()
            response.read()
            note("ok" if response.status == 200 else "failed", None if response.status == 200 else f"HTTP {response.status}")
            if not keep_alive or response.will_close:
                c.close()
        except ConnectionRefusedError as error:
            note("refused", repr(error))
            c.close()
        except Exception as error:
            note("failed", repr(error))
            c.close()

threads = [threading.Thread(target=worker, args=(keep,)) for keep in (False, False, True, True)]
for t in threads: t.start()
for t in threads: t.join()
print(f"    python client: {counts['ok']} ok, {counts['failed']} failed, {counts['refused']} refused {examples}", flush=True)
sys.exit(0 if counts["ok"] > 0 and counts["failed"] == 0 and counts["refused"] == 0 else 3)
PY

# load_start URL SECONDS NAME: wrk and the Python client in the background.
load_start() {
    local connections=16
    [[ $1 == https* ]] && connections=8
    wrk -t1 -c"$connections" -d"$2"s "$1" >"$WORK/$3.wrk" 2>&1 &
    WRK_PID=$!
    python3 "$LOAD" "$1" "$2" >"$WORK/$3.py" 2>&1 &
    PY_PID=$!
}
# load_check NAME: both finished without a failed request or a refused connection.
load_check() {
    local wrk_ok=0 py_ok=0
    wait "$WRK_PID"
    wait "$PY_PID" && py_ok=1
    grep -q "requests in" "$WORK/$1.wrk" && ! grep -qE "Socket errors|Non-2xx" "$WORK/$1.wrk" && wrk_ok=1
    echo "    wrk: $(grep -E 'requests in|Socket errors|Non-2xx' "$WORK/$1.wrk" | tr -s ' ' | tr '\n' ';')"
    cat "$WORK/$1.py"
    ((wrk_ok && py_ok))
}

# start NAME ARGS...: the app from $BIN; waits for its ready line; sets APP_PID and LOG.
start() {
    local name=$1 i; shift
    LOG="$WORK/$name.log"
    "$BIN" --public-port "$P" --admin-port "$A" "$@" >"$LOG" 2>&1 &
    APP_PID=$!
    PIDS+=("$APP_PID")
    for ((i = 0; i < 400; i++)); do
        grep -q "ready: " "$LOG" 2>/dev/null && return 0
        kill -0 "$APP_PID" 2>/dev/null || { echo "    exited before its ready line" >&2; cat "$LOG" >&2; return 1; }
        sleep 0.05
    done
    return 1
}
# wait_gone PID SECONDS: the process has exited (for one that is not this shell's child).
wait_gone() {
    local i
    for ((i = 0; i < $2 * 50; i++)); do
        [[ -e /proc/$1 ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]] || return 0
        sleep 0.02
    done
    return 1
}
# wait_log FILE PATTERN SECONDS
wait_log() {
    local i
    for ((i = 0; i < $3 * 50; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.02; done
    echo "    '$2' did not appear in $(basename "$1") within $3 s" >&2
    return 1
}
# json URL PYTHON-EXPRESSION [CURL-ARGS...]
json() {
    local url=$1 expression=$2 body; shift 2
    body=$(curl -s --max-time 10 "$@" "$url") || { echo "    $url: curl failed" >&2; return 1; }
    python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if ($expression) else 1)" "$body" \
        || { echo "    $url -> $body" >&2; return 1; }
}
pid_of() { curl -s --max-time 10 "http://127.0.0.1:$A/admin/servers" | python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])"; }
# subject PORT: the common name a new TLS connection is shown.
subject() {
    openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null | openssl x509 -noout -subject 2>/dev/null \
        | sed 's/.*CN *= *//'
}
status() { curl -sk --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }
# term_exits_0: SIGTERM to the app (this shell's child) ends it with exit status 0.
term_exits_0() { kill -TERM "$APP_PID"; wait "$APP_PID"; }

echo
echo "== restart one server through the admin API, under load"
if start restart --admin-token secret; then
    check "GET /admin/servers lists both servers, running, with their addresses" json \
        "http://127.0.0.1:$A/admin/servers" \
        "d['pid']==$APP_PID and [(s['name'],s['state'],s['address'],s['generation']) for s in d['servers']]==[('public','running','http://127.0.0.1:$P',1),('admin','running','http://127.0.0.1:$A',1)]" \
        -H "Authorization: Bearer secret"
    check "restart without the admin token: 401" test "$(status -X POST "http://127.0.0.1:$A/admin/servers/public/restart")" = 401
    check "restart of an unknown server: 404" \
        test "$(status -X POST -H 'Authorization: Bearer secret' "http://127.0.0.1:$A/admin/servers/nope/restart")" = 404
    load_start "http://127.0.0.1:$P/api/hello" 5 restart
    sleep 1
    for round in 1 2 3; do
        code=$(status -X POST -H 'Authorization: Bearer secret' "http://127.0.0.1:$A/admin/servers/public/restart")
        [[ $code == 200 ]] || echo "    restart $round -> HTTP $code"
        sleep 0.8
    done
    check "three restarts under load: no failed request, no refused connection" load_check restart
    check "public is at generation 4 on the same port, admin untouched" json "http://127.0.0.1:$A/admin/servers" \
        "[(s['name'],s['generation'],s['address'],s['draining']) for s in d['servers']]==[('public',4,'http://127.0.0.1:$P',0),('admin',1,'http://127.0.0.1:$A',0)]" \
        -H "Authorization: Bearer secret"
    check "restarting the admin server itself answers 202, then it is at generation 2" bash -c "
        [[ \$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer secret' http://127.0.0.1:$A/admin/servers/admin/restart) == 202 ]] &&
        for i in \$(seq 100); do
            curl -s -H 'Authorization: Bearer secret' http://127.0.0.1:$A/admin/servers | grep -q '\"generation\":2,\"inFlight\":[0-9]*,\"name\":\"admin\"' && exit 0
            sleep 0.05
        done; exit 1"
    check "then SIGTERM exits 0" term_exits_0
else
    fail "start for the restart cases"
fi

echo
echo "== SIGHUP reloads the certificate files, under load"
for name in one two; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/$name.key" -out "$WORK/$name.crt" -days 1 \
        -subj "/CN=$name" -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
done
cp "$WORK/one.crt" "$WORK/server.crt"; cp "$WORK/one.key" "$WORK/server.key"
if start tls --tls-cert "$WORK/server.crt" --tls-key "$WORK/server.key"; then
    check "a new connection is shown certificate 'one'" test "$(subject "$P")" = one
    load_start "https://127.0.0.1:$P/api/hello" 4 tls
    sleep 1
    cp "$WORK/two.crt" "$WORK/server.crt"; cp "$WORK/two.key" "$WORK/server.key"
    kill -HUP "$APP_PID"
    check "SIGHUP: the log says the new certificate serves" wait_log "$LOG" "public: now serving the new certificate" 10
    check "rotated under load: no failed request, no refused connection" load_check tls
    check "a new connection is shown certificate 'two'" test "$(subject "$P")" = two
    printf -- '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n' >"$WORK/server.crt"
    kill -HUP "$APP_PID"
    check "a damaged certificate: one error naming the server, the old certificate kept" \
        wait_log "$LOG" "error.*public: keeping the current certificate" 10
    check "  and new connections are still shown 'two'" test "$(subject "$P")" = two
    check "  and the process still serves" test "$(status "https://127.0.0.1:$P/api/hello")" = 200
    check "SIGHUP did not end the process" kill -0 "$APP_PID"
    check "then SIGTERM exits 0" term_exits_0
else
    fail "start with TLS"
fi

echo
echo "== SIGUSR2 upgrades the binary with the sockets, under load"
NOTIFY="$WORK/notify.sock"
notify_listener "$NOTIFY" "$WORK/notify.msgs" 60 || fail "the stand-in notify socket listens"
if NOTIFY_SOCKET="$NOTIFY" start upgrade; then
    OLD=$APP_PID
    # A new build installed at the same path (a new file, as a package manager does it).
    cp "$APP" "$WORK/bin/app.new" && mv "$WORK/bin/app.new" "$BIN"
    load_start "http://127.0.0.1:$P/api/hello" 5 upgrade
    sleep 1.5
    kill -USR2 "$OLD"
    wait "$OLD"; code=$?
    check "the old process exits 0 once the new one serves" test "$code" = 0
    check "upgraded under load: no failed request, no refused connection" load_check upgrade
    NEW=$(pid_of)
    [[ -n "$NEW" ]] && PIDS+=("$NEW")
    check "a new process serves both ports" test -n "$NEW" -a "$NEW" != "$OLD"
    check "  started from the new file at the same path" test "$(stat -L -c %i "/proc/$NEW/exe" 2>/dev/null)" = "$(stat -c %i "$BIN")"
    check "  on the sockets it was given (no port moved)" json "http://127.0.0.1:$A/admin/servers" \
        "[s['address'] for s in d['servers']]==['http://127.0.0.1:$P','http://127.0.0.1:$A']"
    check "systemd is told the new main PID, and never that the service stops" python3 -c '
import sys
lines = open(sys.argv[1]).read().splitlines()
sys.exit(0 if any(l.startswith("MAINPID=" + sys.argv[2]) for l in lines) and not any("STOPPING=1" in l for l in lines) else 1)' \
        "$WORK/notify.msgs" "$NEW"
    check "  and the new process reports READY=1 with its own PID" grep -q "^READY=1|MAINPID=$NEW|" "$WORK/notify.msgs"

    # A broken build: the new process exits before it is ready.
    printf '#!/bin/sh\necho "broken build" >&2\nexit 3\n' >"$WORK/bin/app.new" && chmod +x "$WORK/bin/app.new"
    mv "$WORK/bin/app.new" "$BIN"
    NEWLOG=$(ls -t "$WORK"/upgrade.log | head -1)
    kill -USR2 "$NEW"
    check "a failed upgrade says why (exited with status 3 before it was ready)" \
        wait_log "$NEWLOG" "upgrade failed: the new process [0-9]* ($BIN) exited with status 3 before it was ready; this process goes on serving" 15
    check "  and the process that was asked goes on serving" test "$(status "http://127.0.0.1:$P/api/hello")" = 200
    check "  with the same PID" test "$(pid_of)" = "$NEW"
    kill -TERM "$NEW"
    check "then SIGTERM ends it" wait_gone "$NEW" 15
else
    fail "start for the upgrade cases"
fi
kill -KILL "$LISTENER" 2>/dev/null
wait "$LISTENER" 2>/dev/null

summary "runtime control"
