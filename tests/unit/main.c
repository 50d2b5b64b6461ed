/* Unit tests: pure modules, no network. Check's summary line ends the run. */
#include "suites.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *unit_tmp_base(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

/* The suites provoke the engine's warnings on purpose (policy errors,
 * a full or corrupt spool); with UNIT_ENGINE_LOG=FILE (run-tests.sh sets
 * it) those lines go there, so the run's own output shows only Check's,
 * and a real warning elsewhere stands out. Check writes to stdout. */
static void divert_engine_log(void)
{
	const char *path = getenv("UNIT_ENGINE_LOG");
	if (!path || !*path)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
		perror(path);
		exit(EXIT_FAILURE);
	}
	close(fd);
	printf("(the warnings these suites provoke on purpose are in %s)\n", path);
	fflush(stdout);
}

int main(void)
{
	divert_engine_log();
	SRunner *sr = srunner_create(core_suite());
	srunner_add_suite(sr, clienthello_suite());
	srunner_add_suite(sr, mint_suite());
	srunner_add_suite(sr, codec_suite());
	srunner_add_suite(sr, detect_suite());
	srunner_add_suite(sr, ident_suite());
	srunner_add_suite(sr, edm_suite());
	srunner_add_suite(sr, views_suite());
	srunner_add_suite(sr, body_suite());
	srunner_add_suite(sr, doc_suite());
	srunner_add_suite(sr, tailscan_suite());
	srunner_add_suite(sr, sandbox_suite());
	srunner_add_suite(sr, frame_suite());
	srunner_add_suite(sr, ws_suite());
	srunner_add_suite(sr, spool_suite());
	srunner_add_suite(sr, bundle_suite());
	srunner_add_suite(sr, policy_sync_suite());
	srunner_add_suite(sr, console_parse_suite());
	srunner_add_suite(sr, console_policy_unit_suite());
	srunner_add_suite(sr, sysext_relay_suite());
	srunner_add_suite(sr, sysext_watchdog_suite());
	srunner_add_suite(sr, sysext_engine_reply_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
