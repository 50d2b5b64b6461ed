/*
 * Policy bundles (sync/bundle.h) on real files and real Ed25519 keys: a
 * directory becomes a signed document that parses, verifies and extracts
 * to the same bytes; each way a document can be wrong (schemas/bundle.md,
 * "Limits and refusals") is refused with a message naming the problem.
 */
#define _XOPEN_SOURCE 700
#include "suites.h"
#include "sync/bundle.h"
#include "sync/bundle_policy.h"

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[300], key[400], key2[400];
static bundle_keyset_t trusted;
static char err[512];

static void put(const char *rel, const char *text)
{
	char p[700];
	snprintf(p, sizeof p, "%s/src/%s", dir, rel);
	for (char *s = p + strlen(dir) + 1; (s = strchr(s + 1, '/'));) {
		*s = '\0';
		mkdir(p, 0700);
		*s = '/';
	}
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "%s/dlpgate-bundle-XXXXXX", unit_tmp_base());
	ck_assert(mkdtemp(dir));
	snprintf(key, sizeof key, "%s/signing.key", dir);
	snprintf(key2, sizeof key2, "%s/next.key", dir);
	bundle_key_t pub;
	ck_assert_msg(bundle_key_generate(key, &pub, err, sizeof err), "%s", err);
	memset(&trusted, 0, sizeof trusted);
	bundle_keys_add(&trusted, &pub);
	put("policy.lua", "local dlp = require \"dlp\"\nreturn {}\n");
	put("packs/cards.lua", "return {}\n");
	put("tests/cards.lua", "return {}\n");
	put("README.txt", "notes\n");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void teardown(void)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *src_dir(void)
{
	static char p[400];
	snprintf(p, sizeof p, "%s/src", dir);
	return p;
}

/* The source directory signed as version v. */
static char *signed_doc(int64_t v, size_t *len)
{
	bundle_t *b = bundle_from_dir(src_dir(), NULL, err, sizeof err);
	ck_assert_msg(b, "%s", err);
	ck_assert_msg(bundle_sign(b, v, key, err, sizeof err), "%s", err);
	char *doc = bundle_serialize(b, len);
	ck_assert_ptr_nonnull(doc);
	bundle_free(b);
	return doc;
}

/* Parses, expecting a refusal whose message contains want. */
static void refused(const char *doc, const char *want)
{
	bundle_t *b = bundle_parse(doc, strlen(doc), err, sizeof err);
	ck_assert_msg(!b, "accepted a bundle that should fail with \"%s\"", want);
	ck_assert_msg(strstr(err, want), "message \"%s\" does not say \"%s\"", err, want);
}

/* The document with its JSON changed by fn, dumped back. */
static char *edited(const char *doc, void (*fn)(json_t *d))
{
	json_t *d = json_loads(doc, 0, NULL);
	ck_assert_ptr_nonnull(d);
	fn(d);
	char *out = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	return out;
}

/* The manifest member changed (parse does not check the signature). */
static json_t *manifest_of(json_t *d)
{
	return json_loads(json_string_value(json_object_get(d, "manifest")), 0, NULL);
}

static void manifest_set(json_t *d, json_t *m)
{
	char *t = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	json_object_set_new(d, "manifest", json_string(t));
	free(t);
	json_decref(m);
}

START_TEST(round_trip)
{
	size_t len;
	char *doc = signed_doc(7, &len);
	bundle_t *b = bundle_parse(doc, len, err, sizeof err);
	ck_assert_msg(b, "%s", err);
	ck_assert_msg(bundle_verify(b, &trusted, err, sizeof err), "%s", err);
	ck_assert_int_eq(b->version, 7);
	ck_assert_str_eq(b->entry, "policy.lua");
	ck_assert_int_eq(b->n_files, 4);
	ck_assert_int_eq(bundle_file(b, "policy.lua")->role, BUNDLE_ROLE_ENTRY);
	ck_assert_int_eq(bundle_file(b, "packs/cards.lua")->role, BUNDLE_ROLE_MODULE);
	ck_assert_int_eq(bundle_file(b, "tests/cards.lua")->role, BUNDLE_ROLE_TEST);
	ck_assert_int_eq(bundle_file(b, "README.txt")->role, BUNDLE_ROLE_DATA);
	ck_assert_msg(bundle_check_runnable(b, 6, 0, err, sizeof err), "%s", err);
	char out[400], p[500];
	snprintf(out, sizeof out, "%s/out", dir);
	ck_assert_msg(bundle_extract(b, out, err, sizeof err), "%s", err);
	snprintf(p, sizeof p, "%s/packs/cards.lua", out);
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	char line[64] = "";
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	fclose(f);
	ck_assert_str_eq(line, "return {}\n");
	struct stat st;
	ck_assert_int_eq(stat(out, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	/* never into a directory that exists */
	ck_assert(!bundle_extract(b, out, err, sizeof err));
	bundle_free(b);
	free(doc);
}
END_TEST

START_TEST(replay_expiry_engine)
{
	size_t len;
	char *doc = signed_doc(5, &len);
	bundle_t *b = bundle_parse(doc, len, err, sizeof err);
	ck_assert_msg(b, "%s", err);
	ck_assert(!bundle_check_runnable(b, 5, 0, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "not newer than the running v5"));
	ck_assert(!bundle_check_runnable(b, 9, 0, err, sizeof err));
	bundle_free(b);
	free(doc);

	b = bundle_from_dir(src_dir(), NULL, err, sizeof err);
	snprintf(b->expires_at, sizeof b->expires_at, "2020-01-01T00:00:00Z");
	snprintf(b->min_engine, sizeof b->min_engine, "999.0.0");
	ck_assert_msg(bundle_sign(b, 6, key, err, sizeof err), "%s", err);
	doc = bundle_serialize(b, &len);
	bundle_free(b);
	b = bundle_parse(doc, len, err, sizeof err);
	ck_assert_msg(b, "%s", err);
	ck_assert(!bundle_check_runnable(b, 0, (int64_t)time(NULL) * 1000, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "expired"));
	ck_assert(!bundle_check_runnable(b, 0, 1000, err, sizeof err)); /* before expiry: the engine is too old */
	ck_assert_ptr_nonnull(strstr(err, "needs engine 999.0.0"));
	bundle_free(b);
	free(doc);
}
END_TEST

START_TEST(signature_and_keys)
{
	size_t len;
	char *doc = signed_doc(3, &len);
	/* unknown key */
	bundle_keyset_t other = {0};
	bundle_key_t pub2;
	ck_assert(bundle_key_generate(key2, &pub2, err, sizeof err));
	bundle_keys_add(&other, &pub2);
	bundle_t *b = bundle_parse(doc, len, err, sizeof err);
	ck_assert(!bundle_verify(b, &other, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "unknown key"));
	bundle_free(b);
	/* a manifest changed after signing */
	char *m = strstr(doc, "\\\"policy_version\\\":3");
	ck_assert_ptr_nonnull(m);
	m[strlen("\\\"policy_version\\\":")] = '4';
	b = bundle_parse(doc, len, err, sizeof err);
	ck_assert_msg(b, "%s", err);
	ck_assert(!bundle_verify(b, &trusted, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "bad signature"));
	bundle_free(b);
	free(doc);
	/* keys never overwritten; key lists round-trip and refuse a wrong id */
	ck_assert(!bundle_key_generate(key, &pub2, err, sizeof err));
	char *text = bundle_keys_format(&trusted);
	bundle_keyset_t back;
	ck_assert_msg(bundle_keys_parse(text, &back, err, sizeof err), "%s", err);
	ck_assert_int_eq(back.n, 1);
	ck_assert_str_eq(back.v[0].key_id, trusted.v[0].key_id);
	text[8] = text[8] == 'a' ? 'b' : 'a';
	ck_assert(!bundle_keys_parse(text, &back, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "does not match its key"));
	free(text);
	ck_assert(!bundle_keys_parse("# c\nrsa 0123 AAAA\n", &back, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "line 2"));
}
END_TEST

START_TEST(rotation_fields)
{
	bundle_key_t pub2;
	ck_assert(bundle_key_generate(key2, &pub2, err, sizeof err));
	bundle_t *b = bundle_from_dir(src_dir(), NULL, err, sizeof err);
	bundle_keys_add(&b->next_keys, &pub2);
	snprintf(b->retire_keys[b->n_retire++], BUNDLE_KEY_ID_LEN + 1, "%s", trusted.v[0].key_id);
	/* a bundle cannot retire its own key */
	ck_assert(!bundle_sign(b, 2, key, err, sizeof err));
	b->n_retire = 0;
	ck_assert_msg(bundle_sign(b, 2, key, err, sizeof err), "%s", err);
	size_t len;
	char *doc = bundle_serialize(b, &len);
	bundle_free(b);
	b = bundle_parse(doc, len, err, sizeof err);
	ck_assert_msg(b && bundle_verify(b, &trusted, err, sizeof err), "%s", err);
	ck_assert_int_eq(b->next_keys.n, 1);
	ck_assert_str_eq(b->next_keys.v[0].key_id, pub2.key_id);
	bundle_free(b);
	free(doc);
}
END_TEST

static void tamper_file(json_t *d)
{
	json_object_set_new(json_object_get(d, "files"), "packs/cards.lua", json_string("cmV0dXJuIDEK"));
}
static void extra_file(json_t *d)
{
	json_object_set_new(json_object_get(d, "files"), "evil.lua", json_string("cmV0dXJuIDEK"));
}
static void missing_file(json_t *d)
{
	json_object_del(json_object_get(d, "files"), "README.txt");
}
static void bad_base64(json_t *d)
{
	json_object_set_new(json_object_get(d, "files"), "README.txt", json_string(" bm90ZXMK"));
}
static void unknown_member(json_t *d)
{
	json_object_set_new(d, "compat", json_true());
}
static void traversal(json_t *d)
{
	json_t *m = manifest_of(d);
	json_t *f = json_array_get(json_object_get(m, "files"), 0);
	json_object_set_new(f, "path", json_string("../../etc/cron.d/x"));
	manifest_set(d, m);
	json_object_set_new(json_object_get(d, "files"), "../../etc/cron.d/x", json_string("bm90ZXMK"));
}
static void manifest_garbage(json_t *d)
{
	json_object_set_new(d, "manifest", json_string("{\"bundle_format\": 1,"));
}
static void manifest_unknown(json_t *d)
{
	json_t *m = manifest_of(d);
	json_object_set_new(m, "allow_all", json_true());
	manifest_set(d, m);
}
static void wrong_format(json_t *d)
{
	json_object_set_new(d, "format", json_integer(2));
}

START_TEST(refusals)
{
	size_t len;
	char *doc = signed_doc(2, &len);
	struct {
		void (*fn)(json_t *);
		const char *want;
	} cases[] = {
		{tamper_file, "packs/cards.lua: 9 bytes, the manifest says 10"},
		{extra_file, "evil.lua: in the bundle but not in the manifest"},
		{missing_file, "README.txt: in the manifest but not in the bundle"},
		{bad_base64, "README.txt: not canonical base64"},
		{unknown_member, "unknown member \"compat\""},
		{traversal, "../../etc/cron.d/x is not an allowed bundle path"},
		{manifest_garbage, "manifest: not JSON"},
		{manifest_unknown, "unknown member \"allow_all\""},
		{wrong_format, "format must be 1"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *bad = edited(doc, cases[i].fn);
		refused(bad, cases[i].want);
		free(bad);
	}
	refused("[1,2]", "not an object");
	refused("{\"format\":1,\"format\":1}", "not JSON");
	/* same length, other bytes: the hash catches it */
	char *p = strstr(doc, "\"README.txt\":\"");
	ck_assert_ptr_nonnull(p);
	p += strlen("\"README.txt\":\"");
	p[0] = p[0] == 'b' ? 'c' : 'b';
	refused(doc, "README.txt: SHA-256 differs");
	free(doc);
}
END_TEST

START_TEST(directory_limits)
{
	char p[600], t[600];
	/* a symbolic link is never followed into a bundle */
	snprintf(p, sizeof p, "%s/src/link.lua", dir);
	snprintf(t, sizeof t, "%s/src/policy.lua", dir);
	ck_assert_int_eq(symlink(t, p), 0);
	ck_assert(!bundle_from_dir(src_dir(), NULL, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "link.lua: a symbolic link"));
	unlink(p);
	/* hidden files */
	put(".secret", "x");
	ck_assert(!bundle_from_dir(src_dir(), NULL, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, ".secret: not an allowed bundle path"));
	snprintf(p, sizeof p, "%s/src/.secret", dir);
	unlink(p);
	/* no entry */
	ck_assert(!bundle_from_dir(src_dir(), "main.lua", err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "no entry file main.lua"));
	/* too many files */
	for (int i = 0; i < BUNDLE_MAX_FILES; i++) {
		snprintf(t, sizeof t, "many/m%d.lua", i);
		put(t, "return 1\n");
	}
	ck_assert(!bundle_from_dir(src_dir(), NULL, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "more than 256 files"));
	/* too large */
	bundle_t *b = bundle_from_dir(src_dir(), "policy.lua", err, sizeof err);
	ck_assert(!b);
	b = calloc(1, sizeof *b);
	char *big = calloc(1, BUNDLE_MAX_CONTENT);
	ck_assert(bundle_add_file(b, "a.bin", BUNDLE_ROLE_DATA, big, BUNDLE_MAX_CONTENT - 10, err, sizeof err));
	ck_assert(!bundle_add_file(b, "b.bin", BUNDLE_ROLE_DATA, big, 11, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "more than 8 MiB"));
	ck_assert(!bundle_add_file(b, "/etc/passwd", BUNDLE_ROLE_DATA, big, 1, err, sizeof err));
	free(big);
	bundle_free(b);
}
END_TEST

START_TEST(paths_and_versions)
{
	const char *good[] = {"policy.lua", "packs/pii.lua", "a-b_c.d/e", NULL};
	const char *bad[] = {"", "/abs", "a//b", "a/", "../x", "a/../b", "./a", ".hidden", "a/.b", "a b", "a\\b",
			     "é.lua", NULL};
	for (const char **g = good; *g; g++)
		ck_assert_msg(bundle_path_ok(*g), "%s refused", *g);
	for (const char **x = bad; *x; x++)
		ck_assert_msg(!bundle_path_ok(*x), "%s accepted", *x);
	int cmp;
	ck_assert(bundle_version_cmp("0.10.0", "0.9.9", &cmp) && cmp > 0);
	ck_assert(bundle_version_cmp("1.2.3", "1.2.3", &cmp) && cmp == 0);
	ck_assert(!bundle_version_cmp("1.2", "1.2.3", &cmp));
	ck_assert(!bundle_version_cmp("1.2.3-rc1", "1.2.3", &cmp));
	/* an event's rule names its file relative to the entry's folder: as a
	 * path in the bundle, never above it */
	static const struct {
		const char *entry, *chunk, *path; /* path NULL: not in the bundle */
	} chunks[] = {
		{"policy.lua", "policy.lua", "policy.lua"},     {"policy.lua", "lib/x.lua", "lib/x.lua"},
		{"policy.lua", "../x.lua", NULL},                {"src/policy.lua", "policy.lua", "src/policy.lua"},
		{"src/policy.lua", "../pii.lua", "pii.lua"},     {"a/b/policy.lua", "../../c/x.lua", "c/x.lua"},
		{"a/b/policy.lua", "../../../x.lua", NULL},      {"src/policy.lua", "lib/../../x.lua", NULL},
		{"src/policy.lua", "/etc/x.lua", NULL},
	};
	bundle_t b;
	memset(&b, 0, sizeof b);
	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		char out[300];
		snprintf(b.entry, sizeof b.entry, "%s", chunks[i].entry);
		bool ok = bundle_chunk_path(&b, chunks[i].chunk, out, sizeof out);
		ck_assert_msg(chunks[i].path ? ok && !strcmp(out, chunks[i].path) : !ok, "%s from %s: %s", chunks[i].chunk,
			      chunks[i].entry, ok ? out : "refused");
	}
}
END_TEST

/* ---- compiled with the engine's code (bundle_policy.h) ---- */

static const char card_policy[] = "local dlp = require \"dlp\"\n"
				  "local pii = require \"pii\"\n"
				  "function on_request(req, flow)\n"
				  "  local found = req:scan({card = pii.credit_card})\n"
				  "  if next(found) then return dlp.block(\"card\") end\n"
				  "  return dlp.pass()\n"
				  "end\n";

static bundle_t *signed_bundle(void)
{
	size_t len;
	char *doc = signed_doc(4, &len);
	bundle_t *b = bundle_parse(doc, len, err, sizeof err);
	free(doc);
	ck_assert_msg(b, "%s", err);
	return b;
}

START_TEST(compiles_and_tests)
{
	put("policy.lua", card_policy);
	put("tests/cards.lua", "return {\n"
			       " { name = \"a card is blocked\", request = { body = \"pay 4526 0181 5908 3012\" },"
			       " expect = { verdict = \"block\" } },\n"
			       " { name = \"words pass\", request = { body = \"hello\" }, expect = { verdict = \"pass\" } },\n"
			       "}\n");
	bundle_t *b = signed_bundle();
	char run[400];
	snprintf(run, sizeof run, "%s/run", dir);
	bundle_tests_t t;
	compiled_policy_t *p = bundle_policy_load(b, run, 2, &t, err, sizeof err);
	ck_assert_msg(p, "%s\n%s", err, t.output ? t.output : "");
	ck_assert_int_eq(t.passed, 2);
	ck_assert_int_eq(t.failed, 0);
	ck_assert_str_eq(p->version_text, "v4");
	/* the shipped pack it required joins the bundle, once */
	ck_assert_int_eq(bundle_policy_include_shipped(b, p, err, sizeof err), 1);
	ck_assert_ptr_nonnull(bundle_file(b, "pii.lua"));
	ck_assert_int_eq(bundle_file(b, "pii.lua")->role, BUNDLE_ROLE_MODULE);
	ck_assert_int_eq(bundle_policy_include_shipped(b, p, err, sizeof err), 0);
	policy_unref(p);
	bundle_tests_free(&t);
	bundle_free(b);
}
END_TEST

START_TEST(refused_when_broken)
{
	/* a failing test: refused, the case named, no machine path in the report */
	put("policy.lua", card_policy);
	put("tests/cards.lua", "return {{ name = \"cards pass?\", request = { body = \"pay 4526 0181 5908 3012\" },"
			       " expect = { verdict = \"pass\" } }}\n");
	bundle_t *b = signed_bundle();
	char run[400];
	snprintf(run, sizeof run, "%s/run1", dir);
	bundle_tests_t t;
	ck_assert(!bundle_policy_load(b, run, 1, &t, err, sizeof err));
	ck_assert_msg(strstr(err, "1 of 1 policy tests failed"), "%s", err);
	ck_assert_msg(strstr(t.output, "FAIL tests/cards.lua #1 cards pass?"), "%s", t.output);
	ck_assert_msg(!strstr(t.output, run), "%s", t.output);
	bundle_tests_free(&t);
	bundle_free(b);
	/* Lua that does not compile: file:line relative to the bundle, from a
	 * folder long enough that Lua would shorten an absolute chunk name */
	put("policy.lua", "local dlp = require \"dlp\"\nfunction on_request(req\n");
	b = signed_bundle();
	snprintf(run, sizeof run, "%s/a-folder-name-long-enough-that-lua-shortens-its-chunk-names", dir);
	mkdir(run, 0700);
	strcat(run, "/run2");
	ck_assert(!bundle_policy_load(b, run, 1, &t, err, sizeof err));
	ck_assert_msg(!strncmp(err, "policy.lua:", 11) && !strstr(err, dir), "%s", err);
	bundle_tests_free(&t);
	bundle_free(b);
}
END_TEST

Suite *bundle_suite(void)
{
	Suite *s = suite_create("bundle");
	TCase *t = tcase_create("bundle");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, round_trip);
	tcase_add_test(t, replay_expiry_engine);
	tcase_add_test(t, signature_and_keys);
	tcase_add_test(t, rotation_fields);
	tcase_add_test(t, refusals);
	tcase_add_test(t, directory_limits);
	tcase_add_test(t, paths_and_versions);
	tcase_add_test(t, compiles_and_tests);
	tcase_add_test(t, refused_when_broken);
	suite_add_tcase(s, t);
	return s;
}
