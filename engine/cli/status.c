/* `dlpgate status` and the agent's answer to it; see status.h. */
#include "cli/status.h"

#include "cli/cli.h"
#include "net/control.h"
#include "report/report.h"
#include "tls/pinned.h"

#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *kind_name(listen_kind_t k)
{
	return k == LISTEN_EXPLICIT ? "explicit" : k == LISTEN_TRANSPARENT ? "transparent" : "sysext";
}

static char *json_line(json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return NULL;
	size_t n = strlen(text);
	char *line = realloc(text, n + 2); /* one line, so shell tools read it whole */
	if (!line)
		return text;
	memcpy(line + n, "\n", 2);
	return line;
}

static char *pinned_answer(const status_source_t *s, bool clear)
{
	if (clear)
		return json_line(json_pack("{s:I}", "cleared", (json_int_t)pinned_clear(s->e->pinned)));
	char *list = pinned_list_json(s->e->pinned);
	json_t *entries = list ? json_loads(list, 0, NULL) : NULL;
	free(list);
	return json_line(json_pack("{s:o*, s:I}", "pinned", entries, "ttl_s", (json_int_t)s->e->cfg.pinned_ttl_s));
}

char *status_answer(void *source, const char *command)
{
	const status_source_t *s = source;
	if (!strcmp(command, "pinned list") || !strcmp(command, "pinned clear"))
		return pinned_answer(s, !strcmp(command, "pinned clear"));
	if (strcmp(command, "status") != 0)
		return json_line(json_pack("{s:s, s:s}", "error", "unknown command", "commands",
					   "status, pinned list, pinned clear"));
	const engine_t *e = s->e;
	report_snapshot_t r;
	report_snapshot(&r);
	json_t *listeners = json_array();
	for (size_t i = 0; i < e->n_listens; i++)
		json_array_append_new(listeners, json_pack("{s:s, s:s}", "address", e->listens[i].text, "kind",
							   kind_name(e->listens[i].kind)));
	json_t *console = json_pack("{s:s, s:s, s:I, s:I, s:I}", "url", r.console, "state", report_link_name(r.link),
				    "spool_depth", (json_int_t)r.spool.depth, "spool_bytes", (json_int_t)r.spool.bytes,
				    "uploaded", (json_int_t)r.counters[REPORT_UPLOADED]);
	if (r.last_ok_unix_ms)
		json_object_set_new(console, "last_ok_s_ago", json_integer((json_int_t)((unix_ms() - r.last_ok_unix_ms) / 1000)));
	uint64_t now = unix_ms();
	json_t *o = json_pack("{s:s, s:i, s:I, s:s, s:o, s:s, s:i, s:I, s:I, s:I, s:o}", "version", DLPGATE_VERSION,
			      "pid", (int)getpid(), "uptime_s", (json_int_t)((now - s->started_unix_ms) / 1000), "state",
			      s->stop->signals ? "stopping" : "running", "listeners", listeners, "policy_version",
			      r.policy_version, "workers", (int)e->n_workers, "flows_open",
			      (json_int_t)atomic_load(&e->connections), "flows_total",
			      (json_int_t)atomic_load(&e->flows_total), "pinned_entries",
			      (json_int_t)pinned_count(e->pinned), "console", console);
	return json_line(o);
}

/* "key: value" lines, nested objects as "console.state". */
static void print_text(json_t *o, const char *prefix)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		char key[128];
		snprintf(key, sizeof key, "%s%s", prefix, k);
		if (json_is_object(v)) {
			char sub[130];
			snprintf(sub, sizeof sub, "%s.", key);
			print_text(v, sub);
		} else if (json_is_array(v)) {
			size_t i;
			json_t *x;
			json_array_foreach(v, i, x) {
				printf("%-22s", i ? "" : key);
				const char *a = json_string_value(json_object_get(x, "address"));
				const char *kind = json_string_value(json_object_get(x, "kind"));
				printf(" %s (%s)\n", a ? a : "?", kind ? kind : "?");
			}
		} else if (json_is_string(v)) {
			printf("%-22s %s\n", key, json_string_value(v));
		} else {
			char *t = json_dumps(v, JSON_ENCODE_ANY);
			printf("%-22s %s\n", key, t ? t : "?");
			free(t);
		}
	}
}

/* The running agent's control socket under state_dir; exits with usage
 * errors as the other commands do. */
static void socket_path(const char *state_dir, const char *cmd, char *path, size_t n)
{
	if (!state_dir)
		cli_fail("%s needs --state-dir DIR (the running agent's)", cmd);
	if (snprintf(path, n, "%s/%s", state_dir, STATUS_SOCKET) >= (int)n)
		cli_fail("--state-dir %s: path too long", state_dir);
}

int cli_pinned(int argc, char **argv)
{
	const char *state_dir = NULL, *what = NULL;
	for (int i = 2; i < argc; i++) {
		if (cli_is(argv[i], "--state-dir"))
			state_dir = cli_value(argc, argv, &i, "--state-dir");
		else if (!what && (!strcmp(argv[i], "list") || !strcmp(argv[i], "clear")))
			what = argv[i];
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cli_usage();
			return 0;
		} else
			cli_fail("usage: dlpgate pinned list|clear --state-dir DIR (unexpected: %s)", argv[i]);
	}
	if (!what)
		cli_fail("usage: dlpgate pinned list|clear --state-dir DIR");
	char path[PATH_MAX], err[PATH_MAX + 128], command[32];
	socket_path(state_dir, "pinned", path, sizeof path);
	snprintf(command, sizeof command, "pinned %s", what);
	char *answer = control_ask(path, command, err, sizeof err);
	if (!answer) {
		fprintf(stderr, "dlpgate: not running: no agent answers on %s\n", err);
		return STATUS_NOT_RUNNING;
	}
	fputs(answer, stdout);
	bool refused = strstr(answer, "\"error\"") != NULL;
	free(answer);
	return refused ? 1 : 0;
}

int cli_status(int argc, char **argv)
{
	const char *state_dir = NULL;
	bool as_json = false;
	for (int i = 2; i < argc; i++) {
		if (cli_is(argv[i], "--state-dir"))
			state_dir = cli_value(argc, argv, &i, "--state-dir");
		else if (!strcmp(argv[i], "--json"))
			as_json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cli_usage();
			return 0;
		} else
			cli_fail("unknown option for status: %s (see dlpgate --help)", argv[i]);
	}
	char path[PATH_MAX], err[PATH_MAX + 128];
	socket_path(state_dir, "status", path, sizeof path);
	char *answer = control_ask(path, "status", err, sizeof err);
	if (!answer) {
		fprintf(stderr, "dlpgate: not running: no agent answers on %s\n", err);
		return STATUS_NOT_RUNNING;
	}
	json_t *o = json_loads(answer, 0, NULL);
	if (!json_is_object(o)) {
		fprintf(stderr, "dlpgate: %s: the answer is not a status object\n", path);
		free(answer);
		json_decref(o);
		return 1;
	}
	if (as_json)
		fputs(answer, stdout);
	else
		print_text(o, "");
	free(answer);
	json_decref(o);
	return 0;
}
