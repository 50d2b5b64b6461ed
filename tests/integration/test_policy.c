/*
 * Policies enforced through the proxy: what the upstream received is the
 * proof (th_upstream_received records every byte). Blocks never reach it;
 * redactions reach it masked, framing right; reloads keep a working policy.
 */
#include "dlp.h"
#include "http/body.h"
#include "suites.h"

#include <zstd.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *base_policy =
	"local dlp = require 'dlp'\n"
	"fail = 'open'\n"
	"detectors = {\n"
	"  card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' },\n"
	"  aws = dlp.detector{ [[\\b(AKIA[A-Z0-9]{16})\\b]], keywords = {'AKIA'}, group = 1 },\n"
	"  key = dlp.detector{ [[-----BEGIN [A-Z ]*PRIVATE KEY-----]], keywords = {'PRIVATE KEY'} },\n"
	"}\n"
	"function on_request(req, flow)\n"
	"  local found = req:scan(detectors)\n"
	"  if found.aws or found.key then return dlp.block('credential upload', found) end\n"
	"  if found.card then return dlp.redact(found) end\n"
	"  return dlp.pass()\n"
	"end\n";

static char *write_policy(const char *name, const char *src)
{
	char *p = th_path(name);
	th_write_file(p, src, strlen(src), 0644);
	return p;
}

typedef dlp_world_t fixture_t;

static char *post(fixture_t *fx, const char *const extra[], const char *body, int *rc)
{
	const char *args[24];
	int a = 0;
	for (int i = 0; extra && extra[i]; i++)
		args[a++] = extra[i];
	args[a++] = "--data-binary";
	args[a++] = body;
	args[a] = NULL;
	return dlp_world_curl(fx, "/echo", args, rc);
}

START_TEST(block_never_reaches_upstream)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", base_policy, NULL);
	int rc;
	char *out = post(&fx, (const char *const[]){"-H", "Accept: application/json", "-w", "\nstatus=%{http_code}", NULL},
			 "please upload AKIAIOSFODNN7EXAMPLE now", &rc);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "\"code\":\"blocked\"") && strstr(out, "credential upload") &&
			      strstr(out, "policy.lua:10") && strstr(out, "\"event\":\""),
		      "%s", out);
	/* the event: same id, the rule, a masked sample, never the key */
	char id[40] = "";
	const char *e = strstr(out, "\"event\":\"");
	sscanf(e + 9, "%36[0-9a-f-]", id);
	ck_assert(dlp_log_wait(&fx.d, id, 3000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "\"verdict\":\"block\"") && strstr(log, "AKIA************MPLE"), "%s", log);
	ck_assert_msg(!strstr(log, "AKIAIOSFODNN7EXAMPLE"), "the secret reached the log:\n%s", log);
	size_t len;
	char *rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(!strstr(rx, "AKIA") && th_upstream_request_count(fx.up) == 0, "upstream got:\n%s", rx);
	free(rx), free(log), free(out);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(redaction_reaches_upstream_masked)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", base_policy, NULL);
	int rc;
	/* Content-Length body */
	char *out = post(&fx, (const char *const[]){"-H", "Content-Type: text/plain", NULL},
			 "pay 4539 1488 0343 6467 and 4111-1111-1111-1111 thanks", &rc);
	ck_assert_int_eq(rc, 0);
	size_t len;
	char *rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "Content-Length: 54\r\n") &&
			      strstr(rx, "\r\n\r\npay 4539 **** **** 6467 and 4111-****-****-1111 thanks"),
		      "%s", rx);
	ck_assert(!strstr(rx, "1488 0343"));
	free(rx), free(out);
	dlp_world_stop(&fx);
}
END_TEST

/* However a client frames its messages, each one is inspected: three
 * pipelined POSTs written at once, a body behind Expect: 100-continue, and
 * an HTTP/1.0 request; a card in every one of them reaches the upstream
 * masked. */
START_TEST(pipelined_continue_and_http10_are_each_inspected)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", base_policy, NULL);
	th_client *c = th_client_connect_via_proxy(fx.d.port, "127.0.0.1", th_upstream_port(fx.up), fx.d.ca_path, NULL);
	const char *three = "POST /pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\none 4539 1488 0343 6467\n"
			    "POST /pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\ntwo 4111 1111 1111 1111\n"
			    "POST /pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\nConnection: close\r\n\r\n"
			    "thr 5399 3518 1909 3787\n";
	ck_assert_int_eq(th_client_send(c, three, strlen(three)), 0);
	size_t len;
	char *answers = th_client_recv_until_close(c, &len, 10000);
	ck_assert_msg(strstr(answers, "{\"seq\":1}") && strstr(answers, "{\"seq\":2}") && strstr(answers, "{\"seq\":3}"),
		      "%s", answers);
	free(answers);
	th_client_close(c);
	char *rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "one 4539 **** **** 6467") && strstr(rx, "two 4111 **** **** 1111") &&
			      strstr(rx, "thr 5399 **** **** 3787") && !th_has_group(rx, "1488") && !th_has_group(rx, "3518"),
		      "%s", rx);
	free(rx);

	/* chunked with a trailer: the trailer never reaches the upstream */
	c = th_client_connect_via_proxy(fx.d.port, "127.0.0.1", th_upstream_port(fx.up), fx.d.ca_path, NULL);
	const char *trailed = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Note\r\n"
			      "Connection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Note: card 4539 1488 0343 6467\r\n\r\n";
	ck_assert_int_eq(th_client_send(c, trailed, strlen(trailed)), 0);
	char *tr = th_client_recv_until_close(c, &len, 10000);
	ck_assert_int_eq(th_client_status(tr), 200);
	free(tr);
	th_client_close(c);
	ck_assert(dlp_log_wait(&fx.d, "event=trailers_dropped", 5000));
	rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "hello") && !strstr(rx, "X-Note: card") && !th_has_group(rx, "1488"), "%s", rx);
	free(rx);

	/* Expect: 100-continue: the body comes after the interim answer */
	c = th_client_connect_via_proxy(fx.d.port, "127.0.0.1", th_upstream_port(fx.up), fx.d.ca_path, NULL);
	const char *head = "POST /continue HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\nExpect: 100-continue\r\n\r\n";
	ck_assert_int_eq(th_client_send(c, head, strlen(head)), 0);
	char *interim = th_client_recv_head_response(c, &len, 5000);
	ck_assert_msg(th_client_status(interim) == 100, "%s", interim);
	free(interim);
	ck_assert_int_eq(th_client_send(c, "exp 6011 9746 5075 2918\n", 24), 0);
	char *final = th_client_recv_response(c, &len, 5000);
	ck_assert_int_eq(th_client_status(final), 200);
	free(final);
	th_client_close(c);

	/* HTTP/1.0, body delimited by its length, connection closed after */
	c = th_client_connect_via_proxy(fx.d.port, "127.0.0.1", th_upstream_port(fx.up), fx.d.ca_path, NULL);
	const char *old = "POST /echo HTTP/1.0\r\nHost: x\r\nContent-Length: 24\r\n\r\nold 3530 8426 8465 6323\n";
	ck_assert_int_eq(th_client_send(c, old, strlen(old)), 0);
	char *end = th_client_recv_until_close(c, &len, 10000);
	ck_assert_int_eq(th_client_status(end), 200);
	free(end);
	th_client_close(c);
	rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "exp 6011 **** **** 2918") && strstr(rx, "old 3530 **** **** 6323") &&
			      !th_has_group(rx, "9746") && !th_has_group(rx, "8426"),
		      "%s", rx);
	free(rx);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(chunked_split_and_compressed_bodies)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", base_policy, NULL);
	/* a card split across chunks, sent raw */
	th_client *c = th_client_connect_via_proxy(fx.d.port, "127.0.0.1", th_upstream_port(fx.up), fx.d.ca_path, NULL);
	const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "a\r\ncard 4539 \r\n7\r\n1488 03\r\n9\r\n43 6467 .\r\n0\r\n\r\n";
	th_client_send(c, req, strlen(req));
	size_t len;
	char *r = th_client_recv_response(c, &len, 5000);
	ck_assert_int_eq(th_client_status(r), 200);
	free(r);
	th_client_close(c);
	char *rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "card 4539 **** **** 6467 .") && !th_has_group(rx, "1488"), "%s", rx);
	free(rx);

	/* gzip: decoded, masked, sent as identity with the length fixed */
	const char *plain = "gzip'd 4539 1488 0343 6467 body";
	bytebuf_t gz;
	bytebuf_init(&gz, 0);
	ck_assert(body_gzip(plain, strlen(plain), &gz));
	char *gzpath = th_path("body.gz");
	th_write_file(gzpath, gz.data, gz.len, 0644);
	bytebuf_free(&gz);
	char at[512];
	snprintf(at, sizeof at, "@%s", gzpath);
	int rc;
	char *out = post(&fx, (const char *const[]){"-H", "Content-Encoding: gzip", "-H", "Content-Type: text/plain", NULL},
			 at, &rc);
	ck_assert_int_eq(rc, 0);
	rx = th_upstream_received(fx.up, &len);
	char want[64];
	snprintf(want, sizeof want, "Content-Length: %zu\r\n", strlen(plain));
	ck_assert_msg(strstr(rx, "gzip'd 4539 **** **** 6467 body") && strstr(rx, want), "%s", rx);
	const char *last = strstr(rx, "gzip'd 4539 ****");
	const char *head_start = last;
	while (head_start > rx && strncmp(head_start, "POST ", 5))
		head_start--;
	ck_assert_msg(!strstr(head_start, "Content-Encoding") || strstr(head_start, "Content-Encoding") > last,
		      "the identity body kept its Content-Encoding: %s", head_start);
	free(rx), free(out), free(gzpath);

	/* zstd likewise (Debian's libzstd) */
	const char *zplain = "zstd'd 4539 1488 0343 6467 body";
	uint8_t zbuf[256];
	size_t zn = ZSTD_compress(zbuf, sizeof zbuf, zplain, strlen(zplain), 3);
	ck_assert(!ZSTD_isError(zn));
	char *zpath = th_path("body.zst");
	th_write_file(zpath, zbuf, zn, 0644);
	snprintf(at, sizeof at, "@%s", zpath);
	out = post(&fx, (const char *const[]){"-H", "Content-Encoding: zstd", "-H", "Content-Type: text/plain", NULL}, at,
		   &rc);
	ck_assert_int_eq(rc, 0);
	rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "zstd'd 4539 **** **** 6467 body") && !strstr(rx, "zstd'd 4539 1488"), "%s", rx);
	free(rx), free(out), free(zpath);

	/* JSON escapes: found and masked at the same width */
	out = post(&fx, (const char *const[]){"-H", "Content-Type: application/json", NULL},
		   "{\"n\":\"\\u0034539 1488 0343 6467\"}", &rc);
	rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "{\"n\":\"\\u0034539 **** **** 6467\"}"), "%s", rx);
	free(rx), free(out);
	dlp_world_stop(&fx);
}
END_TEST

/* A body in a coding dlpgate cannot undo (compress) or that does not decode
 * hides everything: the policy decides. This one's on_uninspectable blocks
 * it from an unknown client and says why; without the stage, fail = "open"
 * passes it, and the event says it was not read. */
START_TEST(undecodable_bodies_go_to_the_policy)
{
	const char *src = "local dlp = require 'dlp'\n"
			  "function on_request(req) return dlp.pass() end\n"
			  "function on_uninspectable(flow, why)\n"
			  "  return dlp.block('cannot read it (' .. why.code .. '): ' .. why.detail)\n"
			  "end\n";
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", src, NULL);
	const char *codings[] = {"Content-Encoding: compress", "Content-Encoding: gzip"};
	for (int i = 0; i < 2; i++) {
		int rc;
		char *out = post(&fx, (const char *const[]){"-H", codings[i], "-H", "Accept: application/json", "-w",
							     "\nstatus=%{http_code}", NULL},
				 "card 4539 1488 0343 6467, not really compressed", &rc);
		ck_assert_msg(strstr(out, "status=403") && strstr(out, "cannot read it (encoding): Content-Encoding"),
			      "%s: %s", codings[i], out);
		free(out);
	}
	ck_assert_uint_eq(th_upstream_request_count(fx.up), 0);
	dlp_world_stop(&fx);

	dlp_world_start(&fx, "policy.lua", "local dlp = require 'dlp'\nfunction on_request(req) return dlp.pass() end\n", NULL);
	int rc;
	char *out = post(&fx, (const char *const[]){"-H", codings[0], "-w", "\nstatus=%{http_code}", NULL}, "opaque", &rc);
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	ck_assert(dlp_log_wait(&fx.d, "no on_uninspectable, so fail = \\\"open\\\" decides", 5000));
	free(out);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(multipart_private_key_blocked)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", base_policy, NULL);
	char *keyfile = th_path("id_rsa");
	const char *pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7fake\n-----END RSA PRIVATE KEY-----\n";
	th_write_file(keyfile, pem, strlen(pem), 0600);
	char form[512];
	snprintf(form, sizeof form, "file=@%s", keyfile);
	char *u = url("127.0.0.1", th_upstream_port(fx.up), "/echo", true);
	const char *args[] = {"-F", "note=hello", "-F", form, "-w", "\nstatus=%{http_code}", u, NULL};
	char *out = NULL, *err = NULL;
	dlp_curl(&fx.d, args, &out, &err);
	ck_assert_msg(strstr(out, "status=403"), "%s", out);
	ck_assert_uint_eq(th_upstream_request_count(fx.up), 0);
	free(out), free(err), free(u), free(keyfile);
	dlp_world_stop(&fx);
}
END_TEST

/* Decoded views (detect/views.h) through the proxy with the shipped pii
 * pack: a card written with '+' in a form sent as text/plain, %20-separated
 * in a URL-encoded field inside JSON, an email with %40, a lowercase IBAN,
 * a card wrapped over two lines or in a quoted-printable part reach the
 * upstream masked and still decodable; a card inside a base64
 * JSON field cannot be masked in place, so the request is refused and says
 * why. The policy reads which views found them (found.X.views). */
START_TEST(decoded_views_found_and_masked)
{
	char *src = NULL, *pack = th_path("pii.lua");
	const char *top = getenv("DLPGATE_TOP");
	char *shipped;
	if (asprintf(&shipped, "%s/rules/pii.lua", top ? top : ".") < 0)
		th_fail("oom");
	size_t n;
	src = th_read_file(shipped, &n);
	th_write_file(pack, src, n, 0644);
	free(src), free(shipped), free(pack);
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua",
			"local dlp = require 'dlp'\n"
			"local pii = require 'pii'\n"
			"fail = 'closed'\n"
			"function on_request(req, flow)\n"
			"  local found = req:scan(pii)\n"
			"  local views = {}\n"
			"  for name, f in pairs(found) do views[#views + 1] = name .. ':' .. table.concat(f.views or {}, '+') end\n"
			"  table.sort(views)\n"
			"  req.headers:set('X-Found', table.concat(views, ' '))\n"
			"  if next(found) then return dlp.redact(found) end\n"
			"  return dlp.pass()\n"
			"end\n",
			NULL);
	static const struct {
		const char *type, *body, *upstream_sees, *found;
	} cases[] = {
		{"text/plain", "card=4814+3088+7165+1613&name=jo", "card=4814+****+****+1613&name=jo", "credit_card:"},
		{"application/json", "{\"q\":\"pay=4814%203088%207165%201613&x=1\"}",
		 "{\"q\":\"pay=4814%20****%20****%201613&x=1\"}", "credit_card:url"},
		{"application/octet-stream", "to=jane.doe%40corp-mail.com&s=hi", "to=j***.***%40****-****.com&s=hi",
		 "email:"},
		{"text/plain", "iban: de89 3704 0044 0532 0130 00 ok", "iban: de89 **** **** **** **30 00 ok", "iban:"},
		{"text/plain", "card 4814 3088\n7165 1613 thanks", "card 4814 ****\n**** 1613 thanks", "credit_card:unwrapped"},
		{"multipart/form-data; boundary=b",
		 "--b\r\nContent-Disposition: form-data; name=\"note\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
		 "card 4814 3088 71=\r\n65 =31613\r\n--b--\r\n",
		 "card 4814 **** **=\r\n** =31613\r\n", "credit_card:qp"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char ct[64];
		snprintf(ct, sizeof ct, "Content-Type: %s", cases[i].type);
		int rc;
		char *out = post(&fx, (const char *const[]){"-H", ct, NULL}, cases[i].body, &rc);
		ck_assert_int_eq(rc, 0);
		size_t len;
		char *rx = th_upstream_received(fx.up, &len);
		ck_assert_msg(strstr(rx, cases[i].upstream_sees), "case %zu: upstream got:\n%s", i, rx);
		char hdr[96];
		snprintf(hdr, sizeof hdr, "X-Found: %s\r\n", cases[i].found);
		ck_assert_msg(strstr(rx, hdr), "case %zu: wanted %s in\n%s", i, hdr, rx);
		free(rx), free(out);
	}
	ck_assert_uint_eq(th_upstream_request_count(fx.up), sizeof cases / sizeof cases[0]);
	/* base64 cannot be masked in place: refused, with the reason */
	int rc;
	char *out = post(&fx, (const char *const[]){"-H", "Content-Type: application/json", "-H", "Accept: application/json",
						    "-w", "\nstatus=%{http_code}", NULL},
			 "{\"data\":\"eyJjYXJkIjoiNDgxNCAzMDg4IDcxNjUgMTYxMyJ9\"}", &rc);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "cannot redact") && strstr(out, "base64"), "%s", out);
	ck_assert_uint_eq(th_upstream_request_count(fx.up), sizeof cases / sizeof cases[0]);
	/* the event names the view, and holds no card */
	ck_assert(dlp_log_wait(&fx.d, "\"views\":[\"base64\"]", 3000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(!strstr(log, "3088 7165") && !strstr(log, "30887165"), "a card reached the log:\n%s", log);
	free(log), free(out);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(responses_redacted_too)
{
	world_t w = world_new();
	th_nginx n = th_nginx_start(&w.server, NULL);
	const char *page = "{\"card\": \"4539 1488 0343 6467\"}\n";
	char *pp = th_path("nginx-1/www/account.json");
	th_write_file(pp, page, strlen(page), 0644);
	free(pp);
	char *pol = write_policy("resp.lua", "local dlp = require 'dlp'\n"
					     "local card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' }\n"
					     "function on_response(res, req, flow)\n"
					     "  local found = res:scan({card = card})\n"
					     "  if found.card then return dlp.redact(found) end\n"
					     "end\n");
	dlp_t d = dlp_start(w.ca.cert_path, NULL, (const char *const[]){"--policy", pol, NULL});
	char *u = url("localhost", n.port, "/account.json", true);
	char *out = NULL, *err = NULL;
	const char *args[] = {u, NULL};
	ck_assert_msg(dlp_curl(&d, args, &out, &err) == 0, "%s", err);
	ck_assert_msg(!strcmp(out, "{\"card\": \"4539 **** **** 6467\"}\n"), "%s", out);
	free(out), free(err), free(u), free(pol);
	dlp_stop(&d);
	th_nginx_stop(&n);
	world_free(&w);
}
END_TEST

START_TEST(oversize_choices)
{
	static const struct {
		const char *oversize;
		int status;
		const char *upstream_has;
	} cases[] = {
		{"block", 403, NULL},
		{"pass", 200, "4539 1488 0343 6467"},   /* not inspected: passed as is */
		{"prefix", 200, "4539 **** **** 6467"}, /* the prefix was inspected */
	};
	for (size_t i = 0; i < 3; i++) {
		char src[2048];
		snprintf(src, sizeof src, "inspect = {max_bytes = 4096, oversize = '%s'}\n%s", cases[i].oversize, base_policy);
		fixture_t fx;
		dlp_world_start(&fx, "policy.lua", src, NULL);
		/* the card in the first 4 KiB, 60 KiB of filler after it */
		char *body = malloc(65536);
		memset(body, 'x', 65535);
		body[65535] = '\0';
		memcpy(body + 100, " 4539 1488 0343 6467 ", 21);
		char *bp = th_path("big.txt");
		th_write_file(bp, body, strlen(body), 0644);
		char at[512];
		snprintf(at, sizeof at, "@%s", bp);
		int rc;
		char *out = post(&fx, (const char *const[]){"-H", "Content-Type: text/plain", "-w", "\nstatus=%{http_code}", NULL},
				 at, &rc);
		char want[32];
		snprintf(want, sizeof want, "status=%d", cases[i].status);
		ck_assert_msg(strstr(out, want), "%s: %s", cases[i].oversize, out);
		size_t len;
		char *rx = th_upstream_received(fx.up, &len);
		if (cases[i].upstream_has)
			ck_assert_msg(strstr(rx, cases[i].upstream_has) && strstr(out, "\"body_len\":65535"), "%s: %.300s",
				      cases[i].oversize, rx);
		else
			ck_assert_uint_eq(th_upstream_request_count(fx.up), 0);
		ck_assert(dlp_log_wait(&fx.d, "\"note\":\"truncated\"", 3000));
		free(rx), free(out), free(body), free(bp);
		dlp_world_stop(&fx);
	}
}
END_TEST

START_TEST(monitor_mode_reports_and_passes)
{
	char src[2048];
	snprintf(src, sizeof src, "mode = 'monitor'\n%s", base_policy);
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", src, NULL);
	int rc;
	char *out = post(&fx, (const char *const[]){"-w", "\nstatus=%{http_code}", NULL}, "AKIAIOSFODNN7EXAMPLE", &rc);
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	ck_assert(dlp_log_wait(&fx.d, "\"verdict\":\"block\",\"monitor\":true", 3000));
	ck_assert_uint_eq(th_upstream_request_count(fx.up), 1);
	free(out);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(fail_closed_and_catastrophic_regex)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua",
			"local dlp = require 'dlp'\nfail = 'closed'\n"
			"local evil = dlp.detector{ [[(a+)+$]] }\n"
			"function on_request(req, flow)\n"
			"  if req.path == '/echo' and req.body_size == 3 then error('bug in the policy') end\n"
			"  local found = req:scan({evil = evil})\n"
			"  return dlp.pass()\n"
			"end\n",
			NULL);
	int rc;
	char *out = post(&fx, (const char *const[]){"-w", "\nstatus=%{http_code}", NULL}, "abc", &rc);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "bug in the policy"), "%s", out);
	free(out);
	/* a pathological input: the detector times out, the request goes on */
	char *body = malloc(40000);
	memset(body, 'a', 39998);
	body[39998] = '!';
	body[39999] = '\0';
	char *bp = th_path("evil.txt");
	th_write_file(bp, body, strlen(body), 0644);
	char at[512];
	snprintf(at, sizeof at, "@%s", bp);
	out = post(&fx, (const char *const[]){"-w", "\nstatus=%{http_code}", NULL}, at, &rc);
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	ck_assert(dlp_log_wait(&fx.d, "\"timed_out\":true", 3000));
	free(out), free(body), free(bp);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(reload_keeps_a_working_policy)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", base_policy, (const char *const[]){"--watch", NULL});
	int rc;
	char *out = post(&fx, (const char *const[]){"-w", "\nstatus=%{http_code}", NULL}, "AKIAIOSFODNN7EXAMPLE", &rc);
	ck_assert_msg(strstr(out, "status=403"), "%s", out);
	free(out);
	/* broken: refused, the running policy stays */
	const char *broken = "local dlp = require 'dlp'\nfunction on_request(req\n";
	th_write_file(fx.policy, broken, strlen(broken), 0644);
	kill(fx.d.proc.pid, SIGHUP);
	ck_assert(dlp_log_wait(&fx.d, "event=reload_failed", 3000));
	ck_assert(dlp_log_wait(&fx.d, "policy.lua:3:", 3000));
	/* on every worker, including one that served nothing before the
	 * broken edit: workers run the policy as it was read, not as the file
	 * is now */
	for (int i = 0; i < 6; i++) {
		out = post(&fx, (const char *const[]){"-w", "\nstatus=%{http_code}", NULL}, "AKIAIOSFODNN7EXAMPLE", &rc);
		ck_assert_msg(strstr(out, "status=403"), "request %d: the old policy was dropped: %s", i, out);
		free(out);
	}
	/* fixed, picked up by --watch without a signal: now everything passes */
	const char *open_all = "local dlp = require 'dlp'\nfunction on_request(req, flow) return dlp.pass() end\n";
	th_write_file(fx.policy, open_all, strlen(open_all), 0644);
	ck_assert(dlp_log_wait(&fx.d, "why=\"the policy file changed\"", 5000));
	out = post(&fx, (const char *const[]){"-w", "\nstatus=%{http_code}", NULL}, "AKIAIOSFODNN7EXAMPLE", &rc);
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	free(out);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(flows_keep_their_policy)
{
	fixture_t fx;
	dlp_world_start(&fx, "policy.lua", base_policy, NULL);
	/* a connection opened under the blocking policy */
	th_client *c = th_client_connect_via_proxy(fx.d.port, "127.0.0.1", th_upstream_port(fx.up), fx.d.ca_path, NULL);
	const char *ok = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
	th_client_send(c, ok, strlen(ok));
	size_t len;
	free(th_client_recv_response(c, &len, 5000));
	/* the policy changes to pass everything */
	const char *open_all = "local dlp = require 'dlp'\nfunction on_request(req, flow) return dlp.pass() end\n";
	th_write_file(fx.policy, open_all, strlen(open_all), 0644);
	kill(fx.d.proc.pid, SIGHUP);
	ck_assert(dlp_log_wait(&fx.d, "event=reload ", 3000));
	/* the old connection still blocks */
	const char *bad = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nAKIAIOSFODNN7EXAMPLE";
	th_client_send(c, bad, strlen(bad));
	char *r = th_client_recv_response(c, &len, 5000);
	ck_assert_int_eq(th_client_status(r), 403);
	free(r);
	th_client_close(c);
	/* a new one passes */
	int rc;
	char *out = post(&fx, (const char *const[]){"-w", "\nstatus=%{http_code}", NULL}, "AKIAIOSFODNN7EXAMPLE", &rc);
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	free(out);
	dlp_world_stop(&fx);
}
END_TEST

START_TEST(broken_policy_refuses_to_start)
{
	char *pol = write_policy("broken.lua", "local dlp = require 'dlp'\n\nfunction on_flow(flow)\n  return dlp.bypass(\nend\n");
	char *state = th_path("st-broken");
	char listen[32];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", th_free_port());
	const char *argv[] = {dlp_bin(), "run", "--listen", listen, "--state-dir", state, "--policy", pol, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 10000);
	ck_assert_int_eq(rc, 2);
	ck_assert_msg(strstr(err, "broken.lua:5:") && strstr(err, "unexpected symbol"), "%s", err);
	free(out), free(err), free(pol), free(state);
}
END_TEST

Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *t = tcase_create("enforce");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, block_never_reaches_upstream);
	tcase_add_test(t, redaction_reaches_upstream_masked);
	tcase_add_test(t, pipelined_continue_and_http10_are_each_inspected);
	tcase_add_test(t, chunked_split_and_compressed_bodies);
	tcase_add_test(t, multipart_private_key_blocked);
	tcase_add_test(t, undecodable_bodies_go_to_the_policy);
	tcase_add_test(t, responses_redacted_too);
	tcase_add_test(t, decoded_views_found_and_masked);
	tcase_add_test(t, oversize_choices);
	tcase_add_test(t, monitor_mode_reports_and_passes);
	tcase_add_test(t, fail_closed_and_catastrophic_regex);
	tcase_add_test(t, reload_keeps_a_working_policy);
	tcase_add_test(t, flows_keep_their_policy);
	tcase_add_test(t, broken_policy_refuses_to_start);
	suite_add_tcase(s, t);
	return s;
}
