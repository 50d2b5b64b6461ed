/*
 * The console's pure policy helpers: the admin routes of console-api.md
 * (every path with its method, the wrong methods, look-alikes that are not
 * routes), reading `dlpgate test` reports into failure lists, and shadow
 * events at ingest. The integration suite console_policy drives the same
 * code through the CLI and HTTP.
 */
#include "../../console/ingest.h"
#include "../../console/policy.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(routes)
{
	static const struct {
		const char *method, *path;
		policy_route_t want;
	} ok[] = {
		{"POST", "/api/v1/policies", PR_PUSH},
		{"GET", "/api/v1/policies", PR_LIST},
		{"GET", "/api/v1/policies/12", PR_SHOW},
		{"GET", "/api/v1/policies/12/files/tests/cards.lua", PR_FILE},
		{"GET", "/api/v1/policies/diff", PR_DIFF},
		{"POST", "/api/v1/policies/3/activate", PR_ACTIVATE},
		{"POST", "/api/v1/policies/3/shadow", PR_SHADOW},
		{"POST", "/api/v1/policies/rollback", PR_ROLLBACK},
		{"GET", "/api/v1/policies/3/status", PR_STATUS},
		{"GET", "/api/v1/policies/3/shadow-report", PR_SHADOW_REPORT},
		{"GET", "/api/v1/rollouts", PR_ROLLOUTS},
		{"PUT", "/api/v1/agents/c0000000-0000-4000-8000-000000000001/labels", PR_LABELS},
		{"GET", "/api/v1/audit", PR_AUDIT},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		bool wrong = true;
		ck_assert_msg(policy_api_route(ok[i].method, ok[i].path, &wrong) == ok[i].want && !wrong, "%s %s",
			      ok[i].method, ok[i].path);
		ck_assert_str_ne(policy_api_route_name(ok[i].want), "none");
	}
	/* the right path, the wrong method: 405, not 404 */
	static const char *const wrong_method[][2] = {{"DELETE", "/api/v1/policies"},	   {"GET", "/api/v1/policies/3/activate"},
						      {"GET", "/api/v1/policies/rollback"}, {"POST", "/api/v1/policies/3"},
						      {"GET", "/api/v1/agents/x/labels"},   {"POST", "/api/v1/audit"}};
	for (size_t i = 0; i < sizeof wrong_method / sizeof wrong_method[0]; i++) {
		bool wrong = false;
		ck_assert_int_eq(policy_api_route(wrong_method[i][0], wrong_method[i][1], &wrong), PR_NONE);
		ck_assert_msg(wrong, "%s %s", wrong_method[i][0], wrong_method[i][1]);
	}
	/* not routes at all: versions that are not positive integers, tails */
	static const char *const none[] = {"/api/v1/policies/0",	  "/api/v1/policies/-1",   "/api/v1/policies/1x",
					   "/api/v1/policies/12345678901234567", "/api/v1/policies/3/files/",
					   "/api/v1/policies/3/activate/x", "/api/v1/policies//status",
					   "/api/v1/policy",		  "/api/v1/policiesx"};
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
		bool wrong = true;
		ck_assert_msg(policy_api_route("GET", none[i], &wrong) == PR_NONE && !wrong, "%s", none[i]);
	}
	/* only a pushed document may be large */
	ck_assert_uint_eq(policy_api_body_limit("POST", "/api/v1/policies"), BUNDLE_MAX_DOCUMENT);
	ck_assert_uint_eq(policy_api_body_limit("POST", "/api/v1/policies/3/activate"), 0);
	int64_t v;
	const char *rest;
	ck_assert(policy_api_version_path("/api/v1/policies/42/status", &v, &rest) && v == 42 && !strcmp(rest, "/status"));
}
END_TEST

START_TEST(test_reports)
{
	json_t *f = json_array();
	const char report[] = "ok   tests/a.lua #1 card\n"
			      "FAIL tests/a.lua #2 plain: expected pass, got block (rule policy.lua:7: card)\n"
			      "FAIL tests/b.lua: a test file returns a list of cases\n"
			      "1 passed, 2 failed (policy.lua)";
	ck_assert(policy_parse_test_output(report, f));
	ck_assert_int_eq(json_array_size(f), 2);
	ck_assert_str_eq(json_string_value(json_array_get(f, 0)),
			 "tests/a.lua #2 plain: expected pass, got block (rule policy.lua:7: card)");
	ck_assert_str_eq(json_string_value(json_array_get(f, 1)), "tests/b.lua: a test file returns a list of cases");
	json_array_clear(f);
	json_array_clear(f);
	ck_assert(!policy_parse_test_output("ok   x #1\n2 passed, 0 failed (p)\n", f));
	ck_assert_int_eq(json_array_size(f), 0);
	/* a report of thousands of failures keeps a bounded list */
	size_t n = 5000, len = 0;
	char *big = malloc(n * 20 + 1);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(big + len, "FAIL t #%zu: x\n", i);
	ck_assert(policy_parse_test_output(big, f));
	ck_assert_int_eq(json_array_size(f), POLICY_MAX_FAILURES);
	free(big);
	json_decref(f);
}
END_TEST

#define SHADOW_HEAD                                                                                                  \
	"{\"event\":\"shadow\",\"id\":\"01900000-0000-7000-8000-000000000001\","                                      \
	"\"agent_id\":\"c0000000-0000-4000-8000-000000000001\",\"time\":\"2026-11-18T10:00:00.000Z\","                 \
	"\"policy_version\":\"v3\",\"stage\":\"request\",\"verdict\":\"block\",\"monitor\":false,\"rule\":\"p.lua:4\"," \
	"\"reason\":\"r\",\"detectors\":{},\"flow\":{\"id\":1,\"source\":\"explicit\",\"host\":\"h\",\"dst_port\":443}"

START_TEST(shadow_events)
{
	const char *agent = "c0000000-0000-4000-8000-000000000001";
	char err[256];
	ingest_batch_t b;
	const char good[] = SHADOW_HEAD ",\"active_verdict\":\"pass\",\"active_policy_version\":\"v2\"}\n";
	ck_assert_msg(ingest_parse(good, strlen(good), false, agent, &b, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(b.ev[0].kind, "shadow");
	ck_assert_str_eq(b.ev[0].policy_version, "v3");
	ck_assert_str_eq(b.ev[0].rule, "p.lua:4");
	ck_assert_str_eq(b.ev[0].active_verdict, "pass");
	ingest_free(&b);
	static const char *const bad[] = {
		SHADOW_HEAD ",\"active_policy_version\":\"v2\"}",			      /* no active verdict */
		SHADOW_HEAD ",\"active_verdict\":\"maybe\",\"active_policy_version\":\"v2\"}", /* not a verdict */
		SHADOW_HEAD ",\"active_verdict\":\"pass\"}",				      /* no active version */
		SHADOW_HEAD ",\"active_verdict\":\"pass\",\"active_policy_version\":\"v2\",\"x\":1}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(ingest_parse(bad[i], strlen(bad[i]), false, agent, &b, err, sizeof err) == 400, "case %zu", i);
		ingest_free(&b);
	}
	/* a verdict event may not carry the shadow's fields */
	char verdict[1024];
	snprintf(verdict, sizeof verdict, "{\"event\":\"verdict\"%s", good + strlen("{\"event\":\"shadow\""));
	ck_assert_int_eq(ingest_parse(verdict, strlen(verdict), false, agent, &b, err, sizeof err), 400);
	ck_assert_msg(strstr(err, "unknown field \"active_verdict\""), "%s", err);
	ingest_free(&b);
}
END_TEST

Suite *console_policy_unit_suite(void)
{
	Suite *s = suite_create("console_policy");
	TCase *t = tcase_create("console_policy");
	tcase_add_test(t, routes);
	tcase_add_test(t, test_reports);
	tcase_add_test(t, shadow_events);
	suite_add_tcase(s, t);
	return s;
}
