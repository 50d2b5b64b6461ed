/*
 * Integration tests: dlpgate as a process between real clients (curl,
 * openssl, the harness client) and real upstreams (nginx, the harness
 * upstream). TESTS=suite1,suite2 runs only those suites.
 */
#include "suites.h"

#include <stdlib.h>
#include <string.h>

static bool wanted(const char *name)
{
	const char *only = getenv("TESTS");
	if (!only || !*only)
		return true;
	size_t n = strlen(name);
	for (const char *p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

int main(void)
{
	Suite *(*const all[])(void) = {
		harness_suite,
		cli_suite,
		proxy_suite,
		tls_suite,
		hostile_suite,
		stream_suite,
		policy_suite,
		tools_suite,
		sysext_suite,
		transparent_suite,
		report_suite,
		console_suite,
		console_poll_suite,
		console_policy_suite,
		appid_suite,
		sync_suite,
		fleet_suite,
		docs_suite,
		coach_suite,
		websocket_suite,
		ident_suite,
		reqscan_suite,
		console_ui_suite,
		web_ui_suite,
	};
	const char *names[] = {
		"harness",
		"cli",
		"proxy",
		"tls",
		"hostile",
		"stream",
		"policy",
		"tools",
		"sysext",
		"transparent",
		"report",
		"console",
		"console_poll",
		"console_policy",
		"appid",
		"sync",
		"fleet",
		"docs",
		"coach",
		"websocket",
		"ident",
		"reqscan",
		"console_ui",
		"web_ui",
	};
	SRunner *sr = NULL;
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (!wanted(names[i]))
			continue;
		if (!sr)
			sr = srunner_create(all[i]());
		else
			srunner_add_suite(sr, all[i]());
	}
	if (!sr)
		return EXIT_FAILURE;
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
