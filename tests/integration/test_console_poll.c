/*
 * The policy long-poll (GET /api/v1/policy) against real console processes
 * over real TLS: answers and ETags, held polls answered 304 when their wait
 * ends and 200 soon after an activation, label and percent targeting,
 * shadow offers, the hold limit, a graceful stop, and two consoles on one
 * real PostgreSQL waking each other's held polls.
 *
 * Agents enroll through the API. Rollouts are written the way the store
 * writes them (rows, the generation bump and, on PostgreSQL, the NOTIFY in
 * one transaction) with the sqlite3 and psql clients: the activation CLI
 * and admin API are built beside this suite, and the test switches to them
 * once they exist. Bounds on time are generous ("soon", not "fast"): the
 * latency itself is measured by tests/bench/policy_poll.sh.
 */
#include "dlp.h"
#include "core/bytebuf.h"
#include "suites.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SECRET "poll-test-enroll-secret-0123456789"

typedef struct {
	th_proc proc;
	int port;
	char *dir, *pem;
	const char *db; /* NULL: SQLite in dir */
} pcons_t;

static pcons_t console_up(const char *db, const char *const extra[])
{
	static int n;
	pcons_t c = {.db = db};
	char name[64], listen[64], logname[80];
	snprintf(name, sizeof name, "pollconsole%d", n++);
	c.dir = th_path(name);
	c.port = th_free_port();
	snprintf(listen, sizeof listen, "127.0.0.1:%d", c.port);
	snprintf(logname, sizeof logname, "%s.log", name);
	const char *argv[24] = {dlp_console_bin(), "run",   "--listen",	      listen, "--state-dir",
				c.dir,		   "--enroll-secret", SECRET, "--request-timeout-ms", "1000",
				"--log-level",	   "info"};
	int a = 12;
	if (db) {
		argv[a++] = "--db";
		argv[a++] = db;
	}
	for (int i = 0; extra && extra[i] && a < 22; i++)
		argv[a++] = extra[i];
	c.proc = th_spawn((char *const *)argv, logname);
	if (!th_wait_port(c.port, 15000))
		th_fail("console did not listen on %d: %s", c.port, th_log(&c.proc));
	size_t len = strlen(c.dir) + 16;
	c.pem = malloc(len);
	snprintf(c.pem, len, "%s/console.pem", c.dir);
	return c;
}

static void console_down(pcons_t *c)
{
	kill(c->proc.pid, SIGTERM);
	int rc = th_wait(&c->proc, 10000);
	char *log = th_log(&c->proc);
	ck_assert_msg(rc == 0, "console exit %d: %s", rc, log);
	ck_assert_msg(!strstr(log, "Bearer"), "a token is in the log");
	free(log);
	free(c->dir);
	free(c->pem);
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1000 + (double)t.tv_nsec / 1e6;
}

/* ---- the agent's side: raw HTTPS requests ---- */

static th_client *dial(const pcons_t *c)
{
	th_client *cl = th_client_connect_plain(c->port);
	th_client_start_tls(cl, c->pem, NULL, NULL);
	return cl;
}

static char *roundtrip(const pcons_t *c, const char *request, int timeout_ms)
{
	th_client *cl = dial(c);
	ck_assert_int_eq(th_client_send(cl, request, strlen(request)), 0);
	size_t len;
	char *r = th_client_recv_response(cl, &len, timeout_ms);
	ck_assert_msg(r, "the console closed without answering: %s", request);
	th_client_close(cl);
	return r;
}

static char *enroll(const pcons_t *c, const char *agent)
{
	char body[256], request[512];
	int n = snprintf(body, sizeof body,
			 "{\"enroll_secret\":\"" SECRET "\",\"agent_id\":\"%s\",\"hostname\":\"h\",\"version\":\"1\"}", agent);
	snprintf(request, sizeof request,
		 "POST /api/v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		 n, body);
	char *r = roundtrip(c, request, 10000);
	ck_assert_msg(th_client_status(r) == 200, "enroll: %s", r);
	json_t *j = json_loads(th_http_body(r), 0, NULL);
	char *tok = strdup(json_string_value(json_object_get(j, "token")));
	json_decref(j);
	free(r);
	return tok;
}

/* GET /api/v1/policy as an agent; inm NULL sends no If-None-Match. */
static void poll_send(th_client *cl, const char *token, const char *inm, int wait_s)
{
	char request[512], auth[100] = "", cond[128] = "";
	if (token)
		snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
	if (inm)
		snprintf(cond, sizeof cond, "If-None-Match: %s\r\n", inm);
	snprintf(request, sizeof request, "GET /api/v1/policy?wait=%d HTTP/1.1\r\nHost: x\r\n%s%s\r\n", wait_s, auth, cond);
	ck_assert_int_eq(th_client_send(cl, request, strlen(request)), 0);
}

typedef struct {
	int status;
	char *etag;
	json_t *body; /* 200 only */
	double ms;    /* from the send to the answer */
} answer_t;

static answer_t poll_recv(th_client *cl, double sent, int timeout_ms)
{
	size_t len;
	char *r = th_client_recv_response(cl, &len, timeout_ms);
	ck_assert_msg(r, "the console closed a poll without answering");
	answer_t a = {th_client_status(r), th_http_header(r, "etag"), NULL, now_ms() - sent};
	if (a.status == 200) {
		a.body = json_loads(th_http_body(r), 0, NULL);
		ck_assert_msg(json_is_object(a.body), "a 200 that is not a JSON object: %s", r);
	}
	free(r);
	return a;
}

static answer_t poll_once(const pcons_t *c, const char *token, const char *inm, int wait_s)
{
	th_client *cl = dial(c);
	double t = now_ms();
	poll_send(cl, token, inm, wait_s);
	answer_t a = poll_recv(cl, t, wait_s * 1000 + 10000);
	th_client_close(cl);
	return a;
}

static void answer_free(answer_t *a)
{
	free(a->etag);
	json_decref(a->body);
}

static int64_t offered(const answer_t *a, const char *kind)
{
	return json_integer_value(json_object_get(json_object_get(a->body, kind), "version"));
}

/* ---- writing rollouts as the store does ---- */

static void sql(const pcons_t *c, const char *statements)
{
	char *out = NULL, *err = NULL;
	int rc;
	if (c->db) {
		const char *argv[] = {"psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", c->db, "-c", statements, NULL};
		rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 20000);
	} else {
		char path[4200];
		snprintf(path, sizeof path, "%s/console.db", c->dir);
		const char *argv[] = {"sqlite3", "-cmd", ".timeout 10000", path, statements, NULL};
		rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 20000);
	}
	ck_assert_msg(rc == 0, "%s: exit %d: %s %s", statements, rc, out, err);
	free(out);
	free(err);
}

/* The document stored for version v (a stand-in for a signed bundle: the
 * console passes it through as the JSON object it is). */
static void doc_of(int64_t v, char *out, size_t n)
{
	snprintf(out, n, "{\"manifest\":{\"policy_version\":%lld,\"entry\":\"policy.lua\"},\"signatures\":[\"sig-%lld\"]}",
		 (long long)v, (long long)v);
}

static void bump(bytebuf_t *b, const pcons_t *c)
{
	bytebuf_append_str(b, "UPDATE policy_generation SET gen = gen + 1 WHERE id = 1;");
	if (c->db)
		bytebuf_append_str(b, "SELECT pg_notify('dlpgate_policy', '');");
	bytebuf_append_str(b, "COMMIT;");
	bytebuf_cstr(b);
}

/* Stores version v (once) and starts a rollout of it. */
static void rollout(const pcons_t *c, int64_t v, const char *kind, const char *labels, int percent, int sample)
{
	char doc[256];
	doc_of(v, doc, sizeof doc);
	bytebuf_t b;
	bytebuf_init(&b, 0);
	bytebuf_appendf(&b,
			"BEGIN; INSERT INTO policy_versions (version, sha256, created_at, author, message, key_id, "
			"tests_passed, tests_failed, content_of, bundle) SELECT %lld, 'sha', '2026-12-04T00:00:00Z', "
			"'test', 'm', 'k', 0, 0, NULL, '%s' WHERE NOT EXISTS (SELECT 1 FROM policy_versions WHERE "
			"version = %lld);"
			"INSERT INTO rollouts (version, kind, labels, percent, sample_percent, state, created_at, "
			"created_by) VALUES (%lld, '%s', '%s', %d, %d, 'running', '2026-12-04T00:00:00Z', 'test');",
			(long long)v, doc, (long long)v, (long long)v, kind, labels, percent, sample);
	bump(&b, c);
	sql(c, b.data);
	bytebuf_free(&b);
}

static void set_labels(const pcons_t *c, const char *agent, const char *labels)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
	bytebuf_appendf(&b, "BEGIN; UPDATE agents SET labels = '%s' WHERE agent_id = '%s';", labels, agent);
	bump(&b, c);
	sql(c, b.data);
	bytebuf_free(&b);
}

/* The contract's bucket: the first 32 bits of SHA-256(agent_id) mod 100. */
static unsigned bucket(const char *agent)
{
	char hex[65];
	th_sha256_hex(agent, strlen(agent), hex);
	hex[8] = '\0';
	return (unsigned)(strtoul(hex, NULL, 16) % 100);
}

/* Two agent ids whose buckets differ (lo < hi). */
static void two_buckets(char lo[37], char hi[37])
{
	for (int i = 0;; i++) {
		snprintf(lo, 37, "aaaaaaaa-0000-4000-8000-%012d", i);
		snprintf(hi, 37, "bbbbbbbb-0000-4000-8000-%012d", i);
		if (bucket(lo) + 10 < bucket(hi))
			return;
	}
}

/* ---- tests ---- */

START_TEST(answers_and_etags)
{
	pcons_t c = console_up(NULL, NULL);
	char *tok = enroll(&c, "aaaaaaaa-0000-4000-8000-000000000001");
	/* nothing targets anyone: 200 with nulls, ETag "0.0" */
	answer_t a = poll_once(&c, tok, NULL, 5);
	ck_assert_int_eq(a.status, 200);
	ck_assert_str_eq(a.etag, "\"0.0\"");
	ck_assert(json_is_null(json_object_get(a.body, "active")) && json_is_null(json_object_get(a.body, "shadow")));
	answer_free(&a);
	/* the agent has that: held for the wait, then 304 with the ETag */
	a = poll_once(&c, tok, "\"0.0\"", 1);
	ck_assert_int_eq(a.status, 304);
	ck_assert_str_eq(a.etag, "\"0.0\"");
	ck_assert_msg(a.ms >= 900 && a.ms < 5000, "wait=1 answered after %.0f ms", a.ms);
	answer_free(&a);
	/* held past the request timeout (1000 ms): a held poll has no such deadline */
	a = poll_once(&c, tok, "\"0.0\"", 3);
	ck_assert_msg(a.status == 304 && a.ms >= 2900, "wait=3: %d after %.0f ms", a.status, a.ms);
	answer_free(&a);

	/* version 1 for everyone: a poll naming 0.0 gets it at once, the
	 * document spliced in as stored */
	rollout(&c, 1, "active", "{}", 100, 100);
	a = poll_once(&c, tok, "\"0.0\"", 30);
	ck_assert_msg(a.status == 200 && a.ms < 5000, "%d after %.0f ms", a.status, a.ms);
	ck_assert_str_eq(a.etag, "\"1.0\"");
	ck_assert_int_eq(offered(&a, "active"), 1);
	char doc[256];
	doc_of(1, doc, sizeof doc);
	json_t *want = json_loads(doc, 0, NULL);
	ck_assert_msg(json_equal(json_object_get(json_object_get(a.body, "active"), "bundle"), want),
		      "the bundle is not the stored document");
	json_decref(want);
	answer_free(&a);
	/* a list of tags: the agent refused 1 (runs 0): still nothing new */
	a = poll_once(&c, tok, "\"0.0\", \"1.0\"", 1);
	ck_assert_int_eq(a.status, 304);
	ck_assert_str_eq(a.etag, "\"1.0\"");
	answer_free(&a);

	/* a held poll is answered soon after an activation */
	th_client *cl = dial(&c);
	double t = now_ms();
	poll_send(cl, tok, "\"1.0\"", 60);
	usleep(300 * 1000);
	double activated = now_ms();
	rollout(&c, 2, "active", "{}", 100, 100);
	a = poll_recv(cl, t, 10000);
	double after = now_ms() - activated;
	ck_assert_msg(a.status == 200 && offered(&a, "active") == 2, "held poll: %d", a.status);
	ck_assert_msg(after < 2500, "answered %.0f ms after the activation", after);
	answer_free(&a);
	/* keep-alive: the same connection polls again and is held */
	t = now_ms();
	poll_send(cl, tok, "\"2.0\"", 1);
	a = poll_recv(cl, t, 10000);
	ck_assert_msg(a.status == 304 && a.ms >= 900, "second poll on the connection: %d", a.status);
	answer_free(&a);
	th_client_close(cl);

	/* a shadow beside it */
	rollout(&c, 3, "shadow", "{}", 100, 25);
	a = poll_once(&c, tok, "\"2.0\"", 30);
	ck_assert_int_eq(a.status, 200);
	ck_assert_str_eq(a.etag, "\"2.3\"");
	ck_assert_int_eq(offered(&a, "shadow"), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a.body, "shadow"), "sample_percent")), 25);
	ck_assert_int_eq(offered(&a, "active"), 2);
	answer_free(&a);
	free(tok);
	console_down(&c);
}
END_TEST

START_TEST(refusals)
{
	pcons_t c = console_up(NULL, (const char *const[]){"--max-held-polls", "2", NULL});
	char *tok = enroll(&c, "aaaaaaaa-0000-4000-8000-000000000002");
	/* no token, a malformed one, an unknown one */
	answer_t a = poll_once(&c, NULL, NULL, 1);
	ck_assert_int_eq(a.status, 401);
	answer_free(&a);
	char unknown[65];
	memset(unknown, 'a', 64);
	unknown[64] = '\0';
	a = poll_once(&c, unknown, NULL, 1);
	ck_assert_int_eq(a.status, 401);
	answer_free(&a);
	char *r = roundtrip(&c, "GET /api/v1/policy HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\n\r\n", 5000);
	ck_assert_int_eq(th_client_status(r), 401);
	free(r);
	/* an admin token is not an agent's */
	const char *argv[] = {dlp_console_bin(), "admin", "token", "create", "--state-dir", c.dir, NULL};
	char *admin = NULL;
	ck_assert_int_eq(th_run((char *const *)argv, NULL, 0, &admin, NULL, NULL, 20000), 0);
	admin[strcspn(admin, "\n")] = '\0';
	a = poll_once(&c, admin, NULL, 1);
	ck_assert_int_eq(a.status, 403);
	answer_free(&a);
	free(admin);
	/* wait out of range, unknown parameter, wrong method */
	a = poll_once(&c, tok, NULL, 301);
	ck_assert_int_eq(a.status, 400);
	answer_free(&a);
	a = poll_once(&c, tok, NULL, 0);
	ck_assert_int_eq(a.status, 400);
	answer_free(&a);
	char req[256];
	snprintf(req, sizeof req, "POST /api/v1/policy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n", tok);
	r = roundtrip(&c, req, 5000);
	ck_assert_int_eq(th_client_status(r), 405);
	free(r);

	/* the hold limit: two held, the third is told to come back later */
	th_client *h1 = dial(&c), *h2 = dial(&c);
	double t = now_ms();
	poll_send(h1, tok, "\"0.0\"", 20);
	poll_send(h2, tok, "\"0.0\"", 20);
	usleep(500 * 1000); /* both parked (each one job, then held) */
	th_client *h3 = dial(&c);
	poll_send(h3, tok, "\"0.0\"", 20);
	size_t len;
	r = th_client_recv_response(h3, &len, 5000);
	ck_assert_msg(r && th_client_status(r) == 503, "third held poll: %s", r ? r : "(closed)");
	char *retry = th_http_header(r, "retry-after");
	ck_assert_msg(retry && atoi(retry) > 0, "503 without Retry-After: %s", r);
	free(retry);
	free(r);
	th_client_close(h3);

	/* a graceful stop answers the held polls 304 at once */
	kill(c.proc.pid, SIGTERM);
	answer_t s1 = poll_recv(h1, t, 5000), s2 = poll_recv(h2, t, 5000);
	ck_assert_msg(s1.status == 304 && s2.status == 304, "at stop: %d %d", s1.status, s2.status);
	ck_assert_msg(s1.ms < 3000 && s2.ms < 3000, "answered %.0f / %.0f ms after the hold began (wait 20 s)", s1.ms,
		      s2.ms);
	ck_assert_str_eq(s1.etag, "\"0.0\"");
	answer_free(&s1);
	answer_free(&s2);
	th_client_close(h1);
	th_client_close(h2);
	free(tok);
	console_down(&c);
}
END_TEST

START_TEST(targeting)
{
	pcons_t c = console_up(NULL, NULL);
	char lo[37], hi[37];
	two_buckets(lo, hi);
	char *tlo = enroll(&c, lo), *thi = enroll(&c, hi);
	rollout(&c, 1, "active", "{}", 100, 100);
	/* hi becomes a canary; v2 for canaries only */
	set_labels(&c, hi, "{\"ring\":\"canary\"}");
	th_client *clo = dial(&c), *chi = dial(&c);
	double t = now_ms();
	poll_send(clo, tlo, "\"1.0\"", 3);
	poll_send(chi, thi, "\"1.0\"", 30);
	usleep(300 * 1000);
	rollout(&c, 2, "active", "{\"ring\":\"canary\"}", 100, 100);
	answer_t ahi = poll_recv(chi, t, 10000), alo = poll_recv(clo, t, 10000);
	ck_assert_msg(ahi.status == 200 && offered(&ahi, "active") == 2, "canary: %d", ahi.status);
	ck_assert_msg(ahi.ms < 3000, "canary answered after %.0f ms", ahi.ms);
	ck_assert_msg(alo.status == 304 && alo.ms >= 2900, "not a canary: %d after %.0f ms", alo.status, alo.ms);
	ck_assert_str_eq(alo.etag, "\"1.0\"");
	answer_free(&ahi);
	answer_free(&alo);

	/* v3 for a percentage that holds lo's bucket and not hi's */
	int percent = (int)bucket(lo) + 1;
	t = now_ms();
	poll_send(clo, tlo, "\"1.0\"", 30);
	poll_send(chi, thi, "\"2.0\"", 3);
	usleep(300 * 1000);
	rollout(&c, 3, "active", "{}", percent, 100);
	alo = poll_recv(clo, t, 10000);
	ahi = poll_recv(chi, t, 10000);
	ck_assert_msg(alo.status == 200 && offered(&alo, "active") == 3, "in the %d%%: %d", percent, alo.status);
	ck_assert_msg(ahi.status == 304, "outside the %d%% (bucket %u): %d", percent, bucket(hi), ahi.status);
	ck_assert_str_eq(ahi.etag, "\"2.0\"");
	answer_free(&ahi);
	answer_free(&alo);

	/* a label change alone wakes the poll whose offer it changes */
	t = now_ms();
	poll_send(chi, thi, "\"2.0\"", 30);
	usleep(300 * 1000);
	set_labels(&c, hi, "{}");
	ahi = poll_recv(chi, t, 10000);
	ck_assert_msg(ahi.status == 200 && offered(&ahi, "active") == 1, "canary label removed: %d", ahi.status);
	answer_free(&ahi);
	th_client_close(clo);
	th_client_close(chi);
	free(tlo);
	free(thi);
	console_down(&c);
}
END_TEST

/* Two consoles, one PostgreSQL: an activation wakes the polls held on both. */
START_TEST(two_consoles_postgresql)
{
	th_postgres pg = th_postgres_start();
	pcons_t a = console_up(pg.url, NULL), b = console_up(pg.url, NULL);
	char *tok = enroll(&a, "cccccccc-0000-4000-8000-000000000003");
	/* the token works on either console: one database */
	answer_t r = poll_once(&b, tok, NULL, 1);
	ck_assert_int_eq(r.status, 200);
	answer_free(&r);
	th_client *on_a = dial(&a), *on_b = dial(&b);
	double t = now_ms();
	poll_send(on_a, tok, "\"0.0\"", 60);
	poll_send(on_b, tok, "\"0.0\"", 60);
	usleep(300 * 1000);
	double activated = now_ms();
	rollout(&a, 7, "active", "{}", 100, 100);
	answer_t ra = poll_recv(on_a, t, 10000), rb = poll_recv(on_b, t, 10000);
	double after = now_ms() - activated;
	ck_assert_msg(ra.status == 200 && offered(&ra, "active") == 7, "console A: %d", ra.status);
	ck_assert_msg(rb.status == 200 && offered(&rb, "active") == 7, "console B: %d", rb.status);
	ck_assert_msg(after < 2500, "both answered %.0f ms after the activation", after);
	answer_free(&ra);
	answer_free(&rb);
	/* B was woken by the NOTIFY (its LISTEN connection is up) */
	char *log = th_log(&b.proc);
	ck_assert_msg(!strstr(log, "LISTEN connection lost"), "%s", log);
	free(log);
	th_client_close(on_a);
	th_client_close(on_b);
	free(tok);
	console_down(&a);
	console_down(&b);
	th_postgres_stop(&pg);
}
END_TEST

Suite *console_poll_suite(void)
{
	Suite *s = suite_create("console_poll");
	TCase *t = tcase_create("console_poll");
	tcase_set_timeout(t, 90);
	tcase_add_test(t, answers_and_etags);
	tcase_add_test(t, refusals);
	tcase_add_test(t, targeting);
	tcase_add_test(t, two_consoles_postgresql);
	suite_add_tcase(s, t);
	return s;
}
