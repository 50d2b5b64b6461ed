#include "dlp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

bool dlp_sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return true;
#else
	return false;
#endif
#else
	return false;
#endif
}

const char *dlp_bin(void)
{
	const char *b = getenv("DLPGATE_BIN");
	return b && *b ? b : "build/dlpgate";
}

world_t world_new(void)
{
	world_t w;
	w.ca = th_make_ca("upstream-ca");
	th_leaf_opts o = {.cn = "localhost", .dns = {"localhost"}, .ip = {"127.0.0.1"}};
	w.server = th_make_leaf(&w.ca, "upstream", &o);
	return w;
}

void world_free(world_t *w)
{
	th_cert_free(&w->server);
	th_cert_free(&w->ca);
}

static void spawn_and_wait(dlp_t *d);

dlp_t dlp_start(const char *upstream_ca, const char *config_json, const char *const extra[])
{
	static int n;
	dlp_t d;
	memset(&d, 0, sizeof d);
	char name[64];
	snprintf(name, sizeof name, "dlp%d-state", n);
	d.state_dir = th_path(name);
	if (asprintf(&d.ca_path, "%s/ca.pem", d.state_dir) < 0)
		th_fail("out of memory");
	d.port = th_free_port();
	snprintf(d.proxy, sizeof d.proxy, "http://127.0.0.1:%d", d.port);
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", d.port);

	const char *argv[64];
	int a = 0;
	argv[a++] = dlp_bin();
	argv[a++] = "run";
	argv[a++] = "--listen";
	argv[a++] = listen;
	argv[a++] = "--state-dir";
	argv[a++] = d.state_dir;
	argv[a++] = "--workers";
	argv[a++] = "2";
	if (upstream_ca) {
		argv[a++] = "--upstream-ca";
		argv[a++] = upstream_ca;
	}
	if (config_json) {
		snprintf(name, sizeof name, "dlp%d-config.json", n);
		d.config_path = th_path(name);
		th_write_file(d.config_path, config_json, strlen(config_json), 0644);
		argv[a++] = "--config";
		argv[a++] = d.config_path;
	}
	for (int i = 0; extra && extra[i] && a < 62; i++)
		argv[a++] = extra[i];
	argv[a] = NULL;
	d.argv = calloc((size_t)a + 1, sizeof *d.argv);
	for (int i = 0; d.argv && i < a; i++)
		d.argv[i] = strdup(argv[i]);
	snprintf(name, sizeof name, "dlp%d.log", n++);
	d.log_name = strdup(name);
	spawn_and_wait(&d);
	return d;
}

/* Runs d.argv; fails the test unless it serves and says it started. */
static void spawn_and_wait(dlp_t *d)
{
	d->proc = th_spawn(d->argv, d->log_name);
	/* The port accepts as soon as its socket listens, before the other
	 * listeners (a --sysext-socket) exist: the start line comes after all
	 * of them, in either log format. */
	bool started = th_wait_port(d->port, 10000);
	for (int waited = 0; started; waited += 10) {
		char *log = th_log(&d->proc);
		bool seen = strstr(log, "event=start ") || strstr(log, "\"event\":\"start\"");
		free(log);
		if (seen)
			break;
		started = waited < 10000 && th_alive(&d->proc);
		usleep(10000);
	}
	if (!started) {
		char *log = th_log(&d->proc);
		th_fail("dlpgate did not start on %d:\n%s", d->port, log);
	}
}

dlp_t dlp_restart(dlp_t *d)
{
	dlp_t again = *d;
	again.state_dir = strdup(d->state_dir);
	again.ca_path = strdup(d->ca_path);
	again.config_path = d->config_path ? strdup(d->config_path) : NULL;
	d->argv = NULL;
	d->log_name = NULL;
	dlp_stop(d);
	spawn_and_wait(&again);
	return again;
}

void dlp_stop(dlp_t *d)
{
	if (d->proc.pid > 0 && th_alive(&d->proc)) {
		kill(d->proc.pid, SIGTERM);
		int code = th_wait(&d->proc, 10000);
		char *log = th_log(&d->proc);
		ck_assert_msg(code == 0, "dlpgate exited %d after SIGTERM:\n%s", code, log);
		free(log);
	}
	th_stop(&d->proc);
	free(d->state_dir);
	free(d->ca_path);
	free(d->config_path);
	d->state_dir = d->ca_path = d->config_path = NULL;
	for (size_t i = 0; d->argv && d->argv[i]; i++)
		free(d->argv[i]);
	free(d->argv);
	free(d->log_name);
	d->argv = NULL;
	d->log_name = NULL;
}

char *dlp_log(dlp_t *d)
{
	return th_log(&d->proc);
}

bool dlp_log_wait(dlp_t *d, const char *needle, int timeout_ms)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		char *log = th_log(&d->proc);
		bool hit = strstr(log, needle) != NULL;
		free(log);
		if (hit)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms > timeout_ms)
			return false;
		usleep(10000);
	}
}

int dlp_curl(dlp_t *d, const char *const args[], char **out, char **err)
{
	const char *argv[64];
	int a = 0;
	argv[a++] = "--proxy";
	argv[a++] = d->proxy;
	argv[a++] = "--cacert";
	argv[a++] = d->ca_path;
	for (int i = 0; args[i] && a < 63; i++)
		argv[a++] = args[i];
	argv[a] = NULL;
	return th_curl(argv, out, NULL, err);
}

char *url(const char *host, int port, const char *path, bool tls)
{
	char *u;
	if (asprintf(&u, "%s://%s:%d%s", tls ? "https" : "http", host, port, path) < 0)
		th_fail("out of memory");
	return u;
}

void dlp_world_start(dlp_world_t *x, const char *name, const char *src, const char *const extra[])
{
	x->w = world_new();
	x->up = th_upstream_start(&x->w.server);
	x->policy = th_path(name);
	th_write_file(x->policy, src, strlen(src), 0644);
	const char *args[32] = {"--policy", x->policy};
	int a = 2;
	for (int i = 0; extra && extra[i] && a < 31; i++)
		args[a++] = extra[i];
	args[a] = NULL;
	x->d = dlp_start(x->w.ca.cert_path, NULL, args);
}

void dlp_world_stop(dlp_world_t *x)
{
	dlp_stop(&x->d);
	th_upstream_stop(x->up);
	world_free(&x->w);
	free(x->policy);
}

char *dlp_world_curl(dlp_world_t *x, const char *path, const char *const args[], int *rc)
{
	char *u = url("127.0.0.1", th_upstream_port(x->up), path, true);
	const char *argv[48];
	int a = 0;
	for (int i = 0; args && args[i] && a < 46; i++)
		argv[a++] = args[i];
	argv[a++] = u;
	argv[a] = NULL;
	char *out = NULL, *err = NULL;
	int r = dlp_curl(&x->d, argv, &out, &err);
	free(err);
	free(u);
	if (rc)
		*rc = r;
	return out;
}

const char *dlp_console_bin(void)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s", dlp_bin());
	char *slash = strrchr(path, '/');
	if (slash)
		snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "dlpgate-console");
	else
		snprintf(path, sizeof path, "dlpgate-console");
	return path;
}

int dlp_tunnel_fd(dlp_t *d, int target_port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
	char req[128], head[1024];
	int n = snprintf(req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", target_port);
	ck_assert(send(fd, req, (size_t)n, 0) == n);
	size_t got = 0;
	while (got < sizeof head - 1 && (got < 4 || memcmp(head + got - 4, "\r\n\r\n", 4))) {
		ssize_t k = recv(fd, head + got, 1, 0); /* only the answer's head: TLS follows */
		ck_assert(k == 1);
		got++;
	}
	head[got] = '\0';
	ck_assert_msg(strstr(head, " 200 "), "%s", head);
	return fd;
}
