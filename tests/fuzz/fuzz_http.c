/*
 * libFuzzer: the HTTP codec on arbitrary bytes, as requests and as
 * responses, fed whole and in pieces whose sizes come from the input, with
 * callbacks that pause and resume and edit heads the way the relay does.
 * The codec must never crash, leak, or hand out a head over its limits.
 */
#include "http/codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	http_codec_t c;
	uint32_t max_head;
	unsigned begins, heads, ends;
	size_t body;
	uint8_t mode;
} fz_t;

static int fz_begin(void *ud)
{
	fz_t *f = ud;
	f->begins++;
	return (f->mode & 1) && f->begins % 3 == 0 ? HTTP_CB_PAUSE : HTTP_CB_GO;
}

static int fz_head(void *ud, http_head_t *h)
{
	fz_t *f = ud;
	f->heads++;
	if (h->arena.len > f->max_head)
		abort();
	/* what the relay does to heads */
	http_head_get(h, "host", NULL);
	http_head_has_token(h, "connection", "close");
	if (f->mode & 2) {
		http_head_remove(h, "proxy-connection");
		http_head_set(h, "Host", "fuzz.example");
	}
	if (!h->is_request && (f->mode & 4))
		return HTTP_CB_NO_BODY;
	return (f->mode & 8) ? HTTP_CB_PAUSE : HTTP_CB_GO;
}

static int fz_body(void *ud, const char *d, size_t n)
{
	fz_t *f = ud;
	if (n && !d)
		abort();
	f->body += n;
	return HTTP_CB_GO;
}

static int fz_end(void *ud, http_head_t *t)
{
	fz_t *f = ud;
	f->ends++;
	if (t && t->n_fields == 0)
		abort();
	return HTTP_CB_GO;
}

static const http_codec_cbs_t cbs = {fz_begin, fz_head, fz_body, fz_end};

static void run(const uint8_t *data, size_t size, bool request, uint8_t mode, size_t step)
{
	fz_t f = {0};
	f.max_head = 2048;
	f.mode = mode;
	http_codec_init(&f.c, request, f.max_head, 32, &cbs, &f);
	size_t off = 0;
	int guard = 0;
	while (off <= size && guard++ < 100000) {
		size_t n = size - off;
		if (step && n > step)
			n = step;
		size_t used = 0;
		http_feed_t st = http_codec_feed(&f.c, (const char *)data + off, n, &used);
		if (used > n)
			abort();
		off += used;
		if (st == HTTP_FEED_ERROR || st == HTTP_FEED_UPGRADE)
			break;
		if (st == HTTP_FEED_PAUSED)
			http_codec_resume(&f.c);
		else if (off == size)
			break;
	}
	http_codec_finish(&f.c);
	http_codec_free(&f.c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	size_t step = data[1] % 17;
	data += 2;
	size -= 2;
	run(data, size, true, mode, 0);
	run(data, size, true, mode, step);
	run(data, size, false, mode, step);
	return 0;
}
