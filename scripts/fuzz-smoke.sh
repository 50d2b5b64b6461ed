#!/bin/sh
# Runs each libFuzzer target for a few seconds from its seed corpus (CI
# smoke). A crash, leak or sanitizer report fails the run.
set -eu
seconds=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
for target in "$@"; do
	name=$(basename "$target")
	corpus="$top/build-fuzz/corpus/$name"
	mkdir -p "$corpus"
	seeds="$top/tests/fuzz/seeds/${name#fuzz_}"
	echo "== $name: ${seconds}s"
	if [ -d "$seeds" ]; then
		"$top/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus" "$seeds"
	else
		"$top/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus"
	fi
done
