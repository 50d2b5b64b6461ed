#!/bin/sh
# Runs the test suites of one build (build/, build-asan/, build-tsan/) and
# fails if any fails: both, or only those named after the build. Each
# suite prints Check's summary line; this prints a last one.
set -u
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
export DLPGATE_BIN="$top/$build/dlpgate"
export DLPGATE_TOP="$top"
# Sanitizer builds: fail on the first report, and keep quarantine small so
# the memory-bound tests measure the proxy, not ASan's free list.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:quarantine_size_mb=16}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp}"

# Every file a suite or a peer it starts (nginx, PostgreSQL, curl) makes
# goes under one directory of this build, removed at the end: make test
# leaves nothing in /tmp. 0755: uid 1000 (transparent mode) and nginx's
# workers must read what the tests put there.
tmp="$top/$build/t"
rm -rf "$tmp"
mkdir -p "$tmp"
chmod 755 "$tmp"
export TMPDIR="$tmp"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
# The unit suites' expected engine warnings, kept apart (tests/unit/main.c).
export UNIT_ENGINE_LOG="$top/$build/unit-tests.log"

shift $(( $# > 0 ? 1 : 0 ))
failed=0
for suite in ${*:-unit-tests integration-tests}; do
	bin="$top/$build/$suite"
	[ -x "$bin" ] || { echo "missing $bin" >&2; failed=1; continue; }
	echo "== $build/$suite"
	"$bin" || failed=1
done
if [ "$failed" -ne 0 ]; then
	echo "== FAILED: $build"
	exit 1
fi
echo "== all suites passed: $build"
