/*
 * sync/install: see install.h.
 */
#include "sync/install.h"

#include "sync/bundle_policy.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEST_REPORT_MAX 400 /* of the tests' output, in the error */

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The compiled policy carries the bundle's name, also in the system
 * extension's table (which names the version it came from). */
static void name_policy(compiled_policy_t *p, int64_t version)
{
	p->version = (uint64_t)version;
	snprintf(p->version_text, sizeof p->version_text, "v%" PRId64, version);
	if (!p->static_bypass_json)
		return;
	json_t *o = json_loads(p->static_bypass_json, 0, NULL);
	if (!o)
		return;
	json_object_set_new(o, "policy_version", json_string(p->version_text));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s) {
		free(p->static_bypass_json);
		p->static_bypass_json = s;
	}
}

/* The summary, then the failing cases, as one line for status. */
static void tests_failed(const char *summary, char *output, char *err, size_t n)
{
	char fails[TEST_REPORT_MAX + 1] = "";
	for (char *line = output; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, "FAIL", 4) || !strncmp(line, "error", 5))
			snprintf(fails + strlen(fails), sizeof fails - strlen(fails), "%s%s", fails[0] ? "; " : "", line);
		line = nl ? nl + 1 : NULL;
	}
	snprintf(err, n, "tests: %.200s: %s", summary, fails);
}

bool install_bundle(const install_opts_t *o, const void *doc, size_t len, install_result_t *r, int64_t *version,
		    char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	*version = 0;
	char why[900] = "", dir[PATH_MAX] = "";
	bundle_t *b = bundle_parse(doc, len, why, sizeof why);
	if (!b) {
		snprintf(err, errlen, "bundle: %s", why);
		return false;
	}
	*version = b->version;
	if (!bundle_verify(b, o->keys, why, sizeof why)) {
		snprintf(err, errlen, "signature: %s", why);
		goto refuse;
	}
	if (o->check_runnable && !bundle_check_runnable(b, o->running_version, wall_ms(), why, sizeof why)) {
		snprintf(err, errlen, "not runnable: %s", why);
		goto refuse;
	}
	/* Written afresh from the verified document every time (a folder of
	 * the same version from an earlier try or run is replaced), so what
	 * is compiled is always what was just verified. */
	snprintf(dir, sizeof dir, "%s/policy/v%" PRId64, o->state_dir, b->version);
	bundle_policy_remove_dir(dir);
	bundle_tests_t tests;
	r->policy = bundle_policy_load(b, dir, o->n_workers, &tests, why, sizeof why);
	if (!r->policy) {
		if (tests.failed)
			tests_failed(why, tests.output, err, errlen);
		else
			snprintf(err, errlen, "%s: %s", strstr(why, ".lua:") || tests.output ? "compile" : "extract", why);
		bundle_tests_free(&tests);
		goto refuse;
	}
	r->tests_passed = tests.passed;
	bundle_tests_free(&tests);
	name_policy(r->policy, b->version);
	r->bundle = b;
	return true;
refuse:
	if (r->policy)
		policy_unref(r->policy);
	r->policy = NULL;
	if (dir[0])
		bundle_policy_remove_dir(dir); /* a refused bundle leaves nothing on disk */
	bundle_free(b);
	return false;
}

void install_result_free(install_result_t *r)
{
	if (r->policy)
		policy_unref(r->policy);
	bundle_free(r->bundle);
	memset(r, 0, sizeof *r);
}

void install_prune(const char *state_dir, int64_t keep_a, int64_t keep_b)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/policy", state_dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		if (de->d_name[0] != 'v')
			continue;
		long long v = strtoll(de->d_name + 1, &end, 10);
		if (*end || v <= 0 || v == keep_a || v == keep_b)
			continue;
		char path[PATH_MAX + 300];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		bundle_policy_remove_dir(path);
	}
	closedir(d);
}
