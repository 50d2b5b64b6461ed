/*
 * Hostile and broken input: smuggling shapes inside intercepted TLS get a
 * 400 and nothing reaches the upstream; limits and timeouts answer with the
 * right status and close; nothing crashes (the ASan run of this suite is the
 * leak and memory-error check).
 */
#include "dlp.h"
#include "suites.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sends raw bytes in an intercepted tunnel; returns the raw answer. */
static char *exchange(dlp_t *d, int port, const char *raw, size_t len)
{
	th_client *c = th_client_connect_via_proxy(d->port, "127.0.0.1", port, d->ca_path, NULL);
	th_client_send(c, raw, len);
	size_t n;
	char *r = th_client_recv_until_close(c, &n, 5000);
	ck_assert_msg(th_client_eof(c), "the proxy did not close after: %s", raw);
	th_client_close(c);
	return r;
}

START_TEST(smuggling_vectors_never_reach_upstream)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	const char *smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *vectors[] = {
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n%s",
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 36\r\n\r\n%s",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1x\r\nA\r\n0\r\n\r\n%s",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n chunked\r\n\r\n0\r\n\r\n%s",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n%s",
		"POST /echo HTTP/1.1\r\nHost: x\nContent-Length: 36\r\n\r\n%s",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n%s",
		"GET /echo HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n%s",
		"GET /echo HTTP/2.0\r\nHost: x\r\n\r\n%s",
	};
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		char raw[1024];
		int n = snprintf(raw, sizeof raw, vectors[i], smuggled);
		char *r = exchange(&d, th_upstream_port(up), raw, (size_t)n);
		int st = th_client_status(r);
		ck_assert_msg(st == 400 || st == 505, "vector %zu got %d:\n%s", i, st, r);
		ck_assert_msg(strstr(r, "X-Dlpgate-Error:"), "not our refusal: %s", r);
		free(r);
	}
	/* The smuggled request never reached the upstream. A head whose body
	 * broke mid-stream (bad chunk size) was already sent, but the upstream
	 * connection was cut before that message could complete: the upstream
	 * answered nothing, the client got our 400. */
	size_t len;
	char *rx = th_upstream_received(up, &len);
	ck_assert_msg(!strstr(rx, "/smuggled"), "the upstream received:\n%s", rx);
	free(rx);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(header_limits_answer_431)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, "{\"limits\": {\"header_bytes\": 4096, \"header_count\": 20}}", NULL);
	char *big = malloc(16384);
	int n = snprintf(big, 16384, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: %08000d\r\n\r\n", 0);
	char *r = exchange(&d, th_upstream_port(up), big, (size_t)n);
	ck_assert_msg(th_client_status(r) == 431, "%s", r);
	free(r);
	n = snprintf(big, 16384, "GET /echo HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 30; i++)
		n += snprintf(big + n, 16384 - (size_t)n, "X-%d: v\r\n", i);
	n += snprintf(big + n, 16384 - (size_t)n, "\r\n");
	r = exchange(&d, th_upstream_port(up), big, (size_t)n);
	ck_assert_msg(th_client_status(r) == 431, "%s", r);
	free(r);
	free(big);
	ck_assert_uint_eq(th_upstream_request_count(up), 0);
	/* a response head over the limit is the server's fault: 502 */
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(slow_and_idle_clients_time_out)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, "{\"timeouts\": {\"header_ms\": 400, \"keepalive_ms\": 300, \"handshake_ms\": 400}}",
			    NULL);
	/* slowloris: a head that trickles in gets 408 and a close */
	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	const char *part = "GET /echo HTTP/1.1\r\nHost: x\r\n";
	th_client_send(c, part, strlen(part));
	for (int i = 0; i < 3; i++) {
		usleep(150000);
		if (th_client_send(c, "X: y\r\n", 6) != 0)
			break;
	}
	size_t len;
	char *r = th_client_recv_until_close(c, &len, 3000);
	ck_assert_msg(th_client_status(r) == 408, "%s", r);
	free(r);
	th_client_close(c);
	/* an idle keep-alive connection is closed quietly */
	c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	const char *req = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, req, strlen(req));
	free(th_client_recv_response(c, &len, 3000));
	r = th_client_recv_until_close(c, &len, 3000);
	ck_assert_msg(th_client_eof(c) && len == 0, "%zu bytes: %s", len, r);
	free(r);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "end=keepalive-timeout", 3000));
	/* a tunnel that never says anything */
	c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), NULL, NULL);
	r = th_client_recv_until_close(c, &len, 3000);
	ck_assert(th_client_eof(c));
	free(r);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "first bytes timed out", 3000));
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(connect_timeout_is_504)
{
	/* A listener whose accept queue is full: SYNs go unanswered. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(s, 0), 0);
	socklen_t al = sizeof a;
	getsockname(s, (struct sockaddr *)&a, &al);
	int port = ntohs(a.sin_port);
	int fill[4];
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof a);
	}
	usleep(100000);
	world_t w = world_new();
	dlp_t d = dlp_start(w.ca.cert_path, "{\"timeouts\": {\"connect_ms\": 300}}", NULL);
	char *why = NULL;
	th_client *c = th_client_try_via_proxy(d.port, "127.0.0.1", port, NULL, NULL, &why);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(why, "504") && strstr(why, "timed out"), "%s", why);
	free(why);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(s);
	dlp_stop(&d);
	world_free(&w);
}
END_TEST

START_TEST(max_connections_refused_clearly)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, "{\"limits\": {\"max_connections\": 2}}", NULL);
	th_client *a = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	th_client *b = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	th_client *c = th_client_connect_plain(d.port);
	size_t len;
	char *r = th_client_recv_until_close(c, &len, 3000);
	ck_assert_msg(th_client_status(r) == 503 && strstr(r, "limits.max_connections"), "%s", r);
	free(r);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "event=connection_refused", 3000));
	th_client_close(a);
	th_client_close(b);
	/* capacity comes back when connections end */
	char *u = url("127.0.0.1", th_upstream_port(up), "/echo", true);
	const char *args[] = {"--retry", "5", "--retry-delay", "0", "--retry-all-errors", u, NULL};
	char *out = NULL, *err = NULL;
	ck_assert_msg(dlp_curl(&d, args, &out, &err) == 0, "%s", err);
	free(out), free(err), free(u);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(garbage_clienthello_is_refused)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), NULL, NULL);
	/* a handshake record that claims a ClientHello and lies about lengths */
	const unsigned char bad[] = {0x16, 0x03, 0x01, 0x00, 0x30, 0x01, 0x00, 0x00, 0x2c, 0x03, 0x03};
	unsigned char msg[5 + 48] = {0};
	memcpy(msg, bad, sizeof bad);
	th_client_send(c, msg, sizeof msg);
	size_t len;
	char *r = th_client_recv_until_close(c, &len, 3000);
	ck_assert(th_client_eof(c));
	/* the alert a TLS server sends for it: fatal decode_error (an empty
	 * cipher suite list), then the close */
	const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50};
	ck_assert_msg(len == sizeof alert && !memcmp(r, alert, sizeof alert), "%zu bytes, not the alert", len);
	free(r);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "end=bad-clienthello", 3000));
	ck_assert_uint_eq(th_upstream_tls_handshakes(up), 0);

	/* An SSLv2-compatible hello is TLS, not "something else" to splice:
	 * refused with protocol_version, and the server hears nothing (a
	 * server that accepts the format would otherwise hold an uninspected
	 * TLS session). */
	th_upstream *plain = th_upstream_start(NULL);
	c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(plain), NULL, NULL);
	const unsigned char v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
				    0x2f, 0x00, 0x00, 0x35, 0x00, 0x00, 0x0a, 0x01, 0x00, 0x80, 0x07, 0x00, 0xc0,
				    0x03, 0x00, 0x80, 0x00, 0x00, 0x09, 0x06, 0x00, 0x40, 0x11, 0x22, 0x33, 0x44,
				    0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00};
	th_client_send(c, v2, sizeof v2);
	r = th_client_recv_until_close(c, &len, 3000);
	ck_assert(th_client_eof(c));
	ck_assert_msg(len == sizeof alert && r[6] == 70, "%zu bytes, not the protocol_version alert", len);
	free(r);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "SSLv2-compatible ClientHello", 3000));
	ck_assert_uint_eq(th_upstream_bytes_received(plain), 0);
	th_upstream_stop(plain);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

/* A TLS record the gateway cannot decrypt gets the fatal alert OpenSSL
 * makes for it (bad_record_mac), not a silent close: the error path after
 * SSL_read flushes what OpenSSL wrote, as the handshake path does. */
START_TEST(record_errors_are_answered_with_alerts)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	int fd = dlp_tunnel_fd(&d, th_upstream_port(up));
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	ck_assert(SSL_CTX_load_verify_locations(ctx, d.ca_path, NULL) == 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	ck_assert_msg(SSL_connect(ssl) == 1, "handshake through the gateway failed");
	/* an application data record of 32 bytes no key made */
	unsigned char forged[5 + 32] = {0x17, 0x03, 0x03, 0x00, 0x20};
	for (size_t i = 5; i < sizeof forged; i++)
		forged[i] = (unsigned char)(i * 37);
	ck_assert(send(fd, forged, sizeof forged, 0) == (ssize_t)sizeof forged);
	char buf[64];
	ERR_clear_error();
	ck_assert_int_le(SSL_read(ssl, buf, sizeof buf), 0);
	unsigned long e = ERR_peek_last_error();
	ck_assert_msg(ERR_GET_REASON(e) == SSL_R_SSLV3_ALERT_BAD_RECORD_MAC, "no bad_record_mac alert: %s",
		      e ? ERR_reason_error_string(e) : "the connection just closed");
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	ck_assert(dlp_log_wait(&d, "client: TLS error", 3000));
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(logs_hold_no_secrets)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, (const char *const[]){"--log-level", "debug", NULL});
	char *u = url("127.0.0.1", th_upstream_port(up), "/echo?token=SECRETQUERYVALUE", true);
	const char *args[] = {"-H", "Cookie: session=SECRETCOOKIEVALUE", "-H", "Authorization: Bearer SECRETBEARER",
			      "--data-binary", "card=SECRETBODYVALUE", u, NULL};
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(dlp_curl(&d, args, &out, &err), 0);
	ck_assert(dlp_log_wait(&d, "event=flow_end", 3000));
	char *log = dlp_log(&d);
	ck_assert_msg(strstr(log, "event=request") && strstr(log, "path=/echo"), "%s", log);
	ck_assert_msg(!strstr(log, "SECRET"), "a secret reached the log:\n%s", log);
	free(log), free(out), free(err), free(u);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *t = tcase_create("input");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, smuggling_vectors_never_reach_upstream);
	tcase_add_test(t, header_limits_answer_431);
	tcase_add_test(t, slow_and_idle_clients_time_out);
	tcase_add_test(t, connect_timeout_is_504);
	tcase_add_test(t, max_connections_refused_clearly);
	tcase_add_test(t, garbage_clienthello_is_refused);
	tcase_add_test(t, record_errors_are_answered_with_alerts);
	tcase_add_test(t, logs_hold_no_secrets);
	suite_add_tcase(s, t);
	return s;
}
