/* Unit tests: pure modules, no network. Check's summary line ends the run. */
#include "suites.h"

#include <stdlib.h>

int main(void)
{
	SRunner *sr = srunner_create(core_suite());
	srunner_add_suite(sr, clienthello_suite());
	srunner_add_suite(sr, mint_suite());
	srunner_add_suite(sr, codec_suite());
	srunner_add_suite(sr, detect_suite());
	srunner_add_suite(sr, body_suite());
	srunner_add_suite(sr, sandbox_suite());
	srunner_add_suite(sr, frame_suite());
	srunner_add_suite(sr, spool_suite());
	srunner_add_suite(sr, console_parse_suite());
	srunner_add_suite(sr, sysext_relay_suite());
	srunner_add_suite(sr, sysext_watchdog_suite());
	srunner_add_suite(sr, sysext_engine_reply_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
