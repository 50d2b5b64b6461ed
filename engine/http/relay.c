/*
 * relay: see relay.h.
 *
 * Data flow for one read: side -> relay_*_data() -> feed() -> codec
 * callbacks -> emit() into a staging block per direction -> flush() at the
 * end of the read, so a read of many small pieces (a head, chunk framing,
 * body spans) leaves as one write, and as few TLS records as possible.
 *
 * When the relay must stop parsing one direction (pipeline full, waiting
 * for a response to an Upgrade, for a dial, or for earlier responses before
 * a local reply), the unparsed bytes move to a held buffer and that side
 * stops reading; resume() feeds them back first. Held bytes are bounded by
 * one read plus the header limit.
 */
#include "http/relay.h"

#include "core/log.h"
#include "core/stats.h"
#include "detect/mask.h"
#include "flow.h"
#include "http/codec.h"
#include "http/coach.h"
#include "http/inspect.h"
#include "http/reply.h"
#include "http/wsrelay.h"
#include "http/tailscan.h"
#include "net/worker.h"
#include "report/event.h"
#include "report/report.h"
#include "sources/explicit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { RELAY_PROXY, RELAY_ORIGIN, RELAY_REPORT } relay_mode_t;

typedef struct {
	bool head;      /* HEAD: the response has no body */
	bool upgrade;   /* asked to switch protocols */
	bool close;     /* asked to close after the response */
	http_head_t *req; /* what on_response sees of the request, if it runs */
} pending_t;

/* A message held for inspection: its head is the codec's, its body (as
 * received: framing removed, coding kept) accumulates here up to
 * inspect.max_bytes. Past that the policy decides on the prefix and the
 * rest streams (decided). */
typedef struct {
	bool on;
	bool decided;
	bool gateway;       /* for the gateway itself (http/coach.h), never forwarded */
	bytebuf_t body;
	uint64_t limit;     /* held up to this: inspect.max_bytes, or documents.max_hold for a document */
	uint64_t since_ns;  /* when the head arrived: the event's latency */
	bool streaming;     /* past the limit: the rest is scanned in windows (tailscan.h) */
	tail_t tail;
} hold_t;

typedef struct relay {
	flow_t *f;
	relay_mode_t mode;
	http_codec_t req, res;

	pending_t *pending;     /* ring of requests sent and not yet answered */
	uint32_t p_first, p_count, p_cap;

	bytebuf_t held_client;      /* client bytes not parsed while paused */
	bool client_paused;     /* req codec stopped mid-stream (held_client) */
	bool client_upgrade;    /* ... at an Upgrade / CONNECT boundary */

	bool req_forward, req_chunked;  /* the request being parsed goes upstream */
	bool res_forward, res_chunked;
	bool res_interim;       /* the response being parsed is 1xx */
	bool res_started;       /* some of the front response was sent to the client */
	bool inspect;           /* message hooks apply (not for bypassed proxy routes) */
	bool client_eof;
	bool close_after;       /* close once the current response is out */
	bool route_wait;        /* proxy: a request waits for earlier responses before re-routing */
	bool routing;           /* proxy: dialling a new upstream */
	bool connect_requested; /* proxy: CONNECT parsed, hand over after feed */
	bool local_pending;     /* a reply of ours waits for earlier responses */
	bool done;              /* the flow is finishing: parse nothing more */
	bool sniff;             /* TLS just came up: is what it carries HTTP? */
	bytebuf_t local_reply;
	char reply_note[200];   /* "403 blocked: why", for the flow's log line */
	char authority[300];    /* proxy: where the upstream connection goes */
	char route_authority[300]; /* proxy: where the request being routed goes */
	char route_host[256];
	uint16_t route_port;

	hold_t hreq, hres;

	iobuf_t *to_upstream, *to_client;
	struct wsrelay *ws;     /* after a WebSocket 101 */
} relay_t;

static bool feed_client(relay_t *r, const char *data, size_t len);
static void feed_upstream(relay_t *r, const char *data, size_t len);
static void after_response(relay_t *r);
static void gateway_answer(relay_t *r, http_head_t *h, const bytebuf_t *body, bool complete);

/* ---- output ---- */

/* Hands a staging block to its side. */
static bool flush_stage(relay_t *r, bool to_upstream)
{
	iobuf_t **stage = to_upstream ? &r->to_upstream : &r->to_client;
	side_t *s = to_upstream ? &r->f->upstream : &r->f->client;
	iobuf_t *b = *stage;
	*stage = NULL;
	if (!b || b->len == 0) {
		iobuf_put(b);
		return true;
	}
	return side_write_block(s, b);
}

static void flush(relay_t *r)
{
	if (!flush_stage(r, true))
		flow_close(r->f, "error", "upstream gone while writing");
	if (!flush_stage(r, false))
		flow_close(r->f, "error", "client gone while writing");
}

static bool emit(relay_t *r, bool to_upstream, const void *data, size_t len)
{
	iobuf_t **stage = to_upstream ? &r->to_upstream : &r->to_client;
	while (len) {
		if (!*stage) {
			*stage = iobuf_get(r->f->w);
			if (!*stage)
				return false;
		}
		iobuf_t *b = *stage;
		size_t n = IOBUF_CAP - b->len;
		if (n > len)
			n = len;
		memcpy(b->data + b->len, data, n);
		b->len += n;
		data = (const char *)data + n;
		len -= n;
		if (b->len == IOBUF_CAP && !flush_stage(r, to_upstream))
			return false;
	}
	return true;
}

static bool emit_head(relay_t *r, bool to_upstream, const http_head_t *h)
{
	bytebuf_t *scratch = &r->f->w->scratch;
	scratch->len = 0;
	return http_head_serialize(h, scratch) && emit(r, to_upstream, scratch->data, scratch->len);
}

static bool emit_chunk(relay_t *r, bool to_upstream, const char *data, size_t len)
{
	char line[24];
	int n = snprintf(line, sizeof line, "%zx\r\n", len);
	return emit(r, to_upstream, line, (size_t)n) && emit(r, to_upstream, data, len) &&
	       emit(r, to_upstream, "\r\n", 2);
}

/* Trailers are forwarded, minus the fields that may never be trailers. */
static bool emit_last_chunk(relay_t *r, bool to_upstream, http_head_t *trailers)
{
	if (!emit(r, to_upstream, "0\r\n", 3))
		return false;
	if (trailers) {
		static const char *const banned[] = {"content-length", "transfer-encoding", "host", "connection",
						     "trailer", "content-encoding", "content-type"};
		for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
			http_head_remove(trailers, banned[i]);
		for (uint32_t i = 0; i < trailers->n_fields; i++) {
			const http_field_t *fl = &trailers->fields[i];
			if (fl->dead)
				continue;
			const char *a = trailers->arena.data;
			if (!emit(r, to_upstream, a + fl->name_off, fl->name_len) || !emit(r, to_upstream, ": ", 2) ||
			    !emit(r, to_upstream, a + fl->value_off, fl->value_len) || !emit(r, to_upstream, "\r\n", 2))
				return false;
		}
	}
	return emit(r, to_upstream, "\r\n", 2);
}

/* A body span on its way: re-chunked, or as it is. Large spans of a body
 * with a length go straight to the side (what was staged first), saving a
 * copy of every bulk byte. */
static bool emit_body(relay_t *r, bool to_upstream, bool chunked, const char *data, size_t len)
{
	if (chunked)
		return emit_chunk(r, to_upstream, data, len);
	if (len < 4096)
		return emit(r, to_upstream, data, len);
	return flush_stage(r, to_upstream) && side_write(to_upstream ? &r->f->upstream : &r->f->client, data, len);
}

/* ---- replies of our own ---- */

static bool method_is(const http_head_t *h, const char *m)
{
	size_t n = strlen(m);
	return h->method_len == n && !memcmp(http_head_str(h, h->method_off), m, n);
}

static void finish(relay_t *r, const char *end, const char *detail)
{
	r->done = true;
	flush(r);
	flow_finish(r->f, end, "%s", detail ? detail : "");
}

bool relay_end_if_at_rest(relay_t *r)
{
	if (r->done || !r->f->requests || r->p_count || r->routing || r->held_client.len ||
	    http_codec_mid_message(&r->req))
		return false;
	finish(r, "shutdown", "between messages");
	return true;
}

static void send_local_reply(relay_t *r)
{
	r->local_pending = false;
	emit(r, false, r->local_reply.data, r->local_reply.len);
	bytebuf_free(&r->local_reply);
	finish(r, "local-reply", r->reply_note);
}

/* Answers the client ourselves and ends the connection: now if nothing is
 * outstanding, else after the responses the client is still owed. */
static void reply_send(relay_t *r, reply_t *rp, const http_head_t *req)
{
	flow_t *f = r->f;
	rp->flow_id = f->id;
	rp->head_only = req && method_is(req, "HEAD");
	r->local_reply.len = 0;
	reply_build(&r->local_reply, rp, req);
	r->done = true;
	r->req_forward = false;
	side_read(&f->client, false);
	log_line_t l;
	log_begin(&l, rp->status >= 500 ? LOG_WARN : LOG_INFO, "local_reply");
	log_kv_u64(&l, "flow", f->id);
	log_kv_u64(&l, "status", (uint64_t)rp->status);
	log_kv_str(&l, "code", rp->code);
	log_kv_str(&l, "detail", rp->detail);
	log_kv_str(&l, "rule", rp->rule);
	log_kv_str(&l, "event", rp->event_id);
	log_end(&l);
	snprintf(r->reply_note, sizeof r->reply_note, "%d %s: %s", rp->status, rp->code, rp->detail);
	if (r->p_count == 0 && !r->res_started) {
		send_local_reply(r);
		return;
	}
	r->local_pending = true;
}

static void reply_local(relay_t *r, int status, const char *code, const char *title, const char *detail,
			const http_head_t *req)
{
	reply_t rp = {.status = status, .code = code, .title = title, .detail = detail};
	reply_send(r, &rp, req);
}

/* A flow-stage block (on_flow, on_uninspectable): the page names the rule
 * and the event, as a message block's does. */
static void reply_flow_block(relay_t *r, const http_head_t *req)
{
	flow_t *f = r->f;
	reply_t rp = {.status = 403, .code = "blocked", .title = "Blocked by policy", .detail = f->verdict.reason,
		      .rule = f->verdict.rule, .event_id = f->event_id[0] ? f->event_id : NULL};
	reply_send(r, &rp, req);
}

/* ---- pending requests ---- */

static bool pending_push(relay_t *r, pending_t p)
{
	if (r->p_count == r->p_cap) {
		uint32_t cap = r->p_cap ? r->p_cap * 2 : 4;
		pending_t *n = malloc(cap * sizeof *n);
		if (!n)
			return false;
		for (uint32_t i = 0; i < r->p_count; i++)
			n[i] = r->pending[(r->p_first + i) % r->p_cap];
		free(r->pending);
		r->pending = n;
		r->p_cap = cap;
		r->p_first = 0;
	}
	r->pending[(r->p_first + r->p_count) % r->p_cap] = p;
	r->p_count++;
	return true;
}

static pending_t *pending_front(relay_t *r)
{
	return r->p_count ? &r->pending[r->p_first] : NULL;
}

static void pending_pop(relay_t *r)
{
	pending_t *p = &r->pending[r->p_first];
	if (p->req) {
		http_head_free(p->req);
		free(p->req);
		p->req = NULL;
	}
	r->p_first = (r->p_first + 1) % r->p_cap;
	r->p_count--;
}

/* Drops every pending entry (the connection ends without their answers). */
static void pending_drop(relay_t *r)
{
	while (r->p_count)
		pending_pop(r);
}

/* ---- request side ---- */

static void keepalive_wait(relay_t *r)
{
	flow_t *f = r->f;
	if (r->p_count == 0 && !http_codec_mid_message(&r->req)) {
		flow_deadline(f, 0, NULL);
		flow_idle(f, f->eng->cfg.keepalive_timeout_ms);
	}
}

static int req_begin(void *ud)
{
	relay_t *r = ud;
	flow_t *f = r->f;
	if (r->done)
		return HTTP_CB_PAUSE;
	if (r->p_count >= f->eng->cfg.pipeline_depth)
		return HTTP_CB_PAUSE; /* resumed when a response completes */
	flow_deadline(f, f->eng->cfg.header_timeout_ms, "request head");
	flow_idle(f, f->eng->cfg.idle_timeout_ms);
	return HTTP_CB_GO;
}

/* ---- decisions ---- */

static bool has_body(const http_head_t *h)
{
	return h->chunked || (h->has_length && h->content_length > 0);
}

/* Is this decision worth an event? Anything but a plain pass, anything a
 * detector found, anything the policy could not see. */
static bool eventful(const verdict_t *v, const policy_msg_t *m, const char *note)
{
	if (v->kind == VERDICT_BLOCK || v->kind == VERDICT_BYPASS || v->redact || v->error || note)
		return true;
	for (uint32_t i = 0; m && i < m->n_findings; i++)
		if (m->findings[i].count || m->findings[i].timed_out)
			return true;
	return false;
}

static void path_of(const http_head_t *h, const char **path, size_t *len)
{
	const char *t = http_head_str(h, h->target_off);
	size_t n = h->target_len;
	const char *q = memchr(t, '?', n);
	*path = t;
	*len = q ? (size_t)(q - t) : n; /* query values can be secrets */
}

/* The path an event names for request rq, with what a scan of m found in
 * it masked: an event never carries a secret, even one the policy let
 * through or blocked without masking. buf holds the copy when needed. */
static void event_path(const http_head_t *rq, const policy_msg_t *m, char *buf, size_t cap, const char **path,
		       size_t *len)
{
	path_of(rq, path, len);
	if (!m || m->head != rq || !m->head_view)
		return;
	bool copied = false;
	for (uint32_t i = 0; i < m->n_spans; i++) {
		const finding_span_t *sp = &m->spans[i];
		if (sp->space != SPAN_HEAD || sp->start >= *len)
			continue;
		if (!copied) {
			*len = *len < cap ? *len : cap;
			memcpy(buf, *path, *len);
			*path = buf;
			copied = true;
		}
		if (sp->start >= *len)
			continue;
		size_t end = sp->start + sp->len < *len ? sp->start + sp->len : *len;
		mask_inplace(buf + sp->start, end - sp->start, 0, 0, '*');
	}
}

/* What the shadow would have decided, when it is not what the active
 * policy did: the same facts as a verdict event, the shadow's verdict,
 * findings and version, and the active verdict beside them. */
static void emit_shadow(relay_t *r, const char *stage, const shadow_result_t *sh, const verdict_t *active,
			const http_head_t *h, const http_head_t *req, const char *note)
{
	flow_t *f = r->f;
	const http_head_t *rq = h->is_request ? h : req;
	char path_buf[1024];
	event_t e = {.kind = EVENT_SHADOW,
		     .stage = stage,
		     .verdict = &sh->verdict,
		     .msg = &sh->msg,
		     .facts = &f->facts,
		     .policy_version = sh->policy->version_text,
		     .active_verdict = shadow_verdict_name(active),
		     .active_policy_version = f->policy->version_text,
		     .flow_id = f->id,
		     .client_ip = f->client_ip,
		     .status = h->is_request ? 0 : h->status,
		     .body_bytes = sh->msg.body_size,
		     .tls = side_tls_version(&f->client),
		     .up_tls = side_tls_version(&f->upstream),
		     .note = note};
	event_new_id(e.id);
	if (rq) {
		e.method = http_head_str(rq, rq->method_off);
		e.method_len = rq->method_len;
		event_path(rq, &sh->msg, path_buf, sizeof path_buf, &e.path, &e.path_len);
	}
	event_emit(&e);
}

/* Records the decision and says whether the message goes on (false: the
 * client was answered with a block page). */
static bool act_on(relay_t *r, const char *stage, const verdict_t *v, const policy_msg_t *m, const http_head_t *h,
		   const http_head_t *req, const char *note, uint64_t since_ns, const shadow_result_t *sh)
{
	flow_t *f = r->f;
	char id[EVENT_ID_LEN] = "";
	const http_head_t *asker = h->is_request ? h : req;
	char ident[COACH_IDENT_MAX] = "";
	verdict_t overridden;
	char override_note[64];
	if (v->coach && v->kind == VERDICT_BLOCK && !v->monitor) {
		/* A user justified this rule for this app and host: it passes,
		 * and its event names the override. */
		char of[EVENT_ID_LEN];
		coach_identity(&f->facts, f->client_ip, asker, ident);
		if (coach_override_live(ident, f->facts.host, v->rule, of)) {
			overridden = *v;
			overridden.kind = VERDICT_PASS;
			overridden.coach = false;
			v = &overridden;
			snprintf(override_note, sizeof override_note, "override:%s", of);
			note = override_note;
		}
	}
	if (sh && sh->policy) {
		bool changed = shadow_differs(sh, v);
		report_count_shadow(changed);
		if (changed)
			emit_shadow(r, stage, sh, v, h, req, note);
	}
	if (eventful(v, m, note)) {
		event_new_id(id);
		const http_head_t *rq = h->is_request ? h : req;
		char path_buf[1024];
		event_t e = {.stage = stage,
			     .verdict = v,
			     .msg = m,
			     .facts = &f->facts,
			     .policy_version = f->policy->version_text,
			     .flow_id = f->id,
			     .client_ip = f->client_ip,
			     .status = h->is_request ? 0 : h->status,
			     .body_bytes = m ? m->body_size : 0,
			     .tls = side_tls_version(&f->client),
			     .up_tls = side_tls_version(&f->upstream),
			     .note = note,
			     .latency_us = (uv_hrtime() - since_ns) / 1000};
		memcpy(e.id, id, sizeof id);
		if (rq) {
			e.method = http_head_str(rq, rq->method_off);
			e.method_len = rq->method_len;
			event_path(rq, m, path_buf, sizeof path_buf, &e.path, &e.path_len);
		}
		event_emit(&e);
	}
	static const report_counter_t counter_of[] = {
		[VERDICT_INSPECT] = REPORT_INSPECT, [VERDICT_BYPASS] = REPORT_BYPASS,
		[VERDICT_PASS] = REPORT_PASS, [VERDICT_BLOCK] = REPORT_BLOCK};
	bool window = m && m->stream_window; /* a window of a message counted already */
	if (!window || v->kind == VERDICT_BLOCK || v->redact)
		report_count(v->redact && v->kind == VERDICT_PASS ? REPORT_REDACT : counter_of[v->kind]);
	if (!window)
		metrics_add(stats_messages, 1, h->is_request ? "request" : "response", NULL, NULL);
	for (uint32_t i = 0; m && i < m->n_findings; i++)
		metrics_add(stats_detector_hits, m->findings[i].count, m->findings[i].name, NULL, NULL);
	if (v->monitor)
		report_count(REPORT_MONITOR);
	if (v->error)
		report_count(REPORT_POLICY_ERRORS);
	if (v->kind == VERDICT_BYPASS)
		r->inspect = false; /* the rest of this flow goes uninspected */
	if (v->kind != VERDICT_BLOCK || v->monitor)
		return true;
	f->verdict = *v;
	reply_t rp = {.status = 403, .code = "blocked", .title = "Blocked by policy", .detail = v->reason,
		      .rule = v->rule, .event_id = id[0] ? id : NULL, .found = m};
	char token[COACH_TOKEN_MAX];
	if (v->coach && id[0] && coach_offer(id, ident, f->facts.host, v, token)) {
		rp.code = "coach";
		rp.title = "Check before you send this";
		rp.token = token;
		rp.ttl_s = v->coach_ttl_s;
	}
	if (!h->is_request)
		pending_drop(r); /* ours takes this response's place */
	reply_send(r, &rp, h->is_request ? h : NULL);
	return false;
}

static const char *const summary_fields[] = {"host", "content-type", "user-agent", "referer", "origin", NULL};

static int send_request_head(relay_t *r, http_head_t *h)
{
	flow_t *f = r->f;
	if (r->inspect && h->upgrade)
		wsrelay_prepare_request(h); /* no extension we cannot read */
	pending_t p = {
		.head = method_is(h, "HEAD"),
		.upgrade = h->upgrade,
		.close = http_head_has_token(h, "connection", "close") ||
			 (h->minor == 0 && !http_head_has_token(h, "connection", "keep-alive")),
	};
	if (r->inspect && f->policy->read_response_bodies) {
		p.req = malloc(sizeof *p.req);
		if (p.req && !http_head_copy(p.req, h, summary_fields)) {
			http_head_free(p.req);
			free(p.req);
			p.req = NULL;
		}
	}
	if (!pending_push(r, p) || !emit_head(r, true, h)) {
		flow_close(f, "error", "out of memory");
		return HTTP_CB_ERROR;
	}
	f->requests++;
	r->req_forward = true;
	r->req_chunked = h->chunked;
	if (log_enabled(LOG_DEBUG)) {
		const char *path;
		size_t plen;
		path_of(h, &path, &plen);
		log_line_t l;
		log_begin(&l, LOG_DEBUG, "request");
		log_kv_u64(&l, "flow", f->id);
		log_kv_strn(&l, "method", http_head_str(h, h->method_off), h->method_len);
		log_kv_strn(&l, "path", path, plen);
		log_end(&l);
	}
	return HTTP_CB_GO;
}

static void hold_start(relay_t *r, hold_t *hd, http_head_t *h)
{
	hd->on = true;
	hd->decided = false;
	hd->since_ns = uv_hrtime();
	hd->body.len = 0;
	hd->limit = r->f->policy->body_limits.max_bytes;
	/* A known length (within the limit) is held in one allocation; if
	 * that fails, hold_body's own append reports it. */
	if (h->has_length && h->content_length <= r->f->policy->body_limits.max_bytes)
		(void)bytebuf_reserve(&hd->body, (size_t)h->content_length);
	if (h->is_request && http_head_has_token(h, "expect", "100-continue")) {
		/* The server does not see this request until its body is read:
		 * we ask for the body ourselves. Not while earlier responses are
		 * still owed: a 100 among them would be misread. */
		http_head_remove(h, "expect");
		if (r->p_count == 0 && !r->res_started)
			emit(r, false, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
}

/* The held message is complete (or over the limit): ask the policy, then
 * send what it allows. False: blocked, the client has its answer. */
static int tail_body(relay_t *r, hold_t *hd, const char *data, size_t len);

static bool decide(relay_t *r, hold_t *hd, bool complete)
{
	flow_t *f = r->f;
	bool request = hd == &r->hreq;
	http_head_t *h = request ? &r->req.head : &r->res.head;
	if (hd->gateway) {
		hd->gateway = false;
		gateway_answer(r, h, &hd->body, complete && hd->body.len <= COACH_BODY_MAX);
		bytebuf_free(&hd->body);
		return false;
	}
	pending_t *front = request ? NULL : pending_front(r);
	inspect_result_t res;
	inspect_message(f->policy, f->w, &f->facts, h, front ? front->req : NULL, (uint8_t *)hd->body.data,
			hd->body.len, complete, &res);
	bool go = act_on(r, request ? "request" : "response", &res.verdict, &res.msg, h, front ? front->req : NULL,
			 res.note, hd->since_ns, &res.shadow);
	if (go) {
		bool changed = res.identity || (res.verdict.redact && !res.verdict.monitor);
		if (res.identity) {
			http_head_remove(h, "content-encoding");
			if (!h->chunked) {
				char len[24];
				snprintf(len, sizeof len, "%zu", res.out_len);
				http_head_set(h, "Content-Length", len);
			}
		}
		if (changed) {
			/* digests of the old bytes would now be lies */
			http_head_remove(h, "content-md5");
			http_head_remove(h, "digest");
			http_head_remove(h, "content-digest");
			http_head_remove(h, "repr-digest");
		}
		bool ok;
		if (request) {
			ok = send_request_head(r, h) == HTTP_CB_GO;
		} else {
			r->res_forward = r->res_started = true;
			r->res_chunked = h->chunked;
			ok = emit_head(r, false, h);
		}
		size_t out_len = res.out_len;
		/* Incomplete, or complete but decoded past the limit (a small
		 * gzip of a large text): the rest is read in windows. */
		bool stream = res.streams && r->inspect && ok, encoded = false;
		if (stream) {
			/* The rest is scanned as it comes; an identity body keeps
			 * its last carry bytes back, so a match that straddles the
			 * limit is masked whole in the first window. */
			uint32_t carry = f->policy->body_limits.carry ? f->policy->body_limits.carry : TAIL_CARRY_DEFAULT;
			uint32_t ce_len = 0;
			const char *ce = http_head_get(h, "content-encoding", &ce_len);
			bool started;
			if ((encoded = body_is_encoded(ce, ce_len))) {
				const char *why = NULL;
				started = tail_init_encoded(&hd->tail, carry, TAIL_STEP_DEFAULT, ce, ce_len, &f->policy->body_limits,
							    res.scanned, &why) == BODY_OK;
				out_len = 0; /* its raw bytes go up through the windows */
			} else {
				size_t keep = out_len < carry ? out_len : carry;
				out_len -= keep;
				started = tail_init_identity(&hd->tail, carry, TAIL_STEP_DEFAULT, res.out + out_len, keep, out_len);
			}
			if (!started) {
				tail_free(&hd->tail);
				ok = false;
			}
			hd->streaming = started;
		}
		if (ok && out_len)
			ok = emit_body(r, request, h->chunked, (const char *)res.out, out_len);
		if (!ok)
			flow_close(f, "error", "cannot forward an inspected message");
		hd->decided = !complete;
		if (ok && encoded && hd->streaming &&
		    tail_body(r, hd, hd->body.data, hd->body.len) != HTTP_CB_GO)
			go = false;
	}
	inspect_result_free(&res);
	bytebuf_free(&hd->body);
	return go;
}

/* A streamed message is refused part-way: a request's upstream is reset
 * before its last bytes (or terminating chunk), so the server never holds
 * a complete message; a response's client connection ends. */
static void tail_abort(relay_t *r, hold_t *hd)
{
	flow_t *f = r->f;
	hd->streaming = false;
	tail_free(&hd->tail);
	if (hd == &r->hreq) {
		iobuf_put(r->to_upstream);
		r->to_upstream = NULL;
		side_reset(&f->upstream);
		pending_drop(r);
		r->res_forward = r->res_started = false;
		r->req_forward = false;
	}
}

/* The window in the tail is complete (or the message ended: final):
 * the policy decides on it as on the prefix; what it allows goes on.
 * False: refused, the message was cut off. */
static bool tail_window(relay_t *r, hold_t *hd, bool final)
{
	flow_t *f = r->f;
	bool request = hd == &r->hreq;
	http_head_t *h = request ? &r->req.head : &r->res.head;
	pending_t *front = request ? NULL : pending_front(r);
	const http_head_t *req = front ? front->req : NULL;
	size_t len, fresh;
	uint8_t *text = tail_text(&hd->tail, &len, &fresh);
	if (len > fresh) {
		inspect_result_t res;
		inspect_window(f->policy, f->w, &f->facts, h, req, text, len, fresh, hd->tail.offset, hd->tail.dec != NULL,
			       &res);
		bool refused = res.verdict.kind == VERDICT_BLOCK && !res.verdict.monitor;
		if (refused && request)
			tail_abort(r, hd); /* before the 403: nothing more goes up */
		bool go = act_on(r, request ? "request" : "response", &res.verdict, &res.msg, h, req, res.note, hd->since_ns,
				 &res.shadow);
		inspect_result_free(&res);
		if (!go) {
			if (!request) {
				tail_abort(r, hd);
				flow_close(f, "blocked", "a response refused past inspect.max_bytes");
			}
			return false;
		}
	}
	size_t n;
	const uint8_t *out = tail_output(&hd->tail, final || !r->inspect, &n);
	bool chunked = request ? r->req_chunked : r->res_chunked;
	if (n && !emit_body(r, request, chunked, (const char *)out, n)) {
		flow_close(f, "error", "cannot forward a streamed body");
		return false;
	}
	tail_shift(&hd->tail);
	if (!r->inspect) {
		/* bypassed by a window's verdict: the rest goes as it comes */
		hd->streaming = false;
		tail_free(&hd->tail);
	}
	return true;
}

/* Body bytes past the limit: into the windows, each decided when full. */
static int tail_body(relay_t *r, hold_t *hd, const char *data, size_t len)
{
	flow_t *f = r->f;
	while (len && hd->streaming) {
		body_status_t st;
		const char *why = NULL;
		size_t used = tail_feed(&hd->tail, (const uint8_t *)data, len, &st, &why);
		data += used;
		len -= used;
		if (st != BODY_OK) {
			/* The tail does not decode: what cannot be read is the
			 * policy's call, as for a whole body. */
			char detail[160];
			snprintf(detail, sizeof detail, "body past inspect.max_bytes: %s", why ? why : body_status_name(st));
			verdict_t v;
			f->policy->ops->on_uninspectable(f->policy, f->w, &f->facts, UNINSPECTABLE_ENCODING, detail, &v);
			bool request = hd == &r->hreq;
			http_head_t *h = request ? &r->req.head : &r->res.head;
			if (v.kind == VERDICT_BLOCK && !v.monitor) {
				tail_abort(r, hd);
				act_on(r, request ? "request" : "response", &v, NULL, h, NULL, detail, hd->since_ns, NULL);
				if (!request)
					flow_close(f, "blocked", "%s", detail);
				return HTTP_CB_PAUSE;
			}
			if (v.kind != VERDICT_BLOCK)
				v.kind = VERDICT_PASS;
			act_on(r, request ? "request" : "response", &v, NULL, h, NULL, detail, hd->since_ns, NULL);
			r->inspect = false; /* what was held goes, and the rest as it comes */
			if (!tail_window(r, hd, true))
				return HTTP_CB_PAUSE;
			break;
		}
		if (tail_ready(&hd->tail) && !tail_window(r, hd, false))
			return HTTP_CB_PAUSE;
	}
	if (len) {
		bool request = hd == &r->hreq;
		return emit_body(r, request, request ? r->req_chunked : r->res_chunked, data, len) ? HTTP_CB_GO
												      : HTTP_CB_ERROR;
	}
	return HTTP_CB_GO;
}

/* The message ended: its last window is decided before its last bytes go. */
static bool tail_end(relay_t *r, hold_t *hd)
{
	if (!hd->streaming)
		return true;
	bool ok = tail_window(r, hd, true);
	hd->streaming = false;
	tail_free(&hd->tail);
	return ok;
}

/* A body that holds a document (a zip, an Office file, a PDF) cannot be
 * read in windows: its directory is at its end. At inspect.max_bytes such
 * a body is held on, whole, up to inspect.documents.max_hold (when its
 * declared length fits), so an upload of a 5 MB .docx is read rather than
 * cut and handed to on_uninspectable. True: the limit was raised. */
static bool hold_document(relay_t *r, hold_t *hd)
{
	const compiled_policy_t *p = r->f->policy;
	const http_head_t *h = hd == &r->hreq ? &r->req.head : &r->res.head;
	uint64_t max_hold = p->doc_limits.max_hold;
	if (hd->limit >= max_hold || (h->has_length && h->content_length > max_hold) ||
	    !doc_in_prefix((const uint8_t *)hd->body.data, hd->body.len))
		return false;
	hd->limit = max_hold;
	return true;
}

/* A body span of a held message: kept up to the limit; past it the policy
 * decides on the prefix and the rest goes on as it comes. */
static int hold_body(relay_t *r, hold_t *hd, const char *data, size_t len)
{
	size_t room = hd->body.len < hd->limit ? (size_t)(hd->limit - hd->body.len) : 0;
	size_t take = len < room ? len : room;
	if (take && !bytebuf_append(&hd->body, data, take)) {
		flow_close(r->f, "error", "out of memory holding a body");
		return HTTP_CB_ERROR;
	}
	if (take == len)
		return HTTP_CB_GO;
	if (hold_document(r, hd))
		return hold_body(r, hd, data + take, len - take);
	if (!decide(r, hd, false))
		return HTTP_CB_PAUSE;
	if (hd->streaming)
		return tail_body(r, hd, data + take, len - take);
	bool request = hd == &r->hreq;
	return emit_body(r, request, request ? r->req_chunked : r->res_chunked, data + take, len - take)
		       ? HTTP_CB_GO
		       : HTTP_CB_ERROR;
}

/* A request for the gateway itself (coach pages' forms): answered here,
 * its body read first (bounded), never forwarded. */
static void gateway_answer(relay_t *r, http_head_t *h, const bytebuf_t *body, bool complete)
{
	flow_t *f = r->f;
	char ident[COACH_IDENT_MAX];
	coach_identity(&f->facts, f->client_ip, h, ident);
	coach_request_t q = {.policy = f->policy, .w = f->w, .facts = &f->facts, .flow_id = f->id,
			     .client_ip = f->client_ip, .ident = ident, .host = f->facts.host, .head = h,
			     .body = body ? (const uint8_t *)body->data : NULL, .body_len = body ? body->len : 0,
			     .complete = complete, .tls = side_tls_version(&f->client), .up_tls = side_tls_version(&f->upstream)};
	coach_answer_t a;
	coach_answer(&q, &a);
	reply_t rp = {.status = a.status, .code = a.code, .title = a.title, .detail = a.detail,
		      .event_id = a.event_id[0] ? a.event_id : NULL};
	reply_send(r, &rp, h);
}

static int gateway_request(relay_t *r, http_head_t *h)
{
	if (!has_body(h) || (h->has_length && h->content_length > COACH_BODY_MAX)) {
		gateway_answer(r, h, NULL, !has_body(h));
		return HTTP_CB_PAUSE;
	}
	hold_start(r, &r->hreq, h);
	r->hreq.gateway = true;
	return HTTP_CB_GO;
}

static int forward_request(relay_t *r, http_head_t *h)
{
	flow_t *f = r->f;
	compiled_policy_t *p = f->policy;
	if (coach_is_reserved(h))
		return gateway_request(r, h);
	if (r->inspect && p->read_request_bodies && has_body(h)) {
		hold_start(r, &r->hreq, h);
		return HTTP_CB_GO;
	}
	if (r->inspect) {
		/* No body to hold: the target and fields are the message (a
		 * redaction masks them in place). */
		static uint8_t none[1];
		inspect_result_t res;
		uint64_t since = uv_hrtime();
		inspect_message(p, f->w, &f->facts, h, NULL, none, 0, true, &res);
		bool go = act_on(r, "request", &res.verdict, &res.msg, h, NULL, res.note, since, &res.shadow);
		inspect_result_free(&res);
		if (!go)
			return HTTP_CB_PAUSE;
	}
	return send_request_head(r, h);
}

static void route_dialled(flow_t *f, int status, const char *why);

/* Proxy mode: the upstream for the parsed request (r->route_*): the one we
 * have, or a new one once nothing is in flight on the old. */
static int route_forward(relay_t *r, http_head_t *h)
{
	flow_t *f = r->f;
	if (!strcmp(r->route_authority, r->authority) && f->upstream.stream && !f->upstream.closed && !f->upstream.eof)
		return forward_request(r, h);
	if (r->p_count || r->res_forward) {
		r->route_wait = true; /* re-route once the responses before are in */
		return HTTP_CB_PAUSE;
	}
	if (f->upstream.stream)
		side_close(&f->upstream);
	flow_side_init(f, &f->upstream, &f->client, "upstream");
	snprintf(r->authority, sizeof r->authority, "%s", r->route_authority);
	flow_set_destination(f, r->route_host, r->route_port);
	f->dst_ip[0] = '\0';
	flow_decide(f);
	if (f->verdict.kind == VERDICT_BLOCK) {
		f->mode = "blocked";
		flow_report_decision(f, NULL);
		reply_flow_block(r, h);
		return HTTP_CB_PAUSE;
	}
	r->inspect = f->verdict.kind != VERDICT_BYPASS;
	f->mode = r->inspect ? "inspect" : "bypass";
	r->routing = true;
	flow_set_state(f, FLOW_DIAL);
	flow_deadline(f, f->eng->cfg.connect_timeout_ms, "connect");
	int e = flow_dial(f, r->route_host, r->route_port, route_dialled);
	if (e < 0) {
		r->routing = false;
		char why[400];
		snprintf(why, sizeof why, "cannot connect to %s: %s", r->route_host, uv_strerror(e));
		reply_local(r, 502, "connect-failed", "Cannot reach the server", why, h);
	}
	return HTTP_CB_PAUSE;
}

/* Proxy mode: an absolute-form request becomes what the server expects:
 * origin-form, Host = the target's authority (RFC 9112 3.2.2), and no
 * Proxy-* fields (those were for us). */
static int route_request(relay_t *r, http_head_t *h)
{
	const char *path;
	size_t pathlen;
	const char *bad = explicit_parse_absolute(http_head_str(h, h->target_off), h->target_len, r->route_host,
						  sizeof r->route_host, &r->route_port, &path, &pathlen);
	if (bad) {
		reply_local(r, 400, "bad-request-target", "Bad request", bad, h);
		return HTTP_CB_PAUSE;
	}
	bool v6 = strchr(r->route_host, ':') != NULL;
	snprintf(r->route_authority, sizeof r->route_authority, v6 ? "[%s]:%u" : "%s:%u", r->route_host,
		 r->route_port);
	char hostval[300];
	if (r->route_port == 80)
		snprintf(hostval, sizeof hostval, v6 ? "[%s]" : "%s", r->route_host);
	else
		snprintf(hostval, sizeof hostval, "%s", r->route_authority);
	if (!http_head_set_target(h, path, pathlen) || !http_head_set(h, "Host", hostval)) {
		reply_local(r, 431, "header-too-large", "Request header too large",
			    "the rewritten request exceeds limits.header_bytes", h);
		return HTTP_CB_PAUSE;
	}
	http_head_remove(h, "proxy-connection");
	http_head_remove(h, "proxy-authorization");
	if (coach_is_reserved(h)) {
		/* ours: answered without dialling; the answer closes the
		 * connection, so the destination can be the target's now */
		flow_set_destination(r->f, r->route_host, r->route_port);
		return gateway_request(r, h);
	}
	return route_forward(r, h);
}

static int req_head(void *ud, http_head_t *h)
{
	relay_t *r = ud;
	flow_t *f = r->f;
	flow_deadline(f, 0, NULL);
	switch (r->mode) {
	case RELAY_REPORT:
		if (f->verdict.kind == VERDICT_BLOCK && f->event_id[0] && !strcmp(f->report.code, "blocked")) {
			reply_flow_block(r, h);
			return HTTP_CB_PAUSE;
		}
		reply_local(r, f->report.status, f->report.code, f->report.title, f->report.detail, h);
		return HTTP_CB_PAUSE;
	case RELAY_PROXY:
		if (method_is(h, "CONNECT")) {
			if (r->p_count || r->res_forward || f->requests) {
				reply_local(r, 400, "connect-after-requests", "Bad request",
					    "CONNECT must be the first request on a proxy connection", h);
				return HTTP_CB_PAUSE;
			}
			r->connect_requested = true;
			return HTTP_CB_PAUSE;
		}
		if (h->target_len && http_head_str(h, h->target_off)[0] == '/') {
			reply_local(r, 400, "not-a-proxy-request", "Bad request",
				    "this is the dlpgate proxy: send absolute-form requests (http://host/path) or CONNECT",
				    h);
			return HTTP_CB_PAUSE;
		}
		return route_request(r, h);
	case RELAY_ORIGIN:
		if (method_is(h, "CONNECT")) {
			reply_local(r, 405, "connect-in-tunnel", "Method not allowed",
				    "CONNECT inside a tunnel is not supported", h);
			return HTTP_CB_PAUSE;
		}
		return forward_request(r, h);
	}
	return HTTP_CB_ERROR;
}

static int req_body(void *ud, const char *data, size_t len)
{
	relay_t *r = ud;
	if (r->hreq.on && !r->hreq.decided)
		return hold_body(r, &r->hreq, data, len);
	if (r->hreq.streaming)
		return tail_body(r, &r->hreq, data, len);
	if (!r->req_forward)
		return HTTP_CB_GO;
	return emit_body(r, true, r->req_chunked, data, len) ? HTTP_CB_GO : HTTP_CB_ERROR;
}

static int req_end(void *ud, http_head_t *trailers)
{
	relay_t *r = ud;
	if (r->hreq.on && trailers) {
		/* Trailers come after the body the policy judged, and no stage
		 * sees them: forwarded, they would carry whatever a sender wants
		 * past inspection. Dropped, and said so. */
		log_line_t l;
		log_begin(&l, LOG_INFO, "trailers_dropped");
		log_kv_u64(&l, "flow", r->f->id);
		log_kv_u64(&l, "fields", trailers->n_fields);
		log_end(&l);
		trailers = NULL;
	}
	if (r->hreq.on) {
		bool held = !r->hreq.decided;
		r->hreq.on = false;
		if (held && !decide(r, &r->hreq, true))
			return HTTP_CB_PAUSE;
	}
	if (!tail_end(r, &r->hreq))
		return HTTP_CB_PAUSE;
	if (r->req_forward && r->req_chunked && !emit_last_chunk(r, true, trailers))
		return HTTP_CB_ERROR;
	r->req_forward = false;
	return HTTP_CB_GO;
}

static const http_codec_cbs_t req_cbs = {req_begin, req_head, req_body, req_end};

/* ---- response side ---- */

/* A 101 about to reach the client. A WebSocket is read frame by frame
 * (http/wsrelay.c); any other protocol cannot be read, and the policy
 * decides (on_uninspectable "upgrade") before the client hears of the
 * switch. */
static int upgrade_check(relay_t *r, const http_head_t *h)
{
	const char *refusal;
	if (wsrelay_accepts(&r->req.head, h, &refusal))
		return HTTP_CB_GO;
	if (refusal)
		return http_codec_fail(&r->res, 502, refusal);
	uint32_t n = 0;
	const char *to = http_head_get(h, "upgrade", &n);
	if (flow_uninspectable(r->f, UNINSPECTABLE_UPGRADE, "a switch to protocol \"%.*s\"", (int)(n > 64 ? 64 : n),
			       to ? to : ""))
		return HTTP_CB_GO;
	pending_drop(r);
	reply_local(r, 403, "blocked", "Blocked by policy", r->f->verdict.reason, &r->req.head);
	return HTTP_CB_PAUSE;
}

static int res_head(void *ud, http_head_t *h)
{
	relay_t *r = ud;
	flow_t *f = r->f;
	pending_t *p = pending_front(r);
	if (!p)
		return http_codec_fail(&r->res, 502, "the server sent a response nobody asked for");
	if (h->status == 101) {
		if (!p->upgrade)
			return http_codec_fail(&r->res, 502, "the server switched protocols without being asked");
		if (r->inspect) {
			int rc = upgrade_check(r, h);
			if (rc != HTTP_CB_GO)
				return rc;
		}
		r->res_started = true;
		return emit_head(r, false, h) ? HTTP_CB_GO : HTTP_CB_ERROR;
	}
	if (h->status < 200) {
		r->res_interim = true;
		return emit_head(r, false, h) ? HTTP_CB_NO_BODY : HTTP_CB_ERROR;
	}
	bool no_body = p->head || h->status == 204 || h->status == 304;
	if (r->inspect && f->policy->read_response_bodies) {
		if (!no_body) {
			hold_start(r, &r->hres, h);
			return HTTP_CB_GO;
		}
		policy_msg_t m;
		memset(&m, 0, sizeof m);
		m.head = h;
		m.request = p->req;
		m.body_complete = true;
		verdict_t v;
		uint64_t since = uv_hrtime();
		shadow_result_t sh;
		shadow_ask(f->w, &f->facts, &m, &sh);
		f->policy->ops->on_response(f->policy, f->w, &f->facts, &m, &v);
		bool go = act_on(r, "response", &v, &m, h, p->req, NULL, since, &sh);
		shadow_result_free(&sh);
		policy_msg_clear(&m);
		if (!go)
			return HTTP_CB_PAUSE;
	}
	r->res_forward = true;
	r->res_started = true;
	r->res_chunked = h->chunked;
	if (!emit_head(r, false, h))
		return HTTP_CB_ERROR;
	return no_body ? HTTP_CB_NO_BODY : HTTP_CB_GO;
}

static int res_body(void *ud, const char *data, size_t len)
{
	relay_t *r = ud;
	if (r->hres.on && !r->hres.decided)
		return hold_body(r, &r->hres, data, len);
	if (r->hres.streaming)
		return tail_body(r, &r->hres, data, len);
	if (!r->res_forward)
		return HTTP_CB_GO;
	return emit_body(r, false, r->res_chunked, data, len) ? HTTP_CB_GO : HTTP_CB_ERROR;
}

static int res_end(void *ud, http_head_t *trailers)
{
	relay_t *r = ud;
	if (r->res_interim) {
		r->res_interim = false;
		return HTTP_CB_GO;
	}
	if (r->hres.on) {
		bool held = !r->hres.decided;
		r->hres.on = false;
		if (held && !decide(r, &r->hres, true))
			return HTTP_CB_PAUSE;
	}
	if (!tail_end(r, &r->hres))
		return HTTP_CB_PAUSE;
	if (r->res_forward && r->res_chunked && !emit_last_chunk(r, false, trailers))
		return HTTP_CB_ERROR;
	pending_t *p = pending_front(r);
	if (!p)
		return HTTP_CB_GO; /* a blocked response: already popped */
	bool upgrade = p->upgrade && r->res.head.status == 101;
	if (p->close || !http_codec_keep_alive(&r->res))
		r->close_after = true;
	if (upgrade)
		return HTTP_CB_GO; /* the feed reports the upgrade */
	pending_pop(r);
	r->res_forward = false;
	r->res_started = false;
	after_response(r);
	return HTTP_CB_PAUSE; /* let the caller look at the new state */
}

static const http_codec_cbs_t res_cbs = {NULL, res_head, res_body, res_end};

/* ---- resuming ---- */

static void resume_client(relay_t *r)
{
	flow_t *f = r->f;
	if (!r->client_paused || r->done)
		return;
	r->client_paused = false;
	if (r->client_upgrade) {
		r->client_upgrade = false;
		http_codec_resume_after_upgrade(&r->req);
	} else {
		http_codec_resume(&r->req);
	}
	bytebuf_t held = r->held_client;
	bytebuf_init(&r->held_client, held.cap);
	/* Fed even when empty: the paused message may be complete already. */
	if (!feed_client(r, held.data, held.len)) {
		bytebuf_free(&held);
		return;
	}
	bytebuf_free(&held);
	if (!r->client_paused && !r->done && !f->closing)
		side_read(&f->client, !r->client_eof);
	flush(r);
}

/* A response is complete: whatever waited on that can go on. */
static void after_response(relay_t *r)
{
	if (r->close_after) {
		finish(r, "done", "connection closed after the response");
		return;
	}
	if (r->local_pending && r->p_count == 0) {
		send_local_reply(r);
		return;
	}
	if (r->p_count == 0 && r->client_eof && !http_codec_mid_message(&r->req)) {
		finish(r, "client-closed", NULL);
		return;
	}
	if (r->route_wait && r->p_count == 0) {
		/* The held head is re-examined now that nothing is in flight. */
		r->route_wait = false;
		int res = route_forward(r, &r->req.head);
		if (res == HTTP_CB_GO)
			resume_client(r);
		return;
	}
	keepalive_wait(r);
	resume_client(r);
}

/* ---- feeding ---- */

static void hold(bytebuf_t *b, const char *data, size_t len, flow_t *f)
{
	if (len && !bytebuf_append(b, data, len))
		flow_close(f, "error", "too much data held while paused");
}

static void request_error(relay_t *r)
{
	flow_t *f = r->f;
	if (r->req_forward) {
		/* The head went up and its body turned out broken: the server
		 * must never see this message complete. Cut it off; what it
		 * owed the client goes with it. */
		iobuf_put(r->to_upstream);
		r->to_upstream = NULL;
		side_close(&f->upstream);
		pending_drop(r);
		r->res_forward = r->res_started = false;
		r->req_forward = false;
	}
	int status = http_codec_error_status(&r->req);
	const char *reason = http_codec_error_reason(&r->req);
	const char *code = status == 431 ? "header-too-large" : status == 505 ? "version" : "bad-request";
	const char *title = status == 431 ? "Request header too large" : "Bad request";
	reply_local(r, status ? status : 400, code, title, reason ? reason : "malformed request", &r->req.head);
}

/* Returns false when the relay no longer exists (CONNECT handed over). */
static bool feed_client(relay_t *r, const char *data, size_t len)
{
	flow_t *f = r->f;
	if (r->done)
		return true;
	if (r->client_paused) {
		hold(&r->held_client, data, len, f);
		side_read(&f->client, false);
		return true;
	}
	size_t used = 0;
	http_feed_t st = http_codec_feed(&r->req, data, len, &used);
	if (r->connect_requested) {
		/* The relay's job on this connection is over. */
		explicit_connect(f, &r->req.head, data + used, len - used);
		return false;
	}
	switch (st) {
	case HTTP_FEED_OK:
		break;
	case HTTP_FEED_UPGRADE:
		r->client_upgrade = true;
		__attribute__((fallthrough)); /* the rest waits for the response */
	case HTTP_FEED_PAUSED:
		if (r->done)
			break;
		r->client_paused = true;
		hold(&r->held_client, data + used, len - used, f);
		side_read(&f->client, false);
		break;
	case HTTP_FEED_ERROR:
		if (!r->done)
			request_error(r);
		break;
	}
	return true;
}

static void response_error(relay_t *r, const char *why)
{
	flow_t *f = r->f;
	if (!r->res_started && r->p_count) {
		/* Nothing of this response reached the client: it can be told. */
		pending_drop(r);
		reply_local(r, 502, "bad-upstream-response", "Bad response from the server", why, NULL);
		return;
	}
	flow_close(f, "upstream-error", "%s", why);
}

static void start_upgrade_splice(relay_t *r, const char *rest, size_t len)
{
	flow_t *f = r->f;
	/* Bytes the client sent after its Upgrade request go up; bytes the
	 * server sent after its 101 go down. */
	bytebuf_free(&f->peek);
	bytebuf_free(&f->early);
	bytebuf_init(&f->peek, 0); /* bounded by what is held and one read */
	bytebuf_init(&f->early, 0);
	bytebuf_t *held = &r->held_client;
	bool ok = bytebuf_append(&f->peek, held->data, held->len) && bytebuf_append(&f->early, rest, len);
	bytebuf_free(held);
	if (!ok) {
		flow_close(f, "error", "too much data around the protocol switch");
		return;
	}
	flush(r);
	r->done = true;
	flow_splice(f, f->client.ssl ? "upgrade-tls" : "upgrade");
}

/* The 101 is out: a WebSocket goes on frame by frame, anything else (let
 * through by the policy, or on a route it bypassed) is spliced. */
static void start_upgrade(relay_t *r, const char *rest, size_t len)
{
	const char *refusal;
	if (!r->inspect || !wsrelay_accepts(&r->req.head, &r->res.head, &refusal)) {
		start_upgrade_splice(r, rest, len);
		return;
	}
	flush(r);
	r->done = true;
	bytebuf_t held = r->held_client;
	bytebuf_init(&r->held_client, 0);
	r->ws = wsrelay_start(r->f, &r->req.head, &r->res.head, held.data, held.len, rest, len);
	bytebuf_free(&held);
}

struct wsrelay *relay_websocket(relay_t *r)
{
	return r->ws;
}

static void feed_upstream(relay_t *r, const char *data, size_t len)
{
	flow_t *f = r->f;
	while (len && !f->closing && !r->done) {
		size_t used = 0;
		http_feed_t st = http_codec_feed(&r->res, data, len, &used);
		data += used;
		len -= used;
		switch (st) {
		case HTTP_FEED_OK:
			return;
		case HTTP_FEED_PAUSED:
			/* res_end pauses after each response to let the state settle. */
			if (!r->done && !f->closing)
				http_codec_resume(&r->res);
			break;
		case HTTP_FEED_UPGRADE:
			start_upgrade(r, data, len);
			return;
		case HTTP_FEED_ERROR:
			response_error(r, http_codec_error_reason(&r->res));
			return;
		}
	}
}

/* ---- side events ---- */

/* The first bytes inside a fresh TLS session decide whether it carries
 * HTTP; anything else is spliced between the two sessions. */
static bool sniff_client(relay_t *r, iobuf_t *b)
{
	flow_t *f = r->f;
	bool ok = bytebuf_append(&f->peek, b->data, b->len);
	iobuf_put(b);
	int http = ok ? http_looks_like_request(f->peek.data, f->peek.len) : 0;
	if (http < 0)
		return false;
	r->sniff = false;
	if (http == 0) {
		r->done = true;
		if (flow_uninspectable(f, UNINSPECTABLE_NOT_HTTP, "TLS carries a protocol other than HTTP/1.1"))
			flow_splice(f, "not-http");
		else
			flow_close(f, "blocked", "%s", f->verdict.reason);
		return false;
	}
	bytebuf_t peek = f->peek;
	bytebuf_init(&f->peek, 0);
	bool alive = feed_client(r, peek.data, peek.len);
	bytebuf_free(&peek);
	return alive;
}

static void client_data(side_t *s, iobuf_t *b)
{
	relay_t *r = side_flow(s)->relay;
	if (r->sniff) {
		if (sniff_client(r, b))
			flush(r);
		return;
	}
	bool alive = feed_client(r, b->data, b->len);
	iobuf_put(b);
	if (alive)
		flush(r);
}

static void upstream_data(side_t *s, iobuf_t *b)
{
	relay_t *r = side_flow(s)->relay;
	if (r->sniff) {
		/* The server spoke first: not a protocol we parse. */
		flow_t *f = side_flow(s);
		bool ok = bytebuf_append(&f->early, b->data, b->len);
		iobuf_put(b);
		r->sniff = false;
		r->done = true;
		if (!ok) {
			flow_close(f, "error", "upstream sent too much before the client spoke");
			return;
		}
		if (flow_uninspectable(f, UNINSPECTABLE_NOT_HTTP, "the server speaks first: not HTTP"))
			flow_splice(f, "server-first");
		else
			flow_close(f, "blocked", "%s", f->verdict.reason);
		return;
	}
	feed_upstream(r, b->data, b->len);
	iobuf_put(b);
	flush(r);
}

static void client_eof(side_t *s)
{
	flow_t *f = side_flow(s);
	relay_t *r = f->relay;
	r->client_eof = true;
	if (r->done)
		return;
	if (http_codec_mid_message(&r->req) && !r->client_paused) {
		flow_close(f, "client-eof", "client closed in the middle of a request");
		return;
	}
	if (r->p_count == 0 && !r->res_forward && !r->routing)
		finish(r, "client-closed", NULL);
}

static void upstream_eof(side_t *s)
{
	flow_t *f = side_flow(s);
	relay_t *r = f->relay;
	if (r->done)
		return;
	if (http_codec_finish(&r->res) != HTTP_FEED_OK) {
		if (r->res_started)
			flow_close(f, "upstream-eof", "the server closed in the middle of a response");
		else
			response_error(r, "the server closed the connection in the middle of a response");
		return;
	}
	flush(r);
	if (f->closing || r->done)
		return;
	if (r->p_count) {
		response_error(r, "the server closed the connection without answering");
		return;
	}
	if (r->mode == RELAY_PROXY) {
		/* The next request re-dials. */
		side_close(&f->upstream);
		r->authority[0] = '\0';
		return;
	}
	finish(r, "upstream-closed", NULL);
}

static void side_failed(side_t *s, const char *why)
{
	flow_close(side_flow(s), "error", "%s: %s", s->name, why);
}

static void no_handshake(side_t *s)
{
	(void)s;
}

static const side_ops_t client_ops = {client_data, client_eof, side_failed, no_handshake};
static const side_ops_t upstream_ops = {upstream_data, upstream_eof, side_failed, no_handshake};

static void route_dialled(flow_t *f, int status, const char *why)
{
	relay_t *r = f->relay;
	r->routing = false;
	flow_set_state(f, FLOW_HTTP);
	flow_deadline(f, 0, NULL);
	if (status) {
		int code = status == UV_ETIMEDOUT ? 504 : 502;
		flow_side_init(f, &f->upstream, &f->client, "upstream");
		reply_local(r, code, code == 504 ? "connect-timeout" : "connect-failed", "Cannot reach the server", why,
			    &r->req.head);
		flush(r);
		return;
	}
	f->upstream.ops = &upstream_ops;
	side_read(&f->upstream, true);
	if (forward_request(r, &r->req.head) == HTTP_CB_GO)
		resume_client(r);
	flush(r);
}

/* ---- starting ---- */

static relay_t *relay_new(flow_t *f, relay_mode_t mode)
{
	relay_t *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->f = f;
	r->mode = mode;
	r->inspect = true;
	const config_t *c = &f->eng->cfg;
	http_codec_init(&r->req, true, c->header_bytes, c->header_count, &req_cbs, r);
	http_codec_init(&r->res, false, c->header_bytes, c->header_count, &res_cbs, r);
	size_t hold_cap = (size_t)c->header_bytes + 2 * IOBUF_CAP;
	bytebuf_init(&r->held_client, hold_cap);
	bytebuf_init(&r->local_reply, 0);
	f->relay = r;
	return r;
}

void relay_free(relay_t *r)
{
	if (!r)
		return;
	http_codec_free(&r->req);
	http_codec_free(&r->res);
	bytebuf_free(&r->held_client);
	bytebuf_free(&r->local_reply);
	iobuf_put(r->to_upstream);
	iobuf_put(r->to_client);
	bytebuf_free(&r->hreq.body);
	bytebuf_free(&r->hres.body);
	wsrelay_free(r->ws);
	tail_free(&r->hreq.tail);
	tail_free(&r->hres.tail);
	pending_drop(r);
	free(r->pending);
	free(r);
}

static void start(flow_t *f, relay_mode_t mode)
{
	relay_t *r = relay_new(f, mode);
	if (!r) {
		flow_close(f, "error", "out of memory");
		return;
	}
	if (mode != RELAY_PROXY)
		flow_set_state(f, FLOW_HTTP);
	flow_deadline(f, 0, NULL);
	flow_idle(f, f->eng->cfg.keepalive_timeout_ms);
	f->client.ops = &client_ops;
	f->upstream.ops = &upstream_ops;
	/* Bytes that arrived before this stage: the server's first (rare),
	 * the client's first request (clear tunnels). */
	if (f->early.len) {
		bytebuf_t early = f->early;
		bytebuf_init(&f->early, 0);
		feed_upstream(r, early.data, early.len);
		bytebuf_free(&early);
	}
	if (f->peek.len && !f->client.ssl) {
		bytebuf_t peek = f->peek;
		bytebuf_init(&f->peek, 0);
		bool alive = feed_client(r, peek.data, peek.len);
		bytebuf_free(&peek);
		if (!alive)
			return;
	}
	if (f->closing)
		return;
	flush(r);
	if (r->done || f->closing)
		return;
	if (f->upstream.eof && mode == RELAY_ORIGIN && r->p_count == 0) {
		finish(r, "upstream-closed", "the server closed before the first request");
		return;
	}
	if (!r->client_paused)
		side_read(&f->client, true);
	if (f->upstream.stream && !f->upstream.closed)
		side_read(&f->upstream, true);
}

void relay_start_proxy(flow_t *f)
{
	flow_set_state(f, FLOW_REQUEST);
	start(f, RELAY_PROXY);
	if (!f->closing)
		flow_deadline(f, f->eng->cfg.header_timeout_ms, "proxy request");
}

void relay_start_tls(flow_t *f)
{
	if (f->early.len) {
		/* The server spoke before any request: not HTTP. */
		if (flow_uninspectable(f, UNINSPECTABLE_NOT_HTTP, "the server speaks first: not HTTP"))
			flow_splice(f, "server-first");
		else
			flow_close(f, "blocked", "%s", f->verdict.reason);
		return;
	}
	start(f, RELAY_ORIGIN);
	if (f->relay && !f->closing) {
		f->relay->sniff = true;
		bytebuf_init(&f->peek, 0); /* a few bytes decide; one read at most */
	}
}

void relay_start_tunnel(flow_t *f)
{
	f->mode = "inspect";
	start(f, RELAY_ORIGIN);
}

void relay_start_report(flow_t *f)
{
	start(f, RELAY_REPORT);
}

bool relay_on_timeout(relay_t *r, const char *what)
{
	flow_t *f = r->f;
	if (r->done)
		return false;
	if (!strcmp(what, "request head") && r->p_count == 0) {
		reply_local(r, 408, "request-timeout", "Request timeout",
			    "the request head did not arrive within timeouts.header_ms", NULL);
		flush(r);
		return true;
	}
	if (!strcmp(what, "idle") && r->p_count == 0 && !http_codec_mid_message(&r->req)) {
		finish(r, "keepalive-timeout", NULL);
		return true;
	}
	if (!strcmp(what, "idle") && r->p_count && !r->res_started && !http_codec_mid_message(&r->req)) {
		char why[160];
		snprintf(why, sizeof why, "the server did not answer within timeouts.idle_ms (%u ms)",
			 f->eng->cfg.idle_timeout_ms);
		pending_drop(r);
		reply_local(r, 504, "upstream-timeout", "The server did not answer", why, NULL);
		flush(r);
		return true;
	}
	return false;
}
