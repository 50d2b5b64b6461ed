/*
 * console_load: load for a running dlpgate-console, with libcurl multi.
 *
 *   console_load --url https://127.0.0.1:8443 --cacert DIR/console.pem
 *                --secret S [--agents 100] [--seconds 10] [--batch 100]
 *                [--idle 0] [--pid CONSOLE_PID]
 *
 * N agents enroll (each a fresh agent id), then all post gzip NDJSON
 * batches of verdict events concurrently, one request in flight per agent,
 * for the given seconds; it reports events/s the console acknowledged as
 * stored, the error count and (with --pid) the console's RSS. With
 * --idle M it then opens M keep-alive connections (one status post each,
 * kept open in curl's connection cache) and reports the console's RSS
 * with them idle. With --pid it also sends the console SIGUSR1 at each
 * report: the console then logs its live heap (RSS keeps the peak). Event ids are unique per run, so nothing is a duplicate.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

typedef struct {
	char id[40];
	char token[80];
	char auth[128];
	CURL *h;
	struct curl_slist *hdrs;
	char *body;
	size_t body_len;
	char resp[512];
	size_t resp_len;
	uint64_t seq;
	unsigned run, index;
} agent_t;

static const char *url, *cacert, *secret;
static int n_agents = 100, seconds = 10, batch = 100, idle = 0, pid = 0;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
	agent_t *a = ud;
	size_t len = sz * n, room = sizeof a->resp - 1 - a->resp_len;
	memcpy(a->resp + a->resp_len, p, len < room ? len : room);
	a->resp_len += len < room ? len : room;
	a->resp[a->resp_len] = '\0';
	return len;
}

static void rss(const char *when)
{
	if (!pid)
		return;
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	long cur = 0, peak = 0;
	while (fgets(line, sizeof line, f)) {
		sscanf(line, "VmRSS: %ld", &cur);
		sscanf(line, "VmHWM: %ld", &peak);
	}
	fclose(f);
	printf("console_rss %s: %ld KiB (peak %ld KiB)\n", when, cur, peak);
	kill(pid, SIGUSR1); /* the console logs its live heap and connections */
}

static CURL *easy(agent_t *a, const char *path)
{
	char u[512];
	snprintf(u, sizeof u, "%s%s", url, path);
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(h, CURLOPT_PRIVATE, a);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	a->resp_len = 0;
	a->resp[0] = '\0';
	return h;
}

static void make_batch(agent_t *a)
{
	size_t cap = (size_t)batch * 700 + 1, len = 0;
	char *text = malloc(cap);
	time_t t = time(NULL);
	struct tm g;
	char ts[40];
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.000Z", gmtime_r(&t, &g));
	for (int i = 0; i < batch; i++, a->seq++)
		len += (size_t)snprintf(text + len, cap - len,
					"{\"event\":\"verdict\",\"id\":\"%08x-%04x-7000-8000-%012" PRIx64 "\","
					"\"agent_id\":\"%s\",\"time\":\"%s\",\"policy_version\":\"v1\",\"stage\":\"request\","
					"\"verdict\":\"%s\",\"monitor\":false,\"rule\":\"policy.lua:7\",\"reason\":\"load\","
					"\"detectors\":{\"aws_key\":{\"count\":1,\"samples\":[\"AK…YZ\"]}},"
					"\"app\":{\"path\":\"/usr/bin/curl\"},\"flow\":{\"id\":%" PRIu64 ",\"source\":\"explicit\","
					"\"host\":\"h%d.example\",\"dst_port\":443}}\n",
					a->run, a->index & 0xffff, a->seq, a->id, ts, i % 2 ? "block" : "pass", a->seq, i % 7);
	z_stream z;
	memset(&z, 0, sizeof z);
	deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	size_t zcap = deflateBound(&z, len);
	free(a->body);
	a->body = malloc(zcap);
	z.next_in = (Bytef *)text;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)a->body;
	z.avail_out = (uInt)zcap;
	deflate(&z, Z_FINISH);
	a->body_len = zcap - z.avail_out;
	deflateEnd(&z);
	free(text);
}

static void start_post(CURLM *m, agent_t *a)
{
	make_batch(a);
	a->h = easy(a, "/api/v1/events");
	curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, a->hdrs);
	curl_easy_setopt(a->h, CURLOPT_POSTFIELDS, a->body);
	curl_easy_setopt(a->h, CURLOPT_POSTFIELDSIZE, (long)a->body_len);
	curl_multi_add_handle(m, a->h);
}

static int usage(void)
{
	fprintf(stderr, "usage: console_load --url https://HOST:PORT --cacert FILE --secret S [--agents N] "
			"[--seconds D] [--batch B] [--idle M] [--pid CONSOLE_PID]\n");
	return 2;
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--url")) url = v;
		else if (!strcmp(k, "--cacert")) cacert = v;
		else if (!strcmp(k, "--secret")) secret = v;
		else if (!strcmp(k, "--agents")) n_agents = atoi(v);
		else if (!strcmp(k, "--seconds")) seconds = atoi(v);
		else if (!strcmp(k, "--batch")) batch = atoi(v);
		else if (!strcmp(k, "--idle")) idle = atoi(v);
		else if (!strcmp(k, "--pid")) pid = atoi(v);
		else return usage();
	}
	if (!url || !cacert || !secret || n_agents < 1 || batch < 1 || batch > 10000)
		return usage();
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	agent_t *ag = calloc((size_t)n_agents, sizeof *ag);
	unsigned run = (unsigned)time(NULL) ^ (unsigned)getpid();

	/* enroll, one after the other */
	for (int i = 0; i < n_agents; i++) {
		agent_t *a = &ag[i];
		snprintf(a->id, sizeof a->id, "%08x-0000-4000-8000-%012d", run, i);
		a->run = run;
		a->index = (unsigned)i;
		char body[512];
		snprintf(body, sizeof body, "{\"enroll_secret\":\"%s\",\"agent_id\":\"%s\",\"hostname\":\"load-%d\",\"version\":\"load\"}",
			 secret, a->id, i);
		CURL *h = easy(a, "/api/v1/enroll");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		long code = 0;
		CURLcode rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_cleanup(h);
		const char *t = strstr(a->resp, "\"token\":\"");
		if (rc != CURLE_OK || code != 200 || !t) {
			fprintf(stderr, "enroll %d failed: %s %ld %s\n", i, curl_easy_strerror(rc), code, a->resp);
			return 1;
		}
		snprintf(a->token, sizeof a->token, "%.64s", t + 9);
		snprintf(a->auth, sizeof a->auth, "Authorization: Bearer %s", a->token);
		a->hdrs = curl_slist_append(NULL, a->auth);
		a->hdrs = curl_slist_append(a->hdrs, "Content-Type: application/x-ndjson");
		a->hdrs = curl_slist_append(a->hdrs, "Content-Encoding: gzip");
		a->hdrs = curl_slist_append(a->hdrs, "Expect:");
	}
	printf("enrolled %d agents\n", n_agents);
	rss("after enroll");

	/* post batches, one request in flight per agent */
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)(n_agents + idle + 16));
	double t0 = now_s(), end = t0 + seconds;
	uint64_t accepted = 0, requests = 0, errors = 0;
	for (int i = 0; i < n_agents; i++)
		start_post(m, &ag[i]);
	int running = 1;
	while (running) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			agent_t *a;
			long code = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&a);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			const char *acc = strstr(a->resp, "\"accepted\":");
			requests++;
			if (msg->data.result != CURLE_OK || code != 200 || !acc) {
				errors++;
				if (errors <= 3)
					fprintf(stderr, "post: %s %ld %s\n", curl_easy_strerror(msg->data.result), code, a->resp);
			} else {
				accepted += strtoull(acc + 11, NULL, 10);
			}
			curl_multi_remove_handle(m, a->h);
			curl_easy_cleanup(a->h);
			a->h = NULL;
			if (now_s() < end)
				start_post(m, a);
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
		if (!running && now_s() < end)
			running = 1;
	}
	double el = now_s() - t0;
	printf("agents=%d batch=%d seconds=%.1f requests=%" PRIu64 " errors=%" PRIu64 " events_stored=%" PRIu64
	       " events_per_s=%.0f\n",
	       n_agents, batch, el, requests, errors, accepted, (double)accepted / el);
	rss("after load");

	/* idle keep-alive connections */
	if (idle > 0) {
		agent_t *conns = calloc((size_t)idle, sizeof *conns);
		CURLM *mi = curl_multi_init();
		curl_multi_setopt(mi, CURLMOPT_MAXCONNECTS, (long)idle + 16);
		char **bodies = calloc((size_t)idle, sizeof *bodies);
		for (int i = 0; i < idle; i++) {
			agent_t *a = &ag[i % n_agents];
			conns[i] = *a;
			bodies[i] = malloc(256);
			snprintf(bodies[i], 256, "{\"agent_id\":\"%s\",\"version\":\"load\",\"counters\":{}}", a->id);
			CURL *h = easy(&conns[i], "/api/v1/status");
			struct curl_slist *hd = curl_slist_append(NULL, a->auth);
			conns[i].hdrs = curl_slist_append(hd, "Content-Type: application/json");
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, conns[i].hdrs);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, bodies[i]);
			conns[i].h = h;
			curl_multi_add_handle(mi, h);
		}
		int ok = 0, r = 1;
		while (r) {
			curl_multi_perform(mi, &r);
			CURLMsg *msg;
			int left;
			while ((msg = curl_multi_info_read(mi, &left))) {
				long code = 0;
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
				ok += msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OK && code == 204;
			}
			if (r)
				curl_multi_poll(mi, NULL, 0, 100, NULL);
		}
		/* The handles stay in the multi: their connections stay open. */
		sleep(2);
		printf("idle keep-alive connections: %d opened, %d answered 204\n", idle, ok);
		rss("with idle connections");
		for (int i = 0; i < idle; i++) {
			curl_multi_remove_handle(mi, conns[i].h);
			curl_easy_cleanup(conns[i].h);
			curl_slist_free_all(conns[i].hdrs);
			free(bodies[i]);
		}
		curl_multi_cleanup(mi);
		free(bodies);
		free(conns);
		sleep(1);
		rss("after the idle connections closed");
	}
	curl_multi_cleanup(m);
	for (int i = 0; i < n_agents; i++) {
		curl_slist_free_all(ag[i].hdrs);
		free(ag[i].body);
	}
	free(ag);
	curl_global_cleanup();
	return errors ? 1 : 0;
}
