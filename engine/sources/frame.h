/*
 * frame: the per-flow protocol between the macOS system extension and the
 * engine (schemas/flow-frame.md). One implementation of both directions:
 * the engine decodes requests and encodes replies; the extension (and the
 * Linux test client that plays it) does the opposite with the same code.
 *
 * The extension opens one unix-socket connection per flow and sends a
 * request frame: the destination, the host name when the OS knows it,
 * and who is connecting (pid, uid, executable, signing identity, anchor,
 * a digest of the audit token). The engine answers with a reply frame:
 * accept (raw bytes then flow both ways, with half-close), bypass with a
 * reason (the extension passes the flow through itself or closes it, as
 * configured), or reject (the flow is closed).
 *
 * A frame is a 10-byte prefix, "DLPF", the protocol version (u16, big
 * endian) and the length of what follows (u32, big endian, at most
 * FRAME_MAX_JSON), then that many bytes of JSON: one object, UTF-8, no
 * unknown fields. Decoding is strict and bounded: a short frame asks for
 * more, anything else that is not exactly right is an error that says
 * what is wrong, never a crash.
 */
#ifndef DLPGATE_FRAME_H
#define DLPGATE_FRAME_H

#include "core/bytebuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAGIC "DLPF"
#define FRAME_CONTROL_MAGIC "DLPC" /* the control connection: {"get": "bypass_table"} */
#define FRAME_VERSION 1
#define FRAME_PREFIX 10
#define FRAME_MAX_JSON 16384
#define FRAME_MAX_CONTROL (1 << 20) /* a bypass table may list thousands of names */

/* How the code behind a flow is signed, strongest first. */
typedef enum {
	FRAME_ANCHOR_APPLE = 0,    /* Apple platform code ("anchor apple") */
	FRAME_ANCHOR_APP_STORE,
	FRAME_ANCHOR_DEVELOPER_ID,
	FRAME_ANCHOR_ADHOC,
	FRAME_ANCHOR_UNSIGNED,
} frame_anchor_t;

typedef struct frame_request {
	char extension_version[32];
	char flow_id[64];
	char dst_ip[46];               /* numeric IPv4 or IPv6 */
	uint16_t dst_port;
	char hostname[254];            /* "" when the OS gave none; lower case */
	struct {
		int64_t pid, uid;
		char path[1024];           /* absolute */
		char signing_id[256];      /* "" for unsigned code */
		char team_id[16];          /* "" for Apple and unsigned code */
		frame_anchor_t anchor;
		char audit_token_sha256[65]; /* lower-case hex */
	} app;
} frame_request_t;

typedef enum { FRAME_ACCEPT = 0, FRAME_BYPASS, FRAME_REJECT } frame_verdict_t;

typedef struct {
	frame_verdict_t verdict;
	char reason[256];              /* for bypass and reject */
	char policy_version[64];       /* the engine's policy; a new one means a new bypass table */
} frame_reply_t;

typedef enum { FRAME_OK = 0, FRAME_NEED_MORE, FRAME_BAD } frame_status_t;

/* Appends the frame to out; false if out's cap refuses it or a field does
 * not fit the protocol (err says which). */
bool frame_request_encode(const frame_request_t *r, bytebuf_t *out, char *err, size_t errlen);
bool frame_reply_encode(const frame_reply_t *r, bytebuf_t *out);

/* Decodes the frame at the start of p[0..n). FRAME_OK: *r is filled and
 * *used is the frame's length (bytes after it are the flow's). FRAME_BAD:
 * err says why, for a log line and the reject reason. */
frame_status_t frame_request_decode(const uint8_t *p, size_t n, frame_request_t *r, size_t *used, char *err,
				    size_t errlen);
frame_status_t frame_reply_decode(const uint8_t *p, size_t n, frame_reply_t *r, size_t *used, char *err,
				  size_t errlen);

/* Control frames carry any JSON object (at most FRAME_MAX_CONTROL bytes). */
bool frame_control_encode(const char *json, size_t len, bytebuf_t *out);
/* FRAME_OK: *json (pointing into p) and *json_len are the payload. */
frame_status_t frame_control_decode(const uint8_t *p, size_t n, const char **json, size_t *json_len, size_t *used,
				    char *err, size_t errlen);

const char *frame_anchor_name(frame_anchor_t a);
const char *frame_verdict_name(frame_verdict_t v);

#endif
