/*
 * `dlpgate spool status --state-dir DIR`: what this machine's agent has not
 * yet delivered to the console, for an admin at the machine (the same
 * numbers reach the console in the agent's status). Reads the spool without
 * taking it: the agent may be running.
 */
#include "cli/cli.h"
#include "report/spool.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cli_spool(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[2], "status"))
		cli_fail("usage: dlpgate spool status --state-dir DIR");
	const char *state_dir = cli_state_dir_only(argc, argv, 3, "spool status");
	char path[4200], err[600];
	snprintf(path, sizeof path, "%s/agent.json", state_dir);
	json_t *ident = json_load_file(path, 0, NULL);
	const char *console = json_string_value(json_object_get(ident, "console"));
	const char *agent = json_string_value(json_object_get(ident, "agent_id"));
	printf("agent    %s\n", agent ? agent : "- (never started)");
	printf("console  %s (%s)\n", console ? console : "-",
	       json_object_get(ident, "token") ? "enrolled" : "not enrolled");
	json_decref(ident);
	snprintf(path, sizeof path, "%s/spool", state_dir);
	spool_stats_t st;
	if (access(path, F_OK) != 0)
		cli_fail("%s: no spool (the agent has not run with --console)", path);
	if (!spool_peek(path, &st, err, sizeof err))
		cli_fail("%s", err);
	printf("spool    %" PRIu64 " events waiting, %" PRIu64 " bytes in %" PRIu64 " segments (%s)\n", st.depth,
	       st.bytes, st.segments, path);
	return 0;
}
