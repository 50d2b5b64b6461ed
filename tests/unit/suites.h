/* The unit suites; each file under tests/unit/ contributes one. */
#ifndef DLPGATE_TEST_SUITES_H
#define DLPGATE_TEST_SUITES_H

#include <check.h>

Suite *clienthello_suite(void);
Suite *mint_suite(void);
Suite *codec_suite(void);
Suite *core_suite(void);
Suite *detect_suite(void);
Suite *ident_suite(void);
Suite *edm_suite(void);
Suite *views_suite(void);
Suite *body_suite(void);
Suite *doc_suite(void);
Suite *tailscan_suite(void);
Suite *sandbox_suite(void);
Suite *frame_suite(void);
Suite *ws_suite(void);
Suite *spool_suite(void);
Suite *bundle_suite(void);
Suite *policy_sync_suite(void);

Suite *console_parse_suite(void);
Suite *console_policy_unit_suite(void);

Suite *sysext_relay_suite(void);
Suite *sysext_watchdog_suite(void);
Suite *sysext_engine_reply_suite(void);
/* in, deflated (level 9) with zlib's window bits wbits (16+ = gzip,
 * negative = raw) into out; test_body.c. */
#include <stddef.h>
#include <stdint.h>
size_t zcompress(const void *in, size_t n, uint8_t *out, size_t cap, int wbits);

/* Where a unit test puts files: $TMPDIR (scripts/run-tests.sh points it
 * into the build dir and removes it afterwards), else /tmp. */
const char *unit_tmp_base(void);

#endif
