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
				   "inspect = {max_bytes = 65536}\n"
				   "local d = {" CARD_DETECTOR "}\n"
				   "function on_request(req, flow)\n"
				   "  local found = req:scan(d)\n"
				   "  if found.card then return dlp.redact(found) end\n"
				   "  return dlp.pass()\n"
				   "end\n";

static const char *block_policy = "local dlp = require 'dlp'\n"
				  "fail = 'closed'\n"
				  "inspect = {max_bytes = 65536}\n"
				  "local d = {" CARD_DETECTOR "}\n"
				  "function on_request(req, flow)\n"
				  "  local found = req:scan(d)\n"
				  "  if found.card then\n"
				  "    return dlp.block('card in ' .. table.concat(found.card.locations, ','), found)\n"
				  "  end\n"
				  "  return dlp.pass()\n"
				  "end\n";

typedef struct {
	world_t w;
	th_upstream *up;
	dlp_t d;
	char *policy;
} fixture_t;

static void setup(fixture_t *fx, const char *src)
{
	fx->w = world_new();
	fx->up = th_upstream_start(&fx->w.server);
	fx->policy = th_path("policy.lua");
	th_write_file(fx->policy, src, strlen(src), 0644);
	const char *args[] = {"--policy", fx->policy, NULL};
	fx->d = dlp_start(fx->w.ca.cert_path, NULL, args);
}

static void teardown(fixture_t *fx)
{
	dlp_stop(&fx->d);
	th_upstream_stop(fx->up);
	world_free(&fx->w);
	free(fx->policy);
}

/* curl -k through the proxy; returns what -w and the body print. */
static char *insecure_curl(fixture_t *fx, const char *path, const char *const extra[], int *rc)
{
	char *u = url("127.0.0.1", th_upstream_port(fx->up), path, true);
	const char *args[32] = {"-k", "-sS", "-w", "\nstatus=%{http_code}"};
	int a = 4;
	for (int i = 0; extra && extra[i]; i++)
		args[a++] = extra[i];
	args[a++] = u;
	args[a] = NULL;
	char *out = NULL, *err = NULL;
	*rc = dlp_curl(&fx->d, args, &out, &err);
	free(err);
	free(u);
	return out;
}

START_TEST(target_headers_cookies_masked_in_place)
{
	fixture_t fx;
	setup(&fx, redact_policy);
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
	ck_assert_msg(!strstr(rx, "1488") && !strstr(rx, "3518") && !strstr(rx, "9746") && !strstr(rx, "5075") &&
			      !strstr(rx, "8426") && th_upstream_request_count(fx.up) == 1,
		      "%s", rx);
	/* the event: every place, masked samples, the path masked too */
	ck_assert(dlp_log_wait(&fx.d, "\"cookie:cc\"", 5000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "\"url\"") && strstr(log, "\"header:x-card\"") && strstr(log, "\"header:x-split\"") &&
			      strstr(log, "\"redacted\":true") && strstr(log, "\"path\":\"/echo/****************\""),
		      "%s", log);
	ck_assert_msg(!strstr(log, "4539148803436467") && !strstr(log, "1488") && !strstr(log, "9746 5075"), "%s", log);
	free(log), free(rx), free(out);
	teardown(&fx);
}
END_TEST

START_TEST(header_card_blocked_with_location)
{
	fixture_t fx;
	setup(&fx, block_policy);
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
	ck_assert_msg(th_upstream_request_count(fx.up) == 0 && !strstr(rx, "1488"), "%s", rx);
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "\"header:x-custom-data\"") && !strstr(log, "4539148803436467") &&
			      !strstr(log, "1488-0343"),
		      "%s", log);
	free(log), free(rx);
	teardown(&fx);
}
END_TEST

/* Host says where the request goes: it is scanned, but a mask would send
 * the request elsewhere, so a redaction there is a block that says why. */
START_TEST(host_cannot_be_masked_so_blocked)
{
	fixture_t fx;
	setup(&fx, redact_policy);
	int rc;
	char *out = insecure_curl(
		&fx, "/echo", (const char *const[]){"-H", "Accept: application/json", "-H", "Host: 4539148803436467.example", NULL},
		&rc);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "host header"), "%s", out);
	ck_assert_int_eq(th_upstream_request_count(fx.up), 0);
	free(out);
	teardown(&fx);
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
	return s;
}
