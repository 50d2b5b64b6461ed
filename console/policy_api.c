/*
 * policy_api: the admin side of policy distribution (console-api.md
 * "Admin side") as routes over policy_ops.c. api.c routes, authenticates
 * (admin tokens only) and runs these on the thread pool like every other
 * endpoint; here a request's path, query and body become the arguments of
 * one operation, and bad ones a 400 naming the parameter.
 */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P "/api/v1/policies"

static bool is_version(const char *s, size_t n, int64_t *v)
{
	if (n == 0 || n > 16)
		return false;
	int64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (s[i] - '0');
	}
	*v = x;
	return x > 0;
}

/* "/api/v1/policies/N/REST": N and REST ("" when none). */
static bool version_path(const char *path, int64_t *v, const char **rest)
{
	if (strncmp(path, P "/", sizeof P) != 0)
		return false;
	const char *s = path + sizeof P;
	size_t n = strcspn(s, "/");
	if (!is_version(s, n, v))
		return false;
	*rest = s + n;
	return true;
}

policy_route_t policy_api_route(const char *method, const char *path, bool *wrong_method)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), put = !strcmp(method, "PUT");
	policy_route_t want = PR_NONE;
	bool ok = false;
	int64_t v;
	const char *rest;
	if (!strcmp(path, P))
		want = post ? PR_PUSH : PR_LIST, ok = get || post;
	else if (!strcmp(path, P "/diff"))
		want = PR_DIFF, ok = get;
	else if (!strcmp(path, P "/rollback"))
		want = PR_ROLLBACK, ok = post;
	else if (!strcmp(path, "/api/v1/rollouts"))
		want = PR_ROLLOUTS, ok = get;
	else if (!strcmp(path, "/api/v1/audit"))
		want = PR_AUDIT, ok = get;
	else if (!strncmp(path, "/api/v1/agents/", 15) && strlen(path) > 22 &&
		 !strcmp(path + strlen(path) - 7, "/labels"))
		want = PR_LABELS, ok = put;
	else if (version_path(path, &v, &rest)) {
		if (!*rest)
			want = PR_SHOW, ok = get;
		else if (!strncmp(rest, "/files/", 7) && rest[7])
			want = PR_FILE, ok = get;
		else if (!strcmp(rest, "/activate"))
			want = PR_ACTIVATE, ok = post;
		else if (!strcmp(rest, "/shadow"))
			want = PR_SHADOW, ok = post;
		else if (!strcmp(rest, "/status"))
			want = PR_STATUS, ok = get;
		else if (!strcmp(rest, "/shadow-report"))
			want = PR_SHADOW_REPORT, ok = get;
	}
	*wrong_method = want != PR_NONE && !ok;
	return ok ? want : PR_NONE;
}

const char *policy_api_route_name(policy_route_t r)
{
	static const char *const names[] = {"none",	    "policy_push",   "policy_list",   "policy_show",
					    "policy_file",  "policy_diff",   "policy_activate", "policy_shadow",
					    "policy_rollback", "policy_status", "policy_shadow_report",
					    "rollouts",	    "agent_labels",  "audit"};
	return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "none";
}

size_t policy_api_body_limit(const char *method, const char *path)
{
	return !strcmp(method, "POST") && !strcmp(path, P) ? BUNDLE_MAX_DOCUMENT : 0;
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
			ok = is_version(v, strlen(v), &ab[n[0] == 'b']);
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
	version_path(req->path, &v, &rest);
	const char *const *allowed = r == PR_SHADOW_REPORT ? window : r == PR_AUDIT ? pages : r == PR_DIFF ? diff : none;
	if (!read_query(req->query, allowed, &f, ab, a))
		return;
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
}
