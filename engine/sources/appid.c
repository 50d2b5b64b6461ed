/*
 * appid: see appid.h.
 *
 * Cost, per new flow: one exact sock_diag request (no dump of the socket
 * table, so 10,000 open sockets cost nothing), then readlink over the fd
 * directories of candidate processes until one holds the inode. The
 * candidates come in order of likelihood: processes of the socket's uid
 * seen recently (the cache, newest first), then every process of that
 * uid, then every process. A cached process is checked again only by its
 * start time, so a recycled pid is never taken for the old program.
 */
#include "sources/appid.h"

#include "core/buf.h"

#ifdef __linux__

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
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

static bool diag(const struct sockaddr_storage *src, const struct sockaddr_storage *dst, uint32_t *inode,
		 uint32_t *uid)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return false;
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	memset(&req, 0, sizeof req);
	req.nlh.nlmsg_len = sizeof req;
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = (uint8_t)src->ss_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	put_addr(req.r.id.idiag_src, &req.r.id.idiag_sport, src);
	put_addr(req.r.id.idiag_dst, &req.r.id.idiag_dport, dst);
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	bool found = false;
	if (send(fd, &req, sizeof req, 0) == (ssize_t)sizeof req) {
		union {
			char buf[8192];
			struct nlmsghdr align;
		} u;
		ssize_t n = recv(fd, u.buf, sizeof u.buf, 0);
		for (struct nlmsghdr *h = &u.align; n > 0 && NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
				break; /* NLMSG_ERROR: no such socket (not local, or gone) */
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			*inode = m->idiag_inode;
			*uid = m->idiag_uid;
			found = true;
			break;
		}
	}
	close(fd);
	return found;
}

/* ---- processes ---- */

typedef struct {
	int64_t pid, uid;
	unsigned long long start;  /* /proc/PID/stat field 22: tells a recycled pid apart */
	uint64_t used;             /* for eviction, newest = largest */
	char path[1024];
	char cmdline[512];
	const char *anchor;
} proc_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static proc_t cache[APPID_CACHE];
static size_t n_cache;
static uint64_t clock_;

static unsigned long long start_time(int64_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

static int cmp_desc(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x < y) - (x > y);
}

/* readlink is the cost, so the fd numbers are listed first and read from
 * the highest down: a connection just made is most often the highest
 * descriptor of its process. */
static bool holds_inode(int64_t pid, uint32_t inode)
{
	char dir[64], want[32], got[32], name[16];
	snprintf(dir, sizeof dir, "/proc/%lld/fd", (long long)pid);
	int wl = snprintf(want, sizeof want, "socket:[%u]", inode);
	DIR *d = opendir(dir);
	if (!d)
		return false;
	/* most processes have a few dozen descriptors: the stack holds them,
	 * the heap only the long lists */
	int local[256], *fds = local;
	size_t n = 0, cap = sizeof local / sizeof local[0];
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			int *more = malloc(2 * cap * sizeof *more);
			if (!more)
				break;
			memcpy(more, fds, n * sizeof *fds);
			if (fds != local)
				free(fds);
			fds = more;
			cap *= 2;
		}
		fds[n++] = atoi(e->d_name);
	}
	qsort(fds, n, sizeof *fds, cmp_desc);
	bool found = false;
	for (size_t i = 0; !found && i < n; i++) {
		snprintf(name, sizeof name, "%d", fds[i]);
		ssize_t len = readlinkat(dirfd(d), name, got, sizeof got);
		found = len == wl && !memcmp(got, want, (size_t)len);
	}
	if (fds != local)
		free(fds);
	closedir(d);
	return found;
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

static void read_proc(proc_t *p)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%lld/exe", (long long)p->pid);
	ssize_t n = readlink(path, p->path, sizeof p->path - 1);
	p->path[n > 0 ? n : 0] = '\0';
	snprintf(path, sizeof path, "/proc/%lld/cmdline", (long long)p->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, p->cmdline, sizeof p->cmdline - 1) : 0;
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

/* The cached process pid, refreshed if the pid now belongs to another
 * program; the least recently used entry makes room for a new one. */
static proc_t *remember(int64_t pid, int64_t uid)
{
	unsigned long long start = start_time(pid);
	proc_t *slot = NULL;
	for (size_t i = 0; i < n_cache; i++)
		if (cache[i].pid == pid) {
			slot = &cache[i];
			break;
		}
	if (!slot) {
		if (n_cache < APPID_CACHE) {
			slot = &cache[n_cache++];
		} else {
			slot = &cache[0];
			for (size_t i = 1; i < n_cache; i++)
				if (cache[i].used < slot->used)
					slot = &cache[i];
		}
		slot->pid = 0;
	}
	if (slot->pid != pid || slot->start != start) {
		slot->pid = pid;
		slot->uid = uid;
		slot->start = start;
		read_proc(slot);
	}
	slot->used = ++clock_;
	return slot;
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

static int by_fds(const void *a, const void *b)
{
	int64_t x = ((const candidate_t *)a)->fds, y = ((const candidate_t *)b)->fds;
	return (x > y) - (x < y);
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
		if (!buf_grow_array(&c, sizeof *c, n, &cap, 256))
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

void appid_lookup(const struct sockaddr_storage *client, const struct sockaddr_storage *server, appid_t *out)
{
	memset(out, 0, sizeof *out);
	out->anchor = "user";
	uint32_t inode = 0, uid = 0;
	if ((client->ss_family != AF_INET && client->ss_family != AF_INET6) || client->ss_family != server->ss_family ||
	    !diag(client, server, &inode, &uid) || inode == 0)
		return;
	out->uid = uid;
	/* The candidates are copied out so the slow part, reading /proc,
	 * runs without the lock. */
	int64_t recent[APPID_CACHE];
	uint64_t used[APPID_CACHE];
	size_t n = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_cache; i++)
		if (cache[i].uid == (int64_t)uid) {
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
	size_t gone = 0; /* cached processes that have exited: forgotten below */
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
		for (size_t g = 0; g < gone; g++)
			for (size_t i = 0; i < n_cache; i++)
				if (cache[i].pid == recent[g]) {
					cache[i] = cache[--n_cache];
					break;
				}
		pthread_mutex_unlock(&lock);
	}
	if (!pid)
		pid = scan_all(inode, uid);
	if (!pid)
		pid = scan_all(inode, -1); /* /proc/PID owned by root: a process that is not dumpable */
	pthread_mutex_lock(&lock);
	if (pid) {
		proc_t *p = remember(pid, uid);
		out->pid = p->pid;
		snprintf(out->path, sizeof out->path, "%s", p->path);
		snprintf(out->cmdline, sizeof out->cmdline, "%s", p->cmdline);
		out->anchor = p->anchor;
	}
	pthread_mutex_unlock(&lock);
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
