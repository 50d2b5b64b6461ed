#!/bin/sh
# tests/bench/zipbomb.sh - zip bombs uploaded through dlpgate (issue 16):
# each must be refused within the document limits (engine/doc/doc.h) in
# under a second, with the gateway's peak RSS at most 64 MiB.
#
# The bombs, written by Python here:
#   zeros-1g.zip    1024 members of 1 MiB of zeros: 1 GiB inflated, ~1 MB sent
#   overlap-1g.zip  one 1 MiB deflated member named by 1024 central entries
#                   (the overlapping-member construction): 1 GiB declared
#   nested.zip      16 zips of 16 members of 4 MiB zeros each: 1 GiB two deep
#   gzip-1g.tar.gz  a tar holding 1 GiB of zeros, gzipped (gzip -9)
#   card.docx       a real document with a card: the control, found
# Each is uploaded by curl as a multipart part over intercepted TLS to an
# HTTPS upstream (python3 http.server); the policy blocks a card and
# whatever on_uninspectable is asked about. Prints one line per upload
# (status, seconds as curl measured them, reason) and the gateway's peak
# RSS (VmHWM) before and after; twice: with the default limits, and with
# the ratio limit lifted, so the other limits show they hold alone.
#
#   tests/bench/zipbomb.sh        (needs build/dlpgate: `make` first)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${DLPGATE_BIN:-$top/build/dlpgate}
work=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

python3 "$top/tests/integration/docs_make.py" "$work" >/dev/null
python3 - "$work" <<'PY'
import io, os, sys, tarfile, zipfile, zlib, struct
w = sys.argv[1]
mib = bytes(1 << 20)
with zipfile.ZipFile(os.path.join(w, "zeros-1g.zip"), "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for i in range(1024):
        z.writestr("zeros-%04d.bin" % i, mib)
# one member, 1024 names
comp = zlib.compressobj(9, zlib.DEFLATED, -15)
data = comp.compress(mib) + comp.flush()
crc, name = zlib.crc32(mib), b"kernel.bin"
body = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), len(mib), len(name), 0) + name + data
cd = b"".join(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), len(mib), len(name),
                          0, 0, 0, 0, 0, 0) + name for _ in range(1024))
open(os.path.join(w, "overlap-1g.zip"), "wb").write(
    body + cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1024, 1024, len(cd), len(body), 0))
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for i in range(16):
        z.writestr("zeros-%02d.bin" % i, bytes(4 << 20))
with zipfile.ZipFile(os.path.join(w, "nested.zip"), "w", zipfile.ZIP_STORED) as z:
    for i in range(16):
        z.writestr("inner-%02d.zip" % i, inner.getvalue())
PY
# a tar of 1 GiB of zeros, streamed into gzip
python3 - "$work" <<'PY' | gzip -9 > "$work/gzip-1g.tar.gz"
import sys, tarfile
class Zeros:
    def __init__(self, n): self.n = n
    def read(self, k=-1):
        k = self.n if k < 0 else min(k, self.n)
        self.n -= k
        return bytes(k)
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as t:
    ti = tarfile.TarInfo("zeros.bin"); ti.size = 1 << 30
    t.addfile(ti, Zeros(1 << 30))
PY

# the upstream: HTTPS on a certificate of its own
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$work/up.key" -out "$work/up.pem" 2>/dev/null
up_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$up_port" "$work/up.pem" "$work/up.key" <<'PY' 2>/dev/null &
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"ok\n")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[2], sys.argv[3])
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()
PY
pids="$pids $!"

# run_gateway LABEL INSPECT_LUA: one gateway on a policy that blocks cards
# and whatever on_uninspectable is asked about, then every upload
run_gateway() {
	cat > "$work/policy.lua" <<LUA
local dlp = require "dlp"
local pii = require "pii"
$2
function on_request(req, flow)
	local found = req:scan({credit_card = pii.credit_card})
	if found.credit_card then
		return dlp.block("card in " .. (found.credit_card.document or "the body"), found)
	end
	return dlp.pass()
end
function on_uninspectable(flow, why)
	return dlp.block("not inspectable (" .. why.code .. "): " .. why.detail)
end
LUA
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	rm -rf "$work/state"
	"$bin" run --listen "127.0.0.1:$port" --state-dir "$work/state" --upstream-ca "$work/up.pem" \
		--policy "$work/policy.lua" --workers 1 2>"$work/dlpgate.log" &
	gw=$!
	pids="$pids $gw"
	for _ in $(seq 50); do
		[ -f "$work/state/ca.pem" ] && curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
		sleep 0.1
	done
	echo "== $1"
	echo "gateway pid $gw, peak RSS before uploads: $(hwm)"
	printf '%-16s %10s %6s %9s  %s\n' file bytes status seconds reason
	for f in card.docx zeros-1g.zip overlap-1g.zip nested.zip gzip-1g.tar.gz; do
		out=$(curl -q -sS --proxy "http://127.0.0.1:$port" --cacert "$work/state/ca.pem" \
			-H 'Accept: application/json' -F "file=@$work/$f" -w '\n%{http_code} %{time_total}' \
			"https://127.0.0.1:$up_port/upload")
		reason=$(printf '%s' "$out" | head -n 1 | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["error"]["detail"])
except Exception: print("-")')
		set -- $(printf '%s' "$out" | tail -n 1)
		printf '%-16s %10s %6s %9s  %s\n' "$f" "$(stat -c %s "$work/$f")" "$1" "$2" "$reason"
	done
	echo "gateway peak RSS after uploads (VmHWM): $(hwm)"
	kill "$gw"
	wait "$gw" 2>/dev/null || true
}
hwm() { awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$gw/status"; }

run_gateway "default document limits (doc_limits_default)" ""
run_gateway "ratio limit off: the size, total and overlap limits alone" \
	"inspect = {documents = {max_ratio = 100000}}"
