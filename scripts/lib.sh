# Shared by the end-to-end test scripts (sourced): check bookkeeping, and a run of free ports.

PASSED=0
FAILED=0
FAILURES=()

pass() { PASSED=$((PASSED + 1)); echo "  ok    $1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); echo "  FAIL  $1${2:+: $2}"; }
# check NAME COMMAND...: the command's exit status decides.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

# free_port_run COUNT: the first of COUNT consecutive ports free right now (nothing listening,
# bindable), below the kernel's ephemeral range (32768 and up), so no outgoing connection of this
# machine can take one in between; nothing when none is found.
free_port_run() {
    python3 - "$1" <<'PY'
import random, socket, sys
count = int(sys.argv[1])
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    base = random.randrange(20000, 32768 - count)
    if all(free(base + i) for i in range(count)):
        print(base); break
PY
}

# summary NAME: the failures, the counts, and the exit status (0 only without a failure).
summary() {
    echo
    if ((FAILED > 0)); then
        echo "failed:"; printf '  - %s\n' "${FAILURES[@]}"
    fi
    echo "$1: $PASSED passed, $FAILED failed"
    ((FAILED == 0))
}

# notify_listener SOCKET FILE SECONDS [UNTIL]: stands in for systemd's notify socket in the
# background (sets LISTENER, adds it to PIDS): every datagram on one line of FILE ("|" for
# newlines), for SECONDS at most, or until a datagram contains UNTIL. Returns once the socket
# exists (5 s at most; non-zero if it never does).
notify_listener() {
    python3 - "$1" "$2" "$3" "${4:-}" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.2)
end = time.monotonic() + float(sys.argv[3])
until = sys.argv[4].encode()
with open(sys.argv[2], "a") as out:
    while time.monotonic() < end:
        try:
            data = s.recv(4096)
        except socket.timeout:
            continue
        out.write(data.decode().replace("\n", "|") + "\n")
        out.flush()
        if until and until in data:
            break
PY
    LISTENER=$!
    PIDS+=("$LISTENER")
    local i
    for ((i = 0; i < 100; i++)); do [[ -S $1 ]] && return 0; sleep 0.05; done
    return 1
}
