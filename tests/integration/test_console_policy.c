/*
 * Policy distribution on the console's side, with the real console
 * process, the real `dlpgate-console policy|agent|audit` CLI and real curl
 * on the admin API: pushing directories (compiled and tested with the
 * engine's code; refused with the failures named and nothing stored),
 * offline signing and a console that trusts only offline keys, list, show,
 * diff, file, activation by labels and percent counted against agents
 * enrolled through the API with labels, status from real status posts,
 * halting after failed activations, rollback, shadow reports from real
 * shadow events, labels, the audit log and its actors, and role checks.
 * The shared path runs on SQLite and on a real PostgreSQL.
 */
#include "console_proc.h"
#include "core/bytebuf.h"
#include "dlp.h"
#include "suites.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_CHANNEL "dlpgate_policy" /* console/store.h */

/* Six agents: three canaries, three in production. */
static const char *const AGENTS[] = {
	"c0000000-0000-4000-8000-000000000001", "c0000000-0000-4000-8000-000000000002",
	"c0000000-0000-4000-8000-000000000003", "d0000000-0000-4000-8000-000000000004",
	"d0000000-0000-4000-8000-000000000005", "d0000000-0000-4000-8000-000000000006",
};
#define N_AGENTS 6
#define N_CANARY 3

/* ---- policy directories ---- */

static const char POLICY[] = "local dlp = require \"dlp\"\n"
			     "local pii = require \"pii\"\n"
			     "\n"
			     "function on_request(req, flow)\n"
			     "\tlocal found = req:scan(pii)\n"
			     "\tif next(found) then\n"
			     "\t\treturn dlp.%s\n"
			     "\tend\n"
			     "\treturn dlp.pass()\n"
			     "end\n";

static const char TESTS[] = "return {\n"
			    "\t{ name = \"card\", request = { body = \"pay 4526 0181 5908 3012 now\" },\n"
			    "\t  expect = { verdict = \"%s\" } },\n"
			    "\t{ name = \"nothing to see\", request = { body = \"hello\" }, expect = { verdict = \"%s\" } },\n"
			    "}\n";

/* A policy dir whose cards get dlp.`action`, with tests expecting `card` and
 * `plain` verdicts; broken: a syntax error on line 11. */
static char *policy_dir(const char *name, const char *action, const char *card, const char *plain, bool broken)
{
	char *dir = th_path(name), path[4200], text[2048];
	mkdir(dir, 0700);
	snprintf(path, sizeof path, "%s/tests", dir);
	mkdir(path, 0700);
	int n = snprintf(text, sizeof text, POLICY, action);
	if (broken)
		snprintf(text + n, sizeof text - (size_t)n, "function on_flow(\n");
	snprintf(path, sizeof path, "%s/policy.lua", dir);
	th_write_file(path, text, strlen(text), 0600);
	snprintf(text, sizeof text, TESTS, card, plain);
	snprintf(path, sizeof path, "%s/tests/cards_test.lua", dir);
	th_write_file(path, text, strlen(text), 0600);
	return dir;
}

/* ---- the CLI ---- */

/* A CLI command that must succeed and print one JSON object. */
static json_t *cli_json(cons_t *c, const char *const args[])
{
	char *out = NULL, *err = NULL;
	int rc = cons_cli(c, &out, &err, args);
	ck_assert_msg(rc == 0, "%s %s: exit %d: %s", args[0], args[1], rc, err);
	json_t *j = json_loads(out, 0, NULL);
	ck_assert_msg(json_is_object(j), "%s %s printed: %s", args[0], args[1], out);
	free(out), free(err);
	return j;
}

static int64_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	ck_assert_msg(json_is_integer(v), "no integer \"%s\" in %s", key, json_dumps(o, 0));
	return json_integer_value(v);
}

static int count_versions(cons_t *c)
{
	json_t *j = cli_json(c, (const char *const[]){"policy", "list", NULL});
	int n = (int)json_array_size(json_object_get(j, "policies"));
	json_decref(j);
	return n;
}

/* ---- agents ---- */

static unsigned bucket(const char *id)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)id, strlen(id), md);
	return (unsigned)(((uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3]) % 100);
}

static void post_status(cons_t *c, const char *token, const char *agent, const char *policy_json, int want)
{
	char body[2048], *out = NULL;
	snprintf(body, sizeof body, "{\"agent_id\":\"%s\",\"version\":\"1.2.3\",\"policy\":%s}", agent, policy_json);
	int st = req(c, "POST", "/api/v1/status", token, "application/json", NULL, body, strlen(body), &out);
	ck_assert_msg(st == want, "status %s: %d %s", policy_json, st, out);
	free(out);
}

static json_t *rollout_by_id(json_t *rollouts, int64_t id)
{
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(rollouts, "rollouts"), i, r)
		if (json_integer_value(json_object_get(r, "id")) == id)
			return r;
	return NULL;
}

static bool audit_has(json_t *audit, const char *actor, const char *action)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(audit, "audit"), i, e)
		if (!strcmp(json_string_value(json_object_get(e, "actor")), actor) &&
		    !strcmp(json_string_value(json_object_get(e, "action")), action))
			return true;
	return false;
}

/* ---- the shared path ---- */

static void policy_path(cons_t *c)
{
	char *admin = admin_token(c);
	char admin_hash[65], admin_actor[16], cli_actor[80];
	{
		unsigned char md[SHA256_DIGEST_LENGTH];
		SHA256((const unsigned char *)admin, 64, md);
		for (int i = 0; i < 32; i++)
			snprintf(admin_hash + 2 * i, 3, "%02x", md[i]);
		snprintf(admin_actor, sizeof admin_actor, "%.12s", admin_hash);
		snprintf(cli_actor, sizeof cli_actor, "cli:%s", getpwuid(getuid())->pw_name);
	}
	static int n;
	char name[64];

	/* push: a directory that compiles and passes; the pack it requires is folded in */
	snprintf(name, sizeof name, "pol%d-mask", n);
	char *mask = policy_dir(name, "redact(found)", "redact", "pass", false);
	json_t *j = cli_json(c, (const char *const[]){"policy", "push", mask, "--message", "mask cards", NULL});
	ck_assert_int_eq(jint(j, "version"), 1);
	ck_assert_int_eq(strlen(json_string_value(json_object_get(j, "sha256"))), 64);
	ck_assert_int_eq(jint(json_object_get(j, "tests"), "passed"), 2);
	ck_assert_int_eq(jint(json_object_get(j, "tests"), "failed"), 0);
	ck_assert_int_eq(json_object_size(j), 3);
	json_decref(j);

	/* refused: Lua that does not compile (line 11 opens what the end of file does not close), named by file:line; nothing stored */
	snprintf(name, sizeof name, "pol%d-broken", n);
	char *broken = policy_dir(name, "redact(found)", "redact", "pass", true);
	char *out = NULL, *err = NULL;
	int rc = cons_cli(c, &out, &err, (const char *const[]){"policy", "push", broken, NULL});
	ck_assert_msg(rc == 1 && strstr(err, "policy.lua:12:") && !strstr(err, "dlpgate-check"), "exit %d: %s", rc, err);
	ck_assert_msg(!out || !*out, "a refused push printed: %s", out);
	free(out), free(err);
	/* refused: a test that fails, listed by file, case and why */
	snprintf(name, sizeof name, "pol%d-failing", n);
	char *failing = policy_dir(name, "redact(found)", "block", "pass", false);
	rc = cons_cli(c, NULL, &err, (const char *const[]){"policy", "push", failing, NULL});
	ck_assert_msg(rc == 1 && strstr(err, "1 of 2 tests failed") && strstr(err, "tests/cards_test.lua #1 card"),
		      "exit %d: %s", rc, err);
	free(err);
	ck_assert_int_eq(count_versions(c), 1);

	/* v2 blocks cards */
	snprintf(name, sizeof name, "pol%d-block", n++);
	char *block = policy_dir(name, "block(\"card\", found)", "block", "pass", false);
	j = cli_json(c, (const char *const[]){"policy", "push", block, NULL});
	ck_assert_int_eq(jint(j, "version"), 2);
	json_decref(j);

	/* show: manifest and files, the shipped pack among them */
	j = cli_json(c, (const char *const[]){"policy", "show", "1", NULL});
	ck_assert_str_eq(json_string_value(json_object_get(j, "message")), "mask cards");
	ck_assert_str_eq(json_string_value(json_object_get(j, "author")), cli_actor);
	json_t *files = json_object_get(j, "files");
	ck_assert_int_eq(json_array_size(files), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(files, 0), "path")), "pii.lua");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(files, 0), "role")), "module");
	json_decref(j);
	/* diff: unified, of the files */
	rc = cons_cli(c, &out, &err, (const char *const[]){"policy", "diff", "1", "2", NULL});
	ck_assert_msg(rc == 0 && strstr(out, "--- a/policy.lua\n+++ b/policy.lua\n") &&
			      strstr(out, "-\t\treturn dlp.redact(found)\n+\t\treturn dlp.block(\"card\", found)\n") &&
			      !strstr(out, "pii.lua"),
		      "diff: %d %s %s", rc, out, err);
	free(out), free(err);
	/* usage mistakes: exit 2 with the argument named; unknown version: 1 */
	rc = cons_cli(c, NULL, &err, (const char *const[]){"policy", "show", "x1", NULL});
	ck_assert_msg(rc == 2 && strstr(err, "\"x1\" is not a policy version"), "%d %s", rc, err);
	free(err);
	rc = cons_cli(c, NULL, &err, (const char *const[]){"policy", "activate", "1", "--percent", "101", NULL});
	ck_assert_msg(rc == 2 && strstr(err, "--percent 101"), "%d %s", rc, err);
	free(err);
	rc = cons_cli(c, NULL, &err, (const char *const[]){"policy", "activate", "9", NULL});
	ck_assert_msg(rc == 1 && strstr(err, "no policy version 9"), "%d %s", rc, err);
	free(err);

	/* the admin API reads the same; an agent token is refused */
	char *tokens[N_AGENTS];
	for (int i = 0; i < N_AGENTS; i++)
		tokens[i] = enroll_labels(c, AGENTS[i], i < N_CANARY ? "{\"ring\":\"canary\"}" : "{\"ring\":\"prod\"}", NULL);
	j = get_json(c, admin, "/api/v1/policies", 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "policies")), 2);
	json_decref(j);
	static const char *const admin_paths[] = {"/api/v1/policies", "/api/v1/policies/1", "/api/v1/rollouts",
						  "/api/v1/audit", "/api/v1/policies/1/status"};
	for (size_t i = 0; i < sizeof admin_paths / sizeof admin_paths[0]; i++)
		ck_assert_int_eq(req(c, "GET", admin_paths[i], tokens[0], NULL, NULL, NULL, 0, NULL), 403);
	ck_assert_int_eq(req(c, "POST", "/api/v1/policies/1/activate", tokens[0], "application/json", NULL, "{}", 2, NULL),
			 403);
	ck_assert_int_eq(req(c, "GET", "/api/v1/policies", NULL, NULL, NULL, NULL, 0, NULL), 401);
	rc = req(c, "GET", "/api/v1/policies/2/files/policy.lua", admin, NULL, NULL, NULL, 0, &out);
	ck_assert_msg(rc == 200 && strstr(out, "return dlp.block(\"card\", found)"), "%d %s", rc, out);
	free(out);
	ck_assert_int_eq(req(c, "GET", "/api/v1/policies/2/files/nope.lua", admin, NULL, NULL, NULL, 0, NULL), 404);
	ck_assert_int_eq(req(c, "GET", "/api/v1/policies/7", admin, NULL, NULL, NULL, 0, NULL), 404);
	rc = req(c, "GET", "/api/v1/policies/diff?a=1&b=2", admin, NULL, NULL, NULL, 0, &out);
	ck_assert_msg(rc == 200 && strstr(out, "+\t\treturn dlp.block(\"card\", found)"), "%d %s", rc, out);
	free(out);
	ck_assert_int_eq(req(c, "GET", "/api/v1/policies/diff?a=1&c=2", admin, NULL, NULL, NULL, 0, NULL), 400);
	/* a file and a diff say what they are, and are never cached */
	static const char *const typed[][2] = {{"/api/v1/policies/2/files/policy.lua", "Content-Type: text/plain"},
					       {"/api/v1/policies/diff?a=1&b=2", "Content-Type: text/x-diff"}};
	for (int i = 0; i < 2; i++) {
		char u[256], auth[160];
		snprintf(u, sizeof u, "https://127.0.0.1:%d%s", c->port, typed[i][0]);
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin);
		const char *args[] = {"-s", "-D", "-", "-o", "/dev/null", "--cacert", c->pem, "-H", auth, u, NULL};
		char *head = NULL, *curl_err = NULL;
		ck_assert_int_eq(th_curl(args, &head, NULL, &curl_err), 0);
		ck_assert_msg(strstr(head, typed[i][1]) && !strstr(head, "application/json") &&
				      strstr(head, "Cache-Control: no-store"),
			      "%s", head);
		free(head), free(curl_err);
	}

	/* an event's rule finds its line in the version: as agents name the
	 * file (relative to the policy's folder), and as older agents did, by
	 * their own path to their copy of the bundle, whole or cut by Lua; a
	 * name above the bundle finds nothing */
	static const struct {
		const char *rule, *source; /* source NULL: file_not_in_bundle */
	} rules[] = {{"policy.lua:7", "policy.lua"},
		     {"/var/lib/dlpgate/policy/v2/bundle/policy.lua:7", "policy.lua"},
		     {"...gate-state/policy/v2/bundle/policy.lua:7", "policy.lua"},
		     {"../policy.lua:7", NULL}};
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
		char ev[1024], id[40], detail[128];
		snprintf(id, sizeof id, "01900000-0000-7000-8000-1000000000%02zu", i);
		snprintf(ev, sizeof ev,
			 "{\"event\":\"verdict\",\"id\":\"%s\",\"agent_id\":\"%s\",\"time\":\"2026-11-18T09:00:00.000Z\","
			 "\"policy_version\":\"v2\",\"stage\":\"request\",\"verdict\":\"block\",\"monitor\":false,"
			 "\"rule\":\"%s\",\"reason\":\"card\",\"detectors\":{\"card\":{\"count\":1,\"samples\":[]}},"
			 "\"flow\":{\"id\":%zu,\"source\":\"explicit\",\"host\":\"rules.example\",\"dst_port\":443}}\n",
			 id, AGENTS[0], rules[i].rule, i);
		rc = post_events(c, tokens[0], ev, &out);
		ck_assert_msg(rc == 200, "%d %s", rc, out);
		free(out);
		snprintf(detail, sizeof detail, "/api/v1/events/%s/detail", id);
		j = get_json(c, admin, detail, 200);
		json_t *ex = json_object_get(j, "explain"), *src = json_object_get(ex, "source");
		const char *path = json_string_value(json_object_get(src, "path"));
		const char *why = json_string_value(json_object_get(ex, "source_unavailable"));
		char *text = json_dumps(ex, JSON_SORT_KEYS);
		if (rules[i].source)
			ck_assert_msg(path && !strcmp(path, rules[i].source) && jint(src, "highlight") == 7 &&
					      jint(src, "version") == 2,
				      "%s: %s", rules[i].rule, text);
		else
			ck_assert_msg(why && !strcmp(why, "file_not_in_bundle"), "%s: %s", rules[i].rule, text);
		free(text);
		json_decref(j);
	}

	/* activate: v1 for everyone, v2 for the canaries (CLI), then half of prod (API) */
	j = cli_json(c, (const char *const[]){"policy", "activate", "1", NULL});
	ck_assert_int_eq(jint(j, "targets"), N_AGENTS);
	json_decref(j);
	j = cli_json(c, (const char *const[]){"policy", "activate", "2", "--labels", "ring=canary", NULL});
	int64_t canary_rollout = jint(j, "rollout");
	ck_assert_int_eq(jint(j, "targets"), N_CANARY);
	json_decref(j);
	int prod_half = 0;
	for (int i = N_CANARY; i < N_AGENTS; i++)
		prod_half += bucket(AGENTS[i]) < 50;
	const char half[] = "{\"labels\":{\"ring\":\"prod\"},\"percent\":50}";
	rc = req(c, "POST", "/api/v1/policies/2/activate", admin, "application/json", NULL, half, strlen(half), &out);
	j = json_loads(out, 0, NULL);
	ck_assert_msg(rc == 201 && j, "%d %s", rc, out);
	ck_assert_int_eq(jint(j, "targets"), prod_half);
	int64_t prod_rollout = jint(j, "rollout");
	json_decref(j), free(out);
	const char bad_body[] = "{\"percent\":0}";
	ck_assert_int_eq(req(c, "POST", "/api/v1/policies/2/activate", admin, "application/json", NULL, bad_body,
			     strlen(bad_body), NULL),
			 400);

	/* status from real status posts: one canary runs v2, the others pending */
	post_status(c, tokens[0], AGENTS[0], "{\"version\":2,\"source\":\"console\",\"activated_at\":null,"
					     "\"shadow_version\":null,\"last_error\":null,\"failed_version\":null}", 204);
	post_status(c, tokens[3], AGENTS[3], "{\"version\":\"2\"}", 400);
	j = get_json(c, admin, "/api/v1/agents", 200);
	ck_assert_msg(json_is_null(json_object_get(json_array_get(json_object_get(j, "agents"), 3), "status")),
		      "a refused status post was stored");
	json_decref(j);
	j = cli_json(c, (const char *const[]){"policy", "status", "2", NULL});
	ck_assert_int_eq(jint(j, "targeted"), N_CANARY + prod_half);
	ck_assert_int_eq(jint(j, "active"), 1);
	ck_assert_int_eq(jint(j, "failed"), 0);
	ck_assert_int_eq(jint(j, "pending"), N_CANARY + prod_half - 1);
	ck_assert_int_eq(json_array_size(json_object_get(j, "pending_agents")), N_CANARY + prod_half - 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "pending_agents"), 0), "agent_id")),
			 AGENTS[1]);
	json_decref(j);
	/* one canary fails v2: 1 of 2 reporting is over 0.2, but halting needs 2 */
	post_status(c, tokens[1], AGENTS[1], "{\"version\":1,\"source\":\"console\",\"failed_version\":2,"
					     "\"last_error\":\"policy.lua:4: boom\"}", 204);
	j = get_json(c, admin, "/api/v1/policies/2/status", 200);
	ck_assert_int_eq(jint(j, "failed"), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "failures"), 0), "agent_id")),
			 AGENTS[1]);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "failures"), 0), "error")),
			 "policy.lua:4: boom");
	json_decref(j);
	j = get_json(c, admin, "/api/v1/rollouts", 200);
	ck_assert_str_eq(json_string_value(json_object_get(rollout_by_id(j, canary_rollout), "state")), "running");
	json_decref(j);
	/* the same report again does not count twice; a second agent failing halts it */
	post_status(c, tokens[1], AGENTS[1], "{\"version\":1,\"failed_version\":2,\"last_error\":\"policy.lua:4: boom\"}",
		    204);
	post_status(c, tokens[2], AGENTS[2], "{\"version\":1,\"failed_version\":2,\"last_error\":\"policy.lua:4: boom\"}",
		    204);
	j = get_json(c, admin, "/api/v1/rollouts", 200);
	json_t *r = rollout_by_id(j, canary_rollout);
	ck_assert_str_eq(json_string_value(json_object_get(r, "state")), "halted");
	ck_assert_str_eq(json_string_value(json_object_get(r, "halt_reason")), "2 of 3 agents failed: policy.lua:4: boom");
	/* only the rollout that failed halts */
	ck_assert_str_eq(json_string_value(json_object_get(rollout_by_id(j, prod_rollout), "state")),
			 prod_half >= 2 ? "running" : "running");
	json_decref(j);

	/* labels: the API moves a prod agent to canary, the CLI moves it back */
	char path[256], lab[] = "{\"labels\":{\"ring\":\"canary\",\"site\":\"paris\"}}";
	snprintf(path, sizeof path, "/api/v1/agents/%s/labels", AGENTS[5]);
	rc = req(c, "PUT", path, admin, "application/json", NULL, lab, strlen(lab), &out);
	ck_assert_msg(rc == 200 && strstr(out, "\"site\":\"paris\""), "%d %s", rc, out);
	free(out);
	ck_assert_int_eq(req(c, "PUT", path, tokens[5], "application/json", NULL, lab, strlen(lab), NULL), 403);
	const char badlab[] = "{\"labels\":{\"Bad Key\":\"x\"}}";
	ck_assert_int_eq(req(c, "PUT", path, admin, "application/json", NULL, badlab, strlen(badlab), NULL), 400);
	j = get_json(c, admin, "/api/v1/agents", 200);
	json_t *listed = json_array_get(json_object_get(j, "agents"), 5);
	ck_assert_str_eq(json_string_value(json_object_get(listed, "agent_id")), AGENTS[5]);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(listed, "labels"), "site")), "paris");
	json_decref(j);
	/* labels an agent sends at enrollment are checked like an admin's */
	char body[512];
	snprintf(body, sizeof body, "{\"enroll_secret\":\"%s\",\"agent_id\":\"%s\",\"hostname\":\"h\",\"version\":\"1\","
		 "\"labels\":{\"ring\":7}}", SECRET, AGENTS[5]);
	ck_assert_int_eq(req(c, "POST", "/api/v1/enroll", NULL, "application/json", NULL, body, strlen(body), NULL), 400);
	j = cli_json(c, (const char *const[]){"agent", "labels", AGENTS[5], "ring=prod", NULL});
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "labels"), "ring")), "prod");
	json_decref(j);
	rc = cons_cli(c, NULL, &err, (const char *const[]){"agent", "labels", "e0000000-0000-4000-8000-000000000009", "a=b", NULL});
	ck_assert_msg(rc == 1 && strstr(err, "no enrolled agent"), "%d %s", rc, err);
	free(err);

	/* rollback: v2 for the whole fleet, then back to v1's content as v3 */
	j = cli_json(c, (const char *const[]){"policy", "activate", "2", NULL});
	ck_assert_int_eq(jint(j, "targets"), N_AGENTS);
	json_decref(j);
	rc = req(c, "POST", "/api/v1/policies/rollback", admin, "application/json", NULL, NULL, 0, &out);
	j = json_loads(out, 0, NULL);
	ck_assert_msg(rc == 201 && j, "%d %s", rc, out);
	free(out);
	ck_assert_int_eq(jint(j, "version"), 3);
	ck_assert_int_eq(jint(j, "content_of"), 1);
	json_decref(j);
	rc = cons_cli(c, &out, NULL, (const char *const[]){"policy", "diff", "1", "3", NULL});
	ck_assert_msg(rc == 0 && !strstr(out, "@@"), "v3 differs from v1: %s", out);
	free(out);
	j = cli_json(c, (const char *const[]){"policy", "status", "3", NULL});
	ck_assert_int_eq(jint(j, "targeted"), N_AGENTS);
	json_decref(j);
	/* a second rollback goes back to v2's content (the fleet's previous) */
	j = cli_json(c, (const char *const[]){"policy", "rollback", NULL});
	ck_assert_int_eq(jint(j, "version"), 4);
	ck_assert_int_eq(jint(j, "content_of"), 2);
	json_decref(j);

	/* shadow v1 on a sample, real shadow events, and its report */
	const char shadow[] = "{\"sample_percent\":10}";
	rc = req(c, "POST", "/api/v1/policies/1/shadow", admin, "application/json", NULL, shadow, strlen(shadow), &out);
	ck_assert_msg(rc == 201, "%d %s", rc, out);
	free(out);
	bytebuf_t nd;
	bytebuf_init(&nd, 0);
	for (int i = 0; i < 5; i++)
		bytebuf_appendf(&nd,
				"{\"event\":\"shadow\",\"id\":\"01900000-0000-7000-8000-%012d\",\"agent_id\":\"%s\","
				"\"time\":\"2026-11-18T10:00:0%d.000Z\",\"policy_version\":\"v1\",\"stage\":\"request\","
				"\"verdict\":\"redact\",\"monitor\":false,\"rule\":\"policy.lua:7\",\"reason\":\"r\","
				"\"detectors\":{\"card\":{\"count\":1,\"samples\":[]}},\"app\":{\"path\":\"/usr/bin/curl\"},"
				"\"flow\":{\"id\":%d,\"source\":\"explicit\",\"host\":\"%s\",\"dst_port\":443},"
				"\"active_verdict\":\"%s\",\"active_policy_version\":\"v4\"}\n",
				i, AGENTS[0], i, i, i < 3 ? "paste.example" : "drive.example", i < 4 ? "block" : "pass");
	bytebuf_cstr(&nd);
	rc = post_events(c, tokens[0], nd.data, &out);
	ck_assert_msg(rc == 200, "%d %s", rc, out);
	free(out);
	bytebuf_free(&nd);
	post_status(c, tokens[0], AGENTS[0], "{\"version\":4,\"shadow_version\":1,\"shadow_evaluated\":40,\"shadow_changed\":5}",
		    204);
	j = cli_json(c, (const char *const[]){"policy", "shadow-report", "1", NULL});
	ck_assert_int_eq(jint(j, "evaluated"), 40);
	ck_assert_int_eq(jint(j, "changed"), 5);
	ck_assert_int_eq(jint(json_object_get(j, "transitions"), "block->redact"), 4);
	ck_assert_int_eq(jint(json_object_get(j, "transitions"), "pass->redact"), 1);
	ck_assert_int_eq(jint(json_object_get(j, "by_host"), "paste.example"), 3);
	ck_assert_int_eq(jint(json_object_get(j, "by_detector"), "card"), 5);
	ck_assert_int_eq(jint(json_object_get(j, "by_rule"), "policy.lua:7"), 5);
	ck_assert_int_eq(jint(json_object_get(j, "by_app"), "/usr/bin/curl"), 5);
	json_decref(j);
	j = get_json(c, admin, "/api/v1/policies/1/shadow-report?since=2026-11-18T10:00:03Z", 200);
	ck_assert_int_eq(jint(j, "changed"), 2);
	json_decref(j);
	j = get_json(c, admin, "/api/v1/policies/2/shadow-report", 200);
	ck_assert_int_eq(jint(j, "changed"), 0);
	json_decref(j);

	/* the CLI shadows too, for a label, sampled; the rollouts list says so */
	j = cli_json(c, (const char *const[]){"policy", "shadow", "2", "--labels", "ring=canary", "--sample", "5", NULL});
	ck_assert_int_eq(jint(j, "targets"), N_CANARY);
	int64_t shadow_rollout = jint(j, "rollout");
	json_decref(j);
	j = cli_json(c, (const char *const[]){"policy", "rollouts", NULL});
	r = rollout_by_id(j, shadow_rollout);
	ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "shadow");
	ck_assert_int_eq(jint(r, "sample_percent"), 5);
	ck_assert_str_eq(json_string_value(json_object_get(r, "state")), "running");
	json_decref(j);
	j = cli_json(c, (const char *const[]){"policy", "status", "2", NULL});
	ck_assert_int_eq(jint(j, "targeted"), N_CANARY);
	json_decref(j);

	/* audit: every change, with who did it; pages with a cursor */
	j = cli_json(c, (const char *const[]){"audit", "list", "--limit", "1000", NULL});
	ck_assert(audit_has(j, cli_actor, "policy.push"));
	ck_assert(audit_has(j, cli_actor, "rollout.activate"));
	ck_assert(audit_has(j, cli_actor, "agent.labels"));
	ck_assert(audit_has(j, cli_actor, "admin.token.create"));
	ck_assert(audit_has(j, cli_actor, "policy.rollback"));
	ck_assert(audit_has(j, admin_actor, "rollout.activate"));
	ck_assert(audit_has(j, admin_actor, "rollout.shadow"));
	ck_assert(audit_has(j, admin_actor, "agent.labels"));
	ck_assert(audit_has(j, admin_actor, "policy.rollback"));
	ck_assert(audit_has(j, "console", "rollout.halt"));
	size_t total = json_array_size(json_object_get(j, "audit"));
	json_decref(j);
	size_t seen = 0;
	char page[256] = "/api/v1/audit?limit=3";
	for (int guard = 0; guard < 100; guard++) {
		j = get_json(c, admin, page, 200);
		seen += json_array_size(json_object_get(j, "audit"));
		const char *next = json_string_value(json_object_get(j, "next_cursor"));
		if (next)
			snprintf(page, sizeof page, "/api/v1/audit?limit=3&cursor=%s", next);
		json_decref(j);
		if (!next)
			break;
	}
	ck_assert_int_eq(seen, total);

	for (int i = 0; i < N_AGENTS; i++)
		free(tokens[i]);
	free(mask), free(broken), free(failing), free(block), free(admin);
}

START_TEST(sqlite_policy)
{
	cons_t c = cons_start(NULL);
	policy_path(&c);
	/* the console stored bundles signed by its own key, made 0600 */
	char key[4200];
	snprintf(key, sizeof key, "%s/bundle-signing.key", c.dir);
	struct stat st;
	ck_assert(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600);
	cons_stop(&c);
}
END_TEST

/* Offline signing: a console that holds only public keys. */
START_TEST(offline_keys)
{
	char *dir = th_path("offline"), key[4200], pub[4200], other[4200], otherpub[4200];
	mkdir(dir, 0700);
	snprintf(key, sizeof key, "%s/admin.key", dir);
	snprintf(pub, sizeof pub, "%s/admin.pub", dir);
	snprintf(other, sizeof other, "%s/other.key", dir);
	char *line = NULL, *err = NULL;
	int rc;
	ck_assert_int_eq(cons_cli(NULL, &line, &err, (const char *const[]){"policy", "keygen", "--out", key, NULL}), 0);
	ck_assert_msg(!strncmp(line, "ed25519 ", 8), "keygen printed %s", line);
	th_write_file(pub, line, strlen(line), 0644);
	free(err);
	char *otherline = NULL;
	ck_assert_int_eq(cons_cli(NULL, &otherline, NULL, (const char *const[]){"policy", "keygen", "--out", other, NULL}), 0);
	snprintf(otherpub, sizeof otherpub, "%s/other.pub", dir);

	/* init makes the same state as run: the keys copied (0600), no signing key */
	char idir[4200], ipath[4300];
	snprintf(idir, sizeof idir, "%s/init-state", dir);
	ck_assert_int_eq(cons_cli(NULL, NULL, NULL, (const char *const[]){"init", "--state-dir", idir, "--bundle-keys", pub, NULL}),
			 0);
	struct stat st;
	snprintf(ipath, sizeof ipath, "%s/bundle-keys", idir);
	ck_assert(stat(ipath, &st) == 0 && (st.st_mode & 0777) == 0600);
	snprintf(ipath, sizeof ipath, "%s/bundle-signing.key", idir);
	ck_assert_msg(access(ipath, F_OK) != 0, "init --bundle-keys made a signing key");
	/* a key list that is not one is refused, naming the file */
	rc = cons_cli(NULL, NULL, &err, (const char *const[]){"init", "--state-dir", idir, "--bundle-keys", key, NULL});
	ck_assert_msg(rc == 2 && strstr(err, key), "%d %s", rc, err);
	free(err);

	cons_t c = cons_start_args(NULL, true, (const char *const[]){"--bundle-keys", pub, NULL});
	char path[4200];
	snprintf(path, sizeof path, "%s/bundle-signing.key", c.dir);
	ck_assert_msg(access(path, F_OK) != 0, "a console in offline-signing mode made a signing key");
	/* enrollment hands agents the offline key, not one of the console's */
	json_t *ans = NULL;
	char *tok = enroll_labels(&c, AGENTS[0], NULL, &ans);
	char key_id[17];
	snprintf(key_id, sizeof key_id, "%.16s", line + 8);
	ck_assert_msg(strstr(json_string_value(json_object_get(ans, "bundle_keys")), key_id), "%s",
		      json_string_value(json_object_get(ans, "bundle_keys")));
	json_decref(ans);

	char *pol = policy_dir("offline-pol", "redact(found)", "redact", "pass", false);
	/* a directory cannot be pushed: the console cannot sign */
	rc = cons_cli(&c, NULL, &err, (const char *const[]){"policy", "push", pol, NULL});
	ck_assert_msg(rc == 1 && strstr(err, "policy sign"), "%d %s", rc, err);
	free(err);
	/* signed offline as v5 (tests run there too) and pushed: accepted */
	char f5[4200], f4[4200], fo[4200];
	snprintf(f5, sizeof f5, "%s/v5.dlpbundle", dir);
	snprintf(f4, sizeof f4, "%s/v4.dlpbundle", dir);
	snprintf(fo, sizeof fo, "%s/other.dlpbundle", dir);
	json_t *j = cli_json(NULL, (const char *const[]){"policy", "sign", pol, "--key", key, "--version", "5", "--out", f5,
							 "--message", "offline", NULL});
	ck_assert_int_eq(jint(j, "version"), 5);
	json_decref(j);
	j = cli_json(&c, (const char *const[]){"policy", "push", f5, NULL});
	ck_assert_int_eq(jint(j, "version"), 5);
	ck_assert_int_eq(jint(json_object_get(j, "tests"), "passed"), 2);
	json_decref(j);
	/* an older version, and one signed by a key the console does not know: refused */
	j = cli_json(NULL, (const char *const[]){"policy", "sign", pol, "--key", key, "--version", "4", "--out", f4, NULL});
	json_decref(j);
	rc = cons_cli(&c, NULL, &err, (const char *const[]){"policy", "push", f4, NULL});
	ck_assert_msg(rc == 1 && strstr(err, "version 4") && strstr(err, "version 5"), "%d %s", rc, err);
	free(err);
	j = cli_json(NULL, (const char *const[]){"policy", "sign", pol, "--key", other, "--version", "6", "--out", fo, NULL});
	json_decref(j);
	rc = cons_cli(&c, NULL, &err, (const char *const[]){"policy", "push", fo, NULL});
	ck_assert_msg(rc == 1 && strstr(err, "key"), "%d %s", rc, err);
	free(err);
	/* the API takes a signed document too, and refuses the unknown key with 422 */
	char *admin = admin_token(&c), *out = NULL;
	size_t len;
	char *doc = th_read_file(fo, &len);
	rc = req(&c, "POST", "/api/v1/policies", admin, "application/vnd.dlpgate.bundle+json", NULL, doc, len, &out);
	ck_assert_msg(rc == 422 && strstr(out, "bundle_refused"), "%d %s", rc, out);
	free(out), free(doc);
	char f7[4200];
	snprintf(f7, sizeof f7, "%s/v7.dlpbundle", dir);
	json_decref(cli_json(NULL, (const char *const[]){"policy", "sign", pol, "--key", key, "--version", "7", "--out", f7, NULL}));
	doc = th_read_file(f7, &len);
	rc = req(&c, "POST", "/api/v1/policies", admin, "application/vnd.dlpgate.bundle+json", NULL, doc, len, &out);
	ck_assert_msg(rc == 201 && strstr(out, "\"version\":7"), "%d %s", rc, out);
	free(out), free(doc);
	ck_assert_int_eq(count_versions(&c), 2);
	/* rollback cannot sign here: it says to sign the old content offline */
	json_decref(cli_json(&c, (const char *const[]){"policy", "activate", "5", NULL}));
	json_decref(cli_json(&c, (const char *const[]){"policy", "activate", "7", NULL}));
	rc = cons_cli(&c, NULL, &err, (const char *const[]){"policy", "rollback", NULL});
	ck_assert_msg(rc == 1 && strstr(err, "version 5") && strstr(err, "policy sign"), "%d %s", rc, err);
	free(err);
	ck_assert_int_eq(count_versions(&c), 2);

	/* rotation: "other" signs nothing the console accepts until a bundle
	 * signed by the trusted key introduces it; then it may retire the old */
	th_write_file(otherpub, otherline, strlen(otherline), 0644);
	char f8[4200], f9[4200], f10[4200], f11[4200], old_id[17], new_id[17];
	snprintf(f8, sizeof f8, "%s/v8.dlpbundle", dir);
	snprintf(f9, sizeof f9, "%s/v9.dlpbundle", dir);
	snprintf(f10, sizeof f10, "%s/v10.dlpbundle", dir);
	snprintf(f11, sizeof f11, "%s/v11.dlpbundle", dir);
	snprintf(old_id, sizeof old_id, "%.16s", line + 8);
	snprintf(new_id, sizeof new_id, "%.16s", otherline + 8);
	json_decref(cli_json(NULL, (const char *const[]){"policy", "sign", pol, "--key", other, "--version", "9", "--out", f9, NULL}));
	rc = cons_cli(&c, NULL, &err, (const char *const[]){"policy", "push", f9, NULL});
	ck_assert_msg(rc == 1, "a key never introduced was trusted: %s", err);
	free(err);
	json_decref(cli_json(NULL, (const char *const[]){"policy", "sign", pol, "--key", key, "--version", "8", "--out", f8,
							 "--next-key", otherpub, NULL}));
	ck_assert_int_eq(jint(j = cli_json(&c, (const char *const[]){"policy", "push", f8, NULL}), "version"), 8);
	json_decref(j);
	j = cli_json(&c, (const char *const[]){"policy", "show", "8", NULL});
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "next_keys"), 0)), new_id);
	json_decref(j);
	ck_assert_int_eq(jint(j = cli_json(&c, (const char *const[]){"policy", "push", f9, NULL}), "version"), 9);
	json_decref(j);
	char *tok2 = enroll_labels(&c, AGENTS[1], NULL, &ans);
	const char *keys = json_string_value(json_object_get(ans, "bundle_keys"));
	ck_assert_msg(strstr(keys, old_id) && strstr(keys, new_id), "%s", keys);
	json_decref(ans);
	json_decref(cli_json(NULL, (const char *const[]){"policy", "sign", pol, "--key", other, "--version", "10", "--out", f10,
							 "--retire-key", old_id, NULL}));
	json_decref(cli_json(&c, (const char *const[]){"policy", "push", f10, NULL}));
	json_decref(cli_json(NULL, (const char *const[]){"policy", "sign", pol, "--key", key, "--version", "11", "--out", f11, NULL}));
	rc = cons_cli(&c, NULL, &err, (const char *const[]){"policy", "push", f11, NULL});
	ck_assert_msg(rc == 1, "a retired key was trusted: %s", err);
	free(err);
	char *tok3 = enroll_labels(&c, AGENTS[2], NULL, &ans);
	keys = json_string_value(json_object_get(ans, "bundle_keys"));
	ck_assert_msg(!strstr(keys, old_id) && strstr(keys, new_id), "%s", keys);
	json_decref(ans);
	free(tok2), free(tok3);
	free(admin), free(tok), free(pol), free(line), free(otherline), free(dir);
	cons_stop(&c);
}
END_TEST

/* The policy generation as psql reads it. */
static int64_t pg_generation(const char *url)
{
	char *out = NULL;
	int rc = th_run((char *const[]){"psql", (char *)url, "-tAc", "SELECT gen FROM policy_generation", NULL}, NULL, 0,
			&out, NULL, NULL, 20000);
	ck_assert_msg(rc == 0, "psql: %d %s", rc, out);
	int64_t gen = strtoll(out, NULL, 10);
	free(out);
	return gen;
}

/* A psql session LISTENing for dlpgate_policy for ms milliseconds; its log
 * names each notification it received. */
static th_proc pg_listen(const char *url, const char *log, int ms)
{
	char sleep[64];
	snprintf(sleep, sizeof sleep, "SELECT pg_sleep(%g)", ms / 1000.0);
	th_proc p = th_spawn((char *const[]){"psql", (char *)url, "-c", "LISTEN " STORE_CHANNEL, "-c", sleep, "-c",
					     "SELECT 1", NULL},
			     log);
	usleep(500 * 1000); /* listening before anything is changed */
	return p;
}

START_TEST(postgresql_policy)
{
	th_postgres pg = th_postgres_start();
	cons_t c = cons_start(pg.url);
	policy_path(&c);
	/* every change of targeting bumps the generation and NOTIFYs the other
	 * consoles, from the CLI as from the API, in the change's transaction */
	int64_t gen = pg_generation(pg.url);
	th_proc l = pg_listen(pg.url, "pg-listen.log", 3000);
	json_decref(cli_json(&c, (const char *const[]){"policy", "activate", "2", "--labels", "ring=canary", NULL}));
	ck_assert_int_eq(pg_generation(pg.url), gen + 1);
	json_decref(cli_json(&c, (const char *const[]){"agent", "labels", AGENTS[0], "ring=prod", NULL}));
	ck_assert_int_eq(pg_generation(pg.url), gen + 2);
	/* reading changes nothing */
	json_decref(cli_json(&c, (const char *const[]){"policy", "status", "2", NULL}));
	ck_assert_int_eq(pg_generation(pg.url), gen + 2);
	ck_assert_int_eq(th_wait(&l, 20000), 0);
	char *log = th_log(&l);
	int notes = 0;
	for (const char *p = log; (p = strstr(p, "notification \"" STORE_CHANNEL "\"")); p++)
		notes++;
	ck_assert_msg(notes == 2, "%d notifications: %s", notes, log);
	free(log);
	cons_stop(&c);
	th_postgres_stop(&pg);
}
END_TEST

/* --help everywhere, and the usage mistakes. */
START_TEST(cli_usage)
{
	static const char *const helps[][4] = {{"policy", "--help"},	     {"policy", "push", "--help"},
					       {"policy", "sign", "--help"}, {"agent", "--help"},
					       {"audit", "--help"},	     {"policy", "shadow-report", "--help"}};
	for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
		char *out = NULL;
		ck_assert_int_eq(cons_cli(NULL, &out, NULL, helps[i]), 0);
		ck_assert_msg(strstr(out, "usage: dlpgate-console"), "%s %s: %s", helps[i][0], helps[i][1], out);
		free(out);
	}
	static const char *const bad[][8] = {
		{"policy", "frobnicate"},
		{"policy", "push", "/nonexistent", "--state-dir", "/tmp"},
		{"policy", "list"},
		{"policy", "list", "--state-dir", "/nonexistent-state-dir"},
		{"policy", "sign", "/tmp", "--version", "1"},
		{"policy", "activate", "1", "--labels", "Bad=1", "--state-dir"},
		{"run", "--listen", "127.0.0.1:1", "--state-dir", "/tmp/x", "--rollout-halt-share", "1.5"},
		{"policy", "activate", "1", "--labels", "Bad=1", "--state-dir", "/tmp"},
	};
	static const char *const want[] = {"unknown command", "/nonexistent", "--state-dir DIR is required",
					   "does not exist", "--key KEYFILE", "needs a value", "--rollout-halt-share 1.5",
					   "labels: label \"Bad\": keys are 1..63 of a-z 0-9 _ . -"};
	static const int codes[] = {2, 2, 2, 1, 2, 2, 2, 2};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *err = NULL;
		int rc = cons_cli(NULL, NULL, &err, bad[i]);
		ck_assert_msg(rc == codes[i] && strstr(err, want[i]), "case %zu: exit %d: %s", i, rc, err);
		free(err);
	}
}
END_TEST

Suite *console_policy_suite(void)
{
	Suite *s = suite_create("console_policy");
	TCase *t = tcase_create("console_policy");
	tcase_set_timeout(t, 180);
	tcase_add_test(t, cli_usage);
	tcase_add_test(t, sqlite_policy);
	tcase_add_test(t, offline_keys);
	tcase_add_test(t, postgresql_policy);
	suite_add_tcase(s, t);
	return s;
}
