# Sourced by tests/packaging/*.sh: a minbase Debian 12 root in a scratch
# directory, entered with chroot. One place owns its mounts, so every exit
# path (success, failure, Ctrl-C) unmounts them before anything is deleted:
# `rm -rf` on a root with /dev or /sys still bound would reach the host's.
#
# The root shares the host's network namespace (apt needs the mirror); the
# tests bind only loopback addresses.
#
#   root_create DIR        mmdebstrap bookworm minbase + git, make into DIR/root
#   root_mount / root_umount
#   in_root CMD...         run CMD in the root as root, in a clean environment ($root_env)
#   root_cleanup           stop what runs inside, unmount, remove (unless KEEP=1)
#   packaging_begin NAME   the tests' common start: root, host tools, fail/now
#   root_trust_host_anchors  the host's local CAs into the root

packaging_begin() {
	test_name=$1
	[ "$(id -u)" -eq 0 ] || { echo "$test_name: needs root (mmdebstrap, chroot, mounts)" >&2; exit 2; }
	"$top/scripts/deps.sh" packaging
}
fail() { echo "${test_name:-packaging}: FAIL: $*" >&2; exit 1; }
now() { date +%s; }

# The host's local trust anchors (/usr/local/share/ca-certificates), as a
# site's machines carry them: ca-certificates, once installed in the root,
# adds them to its system store, which is how apt over https and npm get
# through an HTTPS-inspecting egress.
root_trust_host_anchors() {
	[ -d /usr/local/share/ca-certificates ] || return 0
	mkdir -p "$root/usr/local/share/ca-certificates"
	cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
}

root_create() {
	scratch=$1
	root=$scratch/root
	mkdir -p "$scratch"
	# minbase: dpkg, apt and the Essential set; nothing a build needs.
	mmdebstrap --quiet --variant=minbase --include=git,make bookworm "$root" \
		>"$scratch/mmdebstrap.log" 2>&1 || { cat "$scratch/mmdebstrap.log" >&2; return 1; }
}

root_mount() {
	mount -t proc proc "$root/proc"
	# /dev and /sys recursively (pts, shm, the cgroup v2 tree the
	# transparent tests attach to), as slaves: nothing done inside
	# propagates back to the host.
	mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
	mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
	root_mounted=1
}

# Every mount under the root, deepest first: ours, and those made inside
# (ip netns binds /run/netns, a test may mount a cgroup).
root_mounts() {
	real=$(cd "$root" 2>/dev/null && pwd -P) || return 0
	awk -v r="$real/" 'index($2, r) == 1 { print length($2), $2 }' /proc/mounts | sort -rn | cut -d' ' -f2-
}

root_umount() {
	[ -n "${root:-}" ] || return 0
	for m in $(root_mounts); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	root_mounted=0
}

root_env="/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb"

# (A daemon whose pid matters: `(exec chroot "$root" $root_env CMD) &`, as
# a function would run chroot as a child of a subshell.)
in_root() {
	# shellcheck disable=SC2086
	chroot "$root" $root_env "$@"
}

# Every process whose root is ours was started by this test: stop them
# (TERM, then KILL) so the mounts can go.
root_kill_all() {
	[ -n "${root:-}" ] && [ -d "$root" ] || return 0
	real=$(cd "$root" && pwd -P)
	for sig in TERM KILL; do
		found=0
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/root" 2>/dev/null)" = "$real" ] || continue
			kill -s "$sig" "${p#/proc/}" 2>/dev/null && found=1
		done
		[ "$found" = 1 ] || return 0
		sleep 2
	done
}

root_cleanup() {
	root_kill_all
	root_umount
	[ -n "${scratch:-}" ] || return 0
	if [ -n "$(root_mounts)" ]; then
		echo "fresh: $root still has mounts; left in place" >&2
	elif [ "${KEEP:-0}" = 1 ]; then
		echo "fresh: kept $scratch" >&2
	else
		rm -rf --one-file-system "$scratch"
	fi
}
