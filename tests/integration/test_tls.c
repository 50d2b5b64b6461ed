/*
 * TLS interception against certificates the test makes: bad upstream
 * certificates are never hidden, pinned clients are let through on their
 * next try, bypassed hosts are spliced, and repeat connections are cheap.
 */
#include "dlp.h"
#include "suites.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* curl through the proxy to an upstream with this leaf: the 502 page and log. */
static void expect_refused(const th_cert *ca, const th_cert *leaf, const char *host, const char *want)
{
	th_upstream *up = th_upstream_start(leaf);
	dlp_t d = dlp_start(ca->cert_path, NULL, NULL);
	char *u = url(host, th_upstream_port(up), "/echo", true);
	char *out = NULL, *err = NULL;
	const char *args[] = {"-H", "Accept: application/json", "-w", "\nstatus=%{http_code}\n", u, NULL};
	int rc = dlp_curl(&d, args, &out, &err);
	ck_assert_msg(rc == 0, "curl %d: %s", rc, err);
	ck_assert_msg(strstr(out, "status=502") && strstr(out, "\"code\":\"upstream-tls\"") && strstr(out, want),
		      "want %s in: %s", want, out);
	/* the upstream never got a request */
	ck_assert_uint_eq(th_upstream_request_count(up), 0);
	ck_assert(dlp_log_wait(&d, "event=upstream_tls_error", 5000));
	char *log = dlp_log(&d);
	ck_assert_msg(strstr(log, want), "%s", log);
	free(log), free(out), free(err), free(u);
	dlp_stop(&d);
	th_upstream_stop(up);
}

START_TEST(bad_upstream_certificates_are_reported)
{
	world_t w = world_new();
	th_leaf_opts expired = {.dns = {"localhost"}, .ip = {"127.0.0.1"}, .not_before_days = -30, .not_after_days = -1};
	th_cert c1 = th_make_leaf(&w.ca, "expired", &expired);
	expect_refused(&w.ca, &c1, "localhost", "certificate has expired");

	th_leaf_opts self = {.dns = {"localhost"}, .ip = {"127.0.0.1"}, .self_signed = true};
	th_cert c2 = th_make_leaf(&w.ca, "selfsigned", &self);
	expect_refused(&w.ca, &c2, "localhost", "self-signed certificate");

	th_leaf_opts wrong = {.dns = {"other.example"}};
	th_cert c3 = th_make_leaf(&w.ca, "wronghost", &wrong);
	expect_refused(&w.ca, &c3, "localhost", "hostname mismatch");

	th_cert other_ca = th_make_ca("unknown-root");
	th_leaf_opts good = {.dns = {"localhost"}, .ip = {"127.0.0.1"}};
	th_cert c4 = th_make_leaf(&other_ca, "unknownroot", &good);
	/* the server sends its whole chain, so OpenSSL names the root it
	 * does not know */
	expect_refused(&w.ca, &c4, "localhost", "self-signed certificate in certificate chain");

	th_cert_free(&c1), th_cert_free(&c2), th_cert_free(&c3), th_cert_free(&c4), th_cert_free(&other_ca);
	world_free(&w);
}
END_TEST

/* openssl s_client through the proxy: CONNECT is sent by hand over -proxy. */
static int s_client(dlp_t *d, int port, const char *cafile, char **out)
{
	char proxy[64], connect[64];
	snprintf(proxy, sizeof proxy, "127.0.0.1:%d", d->port);
	snprintf(connect, sizeof connect, "localhost:%d", port);
	char *const argv[] = {"openssl", "s_client", "-proxy", proxy, "-connect", connect, "-servername", "localhost",
			      "-CAfile", (char *)cafile, "-verify_return_error", "-verify_hostname", "localhost",
			      "-brief", "-ign_eof", NULL};
	const char *in = "GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
	char *err = NULL;
	int rc = th_run(argv, in, strlen(in), out, NULL, &err, 15000);
	char *both;
	if (asprintf(&both, "%s\n%s", *out, err) < 0)
		th_fail("oom");
	free(*out);
	free(err);
	*out = both;
	return rc;
}

/* A client with no identity (the explicit proxy: just an address) is never
 * remembered: one program refusing our certificate must not make the next
 * connection, maybe another program's, pass uninspected. */
START_TEST(explicit_proxy_clients_are_never_remembered)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	/* A client that trusts only the real CA: it rejects our leaf. */
	for (int i = 0; i < 2; i++) {
		char *out = NULL;
		int rc = s_client(&d, th_upstream_port(up), w.ca.cert_path, &out);
		ck_assert_msg(rc != 0, "try %d: the client accepted our certificate or was spliced:\n%s", i + 1, out);
		free(out);
	}
	ck_assert(dlp_log_wait(&d, "not remembered: the client has no identity", 5000));
	char *log = dlp_log(&d);
	ck_assert_msg(!strstr(log, "mode=pinned"), "an explicit-proxy client was remembered:\n%s", log);
	free(log);
	/* Clients that trust us are intercepted as ever. */
	char *u = url("127.0.0.1", th_upstream_port(up), "/echo", true);
	char *o2 = NULL, *e2 = NULL;
	const char *args[] = {u, NULL};
	ck_assert_int_eq(dlp_curl(&d, args, &o2, &e2), 0);
	free(o2), free(e2), free(u);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

/* A client that says hello, takes the gateway's first flight, then either
 * closes at once (how pinned apps say no) or first sends a broken record
 * (an aborted handshake: no verdict on our certificate). Returns after
 * the gateway logged the flow's end. */
static void hello_then_close(dlp_t *d, int port, bool garbage_first, int flows_before)
{
	int fd = dlp_tunnel_fd(d, port);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, rb, wb);
	SSL_set_tlsext_host_name(ssl, "localhost");
	SSL_set_connect_state(ssl);
	SSL_do_handshake(ssl);
	char hello[4096];
	int n = BIO_read(wb, hello, sizeof hello);
	ck_assert(n > 0 && send(fd, hello, (size_t)n, 0) == n);
	/* the server's flight: ServerHello on (certificate included) */
	char flight[16384];
	size_t got = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (got < sizeof flight && poll(&p, 1, got ? 300 : 5000) == 1) {
		ssize_t k = recv(fd, flight + got, sizeof flight - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	ck_assert_msg(got > 100, "no server flight (%zu bytes)", got);
	if (garbage_first)
		ck_assert(send(fd, "\x16\x03\x03\x00", 4, 0) == 4); /* a record header, cut */
	close(fd);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	char want[48];
	snprintf(want, sizeof want, "event=flow_end flow=%d ", flows_before + 1);
	ck_assert(dlp_log_wait(d, want, 5000));
}

/* Only a close right after our flight counts as a pinned client. */
START_TEST(aborted_handshakes_are_not_pinning)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	ck_assert(dlp_log_wait(&d, "event=flow_end flow=1 ", 5000)); /* dlp_start's probe */
	hello_then_close(&d, th_upstream_port(up), true, 1);
	char *log = dlp_log(&d);
	ck_assert_msg(!strstr(log, "client_rejected_cert"), "an aborted handshake was taken for pinning:\n%s", log);
	free(log);
	hello_then_close(&d, th_upstream_port(up), false, 2);
	ck_assert(dlp_log_wait(&d, "event=client_rejected_cert", 3000));
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(bypass_hosts_are_spliced)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, "{\"bypass_hosts\": [\"localhost\", \"*.bank.example\"]}", NULL);
	/* The client trusts only the upstream's CA and still succeeds. */
	th_client *c = th_client_connect_via_proxy(d.port, "localhost", th_upstream_port(up), w.ca.cert_path, "localhost");
	ck_assert_str_eq(th_client_peer_cert_issuer(c), "upstream-ca");
	const char *req = "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n";
	th_client_send(c, req, strlen(req));
	size_t len;
	char *r = th_client_recv_response(c, &len, 5000);
	ck_assert_int_eq(th_client_status(r), 200);
	free(r);
	th_client_close(c);
	ck_assert(dlp_log_wait(&d, "mode=bypass", 5000));
	ck_assert(dlp_log_wait(&d, "rule=\"config bypass_hosts[0]\"", 5000));
	/* 127.0.0.1 is not bypassed: intercepted with our CA */
	c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	ck_assert_ptr_nonnull(strstr(th_client_peer_cert_issuer(c), "dlpgate CA"));
	th_client_close(c);

	/* SIGHUP reloads bypass_hosts: localhost is intercepted again */
	const char *newcfg = "{\"bypass_hosts\": [\"*.bank.example\"]}";
	th_write_file(d.config_path, newcfg, strlen(newcfg), 0644);
	kill(d.proc.pid, SIGHUP);
	ck_assert(dlp_log_wait(&d, "event=reload", 5000));
	c = th_client_connect_via_proxy(d.port, "localhost", th_upstream_port(up), d.ca_path, "localhost");
	ck_assert_ptr_nonnull(strstr(th_client_peer_cert_issuer(c), "dlpgate CA"));
	th_client_close(c);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

START_TEST(leaf_mirrors_upstream_and_sessions_resume)
{
	world_t w = world_new();
	th_leaf_opts o = {.dns = {"localhost", "alt.example"}, .ip = {"127.0.0.1"}};
	th_cert leaf = th_make_leaf(&w.ca, "multi", &o);
	th_upstream *up = th_upstream_start(&leaf);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	th_client *c = th_client_connect_via_proxy(d.port, "localhost", th_upstream_port(up), d.ca_path, "localhost");
	X509 *cert = th_client_peer_cert(c);
	ck_assert_int_eq(X509_check_host(cert, "alt.example", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
	ck_assert(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER);
	ASN1_INTEGER *serial1 = ASN1_INTEGER_dup(X509_get0_serialNumber(cert));
	th_client_close(c);
	/* the same leaf again (cache), and the upstream leg resumed */
	for (int i = 0; i < 3; i++) {
		c = th_client_connect_via_proxy(d.port, "localhost", th_upstream_port(up), d.ca_path, "localhost");
		const char *req = "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n";
		th_client_send(c, req, strlen(req));
		size_t len;
		free(th_client_recv_response(c, &len, 5000));
		ck_assert_int_eq(ASN1_INTEGER_cmp(serial1, X509_get0_serialNumber(th_client_peer_cert(c))), 0);
		th_client_close(c);
	}
	ck_assert_msg(th_upstream_resumed_handshakes(up) >= 2, "resumed %d of %d", th_upstream_resumed_handshakes(up),
		      th_upstream_tls_handshakes(up));
	ASN1_INTEGER_free(serial1);

	/* the client leg resumes with a ticket */
	char *sess = th_path("client.sess");
	char proxy[64], connect[64];
	snprintf(proxy, sizeof proxy, "127.0.0.1:%d", d.port);
	snprintf(connect, sizeof connect, "localhost:%d", th_upstream_port(up));
	const char *in = "GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
	char *const first[] = {"openssl", "s_client", "-proxy", proxy, "-connect", connect, "-servername", "localhost",
			       "-CAfile", d.ca_path, "-sess_out", sess, "-ign_eof", NULL};
	char *out = NULL;
	ck_assert_int_eq(th_run(first, in, strlen(in), &out, NULL, NULL, 15000), 0);
	free(out);
	char *const again[] = {"openssl", "s_client", "-proxy", proxy, "-connect", connect, "-servername", "localhost",
			       "-CAfile", d.ca_path, "-sess_in", sess, "-ign_eof", NULL};
	ck_assert_int_eq(th_run(again, in, strlen(in), &out, NULL, NULL, 15000), 0);
	ck_assert_msg(strstr(out, "Reused, TLSv1.3"), "%s", out);
	free(out);
	free(sess);
	dlp_stop(&d);
	th_upstream_stop(up);
	th_cert_free(&leaf);
	world_free(&w);
}
END_TEST

/* An h2-only client through openssl s_client; its exit code. */
static int h2_only_client(dlp_t *d, th_upstream *up, const char *cafile)
{
	char proxy[64], connect[64];
	snprintf(proxy, sizeof proxy, "127.0.0.1:%d", d->port);
	snprintf(connect, sizeof connect, "localhost:%d", th_upstream_port(up));
	char *const argv[] = {"openssl", "s_client", "-proxy", proxy, "-connect", connect, "-servername", "localhost",
			      "-alpn", "h2", "-CAfile", (char *)cafile, "-verify_return_error", "-brief", NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run(argv, "", 0, &out, NULL, &err, 15000);
	free(out), free(err);
	return rc;
}

/* ALPN without http/1.1 cannot be inspected: the policy decides, not the
 * client. A config-only gateway lets it through as it always did; a Lua
 * policy without on_uninspectable lets its fail setting decide; the
 * shipped default policy refuses it for a client it cannot name. */
START_TEST(h2_only_clients_go_to_the_policy)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	/* config only: spliced, so the real server answers */
	ck_assert_int_eq(h2_only_client(&d, up, w.ca.cert_path), 0);
	ck_assert(dlp_log_wait(&d, "mode=not-http", 5000));
	ck_assert(dlp_log_wait(&d, "uninspectable:alpn", 5000));
	dlp_stop(&d);

	const char *closed = "local dlp = require \"dlp\"\nfail = \"closed\"\n"
			     "function on_request(req) return dlp.pass() end\n";
	char *pol = th_path("fail-closed.lua");
	th_write_file(pol, closed, strlen(closed), 0644);
	char top_default[600];
	snprintf(top_default, sizeof top_default, "%s/rules/default.lua", getenv("DLPGATE_TOP"));
	const char *policies[] = {pol, top_default};
	const char *reasons[] = {"fail = \\\"closed\\\" decides",
				 "dlpgate must inspect this connection but cannot (alpn)"};
	for (int i = 0; i < 2; i++) {
		int before = th_upstream_tls_handshakes(up);
		d = dlp_start(w.ca.cert_path, NULL, (const char *const[]){"--policy", policies[i], NULL});
		ck_assert_msg(h2_only_client(&d, up, w.ca.cert_path) != 0, "%s let an h2-only client through", policies[i]);
		ck_assert_msg(dlp_log_wait(&d, "\"note\":\"uninspectable:alpn\"", 5000), "no event for %s", policies[i]);
		char *log = dlp_log(&d);
		ck_assert_msg(strstr(log, "\"verdict\":\"block\"") && strstr(log, reasons[i]), "%s:\n%s", policies[i], log);
		free(log);
		ck_assert_int_eq(th_upstream_tls_handshakes(up), before); /* the server never heard of it */
		dlp_stop(&d);
	}
	free(pol);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *t = tcase_create("intercept");
	tcase_set_timeout(t, 90);
	tcase_add_test(t, bad_upstream_certificates_are_reported);
	tcase_add_test(t, explicit_proxy_clients_are_never_remembered);
	tcase_add_test(t, aborted_handshakes_are_not_pinning);
	tcase_add_test(t, bypass_hosts_are_spliced);
	tcase_add_test(t, leaf_mirrors_upstream_and_sessions_resume);
	tcase_add_test(t, h2_only_clients_go_to_the_policy);
	suite_add_tcase(s, t);
	return s;
}
