#!/bin/sh
# What launchd runs (com.dlpgate.engine.plist): the engine behind the
# system extension. OpenSSL does not read the keychain, so the trust
# anchors for verifying upstream servers are exported from it at every
# start (the system's roots and the ones an admin or MDM added to the
# System keychain), then the engine replaces this shell.
set -eu
base="/Library/Application Support/dlpgate"
state="$base/state"
roots="$state/system-roots.pem"
umask 077
mkdir -p "$state"
if security find-certificate -a -p /System/Library/Keychains/SystemRootCertificates.keychain \
	/Library/Keychains/System.keychain >"$roots.tmp" && [ -s "$roots.tmp" ]; then
	mv "$roots.tmp" "$roots"
else
	echo "dlpgate-engine: cannot export the keychain's roots; keeping the last export" >&2
	rm -f "$roots.tmp"
fi
chmod 0644 "$roots"
policy="$base/policy.lua"
[ -f "$policy" ] || policy="$base/rules/default.lua"
exec "$base/bin/dlpgate" run --sysext-socket /var/run/dlpgate/sysext.sock --state-dir "$state" \
	--upstream-ca "$roots" --policy "$policy"
