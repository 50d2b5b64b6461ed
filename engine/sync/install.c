/*
 * sync/install: see install.h.
 */
#include "sync/install.h"

#include "policy/lua_policy.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
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

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -r, without following links (FTW_PHYS): the folder is ours. */
static bool remove_tree(const char *dir)
{
	struct stat st;
	if (lstat(dir, &st) != 0)
		return errno == ENOENT;
	return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Lua names files by their full path; the bundle's own path reads better
 * and does not leak the state dir into the console's view. */
static void strip_prefix(char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (char *p; n && (p = strstr(text, prefix));)
		memmove(p, p + n, strlen(p + n) + 1);
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

/* The bundle's tests against its entry; false with the failures. */
static bool run_tests(const bundle_t *b, const char *dir, const char *entry, int *passed, char *err, size_t n)
{
	char **files = calloc(b->n_files ? b->n_files : 1, sizeof *files);
	int n_tests = 0;
	bool ok = files != NULL;
	for (size_t i = 0; ok && i < b->n_files; i++) {
		if (b->files[i].role != BUNDLE_ROLE_TEST)
			continue;
		if (asprintf(&files[n_tests], "%s/%s", dir, b->files[i].path) < 0)
			ok = false;
		else
			n_tests++;
	}
	if (ok && n_tests) {
		char *text = NULL;
		size_t len = 0;
		FILE *out = open_memstream(&text, &len);
		int failed = out ? lua_policy_test(entry, files, n_tests, out) : -1;
		if (out)
			fclose(out);
		if (failed != 0 && text) {
			/* the summary line, then the first failures */
			char prefix[PATH_MAX + 2];
			snprintf(prefix, sizeof prefix, "%s/", dir);
			strip_prefix(text, prefix);
			char fails[TEST_REPORT_MAX + 1] = "";
			for (char *line = text; line && *line;) {
				char *nl = strchr(line, '\n');
				if (nl)
					*nl = '\0';
				if (!strncmp(line, "FAIL", 4) || !strncmp(line, "error", 5))
					snprintf(fails + strlen(fails), sizeof fails - strlen(fails), "%s%s",
						 fails[0] ? "; " : "", line);
				line = nl ? nl + 1 : NULL;
			}
			snprintf(err, n, "tests: %d failed: %s", failed < 0 ? 0 : failed, fails);
			ok = false;
		} else if (failed != 0) {
			snprintf(err, n, "tests: cannot run them");
			ok = false;
		} else {
			const char *sum = text ? strstr(text, " passed,") : NULL;
			while (sum && sum > text && sum[-1] >= '0' && sum[-1] <= '9')
				sum--;
			*passed = sum ? atoi(sum) : 0;
		}
		free(text);
	} else if (!ok) {
		snprintf(err, n, "out of memory");
	}
	for (int i = 0; i < n_tests; i++)
		free(files[i]);
	free(files);
	return ok;
}

bool install_bundle(const install_opts_t *o, const void *doc, size_t len, install_result_t *r, int64_t *version,
		    char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	*version = 0;
	char why[900] = "";
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
	char dir[PATH_MAX], tmp[PATH_MAX], entry[PATH_MAX + BUNDLE_MAX_PATH + 2];
	snprintf(dir, sizeof dir, "%s/policy/v%" PRId64, o->state_dir, b->version);
	snprintf(tmp, sizeof tmp, "%s/policy/.v%" PRId64 ".tmp", o->state_dir, b->version);
	if (!remove_tree(tmp)) {
		snprintf(err, errlen, "extract: %s: cannot remove a leftover: %s", tmp, strerror(errno));
		goto refuse;
	}
	if (!bundle_extract(b, tmp, why, sizeof why)) {
		remove_tree(tmp);
		snprintf(err, errlen, "extract: %s", why);
		goto refuse;
	}
	/* A folder of the same version (an earlier try, a restart) is
	 * replaced: what is loaded is always what was just verified. */
	if (!remove_tree(dir) || rename(tmp, dir) != 0) {
		snprintf(err, errlen, "extract: %s: %s", dir, strerror(errno));
		remove_tree(tmp);
		goto refuse;
	}
	snprintf(entry, sizeof entry, "%s/%s", dir, b->entry);
	lua_policy_opts_t lo = {.n_workers = o->n_workers};
	r->policy = lua_policy_load(entry, &lo, why, sizeof why);
	if (!r->policy) {
		char prefix[PATH_MAX + 2];
		snprintf(prefix, sizeof prefix, "%s/", dir);
		strip_prefix(why, prefix);
		snprintf(err, errlen, "compile: %s", why);
		goto refuse;
	}
	if (!run_tests(b, dir, entry, &r->tests_passed, err, errlen))
		goto refuse;
	name_policy(r->policy, b->version);
	r->bundle = b;
	return true;
refuse:
	if (r->policy)
		policy_unref(r->policy);
	r->policy = NULL;
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
		remove_tree(path);
	}
	closedir(d);
}
