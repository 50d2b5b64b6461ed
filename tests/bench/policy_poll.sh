#!/bin/sh
# Policy long-poll (issue 12): N simulated agents (default 10,000) each hold
# GET /api/v1/policy over TLS; an activation is committed and the bench
# (tests/bench/policy_poll.c) times activate -> every agent has the new
# version, and reads the console's RSS before and with the polls held.
#   1. one console on SQLite (its watcher reads the generation every 500 ms)
#   2. two consoles on one PostgreSQL 15 this script starts, half the agents
#      on each (the activation's NOTIFY wakes both through LISTEN)
# Versions are pushed and activated with the real CLI (policy push, policy
# activate); the time counts from just before `policy activate 2` starts, so
# it includes that process starting and opening the database. The bench runs
# on the same 2-core machine as the console(s): the numbers include its CPU.
#
#   tests/bench/policy_poll.sh [AGENTS]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/bench/console_wait.sh"
agents=${1:-10000}
make -s -C "$top" build/dlpgate-console build/policy-poll >/dev/null
cbin="$top/build/dlpgate-console"
bench="$top/build/policy-poll"
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/dlpgate-policypoll-XXXXXX)
chmod 755 "$work"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	stop_pg
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM # so an interrupted run stops what it started too
secret=policy-poll-bench-enroll-secret
maxconn=$((agents + 1000))
# Other benches and test runs share the machine: ask for free ports.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

console() { # NAME PORT CERT ARGS... (CERT: the certificate it serves)
	name=$1 port=$2 cert=$3
	shift 3
	mkdir -p "$work/$name"
	"$cbin" run --listen 127.0.0.1:$port --state-dir "$work/$name" --enroll-secret $secret --log-level warn \
		--max-connections $maxconn "$@" >"$work/$name.log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	wait_console $pid "$cert" $port "$work/$name.log"
}

# A small policy that passes everything (with its one test).
mkdir -p "$work/policy/tests"
printf 'local dlp = require "dlp"\nfunction on_request(req, flow)\n\treturn dlp.pass()\nend\n' >"$work/policy/policy.lua"
printf 'return {\n\t{ name = "plain", request = { body = "hello" }, expect = { verdict = "pass" } },\n}\n' \
	>"$work/policy/tests/plain_test.lua"
# v1 and v2 stored, v1 active for the whole fleet: what the agents run.
prepare() { # STATE-DIR [--db URL]
	for v in 1 2; do "$cbin" policy push "$work/policy" --state-dir "$@" >/dev/null; done
	"$cbin" policy activate 1 --state-dir "$@" >/dev/null
}

echo "== SQLite, one console, $agents agents"
port=$(free_port)
console sqlite $port "$work/sqlite/console.pem"
prepare "$work/sqlite"
"$bench" --console 127.0.0.1:$port --cacert "$work/sqlite/console.pem" --secret $secret --agents "$agents" \
	--pid $pid --expect 2 --activate "$cbin policy activate 2 --state-dir $work/sqlite >/dev/null"
grep -h "event=stats" "$work/sqlite.log" || true
kill $pid && wait $pid 2>/dev/null || true

echo "== PostgreSQL, two consoles, $agents agents (half on each)"
start_pg "$(free_port)" -c max_connections=200
db=$pg_url
porta=$(free_port)
console pga $porta "$work/pga/console.pem" --db $db
pa=$pid
# one certificate for both, as behind a load balancer
portb=$(free_port)
console pgb $portb "$work/pga/console.pem" --db $db --tls-cert "$work/pga/console.pem" --tls-key "$work/pga/console.key"
pb=$pid
prepare "$work/pga" --db $db
"$bench" --console 127.0.0.1:$porta --console 127.0.0.1:$portb --cacert "$work/pga/console.pem" --secret $secret \
	--agents "$agents" --pid $pa --pid $pb --expect 2 \
	--activate "$cbin policy activate 2 --state-dir $work/pga --db $db >/dev/null"
grep -h "event=stats" "$work/pga.log" "$work/pgb.log" || true
