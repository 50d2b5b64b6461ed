#!/bin/sh
# Copies this working tree's files (tracked, or new and not ignored; never
# build/, .run/, .deps/) into DIR: what a fresh checkout of the working
# tree holds. Used by tests/packaging/fresh.sh and scripts/deb.sh.
# Usage: scripts/tree-copy.sh DIR
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dest=$1
mkdir -p "$dest"
# A file deleted in the working tree but still tracked is skipped.
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 -I{} sh -c '[ -e "$1" ] && printf "%s\0" "$1"' _ {} |
	tar --null -T - -cf -) | tar -C "$dest" -xf -
