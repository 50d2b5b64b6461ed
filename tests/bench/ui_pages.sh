#!/bin/sh
# Page-usable time of the console's web UI in Chromium over a big store
# (issue 13: the dashboard and the explorer usable in <= 1 s with 1,000,000
# events). Starts build/dlpgate-console on the given state dir and store
# (by default the one tests/bench/ui_query.sh leaves with KEEP=1), serving
# build/web, makes an admin token, and runs tests/bench/ui_pages.mjs:
# median and worst of RUNS warm page loads for the dashboard (24 h, 7 d),
# the explorer without and with each single filter, and an event's page.
# Usage: tests/bench/ui_pages.sh STATE_DIR [DB_URL] [RUNS]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
state=${1:?usage: tests/bench/ui_pages.sh STATE_DIR [DB_URL] [RUNS]}
db=${2:-}
runs=${3:-5}
[ -f "$top/build/web/index.html" ] || { echo "ui_pages: build/web is missing: make first" >&2; exit 1; }
[ -f "$top/.deps/node_modules/playwright-core/package.json" ] || "$top/scripts/deps.sh" test
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
# shellcheck disable=SC2086
"$top/build/dlpgate-console" run --listen "127.0.0.1:$port" --state-dir "$state" ${db:+--db "$db"} \
	--web-root "$top/build/web" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
i=0
until curl -s -o /dev/null --cacert "$state/console.pem" "https://127.0.0.1:$port/"; do
	i=$((i + 1)); [ "$i" -lt 300 ] || { cat "$log" >&2; exit 1; }
	kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
	sleep 0.1
done
# shellcheck disable=SC2086
token=$("$top/build/dlpgate-console" admin token create --role admin --state-dir "$state" ${db:+--db "$db"})
events=$(curl -s --cacert "$state/console.pem" -H "Authorization: Bearer $token" \
	"https://127.0.0.1:$port/api/v1/stats?by=verdict" | python3 -c 'import json,sys; print(sum(c["count"] for c in json.load(sys.stdin)["counts"]))')
echo "ui_pages: $events events in ${db:-sqlite:$state/console.db}; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
node "$top/tests/bench/ui_pages.mjs" "https://127.0.0.1:$port" "$state/console.pem" "$token" "$runs"
