/*
 * Coaching (dlp.coach) through the explicit proxy with real curl and a
 * recording upstream: the page (JSON and HTML) names rule, reason and event
 * and shows only masked samples; the override form on the reserved path
 * lets the same app resend, once per token, and nothing else: forged,
 * reused, expired and other apps' tokens are refused, another app does not
 * inherit the override, a false-positive report lets nothing through, and
 * the reserved path never reaches the upstream. The browser half
 * (coach_browser.mjs, in Chromium) runs from here too.
 */
#include "console_proc.h"
#include "dlp.h"
#include "suites.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CARD "4111 1111 1111 1111"

static const char *coach_policy =
	"local dlp = require 'dlp'\n"
	"detectors = {\n"
	"  card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' },\n"
	"  aws = dlp.detector{ [[\\b(AKIA[A-Z0-9]{16})\\b]], keywords = {'AKIA'}, group = 1 },\n"
	"}\n"
	"function on_flow(flow)\n"
	"  if flow.host == 'localhost' then return dlp.block('no uploads to localhost') end\n"
	"  return dlp.inspect()\n"
	"end\n"
	"function on_request(req, flow)\n"
	"  local found = req:scan(detectors)\n"
	"  if found.aws then return dlp.block('credential upload', found) end\n"
	"  if found.card then return dlp.coach('payment card to an outside site', found, {ttl = TTL, within = WITHIN}) end\n"
	"  return dlp.pass()\n"
	"end\n";

typedef struct {
	dlp_world_t x;
	char *target; /* https://127.0.0.1:PORT/echo */
} fx_t;

static void fx_start(fx_t *fx, int ttl, int within)
{
	/* TTL and WITHIN are globals the policy reads */
	char src[2048];
	snprintf(src, sizeof src, "TTL = %d\nWITHIN = %d\n%s", ttl, within, coach_policy);
	dlp_world_start(&fx->x, "coach-policy.lua", src, NULL);
	fx->target = url("127.0.0.1", th_upstream_port(fx->x.up), "/echo", true);
}

static void fx_stop(fx_t *fx)
{
	dlp_world_stop(&fx->x);
	free(fx->target);
}

/* POST body to path on the upstream's host as app (its User-Agent), with
 * Accept; returns the body followed by "\nstatus=NNN". */
static char *send_as(fx_t *fx, const char *app, const char *accept, const char *path, const char *body)
{
	char ua[80], acc[80];
	snprintf(ua, sizeof ua, "User-Agent: %s", app);
	snprintf(acc, sizeof acc, "Accept: %s", accept);
	const char *args[] = {"-s", "-H", ua, "-H", acc, "--data-binary", body, "-w", "\nstatus=%{http_code}", NULL};
	return dlp_world_curl(&fx->x, path, args, NULL);
}

static int status_of(const char *out)
{
	const char *s = strstr(out, "\nstatus=");
	return s ? atoi(s + 8) : -1;
}

/* The JSON answer's error object (the caller decrefs the whole). */
static json_t *answer_json(const char *out, json_t **root)
{
	json_error_t je;
	*root = json_loadb(out, strcspn(out, "\n") + 1, 0, &je);
	ck_assert_msg(*root, "not JSON: %s", out);
	json_t *e = json_object_get(*root, "error");
	ck_assert_msg(e, "%s", out);
	return e;
}

/* Every event line in the log is valid against verdict.schema.json, and
 * one of them holds needle. */
static void assert_events_valid(dlp_t *d, const char *needle)
{
	char *log = dlp_log(d);
	size_t cap = strlen(log) + 1, n = 0;
	char *events = calloc(1, cap);
	for (char *line = log; line && *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
		if (!strncmp(line, "{\"event\":", 9)) {
			memcpy(events + n, line, len);
			n += len;
		}
		line = nl ? nl + 1 : NULL;
	}
	ck_assert_msg(strstr(events, needle), "no %s in:\n%s", needle, log);
	char *err = ajv_check_with("verdict.schema.json", events);
	ck_assert_msg(!err, "%s\n%s", err, events);
	free(events), free(log);
}

static char *form(const char *token, const char *justification)
{
	char *b;
	if (asprintf(&b, "token=%s&justification=%s", token, justification) < 0)
		th_fail("out of memory");
	return b;
}

/* The coach page for app: asserts what it shows; returns the token and
 * the event id. */
static void coach_page(fx_t *fx, const char *app, char token[160], char event[40])
{
	char *out = send_as(fx, app, "application/json", "/echo", "card " CARD " for the invoice");
	ck_assert_msg(status_of(out) == 403, "%s", out);
	json_t *root;
	json_t *e = answer_json(out, &root);
	ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "coach");
	ck_assert_str_eq(json_string_value(json_object_get(e, "detail")), "payment card to an outside site");
	/* the rule names the policy file, never where it lives */
	const char *rule = json_string_value(json_object_get(e, "rule"));
	ck_assert_msg(rule && !strncmp(rule, "coach-policy.lua:", 17), "rule %s", rule);
	ck_assert_msg(!strstr(out, th_tmpdir()), "a machine path on the page: %s", out);
	json_t *found = json_array_get(json_object_get(e, "found"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(found, "detector")), "card");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(found, "samples"), 0)), "4111 **** **** 1111");
	ck_assert_msg(!strstr(out, CARD), "the card is on the page: %s", out);
	json_t *c = json_object_get(e, "coach");
	ck_assert_msg(json_string_length(json_object_get(c, "why")) > 40, "%s", out);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "override"), "path")),
			 "/.well-known/dlpgate/override");
	snprintf(token, 160, "%s", json_string_value(json_object_get(c, "token")));
	snprintf(event, 40, "%s", json_string_value(json_object_get(e, "event")));
	ck_assert_msg(strlen(event) == 36 && !strncmp(token, event, 36), "%s", out);
	json_decref(root);
	free(out);
}

/* A gateway and a coach page for app-a, waiting for an answer. */
static void fx_start_coached(fx_t *fx, int ttl, int within, char token[160], char event[40])
{
	fx_start(fx, ttl, within);
	coach_page(fx, "app-a/1", token, event);
}

START_TEST(override_lets_the_same_app_resend_once_justified)
{
	fx_t fx;
	char token[160], event[40];
	fx_start_coached(&fx, 600, 600, token, event);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 0);
	ck_assert(dlp_log_wait(&fx.x.d, event, 3000));
	char *log = dlp_log(&fx.x.d);
	ck_assert_msg(strstr(log, "\"verdict\":\"coach\""), "%s", log);
	free(log);

	/* a justification of too few words is refused, and the token kept */
	char *body = form(token, "ok");
	char *out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/override", body);
	ck_assert_msg(status_of(out) == 400 && strstr(out, "justification-required"), "%s", out);
	free(out), free(body);

	/* the justification holds a card itself: it is masked in the event */
	body = form(token, "invoice+for+ACME%2C+their+test+card+4111+1111+1111+1111+as+agreed");
	out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/override", body);
	ck_assert_msg(status_of(out) == 200 && strstr(out, "override-recorded"), "%s", out);
	ck_assert_msg(!strstr(out, th_tmpdir()), "a machine path on the page: %s", out);
	json_t *root;
	json_t *e = answer_json(out, &root);
	char override_id[40];
	snprintf(override_id, sizeof override_id, "%s", json_string_value(json_object_get(e, "event")));
	json_decref(root);
	free(out);
	ck_assert(dlp_log_wait(&fx.x.d, override_id, 3000));
	log = dlp_log(&fx.x.d);
	const char *line = strstr(log, "\"event\":\"override\"");
	ck_assert_msg(line, "%s", log);
	char of[60];
	snprintf(of, sizeof of, "\"of\":\"%s\"", event);
	ck_assert_msg(strstr(line, of) && strstr(line, "test card 4111 **** **** 1111 as agreed") &&
			      strstr(line, "\"ttl_s\":600"),
		      "%s", log);
	ck_assert_msg(!strstr(log, CARD) && !strstr(log, "4111+1111"), "the card reached the log: %s", log);
	free(log);
	assert_events_valid(&fx.x.d, "\"verdict\":\"coach\"");

	/* the same token again: single use */
	out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/override", body);
	ck_assert_msg(status_of(out) == 403 && strstr(out, "token-refused"), "%s", out);
	free(out), free(body);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 0); /* the reserved path never went up */

	/* the resend passes, as sent */
	out = send_as(&fx, "app-a/1", "application/json", "/echo", "card " CARD " for the invoice");
	ck_assert_msg(status_of(out) == 200, "%s", out);
	free(out);
	size_t len;
	char *rx = th_upstream_received(fx.x.up, &len);
	ck_assert_msg(strstr(rx, "card " CARD " for the invoice") && !strstr(rx, "dlpgate"), "%s", rx);
	free(rx);
	ck_assert(dlp_log_wait(&fx.x.d, "override:", 3000));

	/* another app does not inherit it */
	out = send_as(&fx, "app-b/2", "application/json", "/echo", "card " CARD " for the invoice");
	ck_assert_msg(status_of(out) == 403 && strstr(out, "\"code\":\"coach\""), "%s", out);
	free(out);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 1);
	fx_stop(&fx);
}
END_TEST

START_TEST(forged_foreign_and_expired_tokens_are_refused)
{
	fx_t fx;
	char token[160], event[40];
	fx_start_coached(&fx, 600, 2, token, event);
	/* one hex digit of the MAC changed */
	char forged[160];
	snprintf(forged, sizeof forged, "%s", token);
	char *last = forged + strlen(forged) - 1;
	*last = *last == '0' ? '1' : '0';
	char *body = form(forged, "a+good+reason+for+this");
	char *out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/override", body);
	ck_assert_msg(status_of(out) == 403 && strstr(out, "token-refused"), "%s", out);
	free(out), free(body);
	/* a later expiry with the old MAC */
	char later[160];
	unsigned long long exp = strtoull(token + 37, NULL, 10);
	snprintf(later, sizeof later, "%.36s.%llu%s", token, exp + 3600, strchr(token + 37, '.'));
	body = form(later, "a+good+reason+for+this");
	out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/override", body);
	ck_assert_msg(status_of(out) == 403, "%s", out);
	free(out), free(body);
	/* the real token, brought by another app */
	body = form(token, "a+good+reason+for+this");
	out = send_as(&fx, "app-b/2", "application/json", "/.well-known/dlpgate/override", body);
	ck_assert_msg(status_of(out) == 403 && strstr(out, "token-refused"), "%s", out);
	free(out);
	/* the real token, too late (within = 2 s) */
	sleep(3);
	out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/override", body);
	ck_assert_msg(status_of(out) == 403 && strstr(out, "token-refused"), "%s", out);
	free(out), free(body);
	/* nothing was overridden: the resend is coached again */
	out = send_as(&fx, "app-a/1", "application/json", "/echo", "card " CARD " for the invoice");
	ck_assert_msg(status_of(out) == 403 && strstr(out, "\"code\":\"coach\""), "%s", out);
	free(out);
	/* other methods and paths under the reserved prefix: ours, never forwarded */
	char *u = url("127.0.0.1", th_upstream_port(fx.x.up), "/.well-known/dlpgate/override", true);
	const char *get[] = {"-s", "-w", "\nstatus=%{http_code}", u, NULL};
	char *err = NULL;
	dlp_curl(&fx.x.d, get, &out, &err);
	ck_assert_msg(status_of(out) == 405, "%s", out);
	free(out), free(err), free(u);
	out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/anything", "x=1");
	ck_assert_msg(status_of(out) == 404, "%s", out);
	free(out);
	/* in clear through the proxy too, without dialling the (closed) port */
	const char *clear[] = {"-s", "-w", "\nstatus=%{http_code}", "http://127.0.0.1:1/.well-known/dlpgate/override", NULL};
	dlp_curl(&fx.x.d, clear, &out, &err);
	ck_assert_msg(status_of(out) == 405, "%s", out);
	free(out), free(err);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 0);
	fx_stop(&fx);
}
END_TEST

START_TEST(false_positive_report_lets_nothing_through)
{
	fx_t fx;
	char token[160], event[40];
	fx_start_coached(&fx, 600, 600, token, event);
	char *body = form(token, "this+is+an+order+number");
	char *out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/false-positive", body);
	ck_assert_msg(status_of(out) == 200 && strstr(out, "false-positive-reported"), "%s", out);
	free(out);
	out = send_as(&fx, "app-a/1", "application/json", "/.well-known/dlpgate/false-positive", body);
	ck_assert_msg(status_of(out) == 409, "reported twice: %s", out);
	free(out), free(body);
	ck_assert(dlp_log_wait(&fx.x.d, "\"event\":\"false_positive\"", 3000));
	out = send_as(&fx, "app-a/1", "application/json", "/echo", "card " CARD " for the invoice");
	ck_assert_msg(status_of(out) == 403 && strstr(out, "\"code\":\"coach\""), "%s", out);
	free(out);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 0);
	assert_events_valid(&fx.x.d, "\"event\":\"false_positive\"");
	fx_stop(&fx);
}
END_TEST

/* The block and coach pages as a browser sees them: HTML naming the rule
 * (no directory), reason and event, masked samples, the forms. */
START_TEST(html_pages_name_rule_reason_event_and_no_path)
{
	fx_t fx;
	fx_start(&fx, 600, 600);
	char *out = send_as(&fx, "app-a/1", "text/html", "/echo", "key AKIAIOSFODNN7EXAMPLE");
	ck_assert_msg(status_of(out) == 403 && strstr(out, "<h1>Blocked by policy</h1>") &&
			      strstr(out, "credential upload") && strstr(out, "<code>coach-policy.lua:") &&
			      strstr(out, "<code id=\"event\">") && strstr(out, "AKIA************MPLE"),
		      "%s", out);
	ck_assert_msg(!strstr(out, th_tmpdir()) && !strstr(out, "AKIAIOSFODNN7EXAMPLE"), "%s", out);
	free(out);
	out = send_as(&fx, "app-a/1", "text/html,application/xhtml+xml", "/echo", "card " CARD);
	ck_assert_msg(status_of(out) == 403 && strstr(out, "payment card to an outside site") &&
			      strstr(out, "<code>coach-policy.lua:") && strstr(out, "action=\"/.well-known/dlpgate/override\"") &&
			      strstr(out, "action=\"/.well-known/dlpgate/false-positive\"") && strstr(out, "4111 **** **** 1111"),
		      "%s", out);
	ck_assert_msg(!strstr(out, th_tmpdir()) && !strstr(out, CARD), "%s", out);
	free(out);
	/* a flow-stage block (on_flow, inside CONNECT) names its rule and event too */
	char *u = url("localhost", th_upstream_port(fx.x.up), "/echo", true);
	const char *args[] = {"-s", "-H", "Accept: text/html", "-w", "\nstatus=%{http_code}", u, NULL};
	char *err = NULL;
	dlp_curl(&fx.x.d, args, &out, &err);
	ck_assert_msg(status_of(out) == 403 && strstr(out, "no uploads to localhost") &&
			      strstr(out, "<code>coach-policy.lua:") && strstr(out, "<code id=\"event\">"),
		      "%s", out);
	ck_assert_msg(!strstr(out, th_tmpdir()), "%s", out);
	char id[40] = "";
	sscanf(strstr(out, "<code id=\"event\">") + 17, "%36[0-9a-f-]", id);
	ck_assert(dlp_log_wait(&fx.x.d, id, 3000));
	free(out), free(err), free(u);
	assert_events_valid(&fx.x.d, "\"stage\":\"flow\"");
	fx_stop(&fx);
}
END_TEST

/* The CA follows the leaf in every intercepted handshake: s_client sees
 * two certificates, the second the CA clients trust (-partial_chain off:
 * the chain verifies from what was sent plus that CA alone). */
START_TEST(ca_certificate_follows_the_leaf)
{
	fx_t fx;
	fx_start(&fx, 600, 600);
	char proxy[32], target[32];
	snprintf(proxy, sizeof proxy, "127.0.0.1:%d", fx.x.d.port);
	snprintf(target, sizeof target, "127.0.0.1:%d", th_upstream_port(fx.x.up));
	char *argv[] = {"openssl", "s_client", "-proxy", proxy, "-connect", target, "-servername", "localhost",
			"-showcerts", "-CAfile", fx.x.d.ca_path, "-verify_return_error", NULL};
	char *out = NULL;
	int rc = th_run(argv, "Q\n", 2, &out, NULL, NULL, 20000);
	int certs = 0;
	for (const char *p = out; (p = strstr(p, "-----BEGIN CERTIFICATE-----")); p++)
		certs++;
	ck_assert_msg(rc == 0 && certs == 2 && strstr(out, "Verify return code: 0 (ok)"), "rc %d, %d certs:\n%s", rc,
		      certs, out);
	/* the second is the CA itself: its PEM is the one in the state dir */
	char *ca = th_read_file(fx.x.d.ca_path, NULL);
	const char *second = strstr(strstr(out, "-----BEGIN CERTIFICATE-----") + 1, "-----BEGIN CERTIFICATE-----");
	ck_assert_msg(!strncmp(second, ca, strlen("-----BEGIN CERTIFICATE-----") + 200), "%s\n%s", out, ca);
	free(ca), free(out);
	fx_stop(&fx);
}
END_TEST

/* dlpgate ARGS with HOME=home; its exit code, *out what it printed. */
static int dlp_home(const char *home, const char *const args[], char **out)
{
	char *argv[16] = {(char *)dlp_bin()};
	int a = 1;
	for (int i = 0; args[i] && a < 15; i++)
		argv[a++] = (char *)args[i];
	argv[a] = NULL;
	char env[4200];
	snprintf(env, sizeof env, "HOME=%s", home);
	char *const extra[] = {env, NULL};
	th_proc p = th_spawn_env(argv, extra, "ca-cli.log");
	int rc = th_wait(&p, 30000);
	*out = th_log(&p);
	return rc;
}

/* certutil -L of an NSS database: the nicknames it lists. */
static char *nss_list(const char *dir)
{
	char db[4200];
	snprintf(db, sizeof db, "sql:%s", dir);
	char *argv[] = {"certutil", "-L", "-d", db, NULL};
	char *out = NULL;
	th_run(argv, NULL, 0, &out, NULL, NULL, 10000);
	return out;
}

static void sh(const char *cmd)
{
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	ck_assert_msg(th_run(argv, NULL, 0, NULL, NULL, NULL, 10000) == 0, "%s", cmd);
}

/* ca install / uninstall on scratch NSS databases under a scratch HOME: a
 * Firefox profile the user had (with a certificate of theirs) gets the CA
 * and loses only it again; Chromium's database is created and removed
 * again; the record says what was done. */
START_TEST(ca_install_uninstall_round_trip_on_nss)
{
	char *home = th_path("ca-home"), *state = th_path("ca-state");
	char cmd[9000];
	snprintf(cmd, sizeof cmd,
		 "set -e; rm -rf '%1$s' '%2$s'; P='%1$s/.mozilla/firefox/x1.default-release'; mkdir -p \"$P\"; "
		 "certutil -N -d \"sql:$P\" --empty-password; "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '%1$s/mine.key' "
		 "-out '%1$s/mine.pem' -subj /CN=mine -days 2 2>/dev/null; "
		 "certutil -A -d \"sql:$P\" -n 'my own CA' -t C,, -i '%1$s/mine.pem'",
		 home, state);
	sh(cmd);
	char profile[4200], chromium[4200];
	snprintf(profile, sizeof profile, "%s/.mozilla/firefox/x1.default-release", home);
	snprintf(chromium, sizeof chromium, "%s/.pki/nssdb", home);
	char *out;
	ck_assert_int_eq(dlp_home(home, (const char *const[]){"ca", "init", "--state-dir", state, NULL}, &out), 0);
	free(out);
	ck_assert_int_eq(dlp_home(home, (const char *const[]){"ca", "install", "--user", "--state-dir", state, NULL}, &out),
			 0);
	ck_assert_msg(strstr(out, "installed into NSS") && strstr(out, chromium) && strstr(out, profile), "%s", out);
	free(out);
	char *l = nss_list(profile);
	ck_assert_msg(strstr(l, "dlpgate CA ") && strstr(l, "my own CA"), "%s", l);
	free(l);
	l = nss_list(chromium);
	ck_assert_msg(strstr(l, "dlpgate CA "), "%s", l);
	free(l);
	char rec[4300];
	snprintf(rec, sizeof rec, "%s/ca-installed.json", state);
	char *r = th_read_file(rec, NULL);
	ck_assert_msg(strstr(r, "\"created\": true") && strstr(r, profile), "%s", r);
	free(r);
	/* env: shell lines pointing at the CA and a bundle holding it */
	ck_assert_int_eq(dlp_home(home, (const char *const[]){"ca", "env", "--state-dir", state, NULL}, &out), 0);
	ck_assert_msg(strstr(out, "export NODE_EXTRA_CA_CERTS='") && strstr(out, "export REQUESTS_CA_BUNDLE='") &&
			      strstr(out, "export GIT_SSL_CAINFO='") && strstr(out, "export CURL_CA_BUNDLE='") &&
			      strstr(out, "keytool -importcert"),
		      "%s", out);
	free(out);
	ck_assert_int_eq(dlp_home(home, (const char *const[]){"ca", "uninstall", "--state-dir", state, NULL}, &out), 0);
	ck_assert_msg(strstr(out, "removed from NSS"), "%s", out);
	free(out);
	l = nss_list(profile);
	ck_assert_msg(!strstr(l, "dlpgate CA ") && strstr(l, "my own CA"), "%s", l);
	free(l);
	char pki[4200];
	snprintf(pki, sizeof pki, "%s/.pki", home);
	ck_assert_msg(access(pki, F_OK) != 0 && access(rec, F_OK) != 0, "install's leftovers remain");
	free(home), free(state);
}
END_TEST

/* The whole story in Chromium (coach_browser.mjs): a form on an HTTPS page
 * served by nginx posts a card; the coach page renders; the justification
 * goes through; the resend passes and reaches the recording upstream behind
 * nginx; the override event, naming the coach event, is on a real console.
 * Chromium trusts dlpgate's CA only through the NSS database that `dlpgate
 * ca install --user` made in a scratch HOME. */
START_TEST(coach_in_chromium)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(NULL);
	char conf[1024];
	snprintf(conf, sizeof conf,
		 "location = /form.html { default_type text/html; return 200 '<!doctype html><title>Refunds</title>"
		 "<form method=post action=/submit><textarea id=card name=card></textarea>"
		 "<button id=send>Send</button></form>'; }\n"
		 "location = /submit { proxy_pass http://127.0.0.1:%d/echo; }\n",
		 th_upstream_port(up));
	th_nginx web = th_nginx_start(&w.server, conf);
	cons_t c = cons_start(NULL);
	char console_url[64];
	snprintf(console_url, sizeof console_url, "https://127.0.0.1:%d", c.port);
	char src[2048];
	snprintf(src, sizeof src, "TTL = 600\nWITHIN = 600\n%s", coach_policy);
	char *policy = th_path("coach-policy.lua");
	th_write_file(policy, src, strlen(src), 0644);
	const char *args[] = {"--policy", policy, "--console", console_url, "--console-ca", c.pem, "--enroll-secret",
			      SECRET, NULL};
	dlp_t d = dlp_start(w.ca.cert_path, "{\"report\": {\"batch_wait_ms\": 100}}", args);

	char *home = th_path("chromium-home");
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", home, home);
	sh(cmd);
	char *out;
	ck_assert_int_eq(dlp_home(home, (const char *const[]){"ca", "install", "--user", "--state-dir", d.state_dir, NULL},
				  &out),
			 0);
	ck_assert_msg(strstr(out, "/.pki/nssdb (created)"), "%s", out);
	free(out);

	char script[4200], pw[4200], env_pw[4300], env_proxy[128], env_page[128], env_home[4300];
	snprintf(script, sizeof script, "%s/tests/integration/coach_browser.mjs", getenv("DLPGATE_TOP"));
	snprintf(pw, sizeof pw, "%s/.deps/node_modules/playwright-core", getenv("DLPGATE_TOP"));
	snprintf(env_pw, sizeof env_pw, "PLAYWRIGHT=%s", pw);
	snprintf(env_proxy, sizeof env_proxy, "PROXY=%s", d.proxy);
	snprintf(env_page, sizeof env_page, "PAGE_URL=https://127.0.0.1:%d/form.html", web.port);
	snprintf(env_home, sizeof env_home, "HOME=%s", home);
	char *const env[] = {env_pw, env_proxy, env_page, env_home, "CARD=" CARD, NULL};
	char *const argv[] = {"node", script, NULL};
	th_proc node = th_spawn_env(argv, env, "coach-browser.log");
	int rc = th_wait(&node, 60000);
	if (rc < 0)
		th_stop(&node);
	char *log = th_log(&node);
	ck_assert_msg(rc == 0, "coach_browser.mjs exited %d:\n%s", rc, log);
	const char *line = strstr(log, "{\"coach_event\"");
	ck_assert_msg(line, "%s", log);
	json_t *ids = json_loadb(line, strcspn(line, "\n"), 0, NULL);
	ck_assert_msg(ids, "%s", log);
	const char *coach_event = json_string_value(json_object_get(ids, "coach_event"));
	const char *override_event = json_string_value(json_object_get(ids, "override_event"));

	/* the upstream got the card once: the resend, as the user typed it */
	size_t len;
	char *rx = th_upstream_received(up, &len);
	ck_assert_msg(strstr(rx, "card=refund+to+4111+1111+1111+1111+please") && th_upstream_request_count(up) == 1,
		      "%s", rx);
	free(rx);

	/* the console has the coach verdict and the override naming it */
	char *admin = admin_token(&c);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/events/%s", override_event);
	int st = 0;
	char *body = NULL;
	for (int i = 0; i < 100 && st != 200; i++) {
		free(body);
		body = NULL;
		st = req(&c, "GET", path, admin, NULL, NULL, NULL, 0, &body);
		if (st != 200)
			usleep(100 * 1000);
	}
	ck_assert_msg(st == 200, "%d %s", st, body);
	json_t *ov = json_loads(body, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(ov, "event")), "override");
	ck_assert_str_eq(json_string_value(json_object_get(ov, "of")), coach_event);
	ck_assert_str_eq(json_string_value(json_object_get(ov, "justification")), "the customer asked for a refund to this card");
	json_decref(ov);
	free(body);
	snprintf(path, sizeof path, "/api/v1/events/%s", coach_event);
	json_t *ce = get_json(&c, admin, path, 200);
	ck_assert_str_eq(json_string_value(json_object_get(ce, "verdict")), "coach");
	json_decref(ce);

	json_decref(ids);
	free(log), free(admin), free(home), free(policy);
	dlp_stop(&d);
	cons_stop(&c);
	th_nginx_stop(&web);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

Suite *coach_suite(void)
{
	Suite *s = suite_create("coach");
	TCase *tc = tcase_create("coach");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, override_lets_the_same_app_resend_once_justified);
	tcase_add_test(tc, forged_foreign_and_expired_tokens_are_refused);
	tcase_add_test(tc, false_positive_report_lets_nothing_through);
	tcase_add_test(tc, html_pages_name_rule_reason_event_and_no_path);
	tcase_add_test(tc, ca_certificate_follows_the_leaf);
	tcase_add_test(tc, ca_install_uninstall_round_trip_on_nss);
	tcase_add_test(tc, coach_in_chromium);
	suite_add_tcase(s, tc);
	return s;
}
