#!/bin/sh
# `make run`: the console (SQLite) and the gateway, enrolled to it; the
# gateway's policy is the shipped default, pushed to the console and
# activated; extra arguments (make run ARGS="...") go to `dlpgate run`. State (the CA, the spool, the console's database, certificate and
# secrets) lives in .run/ so it survives rebuilds.
#
# Ctrl-C stops the gateway first, so its spool drains to a console that is
# still up, then the console. Both run in sessions of their own (setsid):
# the terminal's SIGINT reaches only make and this script, and the order
# of the stop is this script's, not a race between two processes that got
# the same signal.
set -eu
build=${1:-build}
shift $(( $# > 0 ? 1 : 0 ))
top=$(cd "$(dirname "$0")/.." && pwd)
state="$top/.run/state"
listen="127.0.0.1:3128"
mkdir -p "$top/.run"
bin="$top/$build/dlpgate"
policy="$top/rules/default.lua"
console_bin="$top/$build/dlpgate-console"
console_dir="$top/.run/console"
console_listen="127.0.0.1:8443"
console="https://$console_listen"

# Make the CA now (the gateway would on start) so the instructions can name it.
"$bin" ca init --state-dir "$state" >/dev/null

# The fleet's enroll secret and an admin token, made once and kept (0600).
mkdir -p "$console_dir"
chmod 700 "$top/.run" "$console_dir"
[ -s "$top/.run/enroll-secret" ] || (umask 077; openssl rand -hex 24 >"$top/.run/enroll-secret")
[ -s "$top/.run/admin-token" ] ||
	(umask 077; "$console_bin" admin token create --state-dir "$console_dir" >"$top/.run/admin-token")
secret=$(cat "$top/.run/enroll-secret")
admin=$(cat "$top/.run/admin-token")

agent_pid=""
# SIGTERM, then wait: each process finishes what it has in flight.
stop() {
	trap - EXIT INT TERM
	[ -n "$agent_pid" ] && { kill -TERM "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; }
	kill -TERM "$console_pid" 2>/dev/null || true
	wait "$console_pid" 2>/dev/null || true
	echo "dlpgate and the console stopped" >&2
}
setsid "$console_bin" run --listen "$console_listen" --state-dir "$console_dir" --enroll-secret "$secret" \
	--web-root "$top/$build/web" \
	>"$top/.run/console.log" 2>&1 &
console_pid=$!
trap 'stop; exit 0' INT TERM
trap stop EXIT
for _ in $(seq 100); do
	[ -s "$console_dir/console.pem" ] && curl -s -o /dev/null --cacert "$console_dir/console.pem" "$console/" && break
	kill -0 $console_pid 2>/dev/null || { cat "$top/.run/console.log" >&2; exit 1; }
	sleep 0.1
done

# The policy comes from the console, as it would for a fleet: the shipped
# default and its tests, pushed once (signed by the console's key) and
# activated for every agent. Until it arrives the agent runs the same
# policy built in.
if ! "$console_bin" policy list --state-dir "$console_dir" | grep -q '"version"'; then
	bundle="$top/.run/policy"
	rm -rf "$bundle"
	mkdir -p "$bundle/tests"
	cp "$policy" "$bundle/policy.lua"
	cp "$top/rules/tests/default_test.lua" "$top/rules/tests/cases.lua" "$bundle/tests/"
	"$console_bin" policy push --state-dir "$console_dir" "$bundle" --message "the shipped default policy" >/dev/null
	"$console_bin" policy activate 1 --state-dir "$console_dir" >/dev/null
fi

cat <<EOT

dlpgate is starting on $listen (explicit proxy), CA in $state, with the
policy its console pushes: version 1 is $policy (blocks cloud
credentials and private keys, masks card numbers and SSNs in uploads,
leaves Apple daemons and Apple sites alone).

Try it from another terminal:
  curl --proxy http://$listen --cacert $state/ca.pem https://example.com/
  curl --proxy http://$listen --cacert $state/ca.pem https://httpbin.org/post -d 'card=4111 1111 1111 1111'
      (httpbin echoes what it received: the card arrives masked)
  curl --proxy http://$listen http://example.com/

Trust the CA machine-wide (then any client works):  $bin ca install --state-dir $state
Check or test a policy:  $bin check $policy
                         $bin test $policy $top/rules/tests/default_test.lua
The console runs on $console (log: .run/console.log, database:
$console_dir/console.db). Verdicts reach it within a second. Admin token: $admin
  curl --cacert $console_dir/console.pem -H "Authorization: Bearer $admin" \\
       "$console/api/v1/events?verdict=redact&limit=10"
  curl --cacert $console_dir/console.pem -H "Authorization: Bearer $admin" $console/api/v1/agents
  curl --cacert $console_dir/console.pem -H "Authorization: Bearer $admin" "$console/api/v1/stats?by=detector"
Web UI: $console/ (sign in with the admin token; the UI's files come from $build/web)
More tokens: $console_bin admin token create --role viewer|analyst|admin --state-dir $console_dir

Change what the fleet enforces (a folder with policy.lua and tests/*.lua):
  $console_bin policy push --state-dir $console_dir DIR --message "why"
  $console_bin policy activate N --state-dir $console_dir [--labels ring=local] [--percent P]
  $console_bin policy shadow N --state-dir $console_dir --sample 100   (then: policy shadow-report N)
  $console_bin policy rollback --state-dir $console_dir
  $bin policy status --state-dir $state    (what this agent runs, and why)

Log lines (one per flow) follow. Stop both with Ctrl-C.

EOT
setsid "$bin" run --listen "$listen" --state-dir "$state" --labels ring=local \
	--console "$console" --console-ca "$console_dir/console.pem" --enroll-secret "$secret" "$@" &
agent_pid=$!
# wait returns early when a signal's trap runs; otherwise the agent ended
# by itself (a bad ARGS, a port in use): keep its exit code.
rc=0
wait "$agent_pid" || rc=$?
agent_pid=""
exit "$rc"
