/*
 * console_proc: the console (build/dlpgate-console) as a real process for
 * the console suites, and real curl over HTTPS to it (see console_proc.h).
 */
#include "console_proc.h"

#include "http/body.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

cons_t cons_start_args(const char *db, bool secret, const char *const extra[])
{
	static int n;
	cons_t c = {.db = db};
	char name[64];
	snprintf(name, sizeof name, "console%d", n++);
	c.dir = th_path(name);
	c.port = th_free_port();
	char listen[64], logname[80];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", c.port);
	snprintf(logname, sizeof logname, "%s.log", name);
	const char *argv[24] = {dlp_console_bin(), "run", "--listen", listen, "--state-dir", c.dir, "--request-timeout-ms", "1000",
				"--log-level", "info"};
	int a = 10;
	if (secret) {
		argv[a++] = "--enroll-secret";
		argv[a++] = SECRET;
	}
	for (int i = 0; extra && extra[i] && a < 22; i++)
		argv[a++] = extra[i];
	if (db) {
		argv[a++] = "--db";
		argv[a++] = db;
	}
	argv[a] = NULL;
	c.proc = th_spawn((char *const *)argv, logname);
	if (!th_wait_port(c.port, 15000)) {
		char *log = th_log(&c.proc);
		th_fail("console did not listen on %d: %s", c.port, log);
	}
	size_t len = strlen(c.dir) + 16;
	c.pem = malloc(len);
	snprintf(c.pem, len, "%s/console.pem", c.dir);
	return c;
}

cons_t cons_start(const char *db)
{
	return cons_start_args(db, true, NULL);
}

void cons_stop(cons_t *c)
{
	kill(c->proc.pid, SIGTERM);
	int rc = th_wait(&c->proc, 10000);
	char *log = th_log(&c->proc);
	ck_assert_msg(rc == 0, "console exit %d: %s", rc, log);
	/* No token or secret is ever logged. */
	ck_assert_msg(!strstr(log, SECRET), "the enroll secret is in the log");
	ck_assert_msg(!strstr(log, "token\":") && !strstr(log, "Bearer"), "a token is in the log: %s", log);
	free(log);
	free(c->dir);
	free(c->pem);
}

/* dlpgate-console ARGS... [--state-dir DIR --db URL when c]; exit code. */
int cons_cli(cons_t *c, char **out, char **err, const char *const args[])
{
	const char *argv[32] = {dlp_console_bin()};
	int a = 1;
	for (int i = 0; args[i] && a < 26; i++)
		argv[a++] = args[i];
	if (c) {
		argv[a++] = "--state-dir";
		argv[a++] = c->dir;
		if (c->db) {
			argv[a++] = "--db";
			argv[a++] = c->db;
		}
	}
	argv[a] = NULL;
	char *o = NULL, *e = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &o, NULL, &e, 60000);
	if (out)
		*out = o;
	else
		free(o);
	if (err)
		*err = e;
	else
		free(e);
	return rc;
}

char *admin_token(cons_t *c)
{
	char *out = NULL, *err = NULL;
	int rc = cons_cli(c, &out, &err, (const char *const[]){"admin", "token", "create", NULL});
	ck_assert_msg(rc == 0, "admin token create: %d %s", rc, err);
	out[strcspn(out, "\n")] = '\0';
	ck_assert_msg(strlen(out) == 64, "token: %s", out);
	free(err);
	return out;
}

int req(cons_t *c, const char *method, const char *path, const char *token, const char *ctype,
	       const char *cenc, const void *body, size_t len, char **out)
{
	char url[2048], auth[128], ct[128], ce[128], wfmt[] = "\n%{http_code}";
	snprintf(url, sizeof url, "https://127.0.0.1:%d%s", c->port, path);
	const char *args[32] = {"--cacert", c->pem, "-X", method, "-w", wfmt, "-o", "-"};
	int a = 8;
	char *file = NULL;
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		args[a++] = "-H";
		args[a++] = auth;
	}
	if (ctype) {
		snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
		args[a++] = "-H";
		args[a++] = ct;
	}
	if (cenc) {
		snprintf(ce, sizeof ce, "Content-Encoding: %s", cenc);
		args[a++] = "-H";
		args[a++] = ce;
	}
	char fileopt[4200];
	if (body) {
		static int n;
		char name[64];
		snprintf(name, sizeof name, "body%d", n++);
		file = th_path(name);
		th_write_file(file, body, len, 0600);
		snprintf(fileopt, sizeof fileopt, "@%s", file);
		args[a++] = "--data-binary";
		args[a++] = fileopt;
	}
	args[a++] = url;
	args[a] = NULL;
	char *o = NULL, *err = NULL;
	size_t olen = 0;
	int rc = th_curl(args, &o, &olen, &err);
	if (file) {
		unlink(file);
		free(file);
	}
	ck_assert_msg(rc == 0, "curl %s %s: exit %d: %s", method, path, rc, err);
	free(err);
	char *nl = strrchr(o, '\n');
	ck_assert(nl);
	int status = atoi(nl + 1);
	*nl = '\0';
	if (out)
		*out = o;
	else
		free(o);
	return status;
}

char *gz(const char *data, size_t len, size_t *out_len)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
	ck_assert(body_gzip(data, len, &b));
	*out_len = b.len;
	return b.data;
}

int post_events(cons_t *c, const char *token, const char *ndjson, char **out)
{
	size_t zlen;
	char *z = gz(ndjson, strlen(ndjson), &zlen);
	int st = req(c, "POST", "/api/v1/events", token, "application/x-ndjson", "gzip", z, zlen, out);
	free(z);
	return st;
}

char *enroll_labels(cons_t *c, const char *agent, const char *labels_json, json_t **answer)
{
	char body[2048], *out = NULL;
	snprintf(body, sizeof body,
		 "{\"enroll_secret\":\"%s\",\"agent_id\":\"%s\",\"hostname\":\"host-%c\",\"version\":\"1.2.3\"%s%s}", SECRET,
		 agent, agent[0], labels_json ? ",\"labels\":" : "", labels_json ? labels_json : "");
	int st = req(c, "POST", "/api/v1/enroll", NULL, "application/json", NULL, body, strlen(body), &out);
	ck_assert_msg(st == 200, "enroll %d: %s", st, out);
	json_t *j = json_loads(out, 0, NULL);
	ck_assert_msg(j, "enroll answer: %s", out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "agent_id")), agent);
	char *tok = strdup(json_string_value(json_object_get(j, "token")));
	ck_assert_int_eq(strlen(tok), 64);
	if (answer)
		*answer = j;
	else
		json_decref(j);
	free(out);
	return tok;
}

char *enroll(cons_t *c, const char *agent)
{
	return enroll_labels(c, agent, NULL, NULL);
}

json_t *get_json(cons_t *c, const char *admin, const char *path, int want_status)
{
	char *out = NULL;
	int st = req(c, "GET", path, admin, NULL, NULL, NULL, 0, &out);
	ck_assert_msg(st == want_status, "GET %s: %d %s", path, st, out);
	json_t *j = json_loads(out, 0, NULL);
	ck_assert_msg(j, "GET %s not JSON: %s", path, out);
	free(out);
	return j;
}

