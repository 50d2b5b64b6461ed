#!/bin/sh
# `make deb`: the dlpgate and dlpgate-console .debs, built with debhelper
# from packaging/debian. The repository's top level keeps no debian/: the
# tree is copied to build/deb/dlpgate-VERSION, packaging/debian becomes its
# debian/, and dpkg-buildpackage runs there. lintian must report no error.
# Prints the paths of the .debs on the last lines.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
version=$(cat "$top/VERSION")
out="$top/build/deb"
src="$out/dlpgate-$version"
rm -rf "$out"
"$top/scripts/tree-copy.sh" "$src"
cp -r "$top/packaging/debian" "$src/debian"
(cd "$src" && dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1) ||
	{ tail -40 "$out/build.log" >&2; echo "deb: dpkg-buildpackage failed (build/deb/build.log)" >&2; exit 1; }
changes=$(ls "$out"/dlpgate_"$version"_*.changes)
lintian --fail-on error --suppress-tags-from-file /dev/null "$changes" >"$out/lintian.log" 2>&1 ||
	{ cat "$out/lintian.log" >&2; echo "deb: lintian reports errors" >&2; exit 1; }
grep -c '^W:' "$out/lintian.log" | sed 's/^/deb: lintian warnings: /'
ls "$out"/*.deb
