/*
 * Harness core: failure reporting, per-process state and exit cleanup, temp files, ports,
 * the deterministic test pattern, and small helpers the other harness files share.
 *
 * Per-process state. Check forks a child for every test, and the child inherits a copy of
 * everything the parent had made (say, a temp dir created by an unchecked fixture). The
 * child must neither use nor delete the parent's dir, so state records the pid that owns
 * it; th_process_init() notices a new pid and starts fresh. Inherited strings are kept
 * (not freed) because a fixture may still hold pointers to them.
 *
 * Exit cleanup is one atexit handler, registered once and inherited through fork; it only
 * acts for the process that owns the state. It stops upstream threads, then spawned
 * processes (they may still write into the temp dir), then removes the temp dir. Check
 * ends a failing test with _exit(), which skips atexit, so proc.c also runs a guardian
 * process that does the same from outside.
 */
#include "harness/harness.h"
#include "harness/harness_internal.h"

#include <ctype.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

/* ---- Failure ------------------------------------------------------------------------ */

static th_fail_hook fail_hook;

void th_set_fail_hook(th_fail_hook hook) { fail_hook = hook; }

void th_fail(const char *fmt, ...)
{
	/* Static, not malloc'd: ck_abort_msg does not return, so nothing could free it.
	 * Check itself keeps only BUFSIZ (8 KiB) of the message. */
	static char message[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);

	/* The full text goes to stderr too, in case Check truncates it. With a
	 * hook, the harness's own tests provoked it: labelled, so that a real
	 * failure in the run's output stands out. */
	va_start(ap, fmt);
	fputs(fail_hook ? "harness (expected, a test of the harness): " : "harness: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
	va_end(ap);

	if (fail_hook) {
		fail_hook(message);
		abort(); /* a hook must not return */
	}
	ck_abort_msg("%s", message);
	abort(); /* not reached: ck_abort_msg exits or longjmps */
}

const char *th_tail(const char *text, size_t max)
{
	size_t n = strlen(text);
	return n > max ? text + (n - max) : text;
}

/* ---- Allocation and buffers --------------------------------------------------------- */

static void out_of_memory(size_t n)
{
	fprintf(stderr, "harness: out of memory allocating %zu bytes\n", n);
	abort();
}

void *th_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) out_of_memory(n);
	return p;
}

void *th_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) out_of_memory(n * size);
	return p;
}

void *th_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) out_of_memory(n);
	return q;
}

char *th_xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) out_of_memory(strlen(s) + 1);
	return d;
}

char *th_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) out_of_memory(0);
	return s;
}

static void bytebuf_reserve(th_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1; /* +1: room for the terminating NUL */
	if (need <= b->cap) return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need) cap *= 2;
	b->data = th_xrealloc(b->data, cap);
	b->cap = cap;
}

void th_buf_put(th_buf *b, const void *data, size_t len)
{
	bytebuf_reserve(b, len);
	if (len) memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void th_buf_puts(th_buf *b, const char *s) { th_buf_put(b, s, strlen(s)); }

void th_buf_printf(th_buf *b, const char *fmt, ...)
{
	char small[512]; /* most pieces fit: one formatting pass */
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if ((size_t)n < sizeof small) {
		th_buf_put(b, small, (size_t)n);
		return;
	}
	bytebuf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *th_buf_take(th_buf *b, size_t *len)
{
	bytebuf_reserve(b, 0);
	b->data[b->len] = '\0';
	char *d = b->data;
	if (len) *len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

void th_buf_free(th_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void th_buf_ssl_errors(th_buf *b)
{
	unsigned long e;
	char line[256];
	bool first = true;
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, line, sizeof line);
		th_buf_printf(b, "%s%s", first ? "" : "; ", line);
		first = false;
	}
	if (first) th_buf_puts(b, "(no OpenSSL error queued)");
}

/* ---- Time --------------------------------------------------------------------------- */

int64_t th_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_sleep_ms(int ms)
{
	if (ms > 0) poll(NULL, 0, ms);
}

/* ---- Per-process state and exit ----------------------------------------------------- */

static struct {
	pid_t pid;       /* process the fields below belong to */
	char *tmpdir;    /* NULL until first th_tmpdir() */
} core;

/* Temp dir strings inherited from ancestors: kept reachable, never used or removed. */
static char *inherited_tmpdirs[16];
static size_t n_inherited_tmpdirs;
static bool exit_handler_registered; /* inherited through fork, like the handler itself */

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		fprintf(stderr, "harness: cannot remove %s: %s\n", path, strerror(errno));
	return 0; /* keep going: remove as much as possible */
}

static void th_at_exit(void)
{
	if (core.pid != getpid()) return; /* the state is an ancestor's, not ours */
	th_upstream_stop_all();
	th_proc_stop_all();
	th_nginx_free_all();
	if (core.tmpdir) {
		if (th_keep_tmpdir())
			fprintf(stderr, "harness: TH_KEEP=1, keeping %s\n", core.tmpdir);
		else
			nftw(core.tmpdir, remove_entry, 32, FTW_DEPTH | FTW_PHYS);
		free(core.tmpdir);
		core.tmpdir = NULL;
	}
	th_guardian_close();
}

void th_process_init(void)
{
	pid_t me = getpid();
	if (core.pid == me) return;
	if (core.tmpdir) {
		if (n_inherited_tmpdirs < sizeof inherited_tmpdirs / sizeof *inherited_tmpdirs)
			inherited_tmpdirs[n_inherited_tmpdirs++] = core.tmpdir;
		/* else: more than 16 generations of forks; letting go of one string is harmless */
	}
	core.tmpdir = NULL;
	core.pid = me;
	/* A peer closing a socket must give EPIPE, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	/* OpenSSL registers its own atexit cleanup on first use; make that happen now, so it
	 * runs after ours (atexit is LIFO) and upstream threads never outlive OpenSSL. */
	OPENSSL_init_ssl(0, NULL);
	if (!exit_handler_registered) {
		atexit(th_at_exit);
		exit_handler_registered = true;
	}
}

bool th_keep_tmpdir(void)
{
	const char *keep = getenv("TH_KEEP");
	return keep && strcmp(keep, "1") == 0;
}

/* ---- Files -------------------------------------------------------------------------- */

const char *th_tmpdir(void)
{
	th_process_init();
	if (core.tmpdir) return core.tmpdir;
	const char *base = getenv("TMPDIR");
	if (!base || !*base) base = "/tmp";
	char *dir = th_xasprintf("%s/dlpgate-th-XXXXXX", base);
	if (!mkdtemp(dir)) {
		int e = errno;
		free(dir);
		th_fail("th_tmpdir: mkdtemp under %s: %s", base, strerror(e));
	}
	/* mkdtemp makes it 0700; nginx workers (another user when not root) read files here */
	if (chmod(dir, 0755) != 0) {
		int e = errno;
		rmdir(dir);
		free(dir);
		th_fail("th_tmpdir: chmod 0755: %s", strerror(e));
	}
	core.tmpdir = dir;
	if (th_keep_tmpdir()) fprintf(stderr, "harness: TH_KEEP=1, process %ld keeps %s\n", (long)getpid(), dir);
	th_guardian_ensure();
	th_guardian_watch_dir(dir); /* removed even if this process dies by _exit */
	return dir;
}

char *th_path(const char *name)
{
	return th_xasprintf("%s/%s", th_tmpdir(), name);
}

void th_write_file(const char *path, const void *data, size_t len, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (fd < 0) th_fail("th_write_file: open %s: %s", path, strerror(errno));
	/* fchmod because open's mode only applies to new files and is cut by the umask */
	if (fchmod(fd, (mode_t)mode) != 0) {
		int e = errno;
		close(fd);
		th_fail("th_write_file: chmod %s %o: %s", path, mode, strerror(e));
	}
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			int e = errno;
			close(fd);
			th_fail("th_write_file: write %s: %s", path, strerror(e));
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) != 0) th_fail("th_write_file: close %s: %s", path, strerror(errno));
}

bool th_has_group(const char *s, const char *digits)
{
	size_t n = strlen(digits);
	for (const char *p = s ? strstr(s, digits) : NULL; p; p = strstr(p + 1, digits)) {
		const char *a = p, *b = p + n;
		while (a > s && isdigit((unsigned char)a[-1]))
			a--;
		while (isdigit((unsigned char)*b))
			b++;
		/* alone, or inside a run as long as a card's (unseparated) */
		if (b - a == (ptrdiff_t)n || b - a >= 13)
			return true;
	}
	return false;
}

char *th_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			if (len) *len = 0;
			return NULL;
		}
		th_fail("th_read_file: open %s: %s", path, strerror(errno));
	}
	th_buf b = {0};
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			th_buf_free(&b);
			th_fail("th_read_file: read %s: %s", path, strerror(e));
		}
		if (n == 0) break;
		th_buf_put(&b, chunk, (size_t)n);
	}
	close(fd);
	return th_buf_take(&b, len);
}

/* ---- Ports -------------------------------------------------------------------------- */

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

int th_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) th_fail("th_free_port: socket: %s", strerror(errno));
	struct sockaddr_in a = loopback(0);
	socklen_t alen = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		int e = errno;
		close(fd);
		th_fail("th_free_port: bind 127.0.0.1:0: %s", strerror(e));
	}
	close(fd);
	return ntohs(a.sin_port);
}

bool th_port_accepts(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) th_fail("th_wait_port: socket: %s", strerror(errno));
	struct sockaddr_in a = loopback(port);
	bool ok = false;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
		ok = true;
	} else if (errno == EINPROGRESS) {
		/* loopback answers at once unless the listener's backlog is full */
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		if (poll(&pfd, 1, 100) == 1) {
			int err = 0;
			socklen_t elen = sizeof err;
			ok = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0;
		}
	}
	close(fd);
	return ok;
}

bool th_wait_port(int port, int timeout_ms)
{
	int64_t deadline = th_now_ms() + timeout_ms;
	for (;;) {
		if (th_port_accepts(port)) return true;
		if (th_now_ms() >= deadline) return false;
		th_sleep_ms(10);
	}
}

/* ---- Deterministic content ---------------------------------------------------------- */

void th_pattern_fill(void *buf, size_t len, uint64_t offset)
{
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) p[i] = (unsigned char)(((offset + i) * 31 + 7) & 0xff);
}

static void hex_digest(const unsigned char *md, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

void th_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	if (!EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL)) th_fail("th_sha256_hex: EVP_Digest failed");
	hex_digest(md, out);
}

void th_pattern_sha256_hex(uint64_t n, char out[65])
{
	/* The pattern repeats every 256 bytes, so one 64 KiB block serves every offset. */
	static unsigned char block[65536];
	th_pattern_fill(block, sizeof block, 0);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) th_fail("th_pattern_sha256_hex: digest init");
	while (n > 0) {
		size_t take = n < sizeof block ? (size_t)n : sizeof block;
		EVP_DigestUpdate(md, block, take);
		n -= take;
	}
	unsigned char digest[32];
	EVP_DigestFinal_ex(md, digest, NULL);
	EVP_MD_CTX_free(md);
	hex_digest(digest, out);
}
