/*
 * tailscan: a body past inspect.max_bytes read in windows with carry-over.
 * A marker placed everywhere (straddling every kind of window cut) is
 * found exactly once, masked in place before its bytes are handed out
 * (identity), and what is handed out is the body, byte for byte, in
 * order. Encoded bodies (gzip, raw deflate, brotli, zstd) fed in odd
 * pieces decode to the same text as the one-shot decoder, and a prefix
 * already scanned is not counted again.
 */
#include "suites.h"
#include "http/tailscan.h"

#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define MARK "CARD4539148803436467"
#define MARK_LEN 20

/* A body of n bytes of filler with a marker every `every` bytes, shifted
 * by one more byte each time so each lands at another place of a window. */
static uint8_t *make_body(size_t n, size_t every, size_t *marks)
{
	uint8_t *b = malloc(n);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)('a' + i % 23);
	*marks = 0;
	for (size_t at = 100, k = 0; at + MARK_LEN <= n; at += every + (k++ % 97)) {
		memcpy(b + at, MARK, MARK_LEN);
		(*marks)++;
	}
	return b;
}

/* What a detector would do on a window: count the fresh marks, mask them. */
static size_t scan_window(uint8_t *text, size_t len, size_t fresh_from, bool mask)
{
	size_t found = 0;
	for (uint8_t *p = text; (p = memmem(p, (size_t)(text + len - p), MARK, MARK_LEN)); p += MARK_LEN) {
		if ((size_t)(p - text) + MARK_LEN <= fresh_from)
			continue; /* the window before counted it */
		found++;
		if (mask)
			memset(p + 4, '*', MARK_LEN - 8);
	}
	return found;
}

typedef struct {
	size_t found, windows;
	bytebuf_t out;
} run_t;

static void window(tail_t *t, run_t *r, bool final, bool mask)
{
	size_t len, fresh;
	uint8_t *text = tail_text(t, &len, &fresh);
	ck_assert_uint_le(fresh, len);
	r->found += scan_window(text, len, fresh, mask);
	r->windows++;
	size_t n;
	const uint8_t *o = tail_output(t, final, &n);
	ck_assert(bytebuf_append(&r->out, o, n));
	tail_shift(t);
}

/* Feeds data in pieces of varying size, deciding each ready window. */
static void feed_all(tail_t *t, run_t *r, const uint8_t *data, size_t n, bool mask)
{
	size_t piece = 1;
	for (size_t off = 0; off < n;) {
		size_t k = n - off < piece ? n - off : piece;
		while (k) {
			body_status_t st;
			const char *why;
			size_t used = tail_feed(t, data + off, k, &st, &why);
			ck_assert_msg(st == BODY_OK, "%s", why);
			off += used;
			k -= used;
			if (tail_ready(t))
				window(t, r, false, mask);
		}
		piece = piece * 7 % 5003 + 1;
	}
	window(t, r, true, mask);
}

START_TEST(identity_marks_found_once_and_masked_before_output)
{
	size_t n = 600000, marks;
	uint8_t *body = make_body(n, 1500, &marks);
	/* the prefix scan read [0, 65536) and handed out all but its carry */
	size_t prefix = 65536, carry = 64;
	size_t before = scan_window(body, prefix, 0, true);
	tail_t t;
	run_t r = {0};
	bytebuf_init(&r.out, 0);
	ck_assert(bytebuf_append(&r.out, body, prefix - carry));
	ck_assert(tail_init_identity(&t, carry, 4096, body + prefix - carry, carry, prefix - carry));
	feed_all(&t, &r, body + prefix, n - prefix, true);
	ck_assert_uint_eq(before + r.found, marks);
	ck_assert_uint_gt(r.windows, 100);
	ck_assert_uint_eq(r.out.len, n);
	ck_assert_msg(!memmem(r.out.data, r.out.len, MARK, MARK_LEN), "a marker left unmasked");
	/* everything else is the body, byte for byte */
	for (size_t i = 0; i < n; i++)
		if (r.out.data[i] != (char)body[i])
			ck_assert_msg(r.out.data[i] == '*' && body[i] >= '0' && body[i] <= '9', "byte %zu changed", i);
	tail_free(&t);
	bytebuf_free(&r.out);
	free(body);
}
END_TEST

static const body_limits_t lim = {.max_bytes = 1 << 20, .max_ratio = 1000, .max_layers = 2};

static void encoded_case(const char *ce, const uint8_t *raw, size_t raw_n, const uint8_t *body, size_t n, size_t marks)
{
	/* the prefix scan read the first 50000 decoded bytes */
	size_t scanned = 50000;
	size_t before = scan_window((uint8_t *)body, scanned, 0, false);
	tail_t t;
	const char *why;
	ck_assert_int_eq(tail_init_encoded(&t, 64, 8192, ce, strlen(ce), &lim, scanned, &why), BODY_OK);
	run_t r = {0};
	bytebuf_init(&r.out, 0);
	feed_all(&t, &r, raw, raw_n, false);
	ck_assert_msg(before + r.found == marks, "%s: %zu + %zu found, %zu placed", ce, before, r.found, marks);
	ck_assert_uint_eq(t.offset + 0, t.offset); /* no overflow games */
	/* raw bytes come out whole, in order */
	ck_assert_uint_eq(r.out.len, raw_n);
	ck_assert(!memcmp(r.out.data, raw, raw_n));
	ck_assert_msg(body_decoder_done(t.dec), "%s: not at its end", ce);
	tail_free(&t);
	bytebuf_free(&r.out);
	(void)n;
}

START_TEST(encoded_tails_decoded_and_scanned)
{
	size_t n = 400000, marks;
	uint8_t *body = make_body(n, 1300, &marks);
	size_t cap = n + 4096;
	uint8_t *raw = malloc(cap);
	size_t k = zcompress(body, n, raw, cap, 16 + MAX_WBITS);
	encoded_case("gzip", raw, k, body, n, marks);
	k = zcompress(body, n, raw, cap, -MAX_WBITS);
	encoded_case("deflate", raw, k, body, n, marks);
	k = zcompress(body, n, raw, cap, MAX_WBITS);
	encoded_case("deflate", raw, k, body, n, marks);
	size_t bk = cap;
	ck_assert(BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, n, body, &bk, raw));
	encoded_case("br", raw, bk, body, n, marks);
	k = ZSTD_compress(raw, cap, body, n, 3);
	ck_assert(!ZSTD_isError(k));
	encoded_case("zstd", raw, k, body, n, marks);
	/* stacked: gzip over zstd */
	uint8_t *two = malloc(cap);
	size_t k2 = zcompress(raw, k, two, cap, 16 + MAX_WBITS);
	encoded_case("zstd, gzip", two, k2, body, n, marks);
	free(two);
	free(raw);
	free(body);
}
END_TEST

START_TEST(corrupt_tail_reported)
{
	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	junk[0] = 0x1f, junk[1] = 0x8b, junk[2] = 8, junk[3] = 0xff; /* a gzip header, then nonsense */
	tail_t t;
	const char *why;
	ck_assert_int_eq(tail_init_encoded(&t, 64, 8192, "gzip", 4, &lim, 0, &why), BODY_OK);
	body_status_t st = BODY_OK;
	tail_feed(&t, junk, sizeof junk, &st, &why);
	ck_assert_int_eq(st, BODY_CORRUPT);
	ck_assert_ptr_nonnull(why);
	tail_free(&t);
	ck_assert_int_eq(tail_init_encoded(&t, 64, 8192, "compress", 8, &lim, 0, &why), BODY_UNSUPPORTED);
	tail_free(&t);
}
END_TEST

Suite *tailscan_suite(void)
{
	Suite *s = suite_create("tailscan");
	TCase *t = tcase_create("windows");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, identity_marks_found_once_and_masked_before_output);
	tcase_add_test(t, encoded_tails_decoded_and_scanned);
	tcase_add_test(t, corrupt_tail_reported);
	suite_add_tcase(s, t);
	return s;
}
