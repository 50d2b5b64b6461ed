/*
 * codec: HTTP/1.1 message parsing on llhttp, with the checks llhttp leaves
 * to us and the limits that keep one peer from costing unbounded memory.
 *
 * llhttp (8.1, strict about Content-Length/Transfer-Encoding conflicts and
 * chunk sizes) does the tokenising. On top, the codec:
 *   - accumulates the head into an http_head_t capped at limits.header_bytes
 *     and limits.header_count (431 for requests, 502 for responses);
 *   - rejects what llhttp tolerates but a smuggling-safe proxy must not:
 *     bare LF or bare CR anywhere in the framing (start line, fields, chunk
 *     lines, trailers), obs-fold continuation lines, HTTP versions other than
 *     1.0/1.1, a missing or repeated Host in HTTP/1.1 requests;
 *   - hands the caller head, body spans and end-of-message, so framing is
 *     re-emitted by our own code and never copied from the sender.
 *
 * Framing bytes are every byte fed that is not reported as body: the codec
 * scans exactly those, across feed calls, so the check cannot be split.
 *
 * The codec is pure (no I/O) and a libFuzzer target (tests/fuzz/fuzz_http.c).
 */
#ifndef DLPGATE_HTTP_CODEC_H
#define DLPGATE_HTTP_CODEC_H

#include "http/head.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

/* Return values of the callbacks. */
enum {
	HTTP_CB_GO = 0,
	HTTP_CB_NO_BODY = 1, /* on_head of a response: the message has no body */
	HTTP_CB_PAUSE = 2,   /* stop; http_codec_resume() continues */
	HTTP_CB_ERROR = -1,  /* caller set the error with http_codec_fail() */
};

typedef struct http_codec http_codec_t;

typedef struct {
	int (*on_begin)(void *ud);
	int (*on_head)(void *ud, http_head_t *head);
	int (*on_body)(void *ud, const char *data, size_t len);
	/* trailers is NULL when the message had none */
	int (*on_end)(void *ud, http_head_t *trailers);
} http_codec_cbs_t;

typedef enum { HELD_NONE = 0, HELD_HEAD, HELD_END } held_t;

typedef enum {
	HTTP_FEED_OK,       /* all bytes consumed */
	HTTP_FEED_PAUSED,   /* a callback paused; *consumed says where */
	HTTP_FEED_UPGRADE,  /* message ended with a protocol switch; the rest is not HTTP */
	HTTP_FEED_ERROR     /* see http_codec_error_*() */
} http_feed_t;

struct http_codec {
	llhttp_t parser;
	llhttp_settings_t settings;
	const http_codec_cbs_t *cbs;
	void *ud;
	http_head_t head;
	http_head_t trailers;
	bool in_head;        /* expecting or reading a head (not in a body) */
	bool in_trailers;
	bool field_open;     /* last span was a field name (value not yet begun) */
	bool value_open;
	bool head_ready;     /* head delivered, message not yet ended */
	held_t held;         /* what llhttp paused on for the framing check */
	bool llhttp_paused;  /* llhttp itself is paused (a callback asked) */
	bool user_paused;    /* the caller must http_codec_resume() */
	uint32_t head_budget; /* raw bytes a head may still use */
	uint32_t max_head_bytes;
	/* framing check state */
	const char *scan_pos;
	unsigned char prev;
	/* error */
	int error_status;
	const char *error_reason;
};

void http_codec_init(http_codec_t *c, bool is_request, uint32_t max_head_bytes, uint32_t max_fields,
		     const http_codec_cbs_t *cbs, void *ud);
void http_codec_free(http_codec_t *c);

http_feed_t http_codec_feed(http_codec_t *c, const char *data, size_t len, size_t *consumed);
/* The peer closed: completes a close-delimited message, or errors if a
 * message was cut short. */
http_feed_t http_codec_finish(http_codec_t *c);
void http_codec_resume(http_codec_t *c);
void http_codec_resume_after_upgrade(http_codec_t *c);

/* Do these first bytes start an HTTP request line ("TOKEN SP")?
 * 1 yes, 0 no, -1 too few bytes to tell. */
int http_looks_like_request(const char *p, size_t n);

/* From inside a callback: fail the message with an HTTP status and reason. */
int http_codec_fail(http_codec_t *c, int status, const char *reason);

static inline int http_codec_error_status(const http_codec_t *c) { return c->error_status; }
static inline const char *http_codec_error_reason(const http_codec_t *c) { return c->error_reason; }
/* True while a message is being parsed (its first byte has been seen). */
static inline bool http_codec_mid_message(const http_codec_t *c)
{
	return c->head_ready || (c->in_head && c->head_budget < c->max_head_bytes);
}
/* llhttp's keep-alive judgement for the message that just ended. */
static inline bool http_codec_keep_alive(const http_codec_t *c) { return llhttp_should_keep_alive(&c->parser); }
static inline bool http_codec_needs_eof(const http_codec_t *c) { return llhttp_message_needs_eof(&c->parser); }

#endif
