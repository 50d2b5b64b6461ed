#!/bin/bash
# System extension framing vs the explicit proxy (issue 4): the bench's
# small scenario (GET 1 KiB, 16 in flight, keep-alive), in one run,
#   1. through dlpgate as an explicit proxy;
#   2. through build/flowclient, relaying into that explicit proxy with
#      CONNECT (the control: the relay hop without the frame protocol);
#   3. through build/flowclient into --sysext-socket with frames.
# The flow client relays every byte through a thread of its own (the
# extension's job on a Mac), so 3 against 2 is what the framing costs, and
# 3 against 1 what the whole extension path costs here.
#   [ROUNDS=3] tests/bench/framing.sh [SECONDS]    (needs `make` and ../shared/bench)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bench=${BENCH_DIR:-$top/../shared/bench}
dur=${1:-10}
w=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$w"' EXIT
gcc -O2 -o "$w/loadgen" "$bench/loadgen.c" -lcurl -lpthread -lm
chmod 755 "$w"
cd "$w"
. "$top/tests/bench/certs.sh"
mkdir -p www && head -c 1024 /dev/urandom >www/1k && chmod -R a+rX www
cat >nginx.conf <<NGX
worker_processes 2; pid $w/nginx.pid; error_log $w/nginx.err; events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18643 ssl; ssl_certificate $w/srv.pem; ssl_certificate_key $w/srv.key; root $w/www; } }
NGX
nginx -c "$w/nginx.conf" -g "daemon off;" & pids+=($!)
"$top/build/dlpgate" run --listen 127.0.0.1:18690 --sysext-socket "$w/sysext.sock" --state-dir "$w/state" \
	--upstream-ca "$w/ca.pem" --log-level warn 2>"$w/dlpgate.log" & dlp=$!; pids+=($dlp)
"$top/build/flowclient" --listen 127.0.0.1:18691 --socket "$w/sysext.sock" --dst 127.0.0.1:18643 \
	--hostname localhost --path /Applications/Tool.app/Contents/MacOS/Tool --anchor developer_id >/dev/null & frames_relay=$!
pids+=($frames_relay)
"$top/build/flowclient" --listen 127.0.0.1:18692 --via-connect 18690 --dst 127.0.0.1:18643 \
	--hostname localhost --anchor unsigned >/dev/null & connect_relay=$!
pids+=($connect_relay)
for _ in $(seq 100); do [ -S "$w/sysext.sock" ] && [ -s "$w/state/ca.pem" ] && break; sleep 0.1; done
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { # label, relay pid (0: none), loadgen args...
	local label=$1 relay=$2; shift 2
	"$w/loadgen" --cacert "$w/state/ca.pem" -c 16 -d 2 "$@" >/dev/null 2>&1 || true
	local t0 t1 r0=0 r1=0 line
	t0=$(ticks $dlp)
	[ "$relay" = 0 ] || r0=$(ticks "$relay")
	line=$("$w/loadgen" --cacert "$w/state/ca.pem" -c 16 -d "$dur" --expect-bytes 1024 "$@")
	t1=$(ticks $dlp)
	[ "$relay" = 0 ] || r1=$(ticks "$relay")
	local rps errs n
	rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$line")
	errs=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
	n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
	awk -v l="$label" -v r="$rps" -v e="$errs" -v n="$n" -v t=$((t1 - t0)) -v rt=$((r1 - r0)) -v hz="$hz" \
		'BEGIN { printf "%-22s %8.0f req/s  errors %s  dlpgate %.3f cpu-ms/req  relay %.3f cpu-ms/req\n", l, r, e, 1000 * t / hz / n, 1000 * rt / hz / n }'
	echo "$rps"
}
# The three phases alternate, ROUNDS times, so a slow spell of the machine
# falls on all three alike; the ratios are of the medians.
rounds=${ROUNDS:-3}
exp=() rel=() frm=()
for r in $(seq "$rounds"); do
	echo "-- round $r of $rounds" >&2
	exp+=("$(run "explicit proxy" 0 -x http://127.0.0.1:18690 -u https://localhost:18643/1k | tee /dev/stderr | tail -1)")
	rel+=("$(run "relay + CONNECT" "$connect_relay" -u https://localhost:18692/1k | tee /dev/stderr | tail -1)")
	frm+=("$(run "relay + frames" "$frames_relay" -u https://localhost:18691/1k | tee /dev/stderr | tail -1)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
a=$(median "${exp[@]}") r=$(median "${rel[@]}") b=$(median "${frm[@]}")
awk -v a="$a" -v r="$r" -v b="$b" 'BEGIN { printf "medians: explicit %.0f, relay + CONNECT %.0f, relay + frames %.0f req/s\n", a, r, b
	printf "frames / CONNECT through the same relay: %.1f%%; frames / explicit proxy: %.1f%%\n", 100 * b / r, 100 * b / a }'
