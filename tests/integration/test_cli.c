/*
 * The command line: every mistake a user can make is one line naming the
 * problem and exit code 2; the CA is made once, private, and exportable.
 */
#include "dlp.h"
#include "suites.h"

#include <arpa/inet.h>
#include <signal.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
	/* every command main() knows is listed */
	const char *commands[] = {"run", "ca init", "ca export", "ca install", "check", "test", "scan", "import",
				  "redirect", "spool", "status"};
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
		char line[64];
		snprintf(line, sizeof line, "\n  %s ", commands[i]);
		ck_assert_msg(strstr(out, line), "--help does not list %s:\n%s", commands[i], out);
	}
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

/* Starts dlpgate under prlimit's open-file limit (soft:hard) with config
 * (may be NULL); returns its log once it has started, stopped again. */
static char *start_under_limit(const char *nofile, const char *config, char soft_now[32])
{
	char *state = th_path("st-fd");
	char listen[64], lim[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", th_free_port());
	snprintf(lim, sizeof lim, "--nofile=%s", nofile);
	char *cfg = th_path("fd.json");
	if (config)
		th_write_file(cfg, config, strlen(config), 0644);
	const char *argv[] = {"prlimit", lim, "--", dlp_bin(), "run", "--listen", listen, "--state-dir", state,
			      config ? "--config" : NULL, cfg, NULL};
	dlp_t d = {.proc = th_spawn((char *const *)argv, "fd.log")};
	ck_assert_msg(dlp_log_wait(&d, "event=start ", 10000), "no start: %s", th_log(&d.proc));
	/* what the running process holds, as the kernel says */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/limits", (int)d.proc.pid);
	char *limits = th_read_file(path, NULL);
	const char *row = limits ? strstr(limits, "Max open files") : NULL;
	ck_assert(row && sscanf(row + 14, "%*[ ]%31s", soft_now) == 1);
	free(limits);
	th_stop(&d.proc);
	char *log = th_log(&d.proc);
	free(state), free(cfg);
	return log;
}

/* A default start raises the soft open-file limit to the hard one and
 * sizes limits.max_connections from it without a warning; a config that
 * asks for more than fits is lowered and told. */
START_TEST(default_start_sizes_from_the_fd_limit)
{
	char soft[32];
	char *log = start_under_limit("1024:4096", NULL, soft);
	ck_assert_str_eq(soft, "4096");
	ck_assert_msg(!strstr(log, "fd_limit") && !strstr(log, "level=warn"), "a warning on a default start: %s", log);
	/* (4096 - a reserve of 64 + 256 app-lookup descriptors) / 2 per connection */
	ck_assert_msg(strstr(log, " max_connections=1888 "), "%s", log);
	free(log);
	log = start_under_limit("1024:4096", "{\"limits\": {\"max_connections\": 5000}}", soft);
	ck_assert_msg(strstr(log, "event=fd_limit") && strstr(log, "lowered from 5000") &&
			      strstr(log, " max_connections=1888 "),
		      "%s", log);
	free(log);
	/* under this machine's own hard limit (the 20000 held 9840):
	 * the default or what fits, whichever is less, and no warning */
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > 1024) {
		char lim[64], want[64];
		snprintf(lim, sizeof lim, "1024:%lu", (unsigned long)rl.rlim_max);
		unsigned long fits = (rl.rlim_max - 320) / 2;
		snprintf(want, sizeof want, " max_connections=%lu ", fits < 10000 ? fits : 10000);
		log = start_under_limit(lim, NULL, soft);
		ck_assert_msg(!strstr(log, "level=warn") && strstr(log, want), "want%s: %s", want, log);
		free(log);
	}
}
END_TEST

/* `dlpgate status` asks the running agent through STATE/control.sock
 * (0600): its answer follows what happens (an open flow shows), --json is
 * one object, a second agent on the same state dir is refused, and once
 * the agent is gone status exits 3. */
START_TEST(status_asks_the_running_agent)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	char sock[700];
	snprintf(sock, sizeof sock, "%s/control.sock", d.state_dir);
	struct stat st;
	ck_assert_int_eq(stat(sock, &st), 0);
	ck_assert_msg(S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600, "mode %o", st.st_mode & 0777);

	th_client *c = th_client_connect_via_proxy(d.port, "127.0.0.1", th_upstream_port(up), d.ca_path, NULL);
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(run((const char *const[]){"status", "--state-dir", d.state_dir, "--json", NULL}, &out, &err), 0);
	json_t *o = json_loads(out, 0, NULL);
	ck_assert_msg(json_is_object(o), "%s", out);
	ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "running");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "flows_open")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "pid")), d.proc.pid);
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", d.port);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(o, "listeners"), 0), "address")),
			 listen);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "console"), "state")), "none");
	json_decref(o);
	free(out), free(err);
	th_client_close(c);

	ck_assert_int_eq(run((const char *const[]){"status", "--state-dir", d.state_dir, NULL}, &out, &err), 0);
	ck_assert_msg(strstr(out, "state ") && strstr(out, "running") && strstr(out, listen), "%s", out);
	free(out), free(err);

	char other[64];
	snprintf(other, sizeof other, "127.0.0.1:%d", th_free_port());
	expect_usage_error((const char *const[]){"run", "--listen", other, "--state-dir", d.state_dir, NULL},
			   "another dlpgate runs with this state dir");

	char *state = strdup(d.state_dir);
	dlp_stop(&d);
	ck_assert_msg(access(sock, F_OK) != 0, "the control socket outlived the agent");
	ck_assert_int_eq(run((const char *const[]){"status", "--state-dir", state, NULL}, &out, &err), 3);
	free(state);
	ck_assert_msg(strstr(err, "not running"), "%s", err);
	free(out), free(err);
	expect_usage_error((const char *const[]){"status", NULL}, "--state-dir");
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

/* Every line a log holds is one JSON object: a log line (ts, level,
 * event) or an event; returns how many log lines had event == want. */
static int json_log_lines(const char *log, const char *want)
{
	int hits = 0;
	for (const char *p = log; *p;) {
		const char *nl = strchr(p, '\n');
		ck_assert_msg(nl, "an unterminated log line: %s", p);
		json_error_t je;
		json_t *o = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &je);
		ck_assert_msg(json_is_object(o), "not a JSON object (%s): %.*s", je.text, (int)(nl - p), p);
		const char *ev = json_string_value(json_object_get(o, "event"));
		ck_assert(ev);
		/* a log line, or (no --console) a verdict event, JSON already */
		bool log_line = json_is_string(json_object_get(o, "ts")) && json_is_string(json_object_get(o, "level"));
		ck_assert_msg(log_line || json_is_string(json_object_get(o, "id")), "%.*s", (int)(nl - p), p);
		hits += log_line && !strcmp(ev, want);
		json_decref(o);
		p = nl + 1;
	}
	return hits;
}

/* --log-format json: the agent's and the console's whole stderr is JSON
 * lines, a hostile host name included; text stays the default. */
START_TEST(log_format_json)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	/* a reason with a quote, a backslash and UTF-8: escaped, still one object */
	char *policy = th_path("json-log.lua");
	const char src[] = "local dlp = require 'dlp'\n"
			   "function on_flow(flow)\n"
			   "  if flow.host == 'localhost' then return dlp.bypass('a \"quoted\" \\\\ caf\xc3\xa9') end\n"
			   "  return dlp.inspect()\n"
			   "end\n";
	th_write_file(policy, src, sizeof src - 1, 0644);
	dlp_t d = dlp_start(w.ca.cert_path, NULL,
			    (const char *const[]){"--log-format", "json", "--policy", policy, NULL});
	char *u = url("127.0.0.1", th_upstream_port(up), "/echo", true);
	ck_assert_int_eq(dlp_curl(&d, (const char *const[]){u, NULL}, NULL, NULL), 0);
	char *bypassed = url("localhost", th_upstream_port(up), "/echo", true);
	ck_assert_int_eq(dlp_curl(&d, (const char *const[]){"--cacert", w.ca.cert_path, bypassed, NULL}, NULL, NULL), 0);
	ck_assert(dlp_log_wait(&d, "\"reason\":\"a \\\"quoted\\\" \\\\ caf\\u00c3\\u00a9\"", 5000));
	free(bypassed), free(policy);
	char *sdir = strdup(d.state_dir);
	pid_t pid = d.proc.pid;
	th_proc keep = d.proc;
	kill(pid, SIGTERM);
	ck_assert_int_eq(th_wait(&keep, 15000), 0);
	char *log = th_log(&keep);
	ck_assert_int_eq(json_log_lines(log, "start"), 1);
	ck_assert_int_ge(json_log_lines(log, "flow_end"), 2);
	ck_assert_int_eq(json_log_lines(log, "stopped"), 1);
	free(log);
	dlp_stop(&d);

	char *cdir = th_path("json-console");
	char listen[64];
	int port = th_free_port();
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	const char *argv[] = {dlp_console_bin(), "run", "--listen", listen, "--state-dir", cdir, "--log-format", "json",
			      NULL};
	th_proc c = th_spawn((char *const *)argv, "json-console.log");
	ck_assert(th_wait_port(port, 10000));
	kill(c.pid, SIGTERM);
	ck_assert_int_eq(th_wait(&c, 10000), 0);
	log = th_log(&c);
	ck_assert_int_eq(json_log_lines(log, "enroll_secret_generated"), 1);
	ck_assert_int_eq(json_log_lines(log, "start"), 1);
	free(log);
	th_stop(&c);

	expect_usage_error((const char *const[]){"run", "--listen", "127.0.0.1:1", "--state-dir", sdir, "--log-format",
						 "xml", NULL},
			   "--log-format xml");
	free(sdir), free(cdir), free(u);
	th_upstream_stop(up);
	world_free(&w);
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
	tcase_add_test(t, default_start_sizes_from_the_fd_limit);
	tcase_add_test(t, status_asks_the_running_agent);
	tcase_add_test(t, log_format_json);
	tcase_add_test(t, generated_ca_is_private_and_exportable);
	tcase_add_test(t, given_ca_signs_leaves);
	suite_add_tcase(s, t);
	return s;
}
