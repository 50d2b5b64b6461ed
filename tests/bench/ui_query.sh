#!/bin/sh
# The web UI's queries at scale (issue 13): N events (default 1,000,000)
# from 200 agents over 7 days are loaded through the console's real ingest
# path (tests/bench/ui_events.py: enroll, gzip NDJSON posts), into SQLite
# and into a PostgreSQL 15 this script starts; then every dashboard and
# explorer query the UI makes is timed at the API (curl's time_total over
# HTTPS, median of 5, after one warm-up). Goal: <= 300 ms each.
#
#   tests/bench/ui_query.sh [N_EVENTS] [sqlite|postgresql|both]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/bench/console_wait.sh"
n=${1:-1000000}
which=${2:-both}
make -s -C "$top" build/dlpgate-console >/dev/null
cbin="$top/build/dlpgate-console"
bench_work uiq
secret=ui-query-bench-enroll-secret
port=18643
url=https://127.0.0.1:$port


# median of 5 time_total (ms) of GET PATH as admin
timed() { # LABEL PATH
	code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/st/console.pem" -H "Authorization: Bearer $admin" "$url$2")
	[ "$code" = 200 ] || { echo "$db: $1: HTTP $code" >&2; exit 1; }
	ms=$(for _ in 1 2 3 4 5; do
		curl -s -o /dev/null -w '%{time_total}\n' --cacert "$work/st/console.pem" \
			-H "Authorization: Bearer $admin" "$url$2"
	done | sort -n | sed -n 3p | awk '{printf "%.0f", $1 * 1000}')
	flag=""
	[ "$ms" -gt 300 ] && flag="  OVER 300 ms"
	printf '%s: %-34s %5s ms%s\n' "$db" "$1" "$ms" "$flag"
}

queries() {
	now=$(date -u +%s)
	since=$(date -u -d @$((now - 7 * 86400)) +%Y-%m-%dT%H:%M:%SZ)
	hour=$(date -u -d @$((now - 3600)) +%Y-%m-%dT%H:%M:%SZ)
	day=$(date -u -d @$((now - 86400)) +%Y-%m-%dT%H:%M:%SZ)
	agent=$(curl -s --cacert "$work/st/console.pem" -H "Authorization: Bearer $admin" "$url/api/v1/agents" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["agents"][7]["agent_id"])')
	cursor=$(curl -s --cacert "$work/st/console.pem" -H "Authorization: Bearer $admin" \
		"$url/api/v1/events?limit=100" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
	timed "dashboard 7 days" "/api/v1/dashboard?since=$since"
	timed "dashboard 24 hours" "/api/v1/dashboard?since=$day"
	timed "dashboard 1 hour" "/api/v1/dashboard?since=$hour"
	timed "events (no filter)" "/api/v1/events?limit=100"
	timed "events page 2 (cursor)" "/api/v1/events?limit=100&cursor=$cursor"
	timed "events 7 days" "/api/v1/events?limit=100&since=$since"
	timed "events last hour" "/api/v1/events?limit=100&since=$hour"
	timed "events verdict=block" "/api/v1/events?limit=100&verdict=block"
	timed "events verdict=redact" "/api/v1/events?limit=100&verdict=redact"
	timed "events detector (common)" "/api/v1/events?limit=100&detector=credit_card"
	timed "events detector (rare)" "/api/v1/events?limit=100&detector=edm_customers"
	timed "events host (common)" "/api/v1/events?limit=100&host=h0.example.com"
	timed "events host (rare)" "/api/v1/events?limit=100&host=h1999.example.com"
	timed "events app path" "/api/v1/events?limit=100&app=/usr/bin/app3"
	timed "events app signing id" "/api/v1/events?limit=100&app=com.example.app50"
	timed "events agent" "/api/v1/events?limit=100&agent=$agent"
	timed "events policy_version=v2" "/api/v1/events?limit=100&policy_version=v2"
	timed "events monitor=true" "/api/v1/events?limit=100&monitor=true"
	timed "events mode=shadow" "/api/v1/events?limit=100&mode=shadow"
	timed "events kind=flow" "/api/v1/events?limit=100&kind=flow"
	timed "incidents" "/api/v1/incidents?limit=100"
	timed "incidents status=new" "/api/v1/incidents?limit=100&status=new"
	timed "false positives" "/api/v1/incidents/false-positives"
	timed "agents" "/api/v1/agents"
	timed "export csv 10000" "/api/v1/events/export?format=csv&limit=10000&verdict=block"
}

run() { # LABEL DB-ARG...
	db=$1
	shift
	start_console "$@"
	admin=$("$cbin" admin token create --state-dir "$work/st" "$@")
	python3 "$top/tests/bench/ui_events.py" "$url" "$work/st/console.pem" $secret "$n" | sed "s/^/$db: /"
	queries
	stop_console
}

[ "$which" = postgresql ] || run sqlite
if [ "$which" != sqlite ]; then
	start_pg 55434
	run postgresql --db "$pg_url"
fi
