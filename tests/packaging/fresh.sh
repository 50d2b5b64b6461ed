#!/bin/sh
# The README's two commands on a bare Debian 12, as a new user runs them:
# a minbase bookworm root (mmdebstrap, plus git and make) in a scratch
# directory, this working tree copied in (git ls-files: what is tracked or
# new, never build/ or .run/), then inside it, as root:
#
#   1. `make -j2 run ARGS=--upstream-ca ...` on the first try; the gateway
#      must start, mask a card in an upload to an HTTPS upstream that
#      records what it gets (recorder.py, on 127.0.0.1), and report the
#      verdict to the console; then Ctrl-C (SIGINT to make's process group,
#      as a terminal sends it) must stop the agent first and the console
#      after it, and leave no process behind. `make run` must not have
#      installed a test peer.
#   2. `make -j2 test` on the first try (skipped with FRESH_TEST=0).
#
# Needs root and the Debian mirror. Prints how long each step took.
# Usage: tests/packaging/fresh.sh     (KEEP=1 keeps the scratch directory)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/tests/packaging"
. "$here/root.sh"

packaging_begin fresh
t0=$(now)
scratch=$(mktemp -d /var/tmp/dlpgate-fresh.XXXXXX)
root=$scratch/root
recorder_pid=""
trap 'exit 1' INT TERM HUP
# (set -e holds inside the trap: nothing in it may fail before root_cleanup)
trap '[ -z "$recorder_pid" ] || kill "$recorder_pid" 2>/dev/null || true; root_cleanup' EXIT

# Both ports `make run` serves on must be free on this machine (the root
# shares its network namespace).
python3 -c 'import socket
for p in (3128, 8443): socket.create_server(("127.0.0.1", p)).close()' 2>/dev/null ||
	fail "127.0.0.1:3128 or :8443 is in use; make run inside the root needs both"

echo "fresh: building a minbase Debian 12 root in $root"
root_create "$scratch"
t_root=$(now)

root_trust_host_anchors

"$top/scripts/tree-copy.sh" "$root/src"

# The upstream's certificate, made here (the root has no openssl yet).
up="$scratch/upstream"
mkdir -p "$up"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$up/key.pem" -out "$up/cert.pem" 2>/dev/null
cp "$up/cert.pem" "$root/root/upstream.pem"
python3 "$here/recorder.py" "$up/cert.pem" "$up/key.pem" "$up" &
recorder_pid=$!

root_mount

# make run, as a terminal would start it: its own process group with
# SIGINT at its default (a background job of this script would inherit
# SIGINT ignored, and then no Ctrl-C could be simulated).
echo "fresh: make -j2 run (installs, builds, starts)"
python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setpgid(0, 0)
os.execvp(sys.argv[1], sys.argv[1:])' \
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
	sh -c 'cd /src && exec make -j2 run ARGS="--upstream-ca /root/upstream.pem"' >"$scratch/run.log" 2>&1 &
run_pid=$!

proxy=http://127.0.0.1:3128
ca="$root/src/.run/state/ca.pem"
i=0
until [ -s "$ca" ] && curl -s -o /dev/null "$proxy/" 2>/dev/null; do
	kill -0 "$run_pid" 2>/dev/null || { cat "$scratch/run.log" >&2; fail "make run exited before the gateway listened"; }
	i=$((i + 1))
	[ "$i" -lt 1800 ] || { tail -50 "$scratch/run.log" >&2; fail "the gateway did not listen within 15 minutes"; }
	sleep 0.5
done
t_run=$(now)
echo "fresh: the gateway listens after $((t_run - t_root))s"

i=0
until [ -s "$up/port" ]; do
	i=$((i + 1)); [ "$i" -lt 100 ] || fail "the recording upstream did not start"; sleep 0.1
done
port=$(cat "$up/port")
answer=$(curl -sS --proxy "$proxy" --cacert "$ca" "https://127.0.0.1:$port/upload" \
	-d 'name=Jo&card=4111 1111 1111 1111') || fail "the upload through the gateway failed"
[ "$answer" = ok ] || fail "the upstream's answer did not come back: $answer"
grep -F 'card=4111 **** **** 1111' "$up/received" >/dev/null ||
	{ cat "$up/received" >&2; fail "the card did not arrive masked"; }
! grep -F '4111 1111 1111 1111' "$up/received" >/dev/null || fail "the card arrived in clear"
echo "fresh: ok: the card arrived masked: $(grep -F card= "$up/received")"

token=$(cat "$root/src/.run/admin-token")
i=0
until curl -s --cacert "$root/src/.run/console/console.pem" -H "Authorization: Bearer $token" \
	"https://127.0.0.1:8443/api/v1/events?verdict=redact&limit=10" | grep -q credit_card; do
	i=$((i + 1)); [ "$i" -lt 100 ] || fail "the redact event did not reach the console"; sleep 0.1
done
echo "fresh: ok: the console has the redact event"

# The web UI make run built (npm ci of console/web's lockfile into
# .deps/web, then esbuild): the page and the script it names.
page=$(curl -sS --cacert "$root/src/.run/console/console.pem" "https://127.0.0.1:8443/") ||
	fail "GET / of the console"
script=$(printf '%s' "$page" | grep -o '/app-[A-Za-z0-9]*\.js' | head -1)
[ -n "$script" ] && curl -sSf -o /dev/null --cacert "$root/src/.run/console/console.pem" "https://127.0.0.1:8443$script" ||
	{ printf '%s\n' "$page" >&2; fail "the console does not serve the web UI"; }
echo "fresh: ok: the console serves its web UI ($script)"

# (Node.js and npm build the web UI: build dependencies. ajv and
# playwright-core, in .deps/node_modules, are the tests'.)
for p in check postgresql clang chromium nginx-light; do
	s=$(in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$s" != "install ok installed" ] || fail "make run installed the test peer $p"
done
[ ! -e "$root/src/.deps/node_modules" ] || fail "make run installed the tests' npm tools"
echo "fresh: ok: make run installed no test peer"

# Ctrl-C: SIGINT to make's process group.
kill -INT "-$run_pid"
i=0
while kill -0 "$run_pid" 2>/dev/null; do
	i=$((i + 1)); [ "$i" -lt 300 ] || fail "make run did not stop within 30s of Ctrl-C"; sleep 0.1
done
wait "$run_pid" || true
grep -q 'event=stopped' "$scratch/run.log" || { tail "$scratch/run.log" >&2; fail "the gateway did not log its stop"; }
grep -q 'event=stopped' "$root/src/.run/console.log" || fail "the console did not log its stop"
# The agent first: it had stopped before the console was asked to (ISO
# timestamps compare as text).
agent_done=$(sed -n 's/^ts=\([^ ]*\) .*event=stopped .*/\1/p' "$scratch/run.log")
console_asked=$(sed -n 's/^ts=\([^ ]*\) .*event=stop .*/\1/p' "$root/src/.run/console.log")
[ -n "$agent_done" ] && [ "$agent_done" \< "$console_asked" ] ||
	fail "the console was stopped ($console_asked) before the agent had ($agent_done)"
left=$(for p in /proc/[0-9]*; do
	[ "$(readlink "$p/root" 2>/dev/null)" = "$(cd "$root" && pwd -P)" ] && cat "$p/comm"
done 2>/dev/null || true)
[ -z "$left" ] || fail "left running after Ctrl-C: $left"
echo "fresh: ok: Ctrl-C stopped the gateway and the console"
t_stop=$(now)

if [ "${FRESH_TEST:-1}" = 1 ]; then
	echo "fresh: make -j2 test (installs the test peers, runs every suite)"
	in_root sh -c 'cd /src && make -j2 test' >"$scratch/test.log" 2>&1 ||
		{ tail -80 "$scratch/test.log" >&2; fail "make test failed in the fresh root"; }
	grep '^== all suites passed' "$scratch/test.log"
fi
t_test=$(now)

echo "fresh: passed; root $((t_root - t0))s, make run to listening $((t_run - t_root))s," \
	"card and stop $((t_stop - t_run))s, make test $((t_test - t_stop))s, total $((t_test - t0))s"
