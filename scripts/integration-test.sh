#!/usr/bin/env bash
# End-to-end tests of the demo app: the real `app` process, real ports, real signals, curl.
#
#   scripts/integration-test.sh            # builds the app (debug) and runs every case
#   APP=/path/to/app scripts/integration-test.sh
#
# It picks its own free port range, so it can run beside other things, and only ever signals
# processes it started itself (by PID). Every wait is bounded, and a wait that runs out is a
# failure. Helpers and clients judge for themselves and report through their exit status.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$(mktemp -d)
PIDS=()
source scripts/lib.sh

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


# A run of 23 free ports (nothing listening, bindable now), below the kernel's ephemeral range
# (32768 and up), so no outgoing connection of this machine can take one in between.
BASE=$(free_port_run 23)
[[ -n "$BASE" ]] || { echo "no free port range" >&2; exit 2; }
echo "app: $APP"
echo "ports: $BASE..$((BASE + 22))"

# The clients and probes, one Python file with a command per job. Each one decides whether what
# it saw is right and says so through its exit status; a client with several findings sets one
# bit per finding (1 is Python's own failure, so it is never a finding).
CLIENTS="$WORK/clients.py"
cat >"$CLIENTS" <<'PY'
import errno, fcntl, json, os, select, signal, socket, subprocess, sys, threading, time, urllib.request


def say(message):
    print(f"    {message}", file=sys.stderr, flush=True)


def alive(pid):
    """Running, not merely a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def connect_outcome(port, timeout=2.0):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "connect timed out"
    except OSError as e:
        return f"connect failed with {errno.errorcode.get(e.errno, e.errno)}"
    else:
        return "accepted"
    finally:
        s.close()


def read_response(sock):
    """One response: (outcome, status, headers, body); outcome is ok, cut (nothing came back),
    partial (truncated or malformed) or timeout."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return ("cut" if not data else "partial"), None, {}, data
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            headers[key.strip().lower().decode()] = value.strip().decode()
        length = int(headers.get("content-length", "-1"))
        if status is None or length < 0:
            return "partial", status, headers, rest
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return "partial", status, headers, rest
            rest += chunk
        return ("ok" if len(rest) == length else "partial"), status, headers, rest
    except socket.timeout:
        return "timeout", None, {}, data
    except ConnectionResetError:
        return ("cut" if not data else "partial"), None, {}, data


def server_closes(sock, seconds):
    """After a `Connection: close` response the server must close: EOF (or a reset), no more bytes."""
    sock.settimeout(seconds)
    try:
        extra = sock.recv(65536)
    except socket.timeout:
        return False, f"connection still open {seconds} s after a Connection: close response"
    except ConnectionResetError:
        return True, "reset"
    if extra:
        return False, f"more bytes after a Connection: close response: {extra[:60]!r}"
    return True, "EOF"


def refused(ports):
    """Every port refuses a TCP connection right now (ECONNREFUSED, nothing else)."""
    bad = [(p, o) for p in ports for o in [connect_outcome(p)] if o != "refused"]
    for p, o in bad:
        say(f"port {p}: {o} (expected ECONNREFUSED)")
    return 1 if bad else 0


def refused_while_alive(pid, seconds, ports):
    """Every port refuses connections within `seconds`, and the process is still running then."""
    start = time.monotonic()
    pending = set(ports)
    while True:
        if not alive(pid):
            say(f"pid {pid} exited before ports {sorted(pending)} were refused")
            return 1
        for p in sorted(pending):
            o = connect_outcome(p)
            if o == "refused":
                pending.discard(p)
            elif o != "accepted":
                say(f"port {p}: {o}, which is not a refusal")
                return 1
        if not pending:
            break
        if time.monotonic() - start > seconds:
            say(f"ports {sorted(pending)} still accept connections {seconds} s later")
            return 1
        time.sleep(0.01)
    if not alive(pid):
        say(f"pid {pid} had exited by the time its ports were refused")
        return 1
    say(f"refused {int((time.monotonic() - start) * 1000)} ms into polling; pid {pid} still running")
    return 0


def wait_inflight(admin_port, server, count, seconds):
    """Polls /admin/metrics until `server` has exactly `count` requests in flight."""
    start, last = time.monotonic(), None
    while time.monotonic() - start < seconds:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/admin/metrics", timeout=2) as r:
                d = json.load(r)
            last = [s["inFlight"] for s in d["servers"] if s["name"] == server]
            if last == [count]:
                return 0
        except (OSError, ValueError, KeyError) as e:
            last = repr(e)
        time.sleep(0.02)
    say(f"{server} never had {count} request(s) in flight within {seconds} s (last seen: {last})")
    return 1


def inflight(port, go, label):
    """A keep-alive POST (HTTP/1.1, no `Connection: close`) whose body stops half way until the
    file `go` exists. Bits: 2 = not a full 200 echoing the body, 4 = no `Connection: close`,
    8 = the server did not close the connection after that response."""
    body = json.dumps({"id": 1, "name": label, "tags": ["a"], "payload": "x" * 200}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /bench/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
              + b"Content-Length: %d\r\n\r\n" % len(body) + body[:50])
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            say(f"{label}: never told to send the rest of its body")
            return 1
        time.sleep(0.01)
    s.sendall(body[50:])
    outcome, status, headers, payload = read_response(s)
    flags = 0
    if outcome != "ok" or status != 200 or payload != body:
        flags |= 2
        say(f"{label}: expected a full 200 echoing the body, got {outcome} status={status} body={payload[:60]!r}")
    if headers.get("connection", "").lower() != "close":
        flags |= 4
        say(f"{label}: the response has no Connection: close (headers: {headers})")
    if outcome == "ok":
        closed, how = server_closes(s, 5)
        if not closed:
            flags |= 8
            say(f"{label}: {how}")
    s.close()
    if flags == 0:
        say(f"{label}: 200, Connection: close, then the server closed the connection")
    return flags


def stuck(port, seconds):
    """A request whose body never completes. Passes when the server closes the connection
    without a response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /bench/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
    s.settimeout(seconds)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        say(f"the stuck request's connection was still open after {seconds} s")
        return 1
    if data:
        say(f"expected the connection to be closed without a response, got {data[:80]!r}")
        return 1
    return 0


def load(port, pid, clients=16):
    """Keep-alive clients hammer /api/hello; SIGTERM once the load runs. Bits:
    2 = a request sent before the signal did not get a full 200 (or none was sent),
    4 = a response received before the signal carried `Connection: close` (keep-alive broken),
    8 = no response during the drain carried `Connection: close`, or the server did not close
        the connection after one,
    16 = no new connection was refused within 3 s of the signal, or a connect failed otherwise
         than with ECONNREFUSED,
    32 = a response after the signal was truncated, not a 200, or never came (timeout),
    64 = the load never got going (2000 requests within 10 s) before the signal."""
    lock = threading.Lock()
    stats = dict(before_ok=0, before_bad=0, close_before=0, after_ok=0, close_during_drain=0,
                 inflight_close=0, closed_after_close=0, open_after_close=0, cut_after=0,
                 bad_after=0, refused_after=0, connect_errors=0)
    notes = []
    signalled_at = [None]
    first_refusal = [None]
    deadline = [time.monotonic() + 30]

    def note(text):
        if len(notes) < 10:
            notes.append(text)

    def client():
        sock = None
        while time.monotonic() < deadline[0]:
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                except ConnectionRefusedError:
                    with lock:
                        if signalled_at[0] is None:
                            stats["connect_errors"] += 1
                            note("connection refused before the signal")
                        else:
                            stats["refused_after"] += 1
                            first_refusal[0] = first_refusal[0] or time.monotonic()
                            return
                    time.sleep(0.01)
                    continue
                except OSError as e:
                    with lock:
                        stats["connect_errors"] += 1
                        note(f"connect: {e!r}")
                        if signalled_at[0] is not None:
                            return
                    time.sleep(0.01)
                    continue
            sent_at = None
            try:
                sock.sendall(b"GET /api/hello HTTP/1.1\r\nHost: t\r\n\r\n")
                sent_at = time.monotonic()
                outcome, status, headers, _ = read_response(sock)
            except OSError:
                outcome, status, headers = "cut", None, {}
            received_at = time.monotonic()
            close = headers.get("connection", "").lower() == "close"
            with lock:
                signal_time = signalled_at[0]
                before = sent_at is not None and (signal_time is None or sent_at < signal_time)
                answered_before = signal_time is None or received_at < signal_time
                good = outcome == "ok" and status == 200
                if before:
                    stats["before_ok" if good else "before_bad"] += 1
                    if not good:
                        note(f"sent before the signal: {outcome} {status}")
                elif good:
                    stats["after_ok"] += 1
                elif outcome == "cut":
                    # Sent after SIGTERM on a kept-alive connection the server had already
                    # finished with: not a request "already sent when SIGTERM arrives".
                    stats["cut_after"] += 1
                else:
                    stats["bad_after"] += 1
                    note(f"sent after the signal: {outcome} {status}")
                if good and close:
                    if answered_before:
                        stats["close_before"] += 1
                    else:
                        stats["close_during_drain"] += 1
                        if before:
                            stats["inflight_close"] += 1
            if good and close and not answered_before:
                closed, how = server_closes(sock, 5)
                with lock:
                    stats["closed_after_close" if closed else "open_after_close"] += 1
                    if not closed:
                        note(how)
            if not good or close:
                sock.close()
                sock = None

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    # Signal once the load is established (bounded), not after a fixed time.
    ready_by = time.monotonic() + 10
    established = False
    while time.monotonic() < ready_by and not established:
        with lock:
            established = stats["before_ok"] >= 2000
        time.sleep(0.01)
    with lock:
        signalled_at[0] = time.monotonic()
        deadline[0] = signalled_at[0] + 15
    os.kill(pid, signal.SIGTERM)
    for t in threads:
        t.join(max(0.0, deadline[0] + 6 - time.monotonic()))
    hung = sum(t.is_alive() for t in threads)
    refused_ms = int((first_refusal[0] - signalled_at[0]) * 1000) if first_refusal[0] else None
    print(" ".join(f"{k}={v}" for k, v in stats.items())
          + f" first_refusal_ms={refused_ms} hung_clients={hung}", flush=True)
    for text in notes:
        say(text)
    flags = 0
    if stats["before_bad"] or not stats["before_ok"]:
        flags |= 2
    if stats["close_before"]:
        flags |= 4
    if not stats["close_during_drain"] or stats["open_after_close"]:
        flags |= 8
    if refused_ms is None or refused_ms > 3000 or stats["connect_errors"]:
        flags |= 16
    if stats["bad_after"] or hung:
        flags |= 32
    if not established:
        flags |= 64
        say("the load never reached 2000 requests within 10 s; signalled anyway")
    return flags


def listening_ports(pid):
    """TCP ports the process holds in LISTEN state (its socket inodes against /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def blocked_on_stderr(pid):
    """A thread of the process sleeps in a write to its (full) stderr pipe."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                wchan = f.read()
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                call = f.read().split()
        except OSError:
            continue
        # write(2, ...): syscall 1 on x86_64, 64 on aarch64.
        if "pipe_write" in wchan or call[:2] in (["1", "0x2"], ["64", "0x2"]):
            return True
    return False


def failstart(log, expected, ports, argv):
    """Runs an app whose start must fail, with stderr a full pipe: the process blocks in the
    write of its error message, so what it holds at that moment can be inspected while it is
    still alive. Bits: 2 = it never got to write to stderr, 4 = a listening socket (or one of
    `ports`) was still bound while it reported the error, 8 = exit status not exactly 2,
    16 = stderr is not exactly the expected line, 32 = it did not exit within 5 s of the
    message being read. Prints "exit N"."""
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ: the smallest pipe
    except OSError:
        pass
    flags = fcntl.fcntl(w, fcntl.F_GETFL)
    fcntl.fcntl(w, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    filler = 0
    for size in (4096, 1):
        try:
            while True:
                filler += os.write(w, b"." * size)
        except BlockingIOError:
            pass
    fcntl.fcntl(w, fcntl.F_SETFL, flags)
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=w, stdin=subprocess.DEVNULL)
    os.close(w)
    result = 0
    try:
        start = time.monotonic()
        blocked = False
        while time.monotonic() - start < 15 and proc.poll() is None:
            if blocked_on_stderr(proc.pid):
                blocked = True
                break
            time.sleep(0.005)
        if not blocked:
            result |= 2
            say("the app never blocked writing its error to stderr "
                + (f"(it exited with {proc.returncode} first)" if proc.poll() is not None else "within 15 s"))
        else:
            held = listening_ports(proc.pid)
            busy = [(p, o) for p in ports for o in [connect_outcome(p)] if o != "refused"]
            if held or busy:
                result |= 4
                say(f"while reporting the error the app still listened on {held}; ports not refused: {busy}")
            else:
                say("nothing was bound while the error was being reported")
        data = b""
        read_by = time.monotonic() + 10
        while time.monotonic() < read_by:
            ready, _, _ = select.select([r], [], [], max(0.0, read_by - time.monotonic()))
            if not ready:
                break
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            result |= 32
            say("still running 5 s after its error message was read")
            proc.kill()
            code = proc.wait()
        print(f"exit {code}", flush=True)
        if code != 2:
            result |= 8
            say(f"exit status {code}, expected 2")
        message = data[filler:].decode(errors="replace")
        if message != expected + "\n":
            result |= 16
            say(f"stderr was {message!r}; expected exactly one line {expected!r}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(r)
    return result


def metrics(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/admin/metrics", timeout=5) as r:
        return {x["name"]: x for x in json.load(r)["servers"]}


def storm(port, admin_port, pid):
    """Hostile clients that hang up in every phase, and requests the engine cannot hold; then
    in-flight must return to 0 within 5 s and SIGTERM must end the app within 1 s."""
    many = b"&".join(b"a%d=1" % i for i in range(600))
    shapes = [
        b"GET /api/hel",
        b"GET /api/hello HTTP/1.1\r\nHost: x\r\nX-A: 1",
        b"POST /bench/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
        b"POST /bench/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        b"GET /api/hello?" + many + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /bench/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /bench/async HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/hello HTTP/1.1\r\nHost: x\r\n\r\nGET /api/hello HTTP/1.1\r\nHost: x\r\n\r\nPOST /bench/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab",
    ]
    sent = 0
    for i in range(1600):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(shapes[i % len(shapes)])
            if i % 3 == 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
            sent += 1
        except OSError:
            pass
    deadline = time.monotonic() + 5
    left = None
    while time.monotonic() < deadline:
        left = metrics(admin_port)["public"]["inFlight"]
        if left == 0:
            break
        time.sleep(0.05)
    say(f"{sent} hostile clients; public in flight afterwards: {left}")
    result = 0
    if left != 0:
        result |= 2
    start = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while alive(pid) and time.monotonic() - start < 10:
        time.sleep(0.005)
    took = time.monotonic() - start
    say(f"SIGTERM to exit: {took * 1000:.0f} ms")
    if took >= 1:
        result |= 4
    return result


def startup_signals(app, rounds):
    """SIGTERM at a random instant after the manager has trapped its signals (its "starting"
    line), over and over: every process must exit 0, none by the signal's default action."""
    import random
    rng = random.Random(1234)
    outcomes, before_ready = {}, 0
    for round in range(rounds):
        proc = subprocess.Popen([app, "--public-port", "0", "--admin-port", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        flags = fcntl.fcntl(proc.stdout, fcntl.F_GETFL)
        fcntl.fcntl(proc.stdout, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        out, deadline = b"", time.monotonic() + 10
        while b"starting " not in out and time.monotonic() < deadline and proc.poll() is None:
            select.select([proc.stdout], [], [], 0.05)
            out += proc.stdout.read() or b""
        time.sleep(rng.random() * 0.03)
        out += proc.stdout.read() or b""
        if b"ready: " not in out:
            before_ready += 1
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "hung"
        outcomes[code] = outcomes.get(code, 0) + 1
    say(f"{rounds} starts, {before_ready} signalled before their ready line; exit statuses {outcomes}")
    return 0 if outcomes == {0: rounds} else 2


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descriptors(port, admin_port, pid, clients):
    """With the app's descriptors used up by clients of the public server, a client of the admin
    server must not make the app spin; once descriptors free up, it is served."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []
    for _ in range(clients):
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    time.sleep(0.3)
    waiting = socket.create_connection(("127.0.0.1", admin_port), timeout=5)
    time.sleep(0.2)
    before = cpu_seconds(pid)
    time.sleep(1)
    used = cpu_seconds(pid) - before
    say(f"{len(held)} public clients; app CPU while out of descriptors: {used:.2f} s in 1 s")
    result = 0 if used < 0.3 else 2
    for s in held:
        s.close()
    waiting.settimeout(5)
    try:
        waiting.sendall(b"GET /admin/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _, status, _, _ = read_response(waiting)
    except OSError as error:
        status = f"error {error}"
    say(f"the waiting admin client, once descriptors are back: {status}")
    if status != 200:
        result |= 4
    return result


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "refused":
        sys.exit(refused([int(p) for p in args]))
    if command == "refused-while-alive":
        sys.exit(refused_while_alive(int(args[0]), float(args[1]), [int(p) for p in args[2:]]))
    if command == "wait-inflight":
        sys.exit(wait_inflight(int(args[0]), args[1], int(args[2]), float(args[3])))
    if command == "inflight":
        sys.exit(inflight(int(args[0]), args[1], args[2]))
    if command == "stuck":
        sys.exit(stuck(int(args[0]), float(args[1])))
    if command == "load":
        sys.exit(load(int(args[0]), int(args[1])))
    if command == "storm":
        sys.exit(storm(int(args[0]), int(args[1]), int(args[2])))
    if command == "startup-signals":
        sys.exit(startup_signals(args[0], int(args[1])))
    if command == "descriptors":
        sys.exit(descriptors(int(args[0]), int(args[1]), int(args[2]), int(args[3])))
    if command == "failstart":
        sys.exit(failstart(args[0], args[1], [int(p) for p in args[2].split(",") if p], args[3:]))
    sys.exit(f"unknown command {command}")
PY

# refused PORT...: every port refuses a TCP connection right now (ECONNREFUSED only).
refused() { python3 "$CLIENTS" refused "$@"; }
# refused_while_alive PID SECONDS PORT...: the ports are refused within SECONDS while PID still runs.
refused_while_alive() { python3 "$CLIENTS" refused-while-alive "$@"; }
# wait_inflight ADMIN-PORT SERVER N: the server reports exactly N requests in flight (10 s at most).
wait_inflight() { python3 "$CLIENTS" wait-inflight "$1" "$2" "$3" 10; }
# alive PID: running (a zombie does not count).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "    pid $1 is gone" >&2; return 1; }
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]] || { echo "    pid $1 has exited" >&2; return 1; }
}
# bits_ok STATUS MASK: a client's exit status has none of the MASK findings (and it did not crash).
bits_ok() { [[ $1 =~ ^[0-9]+$ ]] && (($1 < 128 && ($1 & 1) == 0 && ($1 & $2) == 0)); }
# wait_log FILE PATTERN SECONDS: the pattern appears in the file in time.
wait_log() {
    local i
    for ((i = 0; i < $3 * 50; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.02; done
    echo "    '$2' did not appear in $(basename "$1") within $3 s" >&2
    return 1
}
# show FILE: a client's output, indented.
show() { [[ -s "$1" ]] && sed 's/^    //; s/^/    /' "$1"; return 0; }
# forget PID: a reaped process is no longer ours to kill at cleanup (its PID may be reused).
forget() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}
# status CODE: curl's HTTP status for the URL (10 s at most).
status() { curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }

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
    wait_log "$out" holding 10 && return 0
    fail "hold ports $*" "$(cat "$out")"; return 1
}

release() { kill -KILL "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; forget "$HOLDER"; }

# Runs the app through a command when set (taskset, say).
APP_WRAPPER=()

# start NAME ARGS...: start the app, wait for its ready line (20 s at most); sets APP_PID,
# LOG=$WORK/NAME.log, ERR=$WORK/NAME.err. On failure the reason is appended to ERR.
start() {
    local name=$1 i; shift
    LOG="$WORK/$name.log"; ERR="$WORK/$name.err"
    "${APP_WRAPPER[@]}" "$APP" "$@" >"$LOG" 2>"$ERR" &
    APP_PID=$!
    PIDS+=("$APP_PID")
    for ((i = 0; i < 400; i++)); do
        grep -q "ready: " "$LOG" 2>/dev/null && return 0
        if ! kill -0 "$APP_PID" 2>/dev/null; then
            wait "$APP_PID"; echo "(exited with $? before its ready line)" >>"$ERR"; forget "$APP_PID"
            return 1
        fi
        sleep 0.05
    done
    echo "(no ready line within 20 s)" >>"$ERR"
    return 1
}

# wait_exit PID SECONDS: wait for a process to exit on its own; kill it after SECONDS.
# Sets EXIT_CODE ("timeout" if it had to be killed).
wait_exit() {
    local pid=$1 limit=$(($2 * 50)) i
    for ((i = 0; i < limit; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; EXIT_CODE=timeout
    else
        wait "$pid"; EXIT_CODE=$?
    fi
    forget "$pid"
}

# stop_with SIGNAL [SECONDS]: send it to the app, wait up to SECONDS (default 5) for it to exit,
# kill it after that; sets EXIT_CODE ("timeout" if killed) and STOP_MS.
stop_with() {
    local signal=$1 limit=$((${2:-5} * 50)) start_ns i code
    start_ns=$(date +%s%N)
    kill "-$signal" "$APP_PID"
    for ((i = 0; i < limit; i++)); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.02; done
    if kill -0 "$APP_PID" 2>/dev/null; then
        kill -KILL "$APP_PID"; wait "$APP_PID" 2>/dev/null; code=timeout
    else
        wait "$APP_PID"; code=$?
    fi
    STOP_MS=$((($(date +%s%N) - start_ns) / 1000000))
    EXIT_CODE=$code
    forget "$APP_PID"
}

# json URL PYTHON-EXPRESSION: fetch URL (expects 200) and evaluate the expression on `d`.
json() {
    local body status
    body=$(curl -s --max-time 10 -w '\n%{http_code}' "$1") || { echo "    $1: curl failed" >&2; return 1; }
    status=${body##*$'\n'}; body=${body%$'\n'*}
    [[ "$status" == 200 ]] || { echo "    $1 -> HTTP $status" >&2; return 1; }
    python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if ($2) else 1)" "$body" \
        || { echo "    $1 -> $body" >&2; return 1; }
}

# failed_start NAME EXPECTED-STDERR-LINE PORTS-THAT-MUST-BE-FREE APP-ARGS...: runs an app whose
# start fails (see `failstart` in the clients) and checks exit status, message and that
# nothing is bound while the app reports the error.
failed_start() {
    local name=$1 expected=$2 ports=$3 rc code; shift 3
    python3 "$CLIENTS" failstart "$WORK/$name.log" "$expected" "$ports" "$APP" "$@" >"$WORK/$name.out" 2>&1
    rc=$?
    show "$WORK/$name.out"
    code=$(sed -n 's/^exit //p' "$WORK/$name.out")
    check "$name: exit status exactly 2 (got ${code:-none})" bits_ok "$rc" $((2 | 8))
    check "$name: exactly one line on stderr: $expected" bits_ok "$rc" $((2 | 16))
    check "$name: nothing bound while the error is reported (app alive, blocked on stderr)" bits_ok "$rc" $((2 | 4))
    check "$name: exits within 5 s of reporting" bits_ok "$rc" $((2 | 32))
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
    check "GET /api/hello is application/json" bash -c "curl -s --max-time 10 -I http://127.0.0.1:$P/api/hello | grep -qi '^content-type: application/json'"
    check "GET /api/status" json "http://127.0.0.1:$P/api/status" "d['status']=='ok' and d['server']=='public' and d['port']==$P and d['uptimeSeconds']>=0"
    check "GET /admin/metrics (every server, live figures)" json "http://127.0.0.1:$A/admin/metrics" \
        "sorted(s['name'] for s in d['servers'])==['admin','public'] and [s for s in d['servers'] if s['name']=='public'][0]['requests']>=3 and all({'requests','errors','inFlight','latencyMs','uptimeSeconds'}<=set(s) for s in d['servers'])"
    check "GET /admin/config (effective configuration)" json "http://127.0.0.1:$A/admin/config" \
        "{s['name']:(s['preferredPort'],s['boundPort'],s['host'],s['fallbackPorts'][0],s['fallbackPorts'][-1]) for s in d['servers']}=={'public':($P,$P,'127.0.0.1',$P,$((P + 9))),'admin':($A,$A,'127.0.0.1',$A,$((A + 9)))} and all('maxBodyBytes' in s['limits'] and 'connectionTimeoutSeconds' in s['limits'] for s in d['servers'])"
    check "health: /healthz and /readyz on both servers" bash -c \
        "$(declare -f status); for u in $P/healthz $P/readyz $A/healthz $A/readyz; do [[ \$(status http://127.0.0.1:\$u) == 200 ]] || exit 1; done"
    for _ in 1 2 3 4 5; do curl -s --max-time 10 "http://127.0.0.1:$P/api/hello" >/dev/null; done
    curl -s --max-time 10 "http://127.0.0.1:$P/nope/1" >/dev/null; curl -s --max-time 10 "http://127.0.0.1:$P/nope/2" >/dev/null
    check "Prometheus exposition parses and counts the traffic" "$PROM_PYTHON" - "$A" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
port = sys.argv[1]
with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/metrics?format=prometheus", timeout=10) as r:
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers["Content-Type"]
    text = r.read().decode()
with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/admin/metrics", headers={"Accept": "text/plain"}), timeout=10) as r:
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
    check "system answers are not cached: Cache-Control: no-store on /api/status, probes and /admin/*" bash -c \
        "for u in $P/api/status $P/healthz $P/readyz $A/admin/metrics $A/admin/config; do curl -s --max-time 10 -D - -o /dev/null http://127.0.0.1:\$u | tr -d '\r' | grep -qi '^cache-control: no-store\$' || { echo \"    \$u: no Cache-Control: no-store\" >&2; exit 1; }; done"
    check "/admin/metrics varies by Accept (JSON or Prometheus text)" bash -c \
        "curl -s --max-time 10 -D - -o /dev/null http://127.0.0.1:$A/admin/metrics | tr -d '\r' | grep -qi '^vary: accept\$'"
    check "unknown path -> 404 JSON" bash -c "$(declare -f status); [[ \$(status http://127.0.0.1:$P/nope) == 404 ]]"
    check "admin routes are not on the public port" bash -c "$(declare -f status); [[ \$(status http://127.0.0.1:$P/admin/config) == 404 ]]"
    # Whether the ports are refused after the exit is not checked: an exited process holds no
    # port, so such a check could never fail. Refusal while the process is still running is
    # checked in the drain and second-signal cases.
    stop_with TERM
    check "SIGTERM -> exit 0 (took ${STOP_MS} ms)" test "$EXIT_CODE" = 0
    check "log: servers stopped" bash -c "grep -q 'public stopped' '$LOG' && grep -q 'admin stopped' '$LOG'"
else
    fail "both servers start" "$(cat "$ERR")"
fi

echo
echo "== Prometheus: every route's series from the start, latency buckets that resolve an API's quantiles"
if start metrics-fresh --public-port "$P" --admin-port "$A"; then
    check "before any request: every public route's series, at zero, with 100 µs … 10 s buckets" "$PROM_PYTHON" - "$A" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/admin/metrics", headers={"Accept": "text/plain"}), timeout=10) as r:
    text = r.read().decode()
samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
def routes(name, **labels):
    return {s.labels["route"]: s.value for s in samples if s.name == name and s.labels["server"] == "public"
            and all(s.labels.get(k) == v for k, v in labels.items())}
totals = routes("http_server_requests_total", status="2xx")
assert {"/api/hello", "/api/status", "unmatched"} <= set(totals) and set(totals.values()) == {0}, totals
bounds = sorted({float(s.labels["le"]) for s in samples if s.name == "http_server_request_duration_seconds_bucket"})
assert bounds[0] == 0.0001 and 10.0 in bounds and len(bounds) == 17, bounds
PY
    for _ in $(seq 100); do curl -s --max-time 10 "http://127.0.0.1:$P/api/hello" >/dev/null; done
    check "p99 of GET /api/hello from the buckets resolves below 5 ms (histogram_quantile's interpolation)" "$PROM_PYTHON" - "$A" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/admin/metrics", headers={"Accept": "text/plain"}), timeout=10) as r:
    text = r.read().decode()
buckets = sorted((float(s.labels["le"]), s.value) for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == "http_server_request_duration_seconds_bucket" and s.labels["route"] == "/api/hello")
count = buckets[-1][1]
rank, lower, below = 0.99 * count, 0.0, 0.0
for bound, cumulative in buckets:
    if cumulative >= rank:
        p99 = lower + (bound - lower) * (rank - below) / max(cumulative - below, 1)
        break
    lower, below = bound, cumulative
print(f"    {int(count)} requests, p99 ~ {p99 * 1000:.3f} ms")
assert count == 100 and p99 < 0.005, (count, p99)
PY
    stop_with TERM
else
    fail "start for the metrics check" "$(cat "$ERR")"
fi

echo
echo "== SIGINT"
if start sigint --public-port "$P" --admin-port "$A"; then
    stop_with INT
    check "SIGINT -> exit 0 (took ${STOP_MS} ms)" test "$EXIT_CODE" = 0
    check "log: servers stopped" bash -c "grep -q 'public stopped' '$LOG' && grep -q 'admin stopped' '$LOG'"
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
# The app's stderr is a full pipe, so the app stays alive, blocked in the write of its error
# message, until it is read: what it still has bound at that moment is what a failed start
# leaves behind (after the exit nothing can be bound, so checking then would prove nothing).
hold $(seq "$P" $((P + 9)))
failed_start busy \
    "error: server 'public' on 127.0.0.1: every port is busy (tried $(seq -s ', ' "$P" $((P + 9))))" \
    "$((P + 10))" --public-port "$P" --admin-port $((P + 10))
release
# The admin server fails after the public one bound: the public one must be rolled back before
# the error is reported.
hold $(seq $((P + 11)) $((P + 20)))
failed_start "admin busy" \
    "error: server 'admin' on 127.0.0.1: every port is busy (tried $(seq -s ', ' $((P + 11)) $((P + 20))))" \
    "$P" --public-port "$P" --admin-port $((P + 11))
release

echo
echo "== in-flight requests during SIGTERM"
if start drain --public-port "$P" --admin-port "$A" --bench-routes --shutdown-timeout 10; then
    # Two keep-alive requests (HTTP/1.1, no Connection: close) are in flight when SIGTERM lands:
    # headers sent, body still arriving. A finishes first while B keeps the drain going, so the
    # server (not the exit) must be what closes A's connection.
    python3 "$CLIENTS" inflight "$P" "$WORK/go.a" A >"$WORK/a.out" 2>&1 &
    CLIENT_A=$!; PIDS+=("$CLIENT_A")
    python3 "$CLIENTS" inflight "$P" "$WORK/go.b" B >"$WORK/b.out" 2>&1 &
    CLIENT_B=$!; PIDS+=("$CLIENT_B")
    check "two requests in flight on public (admin metrics)" wait_inflight "$A" public 2
    kill -TERM "$APP_PID"
    check "new connections refused on both ports during the drain, app still running" \
        refused_while_alive "$APP_PID" 3 "$P" "$A"
    check "log: shutting down, draining" wait_log "$LOG" "shutting down: no new connections" 5
    touch "$WORK/go.a"
    wait_exit "$CLIENT_A" 15; RC_A=$EXIT_CODE
    show "$WORK/a.out"
    check "A (in flight at SIGTERM) completes with a full 200" bits_ok "$RC_A" 2
    check "A's response carries Connection: close (it was a keep-alive request)" bits_ok "$RC_A" 4
    check "then the server closes A's connection" bits_ok "$RC_A" 8
    check "... while the app still drains B" alive "$APP_PID"
    touch "$WORK/go.b"
    wait_exit "$CLIENT_B" 15; RC_B=$EXIT_CODE
    show "$WORK/b.out"
    check "B completes with a full 200, Connection: close, then closed" bits_ok "$RC_B" $((2 | 4 | 8))
    wait_exit "$APP_PID" 10
    check "then exit 0" test "$EXIT_CODE" = 0
else
    fail "start for the drain case" "$(cat "$ERR")"
fi

echo
echo "== SIGTERM under load"
if start load --public-port "$P" --admin-port "$A"; then
    # 16 keep-alive clients hammer /api/hello; the client sends SIGTERM once the load runs.
    python3 "$CLIENTS" load "$P" "$APP_PID" >"$WORK/load.out" 2>&1 &
    LOAD=$!; PIDS+=("$LOAD")
    wait_exit "$LOAD" 40; RC_LOAD=$EXIT_CODE
    show "$WORK/load.out"
    check "requests sent before SIGTERM all completed with a full 200" bits_ok "$RC_LOAD" 2
    check "keep-alive held before SIGTERM (no Connection: close)" bits_ok "$RC_LOAD" 4
    check "keep-alive responses during the drain carry Connection: close, then the server closes" bits_ok "$RC_LOAD" 8
    check "new connections refused within 3 s of SIGTERM (ECONNREFUSED; no other connect error)" bits_ok "$RC_LOAD" 16
    check "no truncated, failed or hanging response after SIGTERM" bits_ok "$RC_LOAD" 32
    check "the load was established before SIGTERM (2000 requests within 10 s)" bits_ok "$RC_LOAD" 64
    wait_exit "$APP_PID" 12
    check "exit 0 within the deadline" test "$EXIT_CODE" = 0
else
    fail "start for the load case" "$(cat "$ERR")"
fi

echo
echo "== request IDs and CORS (middleware) in the demo"
# header URL [curl args...]: the value of one response header (empty when absent)
header() { local name=$1; shift; curl -s --max-time 10 -D - -o /dev/null "$@" | tr -d '\r' | awk -v n="$(echo "$name" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1) == n { print $2 }'; }
if start middleware --public-port "$P" --admin-port "$A" --cors-origin https://app.example.com --log-level debug; then
    check "a sane caller's X-Request-Id is echoed (public)" bash -c \
        "$(declare -f header); [[ \$(header X-Request-Id -H 'X-Request-Id: it-123' http://127.0.0.1:$P/api/hello) == it-123 ]]"
    check "and is the access log's requestID" wait_log "$LOG" "requestID=it-123" 5
    check "without one, a generated 32-hex ID is echoed (admin too, on a 404 too)" bash -c \
        "$(declare -f header); for u in $P/api/hello $A/admin/config $P/nope; do id=\$(header X-Request-Id http://127.0.0.1:\$u); [[ \$id =~ ^[0-9a-f]{32}\$ ]] || exit 1; done"
    check "CORS preflight from the allowed origin: 204 with the allowed methods" bash -c \
        "out=\$(curl -s --max-time 10 -D - -o /dev/null -X OPTIONS -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: GET' http://127.0.0.1:$P/api/hello | tr -d '\r' | tr 'A-Z' 'a-z'); [[ \$out == *' 204'* && \$out == *'access-control-allow-origin: https://app.example.com'* && \$out == *'access-control-allow-methods: '*get* ]]"
    check "CORS preflight from another origin: 403" bash -c \
        "$(declare -f status); [[ \$(status -X OPTIONS -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: GET' http://127.0.0.1:$P/api/hello) == 403 ]]"
    check "a cross-origin GET gets Access-Control-Allow-Origin and X-Request-Id exposed" bash -c \
        "$(declare -f header); [[ \$(header Access-Control-Allow-Origin -H 'Origin: https://app.example.com' http://127.0.0.1:$P/api/hello) == https://app.example.com && \$(header Access-Control-Expose-Headers -H 'Origin: https://app.example.com' http://127.0.0.1:$P/api/hello) == X-Request-Id ]]"
    check "no CORS headers for another origin" bash -c \
        "$(declare -f header); [[ -z \$(header Access-Control-Allow-Origin -H 'Origin: https://evil.example' http://127.0.0.1:$P/api/hello) ]]"
    stop_with TERM
else
    fail "start with middleware" "$(cat "$ERR")"
fi
check "--cors-origin must be an origin (exit 64, a clear message)" bash -c \
    "out=\$('$APP' --cors-origin 'app.example.com' 2>&1); code=\$?; [[ \$code == 64 ]] && grep -q 'takes an origin' <<<\"\$out\""
echo
echo "== streaming in the demo: events, a large stream, a large upload, SIGTERM mid-stream"
if start streaming --public-port "$P" --admin-port "$A" --bench-routes --shutdown-timeout 10; then
    EVENTS="$WORK/events.txt"
    curl -sS -N --max-time 30 "http://127.0.0.1:$A/admin/events" >"$EVENTS" 2>"$WORK/events.err" &
    EVENTS_PID=$!
    PIDS+=("$EVENTS_PID")
    check "/admin/events sends a metrics event a second" bash -c \
        "for i in \$(seq 100); do [[ \$(grep -c '^event: metrics' '$EVENTS') -ge 2 ]] && exit 0; sleep 0.05; done; exit 1"
    check "each event's data is the metrics JSON" python3 -c "
import json, sys
lines = [l[6:] for l in open('$EVENTS').read().splitlines() if l.startswith('data: ')]
d = json.loads(lines[0])
sys.exit(0 if {s['name'] for s in d['servers']} == {'public', 'admin'} else 1)"
    check "a 256 MiB stream arrives whole (chunked)" bash -c \
        "[[ \$(curl -sS --max-time 60 -o /dev/null -w '%{size_download}' 'http://127.0.0.1:$P/bench/stream?bytes=268435456') == 268435456 ]]"
    check "a 256 MiB streamed upload is counted with bounded memory" bash -c \
        "before=\$(awk '/^VmRSS/ {print \$2}' /proc/$APP_PID/status); out=\$(head -c 268435456 /dev/zero | curl -sS --max-time 60 -X POST -T - http://127.0.0.1:$P/bench/upload); after=\$(awk '/^VmRSS/ {print \$2}' /proc/$APP_PID/status); [[ \$out == '{\"bytes\":268435456}' ]] && (( after - before < 32768 ))"
    SLOW="$WORK/slow.txt"
    # A download still running when SIGTERM lands: it has the drain deadline to finish.
    curl -sS --max-time 60 --limit-rate 20M -o "$SLOW" "http://127.0.0.1:$P/bench/stream?bytes=41943040" 2>"$WORK/slow.err" &
    SLOW_PID=$!
    PIDS+=("$SLOW_PID")
    sleep 0.3
    stop_with TERM 15
    check "SIGTERM with a stream in flight: exit 0" test "$EXIT_CODE" = 0
    events_rc=0; wait "$EVENTS_PID" || events_rc=$?
    slow_rc=0; wait "$SLOW_PID" || slow_rc=$?
    forget "$EVENTS_PID"; forget "$SLOW_PID"
    check "the event stream ended cleanly at the drain (curl exit 0)" test "$events_rc" = 0
    check "the download in flight completed within the drain deadline" bash -c \
        "[[ $slow_rc == 0 && \$(stat -c %s '$SLOW') == 41943040 ]]"
else
    fail "start with streaming routes" "$(cat "$ERR")"
fi

echo
echo "== admin bearer token"
if APP_ADMIN_TOKEN=s3cret-t0ken start token --public-port "$P" --admin-port "$A"; then
    check "admin route without token -> 401" bash -c \
        "$(declare -f status); [[ \$(status http://127.0.0.1:$A/admin/metrics) == 401 ]]"
    check "admin route with a wrong token -> 401" bash -c \
        "$(declare -f status); [[ \$(status -H 'Authorization: Bearer nope' http://127.0.0.1:$A/admin/config) == 401 ]]"
    check "admin route with the token -> 200" bash -c \
        "$(declare -f status); [[ \$(status -H 'Authorization: Bearer s3cret-t0ken' http://127.0.0.1:$A/admin/metrics) == 200 ]]"
    check "config says how, never the token" bash -c \
        "out=\$(curl -s --max-time 10 -H 'Authorization: Bearer s3cret-t0ken' http://127.0.0.1:$A/admin/config); [[ \$out == *'bearer token'* && \$out != *s3cret* ]]"
    check "public routes need no token" json "http://127.0.0.1:$P/api/hello" "'message' in d"
    stop_with TERM
    check "the token never appears in the logs" bash -c "! grep -q s3cret '$LOG' '$ERR'"
else
    fail "start with a token" "$(cat "$ERR")"
fi

echo
echo "== engine threads follow the CPUs the process may use"
if command -v taskset >/dev/null && (( $(nproc) > 1 )); then
    APP_WRAPPER=(taskset -c 0)
    if start taskset --public-port "$P" --admin-port "$A"; then
        check "under taskset -c 0: one engine thread per server" \
            json "http://127.0.0.1:$A/admin/config" "[s['threads'] for s in d['servers']] == [1, 1]"
        stop_with TERM
    else
        fail "start under taskset" "$(cat "$ERR")"
    fi
    APP_WRAPPER=()
    if start all-cpus --public-port "$P" --admin-port "$A"; then
        check "without it: one per CPU ($(nproc))" \
            json "http://127.0.0.1:$A/admin/config" "[s['threads'] for s in d['servers']] == [$(nproc), $(nproc)]"
        stop_with TERM
    else
        fail "start on every CPU" "$(cat "$ERR")"
    fi
else
    echo "  skip  (needs taskset and more than one CPU)"
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
    check "systemd-socket-activate listens on $S" wait_log "$WORK/activated.err" "Listening on 127.0.0.1:$S" 10
    check "the first request on the activated socket is served" json "http://127.0.0.1:$S/api/status" \
        "d['server']=='public' and d['port']==$S"
    check "the app reports ready" wait_log "$LOG" "ready: " 10
    check "public did not bind its own port" refused "$P"
    check "admin bound its port as usual" json "http://127.0.0.1:$A/admin/config" \
        "[s['boundPort'] for s in d['servers']]==[$S,$A]"
    stop_with TERM
    check "activated app exits 0 on SIGTERM" test "$EXIT_CODE" = 0
else
    echo "  skip  systemd-socket-activate is not installed (apt-get install systemd)"
fi

echo
echo "== systemd notify: READY, STATUS, WATCHDOG, STOPPING to a socket of our own"
NOTIFY="$WORK/notify.sock"
# Stands in for systemd until STATUS=stopped (30 s at most).
check "the notify socket listens" notify_listener "$NOTIFY" "$WORK/notify.msgs" 30 "STATUS=stopped"
if NOTIFY_SOCKET="$NOTIFY" WATCHDOG_USEC=300000 start notify --public-port "$P" --admin-port "$A"; then
    check "READY=1 with MAINPID and where each server listens" wait_log "$WORK/notify.msgs" \
        "^READY=1|MAINPID=$APP_PID|STATUS=serving: public http://127.0.0.1:$P, admin http://127.0.0.1:$A\$" 10
    check "WATCHDOG=1 every WATCHDOG_USEC/2 (three within a second)" bash -c \
        "sleep 1; (( \$(grep -c '^WATCHDOG=1\$' '$WORK/notify.msgs') >= 3 ))"
    stop_with TERM
    check "exit 0 on SIGTERM" test "$EXIT_CODE" = 0
    wait_exit "$LISTENER" 5
    show "$WORK/notify.msgs"
    check "in order: starting, READY=1, STOPPING=1, stopped" python3 -c '
import sys
lines = open(sys.argv[1]).read().splitlines()
def first(prefix):
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))
order = [first("STATUS=starting 2 servers"), first("READY=1|"), first("STOPPING=1|"), first("STATUS=stopped")]
sys.exit(0 if order == sorted(order) and sum(l.startswith("READY=1") for l in lines) == 1 else 1)' "$WORK/notify.msgs"
else
    fail "start with NOTIFY_SOCKET" "$(cat "$ERR")"
fi
check "without NOTIFY_SOCKET nothing is sent (the endpoints run above logged no notify error)" \
    bash -c "! grep -qi notify '$WORK/endpoints.err'"

# second_signal FIRST SECOND: a request is stuck in flight (its body never completes) with a 30 s
# drain deadline; after FIRST the app drains; SECOND must end it at once, with exit 0. The stuck
# request is no async handler (those would be answered 503), so its connection is closed without
# a response.
second_signal() {
    local first=$1 second=$2 label="SIG$1 then SIG$2"
    if ! start "second-$first-$second" --public-port "$P" --admin-port "$A" --bench-routes --shutdown-timeout 30; then
        fail "$label: start" "$(cat "$ERR")"; return
    fi
    python3 "$CLIENTS" stuck "$P" 40 >"$WORK/stuck-$first-$second.out" 2>&1 &
    local client=$!; PIDS+=("$client")
    check "$label: a request is stuck in flight" wait_inflight "$A" public 1
    kill "-$first" "$APP_PID"
    check "$label: after SIG$first the drain runs (ports refused, app running)" \
        refused_while_alive "$APP_PID" 3 "$P" "$A"
    check "$label: the stuck request is still open" alive "$client"
    stop_with "$second" 5
    check "$label: exit 0 in under 3 s after SIG$second (took ${STOP_MS} ms, exit $EXIT_CODE)" \
        bash -c "[[ '$EXIT_CODE' == 0 && $STOP_MS -lt 3000 ]]"
    check "$label: log says the second signal stops now" grep -q "second SIG$second: stopping now" "$LOG"
    wait_exit "$client" 10
    show "$WORK/stuck-$first-$second.out"
    check "$label: the stuck request's connection is closed, no response" test "$EXIT_CODE" = 0
}

echo
echo "== second signal stops at once"
second_signal TERM TERM
second_signal INT INT
second_signal TERM INT

echo
echo "== hostile clients in every phase, then SIGTERM"
if start storm --public-port "$P" --admin-port "$A" --bench-routes --shutdown-timeout 30; then
    python3 "$CLIENTS" storm "$P" "$A" "$APP_PID" >"$WORK/storm.out" 2>&1
    rc=$?
    show "$WORK/storm.out"
    check "every hostile request ended: nothing in flight" bits_ok "$rc" 2
    check "SIGTERM then exits within 1 s (30 s deadline, nothing to wait for)" bits_ok "$rc" 4
    wait_exit "$APP_PID" 10
    check "and exits 0" test "$EXIT_CODE" = 0
else
    fail "start for the storm" "$(cat "$ERR")"
fi

echo
echo "== SIGTERM at any instant of start-up"
python3 "$CLIENTS" startup-signals "$APP" 30 >"$WORK/startup.out" 2>&1
rc=$?
show "$WORK/startup.out"
check "30 starts, each signalled at a random instant after signals are trapped: all exit 0" test "$rc" = 0

echo
echo "== out of file descriptors"
LOG="$WORK/nofile.log"; ERR="$WORK/nofile.err"
# The app under a 256-descriptor limit it cannot raise (soft = hard).
python3 -c 'import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); os.execv(sys.argv[1], sys.argv[1:])' \
    "$APP" --public-port "$P" --admin-port "$A" >"$LOG" 2>"$ERR" &
APP_PID=$!; PIDS+=("$APP_PID")
if wait_log "$LOG" "ready: " 20; then
    check "the start warns that the limit is below what the servers may need" grep -q "open-file limit (256)" "$LOG"
    python3 "$CLIENTS" descriptors "$P" "$A" "$APP_PID" 1000 >"$WORK/nofile.out" 2>&1
    rc=$?
    show "$WORK/nofile.out"
    check "out of descriptors, the app backs off instead of spinning (< 0.3 s CPU in 1 s)" bits_ok "$rc" 2
    check "once descriptors free up, the waiting client is served" bits_ok "$rc" 4
    check "one warning says why accept fails" grep -q "out of file descriptors; backing off" "$LOG"
    stop_with TERM 10
    check "then SIGTERM exits 0" test "$EXIT_CODE" = 0
else
    fail "start under a 256-descriptor limit" "$(cat "$ERR")"
fi

summary "integration"
