/*
 * ws: see ws.h.
 *
 * The parser is a loop over three phases per frame: header (2 bytes, then
 * the extended length and mask key it announces), payload (unmasked as it
 * is copied into the message or control buffer) and completion (callbacks).
 * A frame's whole header is checked before any payload byte is taken, so a
 * frame that could not fit (control > 125, message over the limit) is
 * refused before anything is buffered.
 */
#include "http/ws.h"

#include <string.h>

#define WS_KEEP_IDLE (64 * 1024) /* a message buffer kept between messages */

void ws_parser_init(ws_parser_t *p, bool from_client, size_t max_message, const ws_cbs_t *cbs, void *ud)
{
	memset(p, 0, sizeof *p);
	p->cbs = cbs;
	p->ud = ud;
	p->from_client = from_client;
	p->max_message = max_message;
	p->hdr_need = 2;
	bytebuf_init(&p->msg, max_message);
}

void ws_parser_free(ws_parser_t *p)
{
	bytebuf_free(&p->msg);
}

static ws_status_t fail(ws_parser_t *p, uint16_t code, const char *why)
{
	p->error_code = code;
	p->error = why;
	return WS_ERROR;
}

static bool is_control(uint8_t op)
{
	return op & 0x8;
}

/* The first two bytes tell how long the header is. */
static ws_status_t header_start(ws_parser_t *p)
{
	uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
	p->fin = b0 & 0x80;
	p->op = b0 & 0x0F;
	p->masked = b1 & 0x80;
	if (p->closed)
		return fail(p, WS_CLOSE_PROTOCOL, "a frame after the close frame");
	if (b0 & 0x70)
		return fail(p, WS_CLOSE_PROTOCOL, "reserved bits set without a negotiated extension");
	if (p->op != WS_OP_CONT && p->op != WS_OP_TEXT && p->op != WS_OP_BINARY && p->op != WS_OP_CLOSE &&
	    p->op != WS_OP_PING && p->op != WS_OP_PONG)
		return fail(p, WS_CLOSE_PROTOCOL, "unknown opcode");
	if (p->masked != p->from_client)
		return fail(p, WS_CLOSE_PROTOCOL,
			    p->from_client ? "a client frame without a mask" : "a masked server frame");
	uint8_t len7 = b1 & 0x7F;
	p->hdr_need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (p->masked ? 4 : 0));
	return WS_OK;
}

/* The whole header is in: length, key, and whether the frame may be. */
static ws_status_t header_end(ws_parser_t *p)
{
	uint8_t len7 = p->hdr[1] & 0x7F;
	uint64_t len = len7;
	size_t at = 2;
	if (len7 == 126) {
		len = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
		at = 4;
		if (len < 126)
			return fail(p, WS_CLOSE_PROTOCOL, "a frame length not in its shortest form");
	} else if (len7 == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p->hdr[2 + i];
		at = 10;
		if (len >> 63)
			return fail(p, WS_CLOSE_PROTOCOL, "a frame length over 2^63");
		if (len <= 0xFFFF)
			return fail(p, WS_CLOSE_PROTOCOL, "a frame length not in its shortest form");
	}
	if (p->masked)
		memcpy(p->key, p->hdr + at, 4);
	if (is_control(p->op)) {
		if (!p->fin)
			return fail(p, WS_CLOSE_PROTOCOL, "a fragmented control frame");
		if (len > WS_CONTROL_MAX)
			return fail(p, WS_CLOSE_PROTOCOL, "a control frame over 125 bytes");
		if (p->op == WS_OP_CLOSE && len == 1)
			return fail(p, WS_CLOSE_PROTOCOL, "a close frame with a one-byte payload");
		p->ctl_len = 0;
	} else if (p->op == WS_OP_CONT) {
		if (!p->msg_op)
			return fail(p, WS_CLOSE_PROTOCOL, "a continuation frame with no message open");
	} else {
		if (p->msg_op)
			return fail(p, WS_CLOSE_PROTOCOL, "a new message inside a fragmented one");
		p->msg_op = p->op;
		p->msg.len = 0;
	}
	if (!is_control(p->op) && len > p->max_message - p->msg.len)
		return fail(p, WS_CLOSE_TOO_BIG, "a message over the inspection limit");
	if (!is_control(p->op) && len && !bytebuf_reserve(&p->msg, (size_t)len))
		return fail(p, WS_CLOSE_TOO_BIG, "out of memory holding a message");
	p->left = len;
	p->done = 0;
	p->frames++;
	return WS_OK;
}

/* A frame's payload is all in. */
static ws_status_t frame_end(ws_parser_t *p)
{
	p->hdr_len = 0;
	p->hdr_need = 2;
	if (is_control(p->op)) {
		if (p->op == WS_OP_CLOSE)
			p->closed = true;
		return p->cbs->on_control(p->ud, p->op, p->ctl, p->ctl_len) ? WS_OK : WS_STOPPED;
	}
	if (!p->fin)
		return WS_OK;
	int op = p->msg_op;
	p->msg_op = 0;
	p->messages++;
	/* an empty message has no buffer: hand out a valid pointer anyway */
	uint8_t *data = p->msg.data ? (uint8_t *)p->msg.data : p->ctl;
	bool go = p->cbs->on_message(p->ud, op, data, p->msg.len);
	p->msg.len = 0;
	if (p->msg.alloc > WS_KEEP_IDLE) {
		/* idle WebSockets stay small: a big message's room goes back */
		size_t cap = p->msg.cap;
		bytebuf_free(&p->msg);
		bytebuf_init(&p->msg, cap);
	}
	return go ? WS_OK : WS_STOPPED;
}

ws_status_t ws_parser_feed(ws_parser_t *p, const uint8_t *data, size_t len)
{
	if (p->error)
		return WS_ERROR;
	while (len) {
		if (p->hdr_len < p->hdr_need) {
			size_t n = (size_t)(p->hdr_need - p->hdr_len);
			if (n > len)
				n = len;
			memcpy(p->hdr + p->hdr_len, data, n);
			p->hdr_len = (uint8_t)(p->hdr_len + n);
			data += n;
			len -= n;
			if (p->hdr_len < p->hdr_need)
				return WS_OK;
			ws_status_t st = p->hdr_len == 2 ? header_start(p) : WS_OK;
			if (st != WS_OK)
				return st;
			if (p->hdr_len < p->hdr_need)
				continue; /* extended length or key still to come */
			if ((st = header_end(p)) != WS_OK)
				return st;
			if (p->left == 0 && (st = frame_end(p)) != WS_OK)
				return st;
			continue;
		}
		size_t n = p->left < len ? (size_t)p->left : len;
		uint8_t *dst;
		if (is_control(p->op)) {
			dst = p->ctl + p->ctl_len;
			p->ctl_len = (uint8_t)(p->ctl_len + n);
		} else {
			dst = (uint8_t *)p->msg.data + p->msg.len;
			p->msg.len += n;
		}
		memcpy(dst, data, n);
		if (p->masked)
			ws_mask(dst, n, p->key, p->done);
		p->done += n;
		p->left -= n;
		data += n;
		len -= n;
		if (p->left == 0) {
			ws_status_t st = frame_end(p);
			if (st != WS_OK)
				return st;
		}
	}
	return WS_OK;
}

size_t ws_frame_header(uint8_t *out, bool fin, int op, uint64_t len, const uint8_t key[4])
{
	size_t n = 0;
	out[n++] = (uint8_t)((fin ? 0x80 : 0) | (op & 0x0F));
	uint8_t m = key ? 0x80 : 0;
	if (len < 126) {
		out[n++] = (uint8_t)(m | len);
	} else if (len <= 0xFFFF) {
		out[n++] = m | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = m | 127;
		for (int i = 7; i >= 0; i--)
			out[n++] = (uint8_t)(len >> (8 * i));
	}
	if (key) {
		memcpy(out + n, key, 4);
		n += 4;
	}
	return n;
}

void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		data[i] ^= key[(offset + i) & 3];
}

bool ws_frame_append(bytebuf_t *out, int op, const uint8_t *payload, size_t len, const uint8_t key[4])
{
	uint8_t h[WS_HEADER_MAX];
	size_t hl = ws_frame_header(h, true, op, len, key);
	size_t at = out->len + hl;
	if (!bytebuf_append(out, h, hl) || (len && !bytebuf_append(out, payload, len)))
		return false;
	if (key)
		ws_mask((uint8_t *)out->data + at, len, key, 0);
	return true;
}
