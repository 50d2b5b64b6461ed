/*
 * api: the routes of schemas/console-api.md.
 *
 * On the loop thread a request is only routed and checked for what needs
 * no database (method, presence of a token, content type); everything else
 * (token lookup, gunzip, JSON, SQL) runs as one job on the libuv thread
 * pool, with a store connection of that thread, and the answer is sent back
 * on the loop. Jobs in flight are capped (CONSOLE_MAX_JOBS): past it a
 * request gets 503 with Retry-After instead of queueing without bound.
 *
 * Authorization is decided in one place (run_job) before any handler, from
 * one table (routes[] and policy_needs[] below): the route says which role
 * it needs (console-api.md "Roles"); an agent token on a people's route is
 * 403 and so is a person on an agent's route; a handler for agents only
 * ever sees its own agent id. A person is a bearer token (scripts) or a
 * session cookie (the browser); a cookie's state-changing request must
 * carry the session's CSRF token.
 */
#include "core/metrics.h"
#include "api.h"

#include "core/log.h"
#include "ingest.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t console_api_body_limit(const char *method, const char *path)
{
	if (strcmp(method, "POST") == 0 && strcmp(path, "/api/v1/events") == 0)
		return CONSOLE_MAX_WIRE_BODY;
	size_t policy = policy_api_body_limit(method, path);
	return policy ? policy : CONSOLE_MAX_SMALL_BODY;
}

/* The role each endpoint needs: the one place authorization is decided.
 * STORE_ROLE_NONE: no credential (enrollment has its secret, sign-in its
 * token in the body, the web UI's files hold no data). First match wins. */
typedef struct {
	const char *method, *pattern; /* '*' is one path segment */
	route_t route;
	store_role_t need;
	const char *name;
} route_def_t;

static const route_def_t routes[] = {
	{"POST", "/api/v1/enroll", R_ENROLL, STORE_ROLE_NONE, "enroll"},
	{"POST", "/api/v1/events", R_EVENTS_POST, STORE_ROLE_AGENT, "events_post"},
	{"POST", "/api/v1/status", R_STATUS, STORE_ROLE_AGENT, "status"},
	{"POST", "/api/v1/session", R_SESSION_NEW, STORE_ROLE_NONE, "session_new"},
	{"GET", "/api/v1/session", R_SESSION_GET, STORE_ROLE_VIEWER, "session"},
	{"DELETE", "/api/v1/session", R_SESSION_END, STORE_ROLE_VIEWER, "session_end"},
	{"GET", "/api/v1/dashboard", R_DASHBOARD, STORE_ROLE_VIEWER, "dashboard"},
	{"GET", "/api/v1/events", R_EVENTS_LIST, STORE_ROLE_VIEWER, "events_list"},
	{"GET", "/api/v1/events/export", R_EXPORT, STORE_ROLE_VIEWER, "events_export"},
	{"GET", "/api/v1/events/*/detail", R_EVENT_DETAIL, STORE_ROLE_VIEWER, "event_detail"},
	{"GET", "/api/v1/events/*", R_EVENT_GET, STORE_ROLE_VIEWER, "event"},
	{"GET", "/api/v1/stats", R_STATS, STORE_ROLE_VIEWER, "stats"},
	{"GET", "/api/v1/agents", R_AGENTS, STORE_ROLE_VIEWER, "agents"},
	{"GET", "/api/v1/agents/*", R_AGENT_GET, STORE_ROLE_VIEWER, "agent"},
	{"GET", "/api/v1/incidents", R_INCIDENTS, STORE_ROLE_ANALYST, "incidents"},
	{"GET", "/api/v1/incidents/false-positives", R_FALSE_POSITIVES, STORE_ROLE_ANALYST, "false_positives"},
	{"GET", "/api/v1/incidents/*", R_INCIDENT_GET, STORE_ROLE_ANALYST, "incident"},
	{"PATCH", "/api/v1/incidents/*", R_INCIDENT_PATCH, STORE_ROLE_ANALYST, "incident_update"},
	{"POST", "/api/v1/incidents/*/notes", R_INCIDENT_NOTE, STORE_ROLE_ANALYST, "incident_note"},
	{"POST", "/api/v1/rollouts/preview", R_PREVIEW, STORE_ROLE_ADMIN, "rollout_preview"},
	{"GET", "/api/v1/tokens", R_TOKENS, STORE_ROLE_ADMIN, "tokens"},
	{"POST", "/api/v1/tokens", R_TOKEN_NEW, STORE_ROLE_ADMIN, "token_new"},
	{"DELETE", "/api/v1/tokens/*", R_TOKEN_REVOKE, STORE_ROLE_ADMIN, "token_revoke"},
};

/* Policy distribution's routes (policy_routes.c): reading is a viewer's,
 * changing an admin's. */
static const store_role_t policy_needs[] = {
	[PR_NONE] = STORE_ROLE_ADMIN,	  [PR_PUSH] = STORE_ROLE_ADMIN,	      [PR_LIST] = STORE_ROLE_VIEWER,
	[PR_SHOW] = STORE_ROLE_VIEWER,	  [PR_FILE] = STORE_ROLE_VIEWER,      [PR_DIFF] = STORE_ROLE_VIEWER,
	[PR_ACTIVATE] = STORE_ROLE_ADMIN, [PR_SHADOW] = STORE_ROLE_ADMIN,     [PR_ROLLBACK] = STORE_ROLE_ADMIN,
	[PR_STATUS] = STORE_ROLE_VIEWER,  [PR_SHADOW_REPORT] = STORE_ROLE_VIEWER, [PR_ROLLOUTS] = STORE_ROLE_VIEWER,
	[PR_LABELS] = STORE_ROLE_ADMIN,	  [PR_AUDIT] = STORE_ROLE_ADMIN,
};

static bool pattern_match(const char *pat, const char *path)
{
	while (*pat && *path) {
		if (*pat == '*') {
			size_t n = strcspn(path, "/");
			if (!n)
				return false;
			path += n;
			pat++;
		} else if (*pat++ != *path++) {
			return false;
		}
	}
	return !*pat && !*path;
}

/* The route of a request, the role it needs and its name. */
static route_t route_of(const console_req_t *r, bool *wrong_method, policy_route_t *policy, store_role_t *need,
			const char **name)
{
	*need = STORE_ROLE_ADMIN;
	*name = "none";
	*policy = policy_api_route(r->method, r->path, wrong_method);
	if (*policy != PR_NONE || *wrong_method) {
		*need = policy_needs[*policy];
		*name = policy_api_route_name(*policy);
		return *policy != PR_NONE ? R_POLICY : R_NONE;
	}
	if (strncmp(r->path, "/api/", 5) != 0 && strcmp(r->path, "/api") != 0) {
		*wrong_method = strcmp(r->method, "GET") != 0;
		*need = STORE_ROLE_NONE;
		*name = "static";
		return *wrong_method ? R_NONE : R_STATIC;
	}
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!pattern_match(routes[i].pattern, r->path))
			continue;
		if (strcmp(routes[i].method, r->method) != 0) {
			*wrong_method = true;
			continue;
		}
		*wrong_method = false;
		*need = routes[i].need;
		*name = routes[i].name;
		return routes[i].route;
	}
	return R_NONE;
}

static const char *route_name(const job_t *j)
{
	return j->name ? j->name : "none";
}

/* ---- answers built on the pool thread ---- */

void api_answer_json(job_t *j, int status, json_t *o)
{
	j->status = status;
	j->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (o && !j->body)
		j->status = 500;
}

void api_answer_error(job_t *j, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_t *body = console_error_vjson(code, fmt, ap);
	va_end(ap);
	j->code = code;
	api_answer_json(j, status, body);
}

static void store_failed(job_t *j, store_conn_t *sc)
{
	metrics_add(console_m_db_errors, 1, route_name(j), NULL, NULL);
	log_msg(LOG_ERROR, "store_error", "%s: %s", route_name(j), store_conn_error(sc));
	api_answer_error(j, 503, "store_unavailable", "the database failed; try again later");
}

/* ---- handlers ---- */

static const char *json_str(json_t *o, const char *key, size_t max)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s && strlen(s) <= max && strlen(s) == json_string_length(json_object_get(o, key)) ? s : NULL;
}

static bool do_enroll(job_t *j, store_conn_t *sc)
{
	json_error_t je;
	json_t *o = json_loadb(j->req->body.data ? j->req->body.data : "", j->req->body.len, 0, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		api_answer_error(j, 400, "bad_json", "the body must be a JSON object");
		return true;
	}
	char why[256];
	const char *secret = json_str(o, "enroll_secret", 1024), *id = json_str(o, "agent_id", 64),
		   *host = json_str(o, "hostname", 255), *ver = json_str(o, "version", 64);
	if (!secret) {
		api_answer_error(j, 400, "bad_request", "\"enroll_secret\" is missing or not a string");
	} else if (!console_secret_equal(secret, j->c->enroll_secret)) {
		api_answer_error(j, 401, "unauthorized", "wrong enroll secret");
	} else if (!id || !console_is_uuid(id)) {
		api_answer_error(j, 400, "bad_request", "\"agent_id\" must be a lowercase UUID");
	} else if (!host || !ver) {
		api_answer_error(j, 400, "bad_request", "\"hostname\" (at most 255) and \"version\" (at most 64) are required strings");
	} else if (json_object_get(o, "labels") && !rollout_labels_valid(json_object_get(o, "labels"), why, sizeof why)) {
		api_answer_error(j, 400, "bad_request", "%s", why);
	} else {
		char token[72], hash[65], now[64];
		console_random_hex(token, 32);
		console_sha256_hex(token, hash);
		console_time_format(console_now_ms(), now);
		json_t *labels = json_object_get(o, "labels");
		char *labels_text = labels ? json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		/* the key list agents pin when not given --bundle-keys (bundle.md) */
		char *keys = policy_bundle_keys_text(j->c->policy_ctx, sc, why, sizeof why);
		int r = (labels && !labels_text) || !keys ? -1 : store_enroll(sc, id, host, ver, hash, now, labels_text);
		free(labels_text);
		if (r != 0) {
			if (!keys)
				log_msg(LOG_ERROR, "bundle_keys", "%s", why);
			free(keys);
			OPENSSL_cleanse(token, sizeof token);
			json_decref(o);
			return false;
		}
		snprintf(j->agent_id, sizeof j->agent_id, "%s", id);
		api_answer_json(j, 200, json_pack("{s:s, s:s, s:s}", "agent_id", id, "token", token, "bundle_keys", keys));
		free(keys);
		OPENSSL_cleanse(token, sizeof token);
	}
	json_decref(o);
	return true;
}

static bool do_events_post(job_t *j, store_conn_t *sc, const char *agent_id)
{
	const char *enc = j->req->content_encoding;
	bool gzip = strcasecmp(enc, "gzip") == 0;
	ingest_batch_t b;
	char err[512];
	int st = ingest_parse(j->req->body.data ? j->req->body.data : "", j->req->body.len, gzip, agent_id, &b, err,
			      sizeof err);
	if (st) {
		ingest_free(&b);
		api_answer_error(j, st, st == 413 ? "too_large" : st == 403 ? "forbidden" : "bad_event", "%s", err);
		return true;
	}
	char now[64];
	console_time_format(console_now_ms(), now);
	int r = store_insert_events(sc, agent_id, b.ev, b.n, now, &j->accepted, &j->duplicates);
	ingest_free(&b);
	if (r != 0)
		return false;
	metrics_add(console_m_ingested, j->accepted, "accepted", NULL, NULL);
	metrics_add(console_m_ingested, j->duplicates, "duplicate", NULL, NULL);
	api_answer_json(j, 200, json_pack("{s:I, s:I}", "accepted", (json_int_t)j->accepted, "duplicates",
				      (json_int_t)j->duplicates));
	return true;
}

static bool do_status(job_t *j, store_conn_t *sc, const char *agent_id)
{
	json_error_t je;
	json_t *o = json_loadb(j->req->body.data ? j->req->body.data : "", j->req->body.len, JSON_REJECT_DUPLICATES,
			       &je);
	if (!json_is_object(o)) {
		json_decref(o);
		api_answer_error(j, 400, "bad_json", "the body must be a JSON object");
		return true;
	}
	const char *id = json_string_value(json_object_get(o, "agent_id"));
	if (!id || strcmp(id, agent_id) != 0) {
		json_decref(o);
		api_answer_error(j, 403, "forbidden", "\"agent_id\" is not the agent this token belongs to");
		return true;
	}
	/* Which version it runs, and which it refused and why (halting); a
	 * malformed `policy` refuses the whole post before anything is stored. */
	json_t *policy = json_object_get(o, "policy");
	if (policy) {
		policy_answer_t a;
		bool ok = policy_agent_status(j->c->policy_ctx, sc, agent_id, policy, &a);
		j->targeting_changed = a.targeting_changed;
		if (ok && a.json)
			api_answer_json(j, a.status, json_incref(a.json));
		policy_answer_free(&a);
		if (!ok || j->status) {
			json_decref(o);
			return ok;
		}
	}
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	char now[64];
	console_time_format(console_now_ms(), now);
	int r = text ? store_agent_status(sc, agent_id, text, now) : -1;
	free(text);
	if (r < 0)
		return false;
	j->status = 204;
	return true;
}

/* Filters shared by the event list, stats and export; names the bad
 * parameter. Each parameter says where it is known. */
bool api_read_filters(job_t *j, console_params_t *p, store_filter_t *f, filter_use_t use, filter_extra_t *x)
{
	enum { L = 1, S = 2, E = 4 };
	static const struct {
		const char *name;
		int where;
	} known[] = {{"verdict", L | S | E}, {"detector", L | S | E}, {"host", L | S | E},	  {"app", L | S | E},
		     {"agent", L | S | E},   {"kind", L | S | E},     {"since", L | S | E},	  {"until", L | S | E},
		     {"policy_version", L | S | E}, {"monitor", L | S | E}, {"mode", L | S | E}, {"limit", L | E},
		     {"cursor", L},	     {"by", S},		      {"bucket", S},		  {"format", E}};
	static const char *const kinds[] = {"verdict", "flow", "spool_drop", "shadow"};
	int here = use == F_LIST ? L : use == F_STATS ? S : E;
	memset(f, 0, sizeof *f);
	f->limit = use == F_EXPORT ? 10000 : 100;
	char err[256];
	if (!console_params_parse(j->req->query, p, err, sizeof err)) {
		api_answer_error(j, 400, "bad_parameter", "%s", err);
		return false;
	}
	for (int i = 0; i < p->n; i++) {
		const char *n = p->names[i], *v = p->values[i];
		for (int k = 0; k < i; k++)
			if (strcmp(p->names[k], n) == 0) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"%.40s\" is given twice", n);
				return false;
			}
		if (strlen(v) > 1024) {
			api_answer_error(j, 400, "bad_parameter", "parameter \"%.40s\" is longer than 1024 bytes", n);
			return false;
		}
		bool is_known = false;
		for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
			is_known |= strcmp(n, known[k].name) == 0 && (known[k].where & here);
		if (!is_known) {
			api_answer_error(j, 400, "bad_parameter", "unknown parameter \"%.40s\"", n);
			return false;
		}
		/* "since=&until=" from a form: an empty value is no filter */
		if (!*v)
			continue;
		if (strcmp(n, "verdict") == 0)
			f->verdict = v;
		else if (strcmp(n, "detector") == 0)
			f->detector = v;
		else if (strcmp(n, "host") == 0)
			f->host = v;
		else if (strcmp(n, "app") == 0)
			f->app = v;
		else if (strcmp(n, "agent") == 0)
			f->agent = v;
		else if (strcmp(n, "policy_version") == 0)
			f->policy_version = v;
		else if (strcmp(n, "kind") == 0) {
			f->kind = v;
			if (strcmp(v, kinds[0]) && strcmp(v, kinds[1]) && strcmp(v, kinds[2]) && strcmp(v, kinds[3])) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"kind\" must be verdict, flow, spool_drop or shadow");
				return false;
			}
		} else if (strcmp(n, "monitor") == 0) {
			if (strcmp(v, "true") && strcmp(v, "false")) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"monitor\" must be true or false");
				return false;
			}
			f->monitor = v[0] == 't' ? STORE_MONITOR_ONLY : STORE_ENFORCED;
		} else if (strcmp(n, "mode") == 0) {
			if (!strcmp(v, "enforced"))
				f->monitor = STORE_ENFORCED;
			else if (!strcmp(v, "monitor"))
				f->monitor = STORE_MONITOR_ONLY;
			else if (!strcmp(v, "shadow"))
				f->kind = "shadow";
			else {
				api_answer_error(j, 400, "bad_parameter", "parameter \"mode\" must be enforced, monitor or shadow");
				return false;
			}
		} else if (strcmp(n, "since") == 0 || strcmp(n, "until") == 0) {
			bool since = n[0] == 's';
			if (!console_time_parse(v, since ? &f->since_ms : &f->until_ms)) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"%s\" must be an RFC 3339 time, e.g. "
					     "2026-01-31T12:00:00Z", n);
				return false;
			}
			*(since ? &f->has_since : &f->has_until) = true;
		} else if (strcmp(n, "limit") == 0) {
			char *end;
			long max = use == F_EXPORT ? 100000 : 1000, l = strtol(v, &end, 10);
			if (*end || l < 1 || l > max) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"limit\" must be 1..%ld", max);
				return false;
			}
			f->limit = (int)l;
		} else if (strcmp(n, "cursor") == 0) {
			if (!console_cursor_parse(v, &f->cursor_ts, &f->cursor_seq)) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"cursor\" is not a cursor this console gave");
				return false;
			}
			f->has_cursor = true;
		} else if (strcmp(n, "by") == 0) {
			x->by = v;
		} else if (strcmp(n, "format") == 0) {
			x->format = v;
		} else if (strcmp(n, "bucket") == 0) {
			x->bucket_ms = strcmp(v, "minute") == 0 ? 60000 : strcmp(v, "hour") == 0 ? 3600000
				   : strcmp(v, "day") == 0    ? 86400000
							      : 0;
			if (!x->bucket_ms) {
				api_answer_error(j, 400, "bad_parameter", "parameter \"bucket\" must be minute, hour or day");
				return false;
			}
		}
	}
	return true;
}

void api_strip_samples(const job_t *j, json_t *event)
{
	if (j->role >= STORE_ROLE_ANALYST)
		return;
	const char *name;
	json_t *det;
	json_object_foreach(json_object_get(event, "detectors"), name, det) json_object_del(det, "samples");
}

static bool do_events_list(job_t *j, store_conn_t *sc)
{
	console_params_t p;
	store_filter_t f;
	if (!api_read_filters(j, &p, &f, F_LIST, NULL)) {
		console_params_free(&p);
		return true;
	}
	json_t *events = json_array();
	bool more = false;
	int64_t ts = 0, seq = 0;
	int r = store_query_events(sc, &f, events, &more, &ts, &seq);
	console_params_free(&p);
	if (r != 0) {
		json_decref(events);
		return false;
	}
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) api_strip_samples(j, ev);
	api_answer_page(j, "events", events, more, ts, seq);
	return true;
}

void api_answer_page(job_t *j, const char *key, json_t *items, bool more, int64_t ts, int64_t id)
{
	char cursor[40];
	console_cursor_format(ts, id, cursor);
	api_answer_json(j, 200, json_pack("{s:o, s:o}", key, items, "next_cursor", more ? json_string(cursor) : json_null()));
}

static bool do_event_get(job_t *j, store_conn_t *sc)
{
	const char *id = j->req->path + 15;
	char *text = NULL;
	int r = console_is_uuid(id) ? store_get_event(sc, id, &text) : STORE_NOT_FOUND;
	if (r < 0)
		return false;
	if (r == STORE_NOT_FOUND) {
		api_answer_error(j, 404, "not_found", "no event with this id");
		return true;
	}
	if (j->role >= STORE_ROLE_ANALYST) { /* as stored */
		j->status = 200;
		j->body = text;
		return true;
	}
	json_t *ev = json_loads(text, 0, NULL);
	free(text);
	if (!ev) {
		snprintf(sc->error, sizeof sc->error, "a stored event is not valid JSON");
		return false;
	}
	api_strip_samples(j, ev);
	api_answer_json(j, 200, ev);
	return true;
}

static bool do_agents(job_t *j, store_conn_t *sc)
{
	json_t *a = json_array();
	if (store_list_agents_ui(sc, a) != 0) {
		json_decref(a);
		return false;
	}
	api_answer_json(j, 200, json_pack("{s:o}", "agents", a));
	return true;
}

static bool do_stats(job_t *j, store_conn_t *sc)
{
	console_params_t p;
	store_filter_t f;
	filter_extra_t x = {.bucket_ms = 3600000};
	if (!api_read_filters(j, &p, &f, F_STATS, &x)) {
		console_params_free(&p);
		return true;
	}
	static const char *const bys[] = {"verdict", "detector", "app", "host", "time", NULL};
	const char *const *b = bys;
	while (x.by && *b && strcmp(*b, x.by) != 0)
		b++;
	if (!x.by || !*b) {
		console_params_free(&p);
		api_answer_error(j, 400, "bad_parameter", "parameter \"by\" must be verdict, detector, app, host or time");
		return true;
	}
	json_t *counts = json_array();
	int r = store_stats(sc, &f, *b, x.bucket_ms, counts);
	console_params_free(&p);
	if (r != 0) {
		json_decref(counts);
		return false;
	}
	api_answer_json(j, 200, json_pack("{s:s, s:o}", "by", *b, "counts", counts));
	return true;
}

static bool do_policy(job_t *j, store_conn_t *sc, const char *token_hash)
{
	char actor[80];
	policy_actor_token(token_hash, actor);
	policy_answer_t a;
	policy_api_run(j->policy_route, j->c->policy_ctx, sc, j->req, actor, &a);
	j->targeting_changed = a.targeting_changed;
	if (a.status == 503 && !strcmp(a.code ? a.code : "", "store_unavailable")) { /* logged and counted as such */
		policy_answer_free(&a);
		return false;
	}
	if (a.text) {
		j->status = a.status;
		j->body = a.text;
		j->body_len = a.text_len;
		j->text_type = a.text_type;
		a.text = NULL;
	} else {
		j->code = a.code;
		api_answer_json(j, a.status, json_incref(a.json));
	}
	policy_answer_free(&a);
	return true;
}

/* ---- the job ---- */

void api_actor(const job_t *j, char out[80])
{
	policy_actor_token(j->token_hash, out);
}

static void do_static(job_t *j)
{
	console_web_answer_t a;
	console_web_serve(j->c->cfg.web_root, j->req->path, &a);
	if (a.status == 400) {
		api_answer_error(j, 400, "bad_path", "this path is not served");
		return;
	}
	if (a.status == 404) {
		api_answer_error(j, 404, "not_found", "no such file");
		return;
	}
	j->status = a.status;
	j->body = a.body;
	j->body_len = a.len;
	j->raw_type = a.type;
	snprintf(j->extra, sizeof j->extra, "Cache-Control: %s\r\n",
		 a.immutable ? "public, max-age=31536000, immutable" : "no-cache");
}

/* Who asks: a bearer token, else the session cookie (with the CSRF check
 * for what changes state). 1: known (j->role), 0: answered (401/403),
 * -1: store failure. */
static int identify(job_t *j, store_conn_t *sc, char agent_id[64])
{
	agent_id[0] = '\0';
	if (j->req->token[0]) {
		console_sha256_hex(j->req->token, j->token_hash);
		int r = store_token_lookup(sc, j->token_hash, &j->role, agent_id);
		if (r < 0)
			return -1;
		if (r == STORE_NOT_FOUND) {
			api_answer_error(j, 401, "unauthorized", "unknown token");
			return 0;
		}
		return 1;
	}
	console_sha256_hex(j->req->session, j->session_hash);
	int r = store_session_lookup(sc, j->session_hash, console_now_ms(), (int64_t)j->c->cfg.session_idle_s * 1000,
				     &j->session);
	if (r < 0)
		return -1;
	if (r == STORE_NOT_FOUND) {
		api_answer_error(j, 401, "unauthorized", "no session or it has ended: sign in again");
		return 0;
	}
	j->via_cookie = true;
	j->role = j->session.role;
	snprintf(j->token_hash, sizeof j->token_hash, "%s", j->session.token_hash);
	bool safe = !strcmp(j->req->method, "GET") || !strcmp(j->req->method, "HEAD");
	if (!safe && !console_token_equal(j->req->csrf, j->session.csrf)) {
		api_answer_error(j, 403, "csrf_refused", "a signed-in request that changes something needs X-CSRF-Token");
		return 0;
	}
	return 1;
}

static bool dispatch(job_t *j, store_conn_t *sc, const char *agent_id)
{
	switch (j->route) {
	case R_EVENTS_POST: return do_events_post(j, sc, agent_id);
	case R_STATUS: return do_status(j, sc, agent_id);
	case R_EVENTS_LIST: return do_events_list(j, sc);
	case R_EVENT_GET: return do_event_get(j, sc);
	case R_AGENTS: return do_agents(j, sc);
	case R_STATS: return do_stats(j, sc);
	case R_POLICY: return do_policy(j, sc, j->token_hash);
	case R_SESSION_NEW: return api_session_new(j, sc);
	case R_SESSION_GET: return api_session_get(j, sc);
	case R_SESSION_END: return api_session_end(j, sc);
	case R_DASHBOARD: return api_dashboard(j, sc);
	case R_EXPORT: return api_export(j, sc);
	case R_EVENT_DETAIL: return api_event_detail(j, sc);
	case R_AGENT_GET: return api_agent_get(j, sc);
	case R_INCIDENTS: return api_incidents(j, sc);
	case R_INCIDENT_GET: return api_incident_get(j, sc);
	case R_INCIDENT_PATCH: return api_incident_patch(j, sc);
	case R_INCIDENT_NOTE: return api_incident_note(j, sc);
	case R_FALSE_POSITIVES: return api_false_positives(j, sc);
	case R_PREVIEW: return api_preview(j, sc);
	case R_TOKENS: return api_tokens(j, sc);
	case R_TOKEN_NEW: return api_token_new(j, sc);
	case R_TOKEN_REVOKE: return api_token_revoke(j, sc);
	default: api_answer_error(j, 404, "not_found", "no such endpoint"); return true;
	}
}

static void run_job(uv_work_t *w)
{
	job_t *j = w->data;
	if (j->route == R_STATIC) { /* no database: the files hold no data */
		do_static(j);
		return;
	}
	char err[512];
	store_conn_t *sc = store_acquire(j->c->store, err, sizeof err);
	if (!sc) {
		log_msg(LOG_ERROR, "store_error", "%s", err);
		metrics_add(console_m_db_errors, 1, route_name(j), NULL, NULL);
		api_answer_error(j, 503, "store_unavailable", "the database is unavailable; try again later");
		return;
	}
	bool ok = true;
	char agent_id[64] = "";
	store_role_t need = j->need;
	if (need == STORE_ROLE_NONE) {
		ok = j->route == R_ENROLL ? do_enroll(j, sc) : dispatch(j, sc, agent_id);
		goto done;
	}
	int who = identify(j, sc, agent_id);
	if (who <= 0) {
		ok = who == 0;
		goto done;
	}
	bool agent = j->role == STORE_ROLE_AGENT;
	if (agent != (need == STORE_ROLE_AGENT)) {
		api_answer_error(j, 403, "forbidden",
			     need == STORE_ROLE_AGENT ? "this endpoint is for agents; an admin token cannot post as an agent"
						      : "an agent token cannot use the admin API");
		goto done;
	}
	if (!agent && j->role < need) {
		api_answer_error(j, 403, "forbidden", "this needs the %s role; this token is %s", store_role_name(need),
			     store_role_name(j->role));
		goto done;
	}
	snprintf(j->agent_id, sizeof j->agent_id, "%s", agent_id);
	ok = dispatch(j, sc, agent_id);
done:
	if (!ok) {
		free(j->body);
		j->body = NULL;
		store_failed(j, sc);
	}
	store_release(sc, !ok);
}

static void job_done(uv_work_t *w, int status)
{
	(void)status;
	job_t *j = w->data;
	console_t *c = j->c;
	c->jobs--;
	char code[8];
	snprintf(code, sizeof code, "%d", j->status);
	metrics_add(console_m_requests, 1, route_name(j), code, NULL);
	log_line_t l;
	if (log_enabled(LOG_INFO) && j->route != R_STATIC) {
		log_begin(&l, LOG_INFO, "request");
		log_kv_str(&l, "route", route_name(j));
		log_kv_u64(&l, "status", (uint64_t)j->status);
		if (j->agent_id[0])
			log_kv_str(&l, "agent", j->agent_id);
		if (j->route == R_EVENTS_POST && j->status == 200) {
			log_kv_u64(&l, "accepted", j->accepted);
			log_kv_u64(&l, "duplicates", j->duplicates);
		}
		if (j->code)
			log_kv_str(&l, "error", j->code);
		log_kv_u64(&l, "ms", uv_now(c->loop) - j->started);
		log_end(&l);
	}
	/* this console's own held polls learn of its admin's change now, not
	 * at the watcher's next check */
	if (j->targeting_changed)
		console_policy_changed(c);
	const char *body = j->body ? j->body : "";
	char extra[1280] = "";
	if (j->status == 503 && !strstr(j->extra, "Retry-After"))
		snprintf(extra, sizeof extra, "Retry-After: 1\r\n");
	if (j->raw_type)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "Content-Type: %s\r\n", j->raw_type);
	else if (j->text_type)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "Content-Type: %s; charset=utf-8\r\n",
			 j->text_type);
	snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s", j->extra);
	console_respond(j->k, j->status ? j->status : 500, body, j->body_len ? j->body_len : strlen(body),
			extra[0] ? extra : NULL);
	free(j->body);
	console_req_free(j->req);
	free(j);
}

void console_api_handle(console_conn_t *k, console_req_t *req)
{
	if (console_policy_route(k, req)) /* GET /api/v1/policy: longpoll.c */
		return;
	console_t *c = console_conn_owner(k);
	bool wrong_method;
	policy_route_t policy_route;
	store_role_t need;
	const char *name;
	route_t route = route_of(req, &wrong_method, &policy_route, &need, &name);
	int status = 0;
	const char *code = NULL, *detail = NULL;
	if (route == R_NONE)
		status = wrong_method ? 405 : 404, code = wrong_method ? "method_not_allowed" : "not_found",
		detail = wrong_method ? "wrong method for this endpoint" : "no such endpoint";
	else if (need != STORE_ROLE_NONE && (req->bad_auth || (!req->token[0] && !req->session[0])))
		status = 401, code = "unauthorized",
		detail = req->bad_auth ? "Authorization must be \"Bearer\" and a 64-hex-digit token"
				       : "no token: send Authorization: Bearer TOKEN (or sign in)";
	else if (route == R_EVENTS_POST && strncasecmp(req->content_type, "application/x-ndjson", 20) != 0)
		status = 415, code = "unsupported_media_type", detail = "events are Content-Type: application/x-ndjson";
	else if (route == R_EVENTS_POST && req->content_encoding[0] && strcasecmp(req->content_encoding, "gzip") != 0 &&
		 strcasecmp(req->content_encoding, "identity") != 0)
		status = 415, code = "unsupported_media_type", detail = "Content-Encoding must be gzip or none";
	else if (c->jobs >= CONSOLE_MAX_JOBS)
		status = 503, code = "overloaded", detail = "too many requests in progress";
	if (status) {
		log_line_t l;
		log_begin(&l, LOG_INFO, "request");
		log_kv_str(&l, "route", name);
		log_kv_u64(&l, "status", (uint64_t)status);
		log_kv_str(&l, "error", code);
		log_end(&l);
		console_req_free(req);
		console_respond_error(k, status, code, detail);
		return;
	}
	job_t *j = calloc(1, sizeof *j);
	if (!j) {
		console_req_free(req);
		console_respond_error(k, 503, "overloaded", "out of memory");
		return;
	}
	j->k = k;
	j->c = c;
	j->req = req;
	j->route = route;
	j->policy_route = policy_route;
	j->name = name;
	j->need = need;
	j->started = uv_now(c->loop);
	j->work.data = j;
	if (uv_queue_work(c->loop, &j->work, run_job, job_done) != 0) {
		console_req_free(req);
		free(j);
		console_respond_error(k, 503, "overloaded", "cannot queue the request");
		return;
	}
	c->jobs++;
}
