#!/bin/sh
# Installs the Debian 12 packages dlpgate needs. Idempotent and quiet: when
# everything is present it prints nothing and touches nothing.
# Usage: scripts/deps.sh [build|run|test|all|packaging|deb]   (default: all)
#   build  compiling the gateway and the console (with Node.js and npm,
#          which bundle the console's web UI)
#   run    build + what `make run` uses besides them (openssl, curl)
#   test   run + the test peers (Check, nginx, PostgreSQL, clang, Chromium, Node.js
#          and ajv, nftables, ...); all is the same as test
#   packaging  what tests/packaging/ needs on the host (mmdebstrap, ...)
#   deb    build + what `make deb` needs (debhelper, lintian, help2man)
# The Makefile calls it before it asks pkg-config anything, so it must need
# nothing but a minbase Debian (dpkg, apt, a POSIX shell).
set -eu

build_pkgs="gcc make pkg-config libc6-dev libuv1-dev libssl-dev node-llhttp
libpcre2-dev liblua5.4-dev libcurl4-openssl-dev libjansson-dev zlib1g-dev
libbrotli-dev libzstd-dev libsqlite3-dev libpq-dev ca-certificates xxd"
run_pkgs="openssl curl"
test_pkgs="check nginx-light clang lld libclang-rt-14-dev python3 python3-prometheus-client procps iproute2 nftables util-linux
postgresql chromium libnss3-tools python3-websockets"
packaging_pkgs="mmdebstrap openssl curl python3 git"
deb_pkgs="dpkg-dev debhelper fakeroot lintian help2man git"

top=$(cd "$(dirname "$0")/.." && pwd)

# npm tools for the tests, pinned, into .deps/ (never global, never vendored):
# ajv validates events against the schemas; playwright-core drives Debian's
# chromium (it downloads no browser of its own) for the page tests.
npm_tools() {
	case "${1:-all}" in build | run | packaging | deb) return 0 ;; esac
	# 1.61 is the newest that runs on Debian 12's Node.js 18 (1.62 wants 20).
	pw=1.61.1
	[ -x "$top/.deps/node_modules/.bin/ajv" ] &&
		grep -q "\"version\": \"$pw\"" "$top/.deps/node_modules/playwright-core/package.json" 2>/dev/null &&
		return 0
	echo "deps: installing ajv-cli and playwright-core into .deps/" >&2
	mkdir -p "$top/.deps"
	# npm trusts only its own CA bundle; add the system store, which holds
	# the anchors a site adds (an HTTPS-inspecting egress, a registry mirror).
	[ -n "${NODE_EXTRA_CA_CERTS:-}" ] || [ ! -r /etc/ssl/certs/ca-certificates.crt ] ||
		export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
	npm install --prefix "$top/.deps" --no-audit --no-fund --loglevel=error \
		ajv-cli@5.0.0 ajv-formats@2.1.1 "playwright-core@$pw" >/dev/null
}

case "${1:-all}" in
build) want="$build_pkgs" ;;
run) want="$build_pkgs $run_pkgs" ;;
test | all) want="$build_pkgs $run_pkgs $test_pkgs" ;;
packaging) want="$packaging_pkgs" ;;
deb) want="$build_pkgs $deb_pkgs" ;;
*) echo "usage: $0 [build|run|test|all|packaging|deb]" >&2; exit 2 ;;
esac

# Node.js and npm build the console's web UI (console/web: npm ci of its
# lockfile, then esbuild) and run ajv and playwright-core in the tests.
# Debian's nodejs and npm, unless a node with its own npm is already here.
case "${1:-all}" in
build | run | test | all | deb) command -v npm >/dev/null 2>&1 || want="$want nodejs npm" ;;
esac

missing=""
for p in $want; do
	# dpkg-query answers "install ok installed" only for a fully installed package.
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$s" = "install ok installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && { npm_tools "${1:-all}"; exit 0; }

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run 'make deps' as root (or install them with apt-get)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; refresh them at most once per run.
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
npm_tools "${1:-all}"
