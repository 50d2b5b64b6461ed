/*
 * libFuzzer: WebSocket frames (http/ws.h) as a client or a server would
 * send them, cut where the first byte says. Whatever arrives, the parser
 * ends in OK, STOPPED or ERROR with a close code and a reason; no message
 * is over the limit and no control payload over 125 bytes; every message
 * it hands out, framed again by the writer (masked or not), parses back to
 * the same bytes, as the relay relies on when it re-frames.
 */
#include "http/ws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT 4096

typedef struct {
	bool from_client;
	uint8_t *again;  /* what the re-parse saw */
	size_t again_len;
	int again_op;
} check_t;

static bool reparsed(void *ud, int op, uint8_t *data, size_t len)
{
	check_t *c = ud;
	c->again_op = op;
	c->again_len = len;
	if (!data)
		abort(); /* even an empty message comes with a valid pointer */
	memcpy(c->again, data, len);
	return true;
}

static bool control_again(void *ud, int op, const uint8_t *data, size_t len)
{
	(void)ud, (void)op, (void)data, (void)len;
	return true;
}

static const ws_cbs_t again_cbs = {reparsed, control_again};

static bool message(void *ud, int op, uint8_t *data, size_t len)
{
	check_t *c = ud;
	if (len > LIMIT || (op != WS_OP_TEXT && op != WS_OP_BINARY))
		abort();
	static const uint8_t key[4] = {1, 2, 3, 4};
	bytebuf_t b;
	bytebuf_init(&b, 0);
	if (!ws_frame_append(&b, op, data, len, c->from_client ? key : NULL))
		abort();
	uint8_t copy[LIMIT];
	check_t c2 = {.from_client = c->from_client, .again = copy, .again_len = (size_t)-1};
	ws_parser_t p;
	ws_parser_init(&p, c->from_client, LIMIT, &again_cbs, &c2);
	if (ws_parser_feed(&p, (const uint8_t *)b.data, b.len) != WS_OK || c2.again_len != len || c2.again_op != op ||
	    (len && memcmp(copy, data, len)))
		abort();
	ws_parser_free(&p);
	bytebuf_free(&b);
	return true;
}

static bool control(void *ud, int op, const uint8_t *data, size_t len)
{
	(void)ud;
	if (!data || len > WS_CONTROL_MAX || (op != WS_OP_CLOSE && op != WS_OP_PING && op != WS_OP_PONG))
		abort();
	return len != 3; /* sometimes the caller stops the parser */
}

static const ws_cbs_t cbs = {message, control};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cut = (size_t)(data[0] & 0x3F) + 1;
	bool from_client = data[0] & 0x80;
	data++, size--;
	check_t c = {.from_client = from_client};
	ws_parser_t p;
	ws_parser_init(&p, from_client, LIMIT, &cbs, &c);
	ws_status_t st = WS_OK;
	for (size_t at = 0; at < size && st == WS_OK; at += cut)
		st = ws_parser_feed(&p, data + at, size - at < cut ? size - at : cut);
	if (st == WS_ERROR && (!p.error || (p.error_code != WS_CLOSE_PROTOCOL && p.error_code != WS_CLOSE_TOO_BIG)))
		abort();
	if (p.msg.len > LIMIT || p.msg.alloc > LIMIT + 64 * 1024)
		abort();
	ws_parser_free(&p);
	return 0;
}
