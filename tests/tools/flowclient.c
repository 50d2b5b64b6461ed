/*
 * flowclient: plays the macOS system extension on Linux, for tests and the
 * benchmark. It accepts TCP connections as if it had intercepted them and
 * hands each to the engine the way the extension does: one connection to
 * the engine's unix socket, a header frame (sources/frame.h, the same code
 * the extension compiles) with the identity given on the command line,
 * the engine's reply, then bytes both ways with half-close.
 *
 *   flowclient --listen 127.0.0.1:PORT --socket PATH --dst IP:PORT
 *              [--hostname NAME] --path EXE --anchor ANCHOR [--pid N] [--uid N]
 *              [--signing-id ID] [--team-id ID] [--on-bypass pass|close]
 *              [--static-bypass]
 *   flowclient --listen 127.0.0.1:PORT --via-connect PROXYPORT --dst IP:PORT
 *              (the benchmark's control: the same relay, but each flow goes
 *              to dlpgate's explicit proxy with CONNECT instead of a frame)
 *
 * On a bypass the flow goes straight to --dst (pass, the extension's
 * default) or is closed; a reject closes it. With --static-bypass it
 * fetches the engine's bypass table (sources/bypass.h) first, as the
 * extension does, and flows the table matches never reach the engine
 * ("verdict=static-bypass"); a reply naming another policy version makes
 * it fetch the table again. Each verdict is one line on
 * stdout ("flow N verdict=... reason=...") for tests to read.
 */
#include "sources/bypass.h"
#include "sources/frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static frame_request_t identity;
static const char *socket_path;
static struct sockaddr_in dst_addr;
static bool bypass_passes = true;
static atomic_uint next_flow;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static bool use_table;
static int via_connect; /* an explicit proxy port: CONNECT instead of frames */
static bypass_table_t table;     /* under table_lock */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "flowclient: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(2);
}

static void parse_addr(const char *text, struct sockaddr_in *a, const char *what)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof host)
		die("%s: expected IPv4:PORT", what);
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1 || !a->sin_port)
		die("%s: expected IPv4:PORT", what);
}

/* ---- the relay: every accepted flow's bytes, both ways, in one epoll loop ----
 *
 * Flow threads do the blocking part (connect, frame, reply) and hand the
 * pair of sockets over; one thread then moves bytes for all flows, as an
 * event-driven extension would. A thread per flow blocking in poll cost as
 * much CPU as the engine itself in tests/bench/framing.sh. Each direction
 * holds what its writer refused and stops reading until that is written;
 * an EOF is passed on as a half-close once its direction is drained. */

typedef struct pair pair_t;
typedef struct {
	pair_t *pair;
	int k; /* this end is fd[k] */
} end_t;
typedef struct {
	char buf[65536];
	size_t off, len; /* read from fd[k], not yet written to fd[1 - k] */
	bool eof, done;  /* fd[k] ended; the half-close was passed on */
} dir_t;
struct pair {
	int fd[2];
	uint32_t events[2]; /* the interest registered for fd[k] */
	dir_t d[2];         /* d[k] reads fd[k], writes fd[1 - k] */
	end_t end[2];
	bool closed;
	pair_t *next_dead;
};

static int relay_ep = -1, relay_inbox[2];
static pair_t *dead; /* closed in this batch of events, freed after it */

static void pair_close(pair_t *p)
{
	if (p->closed)
		return;
	p->closed = true;
	close(p->fd[0]);
	close(p->fd[1]);
	p->next_dead = dead;
	dead = p;
}

/* Writes what direction j holds; false if the socket failed. */
static bool drain(pair_t *p, int j)
{
	dir_t *d = &p->d[j];
	while (d->len) {
		ssize_t w = write(p->fd[1 - j], d->buf + d->off, d->len);
		if (w > 0) {
			d->off += (size_t)w;
			d->len -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else {
			return w < 0 && errno == EAGAIN;
		}
	}
	return true;
}

/* fd[k] is read while its direction holds nothing, and written while the
 * other direction holds something. */
static void update_interest(pair_t *p, int k)
{
	uint32_t want = (!p->d[k].eof && !p->d[k].len ? EPOLLIN : 0) | (p->d[1 - k].len ? EPOLLOUT : 0);
	if (want == p->events[k])
		return;
	struct epoll_event e = {.events = want, .data.ptr = &p->end[k]};
	epoll_ctl(relay_ep, EPOLL_CTL_MOD, p->fd[k], &e);
	p->events[k] = want;
}

static void on_relay_event(pair_t *p, int k, uint32_t ev)
{
	dir_t *in = &p->d[k];
	if (p->closed)
		return;
	if ((ev & EPOLLERR) || ((ev & EPOLLOUT) && !drain(p, 1 - k))) {
		pair_close(p);
		return;
	}
	if ((ev & (EPOLLIN | EPOLLHUP)) && !in->eof && !in->len) {
		ssize_t n = read(p->fd[k], in->buf, sizeof in->buf);
		if (n > 0) {
			in->off = 0;
			in->len = (size_t)n;
			if (!drain(p, k)) {
				pair_close(p);
				return;
			}
		} else if (n == 0) {
			in->eof = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			pair_close(p);
			return;
		}
	}
	for (int j = 0; j < 2; j++)
		if (p->d[j].eof && !p->d[j].len && !p->d[j].done) {
			shutdown(p->fd[1 - j], SHUT_WR);
			p->d[j].done = true;
		}
	/* both ways done; or fd[k] hung up with nothing left to read from it,
	 * so nothing can be written to it either */
	if ((p->d[0].done && p->d[1].done) || ((ev & EPOLLHUP) && in->eof)) {
		pair_close(p);
		return;
	}
	update_interest(p, 0);
	update_interest(p, 1);
}

static void *relay_loop(void *arg)
{
	(void)arg;
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(relay_ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			end_t *e = evs[i].data.ptr;
			if (e) {
				on_relay_event(e->pair, e->k, evs[i].events);
				continue;
			}
			pair_t *p;
			while (read(relay_inbox[0], &p, sizeof p) == (ssize_t)sizeof p)
				for (int k = 0; k < 2; k++) {
					struct epoll_event add = {.events = EPOLLIN, .data.ptr = &p->end[k]};
					p->events[k] = EPOLLIN;
					if (epoll_ctl(relay_ep, EPOLL_CTL_ADD, p->fd[k], &add) != 0)
						pair_close(p);
				}
		}
		while (dead) {
			pair_t *p = dead;
			dead = p->next_dead;
			free(p);
		}
	}
	return NULL;
}

static void relay_init(void)
{
	relay_ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
	pthread_t t;
	if (relay_ep < 0 || pipe2(relay_inbox, O_CLOEXEC | O_NONBLOCK) != 0 ||
	    epoll_ctl(relay_ep, EPOLL_CTL_ADD, relay_inbox[0], &e) != 0 || pthread_create(&t, NULL, relay_loop, NULL) != 0)
		die("cannot start the relay: %s", strerror(errno));
	pthread_detach(t);
}

/* Both sockets now belong to the relay: the caller must not close them. */
static void relay_hand_over(int a, int b)
{
	pair_t *p = calloc(1, sizeof *p);
	if (!p) {
		close(a);
		close(b);
		return;
	}
	p->fd[0] = a;
	p->fd[1] = b;
	for (int k = 0; k < 2; k++) {
		p->end[k] = (end_t){p, k};
		fcntl(p->fd[k], F_SETFL, fcntl(p->fd[k], F_GETFL) | O_NONBLOCK);
	}
	/* through the loop's own thread, so no event can arrive for an end
	 * not yet registered */
	if (write(relay_inbox[1], &p, sizeof p) != (ssize_t)sizeof p) {
		close(a);
		close(b);
		free(p);
	}
}

static int engine_connect(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", socket_path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The control connection: ask, keep the table. */
static bool fetch_table(void)
{
	int fd = engine_connect();
	bypass_table_t t;
	char err[200] = "cannot connect";
	bool ok = fd >= 0 && bypass_table_fetch(fd, &t, err, sizeof err);
	if (ok) {
		pthread_mutex_lock(&table_lock);
		bypass_table_free(&table);
		table = t;
		pthread_mutex_unlock(&table_lock);
	} else {
		fprintf(stderr, "flowclient: no bypass table: %s\n", err);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

static void report(unsigned id, const char *verdict, const char *reason)
{
	pthread_mutex_lock(&out_lock);
	printf("flow %u verdict=%s reason=%s\n", id, verdict, reason && *reason ? reason : "-");
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

/* The control path: the same relay into the explicit proxy. */
static int connect_proxy(unsigned id)
{
	struct sockaddr_in px = {.sin_family = AF_INET, .sin_port = htons((uint16_t)via_connect)};
	px.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char req[128], resp[512];
	int n = snprintf(req, sizeof req, "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
			 identity.hostname[0] ? identity.hostname : identity.dst_ip, identity.dst_port,
			 identity.hostname[0] ? identity.hostname : identity.dst_ip, identity.dst_port);
	size_t have = 0;
	if (fd < 0 || connect(fd, (struct sockaddr *)&px, sizeof px) != 0 || write(fd, req, (size_t)n) != n)
		goto fail;
	while (have < sizeof resp - 1) { /* byte by byte up to the blank line: nothing of the tunnel is taken */
		ssize_t k = read(fd, resp + have, 1);
		if (k <= 0)
			goto fail;
		have++;
		if (have >= 4 && !memcmp(resp + have - 4, "\r\n\r\n", 4))
			break;
	}
	resp[have] = '\0';
	if (strncmp(resp, "HTTP/1.1 200", 12))
		goto fail;
	report(id, "connect", NULL);
	return fd;
fail:
	report(id, "connect-failed", NULL);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The flow goes where the client meant, without the engine. */
static void pass_direct(int *client)
{
	int direct = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (direct >= 0 && connect(direct, (struct sockaddr *)&dst_addr, sizeof dst_addr) == 0) {
		relay_hand_over(*client, direct);
		*client = -1;
	} else if (direct >= 0) {
		close(direct);
	}
}

static void *flow_thread(void *arg)
{
	int client = (int)(intptr_t)arg;
	unsigned id = atomic_fetch_add(&next_flow, 1) + 1;
	frame_request_t r = identity;
	snprintf(r.flow_id, sizeof r.flow_id, "flow-%u", id);
	int engine = -1;
	char why[300];
	pthread_mutex_lock(&table_lock);
	bool leave = use_table && bypass_table_match(&table, r.app.anchor, r.app.signing_id, r.hostname, why, sizeof why);
	pthread_mutex_unlock(&table_lock);
	if (leave) { /* the OS keeps the flow: the engine never hears of it */
		report(id, "static-bypass", why);
		pass_direct(&client);
		goto out;
	}
	if (via_connect) {
		engine = connect_proxy(id);
		if (engine >= 0) {
			relay_hand_over(client, engine);
			client = engine = -1;
		}
		goto out;
	}
	engine = engine_connect();
	if (engine < 0) {
		/* the extension's fail-open / fail-closed choice; here: closed */
		report(id, "unreachable", strerror(errno));
		goto out;
	}
	bytebuf_t frame;
	bytebuf_init(&frame, 0);
	char err[200];
	if (!frame_request_encode(&r, &frame, err, sizeof err) || write(engine, frame.data, frame.len) != (ssize_t)frame.len) {
		report(id, "error", err);
		bytebuf_free(&frame);
		goto out;
	}
	bytebuf_free(&frame);
	uint8_t in[FRAME_PREFIX + FRAME_MAX_JSON];
	size_t have = 0, used = 0;
	frame_reply_t rep;
	frame_status_t st = FRAME_NEED_MORE;
	while (st == FRAME_NEED_MORE && have < sizeof in) {
		ssize_t n = read(engine, in + have, 1); /* byte by byte: nothing past the frame is taken */
		if (n <= 0)
			break;
		have += (size_t)n;
		st = frame_reply_decode(in, have, &rep, &used, err, sizeof err);
	}
	if (st != FRAME_OK) {
		report(id, "error", st == FRAME_BAD ? err : "the engine closed before its reply");
		goto out;
	}
	report(id, frame_verdict_name(rep.verdict), rep.reason);
	pthread_mutex_lock(&table_lock);
	bool stale = use_table && strcmp(rep.policy_version, table.policy_version) != 0;
	pthread_mutex_unlock(&table_lock);
	if (stale)
		fetch_table();
	if (rep.verdict == FRAME_ACCEPT) {
		relay_hand_over(client, engine);
		client = engine = -1;
	} else if (rep.verdict == FRAME_BYPASS && bypass_passes) {
		pass_direct(&client);
	}
out:
	if (engine >= 0)
		close(engine);
	if (client >= 0)
		close(client);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in listen_addr = {0};
	bool have_listen = false, have_dst = false;
	snprintf(identity.extension_version, sizeof identity.extension_version, "flowclient-1");
	identity.app.pid = getpid();
	identity.app.uid = getuid();
	memset(identity.app.audit_token_sha256, 'a', 64);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--static-bypass")) {
			use_table = true;
			continue;
		}
		if (!v)
			die("%s needs a value", a);
		i++;
		if (!strcmp(a, "--listen")) {
			parse_addr(v, &listen_addr, a);
			have_listen = true;
		} else if (!strcmp(a, "--socket")) {
			socket_path = v;
		} else if (!strcmp(a, "--dst")) {
			parse_addr(v, &dst_addr, a);
			inet_ntop(AF_INET, &dst_addr.sin_addr, identity.dst_ip, sizeof identity.dst_ip);
			identity.dst_port = ntohs(dst_addr.sin_port);
			have_dst = true;
		} else if (!strcmp(a, "--hostname")) {
			snprintf(identity.hostname, sizeof identity.hostname, "%s", v);
		} else if (!strcmp(a, "--path")) {
			snprintf(identity.app.path, sizeof identity.app.path, "%s", v);
		} else if (!strcmp(a, "--signing-id")) {
			snprintf(identity.app.signing_id, sizeof identity.app.signing_id, "%s", v);
		} else if (!strcmp(a, "--team-id")) {
			snprintf(identity.app.team_id, sizeof identity.app.team_id, "%s", v);
		} else if (!strcmp(a, "--pid")) {
			identity.app.pid = atoll(v);
		} else if (!strcmp(a, "--uid")) {
			identity.app.uid = atoll(v);
		} else if (!strcmp(a, "--anchor")) {
			static const char *const names[] = {"apple", "app_store", "developer_id", "adhoc", "unsigned"};
			int k = 0;
			while (k < 5 && strcmp(v, names[k]))
				k++;
			if (k == 5)
				die("--anchor %s: apple, app_store, developer_id, adhoc or unsigned", v);
			identity.app.anchor = (frame_anchor_t)k;
		} else if (!strcmp(a, "--via-connect")) {
			via_connect = atoi(v);
		} else if (!strcmp(a, "--on-bypass")) {
			bypass_passes = strcmp(v, "close") != 0;
		} else {
			die("unknown option %s", a);
		}
	}
	if (via_connect && !socket_path)
		socket_path = "-";
	if (via_connect && !identity.app.path[0])
		snprintf(identity.app.path, sizeof identity.app.path, "/none");
	if (!have_listen || !socket_path || !have_dst || !identity.app.path[0])
		die("%s", "usage: flowclient --listen IP:PORT --socket PATH --dst IP:PORT --path EXE --anchor A [...]");
	signal(SIGPIPE, SIG_IGN);
	relay_init();
	if (use_table && !fetch_table())
		die("%s", "--static-bypass: could not fetch the engine's bypass table");
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0 || listen(lfd, 256) != 0)
		die("cannot listen: %s", strerror(errno));
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, flow_thread, (void *)(intptr_t)c) != 0) {
			close(c);
			continue;
		}
		pthread_detach(t);
	}
}
