/*
 * The policy author's commands: check, test, scan, import gitleaks; and
 * `policy status`, which policy an agent enforces (sync/sync.h).
 */
#include "cli/cli.h"
#include "policy/gitleaks.h"
#include "policy/lua_policy.h"
#include "sync/sync.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int cli_check(int argc, char **argv)
{
	if (argc < 3)
		cli_fail("usage: dlpgate check POLICY_OR_PACK...");
	int problems = 0;
	for (int i = 2; i < argc; i++) {
		cli_check_readable("check", argv[i]);
		problems += lua_policy_check(argv[i], stdout);
	}
	return problems ? 1 : 0;
}

int cli_test(int argc, char **argv)
{
	if (argc < 4)
		cli_fail("usage: dlpgate test POLICY TESTFILE...");
	for (int i = 2; i < argc; i++)
		cli_check_readable("test", argv[i]);
	int failed = lua_policy_test(argv[2], argv + 3, argc - 3, stdout, NULL);
	return failed == 0 ? 0 : 1;
}

int cli_scan(int argc, char **argv)
{
	lua_scan_opts_t o = {0};
	int first = 2;
	for (; argc > first && argv[first][0] == '-' && argv[first][1] == '-'; first++) {
		if (!strcmp(argv[first], "--no-prefilter"))
			o.no_prefilter = true;
		else if (!strcmp(argv[first], "--profile"))
			o.profile = true;
		else
			cli_fail("scan: unknown option %s (options: --no-prefilter, --profile)", argv[first]);
	}
	if (argc < first + 2)
		cli_fail("usage: dlpgate scan [--no-prefilter] [--profile] POLICY_OR_PACK FILE... (- for stdin)");
	cli_check_readable("scan", argv[first]);
	return lua_policy_scan(argv[first], argv + first + 1, argc - first - 1, &o, stdout);
}

/* TOML is read by python3's standard tomllib (3.11+): one small, well-tested
 * parser instead of a second one of ours. */
static const char toml_to_json[] = "import json, sys, tomllib\n"
				   "with open(sys.argv[1], 'rb') as f:\n"
				   "    json.dump(tomllib.load(f), sys.stdout)\n";

static json_t *read_toml(const char *path)
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		cli_fail("cannot run python3: %s", strerror(errno));
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		execlp("python3", "python3", "-c", toml_to_json, path, (char *)NULL);
		fprintf(stderr, "dlpgate: import needs python3 (3.11 or later, for tomllib): %s\n", strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	FILE *f = fdopen(pipefd[0], "r");
	json_error_t je;
	json_t *j = f ? json_loadf(f, 0, &je) : NULL;
	if (f)
		fclose(f);
	int status = 0;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		json_decref(j);
		cli_fail("%s: not readable as TOML (python3's message is above)", path);
	}
	if (!j)
		cli_fail("%s: cannot read the converted TOML: %s", path, je.text);
	return j;
}

int cli_import(int argc, char **argv)
{
	if (argc != 4 || strcmp(argv[2], "gitleaks"))
		cli_fail("usage: dlpgate import gitleaks CONFIG.toml > pack.lua");
	cli_check_readable("import gitleaks", argv[3]);
	json_t *cfg = read_toml(argv[3]);
	char err[512];
	gitleaks_stats_t st;
	int rc = gitleaks_to_lua(cfg, argv[3], stdout, stderr, &st, err, sizeof err);
	json_decref(cfg);
	if (rc < 0)
		cli_fail("%s", err);
	fflush(stdout);
	if (st.skipped)
		fprintf(stderr, "dlpgate: %d of %d rules skipped (named above and in the pack)\n", st.skipped,
			st.written + st.skipped);
	if (st.unsupported)
		fprintf(stderr, "dlpgate: %d constructs not imported (named above and in the pack)\n", st.unsupported);
	fprintf(stderr, "dlpgate: %d detectors written; check them with: dlpgate check pack.lua\n", st.written);
	return 0;
}

/* Read from the file the agent keeps, so it answers whether or not the
 * agent runs (and without its control socket's permissions). */
int cli_policy(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[2], "status"))
		cli_fail("usage: dlpgate policy status --state-dir DIR");
	const char *state_dir = cli_state_dir_only(argc, argv, 3, "policy status");
	sync_status_t s;
	char err[900];
	if (!sync_status_read(state_dir, &s, err, sizeof err)) {
		fprintf(stderr, "dlpgate: %s\n", err);
		return 1;
	}
	json_t *o = report_policy_json(&s, false);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		cli_fail("out of memory");
	printf("%s\n", text);
	free(text);
	return 0;
}
