#!/bin/sh
# Builds the signed, notarized macOS installer: dlpgate.pkg with
#   /Applications/dlpgate.app                      the container app, with the
#       Contents/Library/SystemExtensions/com.dlpgate.app.sysext.systemextension
#   /Library/Application Support/dlpgate/bin/dlpgate   the engine (com.dlpgate.engine)
#   /Library/Application Support/dlpgate/rules/        the shipped policy and packs
#   /Library/Application Support/dlpgate/libexec/dlpgate-engine.sh  what launchd runs
#   /Library/LaunchDaemons/com.dlpgate.engine.plist
#
# Runs on a Mac only (Xcode's command line tools, Homebrew); nothing of it
# can run on Linux, where `make macos-check MACOS_SDK=...` holds the same
# sources to the compiler instead. Every step is in sysext/README.md with
# what it needs (certificates, provisioning profiles, a notary profile).
#
#   packaging/macos/build-pkg.sh --team ABCDE12345 \
#       --app-identity "Developer ID Application: Acme Inc (ABCDE12345)" \
#       --installer-identity "Developer ID Installer: Acme Inc (ABCDE12345)" \
#       --app-profile dlpgate_app.provisionprofile --ext-profile dlpgate_sysext.provisionprofile \
#       --notary-profile notary            # a `xcrun notarytool store-credentials` profile
#
# Without --notary-profile the pkg is signed but not notarized (for a test
# Mac with `spctl` assessment off); without identities nothing is signed
# ("-", ad hoc), which only a Mac with SIP off will load as a system
# extension. The engine is built for this Mac's architecture from
# Homebrew's static libraries; with both Homebrews (arm64 in /opt/homebrew,
# x86_64 in /usr/local under Rosetta) it is built for both and joined by lipo.
set -eu

team='' app_identity=- installer_identity='' app_profile='' ext_profile='' notary=''
while [ $# -gt 0 ]; do
	case $1 in
	--team) team=$2 ;;
	--app-identity) app_identity=$2 ;;
	--installer-identity) installer_identity=$2 ;;
	--app-profile) app_profile=$2 ;;
	--ext-profile) ext_profile=$2 ;;
	--notary-profile) notary=$2 ;;
	-h | --help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "build-pkg: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift 2
done

die() { echo "build-pkg: $*" >&2; exit 2; }
[ "$(uname -s)" = Darwin ] || die "macOS only: on Linux, run 'make macos-check MACOS_SDK=PATH'"
[ -n "$team" ] || die "--team TEAMID is needed (it goes into the bundle identifiers' app group and the engine requirement)"
xcode-select -p >/dev/null 2>&1 || die "Xcode's command line tools are missing: xcode-select --install"
command -v brew >/dev/null || die "Homebrew is missing (https://brew.sh)"

top=$(cd "$(dirname "$0")/../.." && pwd)
version=$(cat "$top/VERSION")
work="$top/build-macos"
rm -rf "$work"
mkdir -p "$work"

# ---- 1. the engine, per architecture, from Homebrew's static libraries ----
# Static, because a Mac that installs the pkg has no Homebrew: only
# zlib and libcurl are taken from the system (the SDK links them).
deps="libuv openssl@3 pcre2 lua jansson brotli zstd llhttp pkg-config"
engine_for() { # ARCH BREW_PREFIX
	arch=$1 prefix=$2
	# shellcheck disable=SC2086 # one word per formula
	"$prefix/bin/brew" list $deps >/dev/null 2>&1 ||
		die "$arch: run '$prefix/bin/brew install $deps' first"
	lib() { # the static library NAME of a formula, or die naming it
		f=$("$prefix/bin/brew" --prefix "$1")/lib/$2.a
		[ -f "$f" ] || die "$arch: $f is missing: Homebrew's $1 ships no static library; build it with --enable-static"
		printf '%s ' "$f"
	}
	libs="$(lib libuv libuv)$(lib openssl@3 libssl)$(lib openssl@3 libcrypto)$(lib pcre2 libpcre2-8)"
	libs="$libs$(lib lua liblua)$(lib jansson libjansson)"
	libs="$libs$(lib brotli libbrotlienc)$(lib brotli libbrotlidec)$(lib brotli libbrotlicommon)$(lib zstd libzstd)"
	cflags=""
	for f in libuv openssl@3 pcre2 lua jansson brotli zstd; do
		cflags="$cflags -I$("$prefix/bin/brew" --prefix "$f")/include"
	done
	cflags="$cflags -I$("$prefix/bin/brew" --prefix lua)/include/lua"
	# llhttp is compiled in from its sources, as on Debian: Homebrew
	# fetches and checks the release tarball its formula names.
	"$prefix/bin/brew" fetch --quiet --build-from-source llhttp >/dev/null
	tarball=$("$prefix/bin/brew" --cache --build-from-source llhttp)
	mkdir -p "$work/llhttp-$arch"
	tar -xzf "$tarball" -C "$work/llhttp-$arch" --strip-components=1
	# DLPGATE_DEPS=done: the Makefile's installer pass is Debian's apt-get
	make -C "$top" DLPGATE_DEPS=done BUILD="$work/engine-$arch" CC="clang -arch $arch -mmacosx-version-min=11.0" \
		LLHTTP_SRC="$work/llhttp-$arch/src" LLHTTP_INC="$work/llhttp-$arch/include" \
		PKG_CFLAGS="$cflags" PKG_LIBS="$libs -lz -lcurl -framework Security -framework CoreFoundation" \
		"$work/engine-$arch/dlpgate"
}
engines=""
if [ -x /opt/homebrew/bin/brew ]; then
	engine_for arm64 /opt/homebrew
	engines="$engines $work/engine-arm64/dlpgate"
fi
if [ -x /usr/local/bin/brew ]; then
	engine_for x86_64 /usr/local
	engines="$engines $work/engine-x86_64/dlpgate"
fi
[ -n "$engines" ] || die "no Homebrew in /opt/homebrew or /usr/local"
# shellcheck disable=SC2086
lipo -create $engines -output "$work/dlpgate"
lipo -info "$work/dlpgate"

# ---- 2. the app and its extension (universal; sysext/Makefile) -------------
make -C "$top/sysext" clean
make -C "$top/sysext" TEAM="$team" IDENTITY="$app_identity" APP_PROFILE="$app_profile" EXT_PROFILE="$ext_profile"

# ---- 3. the engine's signature: the extension leaves the engine's own -----
# flows alone by this identifier and team (never by pid), and PCRE2's JIT
# needs allow-jit under the hardened runtime.
codesign --force --options runtime --timestamp --identifier com.dlpgate.engine \
	--entitlements "$top/packaging/macos/engine.entitlements" --sign "$app_identity" "$work/dlpgate"
codesign --verify --strict --verbose=2 "$work/dlpgate"
codesign --verify --deep --strict --verbose=2 "$top/sysext/build/dlpgate.app"

# ---- 4. the payload and the component package ------------------------------
root="$work/root"
support="$root/Library/Application Support/dlpgate"
mkdir -p "$root/Applications" "$support/bin" "$support/libexec" "$root/Library/LaunchDaemons"
ditto "$top/sysext/build/dlpgate.app" "$root/Applications/dlpgate.app"
cp "$work/dlpgate" "$support/bin/dlpgate"
cp -R "$top/rules" "$support/rules"
cp "$top/packaging/macos/dlpgate-engine.sh" "$support/libexec/dlpgate-engine.sh"
chmod 0755 "$support/libexec/dlpgate-engine.sh"
cp "$top/packaging/macos/com.dlpgate.engine.plist" "$root/Library/LaunchDaemons/"
chmod 0644 "$root/Library/LaunchDaemons/com.dlpgate.engine.plist"
pkgbuild --root "$root" --identifier com.dlpgate.pkg --version "$version" \
	--scripts "$top/packaging/macos/scripts" --install-location / "$work/dlpgate-component.pkg"

# ---- 5. the product package, signed with the Installer identity ------------
sed "s/@VERSION@/$version/g" "$top/packaging/macos/distribution.xml" >"$work/distribution.xml"
if [ -n "$installer_identity" ]; then
	productbuild --distribution "$work/distribution.xml" --package-path "$work" \
		--sign "$installer_identity" "$work/dlpgate-$version.pkg"
	pkgutil --check-signature "$work/dlpgate-$version.pkg"
else
	productbuild --distribution "$work/distribution.xml" --package-path "$work" "$work/dlpgate-$version.pkg"
	echo "build-pkg: no --installer-identity: the pkg is unsigned" >&2
fi

# ---- 6. notarize and staple ------------------------------------------------
if [ -n "$notary" ]; then
	xcrun notarytool submit "$work/dlpgate-$version.pkg" --keychain-profile "$notary" --wait
	xcrun stapler staple "$work/dlpgate-$version.pkg"
	spctl --assess --type install --verbose=2 "$work/dlpgate-$version.pkg"
else
	echo "build-pkg: no --notary-profile: not notarized (Gatekeeper will refuse it on other Macs)" >&2
fi
echo "build-pkg: $work/dlpgate-$version.pkg"
