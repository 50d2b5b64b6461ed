/*
 * flow: lifecycle, timer, decision and the end-of-flow log line. See flow.h.
 */
#include "flow.h"

#include "core/log.h"
#include "core/stats.h"
#include "http/relay.h"
#include "net/dial.h"
#include "net/worker.h"
#include "report/event.h"
#include "report/report.h"
#include "sources/explicit.h"
#include "sources/sysext.h"
#include "sources/transparent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const state_names[] = {"request", "dial", "peek", "tls-upstream", "tls-client",
					  "http", "splice", "closing"};

const char *flow_state_name(flow_state_t s)
{
	return s <= FLOW_CLOSING ? state_names[s] : "?";
}

uint64_t flow_now(const flow_t *f)
{
	return uv_now(f->timer.loop);
}

/* ---- refusing past max_connections ---- */

typedef struct {
	side_conn_t conn;
	uv_write_t req;
} refusal_t;

static void refusal_closed(uv_handle_t *h)
{
	free(h->data);
}

static void refusal_written(uv_write_t *req, int status)
{
	(void)status;
	refusal_t *r = req->data;
	uv_close(&r->conn.handle, refusal_closed);
}

/* A handle of the listener's kind, for accepting from it. */
static void conn_init(uv_loop_t *loop, uv_stream_t *server, side_conn_t *c)
{
	if (server->type == UV_NAMED_PIPE)
		uv_pipe_init(loop, &c->pipe, 0);
	else
		uv_tcp_init(loop, &c->tcp);
}

static void refuse(worker_t *w, uv_stream_t *server)
{
	static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\n"
				  "Content-Type: text/plain\r\nContent-Length: 58\r\nConnection: close\r\n\r\n"
				  "dlpgate: connection limit reached (limits.max_connections)\n";
	refusal_t *r = malloc(sizeof *r);
	if (!r)
		return;
	conn_init(&w->loop, server, &r->conn);
	r->conn.handle.data = r;
	if (uv_accept(server, &r->conn.stream) != 0) {
		uv_close(&r->conn.handle, refusal_closed);
		return;
	}
	atomic_fetch_add(&w->eng->flows_refused, 1);
	r->req.data = r;
	/* An HTTP 503 for a client; a system extension flow is just closed
	 * (the extension then fails open or closed as configured). */
	uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
	if (server->type == UV_NAMED_PIPE || uv_write(&r->req, &r->conn.stream, &b, 1, refusal_written) != 0)
		uv_close(&r->conn.handle, refusal_closed);

	/* One warning a second at most, with the count, so a flood cannot
	 * turn into a log flood. */
	w->refused_since_log++;
	uint64_t now = uv_now(&w->loop);
	if (now - w->last_refusal_log >= 1000) {
		log_line_t l;
		log_begin(&l, LOG_WARN, "connection_refused");
		log_kv_str(&l, "why", "limits.max_connections reached");
		log_kv_u64(&l, "limit", w->eng->cfg.max_connections);
		log_kv_u64(&l, "refused", w->refused_since_log);
		log_end(&l);
		w->last_refusal_log = now;
		w->refused_since_log = 0;
	}
}

/* ---- creation and destruction ---- */

static void link_flow(worker_t *w, flow_t *f)
{
	flow_t *head = w->conns;
	f->next = head;
	if (head)
		head->prev = f;
	w->conns = f;
	w->n_conns++;
}

static void unlink_flow(worker_t *w, flow_t *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		w->conns = f->next;
	if (f->next)
		f->next->prev = f->prev;
	w->n_conns--;
}

static void flow_free(flow_t *f)
{
	worker_t *w = f->w;
	unlink_flow(w, f);
	relay_free(f->relay);
	if (f->client.ssl)
		SSL_free(f->client.ssl);
	if (f->upstream.ssl)
		SSL_free(f->upstream.ssl);
	bytebuf_free(&f->peek);
	free(f->sysext);
	free(f->appid);
	bytebuf_free(&f->early);
	policy_unref(f->policy);
	atomic_fetch_sub(&f->eng->connections, 1);
	free(f);
}

void flow_handle_released(flow_t *f)
{
	if (--f->handles == 0 && f->closing)
		flow_free(f);
}

static void side_closed(side_t *s)
{
	flow_handle_released(side_flow(s));
}

static void side_active(side_t *s)
{
	flow_touch(side_flow(s));
}

void flow_side_init(flow_t *f, side_t *s, side_t *peer, const char *name)
{
	side_init(s, f->w, f, peer, name, NULL);
	s->on_closed = side_closed;
	s->on_activity = side_active;
}

/* ---- dialling upstream ---- */

static void dialled(void *ud, uv_tcp_t *tcp, int status, const char *why)
{
	flow_t *f = ud;
	f->dial = NULL;
	if (tcp) {
		side_attach(&f->upstream, (uv_stream_t *)tcp);
		f->handles++;
		uint16_t port;
		side_peer_ip(&f->upstream, f->dst_ip, sizeof f->dst_ip, &port);
	}
	f->dial_done(f, status, why);
}

int flow_dial(flow_t *f, const char *host, uint16_t port, void (*done)(flow_t *f, int status, const char *why))
{
	f->dial_done = done;
	return dial_start(&f->w->loop, host, port, f->eng->mark_upstream ? ENGINE_SOCKET_MARK : 0, dialled, f,
			  &f->dial);
}

void flow_dial_abort(flow_t *f, bool timed_out)
{
	dial_t *d = f->dial;
	if (!timed_out)
		f->dial = NULL;
	dial_abort(d, timed_out);
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

static void on_timer_closed(uv_handle_t *h)
{
	flow_handle_released(h->data);
}

/* A connection open in w's loop (conn, malloc'ed) becomes a flow; f is
 * zeroed memory the flow takes. */
static void flow_begin(worker_t *w, side_conn_t *conn, flow_t *f, listen_kind_t kind)
{
	engine_t *e = w->eng;
	atomic_fetch_add(&e->connections, 1);
	atomic_fetch_add(&e->flows_total, 1);
	f->w = w;
	f->eng = e;
	f->id = atomic_fetch_add(&e->next_flow_id, 1) + 1;
	flow_side_init(f, &f->client, &f->upstream, "client");
	flow_side_init(f, &f->upstream, &f->client, "upstream");
	side_attach(&f->client, &conn->stream);
	uv_timer_init(&w->loop, &f->timer);
	f->timer.data = f;
	f->handles = 2;
	f->policy = engine_policy_acquire(e);
	f->started = f->last_activity = uv_now(&w->loop);
	bytebuf_init(&f->peek, e->cfg.clienthello_bytes + 1024);
	bytebuf_init(&f->early, IOBUF_CAP);
	side_peer_ip(&f->client, f->client_ip, sizeof f->client_ip, &f->client_port);
	f->facts.client = f->client_ip;
	f->facts.host = f->host;
	f->mode = "-";
	link_flow(w, f);

	switch (kind) {
	case LISTEN_EXPLICIT:
		f->facts.source = FLOW_SOURCE_EXPLICIT;
		explicit_start(f);
		break;
	case LISTEN_SYSEXT:
		f->facts.source = FLOW_SOURCE_SYSEXT;
		sysext_start(f);
		break;
	case LISTEN_TRANSPARENT:
		f->facts.source = FLOW_SOURCE_TRANSPARENT;
		transparent_start(f);
		break;
	}
}

static void flow_accept(worker_t *w, uv_stream_t *server, listen_kind_t kind)
{
	engine_t *e = w->eng;
	if (w->stopping)
		return;
	if (atomic_load(&e->connections) >= e->cfg.max_connections) {
		refuse(w, server);
		return;
	}
	side_conn_t *conn = malloc(sizeof *conn);
	flow_t *f = calloc(1, sizeof *f);
	if (!conn || !f) {
		free(conn);
		free(f);
		return;
	}
	conn_init(&w->loop, server, conn);
	if (uv_accept(server, &conn->stream) != 0) {
		uv_close(&conn->handle, free_handle);
		free(f);
		return;
	}
	flow_begin(w, conn, f, kind);
}

static void flow_adopt(worker_t *w, int fd, listen_kind_t kind)
{
	engine_t *e = w->eng;
	side_conn_t *conn = NULL;
	flow_t *f = NULL;
	/* over the limit (reached since the hand-over), the connection is just closed */
	if (w->stopping || atomic_load(&e->connections) >= e->cfg.max_connections ||
	    !(conn = malloc(sizeof *conn)) || !(f = calloc(1, sizeof *f))) {
		free(conn);
		close(fd);
		return;
	}
	int r;
	if (kind == LISTEN_SYSEXT) {
		uv_pipe_init(&w->loop, &conn->pipe, 0);
		r = uv_pipe_open(&conn->pipe, fd);
	} else {
		uv_tcp_init(&w->loop, &conn->tcp);
		r = uv_tcp_open(&conn->tcp, fd);
	}
	if (r != 0) {
		close(fd);
		uv_close(&conn->handle, free_handle);
		free(f);
		return;
	}
	flow_begin(w, conn, f, kind);
}

/* Draining: a flow whose relay rests between messages ends now. */
static void flow_end_at_rest(worker_t *w)
{
	for (flow_t *f = w->conns, *next; f; f = next) {
		next = f->next; /* ending a flow may unlink it */
		if (f->relay && !f->closing)
			relay_end_if_at_rest(f->relay);
	}
}

static void flow_close_all(worker_t *w)
{
	for (flow_t *f = w->conns, *next; f; f = next) {
		next = f->next;
		flow_close(f, "shutdown", NULL);
	}
}

const worker_hooks_t flow_worker_hooks = {flow_accept, flow_adopt, flow_end_at_rest, flow_close_all};

/* ---- the log line ---- */

static void flow_log(flow_t *f)
{
	if (!log_enabled(LOG_INFO))
		return;
	log_line_t l;
	log_begin(&l, LOG_INFO, "flow_end");
	log_kv_u64(&l, "flow", f->id);
	log_kv_u64(&l, "worker", f->w->index);
	log_kv_str(&l, "src", f->client_ip);
	log_kv_u64(&l, "src_port", f->client_port);
	static const char *const sources[] = {"explicit", "transparent", "sysext"};
	log_kv_str(&l, "source", sources[f->facts.source]);
	if (f->facts.app.pid || f->facts.app.uid) {
		log_kv_u64(&l, "pid", (uint64_t)f->facts.app.pid);
		log_kv_u64(&l, "uid", (uint64_t)f->facts.app.uid);
	}
	if (f->facts.app.path) {
		log_kv_str(&l, "app", f->facts.app.path);
		log_kv_str(&l, "signing_id", f->facts.app.signing_id);
		log_kv_str(&l, "anchor", f->facts.app.anchor);
	}
	log_kv_str(&l, "host", f->host[0] ? f->host : NULL);
	log_kv_u64(&l, "port", f->port);
	log_kv_str(&l, "sni", f->sni[0] ? f->sni : NULL);
	log_kv_str(&l, "dst", f->dst_ip[0] ? f->dst_ip : NULL);
	log_kv_str(&l, "mode", f->mode);
	log_kv_str(&l, "verdict", verdict_name(f->verdict.kind));
	log_kv_str(&l, "rule", f->verdict.rule[0] ? f->verdict.rule : NULL);
	log_kv_str(&l, "reason", f->verdict.reason[0] ? f->verdict.reason : NULL);
	log_kv_str(&l, "tls", side_tls_version(&f->client));
	log_kv_str(&l, "up_tls", side_tls_version(&f->upstream));
	if (f->upstream.ssl && f->upstream.handshake_done)
		log_kv_str(&l, "up_resumed", SSL_session_reused(f->upstream.ssl) ? "yes" : "no");
	log_kv_u64(&l, "requests", f->requests);
	log_kv_u64(&l, "client_in", f->client.bytes_in);
	log_kv_u64(&l, "client_out", f->client.bytes_out);
	log_kv_u64(&l, "up_in", f->upstream.bytes_in);
	log_kv_u64(&l, "up_out", f->upstream.bytes_out);
	log_kv_u64(&l, "ms", uv_now(&f->w->loop) - f->started);
	log_kv_str(&l, "state", flow_state_name(f->state));
	log_kv_str(&l, "end", f->end);
	if (f->end_detail[0])
		log_kv_str(&l, "detail", f->end_detail);
	log_end(&l);
}

/* The flow-log event: what was not inspected (or everything, per
 * report.flow_events) reaches the console too, so admins see the blind
 * spots. Flows nobody decided about (a client that came and went, the
 * system extension's control connections) are not flows worth a record. */
static void flow_event(flow_t *f)
{
	bool decided = strcmp(f->mode, "-") && strcmp(f->mode, "control");
	if (!decided || !report_want_flow_event(!strcmp(f->mode, "inspect")))
		return;
	event_t e = {.kind = EVENT_FLOW,
		     .verdict = &f->verdict,
		     .facts = &f->facts,
		     .policy_version = f->policy->version_text,
		     .flow_id = f->id,
		     .client_ip = f->client_ip,
		     .tls = side_tls_version(&f->client),
		     .up_tls = side_tls_version(&f->upstream),
		     .mode = f->mode,
		     .bytes_up = f->client.bytes_in,
		     .bytes_down = f->client.bytes_out,
		     .duration_ms = uv_now(&f->w->loop) - f->started,
		     .requests = f->requests,
		     .end = f->end};
	event_new_id(e.id);
	event_emit(&e);
}

static void record_end(flow_t *f, const char *end, const char *fmt, va_list ap)
{
	if (f->end)
		return; /* the first reason is the real one */
	f->end = end;
	if (fmt)
		vsnprintf(f->end_detail, sizeof f->end_detail, fmt, ap);
	flow_log(f);
	report_count(REPORT_FLOWS);
	static const char *const sources[] = {[FLOW_SOURCE_EXPLICIT] = "explicit", [FLOW_SOURCE_TRANSPARENT] = "transparent",
					      [FLOW_SOURCE_SYSEXT] = "sysext"};
	metrics_add(stats_flows, 1, sources[f->facts.source], f->mode, end);
	flow_event(f);
}

void flow_close(flow_t *f, const char *end, const char *fmt, ...)
{
	if (f->closing)
		return;
	va_list ap;
	va_start(ap, fmt);
	record_end(f, end, fmt, ap);
	va_end(ap);
	f->closing = true;
	flow_dial_abort(f, false);
	f->state = FLOW_CLOSING;
	side_close(&f->client);
	side_close(&f->upstream);
	uv_timer_stop(&f->timer);
	uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

/* ---- graceful end: linger until the peers have our last bytes ---- */

static bool side_done(const side_t *s)
{
	return !s->stream || s->eof || s->closed;
}

static void linger_check(flow_t *f)
{
	if (side_done(&f->client) && side_done(&f->upstream))
		flow_close(f, "done", NULL);
}

static void linger_data(side_t *s, iobuf_t *b)
{
	(void)s;
	iobuf_put(b); /* whatever comes now is not wanted, only drained */
}

static void linger_eof(side_t *s)
{
	linger_check(side_flow(s));
}

static void linger_error(side_t *s, const char *why)
{
	(void)why;
	side_close(s);
	linger_check(side_flow(s));
}

static void linger_handshake(side_t *s)
{
	(void)s;
}

static const side_ops_t linger_ops = {linger_data, linger_eof, linger_error, linger_handshake};

void flow_finish(flow_t *f, const char *end, const char *fmt, ...)
{
	if (f->closing || f->lingering)
		return;
	va_list ap;
	va_start(ap, fmt);
	record_end(f, end, fmt, ap);
	va_end(ap);
	f->lingering = true;
	flow_dial_abort(f, false);
	side_t *sides[2] = {&f->client, &f->upstream};
	for (int i = 0; i < 2; i++) {
		side_t *s = sides[i];
		if (side_done(s))
			continue;
		/* Reading goes on (discarding) so that closing does not reset
		 * the connection while our last bytes are still in flight. */
		s->ops = &linger_ops;
		s->throttled = false;
		side_shutdown(s);
		side_read(s, true);
	}
	flow_idle(f, 0);
	flow_deadline(f, 2000, "linger");
	linger_check(f);
}

/* ---- timer ---- */

static void rearm(flow_t *f);

static void on_timer(uv_timer_t *t)
{
	flow_t *f = t->data;
	uint64_t now = uv_now(t->loop);
	if (f->deadline && now >= f->deadline) {
		const char *what = f->deadline_what ? f->deadline_what : "stage";
		f->deadline = 0;
		if (f->lingering) {
			flow_close(f, "done", NULL);
			return;
		}
		if (f->state == FLOW_DIAL && f->dial) {
			flow_dial_abort(f, true); /* the dial's callback answers the client */
			return;
		}
		if (f->state == FLOW_HTTP && f->relay && relay_on_timeout(f->relay, what))
			return;
		flow_close(f, "timeout", "%s timed out", what);
		return;
	}
	if (f->idle_ms && now - f->last_activity >= f->idle_ms) {
		if (f->state == FLOW_HTTP && f->relay && relay_on_timeout(f->relay, "idle"))
			return;
		flow_close(f, "timeout", "idle for %u ms", f->idle_ms);
		return;
	}
	rearm(f);
}

static void rearm(flow_t *f)
{
	if (f->closing)
		return;
	uint64_t next = f->deadline;
	if (f->idle_ms) {
		uint64_t idle_at = f->last_activity + f->idle_ms;
		if (!next || idle_at < next)
			next = idle_at;
	}
	if (!next) {
		uv_timer_stop(&f->timer);
		return;
	}
	uint64_t now = uv_now(f->timer.loop);
	uv_timer_start(&f->timer, on_timer, next > now ? next - now : 0, 0);
}

void flow_deadline(flow_t *f, uint32_t ms, const char *what)
{
	f->deadline = ms ? uv_now(f->timer.loop) + ms : 0;
	f->deadline_what = what;
	rearm(f);
}

void flow_idle(flow_t *f, uint32_t ms)
{
	if (f->idle_ms == ms)
		return;
	f->idle_ms = ms;
	rearm(f);
}

void flow_set_state(flow_t *f, flow_state_t s)
{
	f->state = s;
}

/* ---- decisions ---- */

void flow_set_destination(flow_t *f, const char *host, uint16_t port)
{
	snprintf(f->host, sizeof f->host, "%s", host);
	f->port = port;
	f->facts.host = f->host;
	f->facts.port = port;
}

void flow_decide(flow_t *f)
{
	f->facts.sni = f->sni[0] ? f->sni : NULL;
	f->facts.dst_ip = f->dst_ip[0] ? f->dst_ip : NULL;
	memset(&f->verdict, 0, sizeof f->verdict);
	f->policy->ops->on_flow(f->policy, f->w, &f->facts, &f->verdict);
}

void flow_event_init(flow_t *f, event_t *e, const char *stage, const verdict_t *v, const http_head_t *request)
{
	*e = (event_t){.stage = stage,
		       .verdict = v,
		       .facts = &f->facts,
		       .policy_version = f->policy->version_text,
		       .flow_id = f->id,
		       .client_ip = f->client_ip,
		       .tls = side_tls_version(&f->client),
		       .up_tls = side_tls_version(&f->upstream)};
	event_new_id(e->id);
	if (request) {
		const char *t = http_head_str(request, request->target_off);
		const char *q = memchr(t, '?', request->target_len);
		e->method = http_head_str(request, request->method_off);
		e->method_len = request->method_len;
		e->path = t;
		e->path_len = q ? (size_t)(q - t) : request->target_len;
	}
}

void flow_report_decision(flow_t *f, const char *note)
{
	event_t e;
	flow_event_init(f, &e, "flow", &f->verdict, NULL);
	e.up_tls = NULL; /* the flow stage names the client's TLS only */
	e.note = note;
	event_emit(&e);
	memcpy(f->event_id, e.id, sizeof f->event_id);
}

