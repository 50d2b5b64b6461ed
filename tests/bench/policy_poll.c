/*
 * policy_poll: how fast a policy activation reaches a fleet that long-polls
 * (GET /api/v1/policy), and what a held poll costs the console.
 *
 *   policy_poll --console HOST:PORT [--console HOST:PORT2] --cacert PEM
 *               --secret S --activate "SHELL COMMAND" --expect VERSION
 *               [--agents 10000] [--ramp 200] [--pid PID [--pid PID2]]
 *
 * N simulated agents enroll (through the first console), then each holds
 * one poll over its own TLS connection, spread evenly over the consoles,
 * with the ETag they were all given. One thread and epoll drive every
 * connection with non-blocking OpenSSL (SSL_MODE_RELEASE_BUFFERS, a read
 * buffer only while an answer arrives), opening at most --ramp at a time so
 * neither side's handshake peak is what gets measured. With every poll
 * held, it reads each console's RSS (and asks it to log its live heap),
 * runs the activation command, and times from just before that command
 * until each agent has the new version: p50, p99, max. Last, for
 * comparison, what periodic polling every 60 s (OPA's default) would give
 * the same fleet, simulated with a uniform random phase per agent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONSOLES 4
#define RESP_CAP 8192

typedef enum { C_CONNECTING, C_HANDSHAKE, C_SENDING, C_HELD, C_DONE, C_FAILED } cstate_t;

typedef struct {
	int fd;
	SSL *ssl;
	cstate_t state;
	int console;
	char *resp; /* only while an answer arrives */
	size_t resp_len;
	double got_ms;
	char token[65];
} agent_t;

static struct sockaddr_in consoles[MAX_CONSOLES];
static int n_consoles, pids[MAX_CONSOLES], n_pids;
static const char *cacert, *secret, *activate;
static int n_agents = 10000, ramp = 200;
static long expect = -1;
static SSL_CTX *ctx;
static char etag[64];

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1000 + (double)t.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "policy_poll: %s\n", what);
	exit(1);
}

static long rss_kib(int pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		sscanf(line, "VmRSS: %ld", &kib);
	if (f)
		fclose(f);
	return kib;
}

/* ---- blocking setup requests (enrollment, the first offer) ---- */

static SSL *dial_blocking(int console)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&consoles[console], sizeof consoles[0]) != 0)
		die("cannot connect to the console");
	SSL *s = SSL_new(ctx);
	SSL_set_fd(s, fd);
	if (SSL_connect(s) != 1)
		die("TLS handshake with the console failed (--cacert?)");
	return s;
}

/* One request on a keep-alive connection; the answer's body into out. */
static int exchange(SSL *s, const char *req, char *out, size_t cap, char *hdr_etag)
{
	if (SSL_write(s, req, (int)strlen(req)) <= 0)
		die("write to the console failed");
	size_t len = 0;
	char *end = NULL;
	long clen = -1;
	for (;;) {
		int n = SSL_read(s, out + len, (int)(cap - 1 - len));
		if (n <= 0)
			die("the console closed during setup");
		len += (size_t)n;
		out[len] = '\0';
		if (!end && (end = strstr(out, "\r\n\r\n"))) {
			char *cl = strcasestr(out, "content-length:");
			clen = cl && cl < end ? strtol(cl + 15, NULL, 10) : 0;
			char *et = strcasestr(out, "etag: ");
			if (hdr_etag && et && et < end)
				snprintf(hdr_etag, 64, "%.*s", (int)strcspn(et + 6, "\r"), et + 6);
		}
		if (end && len >= (size_t)(end + 4 - out) + (size_t)clen)
			break;
	}
	int status = atoi(out + 9);
	memmove(out, end + 4, (size_t)clen);
	out[clen] = '\0';
	return status;
}

static void enroll_all(agent_t *ag)
{
	SSL *s = dial_blocking(0);
	unsigned run = (unsigned)time(NULL) ^ (unsigned)getpid();
	char body[512], req[1024], out[4096];
	double t = now_ms();
	for (int i = 0; i < n_agents; i++) {
		int n = snprintf(body, sizeof body,
				 "{\"enroll_secret\":\"%s\",\"agent_id\":\"%08x-0000-4000-8000-%012d\",\"hostname\":\"sim%d\","
				 "\"version\":\"bench\"}",
				 secret, run, i, i);
		snprintf(req, sizeof req,
			 "POST /api/v1/enroll HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			 n, body);
		if (exchange(s, req, out, sizeof out, NULL) != 200)
			die(out);
		char *tok = strstr(out, "\"token\":\"");
		if (!tok)
			die("enroll answer without a token");
		memcpy(ag[i].token, tok + 9, 64);
		ag[i].token[64] = '\0';
	}
	printf("enrolled %d agents in %.1f s\n", n_agents, (now_ms() - t) / 1000);
	SSL_free(s);
}

/* ---- the held polls ---- */

static int ep;
static int opening, next_agent, held, answered, failed;

static void request_of(const agent_t *a, char *req, size_t n)
{
	snprintf(req, n,
		 "GET /api/v1/policy?wait=300 HTTP/1.1\r\nHost: c\r\nAuthorization: Bearer %s\r\nIf-None-Match: %s\r\n\r\n",
		 a->token, etag);
}

static void fail(agent_t *a, const char *why)
{
	if (failed++ < 5)
		fprintf(stderr, "agent on fd %d: %s\n", a->fd, why);
	if (a->state < C_HELD)
		opening--;
	a->state = C_FAILED;
	free(a->resp);
	a->resp = NULL;
}

static void open_one(agent_t *ag)
{
	agent_t *a = &ag[next_agent];
	a->console = next_agent % n_consoles;
	next_agent++;
	a->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->fd < 0)
		die("socket: raise the open-file limit (ulimit -n)");
	int one = 1;
	setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(a->fd, (struct sockaddr *)&consoles[a->console], sizeof consoles[0]) != 0 && errno != EINPROGRESS)
		die("connect");
	a->ssl = SSL_new(ctx);
	SSL_set_fd(a->ssl, a->fd);
	SSL_set_connect_state(a->ssl);
	a->state = C_CONNECTING;
	opening++;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = a};
	epoll_ctl(ep, EPOLL_CTL_ADD, a->fd, &ev);
}

/* Reads what arrived; true once the whole answer is there. */
static bool read_answer(agent_t *a)
{
	for (;;) {
		if (!a->resp && !(a->resp = malloc(RESP_CAP)))
			die("out of memory");
		int n = SSL_read(a->ssl, a->resp + a->resp_len, (int)(RESP_CAP - 1 - a->resp_len));
		if (n <= 0) {
			int e = SSL_get_error(a->ssl, n);
			if (e == SSL_ERROR_WANT_READ)
				return false;
			fail(a, "the console closed a held poll");
			return false;
		}
		a->resp_len += (size_t)n;
		a->resp[a->resp_len] = '\0';
		char *end = strstr(a->resp, "\r\n\r\n");
		if (!end)
			continue;
		char *cl = strcasestr(a->resp, "content-length:");
		size_t want = (size_t)(end + 4 - a->resp) + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
		if (want >= RESP_CAP)
			die("an answer larger than the bench reads: use a smaller bundle");
		if (a->resp_len >= want)
			return true;
	}
}

static void drive(agent_t *a, double t0)
{
	char req[512];
	if (a->state == C_CONNECTING)
		a->state = C_HANDSHAKE;
	if (a->state == C_HANDSHAKE) {
		int r = SSL_do_handshake(a->ssl);
		if (r != 1) {
			int e = SSL_get_error(a->ssl, r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				fail(a, "TLS handshake failed");
			return;
		}
		a->state = C_SENDING;
	}
	if (a->state == C_SENDING) {
		request_of(a, req, sizeof req);
		int r = SSL_write(a->ssl, req, (int)strlen(req));
		if (r <= 0) {
			int e = SSL_get_error(a->ssl, r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				fail(a, "write failed");
			return;
		}
		a->state = C_HELD;
		opening--;
		held++;
	}
	if (a->state == C_HELD && read_answer(a)) {
		a->got_ms = now_ms() - t0;
		a->state = C_DONE;
		answered++;
		int status = atoi(a->resp + 9);
		char *v = strstr(a->resp, "\"active\":{\"version\":");
		if (status != 200 || !v || strtol(v + 20, NULL, 10) != expect) {
			char why[128];
			snprintf(why, sizeof why, "answered %d %.60s", status, v ? v : "");
			fail(a, why);
			answered--;
		}
		free(a->resp);
		a->resp = NULL;
	}
}

static void pump(agent_t *ag, double t0, int timeout_ms)
{
	struct epoll_event evs[256];
	int n = epoll_wait(ep, evs, 256, timeout_ms);
	for (int i = 0; i < n; i++)
		drive(evs[i].data.ptr, t0);
	while (opening < ramp && next_agent < n_agents)
		open_one(ag);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	printf("%s: n=%d p50=%.0f ms p99=%.0f ms max=%.0f ms\n", what, n, v[n / 2], v[(int)((n - 1) * 0.99)], v[n - 1]);
}

static void usage(void)
{
	fputs("usage: policy_poll --console HOST:PORT [--console ...] --cacert PEM --secret S --activate CMD\n"
	      "                   --expect VERSION [--agents N] [--ramp N] [--pid PID ...]\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--console") && n_consoles < MAX_CONSOLES) {
			char host[64];
			int port;
			if (sscanf(v, "%63[^:]:%d", host, &port) != 2)
				usage();
			consoles[n_consoles].sin_family = AF_INET;
			consoles[n_consoles].sin_port = htons((uint16_t)port);
			inet_pton(AF_INET, host, &consoles[n_consoles].sin_addr);
			n_consoles++;
		} else if (!strcmp(a, "--pid") && n_pids < MAX_CONSOLES) {
			pids[n_pids++] = atoi(v);
		} else if (!strcmp(a, "--cacert")) {
			cacert = v;
		} else if (!strcmp(a, "--secret")) {
			secret = v;
		} else if (!strcmp(a, "--activate")) {
			activate = v;
		} else if (!strcmp(a, "--expect")) {
			expect = atol(v);
		} else if (!strcmp(a, "--agents")) {
			n_agents = atoi(v);
		} else if (!strcmp(a, "--ramp")) {
			ramp = atoi(v);
		} else {
			usage();
		}
	}
	if (!n_consoles || !cacert || !secret || !activate || expect < 0 || n_agents < 1 || ramp < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)n_agents + 64)
		die("the open-file limit is below --agents: raise it (ulimit -n)");

	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, cacert, NULL) != 1)
		die("cannot read --cacert");
	agent_t *ag = calloc((size_t)n_agents, sizeof *ag);
	enroll_all(ag);
	/* the offer every agent runs now: what they poll with */
	SSL *s = dial_blocking(0);
	char req[512], out[RESP_CAP];
	request_of(&ag[0], req, sizeof req);
	char *inm = strstr(req, "If-None-Match");
	memcpy(inm, "X-Nothing-Yet", 13); /* the first poll of an agent names nothing */
	if (exchange(s, req, out, sizeof out, etag) != 200 || !etag[0])
		die("the first poll did not answer 200 with an ETag");
	SSL_free(s);
	printf("polling with If-None-Match: %s\n", etag);

	long before[MAX_CONSOLES];
	for (int i = 0; i < n_pids; i++)
		before[i] = rss_kib(pids[i]);
	ep = epoll_create1(EPOLL_CLOEXEC);
	double t = now_ms();
	while (next_agent < n_agents || opening > 0)
		pump(ag, 0, 100);
	/* the last requests' jobs (token lookup) finish and they park */
	for (double settle = now_ms(); now_ms() - settle < 3000;)
		pump(ag, 0, 100);
	printf("holding %d polls over TLS (%d failed) after %.1f s\n", held - answered, failed, (now_ms() - t) / 1000);
	for (int i = 0; i < n_pids; i++) {
		long after = rss_kib(pids[i]);
		int per = (n_agents + n_consoles - 1 - i) / n_consoles;
		printf("console %d RSS: %ld KiB before, %ld KiB with %d held polls: %.1f KiB per held poll\n", i,
		       before[i], after, per, (double)(after - before[i]) / per);
		kill(pids[i], SIGUSR1); /* it logs its live heap and held polls */
	}

	double t0 = now_ms();
	int rc = system(activate);
	double cmd_ms = now_ms() - t0;
	if (rc != 0)
		die("the activation command failed");
	while (answered + failed < n_agents && now_ms() - t0 < 60000)
		pump(ag, t0, 100);
	printf("activation command took %.0f ms; %d of %d agents got version %ld, %d failed\n", cmd_ms, answered,
	       n_agents, expect, failed);
	double *lat = malloc((size_t)n_agents * sizeof *lat);
	int n = 0;
	for (int i = 0; i < n_agents; i++)
		if (ag[i].state == C_DONE)
			lat[n++] = ag[i].got_ms;
	if (n)
		report("long-poll: activate -> agent has it", lat, n);
	/* Periodic polling every 60 s, each agent at its own uniform phase:
	 * the wait is the time to its next poll. */
	srand(12);
	for (int i = 0; i < n_agents; i++)
		lat[i] = 60000.0 * rand() / ((double)RAND_MAX + 1);
	report("periodic 60 s (simulated, uniform phase)", lat, n_agents);
	free(lat);
	return failed || answered < n_agents;
}
