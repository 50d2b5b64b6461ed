/*
 * The console's web UI API (schemas/console-api.md "Web UI API") against
 * the real console process, real curl over HTTPS, real SQLite and real
 * PostgreSQL: the role matrix, sessions (cookie flags, CSRF, idle and
 * absolute expiry, sign-out on the server, revocation), security headers,
 * the static files (traversal, fallback, caching, not installed),
 * incidents, the explorer's filters, paging and exports, an event's detail
 * with its policy source lines, agents' history, the dashboard, and fields
 * an agent controls coming back verbatim.
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

#define AGENT "a1000000-0000-4000-8000-000000000001"
#define AGENT2 "a2000000-0000-4000-8000-000000000002"
#define CSP                                                                                                       \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "   \
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#define XSS "<img src=x onerror=alert(1)>"

typedef struct {
	int status;
	char *body, *head;
} resp_t;

static void resp_free(resp_t *r)
{
	free(r->body);
	free(r->head);
}

/* One request: bearer token or session cookie (with csrf), JSON body. */
static resp_t call(cons_t *c, const char *method, const char *path, const char *bearer, const char *cookie,
		   const char *csrf, const char *body)
{
	static int n;
	char url[2048], auth[128], ck[160], cs[128], hname[64], bname[64], bopt[4200], wfmt[] = "\n%{http_code}";
	snprintf(url, sizeof url, "https://127.0.0.1:%d%s", c->port, path);
	snprintf(hname, sizeof hname, "uihead%d", n);
	snprintf(bname, sizeof bname, "uibody%d", n++);
	char *hfile = th_path(hname), *bfile = NULL;
	const char *args[32] = {"--cacert", c->pem, "--path-as-is", "-X", method, "-D", hfile, "-w", wfmt, "-o", "-"};
	int a = 11;
	if (bearer) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
		args[a++] = "-H", args[a++] = auth;
	}
	if (cookie) {
		snprintf(ck, sizeof ck, "Cookie: dlpgate_session=%s", cookie);
		args[a++] = "-H", args[a++] = ck;
	}
	if (csrf) {
		snprintf(cs, sizeof cs, "X-CSRF-Token: %s", csrf);
		args[a++] = "-H", args[a++] = cs;
	}
	if (body) {
		bfile = th_path(bname);
		th_write_file(bfile, body, strlen(body), 0600);
		snprintf(bopt, sizeof bopt, "@%s", bfile);
		args[a++] = "-H", args[a++] = "Content-Type: application/json";
		args[a++] = "--data-binary", args[a++] = bopt;
	}
	args[a++] = url;
	args[a] = NULL;
	char *o = NULL, *err = NULL;
	size_t olen = 0;
	int rc = th_curl(args, &o, &olen, &err);
	ck_assert_msg(rc == 0, "curl %s %s: exit %d: %s", method, path, rc, err);
	free(err);
	resp_t r = {0};
	char *nl = strrchr(o, '\n');
	ck_assert(nl);
	r.status = atoi(nl + 1);
	*nl = '\0';
	r.body = o;
	size_t hl;
	r.head = th_read_file(hfile, &hl);
	unlink(hfile);
	free(hfile);
	if (bfile) {
		unlink(bfile);
		free(bfile);
	}
	return r;
}

static json_t *call_json(cons_t *c, const char *method, const char *path, const char *bearer, const char *body,
			 int want)
{
	resp_t r = call(c, method, path, bearer, NULL, NULL, body);
	ck_assert_msg(r.status == want, "%s %s: %d (want %d): %s", method, path, r.status, want, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	ck_assert_msg(j, "%s %s: not JSON: %s", method, path, r.body);
	resp_free(&r);
	return j;
}

/* A header's value (case-insensitive name) from a head, malloc'ed, or NULL. */
static char *header(const char *head, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = head; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncasecmp(l, name, n) && l[n] == ':') {
			const char *v = l + n + 1;
			while (*v == ' ')
				v++;
			return strndup(v, strcspn(v, "\r\n"));
		}
	return NULL;
}

static void assert_security_headers(const resp_t *r, bool api)
{
	char *csp = header(r->head, "Content-Security-Policy"), *nosniff = header(r->head, "X-Content-Type-Options"),
	     *ref = header(r->head, "Referrer-Policy"), *cache = header(r->head, "Cache-Control");
	ck_assert_msg(csp && !strcmp(csp, CSP), "CSP: %s", csp ? csp : "(none)");
	ck_assert_msg(nosniff && !strcmp(nosniff, "nosniff"), "nosniff: %s", r->head);
	ck_assert_msg(ref && !strcmp(ref, "no-referrer"), "Referrer-Policy: %s", r->head);
	if (api)
		ck_assert_msg(cache && !strcmp(cache, "no-store"), "Cache-Control on the API: %s", r->head);
	free(csp), free(nosniff), free(ref), free(cache);
}

static char *token(cons_t *c, const char *role)
{
	char *out = NULL, *err = NULL;
	int rc = cons_cli(c, &out, &err, (const char *const[]){"admin", "token", "create", "--role", role, NULL});
	ck_assert_msg(rc == 0, "token create --role %s: %d %s", role, rc, err);
	out[strcspn(out, "\n")] = '\0';
	ck_assert_int_eq(strlen(out), 64);
	free(err);
	return out;
}

static void time_ago(int64_t seconds, char out[40])
{
	time_t t = time(NULL) - (time_t)seconds;
	struct tm g;
	gmtime_r(&t, &g);
	strftime(out, 40, "%Y-%m-%dT%H:%M:%S.000Z", &g);
}

/* A verdict event i seconds ago. */
static char *verdict_line(const char *agent, int i, const char *verdict, bool monitor, const char *host,
			  const char *reason, const char *detectors, const char *pv, const char *rule)
{
	char tm[40];
	time_ago(60 + i, tm);
	char *line = malloc(4096);
	snprintf(line, 4096,
		 "{\"event\":\"verdict\",\"id\":\"01900000-0000-7000-8000-%012d\",\"agent_id\":\"%s\",\"time\":\"%s\","
		 "\"policy_version\":\"%s\",\"stage\":\"request\",\"verdict\":\"%s\",\"monitor\":%s,\"rule\":\"%s\","
		 "\"reason\":\"%s\",\"detectors\":{%s},\"app\":{\"path\":\"/usr/bin/" XSS "\",\"signing_id\":\"com.ex\","
		 "\"team_id\":\"T1\",\"anchor\":\"developer_id\"},\"flow\":{\"id\":%d,\"source\":\"explicit\",\"host\":\"%s\","
		 "\"dst_port\":443,\"method\":\"POST\",\"path\":\"/up/" XSS "\",\"bytes_up\":100,\"tls\":\"TLSv1.3\"}}",
		 i, agent, tm, pv, verdict, monitor ? "true" : "false", rule, reason, detectors, i, host);
	return line;
}

#define CARD "\"card\":{\"count\":2,\"samples\":[\"4526********3012\"]}"

/* The agent's events: 0 block card (v1 policy.lua:7), 1 redact card, 2
 * pass, 3 monitor-only block, 4 block with XSS everywhere and a formula
 * reason, 5 shadow, 6 block from the static config. */
static int post_fixture(cons_t *c, const char *agent_token)
{
	char *l[7];
	l[0] = verdict_line(AGENT, 0, "block", false, "paste.example", "card found", CARD, "v1", "policy.lua:7");
	l[1] = verdict_line(AGENT, 1, "redact", false, "mail.example", "masked", CARD, "v1", "policy.lua:7");
	l[2] = verdict_line(AGENT, 2, "pass", false, "news.example", "nothing", "", "v1", "policy.lua:9");
	l[3] = verdict_line(AGENT, 3, "block", true, "paste.example", "would block", CARD, "v1", "policy.lua:7");
	l[4] = verdict_line(AGENT, 4, "block", false, XSS, "=HYPERLINK(\\\"http://x\\\")", "\"" XSS "\":{\"count\":1,\"samples\":[]}",
			    "v1", "policy.lua:7");
	char tm[40];
	time_ago(65, tm);
	l[5] = malloc(4096);
	snprintf(l[5], 4096,
		 "{\"event\":\"shadow\",\"id\":\"01900000-0000-7000-8000-000000000005\",\"agent_id\":\"%s\",\"time\":\"%s\","
		 "\"policy_version\":\"v2\",\"stage\":\"request\",\"verdict\":\"block\",\"monitor\":false,\"rule\":\"policy.lua:7\","
		 "\"reason\":\"shadow\",\"detectors\":{},\"flow\":{\"id\":5,\"source\":\"explicit\",\"host\":\"paste.example\","
		 "\"dst_port\":443},\"active_verdict\":\"pass\",\"active_policy_version\":\"v1\"}",
		 AGENT, tm);
	l[6] = verdict_line(AGENT, 6, "block", false, "cfg.example", "blocked host", "", "config", "block_hosts");
	char body[32768] = "";
	for (int i = 0; i < 7; i++) {
		strcat(body, l[i]);
		strcat(body, "\n");
		free(l[i]);
	}
	char *out = NULL;
	int st = post_events(c, agent_token, body, &out);
	ck_assert_msg(st == 200, "post events %d: %s", st, out);
	free(out);
	return 7;
}

static const char POLICY[] = "local dlp = require \"dlp\"\n"
			     "local pii = require \"pii\"\n"
			     "\n"
			     "function on_request(req, flow)\n"
			     "\tlocal found = req:scan(pii)\n"
			     "\tif next(found) then\n"
			     "\t\treturn dlp.block(\"card\", found)\n"
			     "\tend\n"
			     "\treturn dlp.pass()\n"
			     "end\n";

static void push_policy(cons_t *c)
{
	static int n;
	char name[32], path[4200];
	snprintf(name, sizeof name, "uipol%d", n++);
	char *dir = th_path(name);
	mkdir(dir, 0700);
	snprintf(path, sizeof path, "%s/policy.lua", dir);
	th_write_file(path, POLICY, strlen(POLICY), 0600);
	char *out = NULL, *err = NULL;
	int rc = cons_cli(c, &out, &err, (const char *const[]){"policy", "push", dir, NULL});
	ck_assert_msg(rc == 0, "policy push: %d %s %s", rc, out, err);
	free(out), free(err), free(dir);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static const char *sval(json_t *v)
{
	return json_string_value(v);
}

/* Every page of a filter with limit=1: the ids, in order. */
static int page_all(cons_t *c, const char *tok, const char *filter, char ids[][40], int max)
{
	char path[1024], cursor[128] = "";
	int n = 0;
	for (;;) {
		snprintf(path, sizeof path, "/api/v1/events?limit=1%s%s%s%s", *filter ? "&" : "", filter,
			 *cursor ? "&cursor=" : "", cursor);
		json_t *j = call_json(c, "GET", path, tok, NULL, 200);
		json_t *evs = json_object_get(j, "events");
		ck_assert_int_le(json_array_size(evs), 1);
		if (json_array_size(evs)) {
			ck_assert_int_lt(n, max);
			snprintf(ids[n++], 40, "%s", jstr(json_array_get(evs, 0), "id"));
		}
		const char *next = jstr(j, "next_cursor");
		if (!next) {
			json_decref(j);
			return n;
		}
		snprintf(cursor, sizeof cursor, "%s", next);
		json_decref(j);
	}
}

static int count_events(cons_t *c, const char *tok, const char *filter)
{
	char ids[64][40];
	return page_all(c, tok, filter, ids, 64);
}

/* ---- the role matrix ---- */

typedef struct {
	const char *method, *path, *body;
	int need; /* 0 viewer, 1 analyst, 2 admin */
	int ok;   /* the status when allowed */
} ep_t;

static void role_matrix(cons_t *c, char *const toks[3], const char *agent_tok, int64_t incident, const char *event_id)
{
	char inc[64], note[80], ev[96], det[128], agent[96];
	snprintf(inc, sizeof inc, "/api/v1/incidents/%lld", (long long)incident);
	snprintf(note, sizeof note, "%s/notes", inc);
	snprintf(ev, sizeof ev, "/api/v1/events/%s", event_id);
	snprintf(det, sizeof det, "%s/detail", ev);
	snprintf(agent, sizeof agent, "/api/v1/agents/%s", AGENT);
	const ep_t eps[] = {
		{"GET", "/api/v1/session", NULL, 0, 200},
		{"GET", "/api/v1/dashboard", NULL, 0, 200},
		{"GET", "/api/v1/events", NULL, 0, 200},
		{"GET", "/api/v1/events/export?format=csv", NULL, 0, 200},
		{"GET", ev, NULL, 0, 200},
		{"GET", det, NULL, 0, 200},
		{"GET", "/api/v1/stats?by=verdict", NULL, 0, 200},
		{"GET", "/api/v1/agents", NULL, 0, 200},
		{"GET", agent, NULL, 0, 200},
		{"GET", "/api/v1/policies", NULL, 0, 200},
		{"GET", "/api/v1/policies/1", NULL, 0, 200},
		{"GET", "/api/v1/policies/1/status", NULL, 0, 200},
		{"GET", "/api/v1/rollouts", NULL, 0, 200},
		{"GET", "/api/v1/incidents", NULL, 1, 200},
		{"GET", "/api/v1/incidents/false-positives", NULL, 1, 200},
		{"GET", inc, NULL, 1, 200},
		{"PATCH", inc, "{\"status\":\"triaged\"}", 1, 200},
		{"POST", note, "{\"text\":\"looked\"}", 1, 201},
		{"GET", "/api/v1/audit", NULL, 2, 200},
		{"GET", "/api/v1/tokens", NULL, 2, 200},
		{"POST", "/api/v1/tokens", "{\"role\":\"viewer\"}", 2, 201},
		{"POST", "/api/v1/rollouts/preview", "{\"labels\":{\"ring\":\"canary\"}}", 2, 200},
		{"PUT", agent, NULL, 2, 0}, /* placeholder: labels below */
		{"POST", "/api/v1/policies/1/activate", "{\"labels\":{\"ring\":\"nobody\"}}", 2, 201},
	};
	char labels[128];
	snprintf(labels, sizeof labels, "%s/labels", agent);
	for (size_t e = 0; e < sizeof eps / sizeof eps[0]; e++) {
		ep_t x = eps[e];
		if (!strcmp(x.method, "PUT"))
			x.path = labels, x.body = "{\"labels\":{\"ring\":\"canary\"}}", x.ok = 200;
		for (int r = 0; r < 4; r++) {
			resp_t rs = call(c, x.method, x.path, r < 3 ? toks[r] : agent_tok, NULL, NULL, x.body);
			int want = r < 3 && r >= x.need ? x.ok : 403;
			ck_assert_msg(rs.status == want, "%s %s as %s: %d, want %d: %s", x.method, x.path,
				      r == 3 ? "agent" : r == 2 ? "admin" : r == 1 ? "analyst" : "viewer", rs.status, want,
				      rs.body);
			resp_free(&rs);
		}
	}
	/* revoking a token: only an admin, and only a live one */
	char *throwaway = token(c, "viewer"), id[13];
	{
		json_t *s = call_json(c, "GET", "/api/v1/session", throwaway, NULL, 200);
		snprintf(id, sizeof id, "%s", jstr(s, "token_id"));
		json_decref(s);
	}
	char rev[64];
	snprintf(rev, sizeof rev, "/api/v1/tokens/%s", id);
	for (int r = 0; r < 2; r++) {
		resp_t rs = call(c, "DELETE", rev, toks[r], NULL, NULL, NULL);
		ck_assert_int_eq(rs.status, 403);
		resp_free(&rs);
	}
	resp_t rs = call(c, "DELETE", rev, toks[2], NULL, NULL, NULL);
	ck_assert_int_eq(rs.status, 204);
	resp_free(&rs);
	rs = call(c, "GET", "/api/v1/events", throwaway, NULL, NULL, NULL);
	ck_assert_int_eq(rs.status, 401);
	resp_free(&rs);
	free(throwaway);
}

/* ---- sessions ---- */

/* Signs in; the cookie value and the csrf token (caller frees). */
static char *sign_in(cons_t *c, const char *tok, char **csrf)
{
	char body[128];
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", tok);
	resp_t r = call(c, "POST", "/api/v1/session", NULL, NULL, NULL, body);
	ck_assert_msg(r.status == 200, "sign in: %d %s", r.status, r.body);
	char *sc = header(r.head, "Set-Cookie");
	ck_assert_msg(sc, "no Set-Cookie: %s", r.head);
	ck_assert_msg(!strncmp(sc, "dlpgate_session=", 16) && strlen(sc) > 16 + 64 && sc[16 + 64] == ';', "%s", sc);
	ck_assert_msg(strstr(sc, "; Secure") && strstr(sc, "; HttpOnly") && strstr(sc, "; SameSite=Strict") &&
			      strstr(sc, "; Path=/") && strstr(sc, "; Max-Age="),
		      "cookie flags: %s", sc);
	char *cookie = strndup(sc + 16, 64);
	json_t *j = json_loads(r.body, 0, NULL);
	ck_assert(j);
	*csrf = strdup(jstr(j, "csrf"));
	ck_assert_int_eq(strlen(*csrf), 64);
	ck_assert_str_eq(jstr(j, "via"), "cookie");
	json_decref(j);
	free(sc);
	resp_free(&r);
	return cookie;
}

static int with_cookie(cons_t *c, const char *method, const char *path, const char *cookie, const char *csrf,
		       const char *body)
{
	resp_t r = call(c, method, path, NULL, cookie, csrf, body);
	int st = r.status;
	resp_free(&r);
	return st;
}

static void sessions(cons_t *c, const char *analyst, const char *viewer, int64_t incident)
{
	char *csrf = NULL, *cookie = sign_in(c, analyst, &csrf);
	resp_t r = call(c, "GET", "/api/v1/session", NULL, cookie, NULL, NULL);
	ck_assert_msg(r.status == 200 && strstr(r.body, "\"role\":\"analyst\""), "%d %s", r.status, r.body);
	assert_security_headers(&r, true);
	resp_free(&r);
	/* the cookie reads, and a change needs the CSRF token, compared exactly */
	char inc[64];
	snprintf(inc, sizeof inc, "/api/v1/incidents/%lld", (long long)incident);
	ck_assert_int_eq(with_cookie(c, "GET", inc, cookie, NULL, NULL), 200);
	ck_assert_int_eq(with_cookie(c, "PATCH", inc, cookie, NULL, "{\"assignee\":\"ann\"}"), 403);
	char wrong[72];
	snprintf(wrong, sizeof wrong, "%s", csrf);
	wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
	ck_assert_int_eq(with_cookie(c, "PATCH", inc, cookie, wrong, "{\"assignee\":\"ann\"}"), 403);
	ck_assert_int_eq(with_cookie(c, "PATCH", inc, cookie, csrf, "{\"assignee\":\"ann\"}"), 200);
	/* a viewer's session is a viewer */
	char *vcsrf = NULL, *vcookie = sign_in(c, viewer, &vcsrf);
	ck_assert_int_eq(with_cookie(c, "GET", inc, vcookie, NULL, NULL), 403);
	ck_assert_int_eq(with_cookie(c, "GET", "/api/v1/events", vcookie, NULL, NULL), 200);
	/* sign-out needs the token too, then ends the session on the server */
	ck_assert_int_eq(with_cookie(c, "DELETE", "/api/v1/session", cookie, NULL, NULL), 403);
	r = call(c, "DELETE", "/api/v1/session", NULL, cookie, csrf, NULL);
	ck_assert_int_eq(r.status, 204);
	char *sc = header(r.head, "Set-Cookie");
	ck_assert_msg(sc && strstr(sc, "dlpgate_session=;") && strstr(sc, "Max-Age=0"), "%s", sc ? sc : "(none)");
	free(sc);
	resp_free(&r);
	ck_assert_int_eq(with_cookie(c, "GET", "/api/v1/session", cookie, NULL, NULL), 401);
	ck_assert_int_eq(with_cookie(c, "GET", "/api/v1/events", vcookie, NULL, NULL), 200);
	/* bad tokens: 401, and the sign-in limit follows */
	int st = 0, tries = 0;
	for (; tries < 20 && st != 429; tries++) {
		resp_t b = call(c, "POST", "/api/v1/session", NULL, NULL, NULL,
				"{\"token\":\"0000000000000000000000000000000000000000000000000000000000000000\"}");
		st = b.status;
		ck_assert_msg(st == 401 || st == 429, "%d", st);
		if (st == 429) {
			char *ra = header(b.head, "Retry-After");
			ck_assert_msg(ra && atoi(ra) > 0, "Retry-After: %s", ra ? ra : "(none)");
			free(ra);
		}
		resp_free(&b);
	}
	ck_assert_msg(st == 429 && tries == 11, "the 11th failed sign-in is refused (%d after %d)", st, tries);
	free(csrf), free(cookie), free(vcsrf), free(vcookie);
}

/* ---- the shared path ---- */

static void ui_path(cons_t *c)
{
	char *toks[3] = {token(c, "viewer"), token(c, "analyst"), token(c, "admin")};
	char *agent_tok = enroll(c, AGENT);
	push_policy(c);
	post_fixture(c, agent_tok);
	/* two status posts: the agent's history */
	for (int i = 0; i < 2; i++) {
		char st[512];
		snprintf(st, sizeof st,
			 "{\"agent_id\":\"%s\",\"version\":\"1.2.3\",\"policy_version\":\"v1\",\"time\":\"x\",\"counters\":"
			 "{\"spool_depth\":%d,\"dropped_spool_full\":1,\"policy_errors\":2},\"last_errors\":[\"" XSS "\"],"
			 "\"policy\":{\"version\":1,\"source\":\"console\"}}",
			 AGENT, 5 + i);
		ck_assert_int_eq(req(c, "POST", "/api/v1/status", agent_tok, "application/json", NULL, st, strlen(st), NULL),
				 204);
	}

	/* incidents: the enforced block and redact verdicts, not pass, monitor or shadow */
	json_t *j = call_json(c, "GET", "/api/v1/incidents", toks[1], NULL, 200);
	json_t *incs = json_object_get(j, "incidents");
	ck_assert_int_eq(json_array_size(incs), 4); /* 0, 1, 4, 6 */
	int64_t inc0 = 0;
	char event0[40] = "";
	size_t i;
	json_t *x;
	json_array_foreach(incs, i, x)
	{
		ck_assert_str_eq(jstr(x, "status"), "new");
		if (!strcmp(jstr(x, "event_id"), "01900000-0000-7000-8000-000000000000")) {
			inc0 = json_integer_value(json_object_get(x, "id"));
			snprintf(event0, sizeof event0, "%s", jstr(x, "event_id"));
			ck_assert_str_eq(sval(json_array_get(json_object_get(x, "detectors"), 0)), "card");
		}
	}
	ck_assert(inc0 > 0);
	json_decref(j);

	role_matrix(c, toks, agent_tok, inc0, event0);
	sessions(c, toks[1], toks[0], inc0);

	/* incident workflow: false positive with a note, the tuning list, the audit */
	char inc[64], note[80];
	snprintf(inc, sizeof inc, "/api/v1/incidents/%lld", (long long)inc0);
	snprintf(note, sizeof note, "%s/notes", inc);
	j = call_json(c, "PATCH", inc, toks[1], "{\"status\":\"false_positive\",\"assignee\":null}", 200);
	ck_assert_str_eq(jstr(j, "status"), "false_positive");
	ck_assert(json_is_null(json_object_get(j, "assignee")));
	json_decref(j);
	json_decref(call_json(c, "PATCH", inc, toks[1], "{\"status\":\"bogus\"}", 400));
	json_decref(call_json(c, "PATCH", inc, toks[1], "{\"owner\":\"x\"}", 400));
	json_decref(call_json(c, "PATCH", "/api/v1/incidents/99999", toks[1], "{\"status\":\"new\"}", 404));
	json_decref(call_json(c, "POST", note, toks[1], "{\"text\":\"" XSS "\"}", 201));
	j = call_json(c, "GET", inc, toks[1], NULL, 200);
	json_t *notes = json_object_get(j, "notes");
	ck_assert_int_ge(json_array_size(notes), 2);
	ck_assert_str_eq(jstr(json_array_get(notes, json_array_size(notes) - 1), "text"), XSS);
	ck_assert_int_eq(strlen(jstr(json_array_get(notes, 0), "author")), 12);
	ck_assert_str_eq(jstr(json_object_get(j, "event"), "id"), event0);
	json_decref(j);
	j = call_json(c, "GET", "/api/v1/incidents?status=false_positive", toks[1], NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "incidents")), 1);
	json_decref(j);
	j = call_json(c, "GET", "/api/v1/incidents?detector=card", toks[1], NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "incidents")), 2);
	json_decref(j);
	j = call_json(c, "GET", "/api/v1/incidents/false-positives", toks[1], NULL, 200);
	json_t *g = json_array_get(json_object_get(j, "groups"), 0);
	ck_assert_msg(g && !strcmp(jstr(g, "detector"), "card") && !strcmp(jstr(g, "rule"), "policy.lua:7") &&
			      json_integer_value(json_object_get(g, "count")) == 1,
		      "%s", json_dumps(j, 0));
	json_decref(j);
	j = call_json(c, "GET", "/api/v1/audit", toks[2], NULL, 200);
	char *audit = json_dumps(j, 0);
	ck_assert_msg(strstr(audit, "incident.update") && strstr(audit, "incident.note") && strstr(audit, "admin.token.revoke"),
		      "%s", audit);
	free(audit);
	json_decref(j);

	/* viewers never get samples; analysts do */
	resp_t r = call(c, "GET", "/api/v1/events", toks[0], NULL, NULL, NULL);
	ck_assert_msg(r.status == 200 && !strstr(r.body, "samples") && strstr(r.body, "\"card\""), "%s", r.body);
	resp_free(&r);
	char path[512];
	snprintf(path, sizeof path, "/api/v1/events/%s", event0);
	r = call(c, "GET", path, toks[0], NULL, NULL, NULL);
	ck_assert_msg(r.status == 200 && !strstr(r.body, "samples"), "%s", r.body);
	resp_free(&r);
	r = call(c, "GET", path, toks[1], NULL, NULL, NULL);
	ck_assert_msg(r.status == 200 && strstr(r.body, "4526********3012"), "%s", r.body);
	resp_free(&r);
	r = call(c, "GET", "/api/v1/events/export?format=ndjson", toks[0], NULL, NULL, NULL);
	ck_assert_msg(r.status == 200 && !strstr(r.body, "samples"), "%s", r.body);
	resp_free(&r);
	r = call(c, "GET", "/api/v1/dashboard", toks[0], NULL, NULL, NULL);
	ck_assert_msg(r.status == 200 && !strstr(r.body, "samples"), "%s", r.body);
	resp_free(&r);

	/* explorer filters, each alone */
	ck_assert_int_eq(count_events(c, toks[0], ""), 7);
	ck_assert_int_eq(count_events(c, toks[0], "verdict=block"), 5); /* the shadow's block too */
	ck_assert_int_eq(count_events(c, toks[0], "verdict=block&kind=verdict"), 4);
	ck_assert_int_eq(count_events(c, toks[0], "detector=card"), 3);
	ck_assert_int_eq(count_events(c, toks[0], "host=paste.example"), 3);
	ck_assert_int_eq(count_events(c, toks[0], "agent=" AGENT), 7);
	ck_assert_int_eq(count_events(c, toks[0], "agent=" AGENT2), 0);
	ck_assert_int_eq(count_events(c, toks[0], "policy_version=config"), 1);
	ck_assert_int_eq(count_events(c, toks[0], "monitor=true"), 1);
	ck_assert_int_eq(count_events(c, toks[0], "mode=enforced"), 5); /* the shadow event is not a verdict */
	ck_assert_int_eq(count_events(c, toks[0], "mode=shadow"), 1);
	ck_assert_int_eq(count_events(c, toks[0], "app=com.ex"), 6);
	ck_assert_int_eq(count_events(c, toks[0], "detector=card&verdict=block&monitor=false"), 1);
	json_decref(call_json(c, "GET", "/api/v1/events?monitor=maybe", toks[0], NULL, 400));
	json_decref(call_json(c, "GET", "/api/v1/events?mode=x", toks[0], NULL, 400));
	/* paging: newest first, every event once, the same with a detector */
	char ids[16][40];
	int n = page_all(c, toks[0], "", ids, 16);
	ck_assert_int_eq(n, 7);
	for (int a = 0; a < n; a++)
		for (int b = a + 1; b < n; b++)
			ck_assert_str_ne(ids[a], ids[b]);
	ck_assert_str_eq(ids[0], "01900000-0000-7000-8000-000000000000"); /* 60 s ago: the newest */
	n = page_all(c, toks[0], "detector=card", ids, 16);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(ids[0], "01900000-0000-7000-8000-000000000000");
	ck_assert_str_eq(ids[2], "01900000-0000-7000-8000-000000000003");

	/* fields an agent controls come back verbatim (the front end escapes) */
	j = call_json(c, "GET", "/api/v1/events?host=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", toks[1], NULL, 200);
	json_t *xe = json_array_get(json_object_get(j, "events"), 0);
	ck_assert_msg(xe, "the XSS host event: %s", json_dumps(j, 0));
	ck_assert_str_eq(jstr(json_object_get(xe, "flow"), "host"), XSS);
	ck_assert_str_eq(jstr(json_object_get(xe, "flow"), "path"), "/up/" XSS);
	ck_assert_str_eq(jstr(json_object_get(xe, "app"), "path"), "/usr/bin/" XSS);
	ck_assert_str_eq(jstr(xe, "reason"), "=HYPERLINK(\"http://x\")");
	ck_assert(json_object_get(json_object_get(xe, "detectors"), XSS));
	json_decref(j);

	/* exports: CSV with formulas neutralised, NDJSON, the bound */
	r = call(c, "GET", "/api/v1/events/export?format=csv&verdict=block", toks[0], NULL, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	char *ct = header(r.head, "Content-Type"), *cd = header(r.head, "Content-Disposition");
	ck_assert_msg(ct && !strcmp(ct, "text/csv; charset=utf-8"), "%s", ct);
	ck_assert_msg(cd && strstr(cd, "attachment") && strstr(cd, ".csv"), "%s", cd);
	free(ct), free(cd);
	ck_assert_msg(!strncmp(r.body, "time,id,agent_id,kind,verdict", 29), "%s", r.body);
	ck_assert_msg(strstr(r.body, "\"'=HYPERLINK(\"\"http://x\"\")\""), "formula not neutralised: %s", r.body);
	ck_assert_msg(strstr(r.body, "\"" XSS "\""), "%s", r.body);
	int rows = 0;
	for (const char *p = r.body; (p = strstr(p, "\r\n")); p += 2)
		rows++;
	ck_assert_int_eq(rows, 1 + 5);
	resp_free(&r);
	r = call(c, "GET", "/api/v1/events/export?format=ndjson&limit=2", toks[0], NULL, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	rows = 0;
	for (const char *p = r.body; (p = strchr(p, '\n')); p++)
		rows++;
	ck_assert_int_eq(rows, 3);
	ck_assert_msg(strstr(r.body, "{\"truncated\":true,\"limit\":2}\n"), "%s", r.body);
	resp_free(&r);
	json_decref(call_json(c, "GET", "/api/v1/events/export?format=xlsx", toks[0], NULL, 400));
	json_decref(call_json(c, "GET", "/api/v1/events/export?format=csv&limit=100001", toks[0], NULL, 400));

	/* detail: the rule's source lines of v1, masked samples by role */
	snprintf(path, sizeof path, "/api/v1/events/%s/detail", event0);
	j = call_json(c, "GET", path, toks[1], NULL, 200);
	json_t *ex = json_object_get(j, "explain"), *src = json_object_get(ex, "source");
	ck_assert_msg(json_is_object(src), "%s", json_dumps(j, 0));
	ck_assert_int_eq(json_integer_value(json_object_get(src, "first_line")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(src, "highlight")), 7);
	ck_assert_int_eq(json_integer_value(json_object_get(src, "version")), 1);
	ck_assert_str_eq(sval(json_array_get(json_object_get(src, "lines"), 5)), "\t\treturn dlp.block(\"card\", found)");
	ck_assert_int_eq(json_array_size(json_object_get(src, "lines")), 9);
	ck_assert_str_eq(jstr(ex, "rule_file"), "policy.lua");
	ck_assert_str_eq(jstr(json_object_get(ex, "app"), "team_id"), "T1");
	ck_assert_str_eq(jstr(json_object_get(ex, "flow"), "tls"), "TLSv1.3");
	ck_assert_str_eq(jstr(json_object_get(ex, "agent"), "hostname"), "host-a");
	ck_assert_str_eq(sval(json_array_get(json_object_get(json_array_get(json_object_get(ex, "detectors"), 0), "samples"), 0)),
			 "4526********3012");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(ex, "incident"), "id")), inc0);
	json_decref(j);
	j = call_json(c, "GET", path, toks[0], NULL, 200);
	char *text = json_dumps(j, 0);
	ck_assert_msg(!strstr(text, "samples"), "%s", text);
	free(text);
	json_decref(j);
	j = call_json(c, "GET", "/api/v1/events/01900000-0000-7000-8000-000000000006/detail", toks[0], NULL, 200);
	ck_assert_str_eq(jstr(json_object_get(j, "explain"), "source_unavailable"), "no_rule_line");
	json_decref(j);
	json_decref(call_json(c, "GET", "/api/v1/events/01900000-0000-7000-8000-999999999999/detail", toks[0], NULL, 404));

	/* agents: the summary from the latest status, the history */
	j = call_json(c, "GET", "/api/v1/agents/" AGENT, toks[0], NULL, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "spool_depth")), 6);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "drops")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "policy_version")), 1);
	ck_assert(json_is_false(json_object_get(j, "silent")));
	ck_assert_str_eq(sval(json_array_get(json_object_get(j, "recent_errors"), 0)), XSS);
	json_t *h = json_object_get(j, "history");
	ck_assert_int_eq(json_array_size(h), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(h, 0), "spool_depth")), 5);
	json_decref(j);
	json_decref(call_json(c, "GET", "/api/v1/agents/" AGENT2, toks[0], NULL, 404));

	/* dashboard: the counts that were sent */
	j = call_json(c, "GET", "/api/v1/dashboard", toks[0], NULL, 200);
	ck_assert_str_eq(jstr(j, "bucket"), "hour");
	json_t *tot = json_object_get(j, "totals");
	ck_assert_int_eq(json_integer_value(json_object_get(tot, "block")), 4);
	ck_assert_int_eq(json_integer_value(json_object_get(tot, "redact")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(tot, "pass")), 1);
	json_t *top = json_object_get(j, "top");
	ck_assert_str_eq(jstr(json_array_get(json_object_get(top, "detectors"), 0), "key"), "card");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(top, "detectors"), 0), "count")), 3);
	ck_assert_str_eq(jstr(json_array_get(json_object_get(top, "hosts"), 0), "key"), "paste.example");
	ck_assert_str_eq(jstr(json_array_get(json_object_get(top, "agents"), 0), "hostname"), "host-a");
	json_t *fl = json_object_get(j, "fleet");
	ck_assert_int_eq(json_integer_value(json_object_get(fl, "agents")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(fl, "reporting")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(fl, "spool_backlog")), 6);
	ck_assert_int_eq(json_integer_value(json_object_get(fl, "policy_errors")), 2);
	ck_assert_int_eq(json_array_size(json_object_get(j, "latest_blocks")), 4);
	json_decref(j);
	/* an event five hours ago is counted from the hourly rollup */
	char *old = verdict_line(AGENT, 5 * 3600, "block", false, "old.example", "old", CARD, "v1", "policy.lua:7");
	char *out = NULL;
	strcat(old = realloc(old, strlen(old) + 2), "\n");
	ck_assert_int_eq(post_events(c, agent_tok, old, &out), 200);
	free(out), free(old);
	j = call_json(c, "GET", "/api/v1/dashboard", toks[0], NULL, 200);
	tot = json_object_get(j, "totals");
	ck_assert_int_eq(json_integer_value(json_object_get(tot, "block")), 5);
	top = json_object_get(j, "top");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(top, "detectors"), 0), "count")), 4);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(top, "agents"), 0), "count")), 7);
	ck_assert_int_ge(json_array_size(json_object_get(j, "series")), 2);
	json_decref(j);
	/* 30 hours ago is inside a whole day of a 3-day range: the daily rows */
	old = verdict_line(AGENT, 30 * 3600, "block", false, "old2.example", "old", CARD, "v1", "policy.lua:7");
	strcat(old = realloc(old, strlen(old) + 2), "\n");
	ck_assert_int_eq(post_events(c, agent_tok, old, &out), 200);
	free(out), free(old);
	char since3[40], dpath[128];
	time_ago(3 * 86400, since3);
	snprintf(dpath, sizeof dpath, "/api/v1/dashboard?since=%s", since3);
	j = call_json(c, "GET", dpath, toks[0], NULL, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "totals"), "block")), 6);
	top = json_object_get(j, "top");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(top, "detectors"), 0), "count")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(top, "agents"), 0), "count")), 8);
	bool seen = false;
	json_array_foreach(json_object_get(top, "hosts"), i, x) seen |= !strcmp(jstr(x, "key"), "old2.example");
	ck_assert_msg(seen, "%s", jstr(j, "since"));
	json_decref(j);
	json_decref(call_json(c, "GET", "/api/v1/dashboard?since=2026-01-01T00:00:00Z&until=2025-01-01T00:00:00Z", toks[0],
			      NULL, 400));
	j = call_json(c, "POST", "/api/v1/rollouts/preview", toks[2], "{\"labels\":{\"ring\":\"canary\"},\"percent\":100}", 200);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "targets")), 1); /* labelled by the matrix */
	ck_assert_int_eq(json_integer_value(json_object_get(j, "agents")), 1);
	json_decref(j);
	for (int t = 0; t < 3; t++)
		free(toks[t]);
	free(agent_tok);
}

/* ---- static files ---- */

static char *web_root(void)
{
	static int n;
	char name[32], p[4200];
	snprintf(name, sizeof name, "web%d", n++);
	char *root = th_path(name);
	mkdir(root, 0700);
	snprintf(p, sizeof p, "%s/assets", root);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/index.html", root);
	th_write_file(p, "<!doctype html><p>app</p>", 25, 0644);
	snprintf(p, sizeof p, "%s/assets/app-Bx91kQ2z.js", root);
	th_write_file(p, "export {}\n", 10, 0644);
	snprintf(p, sizeof p, "%s/assets/style.css", root);
	th_write_file(p, "p{}\n", 4, 0644);
	snprintf(p, sizeof p, "%s/.env", root);
	th_write_file(p, "SECRET=1\n", 9, 0644);
	/* a file outside, and a link to it inside */
	char *outside = th_path("web-outside.txt"), link[4200];
	th_write_file(outside, "OUTSIDE\n", 8, 0644);
	snprintf(link, sizeof link, "%s/assets/leak.txt", root);
	ck_assert_int_eq(symlink(outside, link), 0);
	free(outside);
	return root;
}

static void expect_static(cons_t *c, const char *path, int status, const char *type, const char *has,
			  const char *cache)
{
	resp_t r = call(c, "GET", path, NULL, NULL, NULL, NULL);
	ck_assert_msg(r.status == status, "GET %s: %d (want %d): %s", path, r.status, status, r.body);
	assert_security_headers(&r, false);
	char *ct = header(r.head, "Content-Type"), *cc = header(r.head, "Cache-Control");
	if (type)
		ck_assert_msg(ct && !strcmp(ct, type), "GET %s: type %s", path, ct ? ct : "(none)");
	if (has)
		ck_assert_msg(strstr(r.body, has), "GET %s: %s", path, r.body);
	if (cache)
		ck_assert_msg(cc && !strcmp(cc, cache), "GET %s: cache %s", path, cc ? cc : "(none)");
	ck_assert_msg(!strstr(r.body, "OUTSIDE") && !strstr(r.body, "SECRET"), "GET %s leaked: %s", path, r.body);
	free(ct), free(cc);
	resp_free(&r);
}

START_TEST(static_files)
{
	char *root = web_root();
	cons_t c = cons_start_args(NULL, true, (const char *const[]){"--web-root", root, NULL});
	const char *html = "text/html; charset=utf-8";
	expect_static(&c, "/", 200, html, "<p>app</p>", "no-cache");
	expect_static(&c, "/events/01900000-0000-7000-8000-000000000000", 200, html, "<p>app</p>", "no-cache");
	expect_static(&c, "/incidents/", 200, html, "<p>app</p>", NULL);
	expect_static(&c, "/assets", 200, html, "<p>app</p>", NULL); /* a directory: never listed */
	expect_static(&c, "/assets/app-Bx91kQ2z.js", 200, "text/javascript; charset=utf-8", "export",
		      "public, max-age=31536000, immutable");
	expect_static(&c, "/assets/style.css", 200, "text/css; charset=utf-8", "p{}", "no-cache");
	expect_static(&c, "/assets/leak.txt", 200, html, "<p>app</p>", NULL); /* the link out is not followed */
	expect_static(&c, "/../web-outside.txt", 400, NULL, NULL, NULL);
	expect_static(&c, "/assets/../../web-outside.txt", 400, NULL, NULL, NULL);
	expect_static(&c, "/assets/%2e%2e/%2e%2e/web-outside.txt", 400, NULL, NULL, NULL);
	expect_static(&c, "/.env", 400, NULL, NULL, NULL);
	expect_static(&c, "//etc/passwd", 400, NULL, NULL, NULL);
	resp_t r = call(&c, "POST", "/", NULL, NULL, NULL, "{}");
	ck_assert_int_eq(r.status, 405);
	resp_free(&r);
	/* API errors carry the headers too */
	r = call(&c, "GET", "/api/v1/nothing", NULL, NULL, NULL, NULL);
	ck_assert_int_eq(r.status, 404);
	assert_security_headers(&r, true);
	resp_free(&r);
	cons_stop(&c);
	/* no web root: a page that says so, naming no path */
	c = cons_start_args(NULL, true, (const char *const[]){"--web-root", "/nonexistent/dlpgate-web", NULL});
	r = call(&c, "GET", "/dashboard", NULL, NULL, NULL, NULL);
	ck_assert_msg(r.status == 503 && strstr(r.body, "not installed") && !strstr(r.body, "/nonexistent"), "%d %s",
		      r.status, r.body);
	assert_security_headers(&r, false);
	resp_free(&r);
	cons_stop(&c);
	free(root);
}
END_TEST

START_TEST(session_expiry)
{
	cons_t c = cons_start_args(NULL, true, (const char *const[]){"--session-idle", "1", "--session-max", "2", NULL});
	char *tok = token(&c, "viewer");
	/* in use every 0.25 s: alive until the absolute limit (2 s), which
	 * then ends it although it was used a moment before */
	char *csrf = NULL, *cookie = sign_in(&c, tok, &csrf);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	double el = 0;
	while (el < 1.6) {
		ck_assert_int_eq(with_cookie(&c, "GET", "/api/v1/session", cookie, NULL, NULL), 200);
		usleep(250000);
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
	}
	usleep((useconds_t)((2.2 - el) * 1e6));
	ck_assert_int_eq(with_cookie(&c, "GET", "/api/v1/session", cookie, NULL, NULL), 401);
	free(csrf), free(cookie);
	/* idle: unused for over a second */
	cookie = sign_in(&c, tok, &csrf);
	usleep(1300000);
	ck_assert_int_eq(with_cookie(&c, "GET", "/api/v1/session", cookie, NULL, NULL), 401);
	free(csrf), free(cookie);
	/* revoking the token ends its sessions */
	cookie = sign_in(&c, tok, &csrf);
	char *out = NULL;
	ck_assert_int_eq(cons_cli(&c, &out, NULL, (const char *const[]){"admin", "token", "list", NULL}), 0);
	json_t *l = json_loads(out, 0, NULL);
	free(out);
	const char *id = jstr(json_array_get(json_object_get(l, "tokens"), 0), "token_id");
	ck_assert_int_eq(cons_cli(&c, NULL, NULL, (const char *const[]){"admin", "token", "revoke", id, NULL}), 0);
	ck_assert_int_eq(cons_cli(&c, NULL, NULL, (const char *const[]){"admin", "token", "revoke", id, NULL}), 1);
	json_decref(l);
	ck_assert_int_eq(with_cookie(&c, "GET", "/api/v1/session", cookie, NULL, NULL), 401);
	ck_assert_int_eq(cons_cli(&c, NULL, NULL, (const char *const[]){"admin", "token", "create", "--role", "root", NULL}),
			 2);
	free(csrf), free(cookie), free(tok);
	cons_stop(&c);
}
END_TEST

START_TEST(sqlite_ui)
{
	cons_t c = cons_start(NULL);
	ui_path(&c);
	cons_stop(&c);
}
END_TEST

START_TEST(postgresql_ui)
{
	th_postgres pg = th_postgres_start();
	cons_t c = cons_start(pg.url);
	ui_path(&c);
	/* a second console on the same database honours the first's sessions */
	cons_t c2 = cons_start(pg.url);
	char *tok = token(&c, "analyst"), *csrf = NULL, *cookie = sign_in(&c2, tok, &csrf);
	ck_assert_int_eq(with_cookie(&c, "GET", "/api/v1/session", cookie, NULL, NULL), 200);
	ck_assert_int_eq(with_cookie(&c, "DELETE", "/api/v1/session", cookie, csrf, NULL), 204);
	ck_assert_int_eq(with_cookie(&c2, "GET", "/api/v1/session", cookie, NULL, NULL), 401);
	free(tok), free(csrf), free(cookie);
	cons_stop(&c2);
	cons_stop(&c);
	th_postgres_stop(&pg);
}
END_TEST

Suite *console_ui_suite(void)
{
	Suite *s = suite_create("console_ui");
	TCase *t = tcase_create("console_ui");
	tcase_set_timeout(t, 90);
	tcase_add_test(t, static_files);
	tcase_add_test(t, session_expiry);
	tcase_add_test(t, sqlite_ui);
	tcase_add_test(t, postgresql_ui);
	suite_add_tcase(s, t);
	return s;
}
