/*
 * Events, as the engine really emits them for real traffic, checked against
 * schemas/verdict.schema.json by a real validator (ajv, JSON Schema
 * 2020-12, strict), and the agent side of the console: spool, uploader,
 * enrollment, against the real dlpgate-console (test_console.c tests the
 * console on its own).
 */
#include "dlp.h"
#include "suites.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ajv, strict, draft 2020-12, on each line as its own document. Returns
 * NULL when all are valid, else ajv's complaint. */
static char *ajv_check(const char *ndjson)
{
	const char *top = getenv("DLPGATE_TOP");
	char ajv[600], schema[600];
	snprintf(ajv, sizeof ajv, "%s/.deps/node_modules/.bin/ajv", top);
	snprintf(schema, sizeof schema, "%s/schemas/verdict.schema.json", top);
	if (access(ajv, X_OK) != 0)
		th_fail("%s missing: run scripts/deps.sh (it installs ajv-cli)", ajv);
	char *dir = th_path("events");
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

Suite *report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *t = tcase_create("report");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, real_events_validate_against_the_schema);
	suite_add_tcase(s, t);
	return s;
}
