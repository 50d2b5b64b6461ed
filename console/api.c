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
 * Authorization is decided in one place (run_job) before any handler: the
 * route says which role it needs, an agent token on an admin route is 403,
 * and a handler for agents only ever sees its own agent id.
 */
#include "core/metrics.h"
#include "console.h"

#include "core/log.h"
#include "ingest.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { R_NONE, R_ENROLL, R_EVENTS_POST, R_STATUS, R_EVENTS_LIST, R_EVENT_GET, R_AGENTS, R_STATS } route_t;

typedef struct {
	uv_work_t work;
	console_conn_t *k;
	console_t *c;
	console_req_t *req;
	route_t route;
	uint64_t started;
	/* answer */
	int status;
	char *body;
	const char *code;
	/* for the log line */
	char agent_id[64];
	size_t accepted, duplicates;
} job_t;

size_t console_api_body_limit(const char *method, const char *path)
{
	if (strcmp(method, "POST") == 0 && strcmp(path, "/api/v1/events") == 0)
		return CONSOLE_MAX_WIRE_BODY;
	return CONSOLE_MAX_SMALL_BODY;
}

static route_t route_of(const console_req_t *r, bool *wrong_method)
{
	const char *p = r->path, *m = r->method;
	bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
	route_t want = R_NONE;
	bool ok = false;
	if (strcmp(p, "/api/v1/enroll") == 0)
		want = R_ENROLL, ok = post;
	else if (strcmp(p, "/api/v1/status") == 0)
		want = R_STATUS, ok = post;
	else if (strcmp(p, "/api/v1/events") == 0)
		want = post ? R_EVENTS_POST : R_EVENTS_LIST, ok = post || get;
	else if (strncmp(p, "/api/v1/events/", 15) == 0 && p[15] && !strchr(p + 15, '/'))
		want = R_EVENT_GET, ok = get;
	else if (strcmp(p, "/api/v1/agents") == 0)
		want = R_AGENTS, ok = get;
	else if (strcmp(p, "/api/v1/stats") == 0)
		want = R_STATS, ok = get;
	*wrong_method = want != R_NONE && !ok;
	return ok ? want : R_NONE;
}

static const char *route_name(route_t r)
{
	static const char *const names[] = {"none",	    "enroll", "events_post", "status",
					    "events_list", "event",  "agents",	     "stats"};
	return names[r];
}

/* ---- answers built on the pool thread ---- */

static void answer_json(job_t *j, int status, json_t *o)
{
	j->status = status;
	j->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (o && !j->body)
		j->status = 500;
}

static void answer_error(job_t *j, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void answer_error(job_t *j, int status, const char *code, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	j->code = code;
	answer_json(j, status, json_pack("{s:s, s:s}", "error", code, "detail", detail));
}

static void store_failed(job_t *j, store_conn_t *sc)
{
	metrics_add(console_m_db_errors, 1, route_name(j->route), NULL, NULL);
	log_msg(LOG_ERROR, "store_error", "%s: %s", route_name(j->route), store_conn_error(sc));
	answer_error(j, 503, "store_unavailable", "the database failed; try again later");
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
		answer_error(j, 400, "bad_json", "the body must be a JSON object");
		return true;
	}
	const char *secret = json_str(o, "enroll_secret", 1024), *id = json_str(o, "agent_id", 64),
		   *host = json_str(o, "hostname", 255), *ver = json_str(o, "version", 64);
	if (!secret) {
		answer_error(j, 400, "bad_request", "\"enroll_secret\" is missing or not a string");
	} else if (!console_secret_equal(secret, j->c->enroll_secret)) {
		answer_error(j, 401, "unauthorized", "wrong enroll secret");
	} else if (!id || !console_is_uuid(id)) {
		answer_error(j, 400, "bad_request", "\"agent_id\" must be a lowercase UUID");
	} else if (!host || !ver) {
		answer_error(j, 400, "bad_request", "\"hostname\" (at most 255) and \"version\" (at most 64) are required strings");
	} else {
		char token[72], hash[65], now[64];
		console_random_hex(token, 32);
		console_sha256_hex(token, hash);
		console_time_format(console_now_ms(), now);
		if (store_enroll(sc, id, host, ver, hash, now, NULL) != 0) {
			OPENSSL_cleanse(token, sizeof token);
			json_decref(o);
			return false;
		}
		snprintf(j->agent_id, sizeof j->agent_id, "%s", id);
		answer_json(j, 200, json_pack("{s:s, s:s}", "agent_id", id, "token", token));
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
		answer_error(j, st, st == 413 ? "too_large" : st == 403 ? "forbidden" : "bad_event", "%s", err);
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
	answer_json(j, 200, json_pack("{s:I, s:I}", "accepted", (json_int_t)j->accepted, "duplicates",
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
		answer_error(j, 400, "bad_json", "the body must be a JSON object");
		return true;
	}
	const char *id = json_string_value(json_object_get(o, "agent_id"));
	if (!id || strcmp(id, agent_id) != 0) {
		json_decref(o);
		answer_error(j, 403, "forbidden", "\"agent_id\" is not the agent this token belongs to");
		return true;
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

/* Filters shared by the event list and stats; names the bad parameter. */
static bool read_filters(job_t *j, console_params_t *p, store_filter_t *f, bool list, const char **by,
			 int64_t *bucket_ms)
{
	static const char *const kinds[] = {"verdict", "flow", "spool_drop", "shadow"};
	memset(f, 0, sizeof *f);
	f->limit = 100;
	char err[256];
	if (!console_params_parse(j->req->query, p, err, sizeof err)) {
		answer_error(j, 400, "bad_parameter", "%s", err);
		return false;
	}
	for (int i = 0; i < p->n; i++) {
		const char *n = p->names[i], *v = p->values[i];
		for (int k = 0; k < i; k++)
			if (strcmp(p->names[k], n) == 0) {
				answer_error(j, 400, "bad_parameter", "parameter \"%.40s\" is given twice", n);
				return false;
			}
		if (strlen(v) > 1024) {
			answer_error(j, 400, "bad_parameter", "parameter \"%.40s\" is longer than 1024 bytes", n);
			return false;
		}
		/* "since=&until=" from a form: an empty value is no filter */
		static const char *const known[] = {"verdict", "detector", "host", "app",    "agent", "kind",
						    "since",   "until",    "limit", "cursor", "by",    "bucket"};
		bool is_known = false;
		for (size_t x = 0; x < sizeof known / sizeof known[0]; x++)
			is_known |= strcmp(n, known[x]) == 0 && (list ? x < 10 : (x < 8 || x >= 10));
		if (!*v && is_known)
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
		else if (strcmp(n, "kind") == 0) {
			f->kind = v;
			if (strcmp(v, kinds[0]) && strcmp(v, kinds[1]) && strcmp(v, kinds[2]) && strcmp(v, kinds[3])) {
				answer_error(j, 400, "bad_parameter", "parameter \"kind\" must be verdict, flow, spool_drop or shadow");
				return false;
			}
		} else if (strcmp(n, "since") == 0 || strcmp(n, "until") == 0) {
			bool since = n[0] == 's';
			if (!console_time_parse(v, since ? &f->since_ms : &f->until_ms)) {
				answer_error(j, 400, "bad_parameter", "parameter \"%s\" must be an RFC 3339 time, e.g. "
					     "2026-01-31T12:00:00Z", n);
				return false;
			}
			*(since ? &f->has_since : &f->has_until) = true;
		} else if (list && strcmp(n, "limit") == 0) {
			char *end;
			long l = strtol(v, &end, 10);
			if (!*v || *end || l < 1 || l > 1000) {
				answer_error(j, 400, "bad_parameter", "parameter \"limit\" must be 1..1000");
				return false;
			}
			f->limit = (int)l;
		} else if (list && strcmp(n, "cursor") == 0) {
			if (!console_cursor_parse(v, &f->cursor_ts, &f->cursor_seq)) {
				answer_error(j, 400, "bad_parameter", "parameter \"cursor\" is not a cursor this console gave");
				return false;
			}
			f->has_cursor = true;
		} else if (!list && strcmp(n, "by") == 0) {
			*by = v;
		} else if (!list && strcmp(n, "bucket") == 0) {
			*bucket_ms = strcmp(v, "minute") == 0 ? 60000 : strcmp(v, "hour") == 0 ? 3600000
				   : strcmp(v, "day") == 0    ? 86400000
							      : 0;
			if (!*bucket_ms) {
				answer_error(j, 400, "bad_parameter", "parameter \"bucket\" must be minute, hour or day");
				return false;
			}
		} else {
			answer_error(j, 400, "bad_parameter", "unknown parameter \"%.40s\"", n);
			return false;
		}
	}
	return true;
}

static bool do_events_list(job_t *j, store_conn_t *sc)
{
	console_params_t p;
	store_filter_t f;
	if (!read_filters(j, &p, &f, true, NULL, NULL)) {
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
	char cursor[40];
	console_cursor_format(ts, seq, cursor);
	answer_json(j, 200, json_pack("{s:o, s:o}", "events", events, "next_cursor", more ? json_string(cursor) : json_null()));
	return true;
}

static bool do_event_get(job_t *j, store_conn_t *sc)
{
	const char *id = j->req->path + 15;
	char *text = NULL;
	int r = console_is_uuid(id) ? store_get_event(sc, id, &text) : STORE_NOT_FOUND;
	if (r < 0)
		return false;
	if (r == STORE_NOT_FOUND) {
		answer_error(j, 404, "not_found", "no event with this id");
		return true;
	}
	j->status = 200;
	j->body = text;
	return true;
}

static bool do_agents(job_t *j, store_conn_t *sc)
{
	json_t *a = json_array();
	if (store_list_agents(sc, a) != 0) {
		json_decref(a);
		return false;
	}
	answer_json(j, 200, json_pack("{s:o}", "agents", a));
	return true;
}

static bool do_stats(job_t *j, store_conn_t *sc)
{
	console_params_t p;
	store_filter_t f;
	const char *by = NULL;
	int64_t bucket = 3600000;
	if (!read_filters(j, &p, &f, false, &by, &bucket)) {
		console_params_free(&p);
		return true;
	}
	static const char *const bys[] = {"verdict", "detector", "app", "host", "time", NULL};
	const char *const *b = bys;
	while (by && *b && strcmp(*b, by) != 0)
		b++;
	if (!by || !*b) {
		console_params_free(&p);
		answer_error(j, 400, "bad_parameter", "parameter \"by\" must be verdict, detector, app, host or time");
		return true;
	}
	json_t *counts = json_array();
	int r = store_stats(sc, &f, *b, bucket, counts);
	console_params_free(&p);
	if (r != 0) {
		json_decref(counts);
		return false;
	}
	answer_json(j, 200, json_pack("{s:s, s:o}", "by", *b, "counts", counts));
	return true;
}

/* ---- the job ---- */

static void run_job(uv_work_t *w)
{
	job_t *j = w->data;
	char err[512];
	store_conn_t *sc = store_acquire(j->c->store, err, sizeof err);
	if (!sc) {
		log_msg(LOG_ERROR, "store_error", "%s", err);
		metrics_add(console_m_db_errors, 1, route_name(j->route), NULL, NULL);
		answer_error(j, 503, "store_unavailable", "the database is unavailable; try again later");
		return;
	}
	bool ok = true;
	if (j->route == R_ENROLL) {
		ok = do_enroll(j, sc);
		goto done;
	}
	char hash[65], agent_id[64];
	store_role_t role;
	console_sha256_hex(j->req->token, hash);
	int r = store_token_lookup(sc, hash, &role, agent_id);
	if (r < 0) {
		ok = false;
		goto done;
	}
	if (r == STORE_NOT_FOUND) {
		answer_error(j, 401, "unauthorized", "unknown token");
		goto done;
	}
	bool agent_route = j->route == R_EVENTS_POST || j->route == R_STATUS;
	if ((role == STORE_ROLE_AGENT) != agent_route) {
		answer_error(j, 403, "forbidden",
			     agent_route ? "this endpoint is for agents; an admin token cannot post as an agent"
					 : "an agent token cannot use the admin API");
		goto done;
	}
	snprintf(j->agent_id, sizeof j->agent_id, "%s", agent_id);
	switch (j->route) {
	case R_EVENTS_POST: ok = do_events_post(j, sc, agent_id); break;
	case R_STATUS: ok = do_status(j, sc, agent_id); break;
	case R_EVENTS_LIST: ok = do_events_list(j, sc); break;
	case R_EVENT_GET: ok = do_event_get(j, sc); break;
	case R_AGENTS: ok = do_agents(j, sc); break;
	case R_STATS: ok = do_stats(j, sc); break;
	default: answer_error(j, 404, "not_found", "no such endpoint"); break;
	}
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
	metrics_add(console_m_requests, 1, route_name(j->route), code, NULL);
	log_line_t l;
	if (log_enabled(LOG_INFO)) {
		log_begin(&l, LOG_INFO, "request");
		log_kv_str(&l, "route", route_name(j->route));
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
	const char *body = j->body ? j->body : "";
	console_respond(j->k, j->status ? j->status : 500, body, strlen(body),
			j->status == 503 ? "Retry-After: 1\r\n" : NULL);
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
	route_t route = route_of(req, &wrong_method);
	int status = 0;
	const char *code = NULL, *detail = NULL;
	if (route == R_NONE)
		status = wrong_method ? 405 : 404, code = wrong_method ? "method_not_allowed" : "not_found",
		detail = wrong_method ? "wrong method for this endpoint" : "no such endpoint";
	else if (route != R_ENROLL && (!req->token[0] || req->bad_auth))
		status = 401, code = "unauthorized",
		detail = req->bad_auth ? "Authorization must be \"Bearer\" and a 64-hex-digit token"
				       : "no token: send Authorization: Bearer TOKEN";
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
		log_kv_str(&l, "route", route_name(route));
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
