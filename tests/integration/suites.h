#ifndef DLPGATE_INTEGRATION_SUITES_H
#define DLPGATE_INTEGRATION_SUITES_H

#include <check.h>
#include <stdbool.h>

Suite *harness_suite(void);
Suite *cli_suite(void);
Suite *proxy_suite(void);
Suite *tls_suite(void);
Suite *hostile_suite(void);
Suite *stream_suite(void);
Suite *policy_suite(void);
Suite *tools_suite(void);
Suite *sysext_suite(void);
Suite *transparent_suite(void);
Suite *report_suite(void);
Suite *console_suite(void);
Suite *console_poll_suite(void);
Suite *console_policy_suite(void);
Suite *appid_suite(void);
Suite *sync_suite(void);
Suite *fleet_suite(void);
Suite *docs_suite(void);
Suite *coach_suite(void);
Suite *websocket_suite(void);
Suite *ident_suite(void);
Suite *reqscan_suite(void);
Suite *console_ui_suite(void);
Suite *web_ui_suite(void);

#endif
