/*
 * The policy long-poll (GET /api/v1/policy) against real console processes
 * over real TLS: answers and ETags, held polls answered 304 when their wait
 * ends and 200 soon after an activation, label and percent targeting,
 * shadow offers, the hold limit, a graceful stop, and two consoles on one
 * real PostgreSQL waking each other's held polls.
 *
 * Everything goes through the product: agents enroll and poll over the
 * API, bundles are pushed and activated with the real CLI (`policy push`,
 * `policy activate`, `policy shadow`) or the admin API, labels are set
 * with the admin API. Bounds on time are generous ("soon", not "fast"):
 * the latency itself is measured by tests/bench/policy_poll.sh.
 */
#include "console_proc.h"
#include "suites.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The console has been told to stop: it exits cleanly (a second SIGTERM
 * would kill it). */
static void cons_gone(cons_t *c)
{
	int rc = th_wait(&c->proc, 10000);
	char *log = th_log(&c->proc);
	ck_assert_msg(rc == 0, "console exit %d: %s", rc, log);
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

/* ---- the agent's side: raw HTTPS requests, several held at once ---- */

static th_client *dial(const cons_t *c)
{
	th_client *cl = th_client_connect_plain(c->port);
	th_client_start_tls(cl, c->pem, NULL, NULL);
	return cl;
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

static answer_t poll_once(const cons_t *c, const char *token, const char *inm, int wait_s)
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

/* The offered bundle is a signed document of that version (bundle.md). */
static void assert_bundle(const answer_t *a, const char *kind, int64_t version)
{
	json_t *b = json_object_get(json_object_get(a->body, kind), "bundle");
	const char *manifest = json_string_value(json_object_get(b, "manifest"));
	char want[48];
	snprintf(want, sizeof want, "\"policy_version\":%lld", (long long)version);
	ck_assert_msg(manifest && strstr(manifest, want), "%s bundle is not version %lld: %s", kind, (long long)version,
		      manifest ? manifest : "(no manifest)");
	ck_assert_msg(json_is_object(json_object_get(b, "signature")) && json_is_object(json_object_get(b, "files")),
		      "%s bundle is not a signed document", kind);
}

/* ---- the admin's side: the real CLI and admin API ---- */

static void cli_ok(cons_t *c, const char *const args[], char **out)
{
	char *err = NULL;
	int rc = cons_cli(c, out, &err, args);
	ck_assert_msg(rc == 0, "dlpgate-console %s %s: exit %d: %s", args[0], args[1], rc, err);
	free(err);
}

/* Pushes a policy that passes everything; it becomes version want. */
static void push(cons_t *c, int64_t want)
{
	char name[64], path[4200], *dir;
	snprintf(name, sizeof name, "pollpolicy%lld", (long long)want);
	dir = th_path(name);
	mkdir(dir, 0700);
	snprintf(path, sizeof path, "%s/tests", dir);
	mkdir(path, 0700);
	static const char policy[] = "local dlp = require \"dlp\"\n"
				     "function on_request(req, flow)\n\treturn dlp.pass()\nend\n";
	static const char tests[] = "return {\n\t{ name = \"plain\", request = { body = \"hello\" },"
				    " expect = { verdict = \"pass\" } },\n}\n";
	snprintf(path, sizeof path, "%s/policy.lua", dir);
	th_write_file(path, policy, strlen(policy), 0600);
	snprintf(path, sizeof path, "%s/tests/plain_test.lua", dir);
	th_write_file(path, tests, strlen(tests), 0600);
	char *out = NULL;
	cli_ok(c, (const char *const[]){"policy", "push", dir, NULL}, &out);
	json_t *j = json_loads(out, 0, NULL);
	ck_assert_msg(json_integer_value(json_object_get(j, "version")) == want, "push: %s", out);
	json_decref(j);
	free(out);
	free(dir);
}

/* `policy activate|shadow V [--labels L] [--percent P] [--sample S]` */
static void rollout(cons_t *c, const char *verb, int64_t v, const char *labels, int percent, int sample)
{
	char ver[24], pct[16], smp[16];
	snprintf(ver, sizeof ver, "%lld", (long long)v);
	snprintf(pct, sizeof pct, "%d", percent);
	snprintf(smp, sizeof smp, "%d", sample);
	const char *args[12] = {"policy", verb, ver, "--percent", pct};
	int a = 5;
	if (labels) {
		args[a++] = "--labels";
		args[a++] = labels;
	}
	if (sample) {
		args[a++] = "--sample";
		args[a++] = smp;
	}
	cli_ok(c, args, NULL);
}

static void set_labels(cons_t *c, const char *admin, const char *agent, const char *labels_json)
{
	char path[128], body[256], *out = NULL;
	snprintf(path, sizeof path, "/api/v1/agents/%s/labels", agent);
	snprintf(body, sizeof body, "{\"labels\":%s}", labels_json);
	int st = req(c, "PUT", path, admin, "application/json", NULL, body, strlen(body), &out);
	ck_assert_msg(st == 200, "PUT %s: %d %s", path, st, out);
	free(out);
}

/* The contract's bucket: the first 32 bits of SHA-256(agent_id) mod 100. */
static unsigned bucket(const char *agent)
{
	char hex[65];
	th_sha256_hex(agent, strlen(agent), hex);
	hex[8] = '\0';
	return (unsigned)(strtoul(hex, NULL, 16) % 100);
}

/* Two agent ids whose buckets are apart (lo + 10 < hi). */
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
	cons_t c = cons_start(NULL);
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
	 * signed document as the store keeps it */
	push(&c, 1);
	rollout(&c, "activate", 1, NULL, 100, 0);
	a = poll_once(&c, tok, "\"0.0\"", 30);
	ck_assert_msg(a.status == 200 && a.ms < 5000, "%d after %.0f ms", a.status, a.ms);
	ck_assert_str_eq(a.etag, "\"1.0\"");
	ck_assert_int_eq(offered(&a, "active"), 1);
	assert_bundle(&a, "active", 1);
	ck_assert(json_is_null(json_object_get(a.body, "shadow")));
	answer_free(&a);
	/* a list of tags: the agent refused 1 (runs 0): still nothing new */
	a = poll_once(&c, tok, "\"0.0\", \"1.0\"", 1);
	ck_assert_int_eq(a.status, 304);
	ck_assert_str_eq(a.etag, "\"1.0\"");
	answer_free(&a);

	/* a held poll is answered soon after an activation */
	push(&c, 2);
	th_client *cl = dial(&c);
	double t = now_ms();
	poll_send(cl, tok, "\"1.0\"", 60);
	usleep(300 * 1000);
	double activated = now_ms();
	rollout(&c, "activate", 2, NULL, 100, 0);
	a = poll_recv(cl, t, 10000);
	double after = now_ms() - activated;
	ck_assert_msg(a.status == 200 && offered(&a, "active") == 2, "held poll: %d", a.status);
	ck_assert_msg(after < 2500, "answered %.0f ms after the activation began", after);
	assert_bundle(&a, "active", 2);
	answer_free(&a);
	/* keep-alive: the same connection polls again and is held */
	t = now_ms();
	poll_send(cl, tok, "\"2.0\"", 1);
	a = poll_recv(cl, t, 10000);
	ck_assert_msg(a.status == 304 && a.ms >= 900, "second poll on the connection: %d", a.status);
	answer_free(&a);
	/* an agent that sends its next request while one is held ends the hold:
	 * 304 at once, then the next one is served (held for its own wait) */
	t = now_ms();
	poll_send(cl, tok, "\"2.0\"", 60);
	usleep(300 * 1000);
	poll_send(cl, tok, "\"2.0\"", 1);
	a = poll_recv(cl, t, 10000);
	ck_assert_msg(a.status == 304 && a.ms < 3000, "held poll followed by another: %d after %.0f ms", a.status, a.ms);
	answer_free(&a);
	a = poll_recv(cl, t, 10000);
	ck_assert_msg(a.status == 304 && a.ms >= 1200, "the request sent while one was held: %d after %.0f ms", a.status,
		      a.ms);
	answer_free(&a);
	th_client_close(cl);

	/* a shadow beside it */
	push(&c, 3);
	rollout(&c, "shadow", 3, NULL, 100, 25);
	a = poll_once(&c, tok, "\"2.0\"", 30);
	ck_assert_int_eq(a.status, 200);
	ck_assert_str_eq(a.etag, "\"2.3\"");
	ck_assert_int_eq(offered(&a, "active"), 2);
	ck_assert_int_eq(offered(&a, "shadow"), 3);
	assert_bundle(&a, "shadow", 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a.body, "shadow"), "sample_percent")), 25);
	answer_free(&a);
	free(tok);
	cons_stop(&c);
}
END_TEST

START_TEST(refusals)
{
	cons_t c = cons_start_args(NULL, true, (const char *const[]){"--max-held-polls", "2", NULL});
	char *tok = enroll(&c, "aaaaaaaa-0000-4000-8000-000000000002");
	/* no token, a malformed one, an unknown one, an admin's */
	answer_t a = poll_once(&c, NULL, NULL, 1);
	ck_assert_int_eq(a.status, 401);
	answer_free(&a);
	char unknown[65];
	memset(unknown, 'a', 64);
	unknown[64] = '\0';
	a = poll_once(&c, unknown, NULL, 1);
	ck_assert_int_eq(a.status, 401);
	answer_free(&a);
	ck_assert_int_eq(req(&c, "GET", "/api/v1/policy", "not-hex", NULL, NULL, NULL, 0, NULL), 401);
	char *admin = admin_token(&c);
	a = poll_once(&c, admin, NULL, 1);
	ck_assert_int_eq(a.status, 403);
	answer_free(&a);
	free(admin);
	/* wait out of range, an unknown parameter, the wrong method */
	a = poll_once(&c, tok, NULL, 301);
	ck_assert_int_eq(a.status, 400);
	answer_free(&a);
	a = poll_once(&c, tok, NULL, 0);
	ck_assert_int_eq(a.status, 400);
	answer_free(&a);
	ck_assert_int_eq(req(&c, "GET", "/api/v1/policy?since=1", tok, NULL, NULL, NULL, 0, NULL), 400);
	ck_assert_int_eq(req(&c, "POST", "/api/v1/policy", tok, "application/json", NULL, "{}", 2, NULL), 405);

	/* the hold limit: two held, the third is told to come back later */
	th_client *h1 = dial(&c), *h2 = dial(&c);
	double t = now_ms();
	poll_send(h1, tok, "\"0.0\"", 20);
	poll_send(h2, tok, "\"0.0\"", 20);
	usleep(500 * 1000); /* both parked (each one job, then held) */
	th_client *h3 = dial(&c);
	poll_send(h3, tok, "\"0.0\"", 20);
	size_t len;
	char *r = th_client_recv_response(h3, &len, 5000);
	ck_assert_msg(r && th_client_status(r) == 503, "third held poll: %s", r ? r : "(closed)");
	char *retry = th_http_header(r, "retry-after");
	ck_assert_msg(retry && atoi(retry) > 0, "503 without Retry-After: %s", r);
	free(retry);
	json_t *why = json_loads(th_http_body(r), 0, NULL);
	ck_assert_msg(why && !strcmp(json_string_value(json_object_get(why, "error")), "overloaded") &&
			      strstr(json_string_value(json_object_get(why, "detail")), "--max-held-polls"),
		      "503 body: %s", r);
	json_decref(why);
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
	cons_gone(&c);
}
END_TEST

START_TEST(targeting)
{
	cons_t c = cons_start(NULL);
	char *admin = admin_token(&c);
	char lo[37], hi[37];
	two_buckets(lo, hi);
	char *tlo = enroll(&c, lo), *thi = enroll(&c, hi);
	for (int v = 1; v <= 3; v++)
		push(&c, v);
	rollout(&c, "activate", 1, NULL, 100, 0);
	/* hi becomes a canary; v2 for canaries only */
	set_labels(&c, admin, hi, "{\"ring\":\"canary\"}");
	th_client *clo = dial(&c), *chi = dial(&c);
	double t = now_ms();
	poll_send(clo, tlo, "\"1.0\"", 3);
	poll_send(chi, thi, "\"1.0\"", 30);
	usleep(300 * 1000);
	rollout(&c, "activate", 2, "ring=canary", 100, 0);
	answer_t ahi = poll_recv(chi, t, 10000), alo = poll_recv(clo, t, 10000);
	ck_assert_msg(ahi.status == 200 && offered(&ahi, "active") == 2, "canary: %d", ahi.status);
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
	rollout(&c, "activate", 3, NULL, percent, 0);
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
	set_labels(&c, admin, hi, "{}");
	ahi = poll_recv(chi, t, 10000);
	ck_assert_msg(ahi.status == 200 && offered(&ahi, "active") == 1, "canary label removed: %d", ahi.status);
	answer_free(&ahi);
	th_client_close(clo);
	th_client_close(chi);
	free(tlo);
	free(thi);
	free(admin);
	cons_stop(&c);
}
END_TEST

/* Two consoles, one PostgreSQL: an activation through console A's admin
 * API wakes the polls held on both. Their own generation checks are slowed
 * to a minute, so only the NOTIFY each receives on its LISTEN connection
 * can wake them in time. */
START_TEST(two_consoles_postgresql)
{
	th_postgres pg = th_postgres_start();
	const char *const slow_check[] = {"--policy-check-ms", "60000", NULL};
	cons_t a = cons_start_args(pg.url, true, slow_check), b = cons_start_args(pg.url, true, slow_check);
	char *admin = admin_token(&a);
	char *tok = enroll(&a, "cccccccc-0000-4000-8000-000000000003");
	/* the token works on either console: one database */
	answer_t r = poll_once(&b, tok, NULL, 1);
	ck_assert_int_eq(r.status, 200);
	answer_free(&r);
	push(&a, 1);
	th_client *on_a = dial(&a), *on_b = dial(&b);
	double t = now_ms();
	poll_send(on_a, tok, "\"0.0\"", 60);
	poll_send(on_b, tok, "\"0.0\"", 60);
	usleep(300 * 1000);
	double activated = now_ms();
	char *out = NULL;
	int st = req(&a, "POST", "/api/v1/policies/1/activate", admin, "application/json", NULL, "{}", 2, &out);
	ck_assert_msg(st == 201, "activate through console A: %d %s", st, out);
	free(out);
	answer_t ra = poll_recv(on_a, t, 10000), rb = poll_recv(on_b, t, 10000);
	double after = now_ms() - activated;
	ck_assert_msg(ra.status == 200 && offered(&ra, "active") == 1, "console A: %d", ra.status);
	ck_assert_msg(rb.status == 200 && offered(&rb, "active") == 1, "console B: %d", rb.status);
	ck_assert_msg(after < 2500, "both answered %.0f ms after the activation began", after);
	answer_free(&ra);
	answer_free(&rb);
	th_client_close(on_a);
	th_client_close(on_b);
	free(tok);
	free(admin);
	cons_stop(&a);
	cons_stop(&b);
	th_postgres_stop(&pg);
}
END_TEST

Suite *console_poll_suite(void)
{
	Suite *s = suite_create("console_poll");
	TCase *t = tcase_create("console_poll");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, answers_and_etags);
	tcase_add_test(t, refusals);
	tcase_add_test(t, targeting);
	tcase_add_test(t, two_consoles_postgresql);
	suite_add_tcase(s, t);
	return s;
}
