/*
 * policy_api: the admin side of policy distribution (console-api.md
 * "Admin side") as routes over policy_ops.c. api.c routes, authenticates
 * (admin tokens only) and runs these on the thread pool like every other
 * endpoint; here a request's path, query and body become the arguments of
 * one operation, and bad ones a 400 naming the parameter.
 */
#include "policy.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compiling and testing a bundle (push, rollback) or extracting two to
 * diff holds a pool thread for up to seconds: one at a time, so the pool
 * stays free for ingestion; the others are told to come back (503 +
 * Retry-After). */
static atomic_flag heavy_busy = ATOMIC_FLAG_INIT;

static bool heavy(policy_route_t r)
{
	return r == PR_PUSH || r == PR_ROLLBACK || r == PR_DIFF;
}

static void bad(policy_answer_t *a, const char *fmt, const char *what)
{
	char detail[300];
	snprintf(detail, sizeof detail, fmt, what);
	a->status = 400;
	a->json = json_pack("{s:s, s:s}", "error", "bad_parameter", "detail", detail);
	a->code = "bad_parameter";
}

/* The query's parameters, each at most once and among allowed; the
 * filter's since/until/limit/cursor and the diff's a and b. */
static bool read_query(const char *query, const char *const *allowed, store_filter_t *f, int64_t ab[2],
		       policy_answer_t *a)
{
	console_params_t p;
	char err[256];
	memset(f, 0, sizeof *f);
	f->limit = 100;
	if (!console_params_parse(query, &p, err, sizeof err)) {
		bad(a, "%s", err);
		return false;
	}
	bool ok = true;
	for (int i = 0; i < p.n && ok; i++) {
		const char *n = p.names[i], *v = p.values[i];
		bool known = false;
		for (const char *const *x = allowed; *x; x++)
			known |= !strcmp(*x, n);
		for (int k = 0; k < i && known; k++)
			if (!strcmp(p.names[k], n)) {
				bad(a, "parameter \"%.40s\" is given twice", n);
				ok = false;
			}
		if (!ok)
			break;
		if (!known) {
			bad(a, "unknown parameter \"%.40s\"", n);
			ok = false;
		} else if (!strcmp(n, "since") || !strcmp(n, "until")) {
			bool since = n[0] == 's';
			ok = console_time_parse(v, since ? &f->since_ms : &f->until_ms);
			*(since ? &f->has_since : &f->has_until) = ok;
			if (!ok)
				bad(a, "parameter \"%s\" must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z", n);
		} else if (!strcmp(n, "limit")) {
			char *end;
			long l = strtol(v, &end, 10);
			ok = *v && !*end && l >= 1 && l <= 1000;
			f->limit = (int)l;
			if (!ok)
				bad(a, "parameter \"%s\" must be 1..1000", n);
		} else if (!strcmp(n, "cursor")) {
			ok = f->has_cursor = console_cursor_parse(v, &f->cursor_ts, &f->cursor_seq);
			if (!ok)
				bad(a, "parameter \"%s\" is not a cursor this console gave", n);
		} else {
			ok = policy_api_is_version(v, strlen(v), &ab[n[0] == 'b']);
			if (!ok)
				bad(a, "parameter \"%s\" must be a policy version", n);
		}
	}
	console_params_free(&p);
	return ok;
}

/* The body as a JSON object ({} when empty); NULL with a 400. */
static json_t *body_object(const console_req_t *req, policy_answer_t *a)
{
	if (!req->body.len)
		return json_object();
	json_error_t je;
	json_t *o = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		bad(a, "%s", "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* An optional integer member within [min, max]. */
static bool member_int(json_t *o, const char *key, int min, int max, int *out, policy_answer_t *a)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		char what[80];
		snprintf(what, sizeof what, "\"%s\" must be an integer %d..%d", key, min, max);
		bad(a, "%s", what);
		return false;
	}
	*out = (int)json_integer_value(v);
	return true;
}

static void rollout_route(const console_req_t *req, store_conn_t *sc, int64_t version, rollout_kind_t kind,
			  const char *actor, policy_answer_t *a)
{
	json_t *o = body_object(req, a);
	if (!o)
		return;
	static const char *const active_keys[] = {"labels", "percent", NULL};
	static const char *const shadow_keys[] = {"labels", "percent", "sample_percent", NULL};
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		bool known = false;
		for (const char *const *x = kind == ROLLOUT_SHADOW ? shadow_keys : active_keys; *x; x++)
			known |= !strcmp(*x, k);
		if (!known) {
			bad(a, "unknown member \"%.40s\"", k);
			json_decref(o);
			return;
		}
	}
	int percent = 100, sample = 100;
	json_t *labels = json_object_get(o, "labels");
	if (member_int(o, "percent", 1, 100, &percent, a) && member_int(o, "sample_percent", 1, 100, &sample, a))
		policy_rollout(sc, version, kind, json_is_null(labels) ? NULL : labels, percent, sample, actor, a);
	json_decref(o);
}

void policy_api_run(policy_route_t r, const policy_ctx_t *ctx, store_conn_t *sc, const console_req_t *req,
		    const char *actor, policy_answer_t *a)
{
	static const char *const none[] = {NULL};
	static const char *const window[] = {"since", "until", NULL};
	static const char *const pages[] = {"since", "until", "limit", "cursor", NULL};
	static const char *const diff[] = {"a", "b", NULL};
	memset(a, 0, sizeof *a);
	store_filter_t f;
	int64_t ab[2] = {0, 0}, v = 0;
	const char *rest = "";
	policy_api_version_path(req->path, &v, &rest);
	const char *const *allowed = r == PR_SHADOW_REPORT ? window : r == PR_AUDIT ? pages : r == PR_DIFF ? diff : none;
	if (!read_query(req->query, allowed, &f, ab, a))
		return;
	if (heavy(r) && atomic_flag_test_and_set(&heavy_busy)) {
		a->status = 503;
		a->code = "busy";
		a->json = json_pack("{s:s, s:s}", "error", "busy",
				    "detail", "another bundle is being compiled, tested or diffed; try again in a second");
		return;
	}
	switch (r) {
	case PR_PUSH:
		policy_push_document(ctx, sc, req->body.data ? req->body.data : "", req->body.len, actor, a);
		break;
	case PR_LIST: policy_list(sc, a); break;
	case PR_SHOW: policy_show(sc, v, a); break;
	case PR_FILE: policy_file(sc, v, rest + 7, a); break;
	case PR_DIFF:
		if (!ab[0] || !ab[1])
			bad(a, "%s", "give both versions: ?a=A&b=B");
		else
			policy_diff(sc, ab[0], ab[1], a);
		break;
	case PR_ACTIVATE: rollout_route(req, sc, v, ROLLOUT_ACTIVE, actor, a); break;
	case PR_SHADOW: rollout_route(req, sc, v, ROLLOUT_SHADOW, actor, a); break;
	case PR_ROLLBACK: policy_rollback(ctx, sc, actor, a); break;
	case PR_STATUS: policy_status(sc, v, a); break;
	case PR_SHADOW_REPORT: policy_shadow_report(sc, v, &f, a); break;
	case PR_ROLLOUTS: policy_rollouts(sc, a); break;
	case PR_AUDIT: policy_audit(sc, &f, a); break;
	case PR_LABELS: {
		char id[64];
		size_t n = strlen(req->path) - 15 - 7;
		snprintf(id, sizeof id, "%.*s", (int)(n < sizeof id ? n : sizeof id - 1), req->path + 15);
		json_t *o = body_object(req, a);
		if (!o)
			break;
		json_t *labels = json_object_get(o, "labels");
		if (json_object_size(o) != 1 || !labels)
			bad(a, "%s", "the body is {\"labels\": {\"k\": \"v\", ...}}");
		else
			policy_set_labels(sc, id, labels, actor, a);
		json_decref(o);
		break;
	}
	default: a->status = 404; a->json = json_pack("{s:s, s:s}", "error", "not_found", "detail", "no such endpoint");
	}
	if (heavy(r))
		atomic_flag_clear(&heavy_busy);
}
