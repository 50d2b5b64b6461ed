#!/bin/sh
# False positives of the shipped packs on clean text (issue 16's goal: at
# most 1 per 10 MB): this machine's documentation (/usr/share/doc, gzip'd
# files read decompressed), C headers (/usr/include) and Python's standard
# library, scanned with pii + secrets + finance. Prints findings per
# detector and per 10 MB. Email addresses and phone numbers in copyright
# notices and changelogs are real ones, so they are listed apart: the
# count that matters is the rest.
#
#   tests/bench/falsepos.sh [MB]    (default 150; needs `make` first)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
mb=${1:-150}
work=${TMPDIR:-/tmp}/dlpgate-falsepos
mkdir -p "$work"
corpus=$work/clean-$mb.txt
[ -s "$corpus" ] || python3 - "$mb" "$corpus" <<'PY'
import gzip, os, sys
limit, out = int(sys.argv[1]) << 20, open(sys.argv[2], 'wb')
total, share = 0, (int(sys.argv[1]) << 20) // 3
text_ext = ('.h', '.hpp', '.py', '.txt', '.md', '.rst', '.html')
for root in ('/usr/share/doc', '/usr/include', '/usr/lib/python3.11'):
    cap = total + share
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if os.path.islink(p):
                continue
            try:
                if f.endswith('.gz'):
                    data = gzip.open(p).read()
                elif f.endswith(text_ext) or f in ('README', 'NEWS', 'changelog', 'copyright'):
                    data = open(p, 'rb').read()
                else:
                    continue
            except (OSError, EOFError):
                continue
            if b'\0' in data[:4096]:
                continue
            out.write(data + b'\n')
            total += len(data) + 1
            if total >= cap:
                break
        if total >= cap:
            break
PY
cp "$top"/rules/pii.lua "$top"/rules/secrets.lua "$top"/rules/finance.lua "$work/"
printf 'local dlp = require "dlp"\nreturn dlp.merge(require "pii", require "secrets", require "finance")\n' >"$work/all.lua"
"$top/build/dlpgate" scan "$work/all.lua" "$corpus" 2>/dev/null >"$work/findings.json" || true
python3 - "$corpus" "$work/findings.json" <<'PY'
import collections, json, os, sys
size = os.path.getsize(sys.argv[1]) / (10 << 20)
counts = collections.Counter(json.loads(l)['detector'] for l in open(sys.argv[2]))
real = {'email', 'phone'}
print(f"{size * 10:.0f} MB of clean text")
for name, n in counts.most_common():
    print(f"  {name:24} {n:6}  {n / size:7.2f} per 10 MB{'  (real addresses and numbers)' if name in real else ''}")
rest = sum(n for k, n in counts.items() if k not in real)
print(f"false positives: {rest} ({rest / size:.2f} per 10 MB)")
PY
