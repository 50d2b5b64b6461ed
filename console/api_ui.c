/*
 * api_ui: the handlers of the web UI's endpoints (schemas/console-api.md
 * "Web UI API"): sessions, dashboard, agents, incidents, tokens and the
 * rollout preview. api.c has routed the request and checked the role
 * before any of these runs; they only check their own input.
 */
#include "api.h"

#include "core/log.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANGE_MS (90LL * 86400000)
#define DAY_MS 86400000LL

json_t *api_body_object(job_t *j)
{
	json_error_t je;
	json_t *o = json_loadb(j->req->body.data ? j->req->body.data : "", j->req->body.len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		api_answer_error(j, 400, "bad_json", "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* A body's members must all be among names (NULL-terminated). */
static bool only_members(job_t *j, json_t *o, const char *const *names)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		const char *const *n = names;
		while (*n && strcmp(*n, k))
			n++;
		if (!*n) {
			api_answer_error(j, 400, "bad_parameter", "unknown member \"%.40s\"", k);
			return false;
		}
	}
	return true;
}

static bool is_hex(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	return strspn(s, "0123456789abcdef") == n;
}

/* ---- sessions ---- */

static void cookie_header(job_t *j, const char *value, uint32_t max_age)
{
	snprintf(j->extra, sizeof j->extra,
		 "Set-Cookie: " CONSOLE_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=%u\r\n", value,
		 max_age);
}

static json_t *session_json(const job_t *j, const char *csrf, int64_t expires_ms)
{
	char id[13], exp[64];
	snprintf(id, sizeof id, "%.12s", j->token_hash);
	console_time_format(expires_ms, exp);
	return json_pack("{s:s, s:s, s:o, s:o, s:I, s:s}", "token_id", id, "role", store_role_name(j->role), "csrf",
			 csrf ? json_string(csrf) : json_null(), "expires_at", csrf ? json_string(exp) : json_null(),
			 "idle_timeout_s", (json_int_t)j->c->cfg.session_idle_s, "via", csrf ? "cookie" : "bearer");
}

bool api_session_new(job_t *j, store_conn_t *sc)
{
	int64_t now = console_now_ms();
	int retry = 0;
	if (!console_signin_allowed(j->req->peer, now, &retry)) {
		snprintf(j->extra, sizeof j->extra, "Retry-After: %d\r\n", retry);
		api_answer_error(j, 429, "rate_limited", "too many failed sign-ins from this address; try again later");
		return true;
	}
	json_t *o = api_body_object(j);
	if (!o)
		return true;
	const char *token = json_string_value(json_object_get(o, "token"));
	char agent_id[64];
	int r = STORE_NOT_FOUND;
	if (is_hex(token, 64)) {
		console_sha256_hex(token, j->token_hash);
		r = store_token_lookup(sc, j->token_hash, &j->role, agent_id);
	}
	json_decref(o);
	if (r < 0)
		return false;
	if (r == STORE_NOT_FOUND || j->role == STORE_ROLE_AGENT) {
		j->role = STORE_ROLE_NONE;
		console_signin_failed(j->req->peer, now);
		api_answer_error(j, 401, "unauthorized", "unknown or revoked token");
		return true;
	}
	char id[72], id_hash[65], csrf[72];
	console_random_hex(id, 32);
	console_random_hex(csrf, 32);
	console_sha256_hex(id, id_hash);
	int64_t expires = now + (int64_t)j->c->cfg.session_max_s * 1000;
	if (store_session_create(sc, id_hash, j->token_hash, csrf, now, expires) != 0) {
		OPENSSL_cleanse(id, sizeof id);
		return false;
	}
	cookie_header(j, id, j->c->cfg.session_max_s);
	OPENSSL_cleanse(id, sizeof id);
	api_answer_json(j, 200, session_json(j, csrf, expires));
	return true;
}

bool api_session_get(job_t *j, store_conn_t *sc)
{
	(void)sc;
	api_answer_json(j, 200, session_json(j, j->via_cookie ? j->session.csrf : NULL, j->session.expires_ms));
	return true;
}

bool api_session_end(job_t *j, store_conn_t *sc)
{
	if (j->via_cookie && store_session_delete(sc, j->session_hash) != 0)
		return false;
	cookie_header(j, "", 0);
	j->status = 204;
	return true;
}

/* ---- time ranges ---- */

/* since/until (RFC 3339) of a query with only those (and extra names):
 * default the last 24 hours, at most MAX_RANGE_MS. */
static bool read_range(job_t *j, console_params_t *p, int64_t *since, int64_t *until, const char *const *extra)
{
	char err[256];
	if (!console_params_parse(j->req->query, p, err, sizeof err)) {
		api_answer_error(j, 400, "bad_parameter", "%s", err);
		return false;
	}
	int64_t now = console_now_ms();
	*until = now;
	*since = -1;
	for (int i = 0; i < p->n; i++) {
		const char *n = p->names[i], *v = p->values[i];
		bool s = !strcmp(n, "since"), u = !strcmp(n, "until");
		if (!s && !u) {
			const char *const *e = extra;
			while (e && *e && strcmp(*e, n))
				e++;
			if (e && *e)
				continue;
			api_answer_error(j, 400, "bad_parameter", "unknown parameter \"%.40s\"", n);
			return false;
		}
		if (*v && !console_time_parse(v, s ? since : until)) {
			api_answer_error(j, 400, "bad_parameter", "parameter \"%s\" must be an RFC 3339 time", n);
			return false;
		}
	}
	if (*since < 0)
		*since = *until - DAY_MS;
	if (*since >= *until || *until - *since > MAX_RANGE_MS) {
		api_answer_error(j, 400, "bad_parameter", "since must be before until, at most 90 days apart");
		return false;
	}
	return true;
}

bool api_dashboard(job_t *j, store_conn_t *sc)
{
	console_params_t p;
	int64_t since, until;
	bool ok = read_range(j, &p, &since, &until, NULL);
	console_params_free(&p);
	if (!ok)
		return true;
	int64_t range = until - since;
	int64_t bucket = range <= 3 * 3600000LL ? 60000 : range <= 8 * DAY_MS ? 3600000 : DAY_MS;
	char s[64], u[64];
	console_time_format(since, s);
	console_time_format(until, u);
	json_t *out = json_pack("{s:s, s:s, s:s, s:I}", "since", s, "until", u, "bucket",
				bucket == 60000 ? "minute" : bucket == 3600000 ? "hour" : "day", "bucket_ms",
				(json_int_t)bucket);
	if (store_dashboard(sc, since, until, bucket, console_now_ms(), out) != 0) {
		json_decref(out);
		return false;
	}
	json_t *ev;
	size_t i;
	json_array_foreach(json_object_get(out, "latest_blocks"), i, ev) api_strip_samples(j, ev);
	api_answer_json(j, 200, out);
	return true;
}

/* ---- agents ---- */

bool api_agent_get(job_t *j, store_conn_t *sc)
{
	const char *id = j->req->path + strlen("/api/v1/agents/");
	json_t *a = NULL;
	int r = console_is_uuid(id) ? store_agent_get(sc, id, &a) : STORE_NOT_FOUND;
	if (r < 0)
		return false;
	if (r == STORE_NOT_FOUND) {
		api_answer_error(j, 404, "not_found", "no agent with this id");
		return true;
	}
	console_params_t p;
	int64_t since, until;
	bool ok = read_range(j, &p, &since, &until, NULL);
	console_params_free(&p);
	if (!ok) {
		json_decref(a);
		return true;
	}
	json_t *h = json_array();
	json_object_set_new(a, "history", h);
	if (store_agent_history(sc, id, since, until, h) != 0) {
		json_decref(a);
		return false;
	}
	api_answer_json(j, 200, a);
	return true;
}

/* ---- incidents ---- */

static const char *const statuses[] = {"new", "triaged", "false_positive", "resolved", NULL};

static bool is_status(const char *s)
{
	for (const char *const *x = statuses; *x; x++)
		if (s && !strcmp(s, *x))
			return true;
	return false;
}

static bool read_incident_filter(job_t *j, console_params_t *p, store_incident_filter_t *f, bool list)
{
	memset(f, 0, sizeof *f);
	f->limit = 100;
	char err[256];
	if (!console_params_parse(j->req->query, p, err, sizeof err)) {
		api_answer_error(j, 400, "bad_parameter", "%s", err);
		return false;
	}
	for (int i = 0; i < p->n; i++) {
		const char *n = p->names[i], *v = p->values[i];
		if (!*v)
			continue;
		if (strlen(v) > 1024) {
			api_answer_error(j, 400, "bad_parameter", "parameter \"%.40s\" is longer than 1024 bytes", n);
			return false;
		}
		if (list && !strcmp(n, "status")) {
			if (!is_status(v)) {
				api_answer_error(j, 400, "bad_parameter",
					     "parameter \"status\" must be new, triaged, false_positive or resolved");
				return false;
			}
			f->status = v;
		} else if (list && !strcmp(n, "assignee")) {
			f->assignee = v;
		} else if (!strcmp(n, "detector")) {
			f->detector = v;
		} else if (list && !strcmp(n, "host")) {
			f->host = v;
		} else if (!strcmp(n, "since") || !strcmp(n, "until")) {
			bool s = n[0] == 's';
			if (!console_time_parse(v, s ? &f->since_ms : &f->until_ms)) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"%s\" must be an RFC 3339 time", n);
				return false;
			}
			*(s ? &f->has_since : &f->has_until) = true;
		} else if (list && !strcmp(n, "limit")) {
			char *end;
			long l = strtol(v, &end, 10);
			if (*end || l < 1 || l > 1000) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"limit\" must be 1..1000");
				return false;
			}
			f->limit = (int)l;
		} else if (list && !strcmp(n, "cursor")) {
			if (!console_cursor_parse(v, &f->cursor_ts, &f->cursor_id)) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"cursor\" is not a cursor this console gave");
				return false;
			}
			f->has_cursor = true;
		} else {
			api_answer_error(j, 400, "bad_parameter", "unknown parameter \"%.40s\"", n);
			return false;
		}
	}
	return true;
}

bool api_incidents(job_t *j, store_conn_t *sc)
{
	console_params_t p;
	store_incident_filter_t f;
	if (!read_incident_filter(j, &p, &f, true)) {
		console_params_free(&p);
		return true;
	}
	json_t *list = json_array();
	bool more = false;
	int64_t ts = 0, id = 0;
	int r = store_incidents_list(sc, &f, list, &more, &ts, &id);
	console_params_free(&p);
	if (r != 0) {
		json_decref(list);
		return false;
	}
	api_answer_page(j, "incidents", list, more, ts, id);
	return true;
}

/* /api/v1/incidents/ID[/...]: ID, or 0 */
static int64_t incident_id(const job_t *j)
{
	const char *s = j->req->path + strlen("/api/v1/incidents/");
	int64_t v = 0;
	return policy_api_is_version(s, strcspn(s, "/"), &v) ? v : 0;
}

static bool answer_incident(job_t *j, store_conn_t *sc, int64_t id, bool with_event)
{
	json_t *inc = NULL;
	int r = id ? store_incident_get(sc, id, &inc, with_event) : STORE_NOT_FOUND;
	if (r < 0)
		return false;
	if (r == STORE_NOT_FOUND) {
		api_answer_error(j, 404, "not_found", "no incident with this id");
		return true;
	}
	if (with_event) {
		char *text = NULL;
		r = store_get_event(sc, json_string_value(json_object_get(inc, "event_id")), &text);
		json_t *ev = text ? json_loads(text, 0, NULL) : NULL;
		free(text);
		if (r < 0) {
			json_decref(inc);
			return false;
		}
		if (ev)
			api_strip_samples(j, ev);
		json_object_set_new(inc, "event", ev ? ev : json_null());
	}
	api_answer_json(j, 200, inc);
	return true;
}

bool api_incident_get(job_t *j, store_conn_t *sc)
{
	return answer_incident(j, sc, incident_id(j), true);
}

bool api_incident_patch(job_t *j, store_conn_t *sc)
{
	int64_t id = incident_id(j);
	json_t *o = api_body_object(j);
	if (!o)
		return true;
	static const char *const names[] = {"status", "assignee", NULL};
	json_t *st = json_object_get(o, "status"), *as = json_object_get(o, "assignee");
	const char *status = json_string_value(st), *assignee = json_string_value(as);
	bool ok = true;
	if (!only_members(j, o, names))
		ok = false;
	else if (st && !is_status(status))
		api_answer_error(j, 400, "bad_parameter", "\"status\" must be new, triaged, false_positive or resolved"),
			ok = false;
	else if (as && !json_is_null(as) && (!assignee || strlen(assignee) > 128 || !*assignee))
		api_answer_error(j, 400, "bad_parameter", "\"assignee\" must be 1..128 bytes or null"), ok = false;
	else if (!st && !as)
		api_answer_error(j, 400, "bad_parameter", "give \"status\" and/or \"assignee\""), ok = false;
	if (!ok) {
		json_decref(o);
		return true;
	}
	char actor[80];
	api_actor(j, actor);
	json_t *detail = json_pack("{s:I, s:O, s:O}", "incident", (json_int_t)id, "status", st ? st : json_null(),
				   "assignee", as ? as : json_null());
	char *dtext = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(detail);
	store_audit_t au = {actor, "incident.update", dtext};
	int r = id ? store_incident_update(sc, id, status, assignee, as && json_is_null(as), actor, console_now_ms(), &au)
		   : STORE_NOT_FOUND;
	free(dtext);
	json_decref(o);
	if (r < 0)
		return false;
	if (r == STORE_NOT_FOUND) {
		api_answer_error(j, 404, "not_found", "no incident with this id");
		return true;
	}
	return answer_incident(j, sc, id, false);
}

bool api_incident_note(job_t *j, store_conn_t *sc)
{
	int64_t id = incident_id(j);
	json_t *o = api_body_object(j);
	if (!o)
		return true;
	static const char *const names[] = {"text", NULL};
	const char *text = json_string_value(json_object_get(o, "text"));
	size_t len = text ? json_string_length(json_object_get(o, "text")) : 0;
	if (!only_members(j, o, names) || !text || !len || len > 4096 || strlen(text) != len) {
		if (!j->status)
			api_answer_error(j, 400, "bad_parameter", "\"text\" must be 1..4096 bytes");
		json_decref(o);
		return true;
	}
	char actor[80], detail[96];
	api_actor(j, actor);
	snprintf(detail, sizeof detail, "{\"incident\":%lld}", (long long)id);
	store_audit_t au = {actor, "incident.note", detail};
	int64_t now = console_now_ms(), note = 0;
	int r = id ? store_incident_note(sc, id, actor, text, now, &au, &note) : STORE_NOT_FOUND;
	if (r < 0) {
		json_decref(o);
		return false;
	}
	if (r == STORE_NOT_FOUND) {
		json_decref(o);
		api_answer_error(j, 404, "not_found", "no incident with this id");
		return true;
	}
	char t[64];
	console_time_format(now, t);
	api_answer_json(j, 201, json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)note, "time", t, "author", actor,
					  "text", text));
	json_decref(o);
	return true;
}

bool api_false_positives(job_t *j, store_conn_t *sc)
{
	console_params_t p;
	store_incident_filter_t f;
	if (!read_incident_filter(j, &p, &f, false)) {
		console_params_free(&p);
		return true;
	}
	json_t *groups = json_array();
	int r = store_false_positives(sc, &f, groups);
	console_params_free(&p);
	if (r != 0) {
		json_decref(groups);
		return false;
	}
	api_answer_json(j, 200, json_pack("{s:o}", "groups", groups));
	return true;
}

/* ---- rollout preview ---- */

typedef struct {
	const rollout_t *r;
	int64_t targets, agents;
} preview_t;

static bool count_match(void *ud, const store_agent_row_t *ag)
{
	preview_t *p = ud;
	p->agents++;
	p->targets += rollout_matches(p->r, ag->agent_id, ag->labels);
	return true;
}

bool api_preview(job_t *j, store_conn_t *sc)
{
	json_t *o = api_body_object(j);
	if (!o)
		return true;
	static const char *const names[] = {"labels", "percent", "sample_percent", NULL};
	json_t *labels = json_object_get(o, "labels"), *pc = json_object_get(o, "percent");
	char why[256];
	bool ok = only_members(j, o, names);
	if (ok && labels && !rollout_labels_valid(labels, why, sizeof why))
		api_answer_error(j, 400, "bad_parameter", "%s", why), ok = false;
	if (ok && pc && (!json_is_integer(pc) || json_integer_value(pc) < 1 || json_integer_value(pc) > 100))
		api_answer_error(j, 400, "bad_parameter", "\"percent\" must be 1..100"), ok = false;
	if (!ok) {
		json_decref(o);
		return true;
	}
	rollout_t r = {.labels = labels, .percent = pc ? (int)json_integer_value(pc) : 100, .running = true};
	preview_t p = {&r, 0, 0};
	int rc = store_agents_each(sc, count_match, &p);
	json_decref(o);
	if (rc != 0)
		return false;
	api_answer_json(j, 200, json_pack("{s:I, s:I}", "targets", (json_int_t)p.targets, "agents", (json_int_t)p.agents));
	return true;
}

/* ---- tokens ---- */

bool api_tokens(job_t *j, store_conn_t *sc)
{
	json_t *t = json_array();
	if (store_tokens_list(sc, t) != 0) {
		json_decref(t);
		return false;
	}
	api_answer_json(j, 200, json_pack("{s:o}", "tokens", t));
	return true;
}

bool api_token_new(job_t *j, store_conn_t *sc)
{
	json_t *o = api_body_object(j);
	if (!o)
		return true;
	static const char *const names[] = {"role", "name", NULL};
	store_role_t role = store_role_parse(json_string_value(json_object_get(o, "role")));
	json_t *nm = json_object_get(o, "name");
	const char *name = json_string_value(nm);
	bool ok = only_members(j, o, names);
	if (ok && !role)
		api_answer_error(j, 400, "bad_parameter", "\"role\" must be viewer, analyst or admin"), ok = false;
	if (ok && nm && (!name || !*name || strlen(name) > 128))
		api_answer_error(j, 400, "bad_parameter", "\"name\" must be 1..128 bytes"), ok = false;
	if (!ok) {
		json_decref(o);
		return true;
	}
	char token[72], hash[65], now[64], actor[80], detail[96];
	console_random_hex(token, 32);
	console_sha256_hex(token, hash);
	console_time_format(console_now_ms(), now);
	api_actor(j, actor);
	snprintf(detail, sizeof detail, "{\"role\":\"%s\",\"token_id\":\"%.12s\"}", store_role_name(role), hash);
	store_audit_t au = {actor, "admin.token.create", detail};
	int r = store_admin_token_add_audited(sc, hash, now, role, name, &au);
	json_decref(o);
	if (r != 0) {
		OPENSSL_cleanse(token, sizeof token);
		return false;
	}
	char id[13];
	snprintf(id, sizeof id, "%.12s", hash);
	api_answer_json(j, 201, json_pack("{s:s, s:s, s:s}", "token_id", id, "role", store_role_name(role), "token", token));
	OPENSSL_cleanse(token, sizeof token);
	return true;
}

bool api_token_revoke(job_t *j, store_conn_t *sc)
{
	const char *id = j->req->path + strlen("/api/v1/tokens/");
	char now[64], actor[80], detail[64];
	console_time_format(console_now_ms(), now);
	api_actor(j, actor);
	snprintf(detail, sizeof detail, "{\"token_id\":\"%.12s\"}", id);
	store_audit_t au = {actor, "admin.token.revoke", detail};
	int r = is_hex(id, 12) ? store_token_revoke(sc, id, now, &au) : STORE_NOT_FOUND;
	if (r < 0)
		return false;
	if (r == STORE_NOT_FOUND) {
		api_answer_error(j, 404, "not_found", "no live token with this id");
		return true;
	}
	j->status = 204;
	return true;
}
