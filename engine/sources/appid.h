/*
 * appid: which program opened a local TCP connection (Linux transparent
 * mode), from the kernel's socket tables.
 *
 * The redirected connection's client end is a socket on this machine:
 * sock_diag (NETLINK_SOCK_DIAG) finds it by its exact four-tuple and
 * gives its owner uid, inode and cookie. The process is the one the
 * kernel recorded making that socket (appid_bpf_start: a BPF map keyed by
 * cookie, filled at connect) or, without a record or once that process
 * is gone, the one holding the inode, found under /proc (the pids last
 * seen for that uid first, then the others of that uid, then everyone).
 * Its executable and command line are read once per process and cached. "system" is the anchor of system users
 * (uid < 1000) running a root-owned executable from a system directory;
 * everything else is "user".
 *
 * Caches are bounded (APPID_CACHE processes) and shared by the workers
 * behind one lock. A lookup that finds nothing (the client already gone,
 * a connection from another machine) leaves pid 0: the policy sees an
 * unknown app, not a guess.
 */
#ifndef DLPGATE_APPID_H
#define DLPGATE_APPID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define APPID_CACHE 256 /* processes; each holds a pidfd */

typedef struct appid {
	int64_t pid, uid;      /* pid 0: not found (uid may still be known) */
	char path[1024];       /* /proc/PID/exe */
	char cmdline[512];     /* arguments joined by spaces, cut to fit */
	const char *anchor;    /* "system" or "user" */
} appid_t;

/* The app behind the local socket connected from `client` to `server`
 * (as that socket sees them). */
void appid_lookup(const struct sockaddr_storage *client, const struct sockaddr_storage *server, appid_t *out);

/* Has the kernel record who connects (appid_bpf.c): from then on a lookup
 * reads the connecting pid from a BPF map instead of walking /proc, which
 * stays the fallback (connections made before, records evicted). Needs
 * root (CAP_BPF and CAP_NET_ADMIN) and cgroup BPF; false with why when the
 * kernel or our privileges refuse. Once per process. */
bool appid_bpf_start(char *why, size_t n);
/* For appid.c: the process that made the socket with this cookie, and
 * when (CLOCK_BOOTTIME ns); false if not recorded. */
bool appid_bpf_connector(uint64_t cookie, int64_t *pid, uint64_t *boot_ns);

#endif
