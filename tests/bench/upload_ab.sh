#!/bin/bash
# tests/bench/upload_ab.sh - CPU per upload of dlpgate builds side by side,
# alternating, on the world of ../shared/bench (proxybench).
#
# proxybench's run.sh times one proxy after another, so on a busy machine
# the load moves between them; this runs each variant for a fixed number of
# uploads, round after round, and prints one line per run: the CPU the
# proxy used (utime+stime from /proc), its peak RSS and the client's MB/s.
# Compare the medians of the rounds.
#
# The world (certs, nginx with /upload) is one proxybench left behind:
#   (cd /work/shared/bench && BENCH_KEEP=1 BENCH_SCENARIOS=upload ./run.sh none)
#   tests/bench/upload_ab.sh /tmp/proxybench.XXXXXX ROUNDS N BODY_BYTES PII_EVERY
# with VARIANTS="name:dlpgate-binary:policy.lua:proxy|upstream ..." (the
# last field: which CA the client trusts; "upstream" for a policy that
# bypasses every flow, the spliced baseline). CONC (16) uploads in flight.
# Examples (issue 11's numbers):
#   64 KiB uploads, a card every 4 KiB, main vs a branch:
#     VARIANTS="main:/tmp/main/build/dlpgate:/tmp/main/rules/default.lua:proxy \
#               new:build/dlpgate:rules/default.lua:proxy" tests/bench/upload_ab.sh $W 8 8000 65536 4096
#   256 MiB uploads, inspected vs spliced (bypass policy):
#     CONC=1 VARIANTS="scan:build/dlpgate:rules/default.lua:proxy \
#               splice:build/dlpgate:bypass.lua:upstream" tests/bench/upload_ab.sh $W 3 2 268435456 0
set -u
S=$1; ROUNDS=$2; N=$3; BODY=$4; PII=$5
C=$S/certs; NG=$S/nginx; LG=$S/loadgen
nginx -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" -g 'daemon off;' >/dev/null 2>&1 &
NGINX=$!
sleep 1
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
port=18150
for r in $(seq 1 $ROUNDS); do
  for v in $VARIANTS; do
    IFS=: read name bin policy cca <<<"$v"
    port=$((port+1))
    st=$(mktemp -d)
    "$bin" run --listen 127.0.0.1:$port --state-dir "$st" --ca-cert $C/proxy-ca.crt --ca-key $C/proxy-ca.key \
       --upstream-ca $C/upstream-ca.crt --policy "$policy" >"$st/log" 2>&1 &
    P=$!
    [ "$cca" = upstream ] && CA=$C/upstream-ca.crt || CA=$C/proxy-ca.crt
    for i in $(seq 1 50); do curl -s -o /dev/null -x http://127.0.0.1:$port --cacert $CA https://127.0.0.1:18443/1k && break; sleep 0.1; done
    $LG -u https://127.0.0.1:18443/upload -x http://127.0.0.1:$port --cacert $CA -m POST -b $BODY -c ${CONC:-16} -n $(( N / 10 + 1 )) --pii-every $PII >/dev/null 2>&1
    t0=$(ticks $P)
    out=$($LG -u https://127.0.0.1:18443/upload -x http://127.0.0.1:$port --cacert $CA -m POST -b $BODY -c ${CONC:-16} -n $N --pii-every $PII --timeout 900)
    t1=$(ticks $P)
    req=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$out"); err=$(sed 's/.*errors=\([0-9]*\).*/\1/' <<<"$out")
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$P/status)
    echo "round=$r variant=$name requests=$req errors=$err cpu_s=$(awk -v t=$((t1-t0)) 'BEGIN{printf "%.2f", t/100}') hwm_kib=$hwm $(grep -o 'mb_s=[0-9.]*' <<<"$out" | head -1)"
    kill $P; wait $P 2>/dev/null
    rm -rf "$st"
  done
done
kill $NGINX; wait $NGINX 2>/dev/null
