# Sourced by the bench scripts that start a console and PostgreSQL (sh; no shebang).
# wait_console PID CERT PORT LOG: returns once console PID serves HTTPS on
# 127.0.0.1:PORT with certificate CERT; if it dies first, prints LOG and
# exits 1.
wait_console() {
	until [ -s "$2" ] && curl -s -o /dev/null --cacert "$2" https://127.0.0.1:"$3"/; do
		kill -0 "$1" 2>/dev/null || { cat "$4" >&2; exit 1; }
		sleep 0.1
	done
}

# start_console DB-ARG...: a fresh console on 127.0.0.1:$port with state in
# $work/st, enroll secret $secret, binary $cbin; its pid in $cpid.
# stop_console: SIGTERM and wait.
start_console() {
	rm -rf "$work/st"
	mkdir -p "$work/st"
	"$cbin" run --listen 127.0.0.1:$port --state-dir "$work/st" --enroll-secret $secret --log-level warn "$@" \
		>"$work/console.log" 2>&1 &
	cpid=$!
	wait_console $cpid "$work/st/console.pem" $port "$work/console.log"
}
stop_console() { kill $cpid; wait $cpid 2>/dev/null || true; cpid=""; }

# start_pg PORT [-c NAME=VALUE]...: a fresh PostgreSQL 15 in $work/pg (initdb
# as the postgres user, trust auth, socket in the same folder) listening on
# 127.0.0.1:PORT; the console's --db URL in $pg_url. stop_pg: a fast stop,
# a no-op when none was started (for the scripts' cleanup traps).
pgbin=/usr/lib/postgresql/15/bin
start_pg() {
	_pg_port=$1
	shift
	mkdir -p "$work/pg"
	chown postgres "$work/pg"
	runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
	runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
		-o "-p $_pg_port -k $work/pg -c listen_addresses=127.0.0.1 $*" start >/dev/null
	pg_url=postgresql://postgres@127.0.0.1:$_pg_port/postgres
}
stop_pg() {
	[ -d "$work/pg" ] || return 0
	runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
}

# bench_work NAME: a fresh $work (mode 755: the postgres user works in it)
# which goes, with the console ($cpid) and the PostgreSQL the script
# started, when the script exits.
bench_work() {
	work=$(mktemp -d /tmp/dlpgate-"$1"-XXXXXX)
	chmod 755 "$work"
	cpid=""
	trap bench_cleanup EXIT
}
bench_cleanup() {
	[ -n "$cpid" ] && kill $cpid 2>/dev/null && wait $cpid 2>/dev/null || true
	stop_pg
	rm -rf "$work"
}
