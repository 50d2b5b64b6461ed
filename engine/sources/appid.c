/*
 * appid: see appid.h.
 *
 * Cost, per new flow: one exact sock_diag request (no dump of the socket
 * table, so 10,000 open sockets cost nothing). With the BPF record, one
 * map read then names the pid (tests/bench/appid.sh: 5-6 us p50, 10-14 us
 * p99 for a known process). Without it, readlink over the fd directories
 * of candidate processes until one holds the inode (26-31 us p50, 84-121
 * us p99): processes of the socket's uid seen recently (the cache, newest
 * first), then every process of that uid, then every process.
 *
 * A cached process is held by a pidfd: while that is not readable the
 * process lives, so its pid cannot have been recycled, and a hit costs a
 * poll instead of rereading /proc/PID/stat. Its executable is read again
 * on each hit, so a process that exec'd another program is read afresh.
 * A BPF record names the process that connected; it is taken only if that
 * process had started by the connect (a pid recycled since is not), and
 * when it is gone, /proc names whoever holds the socket now. The
 * sock_diag socket is kept, one per pool thread.
 */
#include "sources/appid.h"

#include "core/bytebuf.h"

#ifdef __linux__

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- the socket: uid and inode from the kernel ---- */

static void put_addr(__be32 *dst, __be16 *port, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		memcpy(dst, &a->sin_addr, 4);
		*port = a->sin_port;
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		memcpy(dst, &a->sin6_addr, 16);
		*port = a->sin6_port;
	}
}

/* One sock_diag socket per thread (lookups run on the libuv pool), kept:
 * making one per lookup was a sixth of a cached lookup's cost. Each
 * request carries a sequence number so a reply left over from a failed
 * exchange can never answer the next one. */
static _Thread_local int diag_fd = -1;
static _Thread_local uint32_t diag_seq;

typedef struct {
	uint32_t inode, uid;
	uint64_t cookie; /* the kernel's id of the socket, as BPF sees it too */
} sock_info_t;

static bool diag_exchange(const struct sockaddr_storage *src, const struct sockaddr_storage *dst, sock_info_t *out,
			  bool *failed)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	memset(&req, 0, sizeof req);
	req.nlh.nlmsg_len = sizeof req;
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.nlh.nlmsg_seq = ++diag_seq;
	req.r.sdiag_family = (uint8_t)src->ss_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	put_addr(req.r.id.idiag_src, &req.r.id.idiag_sport, src);
	put_addr(req.r.id.idiag_dst, &req.r.id.idiag_dport, dst);
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	*failed = true;
	if (send(diag_fd, &req, sizeof req, 0) != (ssize_t)sizeof req)
		return false;
	union {
		char buf[8192];
		struct nlmsghdr align;
	} u;
	for (;;) { /* one datagram answers: the socket, or NLMSG_ERROR */
		ssize_t n = recv(diag_fd, u.buf, sizeof u.buf, 0);
		if (n <= 0 || !NLMSG_OK(&u.align, (size_t)n))
			return false;
		if (u.align.nlmsg_seq != req.nlh.nlmsg_seq)
			continue; /* stale */
		*failed = false;
		if (u.align.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    u.align.nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
			return false; /* no such socket: not local, or gone */
		const struct inet_diag_msg *m = NLMSG_DATA(&u.align);
		out->inode = m->idiag_inode;
		out->uid = m->idiag_uid;
		out->cookie = (uint64_t)m->id.idiag_cookie[0] | (uint64_t)m->id.idiag_cookie[1] << 32;
		return true;
	}
}

static bool diag(const struct sockaddr_storage *src, const struct sockaddr_storage *dst, sock_info_t *out)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (diag_fd < 0) {
			diag_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
			if (diag_fd < 0)
				return false;
			/* a reply that never comes must not hold a pool thread */
			struct timeval tv = {1, 0};
			setsockopt(diag_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		}
		bool failed;
		if (diag_exchange(src, dst, out, &failed))
			return true;
		if (!failed)
			return false;
		close(diag_fd); /* the exchange broke: a fresh socket, once */
		diag_fd = -1;
	}
	return false;
}

/* ---- processes ---- */

typedef struct {
	int64_t pid, uid;
	int pidfd;         /* pins the process: readable once it has exited,
			      so a recycled pid is never taken for it */
	uint64_t used;     /* for eviction, newest = largest */
	char path[1024];   /* /proc/PID/exe, compared on each hit: an exec
			      makes the entry stale */
	char cmdline[512];
	const char *anchor;
	uint64_t start_ns; /* when it started, CLOCK_BOOTTIME (from /proc/PID/stat) */
} proc_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static proc_t cache[APPID_CACHE];
static size_t n_cache;
static uint64_t clock_;

/* readlink is the cost, so descriptors are tried from the highest down: a
 * connection just made is most often the highest descriptor of its
 * process, and the kernel lists them in ascending order. */
static bool holds_inode(int64_t pid, uint32_t inode)
{
	char dir[64], want[32], got[32];
	snprintf(dir, sizeof dir, "/proc/%lld/fd", (long long)pid);
	int wl = snprintf(want, sizeof want, "socket:[%u]", inode);
	DIR *d = opendir(dir);
	if (!d)
		return false;
	/* most processes have a few dozen descriptors: the stack holds their
	 * names, the heap only the long lists */
	typedef char fd_name[12];
	fd_name local[256], *names = local;
	size_t n = 0, cap = sizeof local / sizeof local[0];
	for (struct dirent *e; (e = readdir(d));) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.' || len >= sizeof *names)
			continue;
		if (n == cap) {
			fd_name *more = malloc(2 * cap * sizeof *more);
			if (!more)
				break;
			memcpy(more, names, n * sizeof *names);
			if (names != local)
				free(names);
			names = more;
			cap *= 2;
		}
		memcpy(names[n++], e->d_name, len + 1);
	}
	bool found = false;
	while (!found && n > 0) {
		ssize_t len = readlinkat(dirfd(d), names[--n], got, sizeof got);
		found = len == wl && !memcmp(got, want, (size_t)len);
	}
	if (names != local)
		free(names);
	closedir(d);
	return found;
}

static bool alive(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	return poll(&p, 1, 0) == 0;
}

static void exe_of(int64_t pid, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%lld/exe", (long long)pid);
	ssize_t len = readlink(path, out, n - 1);
	out[len > 0 ? len : 0] = '\0';
}

static const char *anchor_of(int64_t uid, const char *path)
{
	static const char *const system_dirs[] = {"/usr/bin/", "/usr/sbin/", "/usr/lib/", "/usr/libexec/",
						  "/bin/", "/sbin/", "/lib/", NULL};
	struct stat st;
	if (uid >= 1000 || stat(path, &st) != 0 || st.st_uid != 0 || (st.st_mode & 022))
		return "user";
	for (const char *const *d = system_dirs; *d; d++)
		if (!strncmp(path, *d, strlen(*d)))
			return "system";
	return "user";
}

/* /proc/PID/stat field 22, in ns since boot (0: unknown). */
static uint64_t start_ns(int64_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	long hz = sysconf(_SC_CLK_TCK);
	return p && hz > 0 ? strtoull(p + 1, NULL, 10) * (1000000000ull / (uint64_t)hz) : 0;
}

static void read_proc(proc_t *p)
{
	p->start_ns = start_ns(p->pid);
	char path[64];
	exe_of(p->pid, p->path, sizeof p->path);
	snprintf(path, sizeof path, "/proc/%lld/cmdline", (long long)p->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, p->cmdline, sizeof p->cmdline - 1) : 0;
	if (fd >= 0)
		close(fd);
	if (n < 0)
		n = 0;
	while (n > 0 && p->cmdline[n - 1] == '\0')
		n--;
	for (ssize_t i = 0; i < n; i++)
		if (p->cmdline[i] == '\0' || !isprint((unsigned char)p->cmdline[i]))
			p->cmdline[i] = p->cmdline[i] ? '?' : ' ';
	p->cmdline[n] = '\0';
	p->anchor = anchor_of(p->uid, p->path);
}

/* Callers hold the lock. */
static proc_t *cached(int64_t pid)
{
	for (size_t i = 0; i < n_cache; i++)
		if (cache[i].pid == pid)
			return &cache[i];
	return NULL;
}

static void forget(proc_t *p)
{
	close(p->pidfd);
	*p = cache[--n_cache];
}

/* The least recently used entry makes room. */
static void remember(const proc_t *fresh)
{
	proc_t *slot = cached(fresh->pid);
	if (!slot && n_cache < APPID_CACHE) {
		slot = &cache[n_cache++];
	} else {
		if (!slot) {
			slot = &cache[0];
			for (size_t i = 1; i < n_cache; i++)
				if (cache[i].used < slot->used)
					slot = &cache[i];
		}
		close(slot->pidfd);
	}
	*slot = *fresh;
	slot->used = ++clock_;
}

static void answer(appid_t *out, const proc_t *p)
{
	out->pid = p->pid;
	snprintf(out->path, sizeof out->path, "%s", p->path);
	snprintf(out->cmdline, sizeof out->cmdline, "%s", p->cmdline);
	out->anchor = p->anchor;
}

static int64_t proc_uid(int procfd, const char *name)
{
	struct stat st;
	return fstatat(procfd, name, &st, 0) == 0 ? (int64_t)st.st_uid : -1;
}

typedef struct {
	int64_t pid;
	int64_t fds; /* open descriptors (the size of /proc/PID/fd since Linux 6.2; 0 before) */
} candidate_t;

/* Fewest descriptors first, and none last: a process with no open file
 * (a kernel thread, since 6.2) cannot hold the socket; before 6.2 every
 * count reads 0. Then the newest (highest pid) first: a program that has
 * just connected has often just started. */
static int by_fds(const void *a, const void *b)
{
	const candidate_t *p = a, *q = b;
	uint64_t x = (uint64_t)p->fds - 1, y = (uint64_t)q->fds - 1;
	if (x != y)
		return (x > y) - (x < y);
	return (p->pid < q->pid) - (p->pid > q->pid);
}

/* Every process of uid (or every process when uid < 0), those with the
 * fewest descriptors first: the program that just connected is rarely the
 * one holding ten thousand sockets, and that one would cost milliseconds. */
static int64_t scan_all(uint32_t inode, int64_t uid)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	size_t n = 0, cap = 0;
	candidate_t *c = NULL;
	for (struct dirent *e; (e = readdir(d));) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		if (uid >= 0 && proc_uid(dirfd(d), e->d_name) != uid)
			continue;
		if (!bytebuf_grow_array(&c, sizeof *c, n, &cap, 256))
			break;
		char fd_dir[300];
		struct stat st;
		snprintf(fd_dir, sizeof fd_dir, "%s/fd", e->d_name);
		c[n].pid = strtoll(e->d_name, NULL, 10);
		c[n++].fds = fstatat(dirfd(d), fd_dir, &st, 0) == 0 ? (int64_t)st.st_size : 0;
	}
	closedir(d);
	int64_t found = 0;
	if (c) {
		qsort(c, n, sizeof *c, by_fds);
		for (size_t i = 0; !found && i < n; i++)
			if (holds_inode(c[i].pid, inode))
				found = c[i].pid;
	}
	free(c);
	return found;
}

/* The cached processes of uid that may hold inode, tried newest first
 * without the lock; those found to have exited are forgotten. */
static int64_t try_cached(uint32_t inode, int64_t uid)
{
	int64_t recent[APPID_CACHE];
	uint64_t used[APPID_CACHE];
	size_t n = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_cache; i++)
		if (cache[i].uid == uid) {
			size_t k = n++; /* insertion: newest first */
			for (; k > 0 && used[k - 1] < cache[i].used; k--) {
				recent[k] = recent[k - 1];
				used[k] = used[k - 1];
			}
			recent[k] = cache[i].pid;
			used[k] = cache[i].used;
		}
	pthread_mutex_unlock(&lock);
	int64_t pid = 0;
	size_t gone = 0;
	for (size_t k = 0; k < n && !pid; k++) {
		if (holds_inode(recent[k], inode))
			pid = recent[k];
		else if (kill((pid_t)recent[k], 0) != 0 && errno == ESRCH)
			recent[gone++] = recent[k];
	}
	if (gone) {
		/* without this, a uid that runs many short processes would have
		 * every lookup try each of them again */
		pthread_mutex_lock(&lock);
		for (size_t g = 0; g < gone; g++) {
			proc_t *p = cached(recent[g]);
			if (p)
				forget(p);
		}
		pthread_mutex_unlock(&lock);
	}
	return pid;
}

/* Answers from the cached entry for pid if it still stands: the process
 * is alive (so the pid has been its own since it was cached), has not
 * exec'd, and, for a BPF record (connected_ns), had started by the
 * connect. An entry that fails is forgotten. */
static bool answer_cached(int64_t pid, uint64_t connected_ns, appid_t *out)
{
	char exe[sizeof cache[0].path];
	exe_of(pid, exe, sizeof exe);
	pthread_mutex_lock(&lock);
	proc_t *p = cached(pid);
	bool hit = p && alive(p->pidfd) && !strcmp(p->path, exe) && (!connected_ns || p->start_ns <= connected_ns);
	if (hit) {
		p->used = ++clock_;
		answer(out, p);
	} else if (p) {
		forget(p);
	}
	pthread_mutex_unlock(&lock);
	return hit;
}

/* Pins pid, reads it, then confirms through the pin that what was read is
 * the right process: one that holds the socket (inode), or, for a BPF
 * record, one that had started by the connect. A pid recycled meanwhile
 * gives no answer rather than the wrong program. */
static bool answer_fresh(int64_t pid, uint32_t uid, uint32_t inode, uint64_t connected_ns, appid_t *out)
{
	proc_t fresh = {.pid = pid, .uid = uid, .pidfd = pidfd_open((pid_t)pid, 0)};
	if (fresh.pidfd < 0 && errno != EMFILE && errno != ENFILE)
		return false; /* gone already */
	read_proc(&fresh);
	bool same = connected_ns ? fresh.start_ns && fresh.start_ns <= connected_ns : holds_inode(pid, inode);
	if (!same || (fresh.pidfd >= 0 && !alive(fresh.pidfd))) {
		if (fresh.pidfd >= 0)
			close(fresh.pidfd);
		return false;
	}
	answer(out, &fresh);
	if (fresh.pidfd < 0)
		return true; /* out of descriptors: answered, not cached */
	pthread_mutex_lock(&lock);
	remember(&fresh);
	pthread_mutex_unlock(&lock);
	return true;
}

void appid_lookup(const struct sockaddr_storage *client, const struct sockaddr_storage *server, appid_t *out)
{
	memset(out, 0, sizeof *out);
	out->anchor = "user";
	sock_info_t si = {0};
	if ((client->ss_family != AF_INET && client->ss_family != AF_INET6) || client->ss_family != server->ss_family ||
	    !diag(client, server, &si) || si.inode == 0)
		return;
	out->uid = si.uid;
	int64_t pid;
	uint64_t connected_ns;
	if (appid_bpf_connector(si.cookie, &pid, &connected_ns) &&
	    (answer_cached(pid, connected_ns, out) || answer_fresh(pid, si.uid, 0, connected_ns, out)))
		return;
	/* No record (BPF off, a connection from before, an evicted record) or
	 * the connector is gone: whoever holds the socket now, from /proc. */
	pid = try_cached(si.inode, si.uid);
	if (pid && answer_cached(pid, 0, out))
		return;
	if (!pid)
		pid = scan_all(si.inode, si.uid);
	if (!pid)
		pid = scan_all(si.inode, -1); /* /proc/PID owned by root: a process that is not dumpable */
	if (pid)
		answer_fresh(pid, si.uid, si.inode, 0, out);
}

#else /* sock_diag and /proc are Linux's */

#include <string.h>

void appid_lookup(const struct sockaddr_storage *client, const struct sockaddr_storage *server, appid_t *out)
{
	(void)client, (void)server;
	memset(out, 0, sizeof *out);
	out->anchor = "user";
}
#endif
