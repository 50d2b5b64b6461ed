/*
 * Bodies: decoding under limits (real gzip, deflate both ways, brotli;
 * bombs by ratio, by size and by layers; unknown and corrupt codings),
 * views (form, JSON, multipart) and redaction written back at the same
 * width through them.
 */
#include "suites.h"
#include "http/body.h"

#include <brotli/encode.h>
#include <zstd.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

size_t zcompress(const void *in, size_t n, uint8_t *out, size_t cap, int wbits)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	deflateInit2(&z, 9, Z_DEFLATED, wbits, 9, Z_DEFAULT_STRATEGY);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	size_t got = z.total_out;
	deflateEnd(&z);
	return got;
}

static const body_limits_t lim = {.max_bytes = 1 << 20, .max_ratio = 200, .max_layers = 2};

START_TEST(decodes_every_coding)
{
	const char *text = "card 4539 1488 0343 6467 in a compressed body";
	size_t n = strlen(text);
	uint8_t z[512], z2[1024];
	bytebuf_t out;
	bytebuf_init(&out, 0);
	const char *why;
	struct {
		const char *ce;
		int wbits;
	} cases[] = {{"gzip", 16 + MAX_WBITS}, {"x-gzip", 16 + MAX_WBITS}, {"deflate", MAX_WBITS}, {"deflate", -MAX_WBITS}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t zn = zcompress(text, n, z, sizeof z, cases[i].wbits);
		ck_assert_int_eq(body_decode(cases[i].ce, strlen(cases[i].ce), z, zn, &lim, &out, &why), BODY_OK);
		ck_assert_uint_eq(out.len, n);
		ck_assert(!memcmp(out.data, text, n));
	}
	size_t bn = sizeof z;
	ck_assert(BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, n, (const uint8_t *)text, &bn, z));
	ck_assert_int_eq(body_decode("br", 2, z, bn, &lim, &out, &why), BODY_OK);
	ck_assert(!memcmp(out.data, text, n));
	/* zstd: one frame, and two frames back to back (both decoded) */
	size_t sn = ZSTD_compress(z, sizeof z, text, n, 3);
	ck_assert(!ZSTD_isError(sn));
	ck_assert_int_eq(body_decode("zstd", 4, z, sn, &lim, &out, &why), BODY_OK);
	ck_assert_uint_eq(out.len, n);
	ck_assert(!memcmp(out.data, text, n));
	memcpy(z2, z, sn);
	memcpy(z2 + sn, z, sn);
	ck_assert_int_eq(body_decode("ZSTD", 4, z2, 2 * sn, &lim, &out, &why), BODY_OK);
	ck_assert_uint_eq(out.len, 2 * n);
	/* two layers: gzip over deflate, listed in the order applied */
	size_t zn = zcompress(text, n, z, sizeof z, MAX_WBITS);
	size_t zn2 = zcompress(z, zn, z2, sizeof z2, 16 + MAX_WBITS);
	ck_assert_int_eq(body_decode("deflate, gzip", 13, z2, zn2, &lim, &out, &why), BODY_OK);
	ck_assert(!memcmp(out.data, text, n));
	/* identity is no coding */
	ck_assert_int_eq(body_decode("identity", 8, (const uint8_t *)text, n, &lim, &out, &why), BODY_OK);
	ck_assert(!body_is_encoded("identity", 8));
	ck_assert(body_is_encoded("gzip", 4));
	bytebuf_free(&out);
}
END_TEST

START_TEST(bombs_and_bad_codings)
{
	bytebuf_t out;
	bytebuf_init(&out, 0);
	const char *why;
	/* 64 MiB of zeros gzipped is ~64 KiB: a 1000:1 ratio */
	size_t big = 64u << 20;
	uint8_t *zeros = calloc(1, big);
	size_t cap = compressBound((uLong)big) + 64;
	uint8_t *z = malloc(cap);
	size_t zn = zcompress(zeros, big, z, cap, 16 + MAX_WBITS);
	body_limits_t roomy = {.max_bytes = 256u << 20, .max_ratio = 200, .max_layers = 2};
	ck_assert_int_eq(body_decode("gzip", 4, z, zn, &roomy, &out, &why), BODY_BOMB);
	ck_assert_ptr_nonnull(why);
	ck_assert_uint_lt(out.len, 64u << 20);
	/* the size limit: a prefix, flagged */
	body_limits_t small = {.max_bytes = 100000, .max_ratio = 100000, .max_layers = 2};
	ck_assert_int_eq(body_decode("gzip", 4, z, zn, &small, &out, &why), BODY_TRUNCATED);
	ck_assert_uint_eq(out.len, 100000);
	free(zeros);
	free(z);
	/* layers */
	ck_assert_int_eq(body_decode("gzip, gzip, gzip", 16, (const uint8_t *)"x", 1, &lim, &out, &why), BODY_BOMB);
	/* unknown and corrupt */
	ck_assert_int_eq(body_decode("compress", 8, (const uint8_t *)"x", 1, &lim, &out, &why), BODY_UNSUPPORTED);
	ck_assert_int_eq(body_decode("gzip", 4, (const uint8_t *)"not gzip at all", 15, &lim, &out, &why), BODY_CORRUPT);
	ck_assert_int_eq(body_decode("br", 2, (const uint8_t *)"\xff\xff\xff", 3, &lim, &out, &why), BODY_CORRUPT);
	uint8_t zt[256];
	size_t tn = zcompress("truncated stream here", 21, zt, sizeof zt, 16 + MAX_WBITS);
	ck_assert_int_eq(body_decode("gzip", 4, zt, tn / 2, &lim, &out, &why), BODY_CORRUPT);
	/* zstd: corrupt, cut short, a bomb, and a window past 8 MiB */
	ck_assert_int_eq(body_decode("zstd", 4, (const uint8_t *)"not zstd at all", 15, &lim, &out, &why), BODY_CORRUPT);
	tn = ZSTD_compress(zt, sizeof zt, "truncated stream here, truncated", 32, 3);
	ck_assert_int_eq(body_decode("zstd", 4, zt, tn - 3, &lim, &out, &why), BODY_CORRUPT);
	ck_assert_str_eq(why, "zstd data is cut short");
	size_t zbig = 64u << 20;
	uint8_t *zz = calloc(1, zbig), *zc = malloc(ZSTD_compressBound(zbig));
	size_t zcn = ZSTD_compress(zc, ZSTD_compressBound(zbig), zz, zbig, 1);
	body_limits_t roomy_z = {.max_bytes = 256u << 20, .max_ratio = 200, .max_layers = 2};
	ck_assert_int_eq(body_decode("zstd", 4, zc, zcn, &roomy_z, &out, &why), BODY_BOMB);
	ck_assert_uint_lt(out.len, 64u << 20);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 27); /* a 128 MiB window, declared in the frame */
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	zcn = ZSTD_compress2(cc, zc, ZSTD_compressBound(zbig), zz, zbig);
	ZSTD_freeCCtx(cc);
	ck_assert(!ZSTD_isError(zcn));
	body_limits_t huge = {.max_bytes = 256u << 20, .max_ratio = 100000, .max_layers = 2};
	ck_assert_int_eq(body_decode("zstd", 4, zc, zcn, &huge, &out, &why), BODY_CORRUPT);
	ck_assert_str_eq(why, "zstd frame asks for a window larger than 8 MiB");
	free(zz);
	free(zc);
	bytebuf_free(&out);
}
END_TEST

START_TEST(views_and_redaction)
{
	body_view_t v;
	/* form: %XX and + decoded, & reads as a line break */
	char form[] = "name=bob+smith&card=4539%201488%200343%206467&x=%34";
	ck_assert(body_view_build(&v, "application/x-www-form-urlencoded", 33, (const uint8_t *)form, strlen(form)));
	ck_assert_int_eq(v.kind, VIEW_FORM);
	const char *want = "name=bob smith\ncard=4539 1488 0343 6467\nx=4";
	ck_assert_uint_eq(v.len, strlen(want));
	ck_assert(!memcmp(v.text, want, v.len));
	const char *card = strstr((const char *)v.text, "4539");
	body_view_redact(&v, (uint8_t *)form, (uint32_t)(card - (const char *)v.text), 19, 0, 4);
	ck_assert_str_eq(form, "name=bob+smith&card=****%20****%20****%206467&x=%34");
	body_view_free(&v);

	/* JSON: escapes inside strings, surrogate pairs, width kept on redaction */
	char json[] = "{\"k\":\"\\u0034539 1488 0343 6467\",\"e\":\"\\ud83d\\ude00\",\"n\":\"a\\nb\"}";
	ck_assert(body_view_build(&v, "application/json; charset=utf-8", 31, (const uint8_t *)json, strlen(json)));
	ck_assert_int_eq(v.kind, VIEW_JSON);
	ck_assert(memmem(v.text, v.len, "4539 1488 0343 6467", 19));
	ck_assert(memmem(v.text, v.len, "\xf0\x9f\x98\x80", 4)); /* U+1F600 */
	ck_assert(memmem(v.text, v.len, "a\nb", 3));
	size_t before = strlen(json);
	const char *c = memmem(v.text, v.len, "4539", 4);
	body_view_redact(&v, (uint8_t *)json, (uint32_t)(c - (const char *)v.text), 19, 0, 0);
	ck_assert_uint_eq(strlen(json), before);
	ck_assert_msg(strstr(json, "\\u002a*** **** **** ****"), "%s", json);
	body_view_free(&v);
	/* +json types too */
	ck_assert(body_view_build(&v, "application/vnd.api+json", 24, (const uint8_t *)"{}", 2));
	ck_assert_int_eq(v.kind, VIEW_JSON);
	body_view_free(&v);

	/* multipart: parts listed with names, files and types */
	const char *mp = "--XYZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
			 "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"id_rsa\"\r\n"
			 "Content-Type: application/octet-stream\r\n\r\n-----BEGIN PRIVATE KEY-----\r\n--XYZ--\r\n";
	const char *ct = "multipart/form-data; boundary=XYZ";
	ck_assert(body_view_build(&v, ct, strlen(ct), (const uint8_t *)mp, strlen(mp)));
	ck_assert_int_eq(v.kind, VIEW_MULTIPART);
	ck_assert_uint_eq(v.n_parts, 2);
	ck_assert_str_eq(v.parts[0].name, "note");
	ck_assert_uint_eq(v.parts[0].len, 5);
	ck_assert_str_eq(v.parts[1].filename, "id_rsa");
	ck_assert_str_eq(v.parts[1].content_type, "application/octet-stream");
	ck_assert(!memcmp(mp + v.parts[1].off, "-----BEGIN", 10));
	body_view_free(&v);
	/* no type: the bytes themselves */
	ck_assert(body_view_build(&v, NULL, 0, (const uint8_t *)"raw", 3));
	ck_assert_int_eq(v.kind, VIEW_RAW);
	ck_assert_ptr_null(v.map);
	body_view_free(&v);
}
END_TEST

START_TEST(views_survive_garbage)
{
	srand(11);
	static const char *const types[] = {"application/json", "application/x-www-form-urlencoded",
					    "multipart/form-data; boundary=b", NULL};
	char buf[512];
	for (int i = 0; i < 5000; i++) {
		size_t n = (size_t)(rand() % (int)sizeof buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = "\\u\"%+&-b\r\n0a{}"[rand() % 15];
		for (int t = 0; t < 4; t++) {
			body_view_t v;
			ck_assert(body_view_build(&v, types[t], types[t] ? strlen(types[t]) : 0, (const uint8_t *)buf, n));
			if (v.len)
				body_view_redact(&v, (uint8_t *)buf, 0, (uint32_t)v.len, 1, 1);
			body_view_free(&v);
		}
	}
}
END_TEST

Suite *body_suite(void)
{
	Suite *s = suite_create("body");
	TCase *t = tcase_create("body");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, decodes_every_coding);
	tcase_add_test(t, bombs_and_bad_codings);
	tcase_add_test(t, views_and_redaction);
	tcase_add_test(t, views_survive_garbage);
	suite_add_tcase(s, t);
	return s;
}
