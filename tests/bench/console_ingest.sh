#!/bin/sh
# Console ingest (issue 5): N simulated agents (default 100) enroll and post
# gzip NDJSON batches concurrently for D seconds, into SQLite and into a
# PostgreSQL 15 this script starts (initdb in a temp dir, as the postgres
# user); then 1,000 idle keep-alive agent connections and the console's RSS.
# The load tool (tests/bench/console_load.c) runs on the same machine, so
# it takes CPU from the console: the numbers are a floor. PRELOAD=N first
# loads N events (tests/bench/ui_events.py: 200 agents over 7 days) into the
# PostgreSQL store, so the timed load meets indexes and rollups of that size.
#
#   [PRELOAD=N] tests/bench/console_ingest.sh [AGENTS] [SECONDS] [BATCH]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/bench/console_wait.sh"
agents=${1:-100}
seconds=${2:-10}
batch=${3:-100}
preload=${PRELOAD:-0}
make -s -C "$top" build/dlpgate-console build/console-load >/dev/null
cbin=${CONSOLE_BIN:-"$top/build/dlpgate-console"} # CONSOLE_BIN: another build to compare
load="$top/build/console-load"
bench_work ingest
secret=ingest-bench-enroll-secret
port=18543


run_load() { # LABEL IDLE
	"$load" --url https://127.0.0.1:$port --cacert "$work/st/console.pem" --secret $secret \
		--agents "$agents" --seconds "$seconds" --batch "$batch" --idle "$2" --pid $cpid | sed "s/^/$1: /"
}

start_console
run_load sqlite 0
stop_console

start_pg 55433 -c fsync=on -c synchronous_commit=on
start_console --db $pg_url
[ "$preload" = 0 ] || python3 "$top/tests/bench/ui_events.py" https://127.0.0.1:$port "$work/st/console.pem" $secret \
	"$preload" | sed "s/^/postgresql preload: /"
run_load postgresql 0
stop_console

start_console
agents=1 seconds=1 batch=1 run_load idle 1000
stop_console
