#!/bin/sh
# Backlog drain: an agent comes back after an outage with N events spooled
# (default 180000: one hour at 50 events/s) and drains them into the console.
# Reports the drain time, the rate (the agent caps it at
# report.drain_events_per_s, default 2000/s, so a returning fleet cannot
# flood the console) and the console's peak RSS.
#
#   tests/bench/backlog.sh [N] [RATE] [sqlite|postgresql://...]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/bench/console_wait.sh"
n=${1:-180000}
rate=${2:-2000}
db=${3:-sqlite}
make -s -C "$top" build/dlpgate build/dlpgate-console build/spoolfill >/dev/null
bin="$top/build/dlpgate"
cbin="$top/build/dlpgate-console"
work=$(mktemp -d /tmp/dlpgate-backlog-XXXXXX)
trap 'kill $cpid $apid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cport=18443
aport=18128
secret=backlog-bench-enroll-secret
mkdir -p "$work/console"
dbarg=""
[ "$db" = sqlite ] || dbarg="--db $db"
admin=$("$cbin" admin token create --state-dir "$work/console" $dbarg)
"$cbin" run --listen 127.0.0.1:$cport --state-dir "$work/console" --enroll-secret $secret $dbarg \
	>"$work/console.log" 2>&1 &
cpid=$!
apid=""
wait_console $cpid "$work/console/console.pem" $cport "$work/console.log"
agent() {
	"$bin" run --listen 127.0.0.1:$aport --state-dir "$work/agent" --config "$work/agent.json" \
		--console https://127.0.0.1:$cport --console-ca "$work/console/console.pem" \
		--enroll-secret $secret >>"$work/agent.log" 2>&1 &
	apid=$!
}
printf '{"report": {"drain_events_per_s": %s, "status_interval_s": 3600}}\n' "$rate" >"$work/agent.json"
agent
until grep -q event=enrolled "$work/agent.log"; do
	kill -0 $apid 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
	sleep 0.1
done
kill $apid; wait $apid || true
"$top/build/spoolfill" "$work/agent" "$n"
count() {
	curl -s --cacert "$work/console/console.pem" -H "Authorization: Bearer $admin" \
		"https://127.0.0.1:$cport/api/v1/stats?by=verdict" |
		python3 -c 'import json,sys; print(sum(c["count"] for c in json.load(sys.stdin)["counts"]))'
}
start=$(date +%s.%N)
agent
while [ "$(count)" -lt "$n" ]; do sleep 0.5; done
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' /proc/$cpid/status)
python3 - "$n" "$start" "$end" "$rate" "$rss" "$db" <<'PY'
import sys
n, s, e, rate, rss, db = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
print(f"backlog {n} events into {db.split(':')[0]}: drained in {e - s:.1f} s = {n / (e - s):.0f} events/s "
      f"(agent cap {rate}/s); console peak RSS {int(rss) / 1024:.1f} MiB")
PY
