/*
 * policy_check: "does this bundle compile and pass its tests?", answered by
 * the engine's own code (lua_policy_load, lua_policy_test) on the bundle's
 * files extracted to a private temp dir, so the console refuses exactly
 * what an agent would refuse, before anything is stored.
 *
 * The bundle goes to TMP/b/ (TMP from mkdtemp, 0700): the engine's require
 * roots are the entry's folder and its parent, and TMP holds nothing but
 * b/, so a bundle can only reach its own files (and the shipped packs,
 * which policy_add_shipped_packs copies in beforehand so the bundle does
 * not depend on the agent's installed rules). Messages name bundle paths:
 * the temp prefix is stripped from everything the engine says.
 *
 * Shipped packs are found by scanning the bundle's Lua for literal
 * require names (an interim until the engine can list what a loaded
 * policy read): a dynamic require is not seen, and the compile check then
 * fails on it only if the agent would too.
 */
#include "policy.h"

#include "core/bytebuf.h"
#include "policy/lua_policy.h"

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- pure helpers ---- */

char *policy_strip(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	bytebuf_t b;
	bytebuf_init(&b, strlen(s) + 1);
	for (const char *p = s; *p;) {
		const char *q = n ? strstr(p, prefix) : NULL;
		if (!q) {
			bytebuf_append_str(&b, p);
			break;
		}
		bytebuf_append(&b, p, (size_t)(q - p));
		p = q + n;
	}
	if (!bytebuf_cstr(&b)) {
		bytebuf_free(&b);
		return NULL;
	}
	return b.data;
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

void policy_scan_requires(const char *text, size_t len, void (*fn)(void *ud, const char *name), void *ud)
{
	static const char kw[] = "require";
	const size_t kn = sizeof kw - 1;
	for (size_t i = 0; i + kn <= len; i++) {
		if (memcmp(text + i, kw, kn) != 0 || (i > 0 && ident_char(text[i - 1])) ||
		    (i + kn < len && ident_char(text[i + kn])))
			continue;
		size_t p = i + kn;
		/* require "x" | require("x") | pcall(require, "x") */
		while (p < len && (text[p] == ' ' || text[p] == '\t'))
			p++;
		if (p < len && (text[p] == '(' || text[p] == ','))
			p++;
		while (p < len && (text[p] == ' ' || text[p] == '\t'))
			p++;
		if (p >= len || (text[p] != '"' && text[p] != '\''))
			continue;
		char quote = text[p++];
		char name[128];
		size_t k = 0;
		while (p < len && text[p] != quote && k + 1 < sizeof name &&
		       (ident_char(text[p]) || text[p] == '.' || text[p] == '-'))
			name[k++] = text[p++];
		if (p < len && text[p] == quote && k > 0) {
			name[k] = '\0';
			fn(ud, name);
		}
	}
}

bool policy_parse_test_output(const char *text, const char *strip, int *passed, int *failed, json_t *failures)
{
	bool summary = false;
	*passed = *failed = 0;
	const char *p = text;
	while (*p) {
		size_t n = strcspn(p, "\n");
		char line[1024];
		snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
		int a, b;
		if (sscanf(line, "%d passed, %d failed", &a, &b) == 2) {
			*passed = a, *failed = b;
			summary = true;
		} else if (strncmp(line, "FAIL", 4) == 0 || strncmp(line, "error: ", 7) == 0) {
			const char *what = line + (line[0] == 'F' ? 4 : 7);
			while (*what == ' ')
				what++;
			char *clean = policy_strip(what, strip);
			if (clean && json_array_size(failures) < POLICY_MAX_FAILURES)
				json_array_append_new(failures, json_string(clean));
			free(clean);
		}
		p += n + (p[n] == '\n');
	}
	return summary;
}

/* ---- shipped packs ---- */

#define INSTALLED_RULES "/usr/share/dlpgate/rules"

static char shipped_dir[PATH_MAX];
static pthread_once_t shipped_once = PTHREAD_ONCE_INIT;

static void find_shipped(void)
{
	char exe[PATH_MAX], cand[PATH_MAX + 16];
	struct stat st;
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k > 0) {
		exe[k] = '\0';
		snprintf(cand, sizeof cand, "%s/../rules", dirname(exe));
		if (realpath(cand, shipped_dir) && stat(shipped_dir, &st) == 0 && S_ISDIR(st.st_mode))
			return;
	}
	if (stat(INSTALLED_RULES, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(shipped_dir, sizeof shipped_dir, "%s", INSTALLED_RULES);
	else
		shipped_dir[0] = '\0';
}

const char *policy_shipped_rules_dir(void)
{
	pthread_once(&shipped_once, find_shipped);
	return shipped_dir[0] ? shipped_dir : NULL;
}

typedef struct {
	bundle_t *b;
	const char *rules;
	bool ok;
	char *err;
	size_t errlen;
	int added;
} packs_t;

static bool read_small(const char *path, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	bytebuf_t buf;
	bytebuf_init(&buf, 0);
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && buf.len <= BUNDLE_MAX_CONTENT)
		bytebuf_append(&buf, chunk, n);
	bool ok = !ferror(f) && buf.len <= BUNDLE_MAX_CONTENT;
	fclose(f);
	if (!ok) {
		bytebuf_free(&buf);
		return false;
	}
	*data = buf.data;
	*len = buf.len;
	return true;
}

static void scan_file(packs_t *pk, const bundle_file_t *f);

static void on_require(void *ud, const char *name)
{
	packs_t *pk = ud;
	if (!pk->ok || strcmp(name, "dlp") == 0 || pk->added > BUNDLE_MAX_FILES)
		return;
	char rel[200];
	snprintf(rel, sizeof rel, "%s.lua", name);
	for (char *p = rel; p < rel + strlen(rel) - 4; p++)
		if (*p == '.')
			*p = '/';
	if (!bundle_path_ok(rel) || bundle_file(pk->b, rel))
		return;
	char path[PATH_MAX + 256];
	snprintf(path, sizeof path, "%s/%s", pk->rules, rel);
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return; /* not shipped: the compile check says whether it is missing */
	char *data = NULL;
	size_t len = 0;
	if (!read_small(path, &data, &len)) {
		snprintf(pk->err, pk->errlen, "cannot read the shipped pack %s", path);
		pk->ok = false;
		return;
	}
	bundle_role_t role = strncmp(rel, "tests/", 6) == 0 ? BUNDLE_ROLE_TEST : BUNDLE_ROLE_MODULE;
	pk->ok = bundle_add_file(pk->b, rel, role, data, len, pk->err, pk->errlen);
	free(data);
	pk->added++;
	const bundle_file_t *f = pk->ok ? bundle_file(pk->b, rel) : NULL;
	if (f)
		scan_file(pk, f);
}

static void scan_file(packs_t *pk, const bundle_file_t *f)
{
	size_t n = strlen(f->path);
	if (n > 4 && strcmp(f->path + n - 4, ".lua") == 0)
		policy_scan_requires((const char *)f->data, f->size, on_require, pk);
}

bool policy_add_shipped_packs(bundle_t *b, const char *rules_dir, char *err, size_t errlen)
{
	if (!rules_dir)
		return true;
	packs_t pk = {b, rules_dir, true, err, errlen, 0};
	/* by path, not index: bundle_add_file may move the array */
	size_t n = b->n_files;
	char **paths = calloc(n ? n : 1, sizeof *paths);
	if (!paths) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (size_t i = 0; i < n; i++)
		paths[i] = strdup(b->files[i].path);
	for (size_t i = 0; i < n && pk.ok; i++) {
		const bundle_file_t *f = paths[i] ? bundle_file(b, paths[i]) : NULL;
		if (f)
			scan_file(&pk, f);
	}
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return pk.ok;
}

/* ---- the check ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void fail(policy_check_t *out, const char *strip, const char *msg)
{
	char *clean = policy_strip(msg, strip);
	json_array_append_new(out->failures, json_string(clean ? clean : msg));
	free(clean);
}

bool policy_check_bundle(const bundle_t *b, policy_check_t *out)
{
	memset(out, 0, sizeof *out);
	out->failures = json_array();
	const char *tmp = getenv("TMPDIR");
	char root[PATH_MAX], dir[PATH_MAX + 8], err[1024];
	snprintf(root, sizeof root, "%s/dlpgate-check-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		snprintf(err, sizeof err, "cannot make a temp dir under %s: %s", tmp && *tmp ? tmp : "/tmp", strerror(errno));
		fail(out, "", err);
		return false;
	}
	snprintf(dir, sizeof dir, "%s/b", root);
	char strip[PATH_MAX + 16];
	snprintf(strip, sizeof strip, "%s/", dir);
	bool ok = false;
	if (!bundle_extract(b, dir, err, sizeof err)) {
		fail(out, strip, err);
		goto done;
	}
	char entry[PATH_MAX + 256];
	snprintf(entry, sizeof entry, "%s/%s", dir, b->entry);
	lua_policy_opts_t opts = {.n_workers = 1};
	err[0] = '\0';
	compiled_policy_t *p = lua_policy_load(entry, &opts, err, sizeof err);
	if (!p) {
		fail(out, strip, err[0] ? err : "the entry does not compile");
		goto done;
	}
	policy_unref(p);
	char **tests = calloc(b->n_files + 1, sizeof *tests);
	int nt = 0;
	for (size_t i = 0; tests && i < b->n_files; i++)
		if (b->files[i].role == BUNDLE_ROLE_TEST) {
			size_t len = strlen(dir) + strlen(b->files[i].path) + 2;
			tests[nt] = malloc(len);
			if (tests[nt])
				snprintf(tests[nt++], len, "%s/%s", dir, b->files[i].path);
		}
	if (!tests) {
		fail(out, strip, "out of memory");
		goto done;
	}
	ok = true;
	if (nt > 0) {
		char *text = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&text, &len);
		int failed = mem ? lua_policy_test(entry, tests, nt, mem) : -1;
		if (mem)
			fclose(mem);
		bool summary = text && policy_parse_test_output(text, strip, &out->passed, &out->failed, out->failures);
		if (failed != 0 || !summary || out->failed > 0) {
			ok = false;
			if (!json_array_size(out->failures))
				fail(out, strip, "the tests could not run");
		}
		free(text);
	}
	for (int i = 0; i < nt; i++)
		free(tests[i]);
	free(tests);
done:
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ok;
}
