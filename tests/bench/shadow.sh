#!/bin/sh
# tests/bench/shadow.sh - the CPU a shadow policy costs per upload.
#
# Runs the upload scenario of ../shared/bench (proxybench; its README says
# what the scenario and the metrics are) through two dlpgate agents that
# take their policy from a console, as a fleet does:
#   dlpgate-active   the shipped default policy as console bundle v1
#   dlpgate-shadow   the same v1 active, and v2 (the same content, so no
#                    verdict changes and no shadow events: the cost measured
#                    is the evaluation itself) in shadow at 100% sampling
# The console is tests/integration/policy_console.py (real HTTPS); the
# bundles are signed with `dlpgate-console policy sign` and a fresh key.
# Compare proxy_cpu_s / requests of the two RESULT lines (goal: shadow at
# most 1.6x active).
#
#   tests/bench/shadow.sh [BENCH_DIR]      (default /work/shared/bench)
# Needs build/dlpgate and build/dlpgate-console (DLPGATE_CONSOLE_BIN to use
# another one), nginx, python3.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bench=${1:-/work/shared/bench}
console_bin=${DLPGATE_CONSOLE_BIN:-$top/build/dlpgate-console}
work=$(mktemp -d)
trap 'kill $(cat "$work"/*.console.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT

# the bench, with two more proxy files
cp -r "$bench" "$work/bench"
mkdir -p "$work/bundle/tests"
cp "$top/rules/default.lua" "$work/bundle/policy.lua"
cp "$top/rules/pii.lua" "$top/rules/secrets.lua" "$top/rules/finance.lua" "$work/bundle/"
openssl genpkey -algorithm ed25519 -out "$work/sign.key" 2>/dev/null
chmod 600 "$work/sign.key"
python3 - "$work/sign.key" > "$work/keys.txt" <<'PY'
import base64, hashlib, sys
from cryptography.hazmat.primitives import serialization
k = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
raw = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
print("ed25519", hashlib.sha256(raw).hexdigest()[:16], base64.b64encode(raw).decode())
PY
for v in 1 2; do
    "$console_bin" policy sign "$work/bundle" --key "$work/sign.key" --version $v --out "$work/v$v.dlpbundle" >/dev/null
done

echo '{"report": {"status_interval_s": 1}}' > "$work/report.json"

# console_for NAME WITH_SHADOW: a console dir serving v1 (and v2 in shadow)
console_for() {
    dir="$work/$1.console"
    mkdir -p "$dir"
    python3 - "$work" "$2" > "$dir/offer.json" <<'PY'
import json, sys
w, shadow = sys.argv[1], sys.argv[2] == "yes"
doc = lambda v: json.load(open("%s/v%d.dlpbundle" % (w, v)))
print(json.dumps({"active": {"version": 1, "bundle": doc(1)},
                  "shadow": {"version": 2, "sample_percent": 100, "bundle": doc(2)} if shadow else None}))
PY
    if [ "$2" = yes ]; then echo '"1.2"' > "$dir/etag"; else echo '"1.0"' > "$dir/etag"; fi
}
console_for dlpgate-active no
console_for dlpgate-shadow yes

port=18100
for name in dlpgate-active dlpgate-shadow; do
    port=$((port + 1))
    cat > "$work/bench/proxies/$name.sh" <<SH
# $name: dlpgate with its policy from a console (tests/bench/shadow.sh)
PROXY_DESC="dlpgate, console policy: $name"
PROXY_PORT=$port
proxy_start() {
    d="$work/$name.console"
    cport=$((port + 1000))
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "\$d/tls.key" -out "\$d/tls.pem" 2>/dev/null
    python3 "$top/tests/integration/policy_console.py" \$cport "\$d/tls.pem" "\$d/tls.key" "\$d" 2>"\$d/console.log" &
    echo \$! > "\$d/../$name.console.pid"
    sleep 1
    mkdir -p "\$PROXY_WORKDIR/state"
    "$top/build/dlpgate" run --listen "127.0.0.1:\$PROXY_PORT" --state-dir "\$PROXY_WORKDIR/state" \
        --ca-cert "\$PROXY_CA_CERT" --ca-key "\$PROXY_CA_KEY" --upstream-ca "\$UPSTREAM_CA_CERT" \
        --console "https://127.0.0.1:\$cport" --console-ca "\$d/tls.pem" --enroll-secret bench \
        --bundle-keys "$work/keys.txt" --config "$work/report.json" >"\$PROXY_LOG" 2>&1 &
    PROXY_PID=\$!
    # the bench starts its warm-up once the port listens: wait for the bundle(s) first
    for i in \$(seq 100); do
        grep -q "event=policy_activated" "\$PROXY_LOG" 2>/dev/null && break
        sleep 0.1
    done
    if [ "$name" = dlpgate-shadow ]; then
        for i in \$(seq 100); do grep -q "event=policy_shadow" "\$PROXY_LOG" && break; sleep 0.1; done
    fi
}
SH
done
cd "$top"
BENCH_SCENARIOS=${BENCH_SCENARIOS:-upload} "$work/bench/run.sh" dlpgate-active dlpgate-shadow
# evidence that the shadow ran: the agents' last status posts
for name in dlpgate-active dlpgate-shadow; do
    printf '# %s policy status: ' "$name"
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["policy"]))' \
        "$work/$name.console/status.json" 2>/dev/null || echo "(none posted)"
done
