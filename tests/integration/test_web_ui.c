/*
 * The console's web UI in a real browser (issue 13): a real console
 * serving build/web, two real agents enrolled to it running a policy it
 * pushed, real proxied uploads to a real nginx, and one hostile agent
 * whose every field is markup. Then tests/ui/console_ui.mjs drives
 * Debian's Chromium (playwright-core) through sign-in, the dashboard, the
 * explorer, an event's "why", incidents, an activation and a rollback,
 * the roles, cookies, CSRF, CSP and the XSS attempts, and saves
 * screenshots under BUILD/ui-screens. This suite sets the world up, tells
 * the script what was sent (a JSON file) and asserts its exit status.
 *
 *   agent A (ring=a)   3 card uploads to https://127.0.0.1  -> block
 *   agent B (ring=b)   2 card uploads to https://localhost  -> block
 *                      1 email upload to https://localhost  -> redact
 *                      1 upload with the marker, to a path with markup
 *                        -> block (policy reason and detector name are
 *                        markup too)
 *   hostile agent      1 event posted by itself: host, path, app, reason,
 *                      rule, detector, sample and hostname all markup
 *                      -> block (the explicit proxy knows no app: the
 *                      hostile agent's event covers the app path)
 */
#include "console_proc.h"
#include "dlp.h"
#include "suites.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CARD "4111 1111 1111 1111"
/* Each XSS attempt sets window.__xss when it runs; the script asserts it never does. */
#define XSS_DETECTOR "<img src=x onerror=window.__xss=1>"
#define XSS_REASON "<script>window.__xss=2</script><img src=x onerror=window.__xss=2>"
#define XSS_PATH "/x/<svg/onload=window.__xss=3>"
#define HOSTILE_AGENT "eeeeeeee-0000-4000-8000-00000000000e"

/* The policy the console pushes; v2 also blocks email addresses. */
#define POLICY(EMAIL_VERDICT)                                                                                          \
	"local dlp = require \"dlp\"\n"                                                                                \
	"local pii = require \"pii\"\n"                                                                                \
	"local marker = dlp.detector{ regex = \"MARK-[0-9]{4}\", keywords = {\"MARK-\"} }\n"                         \
	"function on_request(req, flow)\n"                                                                             \
	"  local found = req:scan({card = pii.credit_card, email = pii.email, [\"" XSS_DETECTOR "\"] = marker})\n"   \
	"  if found.card then return dlp.block(\"card upload\", found) end\n"                                          \
	"  if found[\"" XSS_DETECTOR "\"] then return dlp.block(\"" XSS_REASON "\", found) end\n"                      \
	"  if found.email then return " EMAIL_VERDICT " end\n"                                                         \
	"  return dlp.pass()\n"                                                                                        \
	"end\n"
static const char v1_policy[] = POLICY("dlp.redact(found)");
static const char v2_policy[] = POLICY("dlp.block(\"email address\", found)");
static const char policy_tests[] = "return {\n"
				   "  { name = \"cards are blocked\", request = { body = \"pay " CARD "\" },"
				   " expect = { verdict = \"block\" } },\n"
				   "}\n";

static char *write_policy(const char *name, const char *policy)
{
	char *dir = th_path(name), p[800];
	mkdir(dir, 0700);
	snprintf(p, sizeof p, "%s/policy.lua", dir);
	th_write_file(p, policy, strlen(policy), 0644);
	snprintf(p, sizeof p, "%s/tests", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/tests/t.lua", dir);
	th_write_file(p, policy_tests, strlen(policy_tests), 0644);
	return dir;
}

static void cli_ok(cons_t *c, const char *const args[])
{
	char *out = NULL, *err = NULL;
	int rc = cons_cli(c, &out, &err, args);
	if (rc != 0)
		th_fail("dlpgate-console %s %s: exit %d: %s%s", args[0], args[1], rc, out, err);
	free(out), free(err);
}

static char *role_token(cons_t *c, const char *role)
{
	char *out = NULL, *err = NULL;
	int rc = cons_cli(c, &out, &err, (const char *const[]){"admin", "token", "create", "--role", role, NULL});
	if (rc != 0)
		th_fail("admin token create --role %s: exit %d: %s", role, rc, err);
	out[strcspn(out, "\n")] = '\0';
	free(err);
	return out;
}

static dlp_t agent_start(const world_t *w, cons_t *c, const char *labels)
{
	char console[64];
	snprintf(console, sizeof console, "https://127.0.0.1:%d", c->port);
	const char *args[] = {"--console", console, "--console-ca", c->pem, "--enroll-secret", SECRET, "--labels",
			      labels, "--policy-wait", "5", NULL};
	return dlp_start(w->ca.cert_path, "{\"report\": {\"batch_wait_ms\": 100, \"status_interval_s\": 1}}", args);
}

/* Polls path (admin) until the integer at key reaches want. */
static void wait_count(cons_t *c, const char *admin, const char *path, const char *key, json_int_t want)
{
	json_int_t got = -1;
	for (int waited = 0; waited < 20000; waited += 200) {
		json_t *j = get_json(c, admin, path, 200);
		json_t *v = json_object_get(j, key);
		got = json_is_array(v) ? (json_int_t)json_array_size(v) : json_integer_value(v);
		json_decref(j);
		if (got >= want)
			return;
		usleep(200000);
	}
	th_fail("%s: %s is %lld, want %lld", path, key, (long long)got, (long long)want);
}

/* One upload through agent d with curl; the status. */
static int upload(dlp_t *d, const char *target, const char *body)
{
	const char *argv[] = {"curl", "-q", "-sS", "--noproxy", "", "--proxy", d->proxy, "--cacert", d->ca_path,
			      "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", "--data-binary", body, target, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 30000);
	int status = atoi(out ? out : "0");
	if (rc != 0 && rc != 22)
		th_fail("upload to %s: curl exit %d: %s", target, rc, err);
	free(out), free(err);
	return status;
}

/* The hostile agent: enrolled with markup as its hostname, it posts one
 * event of its own whose every text field is markup. */
static void hostile_event(cons_t *c)
{
	char body[1024], *out = NULL;
	snprintf(body, sizeof body,
		 "{\"enroll_secret\":\"%s\",\"agent_id\":\"%s\",\"hostname\":\"<img src=x onerror=window.__xss=5>\","
		 "\"version\":\"<b>1</b>\"}",
		 SECRET, HOSTILE_AGENT);
	int st = req(c, "POST", "/api/v1/enroll", NULL, "application/json", NULL, body, strlen(body), &out);
	ck_assert_msg(st == 200, "hostile enroll: %d %s", st, out);
	json_t *j = json_loads(out, 0, NULL);
	char *tok = strdup(json_string_value(json_object_get(j, "token")));
	json_decref(j);
	free(out);
	char now[40];
	time_t t = time(NULL);
	strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%S.000Z", gmtime(&t));
	json_t *ev = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:{s:{s:i, s:[s]}}, s:{s:s, s:s, s:s}, "
		"s:{s:i, s:s, s:s, s:i, s:s, s:s, s:s}}",
		"event", "verdict", "id", "01900000-0000-7000-8000-00000000e001", "agent_id", HOSTILE_AGENT, "time", now,
		"policy_version", "<i>v9</i>", "stage", "request", "verdict", "block", "monitor", 0, "rule",
		"<img src=x onerror=window.__xss=6>:3", "reason", "<img src=x onerror=window.__xss=7>", "detectors",
		"<svg/onload=window.__xss=8>", "count", 1, "samples", "<img src=x onerror=window.__xss=9>", "app", "path",
		"/tmp/<img src=x onerror=window.__xss=10>", "signing_id", "<b>sid</b>", "team_id", "<u>team</u>", "flow",
		"id", 1, "source", "explicit", "host", "<img src=x onerror=window.__xss=11>.example", "dst_port", 443,
		"method", "<b>POST</b>", "path", "/<img src=x onerror=window.__xss=12>", "tls", "<i>TLSv1.3</i>");
	char *line = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	st = post_events(c, tok, line, &out);
	ck_assert_msg(st == 200, "hostile event: %d %s", st, out);
	free(out), free(line), free(tok);
}

START_TEST(console_web_ui_in_chromium)
{
	const char *top = getenv("DLPGATE_TOP");
	ck_assert_msg(top, "DLPGATE_TOP is not set");
	char web[4200], script[4200], screens[4200], bin_dir[4096];
	snprintf(bin_dir, sizeof bin_dir, "%s", dlp_bin());
	*strrchr(bin_dir, '/') = '\0';
	snprintf(web, sizeof web, "%s/web", bin_dir);
	snprintf(script, sizeof script, "%s/tests/ui/console_ui.mjs", top);
	snprintf(screens, sizeof screens, "%s/ui-screens", bin_dir);
	char index[4300];
	snprintf(index, sizeof index, "%s/index.html", web);
	ck_assert_msg(access(index, R_OK) == 0, "%s is missing: make builds it", index);

	world_t w = world_new();
	th_nginx ng = th_nginx_start(&w.server, "location / { return 200 \"ok\\n\"; }");
	cons_t c = cons_start_args(NULL, true, (const char *const[]){"--web-root", web, NULL});
	char *admin = role_token(&c, "admin"), *analyst = role_token(&c, "analyst"), *viewer = role_token(&c, "viewer");

	char *v1 = write_policy("ui-v1", v1_policy), *v2 = write_policy("ui-v2", v2_policy);
	cli_ok(&c, (const char *const[]){"policy", "push", v1, "--message", "block cards, mask emails", NULL});
	cli_ok(&c, (const char *const[]){"policy", "push", v2, "--message", "block emails too", NULL});
	cli_ok(&c, (const char *const[]){"policy", "activate", "1", NULL});
	dlp_t a = agent_start(&w, &c, "ring=a"), b = agent_start(&w, &c, "ring=b");
	wait_count(&c, admin, "/api/v1/policies/1/status", "active", 2);

	/* the traffic */
	char u[256];
	snprintf(u, sizeof u, "https://127.0.0.1:%d/upload", ng.port);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(upload(&a, u, "pay " CARD " now"), 403);
	snprintf(u, sizeof u, "https://localhost:%d/form", ng.port);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(upload(&b, u, "card=" CARD), 403);
	ck_assert_int_eq(upload(&b, u, "write to jane.doe@acme-corp.com"), 200);
	/* to a path that is markup */
	snprintf(u, sizeof u, "https://localhost:%d" XSS_PATH, ng.port);
	ck_assert_int_eq(upload(&b, u, "ticket MARK-1234"), 403);
	hostile_event(&c);
	const int blocks = 3 + 2 + 1 + 1, redacts = 1;
	wait_count(&c, admin, "/api/v1/events?verdict=block", "events", blocks);
	wait_count(&c, admin, "/api/v1/events?verdict=redact", "events", redacts);

	/* what the script is told */
	char console_url[64];
	snprintf(console_url, sizeof console_url, "https://127.0.0.1:%d", c.port);
	json_t *cfg = json_pack(
		"{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:i, s:i, s:i, s:i, s:i}, s:s, s:s, s:s, s:s, s:i, s:s}", "url",
		console_url, "cert", c.pem, "screens", screens, "tokens", "admin", admin,
		"analyst", analyst, "viewer", viewer, "expect", "block", blocks, "redact", redacts, "card", 5,
		"host_localhost", 4, "agents", 3, "card_line", "  if found.card then return dlp.block(\"card upload\", found) end",
		"masked", "4111 **** **** 1111", "xss_detector", XSS_DETECTOR, "xss_reason", XSS_REASON,
		"rollback_to", 1, "hostile_agent", HOSTILE_AGENT);
	char *cfg_path = th_path("ui.json");
	char *cfg_text = json_dumps(cfg, JSON_INDENT(1));
	th_write_file(cfg_path, cfg_text, strlen(cfg_text), 0600);
	json_decref(cfg);
	free(cfg_text);

	const char *argv[] = {"node", script, cfg_path, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 120000);
	if (rc != 0)
		th_fail("tests/ui/console_ui.mjs: exit %d\n%s%s", rc, out, err);
	fputs(out, stdout);

	/* the UI's activation and rollback reached the real agents */
	wait_count(&c, admin, "/api/v1/policies/3/status", "active", 2);

	free(out), free(err), free(cfg_path);
	free(v1), free(v2), free(admin), free(analyst), free(viewer);
	dlp_stop(&a);
	dlp_stop(&b);
	cons_stop(&c);
	th_nginx_stop(&ng);
	world_free(&w);
}
END_TEST

Suite *web_ui_suite(void)
{
	Suite *s = suite_create("web_ui");
	TCase *t = tcase_create("web_ui");
	tcase_set_timeout(t, 180);
	tcase_add_test(t, console_web_ui_in_chromium);
	suite_add_tcase(s, t);
	return s;
}
