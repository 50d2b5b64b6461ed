/*
 * ingest: see ingest.h. The validator encodes verdict.schema.json by hand
 * (required fields, types, enums, closed objects, lengths): a full JSON
 * Schema engine would be more code than the schema, and the console must
 * not store what the admin API would later serve as trustworthy.
 */
#include "ingest.h"

#include "console.h"
#include "http/body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The engine's bounded decoder (http/body.h), with only the size cap: a
 * batch of similar events compresses far better than a web page, so the
 * expansion ratio that stops bombs in proxied bodies would refuse honest
 * batches here, and the cap alone already bounds memory. */
int ingest_gunzip(const char *in, size_t len, size_t cap, char **out, size_t *out_len)
{
	body_limits_t lim = {.max_bytes = cap, .max_ratio = UINT32_MAX, .max_layers = 1};
	bytebuf_t b;
	bytebuf_init(&b, 0);
	const char *why;
	body_status_t st = body_decode("gzip", 4, (const uint8_t *)in, len, &lim, &b, &why);
	int status = st == BODY_OK			? 0
		     : st == BODY_TRUNCATED			? 413
		     : st == BODY_CORRUPT && strcmp(why, "out of memory") ? 400
								  : 500;
	if (!status && !bytebuf_append(&b, "", 1)) /* room for a NUL after the last line */
		status = 500;
	if (status) {
		bytebuf_free(&b);
		return status;
	}
	*out = b.data;
	*out_len = b.len - 1;
	return 0;
}

/* ---- validation ---- */

typedef struct {
	char *err;
	size_t errlen;
	size_t line;
} vctx_t;

static bool bad(vctx_t *v, const char *fmt, const char *what)
{
	char msg[200];
	snprintf(msg, sizeof msg, fmt, what);
	snprintf(v->err, v->errlen, "line %zu: %s", v->line, msg);
	return false;
}

static bool in_set(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(s, *set) == 0)
			return true;
	return false;
}

static bool closed(vctx_t *v, json_t *o, const char *const *allowed, const char *where)
{
	const char *k;
	json_t *val;
	json_object_foreach(o, k, val)
	{
		(void)val;
		if (!in_set(k, allowed)) {
			char what[160];
			snprintf(what, sizeof what, "%.60s: unknown field \"%.60s\"", where, k);
			return bad(v, "%s", what);
		}
	}
	return true;
}

static bool text(vctx_t *v, json_t *o, const char *key, bool required, size_t max)
{
	json_t *j = json_object_get(o, key);
	if (!j)
		return required ? bad(v, "missing \"%s\"", key) : true;
	if (!json_is_string(j) || json_string_length(j) > max)
		return bad(v, "\"%s\" must be a string of at most 1024 characters", key);
	return true;
}

static bool count(vctx_t *v, json_t *o, const char *key, bool required, json_int_t min)
{
	json_t *j = json_object_get(o, key);
	if (!j)
		return required ? bad(v, "missing \"%s\"", key) : true;
	if (!json_is_integer(j) || json_integer_value(j) < min)
		return bad(v, "\"%s\" must be a non-negative integer", key);
	return true;
}

static bool enum_of(vctx_t *v, json_t *o, const char *key, bool required, const char *const *set)
{
	json_t *j = json_object_get(o, key);
	if (!j)
		return required ? bad(v, "missing \"%s\"", key) : true;
	if (!json_is_string(j) || !in_set(json_string_value(j), set))
		return bad(v, "\"%s\" has a value the schema does not allow", key);
	return true;
}

static bool check_app(vctx_t *v, json_t *app)
{
	static const char *const keys[] = {"pid", "uid", "path", "cmdline", "signing_id", "team_id", "anchor", NULL};
	static const char *const anchors[] = {"apple", "app_store", "developer_id", "adhoc", "unsigned", "system",
					      "user", NULL};
	if (!json_is_object(app))
		return bad(v, "\"%s\" must be an object", "app");
	return closed(v, app, keys, "app") && count(v, app, "pid", false, 0) && count(v, app, "uid", false, 0) &&
	       text(v, app, "path", false, 1024) && text(v, app, "cmdline", false, 1024) &&
	       text(v, app, "signing_id", false, 1024) && text(v, app, "team_id", false, 1024) &&
	       enum_of(v, app, "anchor", false, anchors);
}

static bool check_flow(vctx_t *v, json_t *f)
{
	static const char *const keys[] = {"id",	 "source",   "client",	   "host",     "sni",	    "dst_ip",
					   "dst_port",	 "method",   "path",	   "status",   "body_bytes", "tls",
					   "upstream_tls", "bytes_up", "bytes_down", "requests", "duration_ms", "end",
					   NULL};
	static const char *const texts[] = {"client", "host", "sni", "dst_ip", "method", "path", "tls", "upstream_tls",
					    "end", NULL};
	static const char *const counts[] = {"body_bytes", "bytes_up", "bytes_down", "requests", "duration_ms", NULL};
	static const char *const sources[] = {"explicit", "transparent", "sysext", NULL};
	if (!json_is_object(f))
		return bad(v, "\"%s\" must be an object", "flow");
	if (!closed(v, f, keys, "flow") || !count(v, f, "id", true, 0) || !enum_of(v, f, "source", true, sources) ||
	    !count(v, f, "dst_port", true, 0))
		return false;
	if (json_integer_value(json_object_get(f, "dst_port")) > 65535)
		return bad(v, "\"%s\" must be at most 65535", "dst_port");
	json_t *st = json_object_get(f, "status");
	if (st && (!json_is_integer(st) || json_integer_value(st) < 100 || json_integer_value(st) > 999))
		return bad(v, "\"%s\" must be an integer from 100 to 999", "status");
	for (const char *const *t = texts; *t; t++)
		if (!text(v, f, *t, false, 1024))
			return false;
	for (const char *const *c = counts; *c; c++)
		if (!count(v, f, *c, false, 0))
			return false;
	return true;
}

/* An optional member: an array of at most max strings of at most len bytes. */
static bool strings(vctx_t *v, json_t *o, const char *key, size_t max, size_t len)
{
	json_t *a = json_object_get(o, key), *x;
	size_t i;
	bool ok = !a || (json_is_array(a) && json_array_size(a) <= max);
	json_array_foreach(a, i, x)
	{
		ok = ok && json_is_string(x) && json_string_length(x) <= len;
	}
	return ok || bad(v, "a detector's \"%s\" must be a short array of short strings", key);
}

static bool check_detectors(vctx_t *v, json_t *d)
{
	static const char *const keys[] = {"count",   "severity",  "confidence", "timed_out", "redacted",
					   "samples", "locations", "views",      NULL};
	if (!json_is_object(d) || json_object_size(d) > 1024)
		return bad(v, "\"%s\" must be an object of at most 1024 detectors", "detectors");
	const char *name;
	json_t *det;
	json_object_foreach(d, name, det)
	{
		if (strlen(name) > 63)
			return bad(v, "%s", "a detector name is longer than 63 characters");
		if (!json_is_object(det))
			return bad(v, "%s", "a detector must be an object");
		if (!closed(v, det, keys, "detector") || !count(v, det, "count", true, 0) ||
		    !text(v, det, "severity", false, 1024))
			return false;
		json_t *c = json_object_get(det, "confidence");
		const char *cs = json_string_value(c);
		if (c && (!cs || (strcmp(cs, "low") && strcmp(cs, "medium") && strcmp(cs, "high"))))
			return bad(v, "%s", "a detector's confidence must be \"low\", \"medium\" or \"high\"");
		json_t *t = json_object_get(det, "timed_out"), *r = json_object_get(det, "redacted");
		if ((t && !json_is_true(t)) || (r && !json_is_true(r)))
			return bad(v, "%s", "a detector's timed_out/redacted can only be true");
		json_t *s = json_object_get(det, "samples");
		if (!json_is_array(s) || json_array_size(s) > 3)
			return bad(v, "%s", "a detector's samples must be an array of at most 3 strings");
		size_t i;
		json_t *x;
		json_array_foreach(s, i, x)
		{
			if (!json_is_string(x) || json_string_length(x) > 256)
				return bad(v, "%s", "a sample must be a string of at most 256 characters");
		}
		/* locations: url, header:NAME, cookie:NAME, body, file:NAME;
		 * views: the decoded views ("url", "base64>json") */
		if (!strings(v, det, "locations", 4, 63) || !strings(v, det, "views", 4, 47))
			return false;
	}
	return true;
}

static bool check_event(vctx_t *v, json_t *e, const char **kind)
{
	static const char *const kinds[] = {"verdict", "flow", "spool_drop", "shadow", "override", "false_positive", NULL};
	if (!json_is_object(e))
		return bad(v, "%s", "not a JSON object");
	if (!enum_of(v, e, "event", true, kinds))
		return false;
	const char *id = json_string_value(json_object_get(e, "id"));
	const char *agent = json_string_value(json_object_get(e, "agent_id"));
	const char *time = json_string_value(json_object_get(e, "time"));
	int64_t ms;
	if (!id || !console_is_uuid(id))
		return bad(v, "\"%s\" must be a lowercase UUID", "id");
	if (!agent || !console_is_uuid(agent))
		return bad(v, "\"%s\" must be a lowercase UUID", "agent_id");
	if (!time || !console_event_time_parse(time, &ms))
		return bad(v, "\"%s\" must be YYYY-MM-DDTHH:MM:SS.mmmZ", "time");
	*kind = json_string_value(json_object_get(e, "event"));
	/* A shadow event is a verdict event of the shadow version, plus what
	 * the active policy decided on the same message. */
	bool shadow = strcmp(*kind, "shadow") == 0;
	if (strcmp(*kind, "verdict") == 0 || shadow) {
		static const char *const keys[] = {"event",	   "id",     "agent_id", "time",   "policy_version",
						   "stage",	   "verdict", "monitor", "policy_error", "rule",
						   "reason",	   "note",   "latency_us", "detectors", "app",
						   "flow",	   NULL};
		static const char *const shadow_keys[] = {
			"event",	"id",	"agent_id",	"time",	     "policy_version", "stage",
			"verdict",	"monitor", "policy_error", "rule",   "reason",	       "note",
			"latency_us",	"detectors", "app",	"flow",	     "active_verdict", "active_policy_version",
			NULL};
		static const char *const stages[] = {"flow", "request", "response", "message", NULL};
		static const char *const verdicts[] = {"inspect", "bypass", "pass", "redact", "block", "coach", NULL};
		json_t *pe = json_object_get(e, "policy_error");
		if (shadow && (!closed(v, e, shadow_keys, "shadow event") || !enum_of(v, e, "active_verdict", true, verdicts) ||
			       !text(v, e, "active_policy_version", true, 1024)))
			return false;
		if (!closed(v, e, shadow ? shadow_keys : keys, shadow ? "shadow event" : "verdict event") ||
		    !text(v, e, "policy_version", true, 1024) ||
		    !enum_of(v, e, "stage", true, stages) || !enum_of(v, e, "verdict", true, verdicts) ||
		    !text(v, e, "rule", true, 1024) || !text(v, e, "reason", true, 1024) ||
		    !text(v, e, "note", false, 1024) || !count(v, e, "latency_us", false, 0))
			return false;
		if (!json_is_boolean(json_object_get(e, "monitor")))
			return bad(v, "\"%s\" must be true or false", "monitor");
		if (pe && !json_is_true(pe))
			return bad(v, "\"%s\" can only be true", "policy_error");
		json_t *d = json_object_get(e, "detectors");
		if (!d)
			return bad(v, "missing \"%s\"", "detectors");
		json_t *app = json_object_get(e, "app"), *flow = json_object_get(e, "flow");
		if (!flow)
			return bad(v, "missing \"%s\"", "flow");
		return check_detectors(v, d) && (!app || check_app(v, app)) && check_flow(v, flow);
	}
	if (strcmp(*kind, "flow") == 0) {
		static const char *const keys[] = {"event", "id",     "agent_id", "time", "policy_version", "mode",
						   "verdict", "rule", "reason",	  "app",  "flow",	    NULL};
		static const char *const verdicts[] = {"inspect", "bypass", "pass", "block", NULL};
		if (!closed(v, e, keys, "flow event") || !text(v, e, "policy_version", true, 1024) ||
		    !text(v, e, "mode", true, 1024) || !enum_of(v, e, "verdict", true, verdicts) ||
		    !text(v, e, "rule", false, 1024) || !text(v, e, "reason", false, 1024))
			return false;
		json_t *app = json_object_get(e, "app"), *flow = json_object_get(e, "flow");
		if (!flow)
			return bad(v, "missing \"%s\"", "flow");
		return (!app || check_app(v, app)) && check_flow(v, flow);
	}
	if (strcmp(*kind, "override") == 0 || strcmp(*kind, "false_positive") == 0) {
		/* what a user answered on a coach page, naming the event (of) */
		static const char *const keys[] = {"event", "id",	     "agent_id", "time", "policy_version", "of",
						   "rule",  "reason", "justification", "ttl_s", "app",	      "flow", NULL};
		const char *of = json_string_value(json_object_get(e, "of"));
		if (!closed(v, e, keys, "override event") || !text(v, e, "policy_version", true, 1024) ||
		    !text(v, e, "rule", true, 1024) || !text(v, e, "reason", true, 1024) ||
		    !text(v, e, "justification", true, 1024) || !count(v, e, "ttl_s", false, 0))
			return false;
		if (!of || !console_is_uuid(of))
			return bad(v, "\"%s\" must be a lowercase UUID", "of");
		json_t *app = json_object_get(e, "app"), *flow = json_object_get(e, "flow");
		if (!flow)
			return bad(v, "missing \"%s\"", "flow");
		return (!app || check_app(v, app)) && check_flow(v, flow);
	}
	static const char *const keys[] = {"event", "id", "agent_id", "time", "reason", "dropped", NULL};
	static const char *const reasons[] = {"spool_full", "corrupt_record", NULL};
	return closed(v, e, keys, "spool_drop event") && enum_of(v, e, "reason", true, reasons) &&
	       count(v, e, "dropped", true, 1);
}

/* ---- the batch ---- */

int ingest_parse(const char *body, size_t len, bool gzip, const char *agent_id, ingest_batch_t *b, char *err,
		 size_t errlen)
{
	memset(b, 0, sizeof *b);
	size_t tlen;
	if (gzip) {
		int r = ingest_gunzip(body, len, CONSOLE_MAX_INFLATED, &b->text, &tlen);
		if (r) {
			snprintf(err, errlen, r == 413 ? "the batch inflates past 64 MiB"
					      : r == 400 ? "the body is not valid gzip"
							 : "cannot inflate the body");
			return r;
		}
	} else {
		b->text = malloc(len + 1);
		if (!b->text) {
			snprintf(err, errlen, "out of memory");
			return 500;
		}
		memcpy(b->text, body, len);
		tlen = len;
	}
	/* Count lines first: one allocation each for the arrays. */
	size_t lines = 0;
	for (size_t i = 0; i < tlen; i++)
		if (b->text[i] == '\n')
			lines++;
	if (tlen && b->text[tlen - 1] != '\n')
		lines++;
	if (lines == 0) {
		snprintf(err, errlen, "the batch holds no events");
		return 400;
	}
	if (lines > CONSOLE_MAX_EVENTS) {
		snprintf(err, errlen, "the batch holds %zu events, more than 10000", lines);
		return 413;
	}
	b->ev = calloc(lines, sizeof *b->ev);
	b->docs = calloc(lines + 1, sizeof *b->docs);
	if (!b->ev || !b->docs) {
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	size_t total_dets = 0;
	vctx_t v = {err, errlen, 0};
	char *p = b->text, *end = b->text + tlen;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		v.line++;
		size_t n = (size_t)(le - p);
		if (n && p[n - 1] == '\r')
			n--;
		json_error_t je;
		json_t *doc = n ? json_loadb(p, n, JSON_REJECT_DUPLICATES, &je) : NULL;
		if (!doc) {
			snprintf(err, errlen, "line %zu: %s", v.line, n ? "not valid JSON" : "empty line");
			return 400;
		}
		b->docs[b->n] = doc;
		const char *kind = NULL;
		if (!check_event(&v, doc, &kind))
			return 400;
		if (strcmp(json_string_value(json_object_get(doc, "agent_id")), agent_id) != 0) {
			snprintf(err, errlen, "line %zu: agent_id is not the agent this token belongs to", v.line);
			return 403;
		}
		p[n] = '\0';
		store_event_t *e = &b->ev[b->n];
		e->json = p;
		e->kind = kind;
		e->id = json_string_value(json_object_get(doc, "id"));
		console_event_time_parse(json_string_value(json_object_get(doc, "time")), &e->ts_ms);
		e->verdict = json_string_value(json_object_get(doc, "verdict"));
		e->policy_version = json_string_value(json_object_get(doc, "policy_version"));
		e->rule = json_string_value(json_object_get(doc, "rule"));
		e->active_verdict = json_string_value(json_object_get(doc, "active_verdict"));
		json_t *mon = json_object_get(doc, "monitor");
		e->monitor = !strcmp(kind, "verdict") && json_is_boolean(mon) ? json_is_true(mon) : -1;
		json_t *flow = json_object_get(doc, "flow"), *app = json_object_get(doc, "app");
		e->host = json_string_value(json_object_get(flow, "host"));
		if (!e->host)
			e->host = json_string_value(json_object_get(flow, "sni"));
		e->app_path = json_string_value(json_object_get(app, "path"));
		e->app_signing_id = json_string_value(json_object_get(app, "signing_id"));
		e->n_detectors = json_object_size(json_object_get(doc, "detectors"));
		total_dets += e->n_detectors;
		b->n++;
		p = nl ? nl + 1 : end;
	}
	b->names = calloc(total_dets + 1, sizeof *b->names);
	b->counts = calloc(total_dets + 1, sizeof *b->counts);
	if (!b->names || !b->counts) {
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	size_t k = 0;
	for (size_t i = 0; i < b->n; i++) {
		store_event_t *e = &b->ev[i];
		e->det_names = b->names + k;
		e->det_counts = b->counts + k;
		const char *name;
		json_t *det;
		json_object_foreach(json_object_get(b->docs[i], "detectors"), name, det)
		{
			b->names[k] = name;
			b->counts[k] = json_integer_value(json_object_get(det, "count"));
			k++;
		}
	}
	return 0;
}

void ingest_free(ingest_batch_t *b)
{
	for (size_t i = 0; b->docs && i < b->n; i++)
		json_decref(b->docs[i]);
	/* a doc that failed validation was stored but not counted */
	if (b->docs && b->docs[b->n])
		json_decref(b->docs[b->n]);
	free(b->docs);
	free(b->ev);
	free(b->names);
	free(b->counts);
	free(b->text);
	memset(b, 0, sizeof *b);
}
