#!/usr/bin/env bash
# Checks the systemd units under deploy/systemd with systemd's own tools: `systemd-analyze verify`
# (with ExecStart pointing at the app just built), `systemd-analyze security` (exposure 2.0 or
# better), Type=notify, and TimeoutStopSec above the drain delay plus shutdown timeout of ExecStart.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v systemd-analyze >/dev/null || { echo "check-systemd: systemd-analyze is required (apt-get install systemd)" >&2; exit 2; }

FAILED=0
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; FAILED=$((FAILED + 1)); }

swift build --product app >/dev/null
APP="$(swift build --show-bin-path)/app"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp deploy/systemd/*.service deploy/systemd/*.socket "$WORK/"
SERVICE="$WORK/mhdservers-app.service"
sed -i "s|^ExecStart=/usr/local/bin/app |ExecStart=$APP |" "$SERVICE"

if out=$(cd "$WORK" && systemd-analyze verify --man=no mhdservers-app.service mhdservers-app.socket 2>&1) && [[ -z "$out" ]]; then
    ok "systemd-analyze verify: both units are valid"
else
    not_ok "systemd-analyze verify: $out"
fi

exposure=$(systemd-analyze security --offline=yes "$SERVICE" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
if systemd-analyze security --offline=yes --threshold=20 "$SERVICE" >/dev/null 2>&1; then
    ok "systemd-analyze security: exposure $exposure (2.0 or better)"
else
    not_ok "systemd-analyze security: exposure $exposure (must be 2.0 or better)"
fi

grep -qx 'Type=notify' "$SERVICE" && ok "Type=notify" || not_ok "Type=notify"
python3 - "$SERVICE" <<'PY' && ok "TimeoutStopSec covers --drain-delay + --shutdown-timeout" || not_ok "TimeoutStopSec covers --drain-delay + --shutdown-timeout"
import re, sys
unit = open(sys.argv[1]).read()
def value(key, default=None):
    found = re.findall(rf"^{key}=(\S+)", unit, re.M)
    return found[-1] if found else default
argv = value("ExecStart") and re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
def option(name, default):
    return float(argv[argv.index(name) + 1]) if name in argv else default
needed = option("--drain-delay", 0) + option("--shutdown-timeout", 10)
stop = float(value("TimeoutStopSec", "90").rstrip("s"))
print(f"# TimeoutStopSec={stop:g} s, drain delay + shutdown timeout = {needed:g} s")
sys.exit(0 if stop > needed else 1)
PY

echo "$FAILED failures"
exit $((FAILED > 0))
