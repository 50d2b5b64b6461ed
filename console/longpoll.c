/*
 * longpoll: GET /api/v1/policy?wait=S (schemas/console-api.md, "Policy
 * distribution"), the agent's question "is there a policy for me other
 * than the ones I name in If-None-Match?".
 *
 * A request costs one job on the thread pool, as any agent request: the
 * token is looked up and the agent's labels read, with the policy
 * generation they are of. Everything after that is on the loop and in
 * memory: the offer is computed from the current snapshot (policy_watch.h)
 * and either answered (200 with the signed documents spliced in as they
 * are stored) or, when the agent already has it, held. A held poll is a
 * parked connection (server.c) plus a console_poll_t of about a hundred
 * bytes in a list; nothing per poll is queried again.
 *
 * When the watcher hands over a new snapshot, every held poll moves to the
 * "stale" list and an idle handle re-evaluates them a slice at a time, so
 * ten thousand answers never stall the loop for other clients. A poll is
 * answered 304 when its wait ends, when the agent sends another byte, and
 * when the console stops.
 *
 * Order of truth: a poll is never evaluated on a snapshot older than the
 * generation its job saw (it waits for the watcher, which is kicked), so a
 * console that lags another on the same database never offers an older
 * version than the agent may already have been given; and its labels are
 * replaced by a snapshot's only when that snapshot is at least as new.
 */
#include "console.h"

#include "core/log.h"
#include "policy_watch.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_DEFAULT_S 30
#define WAIT_MAX_S 300
/* Held polls re-evaluated per loop turn after a change. */
#define SWEEP_SLICE 1024
/* Distinct offers whose answer bodies are kept per snapshot. */
#define BODY_CACHE 16
/* A console at its hold limit asks agents to come back later than a
 * transient 503 would; they add their own jitter. */
#define HOLD_FULL_RETRY "Retry-After: 10\r\n"

struct console_poll {
	console_poll_t *prev, *next; /* in held or stale (circular, with a sentinel) */
	console_conn_t *k;
	json_t *labels;              /* NULL: none */
	int64_t labels_gen;          /* the generation the labels are of */
	int64_t min_gen;             /* not evaluated on an older snapshot */
	bool linked;                 /* in a list: held, its connection parked */
	char agent_id[40];
	char inm[];                  /* the If-None-Match it came with */
};

typedef struct console_policy {
	console_t *c;
	policy_watch_t *watch;
	policy_snapshot_t *now;
	console_poll_t held;   /* sentinel: evaluated against now */
	console_poll_t stale;  /* sentinel: to be evaluated against now */
	uv_idle_t sweeper;
	struct {
		rollout_offer_t offer;
		char *body;
		size_t len;
	} bodies[BODY_CACHE];
	size_t n_bodies;
} console_policy_t;

typedef struct {
	uv_work_t work;
	console_t *c;
	console_conn_t *k;
	console_req_t *req;
	uint32_t wait_ms;
	/* result */
	int status;
	const char *code, *detail;
	char agent_id[64];
	json_t *labels;
	int64_t generation;
} poll_job_t;

/* ---- lists ---- */

static void list_init(console_poll_t *head)
{
	head->prev = head->next = head;
}

static bool list_empty(const console_poll_t *head)
{
	return head->next == head;
}

static void list_push(console_poll_t *head, console_poll_t *p)
{
	p->prev = head->prev;
	p->next = head;
	head->prev->next = p;
	head->prev = p;
}

static void list_unlink(console_poll_t *p)
{
	p->prev->next = p->next;
	p->next->prev = p->prev;
	p->prev = p->next = p;
}

/* Moves every poll of from to the end of to. */
static void list_splice(console_poll_t *to, console_poll_t *from)
{
	if (list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

/* ---- answers ---- */

static void log_answer(const char *agent, int status, const char *code)
{
	if (!log_enabled(LOG_INFO))
		return;
	log_line_t l;
	log_begin(&l, LOG_INFO, "request");
	log_kv_str(&l, "route", "policy");
	log_kv_u64(&l, "status", (uint64_t)status);
	if (agent && agent[0])
		log_kv_str(&l, "agent", agent);
	if (code)
		log_kv_str(&l, "error", code);
	log_end(&l);
}

static void poll_free(console_policy_t *cp, console_poll_t *p)
{
	if (p->linked) {
		list_unlink(p);
		cp->c->held_polls--;
	}
	json_decref(p->labels);
	free(p);
}

/* Answers p's request and forgets p. */
static void poll_answer(console_policy_t *cp, console_poll_t *p, int status, const char *body, size_t len,
			const char *extra)
{
	console_conn_t *k = p->k;
	bool parked = p->linked;
	log_answer(p->agent_id, status, NULL);
	poll_free(cp, p);
	if (parked)
		console_conn_unpark(k);
	console_respond(k, status, body, len, extra);
}

static void bodies_clear(console_policy_t *cp)
{
	for (size_t i = 0; i < cp->n_bodies; i++)
		free(cp->bodies[i].body);
	cp->n_bodies = 0;
}

static void append_doc(bytebuf_t *b, const policy_doc_t *d)
{
	bytebuf_append_str(b, ",\"bundle\":");
	bytebuf_append(b, d->text, d->len);
	bytebuf_append_str(b, "}");
}

/* The 200 body of an offer, built once per snapshot; NULL when a document
 * is not held (policy_watch logged why). */
static const char *offer_body(console_policy_t *cp, const rollout_offer_t *o, size_t *len)
{
	for (size_t i = 0; i < cp->n_bodies; i++)
		if (!memcmp(&cp->bodies[i].offer, o, sizeof *o)) {
			*len = cp->bodies[i].len;
			return cp->bodies[i].body;
		}
	const policy_doc_t *active = o->active ? policy_snapshot_doc(cp->now, o->active) : NULL;
	const policy_doc_t *shadow = o->shadow ? policy_snapshot_doc(cp->now, o->shadow) : NULL;
	if ((o->active && !active) || (o->shadow && !shadow))
		return NULL;
	bytebuf_t b;
	bytebuf_init(&b, 0);
	bytebuf_append_str(&b, "{\"active\":");
	if (active) {
		bytebuf_appendf(&b, "{\"version\":%lld", (long long)o->active);
		append_doc(&b, active);
	} else {
		bytebuf_append_str(&b, "null");
	}
	bytebuf_append_str(&b, ",\"shadow\":");
	if (shadow) {
		bytebuf_appendf(&b, "{\"version\":%lld,\"sample_percent\":%d", (long long)o->shadow, o->sample_percent);
		append_doc(&b, shadow);
	} else {
		bytebuf_append_str(&b, "null");
	}
	if (!bytebuf_append_str(&b, "}")) {
		bytebuf_free(&b);
		return NULL;
	}
	*len = b.len;
	if (cp->n_bodies == BODY_CACHE)
		bodies_clear(cp); /* more distinct offers than kept: start over (callers copy at once) */
	cp->bodies[cp->n_bodies].offer = *o;
	cp->bodies[cp->n_bodies].body = b.data;
	cp->bodies[cp->n_bodies].len = b.len;
	return cp->bodies[cp->n_bodies++].body;
}

static void offer_of(console_policy_t *cp, console_poll_t *p, rollout_offer_t *o, char etag[48])
{
	policy_snapshot_t *s = cp->now;
	if (s->generation >= p->labels_gen) {
		json_t *l = json_object_get(s->labels, p->agent_id);
		json_decref(p->labels);
		p->labels = json_incref(l);
		p->labels_gen = s->generation;
	}
	rollout_offer(s->rollouts, s->n_rollouts, p->agent_id, p->labels, o);
	rollout_etag(o, etag);
}

static void answer_offer(console_policy_t *cp, console_poll_t *p, const rollout_offer_t *o, const char *etag)
{
	char extra[96];
	snprintf(extra, sizeof extra, "ETag: %s\r\n", etag);
	size_t len;
	const char *body = offer_body(cp, o, &len);
	if (!body) {
		poll_answer(cp, p, 503, "{\"error\":\"store_unavailable\",\"detail\":\"the bundle is not loaded; try "
					"again later\"}",
			    83, "Retry-After: 5\r\n");
		return;
	}
	poll_answer(cp, p, 200, body, len, extra);
}

/* The offer on the current snapshot: answered when it is not one the agent
 * has; true when p is still to be held. */
static bool evaluate(console_policy_t *cp, console_poll_t *p)
{
	if (cp->now->generation < p->min_gen)
		return true;
	rollout_offer_t o;
	char etag[48];
	offer_of(cp, p, &o, etag);
	if (rollout_etag_listed(p->inm, etag))
		return true;
	answer_offer(cp, p, &o, etag);
	return false;
}

/* The hold is over (wait, a byte from the agent, a stop): what it has is
 * still current (304), or the offer changed after all (200). */
static void release(console_policy_t *cp, console_poll_t *p)
{
	p->min_gen = 0;
	rollout_offer_t o;
	char etag[48];
	offer_of(cp, p, &o, etag);
	if (!rollout_etag_listed(p->inm, etag)) {
		answer_offer(cp, p, &o, etag);
		return;
	}
	char extra[96];
	snprintf(extra, sizeof extra, "ETag: %s\r\n", etag);
	poll_answer(cp, p, 304, NULL, 0, extra);
}

void console_poll_expired(console_poll_t *p)
{
	release(console_conn_owner(p->k)->policy, p);
}

void console_poll_interrupted(console_poll_t *p)
{
	release(console_conn_owner(p->k)->policy, p);
}

void console_poll_gone(console_poll_t *p)
{
	poll_free(console_conn_owner(p->k)->policy, p);
}

/* ---- new snapshots ---- */

static void sweep(uv_idle_t *h)
{
	console_policy_t *cp = h->data;
	for (int i = 0; i < SWEEP_SLICE && !list_empty(&cp->stale); i++) {
		console_poll_t *p = cp->stale.next;
		list_unlink(p);
		list_push(&cp->held, p); /* still parked; answering it unlinks it */
		evaluate(cp, p);
	}
	if (list_empty(&cp->stale))
		uv_idle_stop(h);
}

static void on_snapshot(void *ud, policy_snapshot_t *s)
{
	console_policy_t *cp = ud;
	if (log_enabled(LOG_INFO)) {
		log_line_t l;
		log_begin(&l, LOG_INFO, "policy_change");
		log_kv_u64(&l, "generation", (uint64_t)s->generation);
		log_kv_u64(&l, "rollouts", s->n_rollouts);
		log_kv_u64(&l, "held_polls", cp->c->held_polls);
		log_end(&l);
	}
	bodies_clear(cp);
	policy_snapshot_free(cp->now);
	cp->now = s;
	list_splice(&cp->stale, &cp->held);
	if (!list_empty(&cp->stale))
		uv_idle_start(&cp->sweeper, sweep);
}

/* ---- the request ---- */

static void refuse(console_conn_t *k, console_req_t *req, int status, const char *code, const char *detail)
{
	log_answer(NULL, status, code);
	console_req_free(req);
	console_respond_error(k, status, code, detail);
}

/* wait=S, the only parameter; 0 with the message when it is malformed. */
static uint32_t wait_of(const char *query, char *err, size_t errlen)
{
	console_params_t p;
	if (!console_params_parse(query, &p, err, errlen)) {
		console_params_free(&p);
		return 0;
	}
	long s = WAIT_DEFAULT_S;
	for (int i = 0; i < p.n; i++) {
		char *end;
		if (strcmp(p.names[i], "wait") != 0) {
			snprintf(err, errlen, "unknown parameter \"%.40s\" (the one there is: wait)", p.names[i]);
			s = 0;
			break;
		}
		s = strtol(p.values[i], &end, 10);
		if (!p.values[i][0] || *end || s < 1 || s > WAIT_MAX_S) {
			snprintf(err, errlen, "parameter \"wait\" must be 1..%d seconds", WAIT_MAX_S);
			s = 0;
			break;
		}
	}
	console_params_free(&p);
	return (uint32_t)s * 1000;
}

static void run_auth(uv_work_t *w)
{
	poll_job_t *j = w->data;
	char err[512];
	store_conn_t *sc = store_acquire(j->c->store, err, sizeof err);
	if (!sc) {
		log_msg(LOG_ERROR, "store_error", "policy: %s", err);
		j->status = 503, j->code = "store_unavailable", j->detail = "the database is unavailable; try again later";
		return;
	}
	char hash[65];
	store_role_t role;
	console_sha256_hex(j->req->token, hash);
	int r = store_token_lookup(sc, hash, &role, j->agent_id);
	if (r == 0 && role == STORE_ROLE_AGENT)
		r = policy_read_begin(sc) ? 0 : -1;
	if (r == 0 && role == STORE_ROLE_AGENT) {
		const store_driver_t *d = sc->st->drv;
		int lr = store_policy_generation(sc, &j->generation);
		if (lr == 0)
			lr = store_agent_labels(sc, j->agent_id, &j->labels);
		if (lr < 0 || !d->commit(sc)) {
			d->rollback(sc);
			r = -1;
		} else {
			r = lr;
		}
	}
	if (r < 0) {
		log_msg(LOG_ERROR, "store_error", "policy: %s", store_conn_error(sc));
		j->status = 503, j->code = "store_unavailable", j->detail = "the database failed; try again later";
	} else if (r == STORE_NOT_FOUND) {
		j->status = 401, j->code = "unauthorized", j->detail = "unknown token";
	} else if (role != STORE_ROLE_AGENT) {
		j->status = 403, j->code = "forbidden", j->detail = "this endpoint is for agents";
	}
	store_release(sc, r < 0);
}

static void auth_done(uv_work_t *w, int status)
{
	(void)status;
	poll_job_t *j = w->data;
	console_t *c = j->c;
	console_policy_t *cp = c->policy;
	c->jobs--;
	console_req_t *req = j->req;
	size_t inm_len = req->if_none_match ? strlen(req->if_none_match) : 0;
	console_poll_t *p = NULL;
	if (!j->status && !cp)
		j->status = 503, j->code = "stopping", j->detail = "the console is stopping";
	else if (!j->status && console_conn_open(j->k) && !(p = calloc(1, sizeof *p + inm_len + 1)))
		j->status = 503, j->code = "overloaded", j->detail = "out of memory";
	if (j->status || !p) {
		if (j->status)
			log_answer(j->agent_id, j->status, j->code);
		console_respond_error(j->k, j->status ? j->status : 503, j->code ? j->code : "gone", j->detail ? j->detail : "");
		json_decref(j->labels);
		console_req_free(req);
		free(j);
		return;
	}
	p->k = j->k;
	str_copy(p->agent_id, sizeof p->agent_id, j->agent_id); /* a UUID: 36 */
	if (json_object_size(j->labels))
		p->labels = json_incref(j->labels);
	p->labels_gen = p->min_gen = j->generation;
	memcpy(p->inm, req->if_none_match ? req->if_none_match : "", inm_len + 1);
	uint32_t wait_ms = j->wait_ms;
	json_decref(j->labels);
	console_req_free(req);
	free(j);
	if (!evaluate(cp, p))
		return;
	if (c->held_polls >= c->cfg.max_held_polls) {
		console_conn_t *k = p->k;
		log_answer(p->agent_id, 503, "too_many_held");
		poll_free(cp, p);
		console_respond(k, 503, "{\"error\":\"overloaded\",\"detail\":\"this console holds as many polls as "
					   "it may (--max-held-polls); try again later\"}", 106, HOLD_FULL_RETRY);
		return;
	}
	if (cp->now->generation < p->min_gen)
		policy_watch_kick(cp->watch); /* the agent saw a newer generation than we hold */
	list_push(&cp->held, p);
	p->linked = true;
	c->held_polls++;
	console_conn_park(p->k, p, wait_ms);
}

bool console_policy_route(console_conn_t *k, console_req_t *req)
{
	if (strcmp(req->path, "/api/v1/policy") != 0)
		return false;
	console_t *c = console_conn_owner(k);
	char err[256];
	uint32_t wait_ms = 0;
	if (strcmp(req->method, "GET") != 0)
		refuse(k, req, 405, "method_not_allowed", "wrong method for this endpoint");
	else if (!req->token[0] || req->bad_auth)
		refuse(k, req, 401, "unauthorized",
		       req->bad_auth ? "Authorization must be \"Bearer\" and a 64-hex-digit token"
				     : "no token: send Authorization: Bearer TOKEN");
	else if (!(wait_ms = wait_of(req->query, err, sizeof err)))
		refuse(k, req, 400, "bad_parameter", err);
	else if (req->if_none_match && strcmp(req->if_none_match, "?") == 0)
		refuse(k, req, 431, "too_large", "If-None-Match names more than a few versions");
	else if (c->jobs >= CONSOLE_MAX_JOBS)
		refuse(k, req, 503, "overloaded", "too many requests in progress");
	else
		goto queue;
	return true;
queue:;
	poll_job_t *j = calloc(1, sizeof *j);
	if (!j) {
		refuse(k, req, 503, "overloaded", "out of memory");
		return true;
	}
	j->c = c, j->k = k, j->req = req, j->wait_ms = wait_ms;
	j->work.data = j;
	if (uv_queue_work(c->loop, &j->work, run_auth, auth_done) != 0) {
		free(j);
		refuse(k, req, 503, "overloaded", "cannot queue the request");
		return true;
	}
	c->jobs++;
	return true;
}

/* ---- start and stop ---- */

bool console_policy_start(console_t *c, char *err, size_t errlen)
{
	console_policy_t *cp = calloc(1, sizeof *cp);
	if (!cp) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	cp->c = c;
	list_init(&cp->held);
	list_init(&cp->stale);
	cp->watch = policy_watch_start(c->store, c->loop, on_snapshot, cp, &cp->now, err, errlen);
	if (!cp->watch) {
		free(cp);
		return false;
	}
	uv_idle_init(c->loop, &cp->sweeper);
	cp->sweeper.data = cp;
	c->policy = cp;
	return true;
}

void console_policy_changed(console_t *c)
{
	if (c->policy)
		policy_watch_kick(c->policy->watch);
}

static void on_sweeper_closed(uv_handle_t *h)
{
	console_policy_t *cp = h->data;
	bodies_clear(cp);
	policy_snapshot_free(cp->now);
	free(cp);
}

void console_policy_stop(console_t *c)
{
	console_policy_t *cp = c->policy;
	if (!cp)
		return;
	list_splice(&cp->held, &cp->stale);
	while (!list_empty(&cp->held))
		release(cp, cp->held.next);
	policy_watch_stop(cp->watch);
	c->policy = NULL; /* jobs still on the pool answer 503 */
	uv_close((uv_handle_t *)&cp->sweeper, on_sweeper_closed);
}
