/*
 * The fleet, end to end (issue 12): a real console, real agents with
 * labels, real proxied traffic. An admin pushes policy directories with the
 * console's CLI and activates, shadows and rolls back versions; every agent
 * long-polls, verifies, compiles, tests and swaps, and its traffic shows it:
 *
 *   v1 masks card numbers           activated for everyone
 *   v2 blocks them                  activated for ring=canary only
 *   v3 blocks cards and emails      shadowed on everyone: nothing changes,
 *                                   the shadow report counts what would
 *   rollback                        a new version with v1's content
 *   console stopped                 a restarted agent runs its last known
 *                                   good bundle at once
 *
 * Then two consoles on one PostgreSQL: an activation made through either
 * reaches the agents attached to the other.
 */
#include "dlp.h"
#include "suites.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET "fleet-enroll-secret"
#define CARD "4111 1111 1111 1111"
#define MASKED "4111 **** **** 1111"

typedef struct {
	th_proc proc;
	int port;
	char dir[600], db[600];
	char url[64], cert[700];
} console_t;

typedef struct {
	dlp_t d;
	char labels[64];
} agent_t;

static const char v1_policy[] = "local dlp = require \"dlp\"\n"
				"local pii = require \"pii\"\n"
				"function on_request(req, flow)\n"
				"  local found = req:scan({card = pii.credit_card})\n"
				"  if next(found) then return dlp.redact(found) end\n"
				"  return dlp.pass()\n"
				"end\n";
static const char v1_tests[] = "return {\n"
			       "  { name = \"cards are masked\", request = { body = \"pay " CARD "\" },"
			       " expect = { verdict = \"redact\" } },\n"
			       "}\n";
static const char v2_policy[] = "local dlp = require \"dlp\"\n"
				"local pii = require \"pii\"\n"
				"function on_request(req, flow)\n"
				"  local found = req:scan({card = pii.credit_card})\n"
				"  if next(found) then return dlp.block(\"card upload\", found) end\n"
				"  return dlp.pass()\n"
				"end\n";
static const char v2_tests[] = "return {\n"
			       "  { name = \"cards are blocked\", request = { body = \"pay " CARD "\" },"
			       " expect = { verdict = \"block\" } },\n"
			       "}\n";
static const char v3_policy[] = "local dlp = require \"dlp\"\n"
				"local pii = require \"pii\"\n"
				"function on_request(req, flow)\n"
				"  local found = req:scan({card = pii.credit_card, email = pii.email})\n"
				"  if next(found) then return dlp.block(\"personal data\", found) end\n"
				"  return dlp.pass()\n"
				"end\n";

/* A policy directory: policy.lua and, when given, tests/t.lua. */
static char *policy_dir(const char *name, const char *policy, const char *tests)
{
	char *dir = th_path(name), p[800];
	mkdir(dir, 0700);
	snprintf(p, sizeof p, "%s/policy.lua", dir);
	th_write_file(p, policy, strlen(policy), 0644);
	if (tests) {
		snprintf(p, sizeof p, "%s/tests", dir);
		mkdir(p, 0700);
		snprintf(p, sizeof p, "%s/tests/t.lua", dir);
		th_write_file(p, tests, strlen(tests), 0644);
	}
	return dir;
}

/* A console named name (its log) with its state in dir_name: consoles
 * sharing one PostgreSQL share a state dir too (certificate, enroll secret,
 * signing key), as the machines of one deployment would. */
static void console_start(console_t *c, const char *name, const char *dir_name, const char *db)
{
	char listen[64], *dir = th_path(dir_name);
	snprintf(c->dir, sizeof c->dir, "%s", dir);
	free(dir);
	mkdir(c->dir, 0700);
	snprintf(c->db, sizeof c->db, "%s", db ? db : "");
	c->port = th_free_port();
	snprintf(listen, sizeof listen, "127.0.0.1:%d", c->port);
	snprintf(c->url, sizeof c->url, "https://127.0.0.1:%d", c->port);
	snprintf(c->cert, sizeof c->cert, "%s/console.pem", c->dir);
	const char *argv[] = {dlp_console_bin(), "run", "--listen", listen, "--state-dir", c->dir, "--enroll-secret",
			      SECRET, db ? "--db" : NULL, db, NULL};
	char log[96];
	snprintf(log, sizeof log, "%s.log", name);
	c->proc = th_spawn((char *const *)argv, log);
	if (!th_wait_port(c->port, 15000)) {
		char *l = th_log(&c->proc);
		th_fail("dlpgate-console did not listen on %d:\n%s", c->port, l);
	}
}

/* `dlpgate-console policy ARGS...` on c's store; stdout, exit code in *rc. */
static char *console_cli(const console_t *c, int *rc, const char *const args[])
{
	const char *argv[32];
	int n = 0;
	argv[n++] = dlp_console_bin();
	argv[n++] = "policy";
	for (int i = 0; args[i] && n < 26; i++)
		argv[n++] = args[i];
	argv[n++] = "--state-dir";
	argv[n++] = c->dir;
	if (c->db[0]) {
		argv[n++] = "--db";
		argv[n++] = c->db;
	}
	argv[n] = NULL;
	char *out = NULL, *err = NULL;
	*rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 60000);
	if (*rc != 0)
		fprintf(stderr, "dlpgate-console policy %s: exit %d: %s%s\n", args[0], *rc, out, err);
	free(err);
	return out;
}

/* Pushes a directory; returns the version the console gave it. */
static int push(const console_t *c, const char *dir, const char *message)
{
	int rc;
	const char *args[] = {"push", dir, "--message", message, NULL};
	char *out = console_cli(c, &rc, args);
	json_t *o = rc == 0 ? json_loads(out, 0, NULL) : NULL;
	int v = (int)json_integer_value(json_object_get(o, "version"));
	if (!o || v < 1 || json_integer_value(json_object_get(json_object_get(o, "tests"), "failed")) != 0)
		th_fail("push %s: exit %d: %s", dir, rc, out);
	json_decref(o);
	free(out);
	return v;
}

/* A policy directory made and pushed; the version. */
static int push_dir(const console_t *c, const char *name, const char *policy, const char *tests, const char *message)
{
	char *dir = policy_dir(name, policy, tests);
	int v = push(c, dir, message);
	free(dir);
	return v;
}

/* activate|shadow VERSION [extra args]; fails the test if refused. */
static void rollout(const console_t *c, const char *what, int version, const char *const extra[])
{
	char v[16];
	snprintf(v, sizeof v, "%d", version);
	const char *args[16] = {what, v};
	int n = 2;
	for (int i = 0; extra && extra[i] && n < 14; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	int rc;
	char *out = console_cli(c, &rc, args);
	if (rc != 0)
		th_fail("policy %s %d: exit %d: %s", what, version, rc, out);
	free(out);
}

static agent_t agent_start(const world_t *w, const console_t *c, const char *labels)
{
	agent_t a;
	snprintf(a.labels, sizeof a.labels, "%s", labels);
	const char *args[] = {"--console", c->url, "--console-ca", c->cert, "--enroll-secret", SECRET, "--labels",
			      labels, "--policy-wait", "5", NULL};
	a.d = dlp_start(w->ca.cert_path, "{\"report\": {\"batch_wait_ms\": 100, \"status_interval_s\": 1}}", args);
	return a;
}

/* `dlpgate policy status` of a's state dir. */
static json_t *agent_policy(const agent_t *a)
{
	const char *argv[] = {dlp_bin(), "policy", "status", "--state-dir", a->d.state_dir, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 10000);
	json_t *o = rc == 0 ? json_loads(out, 0, NULL) : NULL;
	if (!o)
		th_fail("dlpgate policy status: exit %d: %s%s", rc, out, err);
	free(out), free(err);
	return o;
}

/* Waits until a runs version (and, if shadow > 0, shadows that one). */
static void agent_wait_version(agent_t *a, int version, int shadow)
{
	json_t *st = NULL;
	for (int waited = 0; waited < 20000; waited += 100) {
		json_decref(st);
		st = agent_policy(a);
		bool v_ok = json_integer_value(json_object_get(st, "version")) == version;
		bool s_ok = shadow <= 0 || json_integer_value(json_object_get(st, "shadow_version")) == shadow;
		if (v_ok && s_ok) {
			json_decref(st);
			return;
		}
		usleep(100000);
	}
	char *text = json_dumps(st, 0);
	char *log = dlp_log(&a->d);
	th_fail("agent %s never ran v%d (shadow v%d); its status: %s\nlog:\n%s", a->labels, version, shadow, text, log);
}

/* A card upload through a; what the upstream got for it (NULL: nothing,
 * the upload was blocked). */
static char *upload(agent_t *a, th_upstream *up, const char *body, int *http_status)
{
	size_t before = 0;
	free(th_upstream_received(up, &before));
	char *u = url("127.0.0.1", th_upstream_port(up), "/echo", true);
	const char *args[] = {"-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", body, u, NULL};
	char *out = NULL, *err = NULL;
	dlp_curl(&a->d, args, &out, &err);
	*http_status = atoi(out ? out : "0");
	free(out), free(err), free(u);
	size_t len = 0;
	char *all = th_upstream_received(up, &len);
	char *got = len > before ? strndup(all + before, len - before) : NULL;
	free(all);
	return got;
}

static void expect_masked(agent_t *a, th_upstream *up)
{
	int status;
	char *got = upload(a, up, "pay " CARD " now", &status);
	ck_assert_msg(status == 200 && got && strstr(got, MASKED) && !strstr(got, CARD),
		      "agent %s: status %d, upstream got: %s", a->labels, status, got ? got : "(nothing)");
	free(got);
}

static void expect_blocked(agent_t *a, th_upstream *up)
{
	int status;
	char *got = upload(a, up, "pay " CARD " now", &status);
	ck_assert_msg(status == 403 && (!got || !th_has_group(got, "1111")), "agent %s: status %d, upstream got: %s",
		      a->labels, status, got ? got : "(nothing)");
	free(got);
}

static json_t *cli_json(const console_t *c, const char *const args[])
{
	int rc;
	char *out = console_cli(c, &rc, args);
	json_t *o = rc == 0 ? json_loads(out, 0, NULL) : NULL;
	if (!o)
		th_fail("policy %s: exit %d: %s", args[0], rc, out);
	free(out);
	return o;
}

/* `dlpgate-console admin token create` on c's store. */
static char *admin_of(const console_t *c)
{
	const char *argv[] = {dlp_console_bin(), "admin", "token", "create", "--state-dir", c->dir,
			      c->db[0] ? "--db" : NULL, c->db, NULL};
	char *out = NULL, *err = NULL;
	ck_assert_msg(th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 30000) == 0, "%s", err);
	free(err);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

/* GET path on c as admin: the JSON answer. */
static json_t *console_get(const console_t *c, const char *admin, const char *path)
{
	char auth[200], u[400];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin);
	snprintf(u, sizeof u, "%s%s", c->url, path);
	const char *args[] = {"-s", "--cacert", c->cert, "-H", auth, u, NULL};
	char *out = NULL, *err = NULL;
	th_curl(args, &out, NULL, &err);
	json_t *o = json_loads(out ? out : "", 0, NULL);
	if (!o)
		th_fail("GET %s: %s%s", path, out, err);
	free(out), free(err);
	return o;
}

/* The console's block event with this reason, of a policy version that
 * starts with version ("v" a console bundle, "sha256:" a local file),
 * waited for. */
static json_t *console_block_event(const console_t *c, const char *admin, const char *reason, const char *version)
{
	for (int waited = 0; waited < 15000; waited += 200) {
		json_t *list = console_get(c, admin, "/api/v1/events?verdict=block&limit=100");
		size_t i;
		json_t *ev;
		json_array_foreach(json_object_get(list, "events"), i, ev) {
			const char *r = json_string_value(json_object_get(ev, "reason"));
			const char *v = json_string_value(json_object_get(ev, "policy_version"));
			if (r && !strcmp(r, reason) && v && !strncmp(v, version, strlen(version))) {
				json_incref(ev);
				json_decref(list);
				return ev;
			}
		}
		json_decref(list);
		usleep(200000);
	}
	th_fail("no block event \"%s\" of a version %s... at the console", reason, version);
	return NULL;
}

/* An event's rule names the policy's file relative to the policy's folder,
 * exactly want: no path of the agent's machine, nothing cut with "...".
 * For a console bundle (source not NULL) the event's detail finds that
 * line in the version's file at source, its path in the bundle. */
static void expect_rule(const console_t *c, const char *admin, const char *reason, const char *version,
			const char *want, const char *source)
{
	json_t *ev = console_block_event(c, admin, reason, version);
	const char *rule = json_string_value(json_object_get(ev, "rule"));
	ck_assert_msg(rule && !strcmp(rule, want), "event \"%s\": rule %s, want %s", reason, rule, want);
	if (source) {
		char detail[200];
		snprintf(detail, sizeof detail, "/api/v1/events/%s/detail", json_string_value(json_object_get(ev, "id")));
		json_t *d = console_get(c, admin, detail), *ex = json_object_get(d, "explain");
		json_t *src = json_object_get(ex, "source");
		const char *path = json_string_value(json_object_get(src, "path"));
		char *text = json_dumps(ex, JSON_SORT_KEYS);
		ck_assert_msg(path && !strcmp(path, source) &&
				      json_integer_value(json_object_get(src, "highlight")) == atoi(strrchr(want, ':') + 1),
			      "event \"%s\": %s", reason, text);
		free(text);
		json_decref(d);
	}
	json_decref(ev);
}

START_TEST(push_activate_shadow_rollback_last_known_good)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	console_t c;
	console_start(&c, "fleet-console", "fleet-console", NULL);

	int v1 = push_dir(&c, "fleet-v1", v1_policy, v1_tests, "mask cards");
	ck_assert_int_eq(v1, 1);
	rollout(&c, "activate", v1, NULL);
	agent_t canary = agent_start(&w, &c, "ring=canary");
	agent_t stable[2] = {agent_start(&w, &c, "ring=stable"), agent_start(&w, &c, "ring=stable")};
	agent_wait_version(&canary, 1, 0);
	agent_wait_version(&stable[0], 1, 0);
	agent_wait_version(&stable[1], 1, 0);
	expect_masked(&canary, up);
	expect_masked(&stable[0], up);
	expect_masked(&stable[1], up);

	/* v2 for the canary ring only */
	int v2 = push_dir(&c, "fleet-v2", v2_policy, v2_tests, "block cards");
	const char *canary_only[] = {"--labels", "ring=canary", NULL};
	rollout(&c, "activate", v2, canary_only);
	agent_wait_version(&canary, v2, 0);
	expect_blocked(&canary, up);
	/* its event names the bundle's file as the admin wrote it (the agent
	 * runs it from STATE/policy/v2/bundle/), and the console finds the
	 * line in that version */
	char *admin = admin_of(&c);
	expect_rule(&c, admin, "card upload", "v", "policy.lua:5", "policy.lua");
	json_t *st = agent_policy(&stable[0]);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "version")), v1);
	ck_assert_str_eq(json_string_value(json_object_get(st, "source")), "console");
	json_decref(st);

	/* v3 in shadow on the stable ring: traffic unchanged, the report counts */
	int v3 = push_dir(&c, "fleet-v3", v3_policy, NULL, "cards and emails");
	const char *shadow_all[] = {"--labels", "ring=stable", "--sample", "100", NULL};
	rollout(&c, "shadow", v3, shadow_all);
	agent_wait_version(&stable[0], v1, v3);
	agent_wait_version(&stable[1], v1, v3);
	for (int i = 0; i < 3; i++)
		expect_masked(&stable[0], up); /* redact, would be block: changed */
	int status;
	free(upload(&stable[1], up, "write to jane.doe@acme-corp.com", &status)); /* pass, would be block */
	ck_assert_int_eq(status, 200);
	free(upload(&stable[1], up, "nothing to see", &status)); /* pass both ways */
	char v3s[16];
	snprintf(v3s, sizeof v3s, "%d", v3);
	const char *report_args[] = {"shadow-report", v3s, NULL};
	json_t *rep = NULL;
	for (int waited = 0; waited < 15000; waited += 200) {
		json_decref(rep);
		rep = cli_json(&c, report_args);
		if (json_integer_value(json_object_get(rep, "changed")) >= 4)
			break;
		usleep(200000);
	}
	char *rep_text = json_dumps(rep, JSON_SORT_KEYS);
	json_t *tr = json_object_get(rep, "transitions");
	ck_assert_msg(json_integer_value(json_object_get(rep, "changed")) == 4 &&
			      json_integer_value(json_object_get(tr, "redact->block")) == 3 &&
			      json_integer_value(json_object_get(tr, "pass->block")) == 1,
		      "shadow report: %s", rep_text);
	ck_assert_msg(json_integer_value(json_object_get(json_object_get(rep, "by_detector"), "email")) == 1, "%s",
		      rep_text);
	free(rep_text);
	json_decref(rep);

	/* rollback: the canary ring gets v1's content back, as a new version */
	const char *rb_args[] = {"rollback", NULL};
	json_t *rb = cli_json(&c, rb_args);
	int v4 = (int)json_integer_value(json_object_get(rb, "version"));
	ck_assert_int_gt(v4, v3);
	ck_assert_int_eq(json_integer_value(json_object_get(rb, "content_of")), v1);
	json_decref(rb);
	agent_wait_version(&canary, v4, 0);
	expect_masked(&canary, up);

	/* the console goes away; an agent restarted now runs its last known good */
	th_stop(&c.proc);
	agent_t back = canary;
	back.d = dlp_restart(&canary.d);
	st = agent_policy(&back);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "version")), v4);
	ck_assert_str_eq(json_string_value(json_object_get(st, "source")), "last-known-good");
	json_decref(st);
	expect_masked(&back, up);

	dlp_stop(&back.d);
	dlp_stop(&stable[0].d);
	dlp_stop(&stable[1].d);
	free(admin);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

/* One policy folder with a module beside the policy and one a folder up,
 * run two ways: as a local policy (--policy) deep in the machine's folders,
 * and pushed to the console as a bundle whose entry sits in a subfolder
 * (--entry policy/policy.lua) that an agent runs from its state dir. The
 * events name the files the same way, policy.lua, lib/cards.lua and
 * ../shared.lua, and the console finds a bundle's lines at their paths in
 * the bundle. */
START_TEST(rules_name_files_relative_to_the_policy_folder_locally_and_from_the_console)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	console_t c;
	console_start(&c, "names-console", "names-console", NULL);
	char *top = th_path("names-a-folder-name-long-enough-that-lua-would-cut-an-absolute-chunk-name"), p[1200];
	static const char *const folders[] = {"", "/policy", "/policy/lib"};
	for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) {
		snprintf(p, sizeof p, "%s%s", top, folders[i]);
		ck_assert(mkdir(p, 0700) == 0);
	}
	static const struct {
		const char *file, *src;
	} files[] = {
		{"/shared.lua", "local dlp = require \"dlp\"\n"
				"return function(found) return dlp.block(\"one folder up\", found) end\n"},
		{"/policy/lib/cards.lua", "local dlp = require \"dlp\"\nlocal M = {}\n"
					  "function M.block(found) return dlp.block(\"in a module\", found) end\n"
					  "return M\n"},
		{"/policy/policy.lua", "local dlp = require \"dlp\"\nlocal pii = require \"pii\"\n"
				       "local cards = require \"lib.cards\"\nlocal shared = require \"shared\"\n"
				       "function on_request(req, flow)\n"
				       "  local found = req:scan({card = pii.credit_card})\n"
				       "  if not next(found) then return dlp.pass() end\n"
				       "  local body = req:body()\n"
				       "  if body:find(\"module\", 1, true) then return cards.block(found) end\n"
				       "  if body:find(\"up\", 1, true) then return shared(found) end\n"
				       "  return dlp.block(\"in the policy\", found)\n"
				       "end\n"},
	};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(p, sizeof p, "%s%s", top, files[i].file);
		th_write_file(p, files[i].src, strlen(files[i].src), 0644);
	}
	/* the same folder as a console bundle, for every agent without --policy */
	const char *push_args[] = {"push", top, "--entry", "policy/policy.lua", NULL};
	int rc;
	char *pushed = console_cli(&c, &rc, push_args);
	json_t *pj = rc == 0 ? json_loads(pushed, 0, NULL) : NULL;
	ck_assert_msg(pj && json_integer_value(json_object_get(pj, "version")) == 1, "push: exit %d: %s", rc, pushed);
	json_decref(pj);
	free(pushed);
	rollout(&c, "activate", 1, NULL);
	snprintf(p, sizeof p, "%s/policy/policy.lua", top);
	const char *args[] = {"--policy", p, "--console", c.url, "--console-ca", c.cert, "--enroll-secret", SECRET, NULL};
	agent_t local = {.d = dlp_start(w.ca.cert_path, "{\"report\": {\"batch_wait_ms\": 100}}", args)};
	agent_t bundled = agent_start(&w, &c, "ring=any");
	agent_wait_version(&bundled, 1, 0);
	static const struct {
		const char *body, *reason, *rule, *in_bundle;
	} cases[] = {{"pay " CARD, "in the policy", "policy.lua:11", "policy/policy.lua"},
		     {"module pays " CARD, "in a module", "lib/cards.lua:3", "policy/lib/cards.lua"},
		     {"up pays " CARD, "one folder up", "../shared.lua:2", "shared.lua"}};
	char *admin = admin_of(&c);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int status;
		free(upload(&local, up, cases[i].body, &status));
		ck_assert_int_eq(status, 403);
		expect_rule(&c, admin, cases[i].reason, "sha256:", cases[i].rule, NULL);
		free(upload(&bundled, up, cases[i].body, &status));
		ck_assert_int_eq(status, 403);
		expect_rule(&c, admin, cases[i].reason, "v", cases[i].rule, cases[i].in_bundle);
	}
	/* the agent's own flow log names them so too */
	char *log = dlp_log(&local.d);
	ck_assert_msg(strstr(log, "lib/cards.lua:3") && !strstr(log, "/policy/lib/cards.lua"), "%s", log);
	free(log);
	free(admin), free(top);
	dlp_stop(&local.d);
	dlp_stop(&bundled.d);
	th_stop(&c.proc);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(two_consoles_on_one_postgres_wake_each_others_agents)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	th_postgres pg = th_postgres_start();
	console_t a, b;
	console_start(&a, "pg-console-a", "pg-console", pg.url);
	console_start(&b, "pg-console-b", "pg-console", pg.url);
	int v1 = push_dir(&a, "pg-v1", v1_policy, v1_tests, "mask cards");
	rollout(&a, "activate", v1, NULL);
	agent_t on_a = agent_start(&w, &a, "ring=a"), on_b = agent_start(&w, &b, "ring=b");
	agent_wait_version(&on_a, v1, 0);
	agent_wait_version(&on_b, v1, 0);
	/* activated through console a's store: b's held poll wakes too */
	int v2 = push_dir(&a, "pg-v2", v2_policy, v2_tests, "block cards");
	rollout(&a, "activate", v2, NULL);
	agent_wait_version(&on_b, v2, 0);
	agent_wait_version(&on_a, v2, 0);
	expect_blocked(&on_b, up);
	dlp_stop(&on_a.d);
	dlp_stop(&on_b.d);
	th_stop(&a.proc);
	th_stop(&b.proc);
	th_postgres_stop(&pg);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

Suite *fleet_suite(void)
{
	Suite *s = suite_create("fleet");
	TCase *t = tcase_create("fleet");
	tcase_set_timeout(t, 240);
	tcase_add_test(t, push_activate_shadow_rollback_last_known_good);
	tcase_add_test(t, rules_name_files_relative_to_the_policy_folder_locally_and_from_the_console);
	tcase_add_test(t, two_consoles_on_one_postgres_wake_each_others_agents);
	suite_add_tcase(s, t);
	return s;
}
