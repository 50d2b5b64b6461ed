/*
 * tunnel: what a tunnel carries is decided from its first bytes.
 *
 * After CONNECT (or, later, a transparent or system-extension flow) the
 * upstream TCP connection is already up. The client's first bytes are
 * collected until they can be classified:
 *   - a TLS ClientHello: parsed by our own parser, then intercept.c
 *     decides and either splices or intercepts; one the parser refuses
 *     (an SSLv2-style hello among them) gets a fatal alert and is closed;
 *   - an HTTP request line: inspected in the clear by http/relay.c;
 *   - anything else: not inspectable: the policy says (on_uninspectable)
 *     whether it is spliced or refused, and the decision is reported.
 * If the upstream speaks first (SMTP, SSH banners...), the protocol is not
 * one the client opens: likewise.
 */
#include "flow.h"

#include "http/codec.h"
#include "http/relay.h"
#include "net/worker.h"
#include "tls/clienthello.h"
#include "intercept.h"

#include <string.h>

static void decide_clear(flow_t *f, bool http)
{
	f->facts.tls = false;
	flow_decide(f);
	switch (f->verdict.kind) {
	case VERDICT_BLOCK:
		flow_close(f, "blocked", "%s", f->verdict.reason);
		return;
	case VERDICT_BYPASS:
		flow_splice(f, "bypass");
		return;
	default:
		break;
	}
	if (http) {
		relay_start_tunnel(f);
		return;
	}
	if (flow_uninspectable(f, UNINSPECTABLE_NOT_HTTP, "the tunnel carries neither TLS nor HTTP"))
		flow_splice(f, "not-http");
	else
		flow_close(f, "blocked", "%s", f->verdict.reason);
}

static void classify(flow_t *f)
{
	const char *p = f->peek.data;
	size_t n = f->peek.len;
	if (n == 0)
		return;
	/* The parser says what is TLS (a handshake record, or an SSLv2-style
	 * hello) from the first byte or two. */
	clienthello_t ch;
	switch (clienthello_parse((const uint8_t *)p, n, f->eng->cfg.clienthello_bytes, &ch)) {
	case CH_NEED_MORE:
		return;
	case CH_OK:
		intercept_decide(f, &ch);
		return;
	case CH_MALFORMED:
	case CH_TOO_BIG: {
		/* The client hears why, as from any TLS server: a fatal alert,
		 * written at once (the socket takes 7 bytes). */
		const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, ch.alert};
		side_write(&f->client, alert, sizeof alert);
		f->mode = "refused";
		flow_close(f, "bad-clienthello", "%s", ch.error);
		return;
	}
	case CH_NOT_TLS:
		break;
	}
	int http = http_looks_like_request(p, n);
	if (http < 0)
		return;
	decide_clear(f, http == 1);
}

static void peek_data(side_t *s, iobuf_t *b)
{
	flow_t *f = side_flow(s);
	bool ok = bytebuf_append(&f->peek, b->data, b->len);
	iobuf_put(b);
	if (!ok) {
		f->mode = "refused";
		flow_close(f, "bad-clienthello", "first bytes larger than limits.clienthello_bytes");
		return;
	}
	classify(f);
}

static void peek_upstream_data(side_t *s, iobuf_t *b)
{
	flow_t *f = side_flow(s);
	bool ok = bytebuf_append(&f->early, b->data, b->len);
	iobuf_put(b);
	if (!ok) {
		flow_close(f, "error", "upstream sent too much before the client spoke");
		return;
	}
	/* The server speaks first: whatever this is, it is not a protocol we
	 * inspect. Ask the policy (it may block), then splice. */
	decide_clear(f, false);
	if (!f->closing && f->state == FLOW_SPLICE)
		f->mode = "server-first";
}

static void peek_eof(side_t *s)
{
	flow_t *f = side_flow(s);
	if (s == &f->client && f->peek.len == 0) {
		flow_finish(f, "client-eof", "client closed before sending anything");
		return;
	}
	if (s == &f->client) {
		/* Partial bytes and EOF: pass what there is along untouched. */
		decide_clear(f, false);
		return;
	}
	flow_finish(f, "upstream-eof", "upstream closed before the client spoke");
}

static void peek_error(side_t *s, const char *why)
{
	flow_close(side_flow(s), "error", "%s: %s", s->name, why);
}

static void peek_handshake(side_t *s)
{
	(void)s;
}

static const side_ops_t peek_ops = {peek_data, peek_eof, peek_error, peek_handshake};
static const side_ops_t peek_upstream_ops = {peek_upstream_data, peek_eof, peek_error, peek_handshake};

void flow_tunnel_start(flow_t *f)
{
	flow_set_state(f, FLOW_PEEK);
	f->client.ops = &peek_ops;
	f->upstream.ops = &peek_upstream_ops;
	flow_deadline(f, f->eng->cfg.handshake_timeout_ms, "first bytes");
	classify(f);
	if (f->state == FLOW_PEEK && !f->closing) {
		side_read(&f->client, true);
		side_read(&f->upstream, true);
	}
}
