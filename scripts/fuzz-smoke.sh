#!/bin/sh
# Runs each libFuzzer target for a few seconds from its seed corpus (CI
# smoke), as many at a time as there are cores (FUZZ_JOBS overrides): a
# target is single-threaded, and twenty of them one after another were
# the longest stretch of CI. A crash, leak or sanitizer report fails the
# run; each target's output is printed whole when it ends.
set -eu
seconds=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=${FUZZ_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

run_one() {
	target=$1
	name=$(basename "$target")
	corpus="$top/build-fuzz/corpus/$name"
	mkdir -p "$corpus"
	seeds="$top/tests/fuzz/seeds/${name#fuzz_}"
	[ -d "$seeds" ] || seeds=
	# shellcheck disable=SC2086
	"$top/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		"$corpus" $seeds >"$logs/$name.log" 2>&1
}

# Waits for the oldest running target; prints its output and its verdict.
failed=0
running=""
reap() {
	set -- $running
	pid=${1%%:*}
	name=${1#*:}
	shift
	running="$*"
	if wait "$pid"; then
		echo "== $name: ${seconds}s, clean"
	else
		echo "== $name: FAILED"
		failed=1
	fi
	cat "$logs/$name.log"
}

n=0
for target in "$@"; do
	run_one "$target" &
	running="$running $!:$(basename "$target")"
	n=$((n + 1))
	if [ "$n" -ge "$jobs" ]; then
		reap
		n=$((n - 1))
	fi
done
while [ -n "$(echo $running)" ]; do
	reap
done
exit "$failed"
