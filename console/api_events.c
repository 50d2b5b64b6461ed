/*
 * api_events: the event explorer's export and an event's detail
 * (schemas/console-api.md "Events (additions)").
 *
 * Export is bounded three ways: at most `limit` events (100,000), at most
 * EXPORT_MAX_BYTES of answer, and EXPORT_MAX_RUNNING exports at once (past
 * it 503 + Retry-After), so exports cannot add up to more memory than
 * their product. A cut export says so in its last line. CSV cells are all
 * quoted, and one that a spreadsheet would run as a formula (first
 * character = + - @ TAB CR) is prefixed with ', since every cell here can
 * hold text an agent, or a user on the agent's machine, chose.
 *
 * Detail explains an event: its rule's file:line read against the source
 * of the policy version that decided it, from the store's signed bundle.
 */
#include "api.h"

#include "core/bytebuf.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_MAX_BYTES (64u * 1024 * 1024)
#define EXPORT_MAX_RUNNING 2
#define CONTEXT_LINES 5

static atomic_int exports_running;

static void csv_cell(bytebuf_t *b, const char *s, bool first)
{
	if (!first)
		bytebuf_append(b, ",", 1);
	bytebuf_append(b, "\"", 1);
	if (s && (*s == '=' || *s == '+' || *s == '-' || *s == '@' || *s == '\t' || *s == '\r'))
		bytebuf_append(b, "'", 1);
	for (const char *p = s ? s : ""; *p; p++) {
		if (*p == '"')
			bytebuf_append(b, "\"\"", 2);
		else
			bytebuf_append(b, p, 1);
	}
	bytebuf_append(b, "\"", 1);
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void csv_row(bytebuf_t *b, json_t *ev)
{
	json_t *flow = json_object_get(ev, "flow"), *app = json_object_get(ev, "app");
	json_t *mon = json_object_get(ev, "monitor");
	char dets[4096] = "";
	size_t used = 0;
	const char *name;
	json_t *d;
	json_object_foreach(json_object_get(ev, "detectors"), name, d)
	{
		int n = snprintf(dets + used, sizeof dets - used, "%s%s:%lld", used ? ";" : "", name,
				 (long long)json_integer_value(json_object_get(d, "count")));
		if (n < 0 || (size_t)n >= sizeof dets - used)
			break;
		used += (size_t)n;
	}
	const char *host = str(flow, "host") ? str(flow, "host") : str(flow, "sni");
	const char *cells[] = {str(ev, "time"),	       str(ev, "id"),	  str(ev, "agent_id"), str(ev, "event"),
			       str(ev, "verdict"),     json_is_boolean(mon) ? (json_is_true(mon) ? "true" : "false") : NULL,
			       str(ev, "stage"),       str(ev, "policy_version"), str(ev, "rule"), str(ev, "reason"),
			       host,		       str(flow, "method"), str(flow, "path"), str(app, "path"),
			       str(app, "signing_id"), dets};
	for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
		csv_cell(b, cells[i], i == 0);
	bytebuf_append(b, "\r\n", 2);
}

typedef struct {
	job_t *j;
	bytebuf_t out;
	bool csv, full;
} export_t;

static bool export_row(void *ud, const char *text)
{
	export_t *x = ud;
	json_t *ev = json_loads(text, 0, NULL);
	if (!ev)
		return true;
	api_strip_samples(x->j, ev);
	if (x->csv) {
		csv_row(&x->out, ev);
	} else {
		char *line = json_dumps(ev, JSON_COMPACT);
		if (line) {
			bytebuf_append_str(&x->out, line);
			bytebuf_append(&x->out, "\n", 1);
		}
		free(line);
	}
	json_decref(ev);
	if (x->out.len >= EXPORT_MAX_BYTES) {
		x->full = true;
		return false;
	}
	return true;
}

bool api_export(job_t *j, store_conn_t *sc)
{
	console_params_t p;
	store_filter_t f;
	filter_extra_t fx = {0};
	if (!api_read_filters(j, &p, &f, F_EXPORT, &fx)) {
		console_params_free(&p);
		return true;
	}
	bool csv = fx.format && !strcmp(fx.format, "csv");
	if (!fx.format || (!csv && strcmp(fx.format, "ndjson"))) {
		console_params_free(&p);
		api_answer_error(j, 400, "bad_parameter", "parameter \"format\" must be csv or ndjson");
		return true;
	}
	if (atomic_fetch_add(&exports_running, 1) >= EXPORT_MAX_RUNNING) {
		atomic_fetch_sub(&exports_running, 1);
		console_params_free(&p);
		snprintf(j->extra, sizeof j->extra, "Retry-After: 5\r\n");
		api_answer_error(j, 503, "busy", "exports are running; try again in a few seconds");
		return true;
	}
	export_t x = {.j = j, .csv = csv};
	bytebuf_init(&x.out, EXPORT_MAX_BYTES + 64 * 1024);
	if (csv)
		bytebuf_append_str(&x.out, "time,id,agent_id,kind,verdict,monitor,stage,policy_version,rule,reason,host,"
					   "method,path,app_path,app_signing_id,detectors\r\n");
	bool more = false;
	int r = store_events_each(sc, &f, f.limit, export_row, &x, &more);
	console_params_free(&p);
	atomic_fetch_sub(&exports_running, 1);
	if (r != 0) {
		bytebuf_free(&x.out);
		return false;
	}
	if (more) {
		if (csv)
			bytebuf_appendf(&x.out, "\"# truncated at %d events\"\r\n", f.limit);
		else
			bytebuf_appendf(&x.out, "{\"truncated\":true,\"limit\":%d}\n", f.limit);
	}
	j->status = 200;
	j->body_len = x.out.len;
	j->body = x.out.data ? x.out.data : strdup("");
	j->raw_type = csv ? "text/csv; charset=utf-8" : "application/x-ndjson";
	snprintf(j->extra, sizeof j->extra, "Content-Disposition: attachment; filename=\"dlpgate-events.%s\"\r\n",
		 csv ? "csv" : "ndjson");
	return true;
}

/* ---- detail ---- */

/* "policy.lua:12" -> file and line; false for a config key or the like.
 * Agents name the file relative to the policy's folder (its chunk name:
 * "policy.lua", "../pii.lua"). Compatibility with older agents only: they
 * named it by their own path to their copy of the bundle
 * (".../STATE/policy/v3/bundle/policy.lua:12", cut at the front with "..."
 * when long); what follows the last "/bundle/" is then a path in the
 * bundle, and *bundle_path says so. */
static bool rule_location(const char *rule, char *file, size_t n, int *line, bool *bundle_path)
{
	const char *in_bundle = NULL;
	for (const char *p = rule; p && (p = strstr(p, "/bundle/")); p++)
		in_bundle = p + 8;
	*bundle_path = in_bundle != NULL;
	if (in_bundle)
		rule = in_bundle;
	const char *colon = rule ? strrchr(rule, ':') : NULL;
	if (!colon || colon == rule || !colon[1] || (size_t)(colon - rule) >= n)
		return false;
	char *end;
	long l = strtol(colon + 1, &end, 10);
	if (*end || l < 1 || l > 10000000)
		return false;
	memcpy(file, rule, (size_t)(colon - rule));
	file[colon - rule] = '\0';
	*line = (int)l;
	return true;
}

/* Fills explain's rule_file, rule_line, source and source_unavailable. */
static bool explain_source(store_conn_t *sc, json_t *ev, json_t *ex)
{
	char file[1100], path[1100];
	int line = 0;
	bool bundle_path;
	const char *pv = str(ev, "policy_version");
	bool located = rule_location(str(ev, "rule"), file, sizeof file, &line, &bundle_path);
	json_object_set_new(ex, "rule_file", located ? json_string(file) : json_null());
	json_object_set_new(ex, "rule_line", located ? json_integer(line) : json_null());
	json_object_set_new(ex, "source", json_null());
	int64_t version = 0;
	const char *why = NULL;
	if (!located)
		why = "no_rule_line";
	else if (!pv || pv[0] != 'v' || !policy_api_is_version(pv + 1, strlen(pv + 1), &version))
		why = pv && !strcmp(pv, "config") ? "built_in" : "not_stored";
	if (why) {
		json_object_set_new(ex, "source_unavailable", json_string(why));
		return true;
	}
	store_policy_t stored;
	int r = store_policy_get(sc, version, &stored);
	if (r < 0)
		return false;
	policy_answer_t a;
	memset(&a, 0, sizeof a);
	if (r == 0)
		policy_rule_file(sc, version, file, bundle_path, path, sizeof path, &a);
	if (a.status == 503 && a.code && !strcmp(a.code, "store_unavailable")) {
		policy_answer_free(&a);
		return false;
	}
	if (a.status != 200 || !a.text) {
		json_object_set_new(ex, "source_unavailable", json_string(r ? "not_stored" : "file_not_in_bundle"));
		policy_answer_free(&a);
		return true;
	}
	json_t *lines = json_array();
	int first = line - CONTEXT_LINES < 1 ? 1 : line - CONTEXT_LINES, n = 1;
	const char *s = a.text, *end = a.text + a.text_len;
	while (s < end && n <= line + CONTEXT_LINES) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
		if (n >= first)
			json_array_append_new(lines, json_stringn_nocheck(s, len > 1024 ? 1024 : len));
		s += len + 1;
		n++;
	}
	json_object_set_new(ex, "source", json_pack("{s:I, s:s, s:i, s:o, s:i}", "version", (json_int_t)version, "path",
						    path, "first_line", first, "lines", lines, "highlight", line));
	json_object_set_new(ex, "source_unavailable", json_null());
	policy_answer_free(&a);
	return true;
}

static json_t *pick(json_t *from, const char *const *keys)
{
	if (!json_is_object(from))
		return json_null();
	json_t *o = json_object();
	for (const char *const *k = keys; *k; k++) {
		json_t *v = json_object_get(from, *k);
		json_object_set(o, *k, v ? v : json_null());
	}
	return o;
}

bool api_event_detail(job_t *j, store_conn_t *sc)
{
	char id[40];
	const char *p = j->req->path + strlen("/api/v1/events/");
	size_t n = strcspn(p, "/");
	snprintf(id, sizeof id, "%.*s", (int)(n < 39 ? n : 39), p);
	char *text = NULL;
	int r = console_is_uuid(id) ? store_get_event(sc, id, &text) : STORE_NOT_FOUND;
	if (r < 0)
		return false;
	json_t *ev = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (r == STORE_NOT_FOUND || !ev) {
		json_decref(ev);
		api_answer_error(j, 404, "not_found", "no event with this id");
		return true;
	}
	api_strip_samples(j, ev);
	static const char *const copied[] = {"verdict", "reason", "rule", "monitor", "stage", "policy_version", NULL};
	json_t *ex = pick(ev, copied);
	if (!explain_source(sc, ev, ex)) {
		json_decref(ex);
		json_decref(ev);
		return false;
	}
	json_t *dets = json_array();
	const char *name;
	json_t *d;
	json_object_foreach(json_object_get(ev, "detectors"), name, d)
	{
		json_t *o = json_pack("{s:s, s:O, s:O}", "name", name, "count", json_object_get(d, "count"), "severity",
				      json_object_get(d, "severity") ? json_object_get(d, "severity") : json_null());
		json_t *samples = json_object_get(d, "samples");
		if (samples) /* absent for a viewer */
			json_object_set(o, "samples", samples);
		json_array_append_new(dets, o);
	}
	json_object_set_new(ex, "detectors", dets);
	static const char *const app_keys[] = {"path", "signing_id", "team_id", "anchor", NULL};
	static const char *const flow_keys[] = {"host", "sni", "method", "path", "bytes_up", "bytes_down", "body_bytes",
						"tls", "upstream_tls", "source", "dst_port", "status", NULL};
	json_object_set_new(ex, "app", pick(json_object_get(ev, "app"), app_keys));
	json_object_set_new(ex, "flow", pick(json_object_get(ev, "flow"), flow_keys));
	json_t *agent = NULL;
	r = store_agent_get(sc, str(ev, "agent_id") ? str(ev, "agent_id") : "", &agent);
	if (r < 0) {
		json_decref(ex);
		json_decref(ev);
		return false;
	}
	json_object_set_new(ex, "agent", json_pack("{s:O, s:O}", "agent_id", json_object_get(ev, "agent_id"), "hostname",
						   agent ? json_object_get(agent, "hostname") : json_null()));
	json_decref(agent);
	int64_t inc = 0;
	char status[32];
	r = j->role >= STORE_ROLE_ANALYST ? store_incident_of_event(sc, id, &inc, status) : STORE_NOT_FOUND;
	if (r < 0) {
		json_decref(ex);
		json_decref(ev);
		return false;
	}
	json_object_set_new(ex, "incident",
			    r == 0 ? json_pack("{s:I, s:s}", "id", (json_int_t)inc, "status", status) : json_null());
	api_answer_json(j, 200, json_pack("{s:o, s:o}", "event", ev, "explain", ex));
	return true;
}
