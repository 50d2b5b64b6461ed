#!/bin/bash
# Linux transparent mode end to end, in network namespaces of its own.
# Called by test_transparent.c, which makes the certificates and reads the
# verdict from the exit code and the "ok:" / "FAIL:" lines.
#
#   ns $A: the endpoint. dlpgate --transparent runs here as root, and
#          `dlpgate redirect install` puts its nftables table here only.
#   ns $B: the internet. nginx serves https://up.test on $UP_IP:443.
#
# Proves: uid-scoped redirect (uid 1000 intercepted, uid 1001 not), a
# cgroup-scoped one (uid 1001 inside the cgroup intercepted, outside not), the
# app identity behind a flow (uid, executable), no loop with --all (the
# engine's own upstream sockets, and its uploads to the console in ns $B,
# carry its mark), UDP 443 dropped only for the scope, and `redirect remove`
# leaving the ruleset as it was.
#
# Env: DLPGATE, WORK (a 0755 dir), UPSTREAM_CA, SERVER_CERT, SERVER_KEY,
#      POLICY, NET (e.g. 10.77.5), NET6 (e.g. fd00:77:5), TAG (short, unique)
set -u
A=dlpa$TAG B=dlpb$TAG
UP_IP=$NET.2 EP_IP=$NET.1 UP_IP6=$NET6::2 EP_IP6=$NET6::1
PORT=3129
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
cleanup() {
	[ -n "${DLP_PID:-}" ] && kill "$DLP_PID" 2>/dev/null
	[ -n "${NGINX_PID:-}" ] && kill "$NGINX_PID" 2>/dev/null
	[ -n "${CONSOLE_PID:-}" ] && kill "$CONSOLE_PID" 2>/dev/null
	wait 2>/dev/null
	ip netns del "$A" 2>/dev/null
	ip netns del "$B" 2>/dev/null
}
trap cleanup EXIT
trap "exit 1" INT TERM
inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }

ip netns add "$A" && ip netns add "$B" || fail "ip netns add"
ip link add "va$TAG" type veth peer name "vb$TAG" || fail "veth"
ip link set "va$TAG" netns "$A" && ip link set "vb$TAG" netns "$B" || fail "veth into namespaces"
inA ip addr add "$EP_IP/24" dev "va$TAG" && inA ip -6 addr add "$EP_IP6/64" dev "va$TAG" nodad &&
	inA ip link set "va$TAG" up && inA ip link set lo up || fail "ns A up"
inB ip addr add "$UP_IP/24" dev "vb$TAG" && inB ip -6 addr add "$UP_IP6/64" dev "vb$TAG" nodad &&
	inB ip link set "vb$TAG" up && inB ip link set lo up || fail "ns B up"

cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
	access_log off;
	server {
		listen $UP_IP:443 ssl;
		listen [$UP_IP6]:443 ssl;
		ssl_certificate $SERVER_CERT;
		ssl_certificate_key $SERVER_KEY;
		location / { return 200 "hello from up.test\n"; }
	}
}
EOF
# not through the inB function: $! must be nginx itself (ip netns exec
# execs it), not a subshell whose death would leave nginx running
ip netns exec "$B" nginx -c "$WORK/nginx.conf" -g "daemon off;" &
NGINX_PID=$!

inA nft list ruleset >"$WORK/ruleset-before" || fail "nft list ruleset"
# The console, across the "internet" in ns B on a port the redirect will
# cover: the agent's uploads must go out marked, or --all loops them. It
# drops idle connections at once, so uploads after --all are new
# connections (NAT rules only ever see a connection's first packet).
# Started directly, not through inB: killing a subshell would leave it.
CONSOLE="$(dirname "$DLPGATE")/dlpgate-console"
SECRET=transparent-test-enroll-secret
mkdir -p "$WORK/console"
ip netns exec "$B" "$CONSOLE" run --listen "$UP_IP:8443" --state-dir "$WORK/console" --enroll-secret $SECRET --idle-timeout-ms 200 \
	2>"$WORK/console.log" &
CONSOLE_PID=$!
for _ in $(seq 100); do [ -s "$WORK/console/console.pem" ] && break; sleep 0.1; done
[ -s "$WORK/console/console.pem" ] || fail "the console did not start: $(cat "$WORK/console.log")"

# every flow gets a flow-log event: they carry the app's command line
echo '{"report": {"flow_events": "all", "batch_wait_ms": 100, "retry_max_s": 1}}' >"$WORK/config.json"
ip netns exec "$A" "$DLPGATE" run --transparent "127.0.0.1:$PORT" --transparent "[::1]:$PORT" --state-dir "$WORK/state" --upstream-ca "$UPSTREAM_CA" \
	--policy "$POLICY" --config "$WORK/config.json" --workers 2 \
	--console "https://$UP_IP:8443" --console-ca "$WORK/console/console.pem" --enroll-secret $SECRET \
	2>"$WORK/dlpgate.log" &
DLP_PID=$!
for _ in $(seq 100); do
	# the start line comes once the workers run (the port listens before)
	grep -q "event=start" "$WORK/dlpgate.log" && inA bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null && break
	sleep 0.1
done
kill -0 "$DLP_PID" 2>/dev/null || fail "dlpgate did not start: $(cat "$WORK/dlpgate.log")"
# apps are named from the kernel's record of connects (BPF) where it can
# keep one, else through /proc: both must pass what follows
how=$(sed -n 's/.*event=start.* app_identity=\([a-z]*\).*/\1/p' "$WORK/dlpgate.log")
case "$how" in
bpf) ok "app identity from the kernel's record of connects (bpf)" ;;
proc) echo "note: app identity through /proc: $(grep -o 'event=app_identity.*' "$WORK/dlpgate.log")" ;;
*) fail "no app_identity in the start line: $(grep event=start "$WORK/dlpgate.log")" ;;
esac
cp "$WORK/state/ca.pem" "$WORK/dlpgate-ca.pem" && chmod 644 "$WORK/dlpgate-ca.pem"
for _ in $(seq 50); do inA bash -c "exec 3<>/dev/tcp/$UP_IP/443" 2>/dev/null && break; sleep 0.1; done

# as uid: curl https://up.test trusting only CAFILE (at ADDR, IPv4 by
# default); prints the HTTP status
get() {
	inA setpriv --reuid "$1" --regid "$1" --clear-groups curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
		--cacert "$2" --resolve "up.test:443:${3:-$UP_IP}" https://up.test/ 2>&1
}

# 1. scope: uid 1000 only
inA "$DLPGATE" redirect install --to "$PORT" --uid 1000 --ports 443 >/dev/null || fail "redirect install --uid"
r=$(get 1000 "$WORK/dlpgate-ca.pem")
[ "$r" = 200 ] || fail "uid 1000 should be intercepted (trusting only dlpgate's CA): $r"
ok "uid 1000 intercepted"
r=$(get 1001 "$UPSTREAM_CA")
[ "$r" = 200 ] || fail "uid 1001 should reach up.test directly (trusting only its CA): $r"
ok "uid 1001 not redirected"
r=$(get 1000 "$WORK/dlpgate-ca.pem" "[$UP_IP6]")
[ "$r" = 200 ] || fail "uid 1000 over IPv6 should be intercepted too: $r"
grep -q "uid=1000 app=/usr/bin/curl.*dst=$UP_IP6 " "$WORK/dlpgate.log" || fail "no IPv6 flow from uid 1000 (curl) to $UP_IP6 in the log"
ok "IPv6: intercepted, original destination $UP_IP6"

# 2. who: the flow log names the uid and the program
for _ in $(seq 50); do grep -q "source=transparent.*sni=up.test" "$WORK/dlpgate.log" && break; sleep 0.1; done
line=$(grep "source=transparent.*sni=up.test" "$WORK/dlpgate.log" | head -1)
case "$line" in *"uid=1000"*) ;; *) fail "no uid=1000 in: $line" ;; esac
case "$line" in *"app=/usr/bin/curl"*) ;; *) fail "no app=/usr/bin/curl in: $line" ;; esac
case "$line" in *"sni=up.test"*) ;; *) fail "no sni=up.test in: $line" ;; esac
ok "identity: $(echo "$line" | grep -o 'uid=[0-9]* app=[^ ]*')"
ADMIN=$("$CONSOLE" admin token create --state-dir "$WORK/console") || fail "admin token create"
# the flow events the console holds (queried from ns B: not redirected)
events() {
	inB curl -sS --max-time 5 --cacert "$WORK/console/console.pem" -H "Authorization: Bearer $ADMIN" \
		"https://$UP_IP:8443/api/v1/events?kind=flow&limit=1000"
}
# the command line of the first flow event from uid UID the console holds
cmdline_of() {
	events | python3 -c 'import json, sys
for e in json.load(sys.stdin)["events"]:
    if e.get("app", {}).get("uid") == int(sys.argv[1]):
        print(e["app"].get("cmdline", "")); break' "$1"
}
for _ in $(seq 50); do [ -n "$(cmdline_of 1000)" ] && break; sleep 0.1; done
cmd=$(cmdline_of 1000)
case "$cmd" in "curl -sS --max-time 10 -o /dev/null"*"https://up.test/") ;;
*) fail "the flow event from uid 1000 should name curl's command line, not: '$cmd'" ;; esac
ok "event at the console: app.cmdline '${cmd%% -o *} ...'"

# 3. UDP 443 dropped for the scope only
recv() {
	rm -f "$WORK/udp-bound"
	inB python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 443)); s.settimeout(2)
open(sys.argv[2], "w").close()
try: print(s.recv(100).decode())
except socket.timeout: print("nothing")' "$UP_IP" "$WORK/udp-bound" &
	local rp=$!
	# sent only once the receiver is bound: a datagram sent earlier is lost
	for _ in $(seq 100); do [ -e "$WORK/udp-bound" ] && break; sleep 0.05; done
	inA setpriv --reuid "$1" --regid "$1" --clear-groups bash -c "echo quic-from-$1 >/dev/udp/$UP_IP/443" 2>/dev/null
	wait $rp
}
r=$(recv 1000)
[ "$r" = nothing ] || fail "UDP 443 from uid 1000 should be dropped, got: $r"
r=$(recv 1001)
[ "$r" = quic-from-1001 ] || fail "UDP 443 from uid 1001 should pass, got: $r"
ok "UDP 443 dropped for uid 1000 only"

# 4. no loop: every program redirected, root included; the engine's own
#    upstream connections carry its mark and go out
inA "$DLPGATE" redirect install --to "$PORT" --all --ports 443,8443 >/dev/null || fail "redirect install --all"
r=$(get 0 "$WORK/dlpgate-ca.pem")
[ "$r" = 200 ] || fail "with --all, root's request should be intercepted once and reach up.test: $r"
n=$(grep -c "source=transparent.*sni=up.test" "$WORK/dlpgate.log")
[ "$n" = 3 ] || fail "the engine intercepted itself: $n intercepted flows for 3 requests"
ok "no loop with --all"
# root's flow happened under --all (ports 443 and 8443): its event can only
# reach the console if the upload went out marked
for _ in $(seq 50); do [ -n "$(cmdline_of 0)" ] && break; sleep 0.1; done
[ -n "$(cmdline_of 0)" ] || fail "with --all, the agent's uploads did not reach the console: $(grep upload "$WORK/dlpgate.log" | tail -3)"
# and none of them went through the engine itself (unmarked, they would:
# intercepted once, then spliced as pinned, so arriving proves nothing)
! grep -q "source=transparent.* port=8443 " "$WORK/dlpgate.log" ||
	fail "the engine intercepted its own upload: $(grep "source=transparent.* port=8443 " "$WORK/dlpgate.log" | head -1)"
ok "no loop for the agent's uploads to the console"
# root running a root-owned system binary is "system"; uid 1000 was "user"
grep -q "uid=0 app=/usr/bin/curl signing_id=- anchor=system" "$WORK/dlpgate.log" ||
	fail "root's curl should be anchor=system: $(grep 'uid=0' "$WORK/dlpgate.log" | head -1)"
grep -q "uid=1000 app=/usr/bin/curl signing_id=- anchor=user" "$WORK/dlpgate.log" ||
	fail "uid 1000's curl should be anchor=user"
ok "anchor: system for root's /usr/bin/curl, user for uid 1000's"

# 5. a connection straight to the transparent port is refused, not looped
inA bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; cat <&3" >/dev/null 2>&1
for _ in $(seq 50); do grep -q "end=not-redirected" "$WORK/dlpgate.log" && break; sleep 0.1; done
grep -q "end=not-redirected" "$WORK/dlpgate.log" || fail "a direct connection was not refused"
ok "direct connection refused"

# 6. scope: a cgroup v2. The host may mount cgroup v1 only (then nft
#    cannot resolve the path under /sys/fs/cgroup); the v2 hierarchy always
#    exists, so each command below mounts it there in the private mount
#    namespace `ip netns exec` gives it, and nothing changes on the host.
CG=dlpgate-test-$TAG
inCg() { ip netns exec "$A" sh -c 'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"' sh "$@"; }
# as uid 1001, inside the cgroup: like get
get_in_cg() {
	ip netns exec "$A" sh -c 'mount -t cgroup2 none /sys/fs/cgroup && echo $$ >/sys/fs/cgroup/'"$CG"'/cgroup.procs && exec "$@"' sh \
		setpriv --reuid 1001 --regid 1001 --clear-groups curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
		--cacert "$1" --resolve "up.test:443:$UP_IP" https://up.test/ 2>&1
}
if ! inCg mkdir "/sys/fs/cgroup/$CG" 2>"$WORK/cgroup.err"; then
	echo "skip: --cgroup not tested: cannot mount cgroup v2 or create a cgroup here: $(cat "$WORK/cgroup.err")"
else
	trap 'inCg rmdir "/sys/fs/cgroup/$CG"; cleanup' EXIT
	inCg "$DLPGATE" redirect install --to "$PORT" --cgroup "/$CG" --ports 443 >/dev/null || fail "redirect install --cgroup"
	before=$(grep -c "source=transparent.*uid=1001" "$WORK/dlpgate.log")
	r=$(get_in_cg "$WORK/dlpgate-ca.pem")
	[ "$r" = 200 ] || fail "uid 1001 inside cgroup $CG should be intercepted: $r"
	for _ in $(seq 50); do [ "$(grep -c "source=transparent.*uid=1001" "$WORK/dlpgate.log")" -gt "$before" ] && break; sleep 0.1; done
	[ "$(grep -c "source=transparent.*uid=1001" "$WORK/dlpgate.log")" -gt "$before" ] ||
		fail "no transparent flow from uid 1001 in cgroup $CG in the log"
	r=$(get 1001 "$UPSTREAM_CA")
	[ "$r" = 200 ] || fail "uid 1001 outside cgroup $CG should reach up.test directly: $r"
	ok "cgroup /$CG intercepted, the same uid outside it not"
fi

# 7. remove restores the ruleset exactly
inA "$DLPGATE" redirect remove >/dev/null || fail "redirect remove"
inA nft list ruleset >"$WORK/ruleset-after"
cmp -s "$WORK/ruleset-before" "$WORK/ruleset-after" || fail "ruleset differs after remove: $(diff "$WORK/ruleset-before" "$WORK/ruleset-after")"
r=$(get 1000 "$UPSTREAM_CA")
[ "$r" = 200 ] || fail "after remove, uid 1000 should go direct: $r"
ok "remove restores the ruleset"
echo "all transparent checks passed"
