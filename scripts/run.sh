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

# Make the CA now (the gateway would on start) so the instructions can name it.
"$bin" ca init --state-dir "$state" >/dev/null

cat <<EOT

dlpgate is starting on $listen (explicit proxy), CA in $state.

Try it from another terminal:
  curl --proxy http://$listen --cacert $state/ca.pem https://example.com/
  curl --proxy http://$listen http://example.com/

Trust the CA machine-wide (then any client works):  $bin ca install --state-dir $state
Log lines (one per flow) follow below. Stop with Ctrl-C.

EOT
exec "$bin" run --listen "$listen" --state-dir "$state"
