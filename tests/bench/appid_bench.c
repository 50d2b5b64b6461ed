/*
 * appid_bench: what finding the app behind a new local flow costs
 * (sources/appid.h), with 10,000 other sockets open on the machine.
 *
 *   tests/bench/appid.sh      (builds this against build/libdlpgate.a)
 *
 * A "crowd" process holds 5,000 connected loopback pairs (10,000 sockets),
 * as uid CROWD_UID (argv[1]; the same uid as the apps is the hard case).
 * Cached: one app process opens 2,000 connections in turn, keeping the
 * last 16 open, as a browser would; each is looked up as the engine would
 * (the first lookup of that process excluded).
 * Uncached: 300 app processes, one connection each, each looked up once.
 * Repeated: one connection of a process with 16 others open, looked up
 * 20,000 times with nothing else running: the lookup's own cost, apart
 * from what the machine's other work adds to the cases above.
 * Prints p50/p99/max in microseconds. A second argument "bpf" has the
 * kernel record connects first (appid_bpf_start), as transparent mode does.
 */
#include "sources/appid.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int listener(struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->sin_port = 0;
	socklen_t len = sizeof *a;
	if (bind(fd, (struct sockaddr *)a, sizeof *a) || listen(fd, 4096) || getsockname(fd, (struct sockaddr *)a, &len))
		exit(1);
	return fd;
}

static void crowd(uid_t uid, int ready)
{
	struct sockaddr_in a;
	int l = listener(&a);
	if (uid && setuid(uid) != 0)
		exit(1);
	for (int i = 0; i < 5000; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0 || accept(l, NULL, NULL) < 0)
			exit(1);
	}
	if (write(ready, "r", 1) != 1)
		exit(1);
	pause();
}

static int cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

static void report(const char *what, double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	printf("%-10s n=%d  p50 %7.1f us  p99 %7.1f us  max %7.1f us\n", what, n, v[n / 2], v[n * 99 / 100], v[n - 1]);
}

/* Accepts one connection from an app and looks it up; returns microseconds. */
static double lookup_one(int l, bool *found)
{
	struct sockaddr_storage peer, local;
	socklen_t pl = sizeof peer, ll = sizeof local;
	int c = accept(l, (struct sockaddr *)&peer, &pl);
	getsockname(c, (struct sockaddr *)&local, &ll);
	appid_t id;
	double t0 = now_us();
	appid_lookup(&peer, &local, &id);
	double t = now_us() - t0;
	*found = id.pid != 0;
	close(c);
	return t;
}

int main(int argc, char **argv)
{
	uid_t crowd_uid = argc > 1 ? (uid_t)atoi(argv[1]) : 0;
	if (argc > 2 && !strcmp(argv[2], "bpf")) {
		char why[512];
		if (!appid_bpf_start(why, sizeof why)) {
			fprintf(stderr, "appid_bpf_start: %s\n", why);
			return 2;
		}
	}
	struct rlimit rl = {20000, 20000};
	setrlimit(RLIMIT_NOFILE, &rl);
	int p[2];
	if (pipe(p))
		return 1;
	pid_t cp = fork();
	if (cp == 0)
		crowd(crowd_uid, p[1]);
	char ch;
	if (read(p[0], &ch, 1) != 1)
		return 1;
	struct sockaddr_in a;
	int l = listener(&a);
	enum { CACHED = 2000, UNCACHED = 300 };
	static double t[CACHED];
	int misses = 0;
	bool found;

	/* cached: one app, many connections, a few kept open at a time */
	int go[2], done[2];
	if (pipe(go) || pipe(done))
		return 1;
	pid_t app = fork();
	if (app == 0) {
		int open_fds[16] = {0};
		for (int i = 0; i <= CACHED; i++) {
			if (open_fds[i % 16] > 0)
				close(open_fds[i % 16]);
			int c = open_fds[i % 16] = socket(AF_INET, SOCK_STREAM, 0);
			if (connect(c, (struct sockaddr *)&a, sizeof a) != 0 || read(go[0], &ch, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	for (int i = 0; i <= CACHED; i++) {
		double us = lookup_one(l, &found);
		misses += !found;
		if (i > 0)
			t[i - 1] = us;
		if (write(go[1], "g", 1) != 1)
			return 1;
	}
	waitpid(app, NULL, 0);
	report("cached", t, CACHED);

	/* uncached: a new process each time */
	for (int i = 0; i < UNCACHED; i++) {
		pid_t one = fork();
		if (one == 0) {
			int c = socket(AF_INET, SOCK_STREAM, 0);
			if (connect(c, (struct sockaddr *)&a, sizeof a) != 0)
				_exit(1);
			(void)!read(go[0], &ch, 1);
			_exit(0);
		}
		t[i] = lookup_one(l, &found);
		misses += !found;
		if (write(go[1], "g", 1) != 1)
			return 1;
		waitpid(one, NULL, 0);
	}
	report("uncached", t, UNCACHED);

	/* repeated: the same connection, the process idle */
	enum { REPEATED = 20000 };
	static double r[REPEATED];
	pid_t idle = fork();
	if (idle == 0) {
		for (int i = 0; i < 16; i++)
			(void)!socket(AF_INET, SOCK_STREAM, 0);
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&a, sizeof a) != 0)
			_exit(1);
		(void)!read(go[0], &ch, 1);
		_exit(0);
	}
	struct sockaddr_storage peer, local;
	socklen_t pl = sizeof peer, ll = sizeof local;
	int c = accept(l, (struct sockaddr *)&peer, &pl);
	getsockname(c, (struct sockaddr *)&local, &ll);
	appid_t id;
	appid_lookup(&peer, &local, &id); /* the first one fills the cache */
	for (int i = 0; i < REPEATED; i++) {
		double t0 = now_us();
		appid_lookup(&peer, &local, &id);
		r[i] = now_us() - t0;
		misses += id.pid != idle;
	}
	close(c);
	if (write(go[1], "g", 1) != 1)
		return 1;
	waitpid(idle, NULL, 0);
	report("repeated", r, REPEATED);
	printf("crowd: 10000 sockets as uid %u; lookups that found no process: %d\n", (unsigned)crowd_uid, misses);
	kill(cp, SIGKILL);
	waitpid(cp, NULL, 0);
	return misses != 0;
}
