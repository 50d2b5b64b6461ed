/*
 * The command line: every mistake a user can make is one line naming the
 * problem and exit code 2; the CA is made once, private, and exportable.
 */
#include "dlp.h"
#include "suites.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Runs dlpgate with args; returns the exit code, stderr in *err. */
static int run(const char *const args[], char **out, char **err)
{
	const char *argv[32];
	int a = 0;
	argv[a++] = dlp_bin();
	for (int i = 0; args[i]; i++)
		argv[a++] = args[i];
	argv[a] = NULL;
	return th_run((char *const *)argv, NULL, 0, out, NULL, err, 10000);
}

/* Exit 2 with exactly one line on stderr that holds want. */
static void expect_usage_error(const char *const args[], const char *want)
{
	char *out = NULL, *err = NULL;
	int rc = run(args, &out, &err);
	ck_assert_msg(rc == 2, "exit %d, stderr: %s", rc, err);
	ck_assert_msg(strstr(err, want), "want \"%s\" in: %s", want, err);
	ck_assert_msg(strncmp(err, "dlpgate: ", 9) == 0 && strchr(err, '\n') == err + strlen(err) - 1,
		      "not one line: %s", err);
	free(out), free(err);
}

START_TEST(help_and_version)
{
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(run((const char *const[]){"--help", NULL}, &out, &err), 0);
	ck_assert(strstr(out, "dlpgate run --listen") && strstr(out, "--upstream-ca"));
	free(out), free(err);
	ck_assert_int_eq(run((const char *const[]){"--version", NULL}, &out, &err), 0);
	ck_assert(strncmp(out, "dlpgate ", 8) == 0 && strstr(out, "OpenSSL"));
	free(out), free(err);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
	char *state = th_path("st");
	expect_usage_error((const char *const[]){"frobnicate", NULL}, "unknown command");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--bogus", NULL},
			   "--bogus");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", NULL}, "--state-dir");
	expect_usage_error((const char *const[]){"run", "--state-dir", state, NULL}, "--listen");
	expect_usage_error((const char *const[]){"run", "--listen", "nowhere", "--state-dir", state, NULL}, "ADDR:PORT");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:70000", "--state-dir", state, NULL},
			   "port");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--config",
						 "/nonexistent/x.json", NULL},
			   "/nonexistent/x.json");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--upstream-ca",
						 "/nonexistent/ca.pem", NULL},
			   "--upstream-ca");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--ca-cert",
						 "/etc/hostname", NULL},
			   "--ca-key");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--workers",
						 "0", NULL},
			   "--workers");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--balance",
						 "round-robin", NULL},
			   "--balance round-robin: must be kernel or engine");
	char *deep = th_path("no/such/dir/sysext.sock"); /* only the socket's own folder is made */
	expect_usage_error((const char *const[]){"run", "--sysext-socket", deep, "--state-dir", state, NULL},
			   "/no/such/dir: No such file or directory");
	free(deep);
	char *cfg = th_path("bad.json");
	th_write_file(cfg, "{\n \"limits\": {\"header_bytes\": 4096,}\n}", 38, 0644);
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--config", cfg,
						 NULL},
			   ":2:");
	th_write_file(cfg, "{\"timeouts\": {\"idle\": 5}}", 25, 0644);
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--config", cfg,
						 NULL},
			   "unknown key \"timeouts.idle\"");
	expect_usage_error((const char *const[]){"ca", "export", NULL}, "--state-dir");
	expect_usage_error((const char *const[]){"run", "--transparent", "127.0.0.1:1", "--state-dir", state,
						 "--app-identity", "ebpf", NULL},
			   "bpf (the kernel records who connects");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state,
						 "--app-identity", "proc", NULL},
			   "give --transparent");
	free(cfg);
	free(state);
}
END_TEST

START_TEST(loose_ca_key_is_refused)
{
	th_cert ca = th_make_ca("loose");
	chmod(ca.key_path, 0644);
	char *state = th_path("st2");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--ca-cert",
						 ca.cert_path, "--ca-key", ca.key_path, NULL},
			   "chmod 600");
	/* a key that is not the certificate's */
	th_cert other = th_make_ca("other");
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--ca-cert",
						 ca.cert_path, "--ca-key", other.key_path, NULL},
			   "does not belong");
	/* a leaf is not a CA */
	th_cert leaf = th_make_leaf(&ca, "notaca", NULL);
	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", state, "--ca-cert",
						 leaf.cert_path, "--ca-key", leaf.key_path, NULL},
			   "not a CA");
	th_cert_free(&leaf), th_cert_free(&other), th_cert_free(&ca);
	free(state);
}
END_TEST

START_TEST(port_in_use_exits_2)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(s, 8), 0);
	socklen_t al = sizeof a;
	getsockname(s, (struct sockaddr *)&a, &al);
	char listen_arg[64];
	snprintf(listen_arg, sizeof listen_arg, "127.0.0.1:%d", ntohs(a.sin_port));
	char *state = th_path("st3");
	expect_usage_error((const char *const[]){"run", "--listen", listen_arg, "--state-dir", state, NULL},
			   "already in use");
	close(s);
	free(state);
}
END_TEST

START_TEST(generated_ca_is_private_and_exportable)
{
	world_t w = world_new();
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	struct stat st;
	ck_assert_int_eq(stat(d.state_dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	char key[512];
	snprintf(key, sizeof key, "%s/ca.key", d.state_dir);
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert(dlp_log_wait(&d, "ca_generated=yes", 3000));
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(run((const char *const[]){"ca", "export", "--state-dir", d.state_dir, NULL}, &out, &err), 0);
	size_t len;
	char *pem = th_read_file(d.ca_path, &len);
	ck_assert_str_eq(out, pem);
	free(out), free(err), free(pem);
	/* openssl agrees it is a CA: P-256, CA:TRUE */
	char *const x509[] = {"openssl", "x509", "-in", d.ca_path, "-noout", "-text", NULL};
	ck_assert_int_eq(th_run(x509, NULL, 0, &out, NULL, NULL, 10000), 0);
	ck_assert(strstr(out, "CA:TRUE") && strstr(out, "prime256v1"));
	free(out);
	/* a restart keeps the same CA */
	char *state = strdup(d.state_dir);
	dlp_stop(&d);
	char listen_arg[64];
	int port = th_free_port();
	snprintf(listen_arg, sizeof listen_arg, "127.0.0.1:%d", port);
	const char *argv[] = {dlp_bin(), "run", "--listen", listen_arg, "--state-dir", state, NULL};
	th_proc p = th_spawn((char *const *)argv, "restart.log");
	/* The start line, not the port: the port opens before the signal
	 * handlers are installed, and a SIGTERM then would end it unlogged. */
	char *log = NULL;
	for (int i = 0; i < 500; i++) {
		free(log);
		log = th_log(&p);
		if (strstr(log, "event=start"))
			break;
		usleep(10000);
	}
	th_stop(&p);
	free(log);
	log = th_log(&p);
	ck_assert_msg(strstr(log, "ca_generated=no"), "%s", log);
	free(log), free(state);
	world_free(&w);
}
END_TEST

START_TEST(given_ca_signs_leaves)
{
	world_t w = world_new();
	th_cert mine = th_make_ca("my-org-ca");
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL,
			    (const char *const[]){"--ca-cert", mine.cert_path, "--ca-key", mine.key_path, NULL});
	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), mine.cert_path, NULL);
	ck_assert_str_eq(th_client_peer_cert_issuer(c), "my-org-ca");
	th_client_close(c);
	dlp_stop(&d);
	th_upstream_stop(up);
	th_cert_free(&mine);
	world_free(&w);
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *t = tcase_create("cli");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, help_and_version);
	tcase_add_test(t, usage_errors_exit_2);
	tcase_add_test(t, loose_ca_key_is_refused);
	tcase_add_test(t, port_in_use_exits_2);
	tcase_add_test(t, generated_ca_is_private_and_exportable);
	tcase_add_test(t, given_ca_signs_leaves);
	suite_add_tcase(s, t);
	return s;
}
