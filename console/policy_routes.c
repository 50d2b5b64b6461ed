/*
 * policy_routes: which admin endpoint of policy distribution a request is
 * (console-api.md "Admin side"), from its method and path alone: pure, so
 * api.c can route on the loop thread and the unit tests can hold every
 * path and method to the table.
 */
#include "policy.h"

#include <string.h>

#define P "/api/v1/policies"

bool policy_api_is_version(const char *s, size_t n, int64_t *v)
{
	if (n == 0 || n > 16)
		return false;
	int64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (s[i] - '0');
	}
	*v = x;
	return x > 0;
}

bool policy_api_version_path(const char *path, int64_t *v, const char **rest)
{
	if (strncmp(path, P "/", sizeof P) != 0)
		return false;
	const char *s = path + sizeof P;
	size_t n = strcspn(s, "/");
	if (!policy_api_is_version(s, n, v))
		return false;
	*rest = s + n;
	return true;
}

policy_route_t policy_api_route(const char *method, const char *path, bool *wrong_method)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), put = !strcmp(method, "PUT");
	policy_route_t want = PR_NONE;
	bool ok = false;
	int64_t v;
	const char *rest;
	if (!strcmp(path, P))
		want = post ? PR_PUSH : PR_LIST, ok = get || post;
	else if (!strcmp(path, P "/diff"))
		want = PR_DIFF, ok = get;
	else if (!strcmp(path, P "/rollback"))
		want = PR_ROLLBACK, ok = post;
	else if (!strcmp(path, "/api/v1/rollouts"))
		want = PR_ROLLOUTS, ok = get;
	else if (!strcmp(path, "/api/v1/audit"))
		want = PR_AUDIT, ok = get;
	else if (!strncmp(path, "/api/v1/agents/", 15) && strlen(path) > 22 &&
		 !strcmp(path + strlen(path) - 7, "/labels"))
		want = PR_LABELS, ok = put;
	else if (policy_api_version_path(path, &v, &rest)) {
		if (!*rest)
			want = PR_SHOW, ok = get;
		else if (!strncmp(rest, "/files/", 7) && rest[7])
			want = PR_FILE, ok = get;
		else if (!strcmp(rest, "/activate"))
			want = PR_ACTIVATE, ok = post;
		else if (!strcmp(rest, "/shadow"))
			want = PR_SHADOW, ok = post;
		else if (!strcmp(rest, "/status"))
			want = PR_STATUS, ok = get;
		else if (!strcmp(rest, "/shadow-report"))
			want = PR_SHADOW_REPORT, ok = get;
	}
	*wrong_method = want != PR_NONE && !ok;
	return ok ? want : PR_NONE;
}

const char *policy_api_route_name(policy_route_t r)
{
	static const char *const names[] = {"none",	    "policy_push",   "policy_list",   "policy_show",
					    "policy_file",  "policy_diff",   "policy_activate", "policy_shadow",
					    "policy_rollback", "policy_status", "policy_shadow_report",
					    "rollouts",	    "agent_labels",  "audit"};
	return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "none";
}

size_t policy_api_body_limit(const char *method, const char *path)
{
	return !strcmp(method, "POST") && !strcmp(path, P) ? BUNDLE_MAX_DOCUMENT : 0;
}

