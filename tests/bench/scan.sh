#!/bin/sh
# Scan throughput benchmark (issue 3): dlpgate's detectors with the keyword
# prefilter, the same without it (every regex over every byte), and
# Hyperscan on the same regexes as a reference. One core, ratios within
# one run. Two corpora (tests/bench/corpus.py): "real" (this machine's
# headers, Python library and docs, generated JSON and logs) and "dense"
# (a stress test: a tenth of the words are token, secret, password...).
#
#   tests/bench/scan.sh [SIZE_MB]     (default 100; needs `make` first)
#
# With GITLEAKS_TOML=CONFIG (a gitleaks configuration, e.g. gitleaks' own
# config/gitleaks.toml) it measures that configuration instead, imported
# with `dlpgate import gitleaks`, on the real corpus, and names the share of
# its costliest detector.
#
# Hyperscan (libhyperscan-dev) is installed here for the reference only;
# dlpgate never links it.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
mb=${1:-100}
work=${TMPDIR:-/tmp}/dlpgate-scanbench
mkdir -p "$work"
packs="pii secrets finance"

if ! dpkg -s libhyperscan-dev >/dev/null 2>&1; then
	apt-get install -y -qq libhyperscan-dev >/dev/null
fi
cc -O2 -o "$work/hsref" "$top/tests/bench/hsref.c" $(pkg-config --cflags --libs libhs lua5.4)

policy=$work/all.lua
{
	echo 'local dlp = require "dlp"'
	echo "return dlp.merge(require 'pii', require 'secrets', require 'finance')"
} >"$policy"
cp "$top"/rules/pii.lua "$top"/rules/secrets.lua "$top"/rules/finance.lua "$work/"

# CPU seconds (user+sys) of one dlpgate scan, less its start-up (an empty file).
cpu() { /usr/bin/time -f "%U %S" -o "$work/t" "$@" >"$work/out" 2>"$work/err"; awk '{print $1 + $2}' "$work/t"; }
: >"$work/empty"
start=$(cpu "$top/build/dlpgate" scan "$policy" "$work/empty")

gitleaks_pack() {
	corpus=$work/corpus-real-$mb.txt
	"$top/build/dlpgate" import gitleaks "$GITLEAKS_TOML" >"$work/gitleaks.lua" 2>"$work/import.err"
	bytes=$(stat -c %s "$corpus")
	s0=$(cpu "$top/build/dlpgate" scan "$work/gitleaks.lua" "$work/empty")
	t=$(cpu "$top/build/dlpgate" scan --profile "$work/gitleaks.lua" "$corpus")
	found=$(wc -l <"$work/out")
	costliest=$(grep -m2 'profile: ' "$work/err" | tail -1)
	python3 -c "import sys; b, t, s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]); print(f'== imported gitleaks config, real corpus, {b / 1e6:.0f} MB: {b / 1e6 / max(t - s, 1e-9):.1f} MB/s per core (goal >= 200)')" "$bytes" "$t" "$s0"
	echo "   $found findings; costliest detector: ${costliest#profile: }"
}

if [ -n "${GITLEAKS_TOML:-}" ]; then
	corpus=$work/corpus-real-$mb.txt
	[ -s "$corpus" ] || python3 "$top/tests/bench/corpus.py" --real "$mb" "$corpus"
	gitleaks_pack
	exit 0
fi

for kind in real dense; do
	corpus=$work/corpus-$kind-$mb.txt
	flag=; [ "$kind" = real ] && flag=--real
	[ -s "$corpus" ] || python3 "$top/tests/bench/corpus.py" $flag "$mb" "$corpus"
	bytes=$(stat -c %s "$corpus")
	with=$(cpu "$top/build/dlpgate" scan "$policy" "$corpus")
	found=$(wc -l <"$work/out")
	without=$(cpu "$top/build/dlpgate" scan --no-prefilter "$policy" "$corpus")
	found_all=$(wc -l <"$work/out")
	hs=$(taskset -c 0 "$work/hsref" "$work" "$corpus" $packs)
	python3 - "$kind" "$bytes" "$start" "$with" "$without" "$found" "$found_all" "$hs" <<'PY'
import json, sys
kind, b, start, w, wo = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6])
found, found_all, hs = int(sys.argv[6]), int(sys.argv[7]), json.loads(sys.argv[8])
mbps = lambda s: b / 1e6 / max(s - start, 1e-9)
p, a = mbps(w), mbps(wo)
print(f"== {kind} corpus, {b/1e6:.0f} MB, {hs['patterns']} regexes ({hs['prefilter_mode']} in Hyperscan prefilter mode)")
print(f"dlpgate, prefilter      {p:8.1f} MB/s per core   {found} findings")
print(f"dlpgate, every regex    {a:8.1f} MB/s per core   {found_all} findings")
print(f"hyperscan (match only)  {hs['mb_per_s']:8.1f} MB/s per core   {hs['matches']} raw matches")
print(f"prefilter speed-up {p/a:.1f}x (goal >= 10x); dlpgate / hyperscan {100*p/hs['mb_per_s']:.0f}% (goal >= 50%)")
PY
done
