#!/bin/sh
# Holds the engine's macOS port to the compiler from Linux: every engine
# source (engine/*.c, engine/*/*.c, and llhttp's) is compiled for arm64
# and x86_64 macOS against Apple's SDK with the engine's own warnings and
# -Werror, and with clang modules on as Xcode builds, so a name that
# collides with one of Darwin's fails here too.
#
# The libraries' own headers are Debian's (libuv, OpenSSL, jansson, PCRE2,
# Lua, libcurl, zlib, brotli, llhttp), linked one by one into a folder of
# their own: putting /usr/include on the path would let glibc's headers
# stand in for the SDK's. OpenSSL's and curl's few generated headers are
# this machine's (LP64, like both macOS targets). There is nothing to link
# against: Debian has no macOS builds of those libraries.
#
# Usage: scripts/macos-check.sh SDK OUT_DIR   (an empty SDK: skip, and say so)
set -eu
sdk=${1:-}
out=${2:-build/macos-check}
if [ -z "$sdk" ]; then
	echo "engine macOS check: skipped: no MACOS_SDK given (make macos-check MACOS_SDK=/path/to/MacOSX.sdk)"
	exit 0
fi
if [ ! -f "$sdk/SDKSettings.json" ]; then
	echo "engine macOS check: $sdk is not a macOS SDK (no SDKSettings.json)" >&2
	exit 2
fi
command -v clang >/dev/null || { echo "engine macOS check: clang is missing (apt-get install clang)" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
ma=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)

inc="$out/include"
rm -rf "$inc"
mkdir -p "$inc/openssl"
for h in uv.h uv jansson.h jansson_config.h pcre2.h zlib.h zconf.h zstd.h zstd_errors.h brotli "$ma/curl" \
	/usr/share/include/llhttp/llhttp.h lua5.4/lua.h lua5.4/luaconf.h lua5.4/lualib.h lua5.4/lauxlib.h \
	"$ma/lua5.4-deb-multiarch.h"; do
	case $h in /*) src=$h ;; *) src=/usr/include/$h ;; esac
	[ -e "$src" ] || { echo "engine macOS check: $src is missing (run 'make deps')" >&2; exit 2; }
	ln -s "$src" "$inc/"
done
ln -s /usr/include/openssl/* "$inc/openssl/"
ln -sf /usr/include/"$ma"/openssl/* "$inc/openssl/"

version=$(cat "$top/VERSION")
n=0
for arch in arm64 x86_64; do
	for src in "$top"/engine/*.c "$top"/engine/*/*.c; do
		n=$((n + 1))
		# The engine's flags from the Makefile (CFLAGS_BASE and WARN), for this target.
		clang -target "$arch-apple-macos11.0" -isysroot "$sdk" -isystem "$inc" -fmodules \
			-std=c17 -D_GNU_SOURCE -pthread -fno-strict-aliasing -DDLPGATE_VERSION="\"$version\"" \
			-I"$top/engine" -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wvla \
			-Wformat=2 -Wno-format-nonliteral -fsyntax-only "$src"
	done
	for src in /usr/share/llhttp/*.c; do
		n=$((n + 1))
		clang -target "$arch-apple-macos11.0" -isysroot "$sdk" -isystem "$inc" -std=c17 -w -fsyntax-only "$src"
	done
done
echo "engine macOS check: $n compilations (arm64, x86_64; macOS 11; modules on) clean against $sdk"
