#include "report/event.h"

#include "report/report.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <stdlib.h>

void event_new_id(char out[EVENT_ID_LEN])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	unsigned char b[16];
	RAND_bytes(b + 6, 10);
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* variant 10 */
	snprintf(out, EVENT_ID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Request text as JSON: bytes outside printable ASCII become '?'. */
static json_t *strn(const char *s, size_t n)
{
	char tmp[1024];
	if (!s)
		return json_null();
	if (n > sizeof tmp)
		n = sizeof tmp;
	for (size_t i = 0; i < n; i++)
		tmp[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	return json_stringn(tmp, n);
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_set_new(o, k, json_string(v));
}

static void set_common(json_t *o, const char *kind, const char *id)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[80];
	snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	json_object_set_new(o, "event", json_string(kind));
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "agent_id", json_string(report_agent_id()));
	json_object_set_new(o, "time", json_string(when));
}

static void submit(json_t *o, const spool_drops_t *carried)
{
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (!line)
		return;
	report_submit(line, strlen(line), carried);
	free(line);
}

static json_t *app_json(const flow_app_t *a)
{
	json_t *o = json_object();
	if (a->pid || a->uid) {
		json_object_set_new(o, "pid", json_integer(a->pid));
		json_object_set_new(o, "uid", json_integer(a->uid));
	}
	if (a->path)
		json_object_set_new(o, "path", strn(a->path, strlen(a->path)));
	if (a->cmdline)
		json_object_set_new(o, "cmdline", strn(a->cmdline, strlen(a->cmdline)));
	set_str(o, "signing_id", a->signing_id);
	set_str(o, "team_id", a->team_id);
	set_str(o, "anchor", a->anchor);
	return o;
}

static json_t *detectors_json(const policy_msg_t *m)
{
	json_t *dets = json_object();
	for (uint32_t i = 0; m && i < m->n_findings; i++) {
		const finding_t *fd = &m->findings[i];
		json_t *d = json_object();
		json_object_set_new(d, "count", json_integer(fd->count));
		set_str(d, "severity", fd->severity);
		set_str(d, "confidence", fd->confidence);
		if (fd->timed_out)
			json_object_set_new(d, "timed_out", json_true());
		if (fd->redact)
			json_object_set_new(d, "redacted", json_true());
		if (fd->in_document)
			set_str(d, "document", fd->document);
		json_t *s = json_array();
		for (int k = 0; k < fd->n_samples; k++)
			json_array_append_new(s, json_string(fd->samples[k]));
		json_object_set_new(d, "samples", s);
		if (fd->n_locations) {
			json_t *l = json_array();
			for (int k = 0; k < fd->n_locations; k++)
				json_array_append_new(l, json_string(fd->locations[k]));
			json_object_set_new(d, "locations", l);
		}
		if (fd->n_views) {
			json_t *views = json_array();
			for (int k = 0; k < fd->n_views; k++)
				json_array_append_new(views, json_string(fd->views[k]));
			json_object_set_new(d, "views", views);
		}
		json_object_set_new(dets, fd->name, d);
	}
	return dets;
}

static json_t *flow_json(const event_t *e)
{
	static const char *const sources[] = {"explicit", "transparent", "sysext"};
	const flow_facts_t *f = e->facts;
	json_t *flow = json_object();
	json_object_set_new(flow, "id", json_integer((json_int_t)e->flow_id));
	json_object_set_new(flow, "source", json_string(sources[f->source < 3 ? f->source : 0]));
	set_str(flow, "client", e->client_ip);
	set_str(flow, "host", f->host);
	set_str(flow, "sni", f->sni);
	set_str(flow, "dst_ip", f->dst_ip);
	json_object_set_new(flow, "dst_port", json_integer(f->port));
	if (e->method)
		json_object_set_new(flow, "method", strn(e->method, e->method_len));
	if (e->path)
		json_object_set_new(flow, "path", strn(e->path, e->path_len));
	if (e->status >= 100 && e->status <= 999)
		json_object_set_new(flow, "status", json_integer(e->status));
	if (e->method)
		json_object_set_new(flow, "body_bytes", json_integer((json_int_t)e->body_bytes));
	set_str(flow, "tls", e->tls);
	set_str(flow, "upstream_tls", e->up_tls);
	if (e->kind == EVENT_FLOW) {
		json_object_set_new(flow, "bytes_up", json_integer((json_int_t)e->bytes_up));
		json_object_set_new(flow, "bytes_down", json_integer((json_int_t)e->bytes_down));
		json_object_set_new(flow, "requests", json_integer(e->requests));
		json_object_set_new(flow, "duration_ms", json_integer((json_int_t)e->duration_ms));
		set_str(flow, "end", e->end);
	}
	return flow;
}

void event_emit(const event_t *e)
{
	json_t *o = json_object();
	const verdict_t *v = e->verdict;
	static const char *const names[] = {[EVENT_VERDICT] = "verdict", [EVENT_FLOW] = "flow", [EVENT_SHADOW] = "shadow",
					    [EVENT_OVERRIDE] = "override", [EVENT_FALSE_POSITIVE] = "false_positive"};
	set_common(o, names[e->kind], e->id);
	set_str(o, "policy_version", e->policy_version);
	const char *kind = verdict_label(v);
	if (e->kind == EVENT_OVERRIDE || e->kind == EVENT_FALSE_POSITIVE) {
		json_object_set_new(o, "of", json_string(e->of));
		json_object_set_new(o, "rule", json_string(v->rule));
		json_object_set_new(o, "reason", json_string(v->reason));
		json_object_set_new(o, "justification", strn(e->justification ? e->justification : "", e->justification ? strlen(e->justification) : 0));
		if (e->kind == EVENT_OVERRIDE)
			json_object_set_new(o, "ttl_s", json_integer(e->ttl_s));
	} else if (e->kind == EVENT_FLOW) {
		json_object_set_new(o, "mode", json_string(e->mode ? e->mode : "-"));
		json_object_set_new(o, "verdict", json_string(verdict_name(v->kind)));
		set_str(o, "rule", v->rule);
		set_str(o, "reason", v->reason);
	} else {
		json_object_set_new(o, "stage", json_string(e->stage));
		json_object_set_new(o, "verdict", json_string(kind));
		json_object_set_new(o, "monitor", json_boolean(v->monitor));
		if (v->error)
			json_object_set_new(o, "policy_error", json_true());
		json_object_set_new(o, "rule", json_string(v->rule));
		json_object_set_new(o, "reason", json_string(v->reason));
		set_str(o, "note", e->note);
		if (e->latency_us)
			json_object_set_new(o, "latency_us", json_integer((json_int_t)e->latency_us));
		json_object_set_new(o, "detectors", detectors_json(e->msg));
		if (e->kind == EVENT_SHADOW) {
			json_object_set_new(o, "active_verdict", json_string(e->active_verdict));
			json_object_set_new(o, "active_policy_version", json_string(e->active_policy_version));
		}
	}
	const flow_app_t *a = &e->facts->app;
	if (a->path || a->pid || a->signing_id)
		json_object_set_new(o, "app", app_json(a));
	json_object_set_new(o, "flow", flow_json(e));
	submit(o, NULL);
}

void event_emit_drops(const spool_drops_t *d)
{
	const struct {
		const char *reason;
		uint64_t n;
		spool_drops_t carried;
	} by[] = {
		{"spool_full", d->full, {.full = d->full}},
		{"corrupt_record", d->corrupt, {.corrupt = d->corrupt}},
		{"rejected", d->rejected, {.rejected = d->rejected}},
		{"write_error", d->write_error, {.write_error = d->write_error}},
	};
	for (size_t i = 0; i < sizeof by / sizeof by[0]; i++) {
		if (!by[i].n)
			continue;
		char id[EVENT_ID_LEN];
		event_new_id(id);
		json_t *o = json_object();
		set_common(o, "spool_drop", id);
		json_object_set_new(o, "reason", json_string(by[i].reason));
		json_object_set_new(o, "dropped", json_integer((json_int_t)by[i].n));
		submit(o, &by[i].carried);
	}
}
