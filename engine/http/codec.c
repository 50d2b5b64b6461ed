/*
 * codec: see codec.h. The llhttp callbacks below only collect; decisions
 * are the caller's (through http_codec_cbs_t) or the validation helpers'.
 */
#include "http/codec.h"

#include <stdlib.h>
#include <string.h>

#define CODEC(p) ((http_codec_t *)(p)->data)

static int fail(http_codec_t *c, int status, const char *reason)
{
	if (!c->error_status) {
		c->error_status = status;
		c->error_reason = reason;
	}
	return HPE_USER;
}

int http_codec_fail(http_codec_t *c, int status, const char *reason)
{
	fail(c, status, reason);
	return HTTP_CB_ERROR;
}

/* The status a too-big or malformed message earns: requests get 4xx from us,
 * a broken response becomes a 502 for the client. */
static int bad_status(const http_codec_t *c, int request_status)
{
	return c->head.is_request ? request_status : 502;
}

/* Checks framing bytes [from, to): CRLF only, no obs-fold. */
static bool scan_framing(http_codec_t *c, const char *from, const char *to)
{
	unsigned char prev = c->prev;
	for (const char *p = from; p < to; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '\n' && prev != '\r') {
			c->prev = ch;
			fail(c, bad_status(c, 400), "bare LF in message framing");
			return false;
		}
		if (prev == '\r' && ch != '\n') {
			fail(c, bad_status(c, 400), "bare CR in message framing");
			return false;
		}
		if (prev == '\n' && (ch == ' ' || ch == '\t')) {
			fail(c, bad_status(c, 400), "obsolete line folding in a header");
			return false;
		}
		prev = ch;
	}
	c->prev = prev;
	return true;
}

static http_head_t *cur_head(http_codec_t *c)
{
	return c->in_trailers ? &c->trailers : &c->head;
}

static int too_big(http_codec_t *c)
{
	return fail(c, bad_status(c, 431), c->in_trailers ? "trailer section larger than limits.header_bytes"
							   : "header block larger than limits.header_bytes");
}

static int on_message_begin(llhttp_t *p)
{
	http_codec_t *c = CODEC(p);
	http_head_reset(&c->head);
	http_head_reset(&c->trailers);
	c->in_head = true;
	c->in_trailers = false;
	c->field_open = c->value_open = false;
	c->head_ready = false;
	if (c->cbs->on_begin) {
		int r = c->cbs->on_begin(c->ud);
		if (r == HTTP_CB_PAUSE)
			return HPE_PAUSED;
		if (r < 0)
			return HPE_USER;
	}
	return 0;
}

/* Appends a span to the arena and grows the (off, len) it belongs to. */
static int grow(http_codec_t *c, http_head_t *h, uint32_t *off, uint32_t *len, const char *at, size_t n)
{
	if (*len == 0)
		*off = (uint32_t)h->arena.len;
	if (!bytebuf_append(&h->arena, at, n))
		return too_big(c);
	*len += (uint32_t)n;
	return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t n)
{
	http_codec_t *c = CODEC(p);
	return grow(c, &c->head, &c->head.method_off, &c->head.method_len, at, n);
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	http_codec_t *c = CODEC(p);
	return grow(c, &c->head, &c->head.target_off, &c->head.target_len, at, n);
}

static int on_status(llhttp_t *p, const char *at, size_t n)
{
	http_codec_t *c = CODEC(p);
	return grow(c, &c->head, &c->head.reason_off, &c->head.reason_len, at, n);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
	http_codec_t *c = CODEC(p);
	http_head_t *h = cur_head(c);
	if (!c->field_open) {
		/* A new field begins. */
		if (!http_head_new_field(h))
			return fail(c, bad_status(c, 431), "more header fields than limits.header_count");
		c->field_open = true;
		c->value_open = false;
	}
	http_field_t *f = &h->fields[h->n_fields - 1];
	return grow(c, h, &f->name_off, &f->name_len, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
	http_codec_t *c = CODEC(p);
	http_head_t *h = cur_head(c);
	c->field_open = false;
	c->value_open = true;
	http_field_t *f = &h->fields[h->n_fields - 1];
	return grow(c, h, &f->value_off, &f->value_len, at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
	http_codec_t *c = CODEC(p);
	http_head_t *h = cur_head(c);
	if (h->n_fields) {
		http_field_t *f = &h->fields[h->n_fields - 1];
		/* llhttp keeps trailing whitespace in the value; the canonical
		 * form does not. */
		while (f->value_len && (h->arena.data[f->value_off + f->value_len - 1] == ' ' ||
					h->arena.data[f->value_off + f->value_len - 1] == '\t'))
			f->value_len--;
	}
	c->field_open = c->value_open = false;
	return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
	http_codec_t *c = CODEC(p);
	/* A field with an empty value gets no value callbacks. */
	c->field_open = false;
	return 0;
}

static int check_request_head(http_codec_t *c)
{
	http_head_t *h = &c->head;
	if (h->major == 1 && h->minor == 1) {
		unsigned hosts = http_head_count(h, "host");
		if (hosts == 0)
			return fail(c, 400, "HTTP/1.1 request without a Host header");
		if (hosts > 1)
			return fail(c, 400, "more than one Host header");
	}
	if (h->target_len == 0)
		return fail(c, 400, "empty request target");
	return 0;
}

/* The head is parsed but not yet handed out: llhttp pauses here so the
 * framing bytes of the head can be checked (http_codec_feed) before anyone
 * acts on it. */
static int on_headers_complete(llhttp_t *p)
{
	http_codec_t *c = CODEC(p);
	http_head_t *h = &c->head;
	c->in_head = false;
	h->major = llhttp_get_http_major(p);
	h->minor = llhttp_get_http_minor(p);
	if (h->major != 1 || h->minor > 1)
		return fail(c, h->is_request ? 505 : 502, "HTTP version other than 1.0 or 1.1");
	if (h->is_request) {
		int r = check_request_head(c);
		if (r)
			return r;
	} else {
		h->status = (uint16_t)llhttp_get_status_code(p);
	}
	h->chunked = (p->flags & F_CHUNKED) != 0;
	h->has_length = (p->flags & F_CONTENT_LENGTH) != 0;
	h->content_length = h->has_length ? p->content_length : 0;
	h->upgrade = llhttp_get_upgrade(p) != 0;
	/* Transfer-Encoding other than a final chunked is refused in requests
	 * by llhttp; in responses it means close-delimited. Either way more
	 * than one Transfer-Encoding field is a smuggling shape. */
	if (http_head_count(h, "transfer-encoding") > 1)
		return fail(c, bad_status(c, 400), "more than one Transfer-Encoding header");
	c->held = HELD_HEAD;
	return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	http_codec_t *c = CODEC(p);
	/* Bytes before this span were framing (chunk size lines, CRLFs). */
	if (c->scan_pos && !scan_framing(c, c->scan_pos, at))
		return HPE_USER;
	c->scan_pos = at + n;
	c->prev = 0;
	int r = c->cbs->on_body(c->ud, at, n);
	if (r == HTTP_CB_PAUSE)
		return HPE_PAUSED;
	return r < 0 ? HPE_USER : 0;
}

static int on_chunk_header(llhttp_t *p)
{
	http_codec_t *c = CODEC(p);
	if (p->content_length == 0)
		c->in_trailers = true; /* last chunk: what follows are trailers */
	return 0;
}

/* Like the head, the end is held until the framing that ended it (last
 * chunk, trailers) has been checked. */
static int on_message_complete(llhttp_t *p)
{
	http_codec_t *c = CODEC(p);
	c->held = HELD_END;
	return HPE_PAUSED;
}

/* Hands out what llhttp paused on; the framing was checked. */
static http_feed_t deliver_held(http_codec_t *c)
{
	held_t what = c->held;
	c->held = HELD_NONE;
	llhttp_resume(&c->parser);
	int r;
	if (what == HELD_HEAD) {
		c->head_ready = true;
		r = c->cbs->on_head(c->ud, &c->head);
		if (r == HTTP_CB_NO_BODY) {
			/* What returning 1 from on_headers_complete would do. */
			c->parser.flags |= F_SKIPBODY;
			r = HTTP_CB_GO;
		}
	} else {
		c->head_ready = false;
		c->in_trailers = false;
		c->in_head = true; /* what follows is the next head */
		c->head_budget = c->max_head_bytes;
		r = c->cbs->on_end(c->ud, c->trailers.n_fields ? &c->trailers : NULL);
	}
	if (r == HTTP_CB_PAUSE) {
		c->user_paused = true;
		return HTTP_FEED_PAUSED;
	}
	if (r < 0) {
		fail(c, 500, "internal error");
		return HTTP_FEED_ERROR;
	}
	return HTTP_FEED_OK;
}

void http_codec_init(http_codec_t *c, bool is_request, uint32_t max_head_bytes, uint32_t max_fields,
		     const http_codec_cbs_t *cbs, void *ud)
{
	memset(c, 0, sizeof *c);
	llhttp_settings_init(&c->settings);
	c->settings.on_message_begin = on_message_begin;
	c->settings.on_method = on_method;
	c->settings.on_url = on_url;
	c->settings.on_status = on_status;
	c->settings.on_header_field = on_header_field;
	c->settings.on_header_field_complete = on_header_field_complete;
	c->settings.on_header_value = on_header_value;
	c->settings.on_header_value_complete = on_header_value_complete;
	c->settings.on_headers_complete = on_headers_complete;
	c->settings.on_body = on_body;
	c->settings.on_chunk_header = on_chunk_header;
	c->settings.on_message_complete = on_message_complete;
	llhttp_init(&c->parser, is_request ? HTTP_REQUEST : HTTP_RESPONSE, &c->settings);
	c->parser.data = c;
	c->cbs = cbs;
	c->ud = ud;
	c->max_head_bytes = max_head_bytes;
	c->head_budget = max_head_bytes;
	c->in_head = true; /* waiting for the first head */
	http_head_init(&c->head, is_request, max_head_bytes, max_fields);
	http_head_init(&c->trailers, is_request, max_head_bytes, max_fields);
}

void http_codec_free(http_codec_t *c)
{
	http_head_free(&c->head);
	http_head_free(&c->trailers);
}

static http_feed_t map_error(http_codec_t *c, llhttp_errno_t e)
{
	if (!c->error_status) {
		/* An llhttp verdict: framing the proxy refuses to guess at. */
		c->error_status = e == HPE_INVALID_VERSION ? bad_status(c, 505) : bad_status(c, 400);
		c->error_reason = llhttp_get_error_reason(&c->parser);
		if (!c->error_reason)
			c->error_reason = llhttp_errno_name(e);
	}
	return HTTP_FEED_ERROR;
}

http_feed_t http_codec_feed(http_codec_t *c, const char *data, size_t len, size_t *consumed)
{
	*consumed = 0;
	if (c->error_status)
		return HTTP_FEED_ERROR;
	if (c->user_paused)
		return HTTP_FEED_PAUSED;
	if (!data)
		data = "";
	/* Runs at least once, and once more after each held head or end is
	 * handed out: llhttp finishes what needs no more bytes (the end of a
	 * message without a body) only when it runs. */
	bool again;
	do {
		again = false;
		const char *p = data + *consumed;
		size_t n = len - *consumed;
		bool head_at_start = c->in_head;
		/* A head may only use its budget of raw bytes, whatever mix of
		 * whitespace and content it is made of. */
		if (head_at_start && n > c->head_budget) {
			if (c->head_budget == 0) {
				too_big(c);
				return HTTP_FEED_ERROR;
			}
			n = c->head_budget;
		}
		c->scan_pos = p;
		llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
		const char *stop = e == HPE_OK ? p + n : llhttp_get_error_pos(&c->parser);
		if (!stop || stop < p || stop > p + n)
			stop = p + n;
		size_t used = (size_t)(stop - p);
		if (head_at_start && c->in_head)
			c->head_budget -= (uint32_t)used;
		*consumed += used;
		if (e == HPE_OK || e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
			/* Framing consumed since the last body span; after an
			 * upgrade, the bytes up to the stop are still HTTP. */
			if (c->scan_pos && !scan_framing(c, c->scan_pos, stop)) {
				c->scan_pos = NULL;
				return HTTP_FEED_ERROR;
			}
		}
		c->scan_pos = NULL;
		switch (e) {
		case HPE_OK:
			break;
		case HPE_PAUSED:
			if (c->held) {
				http_feed_t st = deliver_held(c);
				if (st != HTTP_FEED_OK)
					return st;
				again = true;
				break;
			}
			c->llhttp_paused = true; /* a callback asked (on_begin, on_body) */
			c->user_paused = true;
			return HTTP_FEED_PAUSED;
		case HPE_PAUSED_UPGRADE:
			return HTTP_FEED_UPGRADE;
		default:
			return map_error(c, e);
		}
	} while (*consumed < len || again);
	return HTTP_FEED_OK;
}

http_feed_t http_codec_finish(http_codec_t *c)
{
	if (c->error_status)
		return HTTP_FEED_ERROR;
	if (c->user_paused)
		http_codec_resume(c);
	llhttp_errno_t e = llhttp_finish(&c->parser);
	if (e == HPE_PAUSED && c->held) {
		/* a close-delimited body ended: nothing to check, hand it out */
		http_feed_t st = deliver_held(c);
		return st == HTTP_FEED_ERROR ? st : HTTP_FEED_OK;
	}
	if (e == HPE_OK || e == HPE_PAUSED)
		return HTTP_FEED_OK;
	return map_error(c, e);
}

int http_looks_like_request(const char *p, size_t n)
{
	/* Methods are upper-case tokens in practice; 24 letters covers every
	 * registered one. */
	size_t i = 0;
	while (i < n && i < 24 && p[i] >= 'A' && p[i] <= 'Z')
		i++;
	if (i == n)
		return n < 24 ? -1 : 0;
	return i > 0 && p[i] == ' ' ? 1 : 0;
}

void http_codec_resume(http_codec_t *c)
{
	if (c->llhttp_paused)
		llhttp_resume(&c->parser);
	c->llhttp_paused = false;
	c->user_paused = false;
}

void http_codec_resume_after_upgrade(http_codec_t *c)
{
	c->user_paused = false;
	c->llhttp_paused = false;
	llhttp_resume_after_upgrade(&c->parser);
}
