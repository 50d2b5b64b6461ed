#!/bin/sh
# Page-usable time of the console's web UI in Chromium over a big store
# (issue 13: the dashboard and the explorer usable in <= 1 s with
# 1,000,000 events). A console serving build/web is filled with N events
# (default 1,000,000: 200 agents over 7 days) through its real ingest path
# (tests/bench/ui_events.py, as tests/bench/ui_query.sh does), then
# tests/bench/ui_pages.mjs signs in with Chromium and times, warm, median
# and worst of RUNS loads: the dashboard (24 h, 7 d), the explorer without
# and with each single filter, and an event's page.
#
#   tests/bench/ui_pages.sh [N_EVENTS] [sqlite|postgresql] [RUNS]
#
# KEEP=DIR keeps the console's state (SQLite store) in DIR; a DIR that
# already holds a console.db is used as it is, without loading (SQLite).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/bench/console_wait.sh"
n=${1:-1000000}
which=${2:-sqlite}
runs=${3:-5}
make -s -C "$top" build/dlpgate-console build/web/index.html >/dev/null
[ -f "$top/.deps/node_modules/playwright-core/package.json" ] || "$top/scripts/deps.sh" test
cbin="$top/build/dlpgate-console"
bench_work uip
keep=${KEEP:-}
load=1
if [ -n "$keep" ]; then
	mkdir -p "$keep"
	[ -s "$keep/console.db" ] && load=""
	ln -s "$(cd "$keep" && pwd)" "$work/st"
fi
secret=ui-pages-bench-enroll-secret
port=18644
set --
if [ "$which" = postgresql ]; then
	start_pg 55435
	set -- --db "$pg_url"
fi
mkdir -p "$work/st"
[ -z "$keep" ] || [ "$which" = sqlite ] || { echo "ui_pages: KEEP is for sqlite" >&2; exit 2; }
"$cbin" run --listen 127.0.0.1:$port --state-dir "$work/st" --enroll-secret $secret --log-level warn \
	--web-root "$top/build/web" "$@" >"$work/console.log" 2>&1 &
cpid=$!
wait_console $cpid "$work/st/console.pem" $port "$work/console.log"
admin=$("$cbin" admin token create --role admin --state-dir "$work/st" "$@")
[ -z "$load" ] ||
	python3 "$top/tests/bench/ui_events.py" "https://127.0.0.1:$port" "$work/st/console.pem" $secret "$n" | sed "s/^/$which: /"
echo "$which: $(sqlite3 "$work/st/console.db" 'select count(*) from events' 2>/dev/null || echo "$n") events; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
node "$top/tests/bench/ui_pages.mjs" "https://127.0.0.1:$port" "$work/st/console.pem" "$admin" "$runs"
