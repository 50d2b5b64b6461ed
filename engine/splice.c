/*
 * splice: the flow stage that copies bytes both ways untouched (bypassed,
 * pinned and non-HTTP flows, and WebSocket after its 101). On a plain side
 * a block read is the block written: no copy. Half-close is carried
 * across: EOF from one end becomes FIN (after close_notify on TLS sides) to
 * the other, and the flow ends when both directions are done.
 */
#include "flow.h"

static void splice_data(side_t *s, iobuf_t *b)
{
	if (!side_write_block(s->peer, b))
		flow_close(side_flow(s), "error", "%s gone while splicing", s->peer->name);
}

static void splice_eof(side_t *s)
{
	flow_t *f = side_flow(s);
	side_shutdown(s->peer);
	if (f->client.eof && f->upstream.eof)
		flow_finish(f, "done", NULL);
}

static void splice_error(side_t *s, const char *why)
{
	flow_close(side_flow(s), "error", "%s: %s", s->name, why);
}

static void splice_handshake(side_t *s)
{
	(void)s;
}

static const side_ops_t splice_ops = {splice_data, splice_eof, splice_error, splice_handshake};

void flow_splice(flow_t *f, const char *mode)
{
	f->mode = mode;
	flow_set_state(f, FLOW_SPLICE);
	f->client.ops = &splice_ops;
	f->upstream.ops = &splice_ops;
	bool ok = side_write(&f->upstream, f->peek.data, f->peek.len) &&
		  side_write(&f->client, f->early.data, f->early.len);
	bytebuf_free(&f->peek);
	bytebuf_free(&f->early);
	if (!ok) {
		flow_close(f, "error", "cannot write while starting to splice");
		return;
	}
	flow_deadline(f, 0, NULL);
	flow_idle(f, f->eng->cfg.idle_timeout_ms);
	/* A side that already ended before the splice began. */
	if (f->client.eof)
		side_shutdown(&f->upstream);
	if (f->upstream.eof)
		side_shutdown(&f->client);
	if (f->client.eof && f->upstream.eof) {
		flow_finish(f, "done", NULL);
		return;
	}
	side_read(&f->client, true);
	side_read(&f->upstream, true);
}
