#!/bin/sh
# Exact data match at scale (issue 16): builds a pack of ROWS rows (default
# 10 million: account digits, email, name) from a generated table, then
# scans the real corpus of scan.sh with all shipped packs, with and
# without a dlp.edm detector on it. Prints the build's time and memory,
# the pack's size, the load's time and memory, and the scan speed both
# ways (start-up, which holds the pack's load, taken out; goal: at most
# 20% slower). One core; best of 3.
#
#   tests/bench/edm.sh [ROWS] [CORPUS_MB]    (needs `make` first)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
rows=${1:-10000000}
mb=${2:-100}
work=${TMPDIR:-/tmp}/dlpgate-edmbench
mkdir -p "$work"
bin=$top/build/dlpgate
corpus=$work/corpus-real-$mb.txt
[ -s "$corpus" ] || python3 "$top/tests/bench/corpus.py" --real "$mb" "$corpus"
csv=$work/rows-$rows.csv
[ -s "$csv" ] || python3 - "$csv" "$rows" <<'PY'
import random, sys
random.seed(7)
first = "james mary john patricia robert jennifer michael linda william elizabeth anna luca marie jan sofia".split()
last = "smith johnson williams brown jones garcia miller davis rodriguez martinez lee perez white harris clark".split()
with open(sys.argv[1], "w") as out:
    out.write("account,email,name\n")
    for i in range(int(sys.argv[2])):
        f, l = random.choice(first), random.choice(last)
        out.write(f"{1000000000 + i * 7919 % 8999999999},{f}.{l}{i}@example-corp.com,{f.title()} {l.title()}\n")
PY
/usr/bin/time -f "%e %U %M" -o "$work/build.t" "$bin" edm build --columns account:digits,email:email,name:name \
	"$csv" >"$work/edm.pack" 2>/dev/null
cp "$top"/rules/pii.lua "$top"/rules/secrets.lua "$top"/rules/finance.lua "$work/"
printf 'local dlp = require "dlp"\nreturn dlp.merge(require "pii", require "secrets", require "finance")\n' >"$work/all.lua"
cat >"$work/all_edm.lua" <<'LUA'
local dlp = require "dlp"
local all = dlp.merge(require "pii", require "secrets", require "finance")
all.customers = dlp.edm{ pack = "edm.pack", primary = "account", corroborate = {"email", "name"}, distance = 300 }
return all
LUA
: >"$work/empty"
# best of 3 of CPU seconds (user+sys) and the max RSS of the last
cpu() {
	best=
	for i in 1 2 3; do
		/usr/bin/time -f "%U %S %M" -o "$work/t" "$@" >/dev/null 2>&1
		t=$(awk '{print $1 + $2}' "$work/t")
		best=$(python3 -c "import sys; a=sys.argv[1]; print(min(float(a), float(sys.argv[2])) if a else sys.argv[2])" "$best" "$t")
	done
	echo "$best $(awk '{print $3}' "$work/t")"
}
s0=$(cpu "$bin" scan "$work/all.lua" "$work/empty")
s1=$(cpu "$bin" scan "$work/all_edm.lua" "$work/empty")
w0=$(cpu "$bin" scan "$work/all.lua" "$corpus")
w1=$(cpu "$bin" scan "$work/all_edm.lua" "$corpus")
python3 - "$rows" "$(stat -L -c %s "$corpus")" "$(stat -c %s "$work/edm.pack")" "$(cat "$work/build.t")" "$s0" "$s1" "$w0" "$w1" <<'PY'
import sys
rows, size, pack = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
be, bu, bm = sys.argv[4].split()
(s0, _), (s1, m1), (w0, r0), (w1, r1) = [tuple(map(float, a.split())) for a in sys.argv[5:9]]
mbps = lambda t, s: size / 1e6 / max(t - s, 1e-9)
a, b = mbps(w0, s0), mbps(w1, s1)
print(f"== EDM, {rows:,} rows x 3 columns")
print(f"build: {float(be):.1f} s wall, {float(bu):.1f} s CPU, {int(bm) / 1024:.0f} MiB max RSS; pack {pack / 2**20:.1f} MiB")
print(f"load: {s1 - s0:.2f} s CPU, {m1 / 1024:.0f} MiB max RSS (the pack, read once per process)")
print(f"scan real corpus {size / 1e6:.0f} MB, all packs:        {a:7.1f} MB/s per core, {r0 / 1024:.0f} MiB max RSS")
print(f"scan real corpus, all packs + dlp.edm: {b:7.1f} MB/s per core, {r1 / 1024:.0f} MiB max RSS")
print(f"slowdown {100 * (a / b - 1):.1f}% (goal <= 20%)")
PY
