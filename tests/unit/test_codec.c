/*
 * HTTP codec: what reaches the callbacks for good messages, and which
 * status each smuggling shape earns. Every vector is also fed one byte at a
 * time: a check that can be split across reads is not a check.
 */
#include "suites.h"
#include "http/codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	http_codec_t c;
	char log[4096];
	size_t loglen;
	bytebuf_t body;
	int no_body_for_response;
} rec_t;

static void note(rec_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(rec_t *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->log + r->loglen, sizeof r->log - r->loglen, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->loglen += (size_t)n;
}

static int on_begin(void *ud)
{
	note(ud, "B;");
	return HTTP_CB_GO;
}

static int on_head(void *ud, http_head_t *h)
{
	rec_t *r = ud;
	if (h->is_request)
		note(r, "H %.*s %.*s %u.%u n=%u%s;", (int)h->method_len, http_head_str(h, h->method_off),
		     (int)h->target_len, http_head_str(h, h->target_off), h->major, h->minor, h->n_fields,
		     h->chunked ? " chunked" : "");
	else
		note(r, "H %u n=%u%s;", h->status, h->n_fields, h->chunked ? " chunked" : "");
	/* the relay's rule for a 304 (and for any answer to HEAD) */
	return r->no_body_for_response && h->status == 304 ? HTTP_CB_NO_BODY : HTTP_CB_GO;
}

static int on_body(void *ud, const char *d, size_t n)
{
	rec_t *r = ud;
	bytebuf_append(&r->body, d, n);
	return HTTP_CB_GO;
}

static int on_end(void *ud, http_head_t *trailers)
{
	rec_t *r = ud;
	note(r, "E body=%zu:%.*s t=%u;", r->body.len, (int)(r->body.len > 16 ? 16 : r->body.len),
	     r->body.data ? r->body.data : "", trailers ? trailers->n_fields : 0);
	r->body.len = 0;
	return HTTP_CB_GO;
}

static const http_codec_cbs_t cbs = {on_begin, on_head, on_body, on_end};

/* Feeds msg whole (step 0) or step bytes at a time; the log ends with the
 * error status when there is one. */
static void run(rec_t *r, bool request, const char *msg, size_t len, size_t step, uint32_t max_head)
{
	memset(r, 0, sizeof *r);
	bytebuf_init(&r->body, 0);
	http_codec_init(&r->c, request, max_head, 64, &cbs, r);
	size_t off = 0;
	while (off < len) {
		size_t n = step ? (len - off < step ? len - off : step) : len - off, used;
		http_feed_t st = http_codec_feed(&r->c, msg + off, n, &used);
		off += used;
		if (st == HTTP_FEED_ERROR) {
			note(r, "ERR %d", http_codec_error_status(&r->c));
			break;
		}
		if (st == HTTP_FEED_UPGRADE) {
			note(r, "UPGRADE rest=%zu", len - off);
			break;
		}
	}
	http_codec_free(&r->c);
	bytebuf_free(&r->body);
}

static void expect(bool request, const char *msg, const char *want)
{
	rec_t whole, bytes;
	run(&whole, request, msg, strlen(msg), 0, 8192);
	ck_assert_msg(strstr(whole.log, want) != NULL, "message:\n%s\nlog: %s\nwant: %s", msg, whole.log, want);
	run(&bytes, request, msg, strlen(msg), 1, 8192);
	ck_assert_msg(!strcmp(whole.log, bytes.log), "split feeding differs:\nwhole: %s\nbytes: %s", whole.log,
		      bytes.log);
}

START_TEST(good_requests)
{
	expect(true, "GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", "H GET /a?b=c 1.1 n=2;E body=0:");
	expect(true, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "E body=5:hello t=0;");
	expect(true,
	       "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	       "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n",
	       "H POST /c 1.1 n=2 chunked;E body=5:abcde t=1;");
	expect(true, "GET / HTTP/1.0\r\n\r\n", "H GET / 1.0 n=0;E");
	/* two pipelined requests */
	expect(true, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
	       "H GET /1 1.1 n=1;E body=0: t=0;B;H GET /2 1.1 n=1;E");
	/* value whitespace does not survive */
	rec_t r;
	const char *m = "GET / HTTP/1.1\r\nHost:   spaced.example   \r\n\r\n";
	memset(&r, 0, sizeof r);
	http_codec_init(&r.c, true, 8192, 64, &cbs, &r);
	size_t used;
	http_codec_feed(&r.c, m, strlen(m), &used);
	uint32_t n = 0;
	const char *v = http_head_get(&r.c.head, "HOST", &n);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq((int)n, (int)strlen("spaced.example"));
	ck_assert(!strncmp(v, "spaced.example", n));
	http_codec_free(&r.c);
}
END_TEST

START_TEST(upgrade_stops_parsing)
{
	expect(true, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW!",
	       "UPGRADE rest=4");
	expect(true, "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03", "UPGRADE rest=2");
}
END_TEST

START_TEST(smuggling_shapes_are_refused)
{
	/* Content-Length together with Transfer-Encoding */
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	       "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
	       "ERR 400");
	/* two different, and two equal, Content-Lengths */
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3,3\r\n\r\nabc", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", "ERR 400");
	/* bad chunk sizes */
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "ERR 400");
	/* Transfer-Encoding that is not a final chunked, or repeated */
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	       "ERR 400");
	/* whitespace before the colon */
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc", "ERR 400");
	/* obs-fold */
	expect(true, "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", "ERR 400");
	expect(true, "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n", "ERR 400");
	/* bare LF and bare CR where they would change framing */
	expect(true, "GET / HTTP/1.1\nHost: x\r\n\r\n", "ERR 400");
	expect(true, "GET / HTTP/1.1\r\nHost: x\n\r\n", "ERR 400");
	expect(true, "GET / HTTP/1.1\r\nHost: x\r\n\n", "ERR 400");
	expect(true, "GET / HTTP/1.1\r\nHost: x\r\n\rX", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", "ERR 400");
	expect(true, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\n", "ERR 400");
	/* Host: missing, repeated */
	expect(true, "GET / HTTP/1.1\r\n\r\n", "ERR 400");
	expect(true, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "ERR 400");
	/* versions */
	expect(true, "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "ERR 505");
	expect(true, "GET / HTTP/1.2\r\nHost: x\r\n\r\n", "ERR 505");
	/* control characters in values */
	expect(true, "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01z\r\n\r\n", "ERR 400");
	/* a body framed after a smuggled request is never delivered as a message */
	rec_t r;
	const char *m = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
			"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
	run(&r, true, m, strlen(m), 0, 8192);
	ck_assert_msg(!strstr(r.log, "/admin"), "%s", r.log);
}
END_TEST

START_TEST(limits)
{
	/* head over the limit: 431 */
	char big[4096];
	int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %0*d\r\n\r\n", 3000, 0);
	rec_t r;
	run(&r, true, big, (size_t)n, 0, 1024);
	ck_assert_msg(strstr(r.log, "ERR 431"), "%s", r.log);
	run(&r, true, big, (size_t)n, 7, 1024);
	ck_assert_msg(strstr(r.log, "ERR 431"), "%s", r.log);
	/* ... also when the bytes are only whitespace llhttp skips */
	n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX:%*s\r\n\r\n", 3000, "v");
	run(&r, true, big, (size_t)n, 0, 1024);
	ck_assert_msg(strstr(r.log, "ERR 431"), "%s", r.log);
	/* too many fields: 431 (limit 64 in run()) */
	char many[8192] = "GET / HTTP/1.1\r\nHost: x\r\n";
	for (int i = 0; i < 80; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "X-%d: 1\r\n", i);
	strcat(many, "\r\n");
	run(&r, true, many, strlen(many), 0, 8192);
	ck_assert_msg(strstr(r.log, "ERR 431"), "%s", r.log);
	/* a response over the limit is the upstream's fault: 502 */
	n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Big: %0*d\r\n\r\n", 3000, 0);
	run(&r, false, big, (size_t)n, 0, 1024);
	ck_assert_msg(strstr(r.log, "ERR 502"), "%s", r.log);
}
END_TEST

START_TEST(responses)
{
	expect(false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "H 200 n=1;E body=2:ok");
	expect(false, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", "H 100 n=0;E body=0: t=0;B;H 204");
	expect(false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "E body=2:ok");
	expect(false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "ERR 502");
	expect(false, "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", "ERR 502");
	/* the caller says "no body" (HEAD, 304): the next message follows */
	rec_t r;
	const char *m = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
	memset(&r, 0, sizeof r);
	r.no_body_for_response = 1;
	bytebuf_init(&r.body, 0);
	http_codec_init(&r.c, false, 8192, 64, &cbs, &r);
	size_t used;
	ck_assert_int_eq(http_codec_feed(&r.c, m, strlen(m), &used), HTTP_FEED_OK);
	ck_assert_msg(strstr(r.log, "H 304 n=1;E body=0: t=0;B;H 200 n=1;E body=1:x"), "%s", r.log);
	http_codec_free(&r.c);
	bytebuf_free(&r.body);
	/* close-delimited body ends at finish() */
	memset(&r, 0, sizeof r);
	bytebuf_init(&r.body, 0);
	http_codec_init(&r.c, false, 8192, 64, &cbs, &r);
	m = "HTTP/1.1 200 OK\r\n\r\nuntil-eof";
	ck_assert_int_eq(http_codec_feed(&r.c, m, strlen(m), &used), HTTP_FEED_OK);
	ck_assert(http_codec_needs_eof(&r.c));
	ck_assert_int_eq(http_codec_finish(&r.c), HTTP_FEED_OK);
	ck_assert_msg(strstr(r.log, "E body=9:until-eof"), "%s", r.log);
	http_codec_free(&r.c);
	bytebuf_free(&r.body);
	/* cut short: finish() is an error */
	memset(&r, 0, sizeof r);
	bytebuf_init(&r.body, 0);
	http_codec_init(&r.c, false, 8192, 64, &cbs, &r);
	m = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
	http_codec_feed(&r.c, m, strlen(m), &used);
	ck_assert_int_eq(http_codec_finish(&r.c), HTTP_FEED_ERROR);
	http_codec_free(&r.c);
	bytebuf_free(&r.body);
}
END_TEST

START_TEST(head_edit_and_serialize)
{
	http_head_t h;
	http_head_init(&h, true, 4096, 32);
	const char *m = "GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nCookie: s=1\r\n\r\n";
	rec_t r;
	memset(&r, 0, sizeof r);
	http_codec_init(&r.c, true, 4096, 32, &cbs, &r);
	size_t used;
	http_codec_feed(&r.c, m, strlen(m), &used);
	http_head_t *p = &r.c.head;
	ck_assert(http_head_has_token(p, "connection", "upgrade"));
	ck_assert(!http_head_has_token(p, "connection", "close"));
	http_head_remove(p, "cookie");
	ck_assert(http_head_set(p, "X-New", "1"));
	ck_assert(http_head_set_target(p, "/y", 2));
	bytebuf_t out;
	bytebuf_init(&out, 0);
	ck_assert(http_head_serialize(p, &out));
	bytebuf_cstr(&out);
	ck_assert_str_eq(out.data, "GET /y HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nX-New: 1\r\n\r\n");
	bytebuf_free(&out);
	http_codec_free(&r.c);
	http_head_free(&h);
}
END_TEST

/* The explicit proxy's route: the new target is the absolute target's
 * path, a piece of the arena itself. An arena that must grow for the copy
 * used to move it under the copy (ASan: use after free). */
START_TEST(target_from_the_arena_itself)
{
	for (size_t fill = 0; fill < 600; fill++) {
		http_head_t h;
		http_head_init(&h, true, 1 << 20, 32);
		char pad[600];
		memset(pad, 'a', fill);
		ck_assert(bytebuf_append(&h.arena, pad, fill));
		static const char abs[] = "http://example.com/some/path?q=1";
		uint32_t off = (uint32_t)h.arena.len;
		ck_assert(bytebuf_append(&h.arena, abs, sizeof abs - 1));
		const char *path = h.arena.data + off + 18;
		ck_assert(http_head_set_target(&h, path, sizeof abs - 1 - 18));
		ck_assert_int_eq(h.target_len, sizeof abs - 1 - 18);
		ck_assert(!memcmp(http_head_str(&h, h.target_off), "/some/path?q=1", h.target_len));
		http_head_free(&h);
	}
}
END_TEST

Suite *codec_suite(void)
{
	Suite *s = suite_create("http");
	TCase *t = tcase_create("codec");
	tcase_add_test(t, good_requests);
	tcase_add_test(t, upgrade_stops_parsing);
	tcase_add_test(t, smuggling_shapes_are_refused);
	tcase_add_test(t, limits);
	tcase_add_test(t, responses);
	tcase_add_test(t, head_edit_and_serialize);
	tcase_add_test(t, target_from_the_arena_itself);
	suite_add_tcase(s, t);
	return s;
}
