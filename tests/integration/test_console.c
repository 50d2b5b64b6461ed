/*
 * The console (build/dlpgate-console) as a real process, driven with real
 * curl over HTTPS: enrollment, gzip NDJSON ingestion with duplicates, every
 * query filter and cursor pagination, agents and stats; then the attacks
 * (missing and foreign tokens, other agents' events, SQL injection in every
 * filter, oversized bodies and gzip bombs, Slowloris heads and bodies,
 * malformed lines); then the same functional path on a real PostgreSQL the
 * test starts itself (initdb + postgres as the postgres user).
 */
#include "console_proc.h"
#include "dlp.h"
#include "http/body.h"
#include "suites.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AGENT_A "aaaaaaaa-0000-4000-8000-000000000001"
#define AGENT_B "bbbbbbbb-0000-4000-8000-000000000002"

/* Event i of the test batch: kinds, verdicts, hosts, apps and detectors
 * cycle so every filter has a known answer. Times are one minute apart. */
static const char *const verdicts[] = {"block", "pass", "redact"};
static char *event_line(const char *agent, int i)
{
	char id[40], tm[40];
	snprintf(id, sizeof id, "01900000-0000-7000-8000-%012d", i);
	int64_t base = 1795000000; /* 2026-11-18 */
	time_t t = (time_t)(base + i * 60);
	struct tm g;
	gmtime_r(&t, &g);
	strftime(tm, sizeof tm, "%Y-%m-%dT%H:%M:%S.000Z", &g);
	char *line = malloc(2048);
	if (i % 5 == 4)
		snprintf(line, 2048, "{\"event\":\"spool_drop\",\"id\":\"%s\",\"agent_id\":\"%s\",\"time\":\"%s\",\"reason\":\"spool_full\",\"dropped\":%d}",
			 id, agent, tm, i + 1);
	else if (i % 5 == 3)
		snprintf(line, 2048, "{\"event\":\"flow\",\"id\":\"%s\",\"agent_id\":\"%s\",\"time\":\"%s\",\"policy_version\":\"v1\",\"mode\":\"bypass\",\"verdict\":\"bypass\",\"app\":{\"signing_id\":\"com.example.app\"},\"flow\":{\"id\":%d,\"source\":\"transparent\",\"sni\":\"bank.example\",\"dst_port\":443}}",
			 id, agent, tm, i);
	else
		snprintf(line, 2048, "{\"event\":\"verdict\",\"id\":\"%s\",\"agent_id\":\"%s\",\"time\":\"%s\",\"policy_version\":\"v1\",\"stage\":\"request\",\"verdict\":\"%s\",\"monitor\":false,\"rule\":\"policy.lua:%d\",\"reason\":\"test\",\"detectors\":{%s},\"app\":{\"path\":\"/usr/bin/curl\",\"pid\":42},\"flow\":{\"id\":%d,\"source\":\"explicit\",\"host\":\"h%d.example\",\"dst_port\":443,\"method\":\"POST\",\"path\":\"/upload\"}}",
			 id, agent, tm, verdicts[i % 3], i, i % 2 ? "\"aws_key\":{\"count\":1,\"samples\":[\"AKIA…XY\"]}" : "",
			 i, i % 3);
	return line;
}

static char *batch(const char *agent, int from, int n)
{
	size_t cap = (size_t)n * 2048 + 1, len = 0;
	char *b = malloc(cap);
	b[0] = '\0';
	for (int i = from; i < from + n; i++) {
		char *l = event_line(agent, i);
		len += (size_t)snprintf(b + len, cap - len, "%s\n", l);
		free(l);
	}
	return b;
}

/* Events matching a query; all pages followed when limit is set. */
static int count_query(cons_t *c, const char *admin, const char *query)
{
	char path[2048], *out = NULL;
	snprintf(path, sizeof path, "/api/v1/events?limit=1000%s%s", query[0] ? "&" : "", query);
	int st = req(c, "GET", path, admin, NULL, NULL, NULL, 0, &out);
	ck_assert_msg(st == 200, "GET %s: %d %s", path, st, out);
	json_t *j = json_loads(out, 0, NULL);
	ck_assert_msg(j, "not JSON: %s", out);
	int n = (int)json_array_size(json_object_get(j, "events"));
	json_decref(j);
	free(out);
	return n;
}

static int64_t stat_count(json_t *stats, const char *key)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(stats, "counts"), i, o)
	{
		const char *k = json_string_value(json_object_get(o, "key"));
		if (k && strcmp(k, key) == 0)
			return json_integer_value(json_object_get(o, "count"));
	}
	return 0;
}

#define N_EVENTS 30

/* The whole functional path, on whichever database the console runs. */
static void functional_path(cons_t *c)
{
	char *admin = admin_token(c);
	/* enrollment: right and wrong secret */
	char *tok = enroll(c, AGENT_A);
	const char *bad = "{\"enroll_secret\":\"not-the-secret\",\"agent_id\":\"" AGENT_A "\",\"hostname\":\"x\",\"version\":\"1\"}";
	ck_assert_int_eq(req(c, "POST", "/api/v1/enroll", NULL, "application/json", NULL, bad, strlen(bad), NULL), 401);

	/* ingest, then the same batch again: counted as duplicates */
	char *b = batch(AGENT_A, 0, N_EVENTS), *out = NULL;
	ck_assert_int_eq(post_events(c, tok, b, &out), 200);
	ck_assert_msg(strstr(out, "\"accepted\":30") && strstr(out, "\"duplicates\":0"), "%s", out);
	free(out);
	ck_assert_int_eq(post_events(c, tok, b, &out), 200);
	ck_assert_msg(strstr(out, "\"accepted\":0") && strstr(out, "\"duplicates\":30"), "%s", out);
	free(out);
	free(b);
	/* overlapping batch: only the new ones stored */
	b = batch(AGENT_A, N_EVENTS - 5, 10);
	ck_assert_int_eq(post_events(c, tok, b, &out), 200);
	ck_assert_msg(strstr(out, "\"accepted\":5") && strstr(out, "\"duplicates\":5"), "%s", out);
	free(out);
	free(b);
	const int total = N_EVENTS + 5;
	ck_assert_int_eq(count_query(c, admin, ""), total);

	/* every filter */
	int blocks_aws = 0, blocks = 0, verdict_kind = 0, aws = 0, h1 = 0, curl = 0, app_sig = 0, drops = 0;
	for (int i = 0; i < total; i++) {
		if (i % 5 == 4) {
			drops++;
			continue;
		}
		if (i % 5 == 3) {
			app_sig++;
			continue;
		}
		verdict_kind++;
		curl++;
		blocks += i % 3 == 0;
		blocks_aws += i % 3 == 0 && i % 2 == 1;
		aws += i % 2 == 1;
		h1 += i % 3 == 1;
	}
	ck_assert_int_eq(count_query(c, admin, "verdict=block"), blocks);
	ck_assert_int_eq(count_query(c, admin, "verdict=bypass"), app_sig);
	ck_assert_int_eq(count_query(c, admin, "kind=verdict"), verdict_kind);
	ck_assert_int_eq(count_query(c, admin, "kind=spool_drop"), drops);
	ck_assert_int_eq(count_query(c, admin, "detector=aws_key"), aws);
	ck_assert_int_eq(count_query(c, admin, "host=h1.example"), h1);
	ck_assert_int_eq(count_query(c, admin, "host=bank.example"), app_sig);
	ck_assert_int_eq(count_query(c, admin, "app=%2Fusr%2Fbin%2Fcurl"), curl);
	ck_assert_int_eq(count_query(c, admin, "app=com.example.app"), app_sig);
	ck_assert_int_eq(count_query(c, admin, "agent=" AGENT_A), total);
	ck_assert_int_eq(count_query(c, admin, "agent=" AGENT_B), 0);
	ck_assert_int_eq(count_query(c, admin, "verdict=block&detector=aws_key&kind=verdict"), blocks_aws);
	/* events 0..34 are one minute apart from base: [5, 15) minutes */
	char q[256], t0[40], t1[40];
	time_t base = 1795000000;
	time_t a = base + 5 * 60, z = base + 15 * 60;
	struct tm g;
	strftime(t0, sizeof t0, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&a, &g));
	strftime(t1, sizeof t1, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&z, &g));
	snprintf(q, sizeof q, "since=%s&until=%s", t0, t1);
	ck_assert_int_eq(count_query(c, admin, q), 10);

	/* cursor pagination: newest first, every event exactly once */
	char path[512];
	snprintf(path, sizeof path, "/api/v1/events?limit=8");
	int seen = 0, pages = 0;
	char last_time[40] = "9999";
	bool ids[64] = {false};
	for (;;) {
		json_t *j = get_json(c, admin, path, 200);
		json_t *evs = json_object_get(j, "events");
		size_t i;
		json_t *e;
		json_array_foreach(evs, i, e)
		{
			const char *t = json_string_value(json_object_get(e, "time"));
			ck_assert_msg(strcmp(t, last_time) <= 0, "not newest first: %s after %s", t, last_time);
			snprintf(last_time, sizeof last_time, "%s", t);
			int n = atoi(json_string_value(json_object_get(e, "id")) + 24);
			ck_assert_msg(n >= 0 && n < 64 && !ids[n], "event %d twice", n);
			ids[n] = true;
			seen++;
		}
		pages++;
		json_t *cur = json_object_get(j, "next_cursor");
		if (json_is_null(cur)) {
			json_decref(j);
			break;
		}
		snprintf(path, sizeof path, "/api/v1/events?limit=8&cursor=%s", json_string_value(cur));
		json_decref(j);
		ck_assert(pages < 20);
	}
	ck_assert_int_eq(seen, total);
	ck_assert_int_eq(pages, (total + 7) / 8);

	/* one event by id, as stored; an unknown one is 404 */
	json_t *e = get_json(c, admin, "/api/v1/events/01900000-0000-7000-8000-000000000003", 200);
	ck_assert_str_eq(json_string_value(json_object_get(e, "event")), "flow");
	ck_assert_str_eq(json_string_value(json_object_get(e, "agent_id")), AGENT_A);
	json_decref(e);
	json_decref(get_json(c, admin, "/api/v1/events/01900000-0000-7000-8000-000000009999", 404));

	/* status, then agents shows last_seen and the status */
	const char *st = "{\"agent_id\":\"" AGENT_A "\",\"version\":\"1.2.3\",\"policy_version\":\"v1\","
			 "\"time\":\"2026-11-18T00:00:00.000Z\",\"counters\":{\"flows\":7},\"last_errors\":[]}";
	ck_assert_int_eq(req(c, "POST", "/api/v1/status", tok, "application/json", NULL, st, strlen(st), NULL), 204);
	json_t *ag = get_json(c, admin, "/api/v1/agents", 200);
	json_t *a0 = json_array_get(json_object_get(ag, "agents"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(a0, "agent_id")), AGENT_A);
	ck_assert_str_eq(json_string_value(json_object_get(a0, "hostname")), "host-a");
	ck_assert(json_is_string(json_object_get(a0, "last_seen")));
	ck_assert(json_is_string(json_object_get(a0, "enrolled_at")));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_object_get(a0, "status"), "counters"),
							    "flows")),
			 7);
	json_decref(ag);

	/* stats */
	json_t *s = get_json(c, admin, "/api/v1/stats?by=verdict", 200);
	ck_assert_int_eq(stat_count(s, "block"), blocks);
	ck_assert_int_eq(stat_count(s, "bypass"), app_sig);
	json_decref(s);
	s = get_json(c, admin, "/api/v1/stats?by=detector", 200);
	ck_assert_int_eq(stat_count(s, "aws_key"), aws);
	json_decref(s);
	s = get_json(c, admin, "/api/v1/stats?by=host", 200);
	ck_assert_int_eq(stat_count(s, "bank.example"), app_sig);
	json_decref(s);
	s = get_json(c, admin, "/api/v1/stats?by=app", 200);
	ck_assert_int_eq(stat_count(s, "/usr/bin/curl"), curl);
	json_decref(s);
	s = get_json(c, admin, "/api/v1/stats?by=time&bucket=hour", 200);
	json_t *counts = json_object_get(s, "counts");
	int64_t sum = 0;
	size_t i;
	json_t *o;
	const char *prev = "";
	json_array_foreach(counts, i, o)
	{
		const char *k = json_string_value(json_object_get(o, "key"));
		ck_assert_msg(strlen(k) == 24 && strcmp(k, prev) > 0 && strcmp(k + 13, ":00:00.000Z") == 0, "bucket %s", k);
		prev = k;
		sum += json_integer_value(json_object_get(o, "count"));
	}
	ck_assert_int_eq(sum, total);
	json_decref(s);
	json_decref(get_json(c, admin, "/api/v1/stats?by=nonsense", 400));
	s = get_json(c, admin, "/api/v1/stats?by=verdict&since=&until=", 200); /* empty = no filter */
	ck_assert_int_eq(stat_count(s, "block"), blocks);
	json_decref(s);
	/* re-enrolling replaces the token: the old one stops working */
	char *tok2 = enroll(c, AGENT_A);
	ck_assert_str_ne(tok, tok2);
	ck_assert_int_eq(req(c, "POST", "/api/v1/status", tok, "application/json", NULL, st, strlen(st), NULL), 401);
	ck_assert_int_eq(req(c, "POST", "/api/v1/status", tok2, "application/json", NULL, st, strlen(st), NULL), 204);
	ck_assert_int_eq(count_query(c, admin, ""), total);
	free(tok2);
	free(tok);
	free(admin);
}

START_TEST(sqlite_functional)
{
	cons_t c = cons_start(NULL);
	functional_path(&c);
	/* the generated files: key private, secret never needed here */
	struct stat st;
	char path[4200];
	snprintf(path, sizeof path, "%s/console.key", c.dir);
	ck_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	cons_stop(&c);
}
END_TEST

static char *urlencode(const char *s)
{
	char *o = malloc(strlen(s) * 3 + 1), *p = o;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.')
			*p++ = (char)ch;
		else
			p += sprintf(p, "%%%02X", ch);
	}
	*p = '\0';
	return o;
}

START_TEST(attacks)
{
	cons_t c = cons_start(NULL);
	char *admin = admin_token(&c);
	char *ta = enroll(&c, AGENT_A), *tb = enroll(&c, AGENT_B);
	char *b = batch(AGENT_A, 0, 10), *out = NULL;
	ck_assert_int_eq(post_events(&c, ta, b, NULL), 200);

	/* no token, a malformed one, an unknown one */
	ck_assert_int_eq(post_events(&c, NULL, b, NULL), 401);
	ck_assert_int_eq(req(&c, "GET", "/api/v1/events", NULL, NULL, NULL, NULL, 0, NULL), 401);
	ck_assert_int_eq(req(&c, "GET", "/api/v1/agents", "nothex", NULL, NULL, NULL, 0, NULL), 401);
	char unknown[65];
	memset(unknown, 'a', 64);
	unknown[64] = '\0';
	ck_assert_int_eq(req(&c, "GET", "/api/v1/agents", unknown, NULL, NULL, NULL, 0, NULL), 401);
	/* agent B posting agent A's events: 403, nothing of it stored */
	char *b2 = batch(AGENT_A, 100, 3);
	ck_assert_int_eq(post_events(&c, tb, b2, &out), 403);
	free(out);
	ck_assert_int_eq(count_query(&c, admin, ""), 10);
	/* status for another agent */
	const char *st = "{\"agent_id\":\"" AGENT_A "\",\"version\":\"1\"}";
	ck_assert_int_eq(req(&c, "POST", "/api/v1/status", tb, "application/json", NULL, st, strlen(st), NULL), 403);
	/* agent token on the admin API, admin token on the agent API */
	ck_assert_int_eq(req(&c, "GET", "/api/v1/events", ta, NULL, NULL, NULL, 0, NULL), 403);
	ck_assert_int_eq(req(&c, "GET", "/api/v1/agents", ta, NULL, NULL, NULL, 0, NULL), 403);
	ck_assert_int_eq(req(&c, "GET", "/api/v1/stats?by=verdict", ta, NULL, NULL, NULL, 0, NULL), 403);
	ck_assert_int_eq(post_events(&c, admin, b2, NULL), 403);
	free(b2);

	/* SQL injection in every filter: literals (no match) or a 400 */
	const char *inject[] = {"' OR '1'='1", "x'; DROP TABLE events; --", "\" OR 1=1 --", "1) OR (1=1",
				"%' UNION SELECT token_hash, 1, 1 FROM admin_tokens --"};
	const char *literal[] = {"verdict", "detector", "host", "app", "agent"};
	const char *strict[] = {"kind", "since", "until", "limit", "cursor"};
	for (size_t i = 0; i < sizeof inject / sizeof inject[0]; i++) {
		char *v = urlencode(inject[i]);
		char q[512], path[600];
		for (size_t k = 0; k < 5; k++) {
			snprintf(q, sizeof q, "%s=%s", literal[k], v);
			ck_assert_msg(count_query(&c, admin, q) == 0, "%s", q);
			snprintf(path, sizeof path, "/api/v1/stats?by=verdict&%s", q);
			json_t *s = get_json(&c, admin, path, 200);
			ck_assert_int_eq(json_array_size(json_object_get(s, "counts")), 0);
			json_decref(s);
		}
		for (size_t k = 0; k < 5; k++) {
			snprintf(path, sizeof path, "/api/v1/events?%s=%s", strict[k], v);
			ck_assert_int_eq(req(&c, "GET", path, admin, NULL, NULL, NULL, 0, NULL), 400);
		}
		snprintf(path, sizeof path, "/api/v1/events/%s", v);
		ck_assert_int_eq(req(&c, "GET", path, admin, NULL, NULL, NULL, 0, NULL), 404);
		free(v);
	}
	ck_assert_int_eq(req(&c, "GET", "/api/v1/events?bogus=1", admin, NULL, NULL, NULL, 0, NULL), 400);
	/* the database is intact */
	ck_assert_int_eq(count_query(&c, admin, ""), 10);
	json_t *ag = get_json(&c, admin, "/api/v1/agents", 200);
	ck_assert_int_eq(json_array_size(json_object_get(ag, "agents")), 2);
	json_decref(ag);

	/* a malformed line: 400 naming it, nothing of the batch stored */
	char *b3 = batch(AGENT_A, 200, 5);
	char *third = strchr(strchr(b3, '\n') + 1, '\n') + 1;
	third[1] = '!'; /* line 3 is no longer JSON */
	ck_assert_int_eq(post_events(&c, ta, b3, &out), 400);
	ck_assert_msg(strstr(out, "line 3"), "%s", out);
	free(out);
	free(b3);
	/* an event the schema refuses (unknown verdict) on line 2 */
	char *b4 = batch(AGENT_A, 300, 3);
	char *v = strstr(strchr(b4, '\n'), "\"verdict\":\"pass\"");
	ck_assert(v);
	memcpy(v + 11, "PASS", 4);
	ck_assert_int_eq(post_events(&c, ta, b4, &out), 400);
	ck_assert_msg(strstr(out, "line 2"), "%s", out);
	free(out);
	free(b4);
	ck_assert_int_eq(count_query(&c, admin, ""), 10);

	/* too big on the wire (incompressible 9 MiB), a gzip bomb, too many events */
	size_t big = 9u << 20;
	char *noise = malloc(big);
	for (size_t i = 0; i < big; i++)
		noise[i] = (char)((i * 2654435761u) >> 13);
	ck_assert_int_eq(req(&c, "POST", "/api/v1/events", ta, "application/x-ndjson", "gzip", noise, big, NULL), 413);
	free(noise);
	size_t bomb_len = 80u << 20, zlen;
	char *zeros = calloc(1, bomb_len);
	char *bomb = gz(zeros, bomb_len, &zlen);
	free(zeros);
	ck_assert_msg(zlen < (1u << 20), "bomb is %zu bytes", zlen);
	ck_assert_int_eq(req(&c, "POST", "/api/v1/events", ta, "application/x-ndjson", "gzip", bomb, zlen, &out), 413);
	ck_assert_msg(strstr(out, "64 MiB"), "%s", out);
	free(out);
	free(bomb);
	char *many = batch(AGENT_A, 1000, 10001);
	ck_assert_int_eq(post_events(&c, ta, many, &out), 413);
	free(out);
	free(many);
	ck_assert_int_eq(req(&c, "POST", "/api/v1/events", ta, "text/plain", NULL, b, strlen(b), NULL), 415);
	ck_assert_int_eq(req(&c, "DELETE", "/api/v1/events", admin, NULL, NULL, NULL, 0, NULL), 405);
	ck_assert_int_eq(req(&c, "GET", "/api/v1/nope", admin, NULL, NULL, NULL, 0, NULL), 404);
	/* outside /api/ is the web UI (not installed here: test_console_ui.c) */
	ck_assert_int_eq(req(&c, "GET", "/nope", admin, NULL, NULL, NULL, 0, NULL), 503);
	ck_assert_int_eq(count_query(&c, admin, ""), 10);

	/* a head past the 16 KiB limit: 431, connection closed */
	{
		th_client *hc = th_client_connect_plain(c.port);
		th_client_start_tls(hc, NULL, NULL, NULL);
		size_t hl = 20000;
		char *head = malloc(hl + 128);
		int n = snprintf(head, 128, "GET /api/v1/agents HTTP/1.1\r\nHost: x\r\nX-Big: ");
		memset(head + n, 'a', hl);
		memcpy(head + n + hl, "\r\n\r\n", 5);
		th_client_send(hc, head, (size_t)n + hl + 4);
		size_t rl;
		char *r = th_client_recv_until_close(hc, &rl, 5000);
		ck_assert_msg(th_client_eof(hc) && th_client_status(r) == 431, "oversized head: %s", r);
		free(r);
		free(head);
		th_client_close(hc);
	}
	/* Slowloris: a head that never ends, a body that never ends */
	const char *slow[] = {"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: app",
			      "POST /api/v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"agent"};
	for (int i = 0; i < 2; i++) {
		th_client *cl = th_client_connect_plain(c.port);
		th_client_start_tls(cl, NULL, NULL, NULL);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ck_assert_int_eq(th_client_send(cl, slow[i], strlen(slow[i])), 0);
		size_t len;
		char *got = th_client_recv_until_close(cl, &len, 5000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1000 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		ck_assert_msg(th_client_eof(cl), "slow request %d: connection still open after 5 s", i);
		ck_assert_msg(ms < 3000, "slow request %d: closed after %.0f ms (deadline 1000)", i, ms);
		ck_assert_msg(th_client_status(got) == 408, "slow request %d: %s", i, got);
		free(got);
		th_client_close(cl);
	}
	/* keep-alive: idle longer than the request deadline is fine, then a
	 * head trickled a byte at a time is cut at the deadline all the same */
	{
		th_client *kc = th_client_connect_plain(c.port);
		th_client_start_tls(kc, NULL, NULL, NULL);
		const char *get = "GET /api/v1/agents HTTP/1.1\r\nHost: x\r\n\r\n";
		ck_assert_int_eq(th_client_send(kc, get, strlen(get)), 0);
		size_t rl;
		char *r1 = th_client_recv_response(kc, &rl, 5000);
		ck_assert_int_eq(th_client_status(r1), 401);
		free(r1);
		usleep(1500 * 1000);
		ck_assert_int_eq(th_client_send(kc, get, strlen(get)), 0);
		r1 = th_client_recv_response(kc, &rl, 5000);
		ck_assert_msg(r1 && th_client_status(r1) == 401, "keep-alive connection closed while idle");
		free(r1);
		const char *trickle = "POST /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc";
		/* 18 bytes over 1.8 s: if activity extended the deadline the 408
		 * would come 1 s after the last byte (2.8 s); it must be there
		 * already, sent at 1 s */
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (size_t i = 0; i < 18; i++) {
			if (th_client_send(kc, trickle + i, 1) != 0)
				break;
			usleep(100 * 1000);
		}
		size_t len2;
		char *got2 = th_client_recv_until_close(kc, &len2, 3000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1000 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		ck_assert_msg(th_client_eof(kc) && th_client_status(got2) == 408, "trickled head: %s", got2);
		ck_assert_msg(ms < 2500, "trickled head answered after %.0f ms: activity extended the deadline", ms);
		free(got2);
		th_client_close(kc);
	}
	/* and a connection that never even handshakes */
	th_client *cl = th_client_connect_plain(c.port);
	size_t len;
	char *got = th_client_recv_until_close(cl, &len, 5000);
	ck_assert_msg(th_client_eof(cl), "a silent connection is still open after 5 s");
	free(got);
	th_client_close(cl);

	free(b);
	free(ta);
	free(tb);
	free(admin);
	cons_stop(&c);
}
END_TEST

START_TEST(cli)
{
	const char *const helps[][4] = {{"--help"},	     {"run", "--help"},		    {"admin", "--help"},
					{"admin", "token", "--help"}, {"admin", "token", "create", "--help"}};
	for (int i = 0; i < 5; i++) {
		const char *argv[6] = {dlp_console_bin()};
		for (int k = 0; k < 4 && helps[i][k]; k++)
			argv[k + 1] = helps[i][k];
		char *out = NULL;
		ck_assert_int_eq(th_run((char *const *)argv, NULL, 0, &out, NULL, NULL, 10000), 0);
		ck_assert_msg(strstr(out, "usage:"), "%s", out);
		free(out);
	}
	char *dir = th_path("clistate");
	char *nodir = th_path("never-made");
	const char *const bad[][12] = {
		{"run", "--state-dir", dir, NULL},
		{"run", "--listen", "127.0.0.1:1", NULL},
		{"run", "--listen", "127.0.0.1:1", "--state-dir", dir, "--bogus", "1", NULL},
		{"run", "--listen", "nonsense", "--state-dir", dir, NULL},
		{"run", "--listen", "127.0.0.1:1", "--state-dir", dir, "--db", "mysql://x", NULL},
		{"run", "--listen", "127.0.0.1:1", "--state-dir", dir, "--tls-cert", "/nonexistent.pem", NULL},
		{"run", "--listen", "127.0.0.1:1", "--state-dir", dir, "--request-timeout-ms", "0", NULL},
		{"admin", "token", "create", NULL},
		{"admin", "token", "create", "--state-dir", nodir, NULL},
	};
	const char *want[] = {"--listen", "--state-dir", "--bogus", "--listen", "--db", "--tls-key", "--request-timeout-ms",
			      "--state-dir", "does not exist"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *argv[14] = {dlp_console_bin()};
		for (int k = 0; bad[i][k]; k++)
			argv[k + 1] = bad[i][k];
		char *err = NULL;
		int rc = th_run((char *const *)argv, NULL, 0, NULL, NULL, &err, 10000);
		ck_assert_msg(rc == 2, "case %zu: exit %d: %s", i, rc, err);
		ck_assert_msg(strstr(err, want[i]) && strncmp(err, "dlpgate-console: ", 17) == 0, "case %zu: %s", i, err);
		free(err);
	}
	ck_assert_msg(access(nodir, F_OK) != 0, "admin token create made the state dir it was pointed at");

	/* init (what the package's postinst runs): makes the key, the
	 * certificate and the enroll secret, private, and never replaces them */
	char *idir = th_path("init-state");
	const char *init[] = {dlp_console_bin(), "init", "--state-dir", idir, NULL};
	const char *names[] = {"console.key", "console.pem", "enroll-secret"};
	const int modes[] = {0600, 0644, 0600};
	char *first[3];
	for (int round = 0; round < 2; round++) {
		char *err = NULL;
		int rc = th_run((char *const *)init, NULL, 0, NULL, NULL, &err, 10000);
		ck_assert_msg(rc == 0, "init: exit %d: %s", rc, err);
		free(err);
		for (int i = 0; i < 3; i++) {
			char p[700];
			snprintf(p, sizeof p, "%s/%s", idir, names[i]);
			struct stat st;
			ck_assert_msg(stat(p, &st) == 0 && (st.st_mode & 0777) == (unsigned)modes[i], "%s", p);
			char *data = th_read_file(p, NULL);
			if (!round)
				first[i] = data;
			else {
				ck_assert_msg(!strcmp(first[i], data), "a second init replaced %s", names[i]);
				free(data), free(first[i]);
			}
		}
	}
	free(idir);
	free(dir), free(nodir);
}
END_TEST

/* Defaults made on first run, and the connection limit. */
START_TEST(first_run_and_limits)
{
	cons_t c = cons_start_args(NULL, false, (const char *const[]){"--max-connections", "2", NULL});
	/* the enroll secret was generated, private, and only its path printed */
	char path[4200];
	snprintf(path, sizeof path, "%s/enroll-secret", c.dir);
	struct stat st;
	ck_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* so are the database and the TLS key */
	char other[4200];
	snprintf(other, sizeof other, "%s/console.db", c.dir);
	ck_assert_msg(stat(other, &st) == 0 && (st.st_mode & 0777) == 0600, "%s mode %o", other, st.st_mode & 0777);
	snprintf(other, sizeof other, "%s/console.key", c.dir);
	ck_assert(stat(other, &st) == 0 && (st.st_mode & 0777) == 0600);
	char *secret = th_read_file(path, NULL);
	secret[strcspn(secret, "\n")] = '\0';
	ck_assert_int_eq(strlen(secret), 64);
	char *log = th_log(&c.proc);
	ck_assert_msg(strstr(log, path) && !strstr(log, secret), "%s", log);
	free(log);
	char body[512];
	snprintf(body, sizeof body, "{\"enroll_secret\":\"%s\",\"agent_id\":\"" AGENT_A "\",\"hostname\":\"h\",\"version\":\"1\"}",
		 secret);
	ck_assert_int_eq(req(&c, "POST", "/api/v1/enroll", NULL, "application/json", NULL, body, strlen(body), NULL), 200);
	free(secret);
	/* two connections held open (no handshake yet: the 1000 ms deadline
	 * holds them); a third is closed at once, long before that */
	th_client *a = th_client_connect_plain(c.port), *b = th_client_connect_plain(c.port);
	th_client *third = th_client_connect_plain(c.port);
	size_t len;
	char *got = th_client_recv_until_close(third, &len, 500);
	ck_assert_msg(th_client_eof(third) && len == 0, "a connection past --max-connections was served");
	free(got);
	th_client_close(third);
	th_client_close(a);
	th_client_close(b);
	/* once they are gone (the console sees them close), new ones are served */
	char url[128];
	snprintf(url, sizeof url, "https://127.0.0.1:%d/api/v1/agents", c.port);
	int rc = -1;
	for (int i = 0; i < 300 && rc != 0; i++) {
		rc = th_curl((const char *const[]){"--cacert", c.pem, "-o", "/dev/null", url, NULL}, NULL, NULL, NULL);
		if (rc)
			usleep(10000);
	}
	ck_assert_msg(rc == 0, "no connection served after the held ones closed: curl %d", rc);
	cons_stop(&c);
}
END_TEST

/* ---- PostgreSQL ---- */

START_TEST(postgresql_functional)
{
	th_postgres pg = th_postgres_start();
	const char *url = pg.url;

	cons_t c = cons_start(url);
	functional_path(&c);
	/* an injection attempt reaches PostgreSQL only as a parameter */
	char *admin = admin_token(&c);
	ck_assert_int_eq(count_query(&c, admin, "host=x%27%3B%20DROP%20TABLE%20events%3B%20--"), 0);
	ck_assert_int_eq(count_query(&c, admin, ""), N_EVENTS + 5);
	free(admin);
	cons_stop(&c);
	/* a second start finds the schema migrated and the data there */
	c = cons_start(url);
	admin = admin_token(&c);
	ck_assert_int_eq(count_query(&c, admin, ""), N_EVENTS + 5);
	free(admin);
	cons_stop(&c);
	th_postgres_stop(&pg);
}
END_TEST

Suite *console_suite(void)
{
	Suite *s = suite_create("console");
	TCase *t = tcase_create("console");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, cli);
	tcase_add_test(t, sqlite_functional);
	tcase_add_test(t, attacks);
	tcase_add_test(t, first_run_and_limits);
	tcase_add_test(t, postgresql_functional);
	suite_add_tcase(s, t);
	return s;
}
