/*
 * Request scanning: what a client puts in the request line, the header
 * fields and the cookies is scanned like the body, and every byte of a body
 * is scanned however long it is (past inspect.max_bytes, as it streams).
 *
 * The upstream records every byte it receives; the client turns
 * certificate verification off (curl -k, as someone trying to get data out
 * would). Each test asserts the card never reaches the upstream in clear:
 * masked in place, or the request never arrives complete. Events say where
 * each finding was (locations) and carry masked samples only.
 */
#include "dlp.h"
#include "http/body.h"
#include "suites.h"

#include <zlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CARD_DETECTOR "card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn', digits = 13 }\n"

static const char *redact_policy = "local dlp = require 'dlp'\n"
				   "fail = 'closed'\n"
				   "inspect = {max_bytes = 65536, max_ratio = 1000}\n"
				   "local d = {" CARD_DETECTOR "}\n"
				   "function on_request(req, flow)\n"
				   "  local found = req:scan(d)\n"
				   "  if found.card then return dlp.redact(found) end\n"
				   "  return dlp.pass()\n"
				   "end\n";

static const char *block_policy = "local dlp = require 'dlp'\n"
				  "fail = 'closed'\n"
				  "inspect = {max_bytes = 65536, max_ratio = 1000}\n"
				  "local d = {" CARD_DETECTOR "}\n"
				  "function on_request(req, flow)\n"
				  "  local found = req:scan(d)\n"
				  "  if found.card then\n"
				  "    return dlp.block('card in ' .. table.concat(found.card.locations, ','), found)\n"
				  "  end\n"
				  "  return dlp.pass()\n"
				  "end\n";

typedef dlp_world_t fixture_t;

/* curl -k through the proxy; returns what -w and the body print. */
static char *insecure_curl(fixture_t *fx, const char *path, const char *const extra[], int *rc)
{
	const char *args[32] = {"-k", "-sS", "-w", "\nstatus=%{http_code}"};
	int a = 4;
	for (int i = 0; extra && extra[i]; i++)
		args[a++] = extra[i];
	args[a] = NULL;
	return dlp_world_curl(fx, path, args, rc);
}

START_TEST(target_headers_cookies_masked_in_place)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", redact_policy, NULL);
	int rc;
	char *out = insecure_curl(&fx, "/echo/4539148803436467?card=4111111111111111&x=1",
				  (const char *const[]){"-H", "X-Card: 5399 3518 1909 3787", "-H", "X-Split: 6011 9746",
							"-H", "X-Split: 5075 2918", "-b", "sid=abc; cc=3530842684656323", NULL},
				  &rc);
	ck_assert_msg(rc == 0 && strstr(out, "status=404"), "%s", out); /* the upstream answered: no such route */
	size_t len;
	char *rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "GET /echo/4539********6467?card=4111********1111&x=1 HTTP/1.1\r\n") &&
			      strstr(rx, "X-Card: 5399 **** **** 3787\r\n") && strstr(rx, "X-Split: 6011 ****\r\n") &&
			      strstr(rx, "X-Split: **** 2918\r\n") && strstr(rx, "sid=abc; cc=3530********6323"),
		      "%s", rx);
	ck_assert_msg(!th_has_group(rx, "1488") && !th_has_group(rx, "3518") && !th_has_group(rx, "9746") && !th_has_group(rx, "5075") &&
			      !th_has_group(rx, "8426") && th_upstream_request_count(fx.up) == 1,
		      "%s", rx);
	/* the event: every place, masked samples, the path masked too */
	ck_assert(dlp_log_wait(&fx.d, "\"cookie:cc\"", 5000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "\"url\"") && strstr(log, "\"header:x-card\"") && strstr(log, "\"header:x-split\"") &&
			      strstr(log, "\"redacted\":true") && strstr(log, "\"path\":\"/echo/****************\""),
		      "%s", log);
	ck_assert_msg(!strstr(log, "4539148803436467") && !th_has_group(log, "1488") && !strstr(log, "9746 5075"), "%s", log);
	/* the verdict events with locations are what the schema says */
	bytebuf_t events;
	bytebuf_init(&events, 0);
	for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
		if (line[0] == '{' && strstr(line, "\"locations\""))
			ck_assert(bytebuf_append(&events, line, strlen(line)) && bytebuf_append(&events, "\n", 1));
	ck_assert(bytebuf_append(&events, "", 1));
	ck_assert_msg(events.len > 1, "no event with locations");
	char *complaint = ajv_check_with("verdict.schema.json", events.data);
	ck_assert_msg(!complaint, "%s", complaint);
	bytebuf_free(&events);
	free(log), free(rx), free(out);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(header_card_blocked_with_location)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", block_policy, NULL);
	int rc;
	char *out = insecure_curl(&fx, "/echo", (const char *const[]){"-H", "Accept: application/json", "-H",
								     "X-Custom-Data: 4539-1488-0343-6467", NULL},
				  &rc);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "card in header:x-custom-data"), "%s", out);
	free(out);
	/* a card in a cookie name: the location masks the name */
	out = insecure_curl(&fx, "/echo",
			    (const char *const[]){"-H", "Accept: application/json", "-b", "4539148803436467=1", NULL}, &rc);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "card in cookie:****************"), "%s", out);
	free(out);
	size_t len;
	char *rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(th_upstream_request_count(fx.up) == 0 && !th_has_group(rx, "1488"), "%s", rx);
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "\"header:x-custom-data\"") && !strstr(log, "4539148803436467") &&
			      !strstr(log, "1488-0343"),
		      "%s", log);
	free(log), free(rx);
	dlp_world_stop(&fx);
}
END_TEST

/* Host says where the request goes: it is scanned, but a mask would send
 * the request elsewhere, so a redaction there is a block that says why. */
START_TEST(host_cannot_be_masked_so_blocked)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", redact_policy, NULL);
	int rc;
	char *out = insecure_curl(
		&fx, "/echo", (const char *const[]){"-H", "Accept: application/json", "-H", "Host: 4539148803436467.example", NULL},
		&rc);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "in the Host header"), "%s", out);
	ck_assert_int_eq(th_upstream_request_count(fx.up), 0);
	free(out);
	dlp_world_stop(&fx);
}
END_TEST

/* ---- bodies past inspect.max_bytes (65536 in these policies) ---- */

#define CARD "4539 1488 0343 6467"
#define CARD_MASKED "4539 **** **** 6467"

/* n bytes of filler lines (random letters when noisy, so gzip cannot
 * shrink them much) with CARD at each offset in at[] (0-terminated). */
static char *body_file(const char *name, size_t n, const size_t *at, bool noisy)
{
	char *b = malloc(n);
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		b[i] = i % 64 == 63 ? '\n' : noisy ? (char)('a' + (x >> 16) % 26) : (char)('a' + i % 26);
	}
	for (int k = 0; at[k]; k++) {
		b[at[k] - 1] = ' '; /* a word of its own */
		memcpy(b + at[k], CARD, strlen(CARD));
		b[at[k] + strlen(CARD)] = ' ';
	}
	char *path = th_path(name);
	th_write_file(path, b, n, 0644);
	free(b);
	return path;
}

static char *gzip_file(const char *src, const char *name)
{
	size_t n;
	char *data = th_read_file(src, &n);
	bytebuf_t gz;
	bytebuf_init(&gz, 0);
	ck_assert(body_gzip(data, n, &gz));
	char *path = th_path(name);
	th_write_file(path, gz.data, gz.len, 0644);
	bytebuf_free(&gz);
	free(data);
	return path;
}

static size_t count(const char *hay, size_t n, const char *needle)
{
	size_t k = 0, nl = strlen(needle);
	for (const char *p = hay; (p = memmem(p, (size_t)(hay + n - p), needle, nl)); p += nl)
		k++;
	return k;
}

/* The body the upstream received after the last head, gunzipped as far as
 * it goes (the stream may have been cut). */
static size_t gunzip_received(const char *rx, size_t len, char *out, size_t cap)
{
	const char *body = NULL;
	for (const char *p = rx; (p = memmem(p, (size_t)(rx + len - p), "\r\n\r\n", 4)); p += 4)
		body = p + 4;
	ck_assert_ptr_nonnull(body);
	z_stream z;
	memset(&z, 0, sizeof z);
	ck_assert_int_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
	z.next_in = (Bytef *)body;
	z.avail_in = (uInt)(rx + len - body);
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	inflate(&z, Z_SYNC_FLUSH);
	size_t got = z.total_out;
	inflateEnd(&z);
	return got;
}

START_TEST(tail_past_max_bytes_masked_in_flight)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", redact_policy, NULL);
	/* in the prefix; straddling max_bytes; in the tail; straddling the
	 * cut between the first two windows (65536 - 4096 carry + 4096 +
	 * 256 KiB = 327680); far in the tail */
	const size_t at[] = {10000, 65536 - 8, 100000, 327680 - 8, 600000, 0};
	char *path = body_file("big.txt", 700000, at, false);
	char data[600];
	snprintf(data, sizeof data, "@%s", path);
	/* with a Content-Length, then chunked */
	const char *const framing[] = {"X-Framing: length", "Transfer-Encoding: chunked"};
	for (int m = 0; m < 2; m++) {
		int rc;
		char *out = insecure_curl(&fx, "/echo",
					  (const char *const[]){"-H", "Content-Type: text/plain", "-H", framing[m],
								"--data-binary", data, NULL},
					  &rc);
		ck_assert_msg(strstr(out, "status=200") && strstr(out, "\"body_len\":700000"), "%s", out);
		free(out);
	}
	size_t len;
	char *rx = th_upstream_received(fx.up, &len);
	ck_assert_uint_eq(count(rx, len, CARD), 0);
	/* all five masked in the Content-Length copy (chunk lines may cut
	 * one in the chunked copy), the middle digits nowhere */
	ck_assert_uint_ge(count(rx, len, CARD_MASKED), 5);
	ck_assert_uint_eq(count(rx, len, "1488 0343"), 0);
	free(rx);
	ck_assert(dlp_log_wait(&fx.d, "streamed past inspect.max_bytes", 5000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "\"locations\":[\"body\"]") && !strstr(log, "1488 0343"), "%s", log);
	free(log);
	free(path);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(tail_finding_cuts_the_request_off)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", block_policy, NULL);
	const size_t at[] = {400000, 0};
	char *path = body_file("big.txt", 700000, at, false);
	char data[600];
	snprintf(data, sizeof data, "@%s", path);
	const char *const modes[][2] = {{"X-Mode: length", NULL}, {"Transfer-Encoding: chunked", NULL}};
	for (int m = 0; m < 2; m++) {
		int rc;
		char *out = insecure_curl(&fx, "/echo",
					  (const char *const[]){"-H", "Accept: application/json", "-H", modes[m][0],
								"--data-binary", data, NULL},
					  &rc);
		ck_assert_msg(strstr(out, "status=403") && strstr(out, "card in body"), "%s", out);
		free(out);
	}
	size_t len;
	char *rx = th_upstream_received(fx.up, &len);
	/* the heads went up with the first bytes; the card never did, nor
	 * the whole of either body */
	ck_assert_uint_eq(count(rx, len, CARD), 0);
	ck_assert_msg(len < 2 * 400000, "upstream got %zu bytes", len);
	ck_assert_msg(!strstr(rx, "\r\n0\r\n\r\n"), "the chunked body was terminated");
	free(rx);
	ck_assert(dlp_log_wait(&fx.d, "streamed past inspect.max_bytes", 5000));
	char *log = dlp_log(&fx.d);
	ck_assert(strstr(log, "\"locations\":[\"body\"]") && strstr(log, "\"verdict\":\"block\""));
	ck_assert(!strstr(log, "1488 0343"));
	free(log);
	free(path);
	dlp_world_stop(&fx);
}
END_TEST

/* gzip: a small gzip of a large text (held whole, decoded past the limit)
 * and a gzip larger than the limit (its tail decoded as it streams); a
 * card far in either cannot be masked in compressed bytes, so the request
 * is cut off and the upstream's bytes never gunzip to the card. */
START_TEST(gzip_tail_decoded_and_scanned)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", redact_policy, NULL);
	const size_t at_small[] = {1500000, 0}, at_big[] = {900000, 0};
	char *plain_small = body_file("small.txt", 2000000, at_small, false);
	char *plain_big = body_file("noisy.txt", 1000000, at_big, true);
	char *gz_small = gzip_file(plain_small, "small.gz"), *gz_big = gzip_file(plain_big, "noisy.gz");
	const char *files[] = {gz_small, gz_big};
	size_t cap = 4u << 20;
	char *plain = malloc(cap);
	for (int i = 0; i < 2; i++) {
		size_t before;
		free(th_upstream_received(fx.up, &before));
		char data[600];
		snprintf(data, sizeof data, "@%s", files[i]);
		int rc;
		char *out = insecure_curl(&fx, "/echo",
					  (const char *const[]){"-H", "Accept: application/json", "-H",
								"Content-Encoding: gzip", "--data-binary", data, NULL},
					  &rc);
		ck_assert_msg(strstr(out, "status=403") && strstr(out, "cannot redact a compressed body"), "%s: %s",
			      files[i], out);
		free(out);
		size_t len;
		char *rx = th_upstream_received(fx.up, &len);
		size_t got = gunzip_received(rx + before, len - before, plain, cap);
		ck_assert_msg(got < (i ? 1000000u : 2000000u), "the whole body went up (%zu)", got);
		ck_assert_uint_eq(count(plain, got, CARD), 0);
		free(rx);
	}
	free(plain);
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "streamed past inspect.max_bytes") && !strstr(log, "1488 0343"), "%s", log);
	free(log);
	free(plain_small), free(plain_big), free(gz_small), free(gz_big);
	dlp_world_stop(&fx);
}
END_TEST

/* Every byte of a large upload is scanned, and memory stays bounded: the
 * prefix is freed once decided and the tail lives in windows. */
START_TEST(large_upload_scanned_in_bounded_memory)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", block_policy, NULL);
	size_t n = dlp_sanitized() ? (size_t)32 << 20 : (size_t)128 << 20;
	char *path = th_path("large.bin");
	FILE *fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(ftruncate(fileno(fp), (off_t)n), 0); /* zeros */
	ck_assert_int_eq(fseek(fp, (long)(n - 4096), SEEK_SET), 0);
	ck_assert_int_eq(fputs(" " CARD " ", fp) >= 0, 1); /* 4 KiB before the end */
	fclose(fp);
	char data[600];
	snprintf(data, sizeof data, "@%s", path);
	int rc;
	char *out = insecure_curl(&fx, "/sink",
				  (const char *const[]){"-H", "Accept: application/json", "--data-binary", data, NULL}, &rc);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "card in body"), "%s", out);
	free(out);
	ck_assert_uint_lt(th_upstream_bytes_received(fx.up), n);
	long peak = th_rss_peak_kib(fx.d.proc.pid);
	long bound = dlp_sanitized() ? 400 * 1024 : 64 * 1024;
	ck_assert_msg(peak < bound, "peak RSS %ld KiB over %ld KiB", peak, bound);
	unlink(path);
	free(path);
	dlp_world_stop(&fx);
}
END_TEST

/* A response past max_bytes streams through the windows too (a policy
 * with on_response scans every window): what the client gets is what the
 * server sent, byte for byte, with a length and chunked. */
START_TEST(response_tail_streams_unchanged)
{
	static const char *scan_both = "local dlp = require 'dlp'\n"
				       "inspect = {max_bytes = 65536}\n"
				       "local d = {" CARD_DETECTOR "}\n"
				       "function on_request(req, flow) return dlp.pass() end\n"
				       "function on_response(res, req, flow)\n"
				       "  local found = res:scan(d)\n"
				       "  if found.card then return dlp.redact(found) end\n"
				       "  return dlp.pass()\n"
				       "end\n";
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", scan_both, NULL);
	const char *paths[] = {"/bytes?n=700001", "/bytes?n=700001&chunked=1"};
	for (int i = 0; i < 2; i++) {
		char *u = url("127.0.0.1", th_upstream_port(fx.up), paths[i], true);
		char *direct = NULL, *err = NULL;
		const char *dargs[] = {"curl", "-sS", "--cacert", fx.w.ca.cert_path, u, NULL};
		size_t dlen = 0;
		ck_assert_int_eq(th_run((char *const *)dargs, NULL, 0, &direct, &dlen, &err, 60000), 0);
		free(err);
		int rc;
		char *via = insecure_curl(&fx, paths[i], NULL, &rc);
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(dlen, 700001);
		ck_assert_msg(!memcmp(via, direct, dlen) && !strcmp(via + dlen, "\nstatus=200"), "%s differs", paths[i]);
		free(via), free(direct), free(u);
	}
	dlp_world_stop(&fx);
}
END_TEST

Suite *reqscan_suite(void)
{
	Suite *s = suite_create("reqscan");
	TCase *t = tcase_create("head");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, target_headers_cookies_masked_in_place);
	tcase_add_test(t, header_card_blocked_with_location);
	tcase_add_test(t, host_cannot_be_masked_so_blocked);
	suite_add_tcase(s, t);
	TCase *b = tcase_create("stream");
	tcase_set_timeout(b, 120);
	tcase_add_test(b, tail_past_max_bytes_masked_in_flight);
	tcase_add_test(b, tail_finding_cuts_the_request_off);
	tcase_add_test(b, gzip_tail_decoded_and_scanned);
	tcase_add_test(b, large_upload_scanned_in_bounded_memory);
	tcase_add_test(b, response_tail_streams_unchanged);
	suite_add_tcase(s, b);
	return s;
}
