/*
 * wsrelay: see wsrelay.h.
 *
 * Data flow for one read: side -> ws_data() -> the direction's parser ->
 * on_message / on_control -> frames appended to the direction's out buffer
 * -> one write to the other side at the end of the read. A message is
 * judged only when whole, so a secret split across fragments (or across
 * reads) is seen as one text.
 */
#include "http/wsrelay.h"

#include "core/log.h"
#include "core/stats.h"
#include "flow.h"
#include "http/inspect.h"
#include "http/relay.h"
#include "http/ws.h"
#include "net/worker.h"
#include "report/event.h"
#include "report/report.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wsrelay wsrelay_t;

typedef struct {
	wsrelay_t *ws;
	ws_parser_t parser;
	bool from_client;
	bytebuf_t out; /* frames for the other side, written once per read */
} ws_dir_t;

struct wsrelay {
	flow_t *f;
	http_head_t upgrade, switched; /* what on_message sees of the handshake */
	ws_dir_t up, down;             /* up: client to server */
	bool over;                     /* closing: parse nothing more */
};

#define OUT_KEEP (64 * 1024)
#define WS_DEFAULT_MAX (2u << 20)

void wsrelay_prepare_request(http_head_t *req)
{
	if (http_head_has_token(req, "upgrade", "websocket"))
		http_head_remove(req, "sec-websocket-extensions");
}

bool wsrelay_accepts(const http_head_t *req, const http_head_t *switched, const char **refusal)
{
	*refusal = NULL;
	if (!http_head_has_token(req, "upgrade", "websocket") || !http_head_has_token(switched, "upgrade", "websocket"))
		return false;
	if (http_head_count(switched, "sec-websocket-extensions")) {
		*refusal = "the server agreed to a WebSocket extension nobody offered (dlpgate reads only plain frames)";
		return false;
	}
	return true;
}

/* ---- output ---- */

static side_t *dest_of(ws_dir_t *d)
{
	return d->from_client ? &d->ws->f->upstream : &d->ws->f->client;
}

/* A frame on its way to d's destination: masked with a fresh key when it
 * goes to the server (RFC 6455 5.3: the key must not be predictable). */
static bool put_frame(ws_dir_t *d, int op, const uint8_t *payload, size_t len)
{
	uint8_t key[4];
	if (d->from_client && RAND_bytes(key, sizeof key) != 1)
		return false;
	return ws_frame_append(&d->out, op, payload, len, d->from_client ? key : NULL);
}

static bool flush_dir(ws_dir_t *d)
{
	bool ok = !d->out.len || side_write(dest_of(d), d->out.data, d->out.len);
	d->out.len = 0;
	if (d->out.alloc > OUT_KEEP) {
		bytebuf_free(&d->out);
		bytebuf_init(&d->out, 0);
	}
	return ok;
}

static void flush_both(wsrelay_t *ws)
{
	if (!flush_dir(&ws->up) || !flush_dir(&ws->down))
		flow_close(ws->f, "error", "a side went away while writing WebSocket frames");
}

/* Closes both ends with code: what was already judged goes first, then a
 * close frame each way, then the flow ends. */
static void close_both(wsrelay_t *ws, uint16_t code, const char *end, const char *why)
{
	if (ws->over)
		return;
	ws->over = true;
	uint8_t payload[WS_CONTROL_MAX];
	payload[0] = (uint8_t)(code >> 8);
	payload[1] = (uint8_t)code;
	int n = snprintf((char *)payload + 2, sizeof payload - 2, "dlpgate: %s", why);
	size_t len = 2 + (n < 0 ? 0 : (size_t)n < sizeof payload - 2 ? (size_t)n : sizeof payload - 3);
	put_frame(&ws->up, WS_OP_CLOSE, payload, len);
	put_frame(&ws->down, WS_OP_CLOSE, payload, len);
	flush_both(ws);
	flow_finish(ws->f, end, "websocket close %u: %s", code, why);
}

/* ---- decisions ---- */

static void report(wsrelay_t *ws, const verdict_t *v, const policy_msg_t *m, const char *note, uint64_t since,
		   char id[EVENT_ID_LEN])
{
	event_t e;
	flow_event_init(ws->f, &e, "message", v, &ws->upgrade);
	e.msg = m;
	e.body_bytes = m ? m->body_size : 0;
	e.note = note;
	e.latency_us = since ? (uv_hrtime() - since) / 1000 : 0;
	memcpy(id, e.id, EVENT_ID_LEN);
	event_emit(&e);
}

static bool eventful(const verdict_t *v, const policy_msg_t *m)
{
	if (v->kind == VERDICT_BLOCK || v->redact || v->error)
		return true;
	for (uint32_t i = 0; i < m->n_findings; i++)
		if (m->findings[i].count || m->findings[i].timed_out)
			return true;
	return false;
}

static void count(const verdict_t *v, const policy_msg_t *m)
{
	report_count(v->kind == VERDICT_BLOCK ? REPORT_BLOCK : v->redact ? REPORT_REDACT : REPORT_PASS);
	if (v->monitor)
		report_count(REPORT_MONITOR);
	if (v->error)
		report_count(REPORT_POLICY_ERRORS);
	metrics_add(stats_messages, 1, "message", NULL, NULL);
	for (uint32_t i = 0; m && i < m->n_findings; i++)
		metrics_add(stats_detector_hits, m->findings[i].count, m->findings[i].name, NULL, NULL);
}

static bool on_message(void *ud, int op, uint8_t *data, size_t len)
{
	ws_dir_t *d = ud;
	wsrelay_t *ws = d->ws;
	flow_t *f = ws->f;
	policy_ws_t info = {.from_server = !d->from_client, .binary = op == WS_OP_BINARY};
	uint64_t since = uv_hrtime();
	inspect_result_t r;
	inspect_ws_message(f->policy, f->w, &f->facts, &ws->upgrade, &ws->switched, &info, data, len, &r);
	char id[EVENT_ID_LEN] = "";
	if (r.shadow.policy)
		report_count_shadow(shadow_differs(&r.shadow, &r.verdict));
	if (eventful(&r.verdict, &r.msg) || r.note)
		report(ws, &r.verdict, &r.msg, r.note, since, id);
	count(&r.verdict, &r.msg);
	bool go = r.verdict.kind != VERDICT_BLOCK || r.verdict.monitor;
	if (go) {
		/* out is data, masked in place where the policy redacted */
		if (!put_frame(d, op, r.out, r.out_len)) {
			inspect_result_free(&r);
			flow_close(f, "error", "out of memory framing a WebSocket message");
			ws->over = true;
			return false;
		}
	} else {
		f->verdict = r.verdict;
		char why[100];
		snprintf(why, sizeof why, "blocked by policy (event %s)", id);
		close_both(ws, WS_CLOSE_POLICY, "blocked", why);
	}
	inspect_result_free(&r);
	return go;
}

static bool on_control(void *ud, int op, const uint8_t *data, size_t len)
{
	ws_dir_t *d = ud;
	if (!put_frame(d, op, data, len)) {
		flow_close(d->ws->f, "error", "out of memory framing a WebSocket control frame");
		d->ws->over = true;
		return false;
	}
	return true;
}

static const ws_cbs_t ws_cbs = {on_message, on_control};

/* The parser refused what a side sent: both ends hear why, and so does
 * the admin (an oversize message is data that could not be read). */
static void refuse(ws_dir_t *d)
{
	wsrelay_t *ws = d->ws;
	const ws_parser_t *p = &d->parser;
	verdict_t v;
	memset(&v, 0, sizeof v);
	bool too_big = p->error_code == WS_CLOSE_TOO_BIG;
	verdict_set(&v, VERDICT_BLOCK, too_big ? "inspect.max_bytes" : "websocket", "%s %s: %s",
		    d->from_client ? "client" : "server", too_big ? "WebSocket message not inspectable" : "WebSocket protocol error",
		    p->error);
	policy_msg_t m;
	memset(&m, 0, sizeof m);
	char id[EVENT_ID_LEN];
	report(ws, &v, &m, too_big ? "oversize" : "protocol-error", 0, id);
	count(&v, NULL);
	ws->f->verdict = v;
	close_both(ws, p->error_code, too_big ? "blocked" : "protocol-error", p->error);
}

static void feed(ws_dir_t *d, const char *data, size_t len)
{
	wsrelay_t *ws = d->ws;
	if (ws->over || !len)
		return;
	if (ws_parser_feed(&d->parser, (const uint8_t *)data, len) == WS_ERROR)
		refuse(d);
	else if (!ws->over)
		flush_both(ws);
}

/* ---- side events ---- */

static wsrelay_t *ws_of(side_t *s)
{
	return relay_websocket(side_flow(s)->relay);
}

static void ws_data(side_t *s, iobuf_t *b)
{
	wsrelay_t *ws = ws_of(s);
	feed(s == &ws->f->client ? &ws->up : &ws->down, b->data, b->len);
	iobuf_put(b);
}

static void side_ended(wsrelay_t *ws, side_t *s)
{
	flow_t *f = ws->f;
	if (ws->over)
		return;
	side_shutdown(s->peer);
	if (f->client.eof && f->upstream.eof) {
		ws->over = true;
		flow_finish(f, "done", "websocket: %llu messages up, %llu down",
			    (unsigned long long)ws->up.parser.messages, (unsigned long long)ws->down.parser.messages);
	}
}

static void ws_eof(side_t *s)
{
	side_ended(ws_of(s), s);
}

static void ws_error(side_t *s, const char *why)
{
	flow_close(side_flow(s), "error", "%s: %s", s->name, why);
}

static void ws_handshake(side_t *s)
{
	(void)s;
}

static const side_ops_t ws_ops = {ws_data, ws_eof, ws_error, ws_handshake};

/* ---- starting ---- */

static void dir_init(wsrelay_t *ws, ws_dir_t *d, bool from_client, size_t max_message)
{
	d->ws = ws;
	d->from_client = from_client;
	ws_parser_init(&d->parser, from_client, max_message, &ws_cbs, d);
	bytebuf_init(&d->out, 0);
}

wsrelay_t *wsrelay_start(flow_t *f, const http_head_t *upgrade, const http_head_t *switched, const char *client_rest,
			 size_t client_len, const char *server_rest, size_t server_len)
{
	wsrelay_t *ws = calloc(1, sizeof *ws);
	if (!ws || !http_head_copy(&ws->upgrade, upgrade, NULL) || !http_head_copy(&ws->switched, switched, NULL)) {
		wsrelay_free(ws);
		flow_close(f, "error", "out of memory starting a WebSocket");
		return NULL;
	}
	ws->f = f;
	/* A policy that reads no bodies (the config's) sets no limit: the
	 * Lua runtime's default then, so frames are still checked. */
	size_t max = f->policy->body_limits.max_bytes ? (size_t)f->policy->body_limits.max_bytes : WS_DEFAULT_MAX;
	dir_init(ws, &ws->up, true, max);
	dir_init(ws, &ws->down, false, max);
	f->mode = f->client.ssl ? "websocket-tls" : "websocket";
	f->client.ops = &ws_ops;
	f->upstream.ops = &ws_ops;
	flow_deadline(f, 0, NULL);
	flow_idle(f, f->eng->cfg.idle_timeout_ms);
	feed(&ws->down, server_rest, server_len);
	feed(&ws->up, client_rest, client_len);
	if (ws->over || f->closing)
		return ws;
	if (f->client.eof)
		side_ended(ws, &f->client);
	if (f->upstream.eof)
		side_ended(ws, &f->upstream);
	if (!ws->over) {
		side_read(&f->client, true);
		side_read(&f->upstream, true);
	}
	return ws;
}

void wsrelay_free(wsrelay_t *ws)
{
	if (!ws)
		return;
	ws_parser_free(&ws->up.parser);
	ws_parser_free(&ws->down.parser);
	bytebuf_free(&ws->up.out);
	bytebuf_free(&ws->down.out);
	http_head_free(&ws->upgrade);
	http_head_free(&ws->switched);
	free(ws);
}
