/*
 * libFuzzer: request heads through the head view (target, fields, cookie
 * pairs, repeated fields joined) and redaction back into the head, and
 * body tails through the streaming decoders and the windows.
 *
 * Invariants: nothing crashes or leaks; every location is printable and
 * bounded; and a head masked anywhere the view allows still parses as a
 * request, with the same Host and framing (masking never breaks or
 * redirects a request).
 */
#include "http/codec.h"
#include "http/headview.h"
#include "http/tailscan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const uint8_t *in;
	size_t n;
	unsigned heads;
} fz_t;

static int reparse_head(void *ud, http_head_t *h)
{
	(void)h;
	(*(unsigned *)ud)++;
	return HTTP_CB_PAUSE;
}

static const http_codec_cbs_t reparse_cbs = {NULL, reparse_head, NULL, NULL};

static int fz_head(void *ud, http_head_t *h)
{
	fz_t *f = ud;
	f->heads++;
	head_view_t v;
	if (!head_view_build(&v, h))
		return HTTP_CB_GO;
	uint32_t host_len = 0;
	const char *host = http_head_get(h, "host", &host_len);
	char host_before[256] = "";
	if (host && host_len < sizeof host_before)
		memcpy(host_before, host, host_len);
	/* spans picked by the input */
	for (size_t i = 0; i + 2 < f->n && i < 24; i += 3) {
		uint32_t start = v.text.len ? (uint32_t)((f->in[i] << 8 | f->in[i + 1]) % v.text.len) : 0;
		uint32_t len = f->in[i + 2] % 40;
		if (start + len > v.text.len)
			len = (uint32_t)v.text.len - start;
		char where[64];
		head_view_location(&v, start, where, sizeof where, f->in[i] & 1);
		for (const char *c = where; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				abort();
		uint32_t ns, nl;
		head_view_name_of(&v, start, &ns, &nl);
		if (nl && ns + nl > v.text.len)
			abort();
		head_view_repeat(&v, start, len);
		if (!head_view_unmaskable(&v, h, start, len))
			head_view_redact(&v, h, start, len, f->in[i + 1] % 5, f->in[i + 2] % 5);
	}
	host = http_head_get(h, "host", &host_len);
	if (host && host_len < sizeof host_before && memcmp(host, host_before, host_len))
		abort(); /* a mask reached Host */
	/* the masked head still parses */
	bytebuf_t wire;
	bytebuf_init(&wire, 0);
	if (http_head_serialize(h, &wire)) {
		http_codec_t c;
		unsigned heads = 0;
		http_codec_init(&c, true, 1 << 20, 1000, &reparse_cbs, &heads);
		size_t used;
		http_feed_t st = http_codec_feed(&c, wire.data, wire.len, &used);
		if (st == HTTP_FEED_ERROR || heads != 1)
			abort();
		http_codec_free(&c);
	}
	bytebuf_free(&wire);
	head_view_free(&v);
	return HTTP_CB_PAUSE;
}

static const http_codec_cbs_t cbs = {NULL, fz_head, NULL, NULL};

static void tail(const uint8_t *d, size_t n)
{
	static const char *const codings[] = {"gzip", "deflate", "br", "zstd", "gzip, br", "identity"};
	if (n < 2)
		return;
	const char *ce = codings[d[0] % 6];
	body_limits_t lim = {.max_bytes = 1 << 16, .max_ratio = 200, .max_layers = 2};
	tail_t t;
	const char *why;
	size_t step = 64 + d[1] * 16;
	if (tail_init_encoded(&t, 32, step, ce, strlen(ce), &lim, d[1] * 7u, &why) != BODY_OK) {
		tail_free(&t);
		return;
	}
	d += 2, n -= 2;
	for (size_t off = 0; off < n;) {
		body_status_t st;
		size_t used = tail_feed(&t, d + off, n - off, &st, &why);
		off += used;
		if (st != BODY_OK)
			break;
		size_t len, fresh, k;
		tail_text(&t, &len, &fresh);
		if (fresh > len)
			abort();
		if (tail_ready(&t) || off == n) {
			tail_output(&t, off == n, &k);
			tail_shift(&t);
		}
		if (t.text.len > 32 + step + TAIL_FEED_PIECE * 200u + 65536)
			abort(); /* memory stays bounded */
	}
	tail_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 0x80) {
		tail(data + 1, size - 1);
		return 0;
	}
	fz_t f = {data + 1, size - 1, 0};
	http_codec_t c;
	http_codec_init(&c, true, 8192, 64, &cbs, &f);
	size_t used;
	http_codec_feed(&c, (const char *)data + 1, size - 1, &used);
	http_codec_free(&c);
	return 0;
}
