/*
 * Events, as the engine really emits them for real traffic, checked against
 * schemas/verdict.schema.json by a real validator (ajv, JSON Schema
 * 2020-12, strict), and the agent side of the console: spool, uploader,
 * enrollment, against the real dlpgate-console (test_console.c tests the
 * console on its own).
 */
#include "dlp.h"
#include "suites.h"
#include "sync/bundle.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *policy_src =
	"local dlp = require 'dlp'\n"
	"detectors = {\n"
	"  card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' },\n"
	"  aws = dlp.detector{ [[\\b(AKIA[A-Z0-9]{16})\\b]], keywords = {'AKIA'}, group = 1 },\n"
	"}\n"
	"function on_flow(flow)\n"
	"  if flow.host == 'localhost' then return dlp.bypass('trusted test host') end\n"
	"  return dlp.inspect()\n"
	"end\n"
	"function on_request(req, flow)\n"
	"  local found = req:scan(detectors)\n"
	"  if found.aws then return dlp.block('credential upload', found) end\n"
	"  if found.card then return dlp.redact(found) end\n"
	"  return dlp.pass()\n"
	"end\n";

/* Every JSON event line of a log, one per line. */
static char *event_lines(const char *log, int *count)
{
	size_t cap = strlen(log) + 1;
	char *out = calloc(1, cap);
	*count = 0;
	for (const char *p = log; (p = strstr(p, "{\"event\":\""));) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		strncat(out, p, n);
		strcat(out, "\n");
		(*count)++;
		p += n;
	}
	return out;
}

/* ajv, strict, draft 2020-12, on each line as its own document, against
 * schemas/SCHEMA. Returns NULL when all are valid, else ajv's complaint. */
char *ajv_check_with(const char *schema_name, const char *ndjson)
{
	const char *top = getenv("DLPGATE_TOP");
	char ajv[600], schema[600];
	snprintf(ajv, sizeof ajv, "%s/.deps/node_modules/.bin/ajv", top);
	snprintf(schema, sizeof schema, "%s/schemas/%s", top, schema_name);
	if (access(ajv, X_OK) != 0)
		th_fail("%s missing: run scripts/deps.sh (it installs ajv-cli)", ajv);
	char *dir = th_path(schema_name);
	mkdir(dir, 0755);
	int n = 0;
	for (const char *p = ndjson; *p;) {
		const char *nl = strchr(p, '\n');
		char name[700];
		snprintf(name, sizeof name, "%s/e%04d.json", dir, n++);
		th_write_file(name, p, (size_t)(nl - p), 0644);
		p = nl + 1;
	}
	char glob[700];
	snprintf(glob, sizeof glob, "%s/e*.json", dir);
	const char *argv[] = {ajv, "validate", "--spec=draft2020", "--strict=true", "--errors=text", "-s", schema,
			      "-d", glob, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 60000);
	free(dir);
	if (rc == 0) {
		free(out), free(err);
		return NULL;
	}
	size_t n1 = strlen(out), n2 = strlen(err);
	out = realloc(out, n1 + n2 + 1);
	memcpy(out + n1, err, n2 + 1);
	free(err);
	return out;
}

static char *ajv_check(const char *ndjson)
{
	return ajv_check_with("verdict.schema.json", ndjson);
}

START_TEST(real_events_validate_against_the_schema)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	char *policy = th_path("policy.lua");
	th_write_file(policy, policy_src, strlen(policy_src), 0644);
	const char *args[] = {"--policy", policy, NULL};
	dlp_t d = dlp_start(w.ca.cert_path, "{\"report\": {\"flow_events\": \"all\"}}", args);

	char *u_ip = url("127.0.0.1", th_upstream_port(up), "/upload?token=SECRETQUERY", true);
	char *u_host = url("localhost", th_upstream_port(up), "/skip", true);
	const char *block[] = {"--data-binary", "key AKIAIOSFODNN7EXAMPLE", u_ip, NULL};
	const char *redact[] = {"--data-binary", "card 4111 1111 1111 1111", u_ip, NULL};
	const char *plain[] = {u_ip, NULL};
	const char *bypassed[] = {u_host, NULL};
	char *out, *err;
	for (const char *const *a[] = {block, redact, plain, bypassed, NULL}, *const **x = a; *x; x++) {
		dlp_curl(&d, *x, &out, &err);
		free(out), free(err);
	}
	char *idfile = malloc(strlen(d.state_dir) + 16);
	sprintf(idfile, "%s/agent.json", d.state_dir);
	char *ident = th_read_file(idfile, NULL);
	struct stat st;
	ck_assert(stat(idfile, &st) == 0 && (st.st_mode & 0777) == 0600);
	dlp_stop(&d); /* every flow has ended: its flow-log record is out */
	char *log = dlp_log(&d);
	int n;
	char *events = event_lines(log, &n);
	ck_assert_msg(strstr(events, "\"event\":\"verdict\"") && strstr(events, "\"verdict\":\"block\"") &&
			      strstr(events, "\"verdict\":\"redact\"") && strstr(events, "\"event\":\"flow\"") &&
			      strstr(events, "\"mode\":\"bypass\"") && strstr(events, "\"latency_us\":"),
		      "missing kinds of events:\n%s", events);
	/* masked samples only; never a secret, never a query value */
	ck_assert_msg(!strstr(events, "AKIAIOSFODNN7EXAMPLE") && !strstr(events, "4111 1111 1111 1111") &&
			      !strstr(events, "SECRETQUERY"),
		      "%s", events);
	/* the agent id is the one kept in the state dir */
	char id[40] = "";
	ck_assert(ident && sscanf(strstr(ident, "\"agent_id\"") + 10, " : \"%36[0-9a-f-]", id) == 1);
	char want[64];
	snprintf(want, sizeof want, "\"agent_id\":\"%s\"", id);
	ck_assert_msg(strstr(events, want), "events do not name agent %s:\n%s", id, events);

	char *complaint = ajv_check(events);
	ck_assert_msg(!complaint, "%d events, ajv says:\n%s\nevents:\n%s", n, complaint, events);
	/* the validator is not a rubber stamp: a broken event fails */
	char *bad = strdup(events);
	char *v = strstr(bad, "\"verdict\":\"block\"");
	memcpy(v, "\"verdict\":\"bloke\"", 17);
	complaint = ajv_check(bad);
	ck_assert_msg(complaint, "ajv accepted an unknown verdict");
	free(complaint), free(bad), free(ident), free(idfile), free(events), free(log);
	free(u_ip), free(u_host), free(policy);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST


/* ---- the agent and the real console ---- */


typedef struct {
	th_proc proc;
	int port;
	char dir[600];
	char url[64];
	char cert[700];
	char admin[128];
	const char *metrics;       /* --metrics ADDR:PORT when set before the start */
} console_t;

#define ENROLL_SECRET "fleet-secret-for-tests"

static void console_start_db(console_t *c, int port, const char *dir, const char *db)
{
	c->port = port;
	snprintf(c->dir, sizeof c->dir, "%s", dir);
	snprintf(c->url, sizeof c->url, "https://127.0.0.1:%d", port);
	snprintf(c->cert, sizeof c->cert, "%s/console.pem", dir);
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	const char *argv[12] = {dlp_console_bin(), "run", "--listen", listen, "--state-dir", dir, "--enroll-secret",
				ENROLL_SECRET};
	int n = 8;
	if (c->metrics) {
		argv[n++] = "--metrics";
		argv[n++] = c->metrics;
	}
	if (db) {
		argv[n++] = "--db";
		argv[n++] = db;
	}
	c->proc = th_spawn((char *const *)argv, "console.log");
	if (!th_wait_port(port, 15000)) {
		char *log = th_log(&c->proc);
		th_fail("dlpgate-console did not listen on %d:\n%s", port, log);
	}
	if (!c->admin[0]) {
		const char *tc[] = {dlp_console_bin(), "admin", "token", "create", "--state-dir", dir,
				    db ? "--db" : NULL, db, NULL};
		char *out = NULL, *err = NULL;
		int rc = th_run((char *const *)tc, NULL, 0, &out, NULL, &err, 30000);
		if (rc != 0 || sscanf(out, "%127s", c->admin) != 1)
			th_fail("admin token create: exit %d: %s%s", rc, out, err);
		free(out), free(err);
	}
}

static void console_start(console_t *c, int port, const char *dir)
{
	console_start_db(c, port, dir, NULL);
}

/* The events the console holds (all pages), as a JSON array. */
static json_t *console_events(console_t *c, const char *filter)
{
	json_t *all = json_array();
	char cursor[256] = "";
	char auth[200];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->admin);
	for (int page = 0; page < 1000; page++) {
		char u[600];
		snprintf(u, sizeof u, "%s/api/v1/events?limit=1000%s%s%s%s", c->url, filter ? "&" : "", filter ? filter : "",
			 cursor[0] ? "&cursor=" : "", cursor);
		const char *args[] = {"--cacert", c->cert, "-H", auth, u, NULL};
		char *out = NULL, *err = NULL;
		int rc = th_curl(args, &out, NULL, &err);
		json_t *o = rc == 0 ? json_loads(out, 0, NULL) : NULL;
		if (!o || !json_is_array(json_object_get(o, "events")))
			th_fail("GET %s: curl %d: %s %s", u, rc, out, err);
		json_array_extend(all, json_object_get(o, "events"));
		const char *next = json_string_value(json_object_get(o, "next_cursor"));
		snprintf(cursor, sizeof cursor, "%s", next ? next : "");
		json_decref(o);
		free(out), free(err);
		if (!cursor[0])
			break;
	}
	return all;
}

typedef struct {
	th_proc proc;
	int port;
	char proxy[64];
	char ca[700];
	const char *metrics;       /* --metrics ADDR:PORT when set before the start */
} agent_t;

static void agent_start(agent_t *a, const char *state, int port, const char *config, const char *upstream_ca,
			const char *policy, console_t *c, const char *log)
{
	a->port = port;
	snprintf(a->proxy, sizeof a->proxy, "http://127.0.0.1:%d", port);
	snprintf(a->ca, sizeof a->ca, "%s/ca.pem", state);
	char listen[64], curl_url[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	snprintf(curl_url, sizeof curl_url, "https://127.0.0.1:%d", c->port);
	char *cfg = th_path("agent-config.json");
	th_write_file(cfg, config, strlen(config), 0644);
	const char *argv[] = {dlp_bin(), "run", "--listen", listen, "--state-dir", state, "--workers", "2",
			      "--upstream-ca", upstream_ca, "--policy", policy, "--config", cfg, "--console", curl_url,
			      "--console-ca", c->cert, "--enroll-secret", ENROLL_SECRET,
			      a->metrics ? "--metrics" : NULL, a->metrics, NULL};
	a->proc = th_spawn((char *const *)argv, log);
	free(cfg);
	if (!th_wait_port(port, 10000)) {
		char *l = th_log(&a->proc);
		th_fail("dlpgate did not listen on %d:\n%s", port, l);
	}
}

/* n blocked uploads through the agent, 8 at a time; the block pages' event
 * ids (what the engine acknowledged to the client) are appended to ids. */
static int blocked_uploads(agent_t *a, int upstream_port, int n, char *ids, size_t idcap)
{
	const char **args = calloc((size_t)n + 16, sizeof *args);
	char *u = url("127.0.0.1", upstream_port, "/upload", true);
	int k = 0;
	args[k++] = "-Z";
	args[k++] = "--parallel-max";
	args[k++] = "8";
	args[k++] = "-x";
	args[k++] = a->proxy;
	args[k++] = "--cacert";
	args[k++] = a->ca;
	args[k++] = "-H";
	args[k++] = "Accept: application/json";
	args[k++] = "--data-binary";
	args[k++] = "key AKIAIOSFODNN7EXAMPLE";
	for (int i = 0; i < n; i++)
		args[k++] = u;
	args[k] = NULL;
	char *out = NULL, *err = NULL;
	th_curl(args, &out, NULL, &err);
	int found = 0;
	for (const char *p = out; p && (p = strstr(p, "\"event\":\"")); p += 9) {
		char id[40];
		if (sscanf(p + 9, "%36[0-9a-f-]", id) == 1 && strlen(ids) + 40 < idcap) {
			strcat(ids, id);
			strcat(ids, " ");
			found++;
		}
	}
	free(out), free(err), free(u), free(args);
	return found;
}

/* Polls the console until every id in ids is there; fails naming the
 * missing ones. Then checks none is there twice. */
static void expect_exactly_once(console_t *c, const char *ids, int timeout_ms)
{
	json_t *events = NULL;
	char missing[200] = "";
	for (int waited = 0;; waited += 200) {
		json_decref(events);
		events = console_events(c, "kind=verdict");
		missing[0] = '\0';
		int n_missing = 0;
		char id[40];
		for (const char *p = ids; sscanf(p, "%36s", id) == 1; p = strchr(p, ' ') + 1) {
			bool seen = false;
			size_t i;
			json_t *e;
			json_array_foreach(events, i, e)
				if (json_string_value(json_object_get(e, "id")) &&
				    !strcmp(json_string_value(json_object_get(e, "id")), id))
					seen = true;
			if (!seen && n_missing++ < 3)
				snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s ", id);
		}
		if (!n_missing)
			break;
		if (waited > timeout_ms)
			th_fail("%d acknowledged events never reached the console, e.g. %s", n_missing, missing);
		usleep(200000);
	}
	size_t i, j;
	json_t *e, *f;
	json_array_foreach(events, i, e)
		for (j = i + 1; j < json_array_size(events); j++) {
			f = json_array_get(events, j);
			ck_assert_msg(strcmp(json_string_value(json_object_get(e, "id")),
					     json_string_value(json_object_get(f, "id"))),
				      "event %s stored twice", json_string_value(json_object_get(e, "id")));
		}
	json_decref(events);
}

typedef struct {
	world_t w;
	th_upstream *up;
	char *policy;
	char *state;
	char *console_dir;
	console_t c;
} e2e_t;

static void e2e_setup(e2e_t *x)
{
	memset(x, 0, sizeof *x);
	x->w = world_new();
	x->up = th_upstream_start(&x->w.server);
	x->policy = th_path("policy.lua");
	th_write_file(x->policy, policy_src, strlen(policy_src), 0644);
	x->state = th_path("agent-state");
	x->console_dir = th_path("console-state");
	mkdir(x->console_dir, 0700);
}

/* A console that ran once (so its certificate exists for the agent to
 * trust) and is now down; returns its port for the restart. */
static int console_away(e2e_t *x)
{
	int port = th_free_port();
	console_start(&x->c, port, x->console_dir);
	th_stop(&x->c.proc);
	return port;
}

static void e2e_free(e2e_t *x)
{
	th_stop(&x->c.proc);
	th_upstream_stop(x->up);
	world_free(&x->w);
	free(x->policy), free(x->state), free(x->console_dir);
}

/* The common start: the world, the console, and an agent enrolled to it
 * with config (a->metrics, x->c.metrics as set by the caller). */
static void e2e_start(e2e_t *x, agent_t *a, const char *config)
{
	console_t c = {.metrics = x->c.metrics};
	e2e_setup(x);
	x->c = c;
	console_start(&x->c, th_free_port(), x->console_dir);
	agent_start(a, x->state, th_free_port(), config, x->w.ca.cert_path, x->policy, &x->c, "agent.log");
}

START_TEST(killed_agent_loses_no_acknowledged_event)
{
	e2e_t x;
	e2e_setup(&x);
	console_start(&x.c, th_free_port(), x.console_dir);
	/* Long batches: at the kill most events are in the spool only. */
	const char *cfg = "{\"report\": {\"batch_wait_ms\": 3000, \"batch_max_events\": 10000, \"flow_events\": \"off\"}}";
	agent_t a = {0};
	int port = th_free_port();
	agent_start(&a, x.state, port, cfg, x.w.ca.cert_path, x.policy, &x.c, "agent1.log");
	static char ids[200000];
	ids[0] = '\0';
	int before = blocked_uploads(&a, th_upstream_port(x.up), 150, ids, sizeof ids);
	ck_assert_int_eq(before, 150);
	/* heavy traffic in flight (four clients in a loop), then SIGKILL */
	char *u = url("127.0.0.1", th_upstream_port(x.up), "/upload", true);
	char load_cmd[2000];
	snprintf(load_cmd, sizeof load_cmd,
		 "for c in 1 2 3 4; do while :; do curl -q -s -x %s --cacert %s --data-binary "
		 "'key AKIAIOSFODNN7EXAMPLE' -H 'Accept: application/json' %s; echo; done & done; wait",
		 a.proxy, a.ca, u);
	const char *sh[] = {"/bin/sh", "-c", load_cmd, NULL};
	th_proc load = th_spawn((char *const *)sh, "load.log");
	for (int i = 0; i < 1000; i++) {
		char *lo = th_log(&load);
		int seen = 0;
		for (const char *p = lo; (p = strstr(p, "\"event\":\"")); p += 9)
			seen++;
		free(lo);
		if (seen >= 40)
			break;
		usleep(10000);
	}
	kill(a.proc.pid, SIGKILL);
	th_wait(&a.proc, 5000);
	th_stop(&load);
	/* what the in-flight clients were told was acknowledged too */
	char *lo = th_log(&load);
	int during = 0;
	for (const char *p = lo; (p = strstr(p, "\"event\":\"")); p += 9) {
		char id[40];
		if (sscanf(p + 9, "%36[0-9a-f-]", id) == 1) {
			strcat(ids, id);
			strcat(ids, " ");
			during++;
		}
	}
	free(lo);
	/* restart on the same spool: everything acknowledged arrives, once */
	agent_start(&a, x.state, port, "{\"report\": {\"batch_wait_ms\": 100, \"flow_events\": \"off\"}}",
		    x.w.ca.cert_path, x.policy, &x.c, "agent2.log");
	expect_exactly_once(&x.c, ids, 20000);
	char *l2 = th_log(&a.proc);
	ck_assert_msg(!strstr(l2, "event=enrolled"), "the restarted agent enrolled again:\n%s", l2);
	free(l2);
	th_stop(&a.proc);
	fprintf(stderr, "report: %d events before the kill, %d during, all delivered once\n", before, during);
	free(u);
	e2e_free(&x);
}
END_TEST

START_TEST(console_away_then_back_nothing_lost)
{
	e2e_t x;
	e2e_setup(&x);
	int cport = console_away(&x);
	const char *cfg = "{\"report\": {\"batch_wait_ms\": 100, \"retry_max_s\": 1, \"status_interval_s\": 1, "
			  "\"flow_events\": \"off\"}}";
	agent_t a = {0};
	agent_start(&a, x.state, th_free_port(), cfg, x.w.ca.cert_path, x.policy, &x.c, "agent.log");
	static char ids[100000];
	ids[0] = '\0';
	ck_assert_int_eq(blocked_uploads(&a, th_upstream_port(x.up), 60, ids, sizeof ids), 60);
	ck_assert(dlp_log_wait(&(dlp_t){.proc = a.proc}, "event=upload_failed", 10000));
	/* an admin at the machine sees what waits, while the agent runs */
	const char *ss[] = {dlp_bin(), "spool", "status", "--state-dir", x.state, NULL};
	char *so = NULL;
	ck_assert_int_eq(th_run((char *const *)ss, NULL, 0, &so, NULL, NULL, 10000), 0);
	ck_assert_msg(strstr(so, "spool    60 events waiting") && strstr(so, "(enrolled)") == NULL, "%s", so);
	free(so);
	console_start(&x.c, cport, x.console_dir);
	expect_exactly_once(&x.c, ids, 20000);
	/* the agent's status arrives too, with its counters */
	char auth[200], u[200];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", x.c.admin);
	snprintf(u, sizeof u, "%s/api/v1/agents", x.c.url);
	const char *args[] = {"--cacert", x.c.cert, "-H", auth, u, NULL};
	char *out = NULL, *err = NULL;
	for (int i = 0; i < 50; i++) {
		free(out), free(err);
		th_curl(args, &out, NULL, &err);
		if (strstr(out, "\"block\": 60") || strstr(out, "\"block\":60"))
			break;
		usleep(200000);
	}
	ck_assert_msg(strstr(out, "\"block\": 60") || strstr(out, "\"block\":60"), "%s", out);
	free(out), free(err);
	th_stop(&a.proc);
	e2e_free(&x);
}
END_TEST

START_TEST(full_spool_drops_are_counted_and_reported)
{
	e2e_t x;
	e2e_setup(&x);
	int cport = console_away(&x);
	/* 64 KiB of spool in 4 KiB segments: about 80 events fit */
	const char *cfg = "{\"report\": {\"spool_max_kb\": 64, \"spool_segment_kb\": 4, \"batch_wait_ms\": 100, "
			  "\"retry_max_s\": 1, \"flow_events\": \"off\"}}";
	agent_t a = {0};
	agent_start(&a, x.state, th_free_port(), cfg, x.w.ca.cert_path, x.policy, &x.c, "agent.log");
	static char ids[100000];
	ids[0] = '\0';
	int sent = blocked_uploads(&a, th_upstream_port(x.up), 300, ids, sizeof ids);
	ck_assert_int_eq(sent, 300);
	console_start(&x.c, cport, x.console_dir);
	/* every event is either delivered or counted in a spool_drop event */
	long delivered = 0, dropped = 0;
	for (int i = 0; i < 100 && delivered + dropped < 300; i++) {
		usleep(200000);
		json_t *v = console_events(&x.c, "kind=verdict");
		json_t *d = console_events(&x.c, "kind=spool_drop");
		delivered = (long)json_array_size(v);
		dropped = 0;
		size_t k;
		json_t *e;
		json_array_foreach(d, k, e) {
			ck_assert_str_eq(json_string_value(json_object_get(e, "reason")), "spool_full");
			dropped += (long)json_integer_value(json_object_get(e, "dropped"));
		}
		json_decref(v), json_decref(d);
	}
	ck_assert_msg(dropped > 0 && delivered + dropped == 300, "delivered %ld + dropped %ld != 300", delivered,
		      dropped);
	char *log = th_log(&a.proc);
	ck_assert_msg(strstr(log, "event=spool_full"), "%s", log);
	free(log);
	th_stop(&a.proc);
	e2e_free(&x);
}
END_TEST

START_TEST(graceful_stop_flushes_the_spool)
{
	e2e_t x = {0};
	agent_t a = {0};
	/* batches would wait a minute: only the stop's flush can send these */
	e2e_start(&x, &a, "{\"report\": {\"batch_wait_ms\": 60000, \"flow_events\": \"off\"}}");
	static char ids[10000];
	ids[0] = '\0';
	ck_assert_int_eq(blocked_uploads(&a, th_upstream_port(x.up), 5, ids, sizeof ids), 5);
	kill(a.proc.pid, SIGTERM);
	ck_assert_int_eq(th_wait(&a.proc, 10000), 0);
	expect_exactly_once(&x.c, ids, 0);
	e2e_free(&x);
}
END_TEST

/* A real curl upload (a card, so an event) waiting on a slow upstream, in
 * flight when SIGTERM comes. */
static th_proc slow_upload(agent_t *a, th_upstream *up, int ms, const char *out_name)
{
	char path[64];
	snprintf(path, sizeof path, "/slow?ms=%d", ms);
	char *u = url("127.0.0.1", th_upstream_port(up), path, true);
	char *out = th_path(out_name);
	char log[80];
	snprintf(log, sizeof log, "%s.log", out_name); /* curl's -w and errors */
	const char *argv[] = {"curl", "-q", "-sS", "--noproxy", "", "-x", a->proxy, "--cacert", a->ca,
			      "--data-binary", "card 4111 1111 1111 1111", "-o", out, "-w", "%{http_code}", u, NULL};
	th_proc p = th_spawn((char *const *)argv, log);
	free(u), free(out);
	return p;
}

static void wait_requests(th_upstream *up, size_t n)
{
	for (int i = 0; th_upstream_request_count(up) < n; i++) {
		if (i > 1000)
			th_fail("the upstream saw %zu requests, not %zu", th_upstream_request_count(up), n);
		usleep(10000);
	}
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* True once connecting to 127.0.0.1:port is refused, within timeout_ms
 * (every worker closes its own listener, each on its own loop). */
static bool port_refuses(int port, int timeout_ms)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (long until = now_ms() + timeout_ms; now_ms() < until; usleep(10000)) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int r = connect(fd, (struct sockaddr *)&a, sizeof a);
		int e = errno;
		close(fd);
		if (r != 0 && e == ECONNREFUSED)
			return true;
	}
	return false;
}

/* SIGTERM: new connections are refused at once, a keep-alive connection
 * resting between messages is closed at once, a message in flight
 * finishes (curl gets its 200), its event reaches the console through the
 * stop's flush, and the agent exits 0. */
START_TEST(sigterm_lets_messages_in_flight_finish)
{
	e2e_t x = {0};
	agent_t a = {0};
	/* batches would wait a minute: only the stop's flush can send the event */
	e2e_start(&x, &a, "{\"timeouts\": {\"drain_ms\": 8000}, \"report\": {\"batch_wait_ms\": 60000}}");

	/* a keep-alive connection that made one request and now rests */
	th_client *idle = th_client_connect_via_proxy(a.port, "127.0.0.1", th_upstream_port(x.up), a.ca, NULL);
	const char get[] = "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	ck_assert_int_eq(th_client_send(idle, get, sizeof get - 1), 0);
	size_t n;
	free(th_client_recv_response(idle, &n, 10000));

	th_proc up = slow_upload(&a, x.up, 2000, "slow-upload.out");
	wait_requests(x.up, 2);
	long t0 = now_ms();
	kill(a.proc.pid, SIGTERM);
	dlp_t view = {.proc = a.proc}; /* for the log helpers */
	ck_assert(dlp_log_wait(&view, "event=stop ", 5000));
	ck_assert_msg(port_refuses(a.port, 1000), "new connections were still accepted 1 s after SIGTERM");
	char *rest = th_client_recv_until_close(idle, &n, 1500);
	ck_assert_msg(th_client_eof(idle), "the resting keep-alive connection was not closed");
	ck_assert_msg(th_alive(&up), "the upload in flight ended before its response");
	free(rest);
	th_client_close(idle);

	ck_assert_int_eq(th_wait(&up, 15000), 0);
	char *out = th_path("slow-upload.out");
	char *body = th_read_file(out, NULL);
	char *code = th_log(&up);
	ck_assert_str_eq(code, "200");
	ck_assert_str_eq(body, "slow\n");
	free(out), free(body), free(code);
	ck_assert_int_eq(th_wait(&a.proc, 15000), 0);
	long took = now_ms() - t0;
	ck_assert_msg(took >= 1500 && took < 8000, "stopped after %ld ms: not waiting for the message, or for the "
		      "whole drain time", took);
	char *log = th_log(&a.proc);
	ck_assert_msg(strstr(log, "end=shutdown"), "the resting connection's flow line: %s", log);
	ck_assert_msg(!strstr(log, "drain_timeout"), "%s", log);
	free(log);
	json_t *ev = console_events(&x.c, "verdict=redact");
	ck_assert_int_eq(json_array_size(ev), 1);
	json_decref(ev);
	e2e_free(&x);
}
END_TEST

/* A second SIGTERM does not wait for the drain time nor the flush. */
START_TEST(second_sigterm_stops_at_once)
{
	e2e_t x = {0};
	agent_t a = {0};
	e2e_start(&x, &a, "{\"timeouts\": {\"drain_ms\": 60000}, \"report\": {\"batch_wait_ms\": 60000}}");
	th_proc up = slow_upload(&a, x.up, 30000, "slow-upload.out");
	wait_requests(x.up, 1);
	kill(a.proc.pid, SIGTERM);
	dlp_t view = {.proc = a.proc};
	ck_assert(dlp_log_wait(&view, "event=stop ", 5000));
	ck_assert_int_eq(th_wait(&a.proc, 500), -1); /* draining: the upload is in flight */
	long t0 = now_ms();
	kill(a.proc.pid, SIGTERM);
	ck_assert_int_eq(th_wait(&a.proc, 3000), 0);
	ck_assert_msg(now_ms() - t0 < 2000, "the second SIGTERM took %ld ms", now_ms() - t0);
	ck_assert_int_ne(th_wait(&up, 10000), 0); /* its connection was cut */
	e2e_free(&x);
}
END_TEST

/* GET /metrics from addr, parsed by prometheus_client's own parser
 * (promparse.py under Debian's python3): {"name{k=v,...}": value}. */
static json_t *scrape(const char *addr)
{
	char u[96];
	snprintf(u, sizeof u, "http://%s/metrics", addr);
	char *text = NULL, *err = NULL;
	size_t len = 0;
	int rc = th_curl((const char *const[]){"-f", u, NULL}, &text, &len, &err);
	if (rc != 0)
		th_fail("GET %s: curl %d: %s", u, rc, err);
	char script[700];
	snprintf(script, sizeof script, "%s/tests/integration/promparse.py", getenv("DLPGATE_TOP"));
	char *out = NULL, *perr = NULL;
	const char *argv[] = {"/usr/bin/python3", script, NULL};
	rc = th_run((char *const *)argv, text, len, &out, NULL, &perr, 30000);
	if (rc != 0)
		th_fail("the Prometheus parser refused %s (%d): %s\n%s", u, rc, perr, text);
	json_t *o = json_loads(out, 0, NULL);
	if (!json_is_object(o))
		th_fail("promparse.py printed %s", out);
	free(text), free(err), free(out), free(perr);
	return o;
}

static double sample(json_t *m, const char *key)
{
	json_t *v = json_object_get(m, key);
	return v ? json_number_value(v) : 0;
}

/* The sum of the series of a family (prefix "dlpgate_flows_total{")
 * whose labels hold `with` (NULL: all). */
static double family_sum(json_t *m, const char *prefix, const char *with)
{
	double sum = 0;
	const char *k;
	json_t *v;
	json_object_foreach(m, k, v)
		if (!strncmp(k, prefix, strlen(prefix)) && (!with || strstr(k, with)))
			sum += json_number_value(v);
	return sum;
}

#define MOVED(before, after, key, at_least)                                                                  \
	ck_assert_msg(sample(after, key) - sample(before, key) >= (at_least), "%s moved %g -> %g, want +%d", key, \
		      sample(before, key), sample(after, key), at_least)

/* --metrics on the agent and the console: a real scrape before and after
 * real traffic (blocked and redacted uploads, a bypassed flow), parsed by
 * prometheus_client, and the counts move by what was sent. */
START_TEST(metrics_move_with_traffic)
{
	char cm[32], am[32];
	snprintf(cm, sizeof cm, "127.0.0.1:%d", th_free_port());
	snprintf(am, sizeof am, "127.0.0.1:%d", th_free_port());
	e2e_t x = {.c = {.metrics = cm}};
	agent_t a = {.metrics = am};
	e2e_start(&x, &a, "{\"report\": {\"batch_wait_ms\": 100}}");
	json_t *a0 = scrape(am), *c0 = scrape(cm);

	static char ids[10000];
	ids[0] = '\0';
	ck_assert_int_eq(blocked_uploads(&a, th_upstream_port(x.up), 5, ids, sizeof ids), 5);
	char *u = url("127.0.0.1", th_upstream_port(x.up), "/echo", true);
	char *out = NULL;
	ck_assert_int_eq(th_curl((const char *const[]){"-x", a.proxy, "--cacert", a.ca, "--data-binary",
						      "card 4111 1111 1111 1111", u, NULL},
				 &out, NULL, NULL),
			 0);
	ck_assert_msg(strstr(out, "\"body_len\""), "%s", out);
	free(out);
	char *bypassed = url("localhost", th_upstream_port(x.up), "/echo", true);
	ck_assert_int_eq(th_curl((const char *const[]){"-x", a.proxy, "--cacert", x.w.ca.cert_path, bypassed, NULL},
				 NULL, NULL, NULL),
			 0);
	expect_exactly_once(&x.c, ids, 15000);
	/* the redact event too, and the flow lines of all seven flows */
	for (int i = 0; i < 150; i++) {
		json_t *m = scrape(am);
		double waiting = sample(m, "dlpgate_spool_events{}");
		json_decref(m);
		if (!waiting)
			break;
		usleep(100000);
	}

	json_t *a1 = scrape(am), *c1 = scrape(cm);
	MOVED(a0, a1, "dlpgate_verdicts_total{verdict=block}", 5);
	MOVED(a0, a1, "dlpgate_verdicts_total{verdict=redact}", 1);
	MOVED(a0, a1, "dlpgate_messages_inspected_total{stage=request}", 6);
	MOVED(a0, a1, "dlpgate_detector_hits_total{detector=aws}", 5);
	MOVED(a0, a1, "dlpgate_detector_hits_total{detector=card}", 1);
	MOVED(a0, a1, "dlpgate_tls_handshakes_total{result=ok,side=client}", 6);
	MOVED(a0, a1, "dlpgate_tls_handshakes_total{result=ok,side=upstream}", 6);
	ck_assert(family_sum(a1, "dlpgate_flows_total{", "mode=bypass,source=explicit") -
			  family_sum(a0, "dlpgate_flows_total{", "mode=bypass,source=explicit") >= 1);
	ck_assert_msg(family_sum(a1, "dlpgate_flows_total{", NULL) - family_sum(a0, "dlpgate_flows_total{", NULL) >= 7,
		      "flows %g -> %g", family_sum(a0, "dlpgate_flows_total{", NULL),
		      family_sum(a1, "dlpgate_flows_total{", NULL));
	MOVED(a0, a1, "dlpgate_events_uploaded_total{}", 6);
	ck_assert(sample(a1, "dlpgate_console_up{}") == 1);
	ck_assert(sample(a1, "dlpgate_spool_events{}") == 0);
	ck_assert(sample(a1, "dlpgate_upload_lag_seconds{}") == 0);
	const char *k;
	json_t *v;
	int policies = 0;
	json_object_foreach(a1, k, v)
		policies += !strncmp(k, "dlpgate_policy_info{version=sha256:", 35) && json_number_value(v) == 1;
	ck_assert_int_eq(policies, 1);

	MOVED(c0, c1, "dlpgate_console_events_ingested_total{result=accepted}", 6);
	MOVED(c0, c1, "dlpgate_console_requests_total{route=events_post,status=200}", 1);
	ck_assert(sample(c1, "dlpgate_console_db_errors_total{route=events_post}") == 0);
	ck_assert(family_sum(c1, "dlpgate_console_connections_open{", NULL) >= 1);

	/* not on the network unless told */
	char wide[32], listen[32];
	snprintf(wide, sizeof wide, "0.0.0.0:%d", th_free_port());
	snprintf(listen, sizeof listen, "127.0.0.1:%d", th_free_port());
	char *st2 = th_path("agent-wide");
	const char *argv[] = {dlp_bin(), "run", "--listen", listen, "--state-dir", st2, "--metrics", wide, NULL};
	char *err = NULL;
	ck_assert_int_eq(th_run((char *const *)argv, NULL, 0, NULL, NULL, &err, 10000), 2);
	ck_assert_msg(strstr(err, "--metrics-public"), "%s", err);
	free(err), free(st2);

	json_decref(a0), json_decref(a1), json_decref(c0), json_decref(c1);
	free(u), free(bypassed);
	th_stop(&a.proc);
	e2e_free(&x);
}
END_TEST

/* A console that is overloaded (here: nginx answering 503 with
 * Retry-After: 3) is not asked again before it said. */
START_TEST(retry_after_is_honoured)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	char *policy = th_path("policy.lua");
	th_write_file(policy, policy_src, strlen(policy_src), 0644);
	char *state = th_path("agent-state");
	mkdir(state, 0700);
	const char *agent_id = "01900000-0000-7000-8000-0000000000aa";
	char ident[600], conf[2000];
	snprintf(ident, sizeof ident, "%s/agent.json", state);
	snprintf(conf, sizeof conf, "{\"agent_id\": \"%s\"}", agent_id);
	th_write_file(ident, conf, strlen(conf), 0600);
	char *acc = th_path("console-access.log");
	snprintf(conf, sizeof conf,
		 "access_log %s;\n"
		 "location = /api/v1/enroll { default_type application/json; "
		 "return 200 '{\"agent_id\":\"%s\",\"token\":\"0123456789abcdef\"}'; }\n"
		 "location = /api/v1/status { return 204; }\n"
		 "location = /api/v1/events { add_header Retry-After 3 always; return 503; }\n",
		 acc, agent_id);
	th_nginx ng = th_nginx_start(&w.server, conf);
	console_t c = {.port = ng.port};
	snprintf(c.cert, sizeof c.cert, "%s", w.ca.cert_path);
	agent_t a = {0};
	agent_start(&a, state, th_free_port(), "{\"report\": {\"batch_wait_ms\": 0, \"retry_max_s\": 1, \"shutdown_flush_ms\": 0}}",
		    w.ca.cert_path, policy, &c, "agent.log");
	static char ids[1000];
	ids[0] = '\0';
	ck_assert_int_eq(blocked_uploads(&a, th_upstream_port(up), 1, ids, sizeof ids), 1);
	usleep(7500000);
	th_stop(&a.proc);
	th_nginx_stop(&ng);
	/* "POST /api/v1/events" lines with [22/Nov/2026:04:10:05 +0000] */
	char *log = th_read_file(acc, NULL);
	int times[16], n = 0;
	for (const char *p = log; p && (p = strstr(p, "POST /api/v1/events")) && n < 16; p++) {
		const char *b = p;
		while (b > log && *b != '[')
			b--;
		int hh, mm, ss;
		ck_assert(sscanf(b, "[%*[^:]:%d:%d:%d", &hh, &mm, &ss) == 3);
		times[n++] = hh * 3600 + mm * 60 + ss;
	}
	ck_assert_msg(n >= 2 && n <= 4, "%d attempts in 7.5 s:\n%s", n, log);
	for (int i = 1; i < n; i++)
		ck_assert_msg(times[i] - times[i - 1] >= 2, "attempt %d came %d s after the previous one:\n%s", i,
			      times[i] - times[i - 1], log);
	free(log), free(acc), free(state), free(policy);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

/* The same path with the console on PostgreSQL: real traffic through the
 * agent, events stored once, queryable by detector, the agent's status. */
START_TEST(agent_to_console_on_postgresql)
{
	e2e_t x;
	e2e_setup(&x);
	th_postgres pg = th_postgres_start();
	console_start_db(&x.c, th_free_port(), x.console_dir, pg.url);
	const char *cfg = "{\"report\": {\"batch_wait_ms\": 100, \"status_interval_s\": 1}}";
	agent_t a = {0};
	agent_start(&a, x.state, th_free_port(), cfg, x.w.ca.cert_path, x.policy, &x.c, "agent.log");
	static char ids[20000];
	ids[0] = '\0';
	ck_assert_int_eq(blocked_uploads(&a, th_upstream_port(x.up), 40, ids, sizeof ids), 40);
	expect_exactly_once(&x.c, ids, 20000);
	json_t *by_det = console_events(&x.c, "detector=aws");
	ck_assert_int_eq((int)json_array_size(by_det), 40);
	json_t *aws = json_object_get(json_object_get(json_array_get(by_det, 0), "detectors"), "aws");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(aws, "samples"), 0)), "AKIA************MPLE");
	json_decref(by_det);
	th_stop(&a.proc);
	th_stop(&x.c.proc);
	th_postgres_stop(&pg);
	e2e_free(&x);
}
END_TEST

/* The flow log's switch and sampling: by default only flows that were not
 * inspected get a record; sampling at 0% gives none. */
static int flow_records(const char *config)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	char *policy = th_path("policy.lua");
	th_write_file(policy, policy_src, strlen(policy_src), 0644);
	const char *args[] = {"--policy", policy, NULL};
	dlp_t d = dlp_start(w.ca.cert_path, config, args);
	char *u_ip = url("127.0.0.1", th_upstream_port(up), "/", true);
	char *u_host = url("localhost", th_upstream_port(up), "/", true);
	for (int i = 0; i < 3; i++) {
		const char *inspected[] = {u_ip, NULL}, *bypassed[] = {u_host, NULL};
		char *out, *err;
		dlp_curl(&d, inspected, &out, &err);
		free(out), free(err);
		dlp_curl(&d, bypassed, &out, &err);
		free(out), free(err);
	}
	dlp_stop(&d);
	char *log = dlp_log(&d);
	int n = 0, inspected = 0;
	for (const char *p = log; (p = strstr(p, "{\"event\":\"flow\"")); p++) {
		n++;
		const char *nl = strchr(p, '\n');
		const char *m = strstr(p, "\"mode\":\"inspect\"");
		inspected += m && (!nl || m < nl);
	}
	free(log), free(u_ip), free(u_host), free(policy);
	th_upstream_stop(up);
	world_free(&w);
	return n * 100 + inspected;
}

/* Manifests as the bundle library signs them (every optional member set)
 * validate against schemas/bundle-manifest.schema.json; one with a member
 * the schema does not know, or a path climbing out, does not. */
START_TEST(bundle_manifests_validate_against_the_schema)
{
	char *src = th_path("bundle-src"), *key = th_path("bundle.key"), *key2 = th_path("bundle-next.key");
	char file[700], err[512];
	mkdir(src, 0700);
	snprintf(file, sizeof file, "%s/policy.lua", src);
	th_write_file(file, "return {}\n", 10, 0644);
	snprintf(file, sizeof file, "%s/tests", src);
	mkdir(file, 0700);
	snprintf(file, sizeof file, "%s/tests/t.lua", src);
	th_write_file(file, "return {}\n", 10, 0644);
	bundle_key_t pub, next;
	ck_assert_msg(bundle_key_generate(key, &pub, err, sizeof err) && bundle_key_generate(key2, &next, err, sizeof err),
		      "%s", err);
	bundle_t *b = bundle_from_dir(src, NULL, err, sizeof err);
	ck_assert_msg(b, "%s", err);
	bundle_keys_add(&b->next_keys, &next);
	snprintf(b->retire_keys[b->n_retire++], sizeof b->retire_keys[0], "0123456789abcdef");
	snprintf(b->expires_at, sizeof b->expires_at, "2031-01-01T00:00:00.000Z");
	snprintf(b->message, sizeof b->message, "block card uploads");
	ck_assert_msg(bundle_sign(b, 12, key, err, sizeof err), "%s", err);
	bundle_t *plain = bundle_from_dir(src, NULL, err, sizeof err);
	ck_assert_msg(plain && bundle_sign(plain, 1, key, err, sizeof err), "%s", err);
	char lines[16384];
	snprintf(lines, sizeof lines, "%s\n%s\n", b->manifest_text, plain->manifest_text);
	char *complaint = ajv_check_with("bundle-manifest.schema.json", lines);
	ck_assert_msg(!complaint, "ajv says:\n%s\nmanifests:\n%s", complaint, lines);
	const char *bad[] = {"\"allow_all\":true,", "\"path\":\"../policy.lua\""};
	for (int i = 0; i < 2; i++) {
		char *m = strdup(plain->manifest_text);
		char edited[8192];
		if (i == 0) {
			snprintf(edited, sizeof edited, "{%s%s", bad[0], m + 1);
		} else {
			char *p = strstr(m, "\"path\":\"policy.lua\"");
			ck_assert_ptr_nonnull(p);
			*p = '\0';
			snprintf(edited, sizeof edited, "%s%s%s\n", m, bad[1], p + strlen("\"path\":\"policy.lua\""));
		}
		if (!strchr(edited, '\n'))
			strcat(edited, "\n");
		complaint = ajv_check_with("bundle-manifest.schema.json", edited);
		ck_assert_msg(complaint, "ajv accepted %s", edited);
		free(complaint);
		free(m);
	}
	bundle_free(b);
	bundle_free(plain);
	free(src), free(key), free(key2);
}
END_TEST

START_TEST(flow_log_switch_and_sampling)
{
	ck_assert_int_eq(flow_records(NULL), 300);                                               /* 3 bypassed */
	ck_assert_int_eq(flow_records("{\"report\": {\"flow_events\": \"all\"}}"), 603);          /* + 3 inspected */
	ck_assert_int_eq(flow_records("{\"report\": {\"flow_sample_percent\": 0}}"), 0);
	ck_assert_int_eq(flow_records("{\"report\": {\"flow_events\": \"off\"}}"), 0);
}
END_TEST

Suite *report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *t = tcase_create("report");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, real_events_validate_against_the_schema);
	tcase_add_test(t, bundle_manifests_validate_against_the_schema);
	tcase_add_test(t, flow_log_switch_and_sampling);
	tcase_add_test(t, killed_agent_loses_no_acknowledged_event);
	tcase_add_test(t, console_away_then_back_nothing_lost);
	tcase_add_test(t, full_spool_drops_are_counted_and_reported);
	tcase_add_test(t, graceful_stop_flushes_the_spool);
	tcase_add_test(t, sigterm_lets_messages_in_flight_finish);
	tcase_add_test(t, second_sigterm_stops_at_once);
	tcase_add_test(t, metrics_move_with_traffic);
	tcase_add_test(t, retry_after_is_honoured);
	tcase_add_test(t, agent_to_console_on_postgresql);
	suite_add_tcase(s, t);
	return s;
}
