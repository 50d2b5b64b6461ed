/* The unit suites; each file under tests/unit/ contributes one. */
#ifndef DLPGATE_TEST_SUITES_H
#define DLPGATE_TEST_SUITES_H

#include <check.h>

Suite *clienthello_suite(void);
Suite *mint_suite(void);
Suite *codec_suite(void);
Suite *core_suite(void);
Suite *detect_suite(void);
Suite *views_suite(void);
Suite *body_suite(void);
Suite *sandbox_suite(void);
Suite *frame_suite(void);
Suite *spool_suite(void);
Suite *bundle_suite(void);
Suite *policy_sync_suite(void);

Suite *console_parse_suite(void);
Suite *console_policy_unit_suite(void);

Suite *sysext_relay_suite(void);
Suite *sysext_watchdog_suite(void);
Suite *sysext_engine_reply_suite(void);
/* Where a unit test puts files: $TMPDIR (scripts/run-tests.sh points it
 * into the build dir and removes it afterwards), else /tmp. */
const char *unit_tmp_base(void);

#endif
