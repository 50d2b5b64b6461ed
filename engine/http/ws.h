/*
 * ws: the WebSocket frame layer (RFC 6455 section 5), one parser per
 * direction. It reads bytes as they come in any cut, checks every frame
 * header, unmasks payloads, reassembles fragmented messages and reports
 * through the callbacks it is given:
 *   on_message  a whole text or binary message, unmasked, writable (the
 *               caller may mask findings in place before re-framing it)
 *   on_control  a ping, pong or close (payload <= 125 bytes)
 * It knows nothing of flows or policies: what to do with a message is the
 * caller's business (http/wsrelay.c). A callback returns false to stop the
 * parser (the caller is closing): the feed then returns WS_STOPPED.
 *
 * What it refuses, with the close code RFC 6455 7.4.1 names:
 *   1002  reserved bits set (no extension is ever negotiated through
 *         dlpgate), an unknown opcode, a fragmented or > 125 byte control
 *         frame, a continuation with no message open or a new message
 *         inside one, a client frame without a mask or a server frame
 *         with one, a length not in its shortest form or over 2^63,
 *         a close payload of one byte, any frame after a close
 *   1009  a message (all its fragments) over max_message: it is never
 *         held whole, so memory per parser is bounded by max_message
 *         plus a few bytes of header.
 * The writer (ws_frame_header, ws_mask) frames what the relay re-emits.
 */
#ifndef DLPGATE_WS_H
#define DLPGATE_WS_H

#include "core/bytebuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CONTROL_MAX 125
#define WS_HEADER_MAX 14

typedef struct {
	/* op: WS_OP_TEXT or WS_OP_BINARY; data is len bytes, writable, valid
	 * for the call. */
	bool (*on_message)(void *ud, int op, uint8_t *data, size_t len);
	/* op: WS_OP_CLOSE, WS_OP_PING or WS_OP_PONG. */
	bool (*on_control)(void *ud, int op, const uint8_t *data, size_t len);
} ws_cbs_t;

typedef enum { WS_OK = 0, WS_STOPPED, WS_ERROR } ws_status_t;

typedef struct {
	const ws_cbs_t *cbs;
	void *ud;
	bool from_client;          /* frames must be masked, else must not be */
	size_t max_message;
	/* the frame being read */
	uint8_t hdr[WS_HEADER_MAX];
	uint8_t hdr_len, hdr_need;
	bool fin;
	uint8_t op;
	bool masked;
	uint8_t key[4];
	uint64_t left;             /* payload bytes still to come */
	uint64_t done;             /* payload bytes read (mask phase) */
	/* the message being reassembled (op 0: none open) */
	uint8_t msg_op;
	bytebuf_t msg;
	uint8_t ctl[WS_CONTROL_MAX];
	uint8_t ctl_len;
	bool closed;               /* a close frame went by */
	/* after WS_ERROR */
	uint16_t error_code;
	const char *error;
	/* counts, for the flow's log */
	uint64_t frames, messages;
} ws_parser_t;

void ws_parser_init(ws_parser_t *p, bool from_client, size_t max_message, const ws_cbs_t *cbs, void *ud);
void ws_parser_free(ws_parser_t *p);
/* All of data is consumed unless the result is WS_STOPPED or WS_ERROR. */
ws_status_t ws_parser_feed(ws_parser_t *p, const uint8_t *data, size_t len);

/* Writes a frame header for a payload of len into out (WS_HEADER_MAX
 * bytes); key: masking key (client frames) or NULL. Returns its length. */
size_t ws_frame_header(uint8_t *out, bool fin, int op, uint64_t len, const uint8_t key[4]);
/* XORs data with key, starting at byte offset of the payload. */
void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset);
/* Appends a whole frame (header, then payload masked with key if given). */
bool ws_frame_append(bytebuf_t *out, int op, const uint8_t *payload, size_t len, const uint8_t key[4]);

#endif
