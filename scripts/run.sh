#!/bin/sh
# `make run`: the gateway on its embedded defaults, in the foreground.
# State (the generated CA) lives in .run/state so it survives rebuilds.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
state="$top/.run/state"
listen="127.0.0.1:3128"
mkdir -p "$top/.run"
bin="$top/$build/dlpgate"
policy="$top/rules/default.lua"

# Make the CA now (the gateway would on start) so the instructions can name it.
"$bin" ca init --state-dir "$state" >/dev/null

cat <<EOT

dlpgate is starting on $listen (explicit proxy), CA in $state,
policy $policy (blocks cloud credentials and private keys, masks card
numbers and SSNs in uploads, leaves Apple daemons and Apple sites alone).

Try it from another terminal:
  curl --proxy http://$listen --cacert $state/ca.pem https://example.com/
  curl --proxy http://$listen --cacert $state/ca.pem https://httpbin.org/post -d 'card=4111 1111 1111 1111'
      (httpbin echoes what it received: the card arrives masked)
  curl --proxy http://$listen http://example.com/

Trust the CA machine-wide (then any client works):  $bin ca install --state-dir $state
Check or test a policy:  $bin check $policy
                         $bin test $policy $top/rules/tests/default_test.lua
Log lines (one per flow) and verdict events (JSON) follow. Stop with Ctrl-C.

EOT
exec "$bin" run --listen "$listen" --state-dir "$state" --policy "$policy"
