/*
 * Self-test of the integration harness (tests/harness/): every peer the proxy tests rely
 * on is proven here against real programs (openssl, curl, nginx) with no proxy involved,
 * so when a proxy test fails the harness is not the first suspect.
 *
 * Failure paths matter as much as success: a harness that silently carries on with a
 * broken peer would turn proxy bugs into confusing later failures. Those are checked with
 * expect_th_fail(), which runs a step in a forked child whose th_fail hook writes the
 * message to a pipe and _exit()s; a th_fail inside the test process itself would fail
 * this test. The guardian test goes one step further and kills such a child the way Check
 * does (_exit, no atexit) to prove its daemons and temp dir still go away.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "harness/harness.h"

Suite *harness_suite(void);

/* ---- Helpers ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail_pipe = -1;

static void fail_to_pipe(const char *message)
{
	size_t len = strlen(message);
	while (len > 0) {
		ssize_t n = write(fail_pipe, message, len);
		if (n <= 0) break;
		message += n;
		len -= (size_t)n;
	}
	_exit(42);
}

/* Run step(arg) in a forked child and require it to end in th_fail; returns the message
 * (malloc'd). The child leaves by _exit, like a failing Check test. */
static char *expect_th_fail(void (*step)(void *), void *arg)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	fflush(NULL); /* or the child would print our buffered output again */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		fail_pipe = p[1];
		th_set_fail_hook(fail_to_pipe);
		step(arg);
		_exit(0); /* the step did not fail */
	}
	close(p[1]);
	char buf[8192];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(p[0], buf + len, sizeof buf - 1 - len);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		len += (size_t)n;
		if (len == sizeof buf - 1) break;
	}
	buf[len] = '\0';
	close(p[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 42,
	              "expected the step to th_fail, but it exited with status 0x%x", status);
	return strdup(buf);
}

static json_t *parse_json(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	ck_assert_msg(j != NULL, "invalid JSON (%s): %s", err.text, text);
	return j;
}

static const char *json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	ck_assert_msg(json_is_string(v), "JSON field %s missing or not a string", key);
	return json_string_value(v);
}

static long long json_int(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	ck_assert_msg(json_is_integer(v), "JSON field %s missing or not an integer", key);
	return json_integer_value(v);
}

static void run_ok(char *const argv[], char **out)
{
	char *err = NULL;
	int code = th_run(argv, NULL, 0, out, NULL, &err, 10000);
	ck_assert_msg(code == 0, "%s exited %d: %s", argv[0], code, err);
	free(err);
}

static char *url(const char *scheme, const char *host, int port, const char *path)
{
	char *u;
	ck_assert_int_ge(asprintf(&u, "%s://%s:%d%s", scheme, host, port, path), 0);
	return u;
}

static th_leaf_opts localhost_opts(void)
{
	return (th_leaf_opts){.dns = {"localhost"}, .ip = {"127.0.0.1"}};
}

/* ---- Files, ports ------------------------------------------------------------------- */

START_TEST(test_tmpdir_files_ports)
{
	const char *dir = th_tmpdir();
	struct stat st;
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0755);
	ck_assert_ptr_eq(th_tmpdir(), dir); /* created once per process */

	char *path = th_path("sub.bin");
	th_write_file(path, "a\0b", 3, 0640);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	size_t len;
	char *data = th_read_file(path, &len);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(data, "a\0b", 4); /* NUL-terminated too */
	free(data);
	free(path);
	path = th_path("missing");
	ck_assert_ptr_null(th_read_file(path, &len));
	free(path);

	/* A forked process (a Check test child) gets a dir of its own, removed at its exit. */
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		const char *child_dir = th_tmpdir();
		if (write(p[1], child_dir, strlen(child_dir)) < 0) _exit(2);
		exit(0); /* normal exit: atexit cleanup */
	}
	close(p[1]);
	char child_dir[4096] = {0};
	ck_assert_int_gt(read(p[0], child_dir, sizeof child_dir - 1), 0);
	close(p[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
	ck_assert_str_ne(child_dir, dir);
	ck_assert_msg(stat(child_dir, &st) != 0, "child's temp dir %s survived its exit", child_dir);
	ck_assert_int_eq(stat(dir, &st), 0); /* ours untouched */

	int port = th_free_port();
	ck_assert_int_gt(port, 0);
	ck_assert(!th_wait_port(port, 50));
	th_upstream *u = th_upstream_start(NULL);
	ck_assert(th_wait_port(th_upstream_port(u), 1000));
	th_upstream_stop(u);

	char hex[65];
	th_sha256_hex("abc", 3, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	unsigned char pat[512];
	th_pattern_fill(pat, sizeof pat, 0);
	ck_assert_uint_eq(pat[0], 7);
	ck_assert_uint_eq(pat[1], 38);
	ck_assert_uint_eq(pat[256], 7);
	char hex2[65];
	th_sha256_hex(pat, 300, hex);
	th_pattern_sha256_hex(300, hex2);
	ck_assert_str_eq(hex, hex2);
}
END_TEST

/* ---- Certificates ------------------------------------------------------------------- */

START_TEST(test_certs_verify_with_openssl)
{
	th_cert ca = th_make_ca("th-test-ca");
	th_leaf_opts o = localhost_opts();
	th_cert leaf = th_make_leaf(&ca, "leaf", &o);
	o.rsa = true;
	th_cert rsa = th_make_leaf(&ca, "leaf-rsa", &o);
	th_leaf_opts expired_opts = {.dns = {"localhost"}, .not_before_days = -30, .not_after_days = -1};
	th_cert expired = th_make_leaf(&ca, "expired", &expired_opts);
	th_leaf_opts self_opts = {.cn = "self.test", .dns = {"self.test"}, .self_signed = true};
	th_cert self = th_make_leaf(NULL, "self", &self_opts);

	char *out = NULL;
	char *verify[] = {"openssl", "verify", "-CAfile", ca.cert_path, "-verify_hostname", "localhost",
	                  "-verify_ip", "127.0.0.1", leaf.cert_path, rsa.cert_path, NULL};
	run_ok(verify, &out);
	ck_assert_msg(strstr(out, "leaf.pem: OK") && strstr(out, "leaf-rsa.pem: OK"), "%s", out);
	free(out);

	char *verify_self[] = {"openssl", "verify", "-CAfile", self.cert_path, self.cert_path, NULL};
	run_ok(verify_self, NULL);

	char *err = NULL;
	char *verify_expired[] = {"openssl", "verify", "-CAfile", ca.cert_path, expired.cert_path, NULL};
	int code = th_run(verify_expired, NULL, 0, &out, NULL, &err, 10000);
	ck_assert_int_ne(code, 0);
	ck_assert_msg(strstr(out, "expired") || strstr(err, "expired"), "out: %s err: %s", out, err);
	free(out);
	free(err);

	char *wrong_host[] = {"openssl", "verify", "-CAfile", ca.cert_path, "-verify_hostname",
	                      "other.test", leaf.cert_path, NULL};
	ck_assert_int_ne(th_run(wrong_host, NULL, 0, NULL, NULL, NULL, 10000), 0);

	/* What the files and objects hold. */
	struct stat st;
	ck_assert_int_eq(stat(leaf.key_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	char *chain = th_read_file(leaf.chain_path, NULL);
	char *first = strstr(chain, "BEGIN CERTIFICATE");
	ck_assert_ptr_nonnull(first);
	ck_assert_ptr_nonnull(strstr(first + 1, "BEGIN CERTIFICATE"));
	free(chain);
	ck_assert_int_eq(X509_check_issued(ca.cert, leaf.cert), X509_V_OK);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(self.cert), X509_get_issuer_name(self.cert)), 0);
	ck_assert_int_eq(X509_verify(self.cert, self.key), 1);
	ck_assert_int_eq(X509_check_ca(ca.cert), 1);
	ck_assert_int_eq(X509_check_ca(leaf.cert), 0);
	ck_assert_int_eq(X509_check_host(leaf.cert, "localhost", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(leaf.cert, "127.0.0.1", 0), 1);
	ck_assert_int_eq(EVP_PKEY_get_base_id(rsa.key), EVP_PKEY_RSA);
	ck_assert_int_eq(EVP_PKEY_get_base_id(leaf.key), EVP_PKEY_EC);

	th_cert_free(&leaf);
	th_cert_free(&rsa);
	th_cert_free(&expired);
	th_cert_free(&self);
	th_cert_free(&ca);
	ck_assert_ptr_null(ca.cert);
}
END_TEST

/* ---- nginx -------------------------------------------------------------------------- */

START_TEST(test_nginx_serves_https)
{
	th_cert ca = th_make_ca("nginx-ca");
	th_leaf_opts o = localhost_opts();
	th_cert leaf = th_make_leaf(&ca, "nginx-leaf", &o);
	th_nginx n = th_nginx_start(&leaf, "location = /teapot { return 418; }");
	th_nginx_add_file(&n, "big", (size_t)64 << 20);

	char *u = url("https", "127.0.0.1", n.port, "/hello.txt");
	const char *hello[] = {"--cacert", ca.cert_path, u, NULL};
	char *out = NULL, *err = NULL;
	int code = th_curl(hello, &out, NULL, &err);
	ck_assert_msg(code == 0, "curl exited %d: %s", code, err);
	ck_assert_str_eq(out, "hello from nginx\n");
	free(out);
	free(err);
	free(u);

	/* By name (SNI + hostname check), a pattern file, and the extra config. */
	char resolve[64];
	snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", n.port);
	char *u64k = url("https", "localhost", n.port, "/64k");
	char *uteapot = url("https", "localhost", n.port, "/teapot");
	const char *two[] = {"--cacert", ca.cert_path, "--resolve", resolve, u64k,
	                     "-o", "/dev/null", "-w", "%{http_code}\n", uteapot, NULL};
	size_t len;
	const char *body_args[] = {"--cacert", ca.cert_path, "--resolve", resolve, u64k, NULL};
	ck_assert_int_eq(th_curl(body_args, &out, &len, NULL), 0);
	ck_assert_uint_eq(len, 65536);
	char got[65], want[65];
	th_sha256_hex(out, len, got);
	th_pattern_sha256_hex(65536, want);
	ck_assert_str_eq(got, want);
	free(out);
	ck_assert_int_eq(th_curl(two, &out, NULL, NULL), 0);
	ck_assert_msg(strstr(out, "418"), "teapot: %s", out);
	free(out);
	free(u64k);
	free(uteapot);

	/* The 64 MiB file is sparse: nginx reports its size, the disk holds (almost) nothing. */
	char *big_path;
	ck_assert_int_ge(asprintf(&big_path, "%s/big", n.root), 0);
	struct stat st;
	ck_assert_int_eq(stat(big_path, &st), 0);
	ck_assert_int_eq(st.st_size, (off_t)64 << 20);
	ck_assert_int_lt(st.st_blocks * 512, 1 << 20);
	free(big_path);
	char *ubig = url("https", "127.0.0.1", n.port, "/big");
	const char *head[] = {"--cacert", ca.cert_path, "-I", ubig, NULL};
	ck_assert_int_eq(th_curl(head, &out, NULL, NULL), 0);
	ck_assert_msg(strcasestr(out, "Content-Length: 67108864"), "%s", out);
	free(out);
	free(ubig);

	th_proc proc = n.proc;
	ck_assert(th_alive(&proc));
	th_nginx_stop(&n);
	ck_assert(!th_alive(&proc));
	ck_assert_int_eq(n.port, 0);
	th_nginx_stop(&n); /* idempotent */
	th_cert_free(&leaf);
	th_cert_free(&ca);
}
END_TEST

static void start_broken_nginx(void *arg)
{
	th_cert *leaf = arg;
	th_nginx_start(leaf, "bogus_directive_for_the_test on;");
}

START_TEST(test_nginx_failure_is_reported)
{
	th_cert ca = th_make_ca("nginx-bad-ca");
	th_leaf_opts o = localhost_opts();
	th_cert leaf = th_make_leaf(&ca, "nginx-bad-leaf", &o);
	char *msg = expect_th_fail(start_broken_nginx, &leaf);
	ck_assert_msg(strstr(msg, "nginx exited") && strstr(msg, "bogus_directive_for_the_test"),
	              "message does not show error.log: %s", msg);
	free(msg);
	th_cert_free(&leaf);
	th_cert_free(&ca);
}
END_TEST

/* ---- Upstream over TLS, with curl --------------------------------------------------- */

START_TEST(test_upstream_echo_tls)
{
	th_cert ca = th_make_ca("up-ca");
	th_leaf_opts o = localhost_opts();
	th_cert leaf = th_make_leaf(&ca, "up-leaf", &o);
	th_upstream *u = th_upstream_start(&leaf);
	int port = th_upstream_port(u);

	char *target = url("https", "127.0.0.1", port, "/echo?x=1");
	const char *args[] = {"--cacert", ca.cert_path, "-H", "X-Test: a \"quoted\" \\ value",
	                      "-H", "X-Dup: 1", "-H", "X-Dup: 2", "-H", "X-Latin: caf\xe9",
	                      "--data-binary", "hello", target, NULL};
	char *out = NULL, *err = NULL;
	int code = th_curl(args, &out, NULL, &err);
	ck_assert_msg(code == 0, "curl exited %d: %s", code, err);
	json_t *j = parse_json(out);
	ck_assert_str_eq(json_str(j, "method"), "POST");
	ck_assert_str_eq(json_str(j, "path"), "/echo?x=1");
	ck_assert_int_eq(json_int(j, "body_len"), 5);
	char want[65];
	th_sha256_hex("hello", 5, want);
	ck_assert_str_eq(json_str(j, "body_sha256"), want);
	json_t *h = json_object_get(j, "headers");
	ck_assert_str_eq(json_str(h, "x-test"), "a \"quoted\" \\ value");
	ck_assert_str_eq(json_str(h, "x-dup"), "2");
	ck_assert_str_eq(json_str(h, "x-latin"), "caf\xc3\xa9"); /* \u00e9 */
	ck_assert_str_eq(json_str(h, "content-length"), "5");
	json_decref(j);
	free(out);
	free(err);
	free(target);

	ck_assert_uint_eq(th_upstream_request_count(u), 1);
	ck_assert_uint_eq(th_upstream_connection_count(u), 1);
	ck_assert_int_eq(th_upstream_tls_handshakes(u), 1);
	ck_assert_ptr_null(th_upstream_last_sni(u)); /* no SNI to an IP address */
	size_t len;
	char *rec = th_upstream_received(u, &len);
	ck_assert_msg(strncmp(rec, "POST /echo?x=1 HTTP/1.1\r\n", 25) == 0, "%s", rec);
	ck_assert_uint_ge(len, 5);
	ck_assert_mem_eq(rec + len - 5, "hello", 5);
	ck_assert_uint_eq(th_upstream_bytes_received(u), len);
	free(rec);

	/* By name: SNI reaches the upstream. TLS 1.2 session resumption is counted. */
	char resolve[64];
	snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", port);
	char *by_name = url("https", "localhost", port, "/echo");
	const char *named[] = {"--cacert", ca.cert_path, "--resolve", resolve, by_name, NULL};
	ck_assert_int_eq(th_curl(named, NULL, NULL, NULL), 0);
	free(by_name);
	char *sni = th_upstream_last_sni(u);
	ck_assert_str_eq(sni, "localhost");
	free(sni);

	char *session = th_path("session.pem");
	char connect_to[32];
	snprintf(connect_to, sizeof connect_to, "127.0.0.1:%d", port);
	char *first[] = {"openssl", "s_client", "-connect", connect_to, "-tls1_2", "-CAfile", ca.cert_path,
	                 "-sess_out", session, NULL};
	char *again[] = {"openssl", "s_client", "-connect", connect_to, "-tls1_2", "-CAfile", ca.cert_path,
	                 "-sess_in", session, NULL};
	ck_assert_int_eq(th_run(first, "", 0, NULL, NULL, NULL, 10000), 0);
	ck_assert_int_eq(th_run(again, "", 0, &out, NULL, NULL, 10000), 0);
	ck_assert_msg(strstr(out, "Reused, TLSv1.2"), "second s_client did not resume: %s", out);
	free(out);
	free(session);
	ck_assert_int_eq(th_upstream_tls_handshakes(u), 4);
	ck_assert_int_eq(th_upstream_resumed_handshakes(u), 1);

	th_upstream_stop(u);
	th_cert_free(&leaf);
	th_cert_free(&ca);
}
END_TEST

START_TEST(test_upstream_sink_and_bytes)
{
	th_cert ca = th_make_ca("sink-ca");
	th_leaf_opts o = localhost_opts();
	th_cert leaf = th_make_leaf(&ca, "sink-leaf", &o);
	th_upstream *u = th_upstream_start(&leaf);
	int port = th_upstream_port(u);

	/* 10 MiB upload from a file: counted and hashed, not stored. */
	size_t size = (size_t)10 << 20;
	char *data = malloc(size);
	th_pattern_fill(data, size, 0);
	char *file = th_path("upload.bin");
	th_write_file(file, data, size, 0644);
	free(data);
	char *at_file;
	ck_assert_int_ge(asprintf(&at_file, "@%s", file), 0);
	char *sink = url("https", "127.0.0.1", port, "/sink");
	const char *up[] = {"--cacert", ca.cert_path, "--data-binary", at_file, sink, NULL};
	char *out = NULL, *err = NULL;
	int code = th_curl(up, &out, NULL, &err);
	ck_assert_msg(code == 0, "curl exited %d: %s", code, err);
	json_t *j = parse_json(out);
	ck_assert_int_eq(json_int(j, "body_len"), (long long)size);
	char want[65];
	th_pattern_sha256_hex(size, want);
	ck_assert_str_eq(json_str(j, "body_sha256"), want);
	json_decref(j);
	free(out);
	free(err);
	free(sink);
	free(at_file);
	free(file);
	size_t rec_len;
	free(th_upstream_received(u, &rec_len));
	ck_assert_uint_lt(rec_len, 4096);                          /* the head only */
	ck_assert_uint_ge(th_upstream_bytes_received(u), size);   /* but every byte counted */

	/* /bytes, sized and chunked, through curl (which decodes the chunks). */
	const char *queries[] = {"/bytes?n=1000003", "/bytes?n=1000003&chunked=1", "/bytes?n=0&chunked=1"};
	const size_t sizes[] = {1000003, 1000003, 0};
	for (size_t i = 0; i < 3; i++) {
		char *target = url("https", "127.0.0.1", port, queries[i]);
		const char *get[] = {"--cacert", ca.cert_path, target, NULL};
		size_t len;
		ck_assert_int_eq(th_curl(get, &out, &len, NULL), 0);
		ck_assert_uint_eq(len, sizes[i]);
		char got[65];
		th_sha256_hex(out, len, got);
		th_pattern_sha256_hex(sizes[i], want);
		ck_assert_str_eq(got, want);
		free(out);
		free(target);
	}

	/* The raw chunked framing, read by th_client over TLS on a kept-alive connection. */
	th_client *c = th_client_connect_plain(port);
	th_client_start_tls(c, ca.cert_path, "localhost", "localhost");
	ck_assert_str_eq(th_client_peer_cert_issuer(c), "sink-ca");
	const char *req = "GET /bytes?n=20000&chunked=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
	                  "GET /bytes?n=10 HTTP/1.1\r\nHost: localhost\r\n\r\n";
	ck_assert_int_eq(th_client_send(c, req, strlen(req)), 0);
	size_t len;
	char *r1 = th_client_recv_response(c, &len, 5000);
	char *te = th_http_header(r1, "Transfer-Encoding");
	ck_assert_str_eq(te, "chunked");
	ck_assert_ptr_nonnull(memmem(r1, len, "\r\n0\r\n\r\n", 7)); /* the body has NULs */
	ck_assert_mem_eq(r1 + len - 5, "0\r\n\r\n", 5);
	char *r2 = th_client_recv_response(c, &len, 5000);
	const char *body = th_http_body(r2);
	unsigned char ten[10];
	th_pattern_fill(ten, 10, 0);
	ck_assert_mem_eq(body, ten, 10);
	ck_assert_uint_eq((size_t)(body - r2) + 10, len);
	free(te);
	free(r1);
	free(r2);
	th_client_close(c);

	th_upstream_stop(u);
	th_cert_free(&leaf);
	th_cert_free(&ca);
}
END_TEST

/* Past 64 MiB the record stops growing but every byte is still counted. */
START_TEST(test_upstream_record_cap)
{
	th_upstream *u = th_upstream_start(NULL);
	th_client *c = th_client_connect_plain(th_upstream_port(u));
	size_t body = (size_t)70 << 20, piece = (size_t)1 << 20;
	char head[128];
	int head_len = snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
				body);
	ck_assert_int_eq(th_client_send(c, head, (size_t)head_len), 0);
	char *block = malloc(piece);
	for (size_t off = 0; off < body; off += piece) {
		th_pattern_fill(block, piece, off);
		ck_assert_int_eq(th_client_send(c, block, piece), 0);
	}
	free(block);
	char *r = th_client_recv_response(c, NULL, 20000);
	json_t *j = parse_json(th_http_body(r));
	ck_assert_int_eq(json_int(j, "body_len"), (long long)body);
	char want[65];
	th_pattern_sha256_hex(body, want);
	ck_assert_str_eq(json_str(j, "body_sha256"), want);
	json_decref(j);
	free(r);
	size_t len;
	char *rec = th_upstream_received(u, &len);
	ck_assert_uint_eq(len, (size_t)64 << 20);
	ck_assert_mem_eq(rec, head, (size_t)head_len);
	free(rec);
	ck_assert_uint_eq(th_upstream_bytes_received(u), (uint64_t)head_len + body);
	th_client_close(c);
	th_upstream_stop(u);
}
END_TEST

/* ---- Upstream over plain TCP, with th_client ---------------------------------------- */

START_TEST(test_upstream_websocket)
{
	th_upstream *u = th_upstream_start(NULL);
	th_client *c = th_client_connect_plain(th_upstream_port(u));
	/* The handshake example of RFC 6455 section 1.3. */
	const char *req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
	                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
	ck_assert_int_eq(th_client_send(c, req, strlen(req)), 0);
	char *resp = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(resp), 101);
	char *accept = th_http_header(resp, "sec-websocket-accept");
	ck_assert_str_eq(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	free(accept);
	free(resp);
	const char frame[] = "\x81\x05hello\x00\xff raw bytes";
	ck_assert_int_eq(th_client_send(c, frame, sizeof frame), 0);
	char *echo = th_client_recv_exact(c, sizeof frame, 5000);
	ck_assert_mem_eq(echo, frame, sizeof frame);
	free(echo);
	th_client_close(c);

	/* Without Connection: upgrade there is no upgrade. */
	c = th_client_connect_plain(th_upstream_port(u));
	const char *bad = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
	th_client_send(c, bad, strlen(bad));
	resp = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(resp), 400);
	free(resp);
	th_client_close(c);
	th_upstream_stop(u);
}
END_TEST

START_TEST(test_upstream_pipeline_order)
{
	th_upstream *u = th_upstream_start(NULL);
	th_client *c = th_client_connect_plain(th_upstream_port(u));
	const char *reqs = "GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\n"
	                   "POST /pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	                   "GET /pipeline?last HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(th_client_send(c, reqs, strlen(reqs)), 0);
	for (int k = 1; k <= 3; k++) {
		char *r = th_client_recv_response(c, NULL, 5000);
		ck_assert_int_eq(th_client_status(r), 200);
		char want[32];
		snprintf(want, sizeof want, "{\"seq\":%d}", k);
		ck_assert_str_eq(th_http_body(r), want);
		free(r);
	}
	ck_assert_uint_eq(th_upstream_request_count(u), 3);
	ck_assert_uint_eq(th_upstream_connection_count(u), 1);
	size_t len;
	char *rec = th_upstream_received(u, &len);
	ck_assert_uint_eq(len, strlen(reqs));
	ck_assert_str_eq(rec, reqs);
	free(rec);

	/* A second connection's bytes come after the first's, whatever the timing. */
	th_client *c2 = th_client_connect_plain(th_upstream_port(u));
	const char *late = "GET /pipeline?second HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c2, late, strlen(late));
	free(th_client_recv_response(c2, NULL, 5000));
	const char *more = "GET /pipeline?first-again HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, more, strlen(more));
	char *r = th_client_recv_response(c, NULL, 5000);
	ck_assert_str_eq(th_http_body(r), "{\"seq\":4}");
	free(r);
	rec = th_upstream_received(u, &len);
	char *want;
	ck_assert_int_ge(asprintf(&want, "%s%s%s", reqs, more, late), 0);
	ck_assert_str_eq(rec, want);
	free(want);
	free(rec);
	ck_assert_uint_eq(th_upstream_connection_count(u), 2);
	th_client_close(c2);
	th_client_close(c);
	th_upstream_stop(u);
}
END_TEST

START_TEST(test_upstream_framing_routes)
{
	th_upstream *u = th_upstream_start(NULL);
	int port = th_upstream_port(u);
	th_client *c = th_client_connect_plain(port);

	/* HEAD /head: Content-Length 1234 and no body; the connection stays in sync. */
	const char *head = "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, head, strlen(head));
	size_t len;
	char *r = th_client_recv_head_response(c, &len, 5000);
	char *cl = th_http_header(r, "content-length");
	ck_assert_str_eq(cl, "1234");
	ck_assert_ptr_eq(th_http_body(r), r + len); /* nothing after the head */
	free(cl);
	free(r);
	const char *get = "GET /head HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, get, strlen(get));
	r = th_client_recv_response(c, &len, 5000);
	ck_assert_uint_eq(len - (size_t)(th_http_body(r) - r), 1234);
	free(r);

	/* 204: no body, and the next response still parses. */
	const char *nc = "GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\nGET /status?code=503 HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, nc, strlen(nc));
	r = th_client_recv_response(c, &len, 5000);
	ck_assert_int_eq(th_client_status(r), 204);
	ck_assert_ptr_null(th_http_header(r, "content-length"));
	ck_assert_ptr_eq(th_http_body(r), r + len);
	free(r);
	r = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(r), 503);
	free(r);

	/* /eof: close-delimited body. */
	const char *eof = "GET /eof HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, eof, strlen(eof));
	r = th_client_recv_response(c, NULL, 5000);
	ck_assert_ptr_null(th_http_header(r, "content-length"));
	ck_assert_ptr_null(th_http_header(r, "transfer-encoding"));
	ck_assert_str_eq(th_http_body(r), "until-eof-body");
	ck_assert(th_client_eof(c));
	free(r);
	ck_assert_ptr_null(th_client_recv_response(c, NULL, 1000)); /* closed, nothing more */
	th_client_close(c);

	/* /close, unknown paths, 100-continue, chunked request with trailers, smuggling. */
	c = th_client_connect_plain(port);
	const char *close_req = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, close_req, strlen(close_req));
	r = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(r), 404);
	free(r);
	r = th_client_recv_response(c, NULL, 5000);
	char *conn = th_http_header(r, "connection");
	ck_assert_str_eq(conn, "close");
	free(conn);
	free(r);
	r = th_client_recv_until_close(c, &len, 5000);
	ck_assert_uint_eq(len, 0);
	ck_assert(th_client_eof(c));
	free(r);
	th_client_close(c);

	c = th_client_connect_plain(port);
	const char *cont = "POST /continue HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
	th_client_send(c, cont, strlen(cont));
	r = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(r), 100);
	free(r);
	th_client_send(c, "12345", 5);
	r = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(r), 200);
	json_t *j = parse_json(th_http_body(r));
	ck_assert_int_eq(json_int(j, "body_len"), 5);
	json_decref(j);
	free(r);

	const char *chunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	                      "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n";
	th_client_send(c, chunked, strlen(chunked));
	r = th_client_recv_response(c, NULL, 5000);
	j = parse_json(th_http_body(r));
	ck_assert_int_eq(json_int(j, "body_len"), 5);
	char want[65];
	th_sha256_hex("abcde", 5, want);
	ck_assert_str_eq(json_str(j, "body_sha256"), want);
	ck_assert_str_eq(json_str(json_object_get(j, "trailers"), "x-sum"), "5");
	json_decref(j);
	free(r);

	const char *smuggle = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
	                      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
	th_client_send(c, smuggle, strlen(smuggle));
	r = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(r), 400);
	free(r);
	th_client_close(c);

	/* LF-only lines and obs-fold are refused at once, not waited on. */
	const char *hostile[] = {"GET /echo HTTP/1.1\nHost: x\n\n",
				 "GET /echo HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"};
	for (size_t i = 0; i < 2; i++) {
		c = th_client_connect_plain(port);
		th_client_send(c, hostile[i], strlen(hostile[i]));
		r = th_client_recv_response(c, NULL, 5000);
		ck_assert_int_eq(th_client_status(r), 400);
		free(r);
		th_client_close(c);
	}

	/* /slow waits; stop cuts a long wait short. */
	c = th_client_connect_plain(port);
	const char *slow = "GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n";
	int64_t t0 = now_ms();
	th_client_send(c, slow, strlen(slow));
	r = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(r), 200);
	ck_assert_int_ge(now_ms() - t0, 190);
	free(r);
	size_t before = th_upstream_request_count(u);
	const char *very_slow = "GET /slow?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n";
	th_client_send(c, very_slow, strlen(very_slow));
	int64_t deadline = now_ms() + 5000;
	while (th_upstream_request_count(u) == before && now_ms() < deadline) poll(NULL, 0, 10);
	t0 = now_ms();
	th_upstream_stop(u);
	ck_assert_int_lt(now_ms() - t0, 3000);
	th_client_close(c);
}
END_TEST

START_TEST(test_upstream_banner)
{
	th_upstream *plain = th_upstream_start_banner(NULL, "220 smtp.test ESMTP\r\n");
	th_client *c = th_client_connect_plain(th_upstream_port(plain));
	char *b = th_client_recv_exact(c, 21, 5000);
	ck_assert_str_eq(b, "220 smtp.test ESMTP\r\n");
	free(b);
	th_client_send(c, "EHLO me\r\n", 9);
	b = th_client_recv_exact(c, 9, 5000);
	ck_assert_str_eq(b, "EHLO me\r\n");
	free(b);
	th_client_close(c);
	th_upstream_stop(plain);

	th_cert ca = th_make_ca("banner-ca");
	th_leaf_opts o = localhost_opts();
	th_cert leaf = th_make_leaf(&ca, "banner-leaf", &o);
	th_upstream *tls = th_upstream_start_banner(&leaf, "* OK IMAP ready\r\n");
	c = th_client_connect_plain(th_upstream_port(tls));
	th_client_start_tls(c, ca.cert_path, "127.0.0.1", NULL);
	b = th_client_recv_exact(c, 17, 5000);
	ck_assert_str_eq(b, "* OK IMAP ready\r\n");
	free(b);
	th_client_send(c, "a1 NOOP\r\n", 9);
	b = th_client_recv_exact(c, 9, 5000);
	ck_assert_str_eq(b, "a1 NOOP\r\n");
	free(b);
	th_client_close(c);
	char *rec = th_upstream_received(tls, NULL);
	ck_assert_str_eq(rec, "a1 NOOP\r\n");
	free(rec);
	th_upstream_stop(tls);
	th_cert_free(&leaf);
	th_cert_free(&ca);
}
END_TEST

/* ---- th_client through an explicit proxy -------------------------------------------- */

/* A minimal CONNECT proxy, only so th_client's tunnel code can be proven without dlpgate:
 * answers 403 for blocked.test, otherwise connects to 127.0.0.1:port and splices. */
typedef struct {
	int listen_fd;
	int port;
	pthread_t thread;
} mini_proxy;

static void splice_fds(int a, int b)
{
	struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
	char buf[16384];
	bool open_a = true, open_b = true;
	while (open_a || open_b) {
		p[0].fd = open_a ? a : -1;
		p[1].fd = open_b ? b : -1;
		if (poll(p, 2, 10000) <= 0) return;
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents) continue;
			int from = i == 0 ? a : b, to = i == 0 ? b : a;
			ssize_t n = recv(from, buf, sizeof buf, 0);
			if (n <= 0) {
				shutdown(to, SHUT_WR);
				if (i == 0) open_a = false;
				else open_b = false;
				continue;
			}
			if (send(to, buf, (size_t)n, MSG_NOSIGNAL) != n) return;
		}
	}
}

static void *mini_proxy_main(void *arg)
{
	mini_proxy *mp = arg;
	for (;;) {
		int fd = accept(mp->listen_fd, NULL, NULL);
		if (fd < 0) return NULL; /* shut down */
		char head[4096];
		size_t len = 0;
		while (len < sizeof head - 1 && recv(fd, head + len, 1, 0) == 1) {
			len++;
			if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0) break;
		}
		head[len] = '\0';
		char host[256];
		int port = 0;
		if (sscanf(head, "CONNECT %255[^:]:%d ", host, &port) != 2 || strcmp(host, "blocked.test") == 0) {
			const char *no = "HTTP/1.1 403 Forbidden\r\nContent-Length: 8\r\n\r\nblocked\n";
			send(fd, no, strlen(no), MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		int up = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(up, (struct sockaddr *)&a, sizeof a) == 0) {
			const char *ok = "HTTP/1.1 200 Connection established\r\n\r\n";
			send(fd, ok, strlen(ok), MSG_NOSIGNAL);
			splice_fds(fd, up);
		}
		close(up);
		close(fd);
	}
}

static void mini_proxy_start(mini_proxy *mp)
{
	mp->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	ck_assert_int_eq(bind(mp->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(mp->listen_fd, 16), 0);
	ck_assert_int_eq(getsockname(mp->listen_fd, (struct sockaddr *)&a, &alen), 0);
	mp->port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&mp->thread, NULL, mini_proxy_main, mp), 0);
}

static void mini_proxy_stop(mini_proxy *mp)
{
	shutdown(mp->listen_fd, SHUT_RDWR);
	pthread_join(mp->thread, NULL);
	close(mp->listen_fd);
}

static int blocked_proxy_port;
static void connect_blocked(void *arg)
{
	(void)arg;
	th_client_connect_via_proxy(blocked_proxy_port, "blocked.test", 443, NULL, NULL);
}

START_TEST(test_client_via_proxy)
{
	th_cert ca = th_make_ca("tunnel-ca");
	th_cert other_ca = th_make_ca("other-ca");
	th_leaf_opts o = localhost_opts();
	th_cert leaf = th_make_leaf(&ca, "tunnel-leaf", &o);
	th_upstream *u = th_upstream_start(&leaf);
	int up_port = th_upstream_port(u);
	mini_proxy mp;
	mini_proxy_start(&mp);

	th_client *c = th_client_connect_via_proxy(mp.port, "localhost", up_port, ca.cert_path, "localhost");
	ck_assert_str_eq(th_client_peer_cert_issuer(c), "tunnel-ca");
	ck_assert_int_eq(X509_cmp(th_client_peer_cert(c), leaf.cert), 0);
	const char *req = "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n";
	th_client_send(c, req, strlen(req));
	char *r = th_client_recv_response(c, NULL, 5000);
	ck_assert_int_eq(th_client_status(r), 200);
	free(r);
	th_client_close(c);
	char *sni = th_upstream_last_sni(u);
	ck_assert_str_eq(sni, "localhost");
	free(sni);

	/* IP literal, no SNI: verified against the IP SAN. */
	c = th_client_connect_via_proxy(mp.port, "127.0.0.1", up_port, ca.cert_path, NULL);
	th_client_close(c);

	/* No TLS inside the tunnel: the raw bytes go through. */
	c = th_client_connect_via_proxy(mp.port, "127.0.0.1", up_port, NULL, NULL);
	th_client_send(c, "not tls\r\n\r\n", 11);
	th_client_close(c);

	char *why = NULL;
	ck_assert_ptr_null(th_client_try_via_proxy(mp.port, "localhost", up_port, other_ca.cert_path,
	                                           "localhost", &why));
	ck_assert_msg(why && strstr(why, "verify"), "%s", why);
	free(why);
	ck_assert_ptr_null(th_client_try_via_proxy(mp.port, "wrong.test", up_port, ca.cert_path,
	                                           "wrong.test", &why));
	ck_assert_msg(why && strstr(why, "mismatch"), "%s", why);
	free(why);
	ck_assert_ptr_null(th_client_try_via_proxy(mp.port, "blocked.test", 443, NULL, NULL, &why));
	ck_assert_msg(why && strstr(why, "403") && strstr(why, "blocked\n"), "%s", why);
	free(why);

	blocked_proxy_port = mp.port;
	char *msg = expect_th_fail(connect_blocked, NULL);
	ck_assert_msg(strstr(msg, "refused CONNECT blocked.test:443") && strstr(msg, "403"), "%s", msg);
	free(msg);

	mini_proxy_stop(&mp);
	th_upstream_stop(u);
	th_cert_free(&leaf);
	th_cert_free(&other_ca);
	th_cert_free(&ca);
}
END_TEST

/* ---- Processes ---------------------------------------------------------------------- */

START_TEST(test_run_large_io)
{
	char *out = NULL, *err = NULL;
	size_t len;
	char *head[] = {"head", "-c", "5000000", "/dev/zero", NULL};
	ck_assert_int_eq(th_run(head, NULL, 0, &out, &len, NULL, 10000), 0);
	ck_assert_uint_eq(len, 5000000);
	free(out);

	/* Both streams large at once, and large stdin echoed back while output piles up. */
	char *both[] = {"sh", "-c", "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2; exit 3", NULL};
	ck_assert_int_eq(th_run(both, NULL, 0, &out, &len, &err, 10000), 3);
	ck_assert_uint_eq(len, 3000000);
	ck_assert_uint_eq(strlen(err), 0); /* zeros: strlen stops at once, but it was captured */
	free(out);
	free(err);

	size_t in_len = 5000000;
	char *in = malloc(in_len);
	th_pattern_fill(in, in_len, 0);
	char *cat[] = {"cat", NULL};
	ck_assert_int_eq(th_run(cat, in, in_len, &out, &len, NULL, 10000), 0);
	ck_assert_uint_eq(len, in_len);
	ck_assert(memcmp(out, in, in_len) == 0);
	free(out);
	free(in);

	char *sig[] = {"sh", "-c", "kill -9 $$", NULL};
	ck_assert_int_eq(th_run(sig, NULL, 0, NULL, NULL, NULL, 10000), 128 + 9);
}
END_TEST

static void spawn_missing(void *arg)
{
	(void)arg;
	char *argv[] = {"th-no-such-program", "--flag", NULL};
	th_spawn(argv, "missing.log");
}

static void run_missing(void *arg)
{
	(void)arg;
	char *argv[] = {"/nonexistent/th-no-such-tool", NULL};
	th_run(argv, NULL, 0, NULL, NULL, NULL, 1000);
}

static void run_too_long(void *arg)
{
	(void)arg;
	char *argv[] = {"sleep", "10", NULL};
	th_run(argv, NULL, 0, NULL, NULL, NULL, 200);
}

START_TEST(test_spawn_failures_are_reported)
{
	char *msg = expect_th_fail(spawn_missing, NULL);
	/* ENOENT usually; EACCES when some PATH directory is not searchable for this user */
	ck_assert_msg(strstr(msg, "cannot execute 'th-no-such-program'"), "%s", msg);
	free(msg);
	msg = expect_th_fail(run_missing, NULL);
	ck_assert_msg(strstr(msg, "cannot execute '/nonexistent/th-no-such-tool': No such file"), "%s", msg);
	free(msg);
	int64_t t0 = now_ms();
	msg = expect_th_fail(run_too_long, NULL);
	ck_assert_msg(strstr(msg, "'sleep' did not finish within 200 ms"), "%s", msg);
	ck_assert_int_lt(now_ms() - t0, 3000);
	free(msg);
}
END_TEST

static bool log_contains(const th_proc *p, const char *text, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		char *log = th_log(p);
		bool found = strstr(log, text) != NULL;
		free(log);
		if (found) return true;
		if (now_ms() >= deadline) return false;
		poll(NULL, 0, 10);
	}
}

START_TEST(test_spawn_wait_stop)
{
	char *daemon[] = {"sh", "-c", "echo to-stdout; echo to-stderr >&2; exec sleep 30", NULL};
	th_proc d = th_spawn(daemon, "daemon.log");
	ck_assert(log_contains(&d, "to-stdout", 5000));
	ck_assert(log_contains(&d, "to-stderr", 5000));
	ck_assert(th_alive(&d));
	ck_assert_int_eq(th_wait(&d, 20), -1);
	ck_assert_int_gt(th_rss_kib(d.pid), 0);
	ck_assert_int_ge(th_rss_peak_kib(d.pid), th_rss_kib(d.pid));
	pid_t pid = d.pid;
	int64_t t0 = now_ms();
	th_stop(&d);
	ck_assert_int_lt(now_ms() - t0, 2000); /* SIGTERM worked, no 5 s grace used */
	ck_assert_int_eq(d.pid, 0);
	ck_assert(!th_alive(&d));
	ck_assert_int_eq(kill(pid, 0), -1);
	th_stop(&d); /* idempotent */

	char *seven[] = {"sh", "-c", "exit 7", NULL};
	th_proc e = th_spawn(seven, "seven.log");
	ck_assert_int_eq(th_wait(&e, 5000), 7);
	ck_assert_int_eq(th_wait(&e, 0), 7); /* remembered */
	ck_assert(!th_alive(&e));
	th_stop(&e);

	char *sleeper[] = {"sleep", "30", NULL};
	th_proc s = th_spawn(sleeper, "sleep.log");
	kill(s.pid, SIGKILL);
	ck_assert_int_eq(th_wait(&s, 5000), 128 + SIGKILL);

	/* A process that ignores SIGTERM in a group: stop escalates and takes the group. */
	setenv("TH_TEST_HOME_VAR", "should-vanish", 1);
	char *const env[] = {"TH_TEST_FOO=bar baz", "TH_TEST_HOME_VAR", NULL};
	char *show[] = {"sh", "-c", "echo \"foo=$TH_TEST_FOO home=${TH_TEST_HOME_VAR-unset}\"", NULL};
	th_proc v = th_spawn_env(show, env, "env.log");
	ck_assert_int_eq(th_wait(&v, 5000), 0);
	char *log = th_log(&v);
	ck_assert_str_eq(log, "foo=bar baz home=unset\n");
	free(log);
	unsetenv("TH_TEST_HOME_VAR");

	/* A child that left its parent's process group behind still dies with the group. */
	char *family[] = {"sh", "-c", "sleep 30 & echo child=$!; wait", NULL};
	th_proc f = th_spawn(family, "family.log");
	ck_assert(log_contains(&f, "child=", 5000));
	char *flog = th_log(&f);
	pid_t child = (pid_t)atoi(strstr(flog, "child=") + 6);
	free(flog);
	th_stop(&f);
	/* the orphan is reparented and reaped elsewhere; poll until it is gone */
	int64_t deadline = now_ms() + 5000;
	while (kill(child, 0) == 0 && now_ms() < deadline) {
		char path[64], *stat;
		snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
		stat = th_read_file(path, NULL);
		bool zombie = stat && strstr(stat, ") Z ");
		free(stat);
		if (zombie) break;
		poll(NULL, 0, 10);
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
	char *stat = th_read_file(path, NULL);
	ck_assert_msg(!stat || strstr(stat, ") Z "), "grandchild %d survived th_stop: %s", (int)child, stat);
	free(stat);
}
END_TEST

/* A test child that dies the way Check ends a failing test (_exit, no atexit) must not
 * leave its daemon or temp dir behind: the guardian cleans up. */
START_TEST(test_guardian_cleans_after_exit)
{
	/* Orphans of our children are reparented to us, so we can see how they died. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	for (int normal_exit = 0; normal_exit <= 1; normal_exit++) {
		int p[2];
		ck_assert_int_eq(pipe(p), 0);
		fflush(NULL);
		pid_t test_child = fork();
		if (test_child == 0) {
			char *argv[] = {"sleep", "60", NULL};
			th_proc d = th_spawn(argv, "orphan.log");
			char line[4200];
			int n = snprintf(line, sizeof line, "%d %s", (int)d.pid, th_tmpdir());
			if (write(p[1], line, (size_t)n) != n) _exit(2);
			if (normal_exit) exit(0);
			_exit(1);
		}
		close(p[1]);
		char line[4200] = {0};
		ck_assert_int_gt(read(p[0], line, sizeof line - 1), 0);
		close(p[0]);
		int daemon_pid;
		char dir[4096];
		ck_assert_int_eq(sscanf(line, "%d %4095s", &daemon_pid, dir), 2);
		int status;
		ck_assert_int_eq(waitpid(test_child, &status, 0), test_child);
		if (normal_exit) /* and leak-free, when built with LeakSanitizer */
			ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);

		/* The daemon must die of SIGTERM soon. Reap it (and the guardian, if orphaned). */
		int64_t deadline = now_ms() + 5000;
		bool daemon_reaped = normal_exit; /* a normal exit reaps it itself */
		while (!daemon_reaped && now_ms() < deadline) {
			pid_t r = waitpid(daemon_pid, &status, WNOHANG);
			if (r == daemon_pid) {
				daemon_reaped = true;
				ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status 0x%x", status);
			} else {
				poll(NULL, 0, 10);
			}
		}
		ck_assert_msg(daemon_reaped, "daemon %d outlived its test process", daemon_pid);
		ck_assert_int_eq(kill(daemon_pid, 0), -1);
		struct stat st;
		while (stat(dir, &st) == 0 && now_ms() < deadline) poll(NULL, 0, 10);
		ck_assert_msg(stat(dir, &st) != 0, "temp dir %s outlived its test process", dir);
		while (waitpid(-1, NULL, WNOHANG) > 0) {} /* the exited guardian */
	}
}
END_TEST

Suite *harness_suite(void)
{
	Suite *s = suite_create("harness");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
		{"files", test_tmpdir_files_ports},
		{"certs", test_certs_verify_with_openssl},
		{"nginx", test_nginx_serves_https},
		{"nginx-failure", test_nginx_failure_is_reported},
		{"upstream-tls", test_upstream_echo_tls},
		{"upstream-sink-bytes", test_upstream_sink_and_bytes},
		{"upstream-record-cap", test_upstream_record_cap},
		{"upstream-ws", test_upstream_websocket},
		{"upstream-pipeline", test_upstream_pipeline_order},
		{"upstream-framing", test_upstream_framing_routes},
		{"upstream-banner", test_upstream_banner},
		{"client-proxy", test_client_via_proxy},
		{"run", test_run_large_io},
		{"spawn-failures", test_spawn_failures_are_reported},
		{"spawn", test_spawn_wait_stop},
		{"guardian", test_guardian_cleans_after_exit},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 30);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}
