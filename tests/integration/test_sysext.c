/*
 * System extension flows on Linux: build/flowclient plays the macOS
 * extension (the same frame code it compiles), real curl is the app, the
 * harness upstream records what arrives. The shipped default policy
 * decides on the identity in the header: Apple daemons are left alone
 * (the flow goes straight to the upstream, cards unmasked), Apple tools a
 * person drives (curl, python, Safari) and Developer ID apps are inspected (cards
 * masked). Hostile headers, wrong peers and a wrong socket mode are
 * refused, and the engine stays up.
 */
#include "dlp.h"
#include "suites.h"

#include "sources/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
	world_t w;
	th_upstream *up;
	dlp_t d;
	char *sock;
	char *trust;   /* dlpgate's CA and the upstream CA: curl accepts either path */
} fixture_t;

static void setup(fixture_t *fx)
{
	fx->w = world_new();
	fx->up = th_upstream_start(&fx->w.server);
	fx->sock = th_path("run/sysext.sock"); /* run/ is made by the engine, as /var/run/dlpgate on a Mac */
	fx->d = dlp_start(fx->w.ca.cert_path, NULL,
			  (const char *const[]){"--policy", "rules/default.lua", "--sysext-socket", fx->sock, NULL});
	size_t a_len, b_len;
	char *a = th_read_file(fx->d.ca_path, &a_len), *b = th_read_file(fx->w.ca.cert_path, &b_len);
	char *both = malloc(a_len + b_len);
	memcpy(both, a, a_len);
	memcpy(both + a_len, b, b_len);
	fx->trust = th_path("trust.pem");
	th_write_file(fx->trust, both, a_len + b_len, 0644);
	free(a), free(b), free(both);
}

static void teardown(fixture_t *fx)
{
	dlp_stop(&fx->d);
	th_upstream_stop(fx->up);
	world_free(&fx->w);
	free(fx->sock), free(fx->trust);
}

static const char *flowclient_bin(void)
{
	static char path[512];
	snprintf(path, sizeof path, "%.*s/flowclient", (int)(strrchr(dlp_bin(), '/') - dlp_bin()), dlp_bin());
	return path;
}

/* A flowclient with this identity; returns its TCP port. */
static int start_flowclient(fixture_t *fx, th_proc *p, const char *const identity[])
{
	static int n;
	int port = th_free_port();
	char listen[32], dst[32], log[32];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	snprintf(dst, sizeof dst, "127.0.0.1:%d", th_upstream_port(fx->up));
	snprintf(log, sizeof log, "flowclient%d.log", n++);
	const char *argv[32] = {flowclient_bin(), "--listen", listen, "--socket", fx->sock, "--dst", dst,
				"--hostname", "localhost"};
	int a = 9;
	for (int i = 0; identity[i]; i++)
		argv[a++] = identity[i];
	argv[a] = NULL;
	*p = th_spawn((char *const *)argv, log);
	if (!th_wait_port(port, 10000))
		th_fail("flowclient did not listen:\n%s", th_log(p));
	return port;
}

/* curl, as the app, POSTs a card number through the flow client. */
static void post_card(fixture_t *fx, int port)
{
	char target[64], resolve[64];
	snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", port);
	snprintf(target, sizeof target, "https://localhost:%d/echo", port);
	const char *argv[] = {"curl", "-sS", "--max-time", "20", "--cacert", fx->trust, "--resolve", resolve,
			      "-H", "Content-Type: text/plain", "--data-binary", "card 4539 1488 0343 6467 end", target,
			      NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 30000);
	ck_assert_msg(rc == 0, "curl exit %d: %s", rc, err);
	free(out), free(err);
}

/* What the flow client said about the flow, once it has said it. */
static char *verdict_line(th_proc *p)
{
	for (int i = 0; i < 500; i++) {
		char *log = th_log(p);
		if (strstr(log, "verdict="))
			return log;
		free(log);
		usleep(10000);
	}
	th_fail("flowclient printed no verdict:\n%s", th_log(p));
}

static void expect_verdict(fixture_t *fx, const char *const identity[], const char *verdict, bool inspected,
			   const char *reason)
{
	th_proc p;
	int port = start_flowclient(fx, &p, identity);
	size_t before;
	free(th_upstream_received(fx->up, &before));
	post_card(fx, port);
	char *line = verdict_line(&p);
	size_t len;
	char *all = th_upstream_received(fx->up, &len), *rx = all + before; /* this flow's bytes */
	ck_assert_msg(strstr(line, verdict), "want %s: %s", verdict, line);
	if (inspected) {
		ck_assert_msg(strstr(rx, "card 4539 **** **** 6467 end") && !strstr(rx, "1488 0343"), "%s", rx);
	} else {
		ck_assert_msg(strstr(line, reason), "%s", line);
		ck_assert_msg(strstr(rx, "card 4539 1488 0343 6467 end"), "bypassed, so untouched: %s", rx);
	}
	free(all), free(line);
	th_stop(&p);
}

static void expect(fixture_t *fx, const char *const identity[], bool inspected, const char *reason)
{
	expect_verdict(fx, identity, inspected ? "verdict=accept" : "verdict=bypass", inspected, reason);
}

/* curl, as the app with this identity, through a new flow client,
 * trusting only cafile; its exit code (0: the upload went through). */
static int upload_as(fixture_t *fx, const char *const identity[], const char *cafile)
{
	th_proc p;
	int port = start_flowclient(fx, &p, identity);
	char target[64], resolve[64];
	snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", port);
	snprintf(target, sizeof target, "https://localhost:%d/echo", port);
	const char *argv[] = {"curl", "-sS", "--max-time", "20", "--cacert", cafile, "--resolve", resolve,
			      "--data-binary", "card 4539 1488 0343 6467 end", target, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 30000);
	free(out), free(err);
	th_stop(&p);
	return rc;
}

static char *pinned_cmd(fixture_t *fx, const char *what)
{
	const char *argv[] = {dlp_bin(), "pinned", what, "--state-dir", fx->d.state_dir, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 10000);
	ck_assert_msg(rc == 0, "dlpgate pinned %s: exit %d: %s%s", what, rc, out, err);
	free(err);
	return out;
}

/* An app that refuses dlpgate's certificate is remembered as that app, for
 * that server, and its next flows there go to the policy: the shipped
 * default lets a signed app nobody drives through untouched and refuses
 * curl. Another app's flows to the same server are inspected as ever. */
START_TEST(pinned_apps_are_remembered_apart_and_the_policy_decides)
{
	fixture_t fx;
	setup(&fx);
	const char *const updater[] = {"--anchor", "developer_id", "--signing-id", "com.acme.updater", "--team-id",
				       "ABCDE12345", "--path", "/Applications/Updater.app/Contents/MacOS/Updater", NULL};
	const char *const curl[] = {"--anchor", "apple", "--signing-id", "com.apple.curl", "--path", "/usr/bin/curl",
				    NULL};
	const char *real_ca = fx.w.ca.cert_path; /* trusts the server, not dlpgate: a pinning app */
	ck_assert_int_ne(upload_as(&fx, updater, real_ca), 0);
	ck_assert(dlp_log_wait(&fx.d, "app=team:ABCDE12345:com.acme.updater", 5000));
	/* the updater again: uninspectable (pinned), let through: it sees the real certificate */
	ck_assert_int_eq(upload_as(&fx, updater, real_ca), 0);
	ck_assert(dlp_log_wait(&fx.d, "mode=pinned", 5000));
	/* curl to the same server is not the updater: intercepted (and refuses us) */
	int handshakes = th_upstream_tls_handshakes(fx.up);
	ck_assert_int_ne(upload_as(&fx, curl, real_ca), 0);
	ck_assert(dlp_log_wait(&fx.d, "app=team::com.apple.curl", 5000));
	/* curl again: pinned now, and the default policy refuses it */
	ck_assert_int_ne(upload_as(&fx, curl, real_ca), 0);
	ck_assert(dlp_log_wait(&fx.d, "dlpgate must inspect this connection but cannot (pinned)", 5000));
	ck_assert_int_eq(th_upstream_tls_handshakes(fx.up), handshakes + 1); /* only the first, intercepted, went up */

	char *list = pinned_cmd(&fx, "list");
	ck_assert_msg(strstr(list, "\"app\":\"team:ABCDE12345:com.acme.updater\"") &&
			      strstr(list, "\"app\":\"team::com.apple.curl\"") && strstr(list, "\"server\":\"localhost\""),
		      "%s", list);
	free(list);
	char *cleared = pinned_cmd(&fx, "clear");
	ck_assert_msg(strstr(cleared, "\"cleared\":2"), "%s", cleared);
	free(cleared);
	list = pinned_cmd(&fx, "list");
	ck_assert_msg(strstr(list, "\"pinned\":[]"), "%s", list);
	free(list);
	/* SIGHUP forgets too */
	ck_assert_int_ne(upload_as(&fx, updater, real_ca), 0);
	kill(fx.d.proc.pid, SIGHUP);
	ck_assert(dlp_log_wait(&fx.d, "SIGHUP: 1 pinned app entries forgotten", 5000));
	teardown(&fx);
}
END_TEST

START_TEST(default_policy_decides_on_the_app)
{
	fixture_t fx;
	setup(&fx);
	/* an Apple platform daemon: the OS keeps it, the engine never sees its bytes */
	expect(&fx,
	       (const char *const[]){"--anchor", "apple", "--signing-id", "com.apple.nsurlsessiond", "--path",
				     "/usr/libexec/nsurlsessiond", NULL},
	       false, "Apple platform code com.apple.nsurlsessiond");
	/* Apple-signed, but a person drives it: inspected */
	expect(&fx,
	       (const char *const[]){"--anchor", "apple", "--signing-id", "com.apple.curl", "--path", "/usr/bin/curl",
				     NULL},
	       true, NULL);
	expect(&fx,
	       (const char *const[]){"--anchor", "apple", "--signing-id", "com.apple.python3", "--path",
				     "/usr/bin/python3", NULL},
	       true, NULL);
	expect(&fx,
	       (const char *const[]){"--anchor", "apple", "--signing-id", "com.apple.Safari", "--path",
				     "/Applications/Safari.app/Contents/MacOS/Safari", NULL},
	       true, NULL);
	/* a Developer ID app */
	expect(&fx,
	       (const char *const[]){"--anchor", "developer_id", "--signing-id", "com.acme.uploader", "--team-id",
				     "ABCDE12345", "--path", "/Applications/Uploader.app/Contents/MacOS/Uploader",
				     NULL},
	       true, NULL);
	ck_assert(dlp_log_wait(&fx.d, "source=sysext", 5000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "signing_id=com.acme.uploader") && strstr(log, "anchor=developer_id"), "%s", log);
	free(log);
	teardown(&fx);
}
END_TEST

/* Sends raw bytes as a flow header; returns the engine's reply (or NULL
 * when it closed without one). */
static char *send_header(const char *sock, const void *data, size_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
	ck_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0);
	ck_assert(write(fd, data, len) == (ssize_t)len);
	shutdown(fd, SHUT_WR);
	char buf[FRAME_PREFIX + FRAME_MAX_JSON];
	size_t have = 0;
	ssize_t n;
	while (have < sizeof buf && (n = read(fd, buf + have, sizeof buf - have)) > 0)
		have += (size_t)n;
	close(fd);
	frame_reply_t r;
	size_t used;
	char err[200];
	if (frame_reply_decode((const uint8_t *)buf, have, &r, &used, err, sizeof err) != FRAME_OK)
		return NULL;
	char *s = NULL;
	if (asprintf(&s, "%s: %s", frame_verdict_name(r.verdict), r.reason) < 0)
		th_fail("out of memory");
	return s;
}

/* A control request; the JSON of the engine's answer, or NULL. */
static char *control(const char *sock, const char *json)
{
	bytebuf_t q;
	bytebuf_init(&q, 0);
	ck_assert(frame_control_encode(json, strlen(json), &q));
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
	ck_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0);
	ck_assert(write(fd, q.data, q.len) == (ssize_t)q.len);
	bytebuf_free(&q);
	static char buf[1 << 16];
	size_t have = 0;
	ssize_t n;
	while (have < sizeof buf && (n = read(fd, buf + have, sizeof buf - have)) > 0)
		have += (size_t)n;
	close(fd);
	const char *j;
	size_t len, used;
	char err[200];
	if (frame_control_decode((const uint8_t *)buf, have, &j, &len, &used, err, sizeof err) != FRAME_OK)
		return NULL;
	return strndup(j, len);
}

static void expect_reject(const char *sock, const char *json, const char *why)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
	uint8_t prefix[FRAME_PREFIX] = {'D', 'L', 'P', 'F', 0, FRAME_VERSION};
	size_t n = strlen(json);
	for (int i = 0; i < 4; i++)
		prefix[6 + i] = (uint8_t)(n >> (24 - 8 * i));
	bytebuf_append(&b, prefix, sizeof prefix);
	bytebuf_append(&b, json, n);
	char *r = send_header(sock, b.data, b.len);
	ck_assert_msg(r && !strncmp(r, "reject: ", 8) && strstr(r, why), "want a reject naming \"%s\", got %s", why,
		      r ? r : "(no reply)");
	free(r);
	bytebuf_free(&b);
}

START_TEST(hostile_headers_are_rejected)
{
	fixture_t fx;
	setup(&fx);
	struct stat st;
	ck_assert(stat(fx.sock, &st) == 0 && S_ISSOCK(st.st_mode));
	ck_assert_msg((st.st_mode & 0777) == 0600, "socket mode %o", st.st_mode & 0777);
	const char *good_app = "\"app\":{\"pid\":1,\"uid\":0,\"path\":\"/bin/x\",\"anchor\":\"unsigned\","
			       "\"audit_token_sha256\":\"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\"}";
	char json[1024];
	snprintf(json, sizeof json, "{\"extension_version\":\"1\",\"flow_id\":\"f\",\"dst\":{\"ip\":\"127.0.0.1\","
		 "\"port\":1},%s,\"evil\":1}", good_app);
	expect_reject(fx.sock, json, "unknown field \"evil\"");
	snprintf(json, sizeof json, "{\"extension_version\":\"1\",\"flow_id\":\"f\",%s}", good_app);
	expect_reject(fx.sock, json, "\"dst\" must be an object");
	snprintf(json, sizeof json, "{\"extension_version\":\"1\",\"flow_id\":\"f\",\"dst\":{\"ip\":\"example.com\","
		 "\"port\":443},%s}", good_app);
	expect_reject(fx.sock, json, "not a numeric IPv4 or IPv6 address");
	snprintf(json, sizeof json, "{\"extension_version\":\"1\",\"flow_id\":\"f\",\"dst\":{\"ip\":\"127.0.0.1\","
		 "\"port\":70000},%s}", good_app);
	expect_reject(fx.sock, json, "\"port\" must be a whole number from 1 to 65535");
	/* a path that is not UTF-8 */
	expect_reject(fx.sock, "{\"extension_version\":\"1\",\"app\":{\"path\":\"/bin/\xff\"}}", "header:");
	expect_reject(fx.sock, "[1,2]", "not a JSON object");
	/* wrong magic, wrong version, a length past the limit */
	char *r = send_header(fx.sock, "GET / HTTP/1.1\r\n\r\n", 18);
	ck_assert_msg(r && strstr(r, "not a dlpgate flow frame"), "%s", r ? r : "(none)");
	free(r);
	r = send_header(fx.sock, "DLPF\x00\x09\x00\x00\x00\x02{}", 12);
	ck_assert_msg(r && strstr(r, "protocol version 9") && strstr(r, "update the engine"), "%s", r ? r : "(none)");
	free(r);
	r = send_header(fx.sock, "DLPF\x00\x01\x7f\x00\x00\x00", 10);
	ck_assert_msg(r && strstr(r, "1 to 16384 allowed"), "%s", r ? r : "(none)");
	free(r);
	/* a header cut short: no reply, and the engine says why */
	r = send_header(fx.sock, "DLPF\x00\x01\x00\x00\x00\x40{\"ext", 16);
	ck_assert_ptr_null(r);
	ck_assert(dlp_log_wait(&fx.d, "before its header frame was complete", 5000));
	/* still serving */
	expect(&fx, (const char *const[]){"--anchor", "unsigned", "--path", "/usr/local/bin/tool", NULL}, true, NULL);
	teardown(&fx);
}
END_TEST

START_TEST(static_bypass_table_in_the_extension)
{
	fixture_t fx;
	setup(&fx);
	/* the table, as the extension fetches it */
	char *table = control(fx.sock, "{\"get\":\"bypass_table\"}");
	ck_assert_msg(table && strstr(table, "\"apple_platform\":true") && strstr(table, "\"com.apple.curl\"") &&
			      strstr(table, "\"*.apple.com\"") && strstr(table, "\"policy_version\":\"sha256:"),
		      "%s", table ? table : "(none)");
	free(table);
	ck_assert_ptr_null(control(fx.sock, "{\"get\":\"everything\"}"));
	/* the daemon never reaches the engine; curl still does */
	expect_verdict(&fx,
		       (const char *const[]){"--static-bypass", "--anchor", "apple", "--signing-id", "com.apple.nsurlsessiond",
					     "--path", "/usr/libexec/nsurlsessiond", NULL},
		       "verdict=static-bypass", false, "Apple platform code com.apple.nsurlsessiond");
	expect_verdict(&fx,
		       (const char *const[]){"--static-bypass", "--anchor", "apple", "--signing-id", "com.apple.curl",
					     "--path", "/usr/bin/curl", NULL},
		       "verdict=accept", true, NULL);
	expect_verdict(&fx,
		       (const char *const[]){"--static-bypass", "--anchor", "developer_id", "--signing-id", "com.acme.app",
					     "--hostname", "www.apple.com", "--path", "/Applications/A.app/Contents/MacOS/A", NULL},
		       "verdict=static-bypass", false, "static bypass host www.apple.com");
	ck_assert(dlp_log_wait(&fx.d, "signing_id=com.apple.curl", 5000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(!strstr(log, "com.apple.nsurlsessiond") && !strstr(log, "com.acme.app"), "%s", log);
	free(log);
	teardown(&fx);
}
END_TEST

START_TEST(only_root_may_connect)
{
	if (geteuid() != 0) {
		fprintf(stderr, "only_root_may_connect: SKIPPED (needs root to connect as another uid)\n");
		return;
	}
	fixture_t fx;
	setup(&fx);
	chmod(fx.sock, 0666); /* so the kernel lets the other uid connect: the engine must still refuse */
	pid_t pid = fork();
	if (pid == 0) {
		if (setuid(65534) != 0)
			_exit(3);
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", fx.sock);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
			_exit(4);
		char c;
		_exit(read(fd, &c, 1) == 0 ? 0 : 5); /* closed without a reply */
	}
	int status;
	waitpid(pid, &status, 0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	ck_assert(dlp_log_wait(&fx.d, "unix peer uid 65534 may not use the system extension socket", 5000));
	teardown(&fx);
}
END_TEST

Suite *sysext_suite(void)
{
	Suite *s = suite_create("sysext");
	TCase *t = tcase_create("sysext");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, default_policy_decides_on_the_app);
	tcase_add_test(t, pinned_apps_are_remembered_apart_and_the_policy_decides);
	tcase_add_test(t, hostile_headers_are_rejected);
	tcase_add_test(t, static_bypass_table_in_the_extension);
	tcase_add_test(t, only_root_may_connect);
	suite_add_tcase(s, t);
	return s;
}
