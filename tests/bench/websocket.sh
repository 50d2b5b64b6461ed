#!/bin/bash
# WebSocket echo through the explicit proxy with TLS interception (issue
# 11): many small text messages, the same run,
#   1. inspected: rules/default.lua, every client message scanned by its
#      upload detectors (on_message), every frame parsed both ways;
#   2. spliced-101: the same, by a dlpgate that splices after the 101
#      (BASE_DLPGATE, e.g. main's build/dlpgate, as before this change):
#      TLS intercepted, frames not read;
#   3. relayed: a policy that bypasses the flow (spliced TLS bytes), the
#      cost of plain relaying through dlpgate.
# Both use Debian's python3-websockets as client and echo server, so the
# rate is the peers' as much as ours; dlpgate's CPU per message (from
# /proc, user + system) is the number to compare.
#   [BASE_DLPGATE=../main/build/dlpgate] tests/bench/websocket.sh [MESSAGES] [SIZE]    (needs `make`)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
count=${1:-50000}
size=${2:-64}
py=/usr/bin/python3
w=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$w"' EXIT
cd "$w"
. "$top/tests/bench/certs.sh"
cat >bypass.lua <<'LUA'
local dlp = require "dlp"
function on_flow(flow) return dlp.bypass("bench: plain relaying") end
LUA
: >server.log
cp "$top/tests/integration/ws_peer.py" peer.py
WS_PEER_QUIET=1 "$py" peer.py server 18743 srv.pem srv.key server.log >server.out 2>&1 & pids+=($!)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { # label, policy, CA the client trusts (default: dlpgate's), binary
	local label=$1 policy=$2 port=18790 bin=${4:-$top/build/dlpgate}
	"$bin" run --listen 127.0.0.1:$port --state-dir "$w/state-$label" --upstream-ca "$w/ca.pem" \
		--policy "$policy" --log-level warn 2>"$w/dlpgate-$label.log" & local dlp=$!
	for _ in $(seq 100); do [ -s "$w/state-$label/ca.pem" ] && break; sleep 0.1; done
	sleep 0.3
	local ca=${3:-$w/state-$label/ca.pem}
	[ -n "$ca" ] || ca=$w/state-$label/ca.pem
	"$py" peer.py bench $port 18743 "$ca" 2000 "$size" >/dev/null # warm up
	local t0 t1 line
	t0=$(ticks $dlp)
	line=$("$py" peer.py bench $port 18743 "$ca" "$count" "$size")
	t1=$(ticks $dlp)
	kill $dlp; wait $dlp 2>/dev/null || true
	awk -v l="$label" -v line="$line" -v n="$count" -v t=$((t1 - t0)) -v hz="$hz" \
		'BEGIN { split(line, a, "rate="); printf "%-10s %8.0f msg/s round trip  dlpgate %.2f cpu-us/msg (both ways)\n", l, a[2], 1e6 * t / hz / n }'
}
echo "$count messages of $size bytes, echoed"
run inspected "$top/rules/default.lua"
[ -z "${BASE_DLPGATE:-}" ] || run spliced-101 "$top/rules/default.lua" "" "$BASE_DLPGATE"
run relayed "$w/bypass.lua" "$w/ca.pem"
