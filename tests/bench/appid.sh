#!/bin/sh
# Identity lookup cost per new flow (issue 4): tests/bench/appid_bench.c
# with 10,000 sockets held by another uid, then by the apps' own uid; first
# walking /proc, then with the kernel's record of connects (BPF).
#   tests/bench/appid.sh        (Linux, root; needs `make` first)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${TMPDIR:-/tmp}/dlpgate-appid-bench
cc -O2 -std=c17 -D_GNU_SOURCE -I"$top/engine" -o "$out" "$top/tests/bench/appid_bench.c" \
	"$top/build/libdlpgate.a" $(pkg-config --libs libuv) -lpthread
for how in proc bpf; do
	echo "== $how: 10,000 sockets held by uid 65534"
	"$out" 65534 $how
	echo "== $how: 10,000 sockets held by root, the apps' own uid"
	"$out" 0 $how
done
