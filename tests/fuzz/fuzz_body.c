/*
 * libFuzzer: bodies from outside. The first byte picks the coding and the
 * content type; the rest is the body: decoded under small limits (so bombs
 * are cheap to find), viewed as form/JSON/multipart, and redacted over
 * spans picked from the input. Nothing may crash, leak, or change the
 * body's length.
 */
#include "http/body.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const char *const codings[] = {NULL, "gzip", "deflate", "br", "gzip, br", "zstd", "compress",
					      "deflate, deflate, deflate"};
	static const char *const types[] = {NULL, "application/json", "application/x-www-form-urlencoded",
					    "multipart/form-data; boundary=b", "multipart/form-data; boundary=\"q q\"",
					    "text/plain", "application/ld+json", "multipart/form-data"};
	const char *ce = codings[data[0] & 7];
	const char *ct = types[(data[0] >> 3) & 7];
	data += 1;
	size -= 1;
	body_limits_t lim = {.max_bytes = 1 << 16, .max_ratio = 50, .max_layers = 2};
	bytebuf_t out;
	bytebuf_init(&out, 0);
	const char *why = NULL;
	body_status_t st = body_decode(ce, ce ? strlen(ce) : 0, data, size, &lim, &out, &why);
	if (out.len > lim.max_bytes)
		abort();
	if ((st == BODY_OK || st == BODY_TRUNCATED) && out.len) {
		body_view_t v;
		if (body_view_build(&v, ct, ct ? strlen(ct) : 0, (const uint8_t *)out.data, out.len)) {
			size_t before = out.len;
			for (uint32_t i = 0; v.len && i < 4; i++) {
				uint32_t start = (uint32_t)((size > i ? data[i] : i) * 131u % v.len);
				uint32_t len = (uint32_t)(v.len - start) / (i + 1);
				body_view_redact(&v, (uint8_t *)out.data, start, len, (uint8_t)(i & 7), (uint8_t)i);
			}
			if (out.len != before)
				abort();
			for (uint32_t p = 0; p < v.n_parts; p++)
				if ((size_t)v.parts[p].off + v.parts[p].len > out.len)
					abort();
			body_view_free(&v);
		}
	}
	bytebuf_free(&out);
	return 0;
}
