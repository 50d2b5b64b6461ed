/*
 * HTTP through the proxy: real curl and raw clients against the harness
 * upstream (its own HTTP parser) and nginx, over intercepted TLS, clear
 * CONNECT tunnels and absolute-form requests.
 */
#include "dlp.h"
#include "suites.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The /echo JSON of a response body. */
static json_t *echo_json(const char *body)
{
	json_error_t e;
	json_t *j = json_loads(body, 0, &e);
	ck_assert_msg(j != NULL, "not JSON (%s): %s", e.text, body);
	return j;
}

static const char *jstr(json_t *j, const char *path1, const char *path2)
{
	json_t *v = json_object_get(j, path1);
	if (path2)
		v = json_object_get(v, path2);
	return json_string_value(v);
}

START_TEST(get_post_head_over_tls)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	char *u = url("localhost", th_upstream_port(up), "/echo?q=1", true);
	char *out = NULL, *err = NULL;

	const char *get[] = {u, NULL};
	ck_assert_msg(dlp_curl(&d, get, &out, &err) == 0, "curl: %s", err);
	json_t *j = echo_json(out);
	ck_assert_str_eq(jstr(j, "method", NULL), "GET");
	ck_assert_str_eq(jstr(j, "path", NULL), "/echo?q=1");
	char host[64];
	snprintf(host, sizeof host, "localhost:%d", th_upstream_port(up));
	ck_assert_str_eq(jstr(j, "headers", "host"), host);
	json_decref(j);
	free(out);
	free(err);

	const char *post[] = {"--data-binary", "hello body", u, NULL};
	ck_assert_int_eq(dlp_curl(&d, post, &out, &err), 0);
	j = echo_json(out);
	ck_assert_str_eq(jstr(j, "method", NULL), "POST");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_len")), 10);
	char sha[65];
	th_sha256_hex("hello body", 10, sha);
	ck_assert_str_eq(jstr(j, "body_sha256", NULL), sha);
	json_decref(j);
	free(out);
	free(err);

	char *hu = url("localhost", th_upstream_port(up), "/head", true);
	const char *head[] = {"-I", hu, NULL};
	ck_assert_int_eq(dlp_curl(&d, head, &out, &err), 0);
	ck_assert_msg(strstr(out, "HTTP/1.1 200") && strstr(out, "Content-Length: 1234"), "%s", out);
	free(out);
	free(err);

	/* the certificate curl verified was ours, not the upstream's */
	th_client *c = th_client_connect_via_proxy(d.port, "localhost", th_upstream_port(up), d.ca_path, "localhost");
	ck_assert_ptr_nonnull(strstr(th_client_peer_cert_issuer(c), "dlpgate CA"));
	th_client_close(c);

	free(u);
	free(hu);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(chunked_upload_and_keepalive_reuse)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	char *path = th_path("upload.bin");
	size_t n = 3 * 1024 * 1024 + 17;
	char *data = malloc(n);
	th_pattern_fill(data, n, 0);
	th_write_file(path, data, n, 0644);
	char sha[65];
	th_sha256_hex(data, n, sha);
	free(data);
	char at[512];
	snprintf(at, sizeof at, "@%s", path);
	char *u = url("127.0.0.1", th_upstream_port(up), "/sink", true);
	char *out = NULL, *err = NULL;
	/* chunked, then a second request on the same connection */
	const char *args[] = {"-H", "Transfer-Encoding: chunked", "--data-binary", at, u, "--next", "--proxy",
			      d.proxy,  "--cacert", d.ca_path, u, "-w", "\nconnects=%{num_connects}\n", NULL};
	ck_assert_msg(dlp_curl(&d, args, &out, &err) == 0, "curl: %s", err);
	char want[128];
	snprintf(want, sizeof want, "\"body_len\":%zu", n);
	ck_assert_msg(strstr(out, want) && strstr(out, sha), "%s", out);
	ck_assert_msg(strstr(out, "connects=0"), "the second request did not reuse the connection: %s", out);
	ck_assert_uint_eq(th_upstream_connection_count(up), 1);
	ck_assert_uint_eq(th_upstream_request_count(up), 2);
	/* the upstream saw chunked framing written by us */
	size_t len;
	char *rx = th_upstream_received(up, &len);
	ck_assert_msg(strstr(rx, "Transfer-Encoding: chunked\r\n"), "%.300s", rx);
	free(rx);
	free(out);
	free(err);
	free(u);
	free(path);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(pipelined_requests_keep_order)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	const char *reqs = "GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\n"
			   "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n"
			   "GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\n"
			   "POST /pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
			   "GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(th_client_send(c, reqs, strlen(reqs)), 0);
	size_t len;
	char *r1 = th_client_recv_response(c, &len, 5000);
	char *r2 = th_client_recv_head_response(c, &len, 5000);
	char *r3 = th_client_recv_response(c, &len, 5000);
	char *r4 = th_client_recv_response(c, &len, 5000);
	char *r5 = th_client_recv_response(c, &len, 5000);
	ck_assert_msg(r1 && r2 && r3 && r4 && r5, "a response is missing");
	ck_assert_msg(strstr(r1, "{\"seq\":1}"), "%s", r1);
	ck_assert_msg(th_client_status(r2) == 200 && strstr(r2, "Content-Length: 1234"), "%s", r2);
	ck_assert_msg(strstr(r3, "{\"seq\":3}"), "%s", r3);
	ck_assert_msg(strstr(r4, "{\"seq\":4}"), "%s", r4);
	ck_assert_msg(strstr(r5, "{\"seq\":5}"), "%s", r5);
	free(r1), free(r2), free(r3), free(r4), free(r5);
	th_client_close(c);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(expect_continue_and_no_body_statuses)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	char *out = NULL, *err = NULL;
	char *u = url("127.0.0.1", th_upstream_port(up), "/continue", true);
	const char *cont[] = {"-H", "Expect: 100-continue", "--data-binary", "waited", u, NULL};
	ck_assert_msg(dlp_curl(&d, cont, &out, &err) == 0, "%s", err);
	ck_assert_msg(strstr(out, "\"body_len\":6"), "%s", out);
	free(out), free(err), free(u);

	/* 204 and 304 have no body even with a length; the connection stays usable */
	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	const char *reqs = "GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n"
			   "GET /status?code=304 HTTP/1.1\r\nHost: x\r\n\r\n"
			   "GET /eof HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, reqs, strlen(reqs));
	size_t len;
	char *r1 = th_client_recv_response(c, &len, 5000);
	char *r2 = th_client_recv_response(c, &len, 5000);
	ck_assert_int_eq(th_client_status(r1), 204);
	ck_assert_int_eq(th_client_status(r2), 304);
	/* close-delimited: the body runs to the end, then the proxy closes */
	char *r3 = th_client_recv_until_close(c, &len, 5000);
	ck_assert_msg(th_client_status(r3) == 200 && strstr(r3, "until-eof-body"), "%s", r3);
	ck_assert(th_client_eof(c));
	free(r1), free(r2), free(r3);
	th_client_close(c);

	/* Connection: close from the server closes the client side too */
	c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	const char *req = "GET /close HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, req, strlen(req));
	char *all = th_client_recv_until_close(c, &len, 5000);
	ck_assert_int_eq(th_client_status(all), 200);
	ck_assert(th_client_eof(c));
	free(all);
	th_client_close(c);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

/* After a 101 the bytes are WebSocket frames and are parsed, not spliced:
 * the harness upstream echoes raw bytes, so it sends the client's masked
 * frame back, which no server may do; both ends get close 1002. The frame
 * that reached it was masked again with a key of dlpgate's own. */
START_TEST(websocket_frames_are_parsed_after_101)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	const char *req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
			  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
	th_client_send(c, req, strlen(req));
	size_t len;
	char *r = th_client_recv_response(c, &len, 5000);
	ck_assert_int_eq(th_client_status(r), 101);
	ck_assert_msg(strstr(r, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "%s", r);
	free(r);
	/* "Hello", masked with 37 fa 21 3d (RFC 6455 5.7) */
	const unsigned char frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
	th_client_send(c, frame, sizeof frame);
	char *back = th_client_recv_until_close(c, &len, 5000);
	/* an unmasked close frame, code 1002 (0x03ea) */
	ck_assert_msg(len >= 4 && (unsigned char)back[0] == 0x88 && !(back[1] & 0x80) && (unsigned char)back[2] == 0x03 &&
			      (unsigned char)back[3] == 0xea,
		      "%zu bytes back: %02x %02x %02x %02x %.*s", len, (unsigned char)back[0], (unsigned char)back[1], (unsigned char)back[2], (unsigned char)back[3], (int)len - 4, back + 4);
	ck_assert(memmem(back, len, "masked server frame", 19));
	free(back);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "mode=websocket-tls", 5000));
	ck_assert(dlp_log_wait(&d, "\"note\":\"protocol-error\"", 5000));
	size_t got_len;
	char *got = th_upstream_received(up, &got_len);
	ck_assert_msg(!strstr(got, "Sec-WebSocket-Extensions"), "the deflate offer went up: %s", got);
	const char *frame_up = strstr(got, "\r\n\r\n");
	ck_assert(frame_up && got_len - (size_t)(frame_up + 4 - got) >= sizeof frame);
	const unsigned char *f = (const unsigned char *)frame_up + 4;
	ck_assert(f[0] == 0x81 && f[1] == 0x85);
	char text[6];
	for (int i = 0; i < 5; i++)
		text[i] = (char)(f[6 + i] ^ f[2 + i % 4]);
	text[5] = '\0';
	ck_assert_str_eq(text, "Hello");
	free(got);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(not_http_inside_tls_is_spliced)
{
	world_t w = world_new();
	/* a server that speaks first (IMAPS-like) */
	th_upstream *banner = th_upstream_start_banner(&w.server, "* OK ready\r\n");
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(banner), d.ca_path, NULL);
	char *b = th_client_recv_exact(c, 12, 5000);
	ck_assert_str_eq(b, "* OK ready\r\n");
	th_client_send(c, "a1 NOOP\r\n", 9);
	char *e = th_client_recv_exact(c, 9, 5000);
	ck_assert_str_eq(e, "a1 NOOP\r\n");
	free(b), free(e);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "mode=server-first", 5000));
	th_upstream_stop(banner);

	/* a client that speaks first, in something that is not HTTP */
	th_upstream *echo = th_upstream_start_banner(&w.server, "");
	c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(echo), d.ca_path, NULL);
	const char bin[] = "\x00\x01\x02 binary protocol";
	th_client_send(c, bin, sizeof bin);
	char *back = th_client_recv_exact(c, sizeof bin, 5000);
	ck_assert(memcmp(back, bin, sizeof bin) == 0);
	free(back);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "mode=not-http", 5000));
	ck_assert(dlp_log_wait(&d, "\"note\":\"uninspectable:not-http\"", 5000));
	dlp_stop(&d);

	/* a policy that fails closed lets neither through: the banner server's
	 * client is cut off, and the binary protocol never reaches its server */
	const char *closed = "local dlp = require \"dlp\"\nfail = \"closed\"\n"
			     "function on_request(req) return dlp.pass() end\n";
	char *pol = th_path("not-http-closed.lua");
	th_write_file(pol, closed, strlen(closed), 0644);
	d = dlp_start(w.ca.cert_path, NULL, (const char *const[]){"--policy", pol, NULL});
	c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(echo), d.ca_path, NULL);
	th_client_send(c, bin, sizeof bin);
	size_t got = 0;
	char *nothing = th_client_recv_until_close(c, &got, 5000);
	ck_assert_msg(got == 0 && th_client_eof(c), "a blocked non-HTTP tunnel answered %zu bytes", got);
	free(nothing);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "uninspectable:not-http", 5000));
	ck_assert_uint_eq(th_upstream_bytes_received(echo), sizeof bin); /* only the first, spliced flow's */
	dlp_stop(&d);
	free(pol);
	th_upstream_stop(echo);
	world_free(&w);
}
END_TEST

START_TEST(clear_http_in_tunnel_and_absolute_form)
{
	world_t w = world_new();
	th_upstream *plain = th_upstream_start(NULL);
	th_upstream *plain2 = th_upstream_start(NULL);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);

	/* CONNECT, then clear HTTP inside: inspected as HTTP */
	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(plain), NULL, NULL);
	const char *req = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, req, strlen(req));
	size_t len;
	char *r = th_client_recv_response(c, &len, 5000);
	ck_assert_int_eq(th_client_status(r), 200);
	free(r);
	th_client_close(c);

	/* absolute-form: origin-form upstream, Host from the URL, Proxy-* gone,
	 * and a second host on the same client connection */
	char *u1 = url("127.0.0.1", th_upstream_port(plain), "/echo?a=b", false);
	char *u2 = url("127.0.0.1", th_upstream_port(plain2), "/echo", false);
	char *out = NULL, *err = NULL;
	const char *args[] = {"--proxy-user", "alice:secret", u1, u2, "-w", "\nconnects=%{num_connects}\n", NULL};
	ck_assert_msg(dlp_curl(&d, args, &out, &err) == 0, "%s", err);
	/* two answers, each followed by the -w line; the second reused the
	 * client connection although it went to another upstream */
	ck_assert_msg(strstr(out, "connects=1") && strstr(out, "connects=0"), "%s", out);
	char *cut = strstr(out, "\nconnects=");
	*cut = '\0';
	json_t *j = echo_json(out);
	ck_assert_str_eq(jstr(j, "path", NULL), "/echo?a=b");
	char hostport[64];
	snprintf(hostport, sizeof hostport, "127.0.0.1:%d", th_upstream_port(plain));
	ck_assert_str_eq(jstr(j, "headers", "host"), hostport);
	ck_assert_ptr_null(json_object_get(json_object_get(j, "headers"), "proxy-authorization"));
	json_decref(j);
	ck_assert_uint_eq(th_upstream_request_count(plain2), 1);
	free(out), free(err), free(u1), free(u2);

	/* origin-form to the proxy itself: a clear refusal */
	c = th_client_connect_plain(d.port);
	th_client_send(c, req, strlen(req));
	r = th_client_recv_until_close(c, &len, 5000);
	ck_assert_int_eq(th_client_status(r), 400);
	ck_assert_msg(strstr(r, "absolute-form"), "%s", r);
	free(r);
	th_client_close(c);

	dlp_stop(&d);
	th_upstream_stop(plain);
	th_upstream_stop(plain2);
	world_free(&w);
}
END_TEST

START_TEST(connect_failures_are_explained)
{
	world_t w = world_new();
	dlp_t d = dlp_start(w.ca.cert_path, "{\"timeouts\": {\"connect_ms\": 500}}", NULL);
	char *why = NULL;
	/* nothing listens */
	int closed = th_free_port();
	th_client *c = th_client_try_via_proxy(d.port, "127.0.0.1", closed, NULL, NULL, &why);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(why, "502") && strstr(why, "connection refused"), "%s", why);
	free(why);
	/* a name that does not resolve */
	c = th_client_try_via_proxy(d.port, "no-such-host.invalid", 443, NULL, NULL, &why);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(why, "502") && strstr(why, "cannot resolve"), "%s", why);
	free(why);
	/* a bad authority */
	c = th_client_try_via_proxy(d.port, "bad host", 443, NULL, NULL, &why);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(why, "400"), "%s", why);
	free(why);
	dlp_stop(&d);
	world_free(&w);
}
END_TEST

START_TEST(nginx_upstream_keepalive)
{
	world_t w = world_new();
	th_nginx n = th_nginx_start(&w.server, NULL);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	char *u = url("localhost", n.port, "/hello.txt", true);
	char *u2 = url("localhost", n.port, "/64k", true);
	char *out = NULL, *err = NULL;
	const char *args[] = {u, u2, "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{num_connects}\n", NULL};
	ck_assert_msg(dlp_curl(&d, args, &out, &err) == 0, "%s", err);
	ck_assert_msg(strstr(out, "200 65536 0"), "%s", out);
	free(out), free(err), free(u), free(u2);
	dlp_stop(&d);
	th_nginx_stop(&n);
	world_free(&w);
}
END_TEST

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* --balance engine (macOS's default): one listening socket, and each
 * connection goes to the worker with the fewest flows. Connections held
 * open one after another must land on every worker in turn, whichever
 * worker the kernel woke to accept them. */
START_TEST(engine_balance_spreads_connections)
{
	enum { WORKERS = 4, PER_WORKER = 2 };
	th_upstream *plain = th_upstream_start(NULL);
	const char *extra[] = {"--balance", "engine", "--workers", "4", NULL};
	dlp_t d = dlp_start(NULL, NULL, extra);
	/* dlp_start's readiness probe is a flow too: gone before we begin */
	ck_assert(dlp_log_wait(&d, "event=flow_end", 5000));
	th_client *c[WORKERS * PER_WORKER];
	for (int i = 0; i < WORKERS * PER_WORKER; i++) {
		c[i] = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(plain), NULL, NULL);
		const char *req = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
		th_client_send(c[i], req, strlen(req));
		size_t len;
		char *r = th_client_recv_response(c[i], &len, 5000);
		ck_assert_int_eq(th_client_status(r), 200);
		free(r);
	}
	for (int i = 0; i < WORKERS * PER_WORKER; i++)
		th_client_close(c[i]);
	char *log = NULL;
	for (int waited = 0; waited < 5000; waited += 20) { /* every flow's log line */
		free(log);
		log = dlp_log(&d);
		if (count(log, "event=flow_end") == 1 + WORKERS * PER_WORKER)
			break;
		usleep(20 * 1000);
	}
	char needle[32];
	for (int k = 0; k < WORKERS; k++) {
		snprintf(needle, sizeof needle, " worker=%d ", k);
		int n = 0; /* flows that carried a request: not the probe */
		for (const char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
			const char *end = strchr(line, '\n') ? strchr(line, '\n') : line + strlen(line);
			const char *w = strstr(line, needle), *r = strstr(line, " requests=1 ");
			n += w && w < end && r && r < end;
		}
		ck_assert_msg(n == PER_WORKER, "worker %d took %d flows, not %d:\n%s", k, n, PER_WORKER, log);
	}
	free(log);
	dlp_stop(&d);
	th_upstream_stop(plain);
}
END_TEST

Suite *proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *t = tcase_create("http");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, get_post_head_over_tls);
	tcase_add_test(t, chunked_upload_and_keepalive_reuse);
	tcase_add_test(t, pipelined_requests_keep_order);
	tcase_add_test(t, expect_continue_and_no_body_statuses);
	tcase_add_test(t, websocket_frames_are_parsed_after_101);
	tcase_add_test(t, not_http_inside_tls_is_spliced);
	tcase_add_test(t, clear_http_in_tunnel_and_absolute_form);
	tcase_add_test(t, connect_failures_are_explained);
	tcase_add_test(t, nginx_upstream_keepalive);
	tcase_add_test(t, engine_balance_spreads_connections);
	suite_add_tcase(s, t);
	return s;
}
