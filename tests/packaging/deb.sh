#!/bin/sh
# The Debian packages as an admin meets them: `make deb`, then in a fresh
# minbase Debian 12 root (root.sh, as fresh.sh makes it) `apt-get install`
# of both .debs (apt resolves their dependencies from the mirror), the
# installed `dlpgate --version` and `dlpgate check /etc/dlpgate/policy.lua`,
# the console and the agent started the way their units would start them
# (the root has no running systemd: each unit's ExecStart line, with its
# EnvironmentFile, as its User=), a card through the agent to a recording
# HTTPS upstream on 127.0.0.1 (it must arrive masked and its event must
# reach the console), then remove and purge, listing what is left.
#
# Needs root and the Debian mirror. Usage: tests/packaging/deb.sh (KEEP=1
# keeps the scratch directory).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/tests/packaging"
. "$here/root.sh"

packaging_begin deb
t0=$(now)

echo "deb: make deb"
make -C "$top" --no-print-directory deb | tail -4
version=$(cat "$top/VERSION")
t_build=$(now)

scratch=$(mktemp -d /var/tmp/dlpgate-deb.XXXXXX)
root=$scratch/root
pids="" recorder_pid=""
trap 'exit 1' INT TERM HUP
# the recorder lives to the end; $pids are the daemons still to stop
trap 'for p in $pids $recorder_pid; do kill "$p" 2>/dev/null || true; done; root_cleanup' EXIT

# Free ports for the agent and the console: the root shares this machine's
# network namespace; an admin sets them in /etc/default the same way.
set -- $(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
agent_port=$1 console_port=$2

echo "deb: a minbase Debian 12 root in $root"
root_create "$scratch"
root_trust_host_anchors
mkdir -p "$root/root/debs"
cp "$top/build/deb/dlpgate_${version}_"*.deb "$top/build/deb/dlpgate-console_${version}_"*.deb "$root/root/debs/"
root_mount
t_root=$(now)

echo "deb: apt-get install ./dlpgate_*.deb ./dlpgate-console_*.deb"
in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	/root/debs/dlpgate_*.deb /root/debs/dlpgate-console_*.deb' >"$scratch/install.log" 2>&1 ||
	{ tail -30 "$scratch/install.log" >&2; fail "apt-get install"; }
grep -A3 'created its' "$scratch/install.log" | head -8
t_install=$(now)

in_root dlpgate --version | head -1
in_root dlpgate check /etc/dlpgate/policy.lua >"$scratch/check.log" 2>&1 ||
	{ cat "$scratch/check.log" >&2; fail "dlpgate check /etc/dlpgate/policy.lua"; }
echo "deb: ok: dlpgate check /etc/dlpgate/policy.lua"
perm() { in_root stat -c '%a %U' "$1"; }
[ "$(perm /var/lib/dlpgate/ca.key)" = "600 dlpgate" ] || fail "ca.key is $(perm /var/lib/dlpgate/ca.key)"
[ "$(perm /var/lib/dlpgate-console/console.key)" = "600 dlpgate-console" ] || fail "console.key"
ca_before=$(sha256sum "$root/var/lib/dlpgate/ca.key")

# The recording upstream (fresh.sh's), its CA trusted the admin's way.
up="$scratch/upstream"
mkdir -p "$up"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=upstream-test \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$up/key.pem" -out "$up/cert.pem" 2>/dev/null
cp "$up/cert.pem" "$root/usr/local/share/ca-certificates/dlpgate-test-upstream.crt"
in_root update-ca-certificates >/dev/null 2>&1
python3 "$here/recorder.py" "$up/cert.pem" "$up/key.pem" "$up" &
recorder_pid=$!

# The admin's configuration: ports, and the agent enrolled to the console.
cp "$root/var/lib/dlpgate-console/console.pem" "$root/etc/dlpgate/console.pem"
secret=$(cat "$root/var/lib/dlpgate-console/enroll-secret")
sed -i "s|^DLPGATE_CONSOLE_LISTEN=.*|DLPGATE_CONSOLE_LISTEN=127.0.0.1:$console_port|" "$root/etc/default/dlpgate-console"
sed -i -e "s|^DLPGATE_LISTEN=.*|DLPGATE_LISTEN=127.0.0.1:$agent_port|" \
	-e "s|^DLPGATE_OPTS=.*|DLPGATE_OPTS=\"--console https://127.0.0.1:$console_port --console-ca /etc/dlpgate/console.pem --enroll-secret $secret\"|" \
	"$root/etc/default/dlpgate"

# A unit's start, without systemd: its ExecStart line (continuation lines
# joined), its Environment= and EnvironmentFile, as its User= with its
# AmbientCapabilities= and no others (the pid is the daemon's own).
unit_start() {
	unit="$root/lib/systemd/system/$1.service"
	user=$(sed -n 's/^User=//p' "$unit")
	envf=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
	# Environment="K=V" -> export 'K=V';
	envs=$(sed -n "s/^Environment=//; T; s/^\"\(.*\)\"\$/\1/; s/'/'\\\\''/g; s/.*/export '&';/p" "$unit" | tr '\n' ' ')
	cmd=$(awk '/^ExecStart=/ { on = 1; sub(/^ExecStart=/, "") }
		on { c = sub(/\\$/, ""); printf "%s ", $0; if (!c) exit }' "$unit" | tr -s '\t ' ' ')
	caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
	echo "deb: $1: as $user${caps:+ with $caps}: $cmd"
	# setpriv execs (runuser would fork and stand between us and the
	# daemon's signals)
	# shellcheck disable=SC2086
	(exec chroot "$root" $root_env setpriv --reuid "$user" --regid "$user" --init-groups \
		${caps:+--inh-caps "$caps" --ambient-caps "$caps" --bounding-set "-all,$caps"} -- \
		sh -c "set -a; $envs . $envf; set +a; exec $cmd" >"$scratch/$1.log" 2>&1) &
	pids="$pids $!"
	last_pid=$!
}
wait_port() {
	i=0
	until curl -s -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null || [ $? -eq 52 ] || [ $? -eq 56 ]; do
		i=$((i + 1)); [ "$i" -lt 100 ] || { cat "$scratch/$2.log" >&2; fail "$2 did not listen on $1"; }
		sleep 0.1
	done
}
unit_start dlpgate-console
console_pid=$last_pid
wait_port "$console_port" dlpgate-console
unit_start dlpgate
agent_pid=$last_pid
wait_port "$agent_port" dlpgate

until [ -s "$up/port" ]; do sleep 0.1; done
port=$(cat "$up/port")
answer=$(curl -sS --proxy "http://127.0.0.1:$agent_port" --cacert "$root/var/lib/dlpgate/ca.pem" \
	"https://127.0.0.1:$port/upload" -d 'name=Jo&card=4111 1111 1111 1111') || fail "the upload through the agent"
[ "$answer" = ok ] || fail "the upstream's answer did not come back: $answer"
grep -F 'card=4111 **** **** 1111' "$up/received" >/dev/null || { cat "$up/received" >&2; fail "the card did not arrive masked"; }
echo "deb: ok: the card arrived masked"

token=$(in_root runuser -u dlpgate-console -- dlpgate-console admin token create --state-dir /var/lib/dlpgate-console)
i=0
until curl -s --cacert "$root/etc/dlpgate/console.pem" -H "Authorization: Bearer $token" \
	"https://127.0.0.1:$console_port/api/v1/events?verdict=redact&limit=10" | grep -q credit_card; do
	i=$((i + 1)); [ "$i" -lt 100 ] || { cat "$scratch/dlpgate.log" >&2; fail "the event did not reach the console"; }
	sleep 0.1
done
echo "deb: ok: the redact event reached the console"
# The web UI the package installed (/usr/share/dlpgate-console/web, the
# console's default --web-root): the page, and the script it names.
page=$(curl -sS --cacert "$root/etc/dlpgate/console.pem" "https://127.0.0.1:$console_port/events") ||
	fail "GET / of the console"
script=$(printf '%s' "$page" | grep -o '/app-[A-Za-z0-9]*\.js' | head -1)
[ -n "$script" ] || { printf '%s\n' "$page" >&2; fail "the console does not serve the web UI's index.html"; }
curl -sSf -o /dev/null --cacert "$root/etc/dlpgate/console.pem" "https://127.0.0.1:$console_port$script" ||
	fail "the console does not serve $script"
echo "deb: ok: the console serves its web UI"
in_root runuser -u dlpgate -- dlpgate status --state-dir /var/lib/dlpgate | sed -n '1,4p;/console.state/p'

# SIGTERM, the agent first (its spool drains to the console).
kill -TERM "$agent_pid"; wait "$agent_pid" || fail "the agent did not exit 0 on SIGTERM"
kill -TERM "$console_pid"; wait "$console_pid" || fail "the console did not exit 0 on SIGTERM"
pids=""
echo "deb: ok: both stopped with exit 0"

# dlpgate-transparent.service's ExecStart with exactly its capabilities:
# it must start (SO_MARK needs CAP_NET_ADMIN) and say how it names apps
# (bpf needs CAP_BPF and CAP_NET_ADMIN). Its ExecStartPre (the nftables
# redirect) is not run: the root shares this machine's network namespace.
sed -i "s|^Environment=DLPGATE_PORT=.*|Environment=DLPGATE_PORT=$agent_port|" \
	"$root/lib/systemd/system/dlpgate-transparent.service"
unit_start dlpgate-transparent
tp_pid=$last_pid
i=0
until grep -q 'event=start ' "$scratch/dlpgate-transparent.log"; do
	i=$((i + 1)); [ "$i" -lt 100 ] || { cat "$scratch/dlpgate-transparent.log" >&2; fail "the transparent unit did not start"; }
	sleep 0.1
done
echo "deb: ok: the transparent unit started: $(grep -o 'app_identity=[a-z]*' "$scratch/dlpgate-transparent.log")"
kill -TERM "$tp_pid"; wait "$tp_pid" || fail "the transparent unit did not exit 0 on SIGTERM"
pids=""
t_run=$(now)

left() {
	for p in /etc/dlpgate /etc/default/dlpgate /etc/default/dlpgate-console /var/lib/dlpgate \
		/var/lib/dlpgate-console /lib/systemd/system/dlpgate.service /usr/bin/dlpgate; do
		[ -e "$root$p" ] && echo "  $p: $(cd "$root" && find ".$p" | wc -l) entries"
	done
	in_root getent passwd dlpgate dlpgate-console | cut -d: -f1 | sed 's/^/  user /'
}
in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq dlpgate dlpgate-console' >/dev/null 2>&1 || fail "apt-get remove"
echo "deb: left after remove:"; left
in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq dlpgate dlpgate-console' >"$scratch/purge.log" 2>&1 || fail "apt-get purge"
grep 'is kept' "$scratch/purge.log" || true
echo "deb: left after purge:"; left
[ ! -e "$root/etc/dlpgate/policy.lua" ] || fail "purge left the conffile /etc/dlpgate/policy.lua"
[ "$(sha256sum "$root/var/lib/dlpgate/ca.key")" = "$ca_before" ] || fail "purge removed or changed the CA"
# How exposed each unit is, as systemd rates it (lower is better); the
# installed files, under their unit names.
if command -v systemd-analyze >/dev/null; then
	for u in dlpgate dlpgate-transparent dlpgate-console; do
		f="$scratch/units/$u.service"
		mkdir -p "$scratch/units"
		cp "$top/packaging/debian/$( [ "$u" = dlpgate-transparent ] && echo dlpgate.dlpgate-transparent || echo "$u").service" "$f"
		echo "deb: $u.service: $(systemd-analyze security --offline=true "$f" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: //p')"
	done
fi
t_end=$(now)
echo "deb: passed; make deb $((t_build - t0))s, root $((t_root - t_build))s, install $((t_install - t_root))s," \
	"units and card $((t_run - t_install))s, remove and purge $((t_end - t_run))s, total $((t_end - t0))s"
