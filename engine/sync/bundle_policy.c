/*
 * bundle_policy: compile and test a bundle with the engine's code (see
 * bundle_policy.h).
 */
#define _XOPEN_SOURCE 700
#include "sync/bundle_policy.h"

#include "policy/lua_policy.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every occurrence of prefix removed from s, in place: messages name files
 * as the bundle does, never by where this machine unpacked them. The
 * policy's own chunks are named relative to its folder already (sandbox.h);
 * what still holds the prefix is the test files, which the tests load by
 * the paths run_tests gives them: their labels, and their chunk names in
 * Lua's errors, cut to "..." and their last 56 bytes when long, so a tail
 * of prefix after "..." goes too. */
static void strip_prefix(char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	for (char *p; n && (p = strstr(s, prefix)) != NULL;)
		memmove(p, p + n, strlen(p + n) + 1);
	for (char *p = s; (p = strstr(p, "...")) != NULL;) {
		char *tail = p + 3;
		size_t cut = 0;
		/* the longest tail of prefix that follows, as long as it holds the
		 * whole "/bundle/" (anything shorter could be other text) */
		for (size_t j = 1; j + 8 <= n && !cut; j++)
			if (!strncmp(tail, prefix + j, n - j))
				cut = n - j;
		if (cut)
			memmove(p, tail + cut, strlen(tail + cut) + 1);
		else
			p = tail;
	}
}

static char *run_tests(const bundle_t *b, const char *root, const char *entry, bundle_tests_t *t)
{
	char **files = calloc(b->n_files + 1, sizeof *files);
	int n = 0;
	for (size_t i = 0; files && i < b->n_files; i++)
		if (b->files[i].role == BUNDLE_ROLE_TEST &&
		    asprintf(&files[n], "%s/%s", root, b->files[i].path) > 0)
			n++;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (f && n > 0) {
		t->failed = lua_policy_test(entry, files, n, f, &t->passed);
		if (t->failed < 0)
			t->failed = n; /* the policy did not even load for the tests */
	}
	if (f)
		fclose(f);
	for (int i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return out;
}

compiled_policy_t *bundle_policy_load(const bundle_t *b, const char *dir, unsigned n_workers, bundle_tests_t *t,
				      char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	char root[4096], entry[4096 + 256], prefix[4096 + 2];
	snprintf(root, sizeof root, "%s/bundle", dir);
	snprintf(entry, sizeof entry, "%s/%s", root, b->entry);
	snprintf(prefix, sizeof prefix, "%s/", root);
	if (mkdir(dir, 0700) != 0) {
		snprintf(err, errlen, "%s: %m", dir);
		return NULL;
	}
	if (!bundle_extract(b, root, err, errlen))
		return NULL;
	lua_policy_opts_t o = {.n_workers = n_workers ? n_workers : 1};
	compiled_policy_t *p = lua_policy_load(entry, &o, err, errlen);
	if (!p) {
		strip_prefix(err, prefix);
		return NULL;
	}
	snprintf(p->version_text, sizeof p->version_text, "v%lld", (long long)b->version);
	t->output = run_tests(b, root, entry, t);
	if (!t->output)
		t->output = strdup("");
	if (t->output)
		strip_prefix(t->output, prefix);
	if (t->failed) {
		snprintf(err, errlen, "bundle v%lld: %d of %d policy tests failed", (long long)b->version, t->failed,
			 t->failed + t->passed);
		policy_unref(p);
		return NULL;
	}
	return p;
}

void bundle_tests_free(bundle_tests_t *t)
{
	free(t->output);
	memset(t, 0, sizeof *t);
}

typedef struct {
	bundle_t *b;
	const char *shipped;
	int added;
	bool failed;
	char *err;
	size_t errlen;
} include_ctx_t;

static void include_one(void *ud, const char *path, const char *data, size_t len)
{
	include_ctx_t *c = ud;
	size_t n = strlen(c->shipped);
	if (c->failed || strncmp(path, c->shipped, n) != 0 || path[n] != '/')
		return;
	const char *rel = path + n + 1;
	if (bundle_file(c->b, rel))
		return; /* the bundle's own copy is what runs */
	if (!bundle_add_file(c->b, rel, BUNDLE_ROLE_MODULE, data, len, c->err, c->errlen))
		c->failed = true;
	else
		c->added++;
}

int bundle_policy_include_shipped(bundle_t *b, compiled_policy_t *p, char *err, size_t errlen)
{
	const char *shipped = lua_policy_shipped_rules();
	if (!shipped)
		return 0;
	include_ctx_t c = {b, shipped, 0, false, err, errlen};
	lua_policy_sources(p, include_one, &c);
	return c.failed ? -1 : c.added;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void bundle_policy_remove_dir(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
