#!/bin/sh
# Console ingest (issue 5): N simulated agents (default 100) enroll and post
# gzip NDJSON batches concurrently for D seconds, into SQLite and into a
# PostgreSQL 15 this script starts (initdb in a temp dir, as the postgres
# user); then 1,000 idle keep-alive agent connections and the console's RSS.
# The load tool (tests/bench/console_load.c) runs on the same machine, so
# it takes CPU from the console: the numbers are a floor.
#
#   tests/bench/console_ingest.sh [AGENTS] [SECONDS] [BATCH]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/bench/console_wait.sh"
agents=${1:-100}
seconds=${2:-10}
batch=${3:-100}
make -s -C "$top" build/dlpgate-console build/console-load >/dev/null
cbin=${CONSOLE_BIN:-"$top/build/dlpgate-console"} # CONSOLE_BIN: another build to compare
load="$top/build/console-load"
pgbin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/dlpgate-ingest-XXXXXX)
chmod 755 "$work"
cpid=""
cleanup() {
	[ -n "$cpid" ] && kill $cpid 2>/dev/null && wait $cpid 2>/dev/null || true
	[ -d "$work/pg" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
secret=ingest-bench-enroll-secret
port=18543


run_load() { # LABEL IDLE
	"$load" --url https://127.0.0.1:$port --cacert "$work/st/console.pem" --secret $secret \
		--agents "$agents" --seconds "$seconds" --batch "$batch" --idle "$2" --pid $cpid | sed "s/^/$1: /"
}

start_console
run_load sqlite 0
stop_console

mkdir -p "$work/pg"
chown postgres "$work/pg"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
	-o "-p 55433 -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" start >/dev/null
start_console --db postgresql://postgres@127.0.0.1:55433/postgres
run_load postgresql 0
stop_console

start_console
agents=1 seconds=1 batch=1 run_load idle 1000
stop_console
