/*
 * policy_ops: the policy operations (policy.h), shared by the CLI and the
 * admin API. Each one answers an HTTP status and a body; the CLI prints
 * the body and maps the status to its exit code, the API sends both.
 *
 * Nothing is stored until everything about a push is known to be right:
 * the bundle is read and checked, compiled and tested (policy_check.c),
 * signed or verified, and only then inserted, with its audit entry, in one
 * transaction. Version numbers come from the store (max + 1); a push that
 * loses a race for a number is told so and stores nothing.
 */
#include "policy.h"

#include "console.h"
#include "core/bytebuf.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Failures listed in a status answer. */
#define MAX_STATUS_FAILURES 100
/* Whole-fleet rollouts looked back on by a rollback. */
#define ROLLBACK_HISTORY 64

void policy_answer_free(policy_answer_t *a)
{
	json_decref(a->json);
	free(a->text);
	memset(a, 0, sizeof *a);
}

json_t *console_error_vjson(const char *code, const char *fmt, va_list ap)
{
	char detail[1024];
	vsnprintf(detail, sizeof detail, fmt, ap);
	return json_pack("{s:s, s:s}", "error", code, "detail", detail);
}

static void answer(policy_answer_t *a, int status, json_t *body)
{
	a->status = body ? status : 500;
	a->json = body ? body : json_pack("{s:s, s:s}", "error", "internal", "detail", "out of memory");
}

static void refuse(policy_answer_t *a, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void refuse(policy_answer_t *a, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	answer(a, status, console_error_vjson(code, fmt, ap));
	va_end(ap);
	a->code = code;
}

static void store_down(policy_answer_t *a, store_conn_t *sc)
{
	refuse(a, 503, "store_unavailable", "the database failed: %s", store_conn_error(sc));
}

/* ---- actors and keys ---- */

void policy_actor_cli(char out[80])
{
	struct passwd *pw = getpwuid(getuid());
	if (pw && pw->pw_name)
		snprintf(out, 80, "cli:%.70s", pw->pw_name);
	else
		snprintf(out, 80, "cli:uid%u", (unsigned)getuid());
}

void policy_actor_token(const char *token_hash, char out[80])
{
	snprintf(out, 80, "%.12s", token_hash);
}

static void state_path(const policy_ctx_t *ctx, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", ctx->state_dir, name);
}

bool policy_keys_mode(const policy_ctx_t *ctx)
{
	char p[PATH_MAX + 32];
	state_path(ctx, POLICY_KEYS_FILE, p, sizeof p);
	return access(p, F_OK) == 0;
}

bool policy_ensure_signing_key(const policy_ctx_t *ctx, char *err, size_t errlen)
{
	char p[PATH_MAX + 32];
	state_path(ctx, POLICY_SIGNING_KEY, p, sizeof p);
	if (access(p, F_OK) == 0)
		return true;
	bundle_key_t pub;
	if (bundle_key_generate(p, &pub, err, errlen))
		return true;
	/* another process made it meanwhile: use that one */
	return access(p, F_OK) == 0;
}

static bool base_keys(const policy_ctx_t *ctx, bundle_keyset_t *ks, char *err, size_t errlen);

static void apply_rotation(void *ud, const char *next, const char *retire)
{
	bundle_keyset_t *ks = ud, add;
	char err[256];
	if (next && bundle_keys_parse(next, &add, err, sizeof err))
		for (size_t i = 0; i < add.n; i++)
			bundle_keys_add(ks, &add.v[i]);
	char ids[BUNDLE_MAX_KEYS * (BUNDLE_KEY_ID_LEN + 1) + 1], *save = NULL;
	snprintf(ids, sizeof ids, "%s", retire ? retire : "");
	for (char *id = strtok_r(ids, " ", &save); id; id = strtok_r(NULL, " ", &save))
		bundle_keys_remove(ks, id);
}

/* The keys this console accepts bundles from: its own key, or the offline
 * keys it was given; then, with a store, the rotations of the versions it
 * stored, oldest first (bundle.md "Keys": a bundle verified by a trusted
 * key may introduce the next key and retire others). */
static bool trusted_keys(const policy_ctx_t *ctx, store_conn_t *sc, bundle_keyset_t *ks, char *err, size_t errlen)
{
	if (!base_keys(ctx, ks, err, errlen))
		return false;
	if (sc && store_policy_key_changes(sc, apply_rotation, ks) != 0) {
		snprintf(err, errlen, "the database failed: %s", store_conn_error(sc));
		return false;
	}
	return true;
}

bool policy_load_keys(policy_ctx_t *ctx, char *err, size_t errlen)
{
	ctx->base_loaded = false;
	ctx->base_loaded = base_keys(ctx, &ctx->base_keys, err, errlen);
	return ctx->base_loaded;
}

static bool base_keys(const policy_ctx_t *ctx, bundle_keyset_t *ks, char *err, size_t errlen)
{
	char p[PATH_MAX + 32];
	if (ctx->base_loaded) {
		*ks = ctx->base_keys;
		return true;
	}
	memset(ks, 0, sizeof *ks);
	if (policy_keys_mode(ctx)) {
		state_path(ctx, POLICY_KEYS_FILE, p, sizeof p);
		return bundle_keys_load(p, ks, err, errlen);
	}
	if (!policy_ensure_signing_key(ctx, err, errlen))
		return false;
	state_path(ctx, POLICY_SIGNING_KEY, p, sizeof p);
	bundle_key_t pub;
	return bundle_key_public(p, &pub, err, errlen) && bundle_keys_add(ks, &pub);
}

char *policy_bundle_keys_text(const policy_ctx_t *ctx, store_conn_t *sc, char *err, size_t errlen)
{
	bundle_keyset_t ks;
	return trusted_keys(ctx, sc, &ks, err, errlen) ? bundle_keys_format(&ks) : NULL;
}

bool policy_install_keys(const policy_ctx_t *ctx, const char *file, char *err, size_t errlen)
{
	bundle_keyset_t ks;
	char why[512];
	if (!bundle_keys_load(file, &ks, why, sizeof why)) {
		snprintf(err, errlen, "--bundle-keys %s: %s", file, why);
		return false;
	}
	if (ks.n == 0) {
		snprintf(err, errlen, "--bundle-keys %s: no key in it (lines are \"ed25519 KEY_ID BASE64\")", file);
		return false;
	}
	char *text = bundle_keys_format(&ks);
	char p[PATH_MAX + 32], tmp[PATH_MAX + 48];
	state_path(ctx, POLICY_KEYS_FILE, p, sizeof p);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
	size_t len = text ? strlen(text) : 0;
	bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	ok = ok && rename(tmp, p) == 0;
	if (!ok) {
		snprintf(err, errlen, "cannot write %s: %s", p, strerror(errno));
		unlink(tmp);
	}
	free(text);
	return ok;
}

/* ---- push ---- */

static json_t *tests_json(const policy_check_t *chk)
{
	return json_pack("{s:i, s:i}", "passed", chk->passed, "failed", chk->failed);
}

static void refuse_bundle(policy_answer_t *a, const char *detail, json_t *failures)
{
	answer(a, 422, json_pack("{s:s, s:s, s:o}", "error", "bundle_refused", "detail", detail, "failures",
				 failures ? failures : json_array()));
	a->code = "bundle_refused";
}

/* Compiled and tested: stored as version (signed here when key_path). */
static void store_bundle(store_conn_t *sc, bundle_t *b, const char *key_path, int64_t content_of,
			 const char *action, const char *actor, policy_answer_t *a)
{
	/* a signed version that cannot be stored is refused before the long part */
	int64_t max = 0;
	if (store_policy_max_version(sc, &max) != 0)
		return store_down(a, sc);
	if (!key_path && b->version <= max)
		return refuse(a, 409, "version_not_newer",
			      "the bundle is version %lld; the console already has version %lld: sign it again as "
			      "version %lld or later",
			      (long long)b->version, (long long)max, (long long)max + 1);
	policy_check_t chk;
	/* packs are folded into bundles the console makes, never into signed ones */
	if (!policy_check_bundle(b, key_path && !content_of, &chk)) {
		char detail[256];
		if (chk.failed > 0)
			snprintf(detail, sizeof detail, "%d of %d tests failed", chk.failed, chk.failed + chk.passed);
		else
			snprintf(detail, sizeof detail, "the bundle does not compile or its tests cannot run");
		refuse_bundle(a, detail, chk.failures);
		return;
	}
	json_decref(chk.failures);
	/* the number is taken now, after the tests; a push that stored one
	 * meanwhile makes the insert refuse (version_taken) */
	char err[1024];
	if (key_path && store_policy_max_version(sc, &max) != 0)
		return store_down(a, sc);
	if (key_path && !bundle_sign(b, max + 1, key_path, err, sizeof err))
		return refuse(a, 500, "sign_failed", "cannot sign the bundle: %s", err);
	size_t len = 0;
	char *doc = bundle_serialize(b, &len);
	if (!doc)
		return refuse(a, 500, "internal", "cannot write the bundle document");
	store_policy_t row = {.version = b->version,
			      .tests_passed = chk.passed,
			      .tests_failed = chk.failed,
			      .content_of = content_of};
	console_sha256_hex(doc, row.sha256);
	str_copy(row.created_at, sizeof row.created_at, b->created_at);
	str_copy(row.author, sizeof row.author, actor);
	str_copy(row.message, sizeof row.message, b->message);
	str_copy(row.key_id, sizeof row.key_id, b->key_id);
	/* its key rotation, kept beside it (trusted_keys folds these) */
	char *next = b->next_keys.n ? bundle_keys_format(&b->next_keys) : NULL, retire[sizeof b->retire_keys + 1] = "";
	for (size_t i = 0; i < b->n_retire; i++)
		snprintf(retire + strlen(retire), sizeof retire - strlen(retire), "%s%s", i ? " " : "", b->retire_keys[i]);
	row.next_keys = next;
	row.retire_keys = b->n_retire ? retire : NULL;
	json_t *detail = json_pack("{s:I, s:s, s:s, s:s}", "version", (json_int_t)row.version, "sha256", row.sha256,
				   "key_id", row.key_id, "message", row.message);
	if (content_of)
		json_object_set_new(detail, "content_of", json_integer(content_of));
	char *dtext = json_dumps(detail, JSON_COMPACT);
	json_decref(detail);
	store_audit_t au = {actor, action, dtext};
	int r = store_policy_insert(sc, &row, doc, &au);
	free(next);
	free(dtext);
	free(doc);
	if (r == STORE_CONFLICT)
		return refuse(a, 409, "version_taken",
			      "version %lld was stored meanwhile (another push); nothing was stored: push again",
			      (long long)row.version);
	if (r != 0)
		return store_down(a, sc);
	answer(a, 201, json_pack("{s:I, s:s, s:o}", "version", (json_int_t)row.version, "sha256", row.sha256, "tests",
				 tests_json(&chk)));
}

void policy_push_dir(const policy_ctx_t *ctx, store_conn_t *sc, const char *dir, const char *entry,
		     const char *message, const char *actor, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	if (policy_keys_mode(ctx))
		return refuse(a, 409, "no_signing_key",
			      "this console trusts only offline-signed bundles (%s/" POLICY_KEYS_FILE "): sign the "
			      "directory with `dlpgate-console policy sign %s --key KEY --version N` on the admin's "
			      "machine and push the file",
			      ctx->state_dir, dir);
	char err[1024];
	bundle_t *b = bundle_from_dir(dir, entry, err, sizeof err);
	if (!b)
		return refuse_bundle(a, err, json_pack("[s]", err));
	if (message && strlen(message) >= sizeof b->message) {
		bundle_free(b);
		return refuse(a, 400, "bad_request", "--message: at most %zu bytes", sizeof b->message - 1);
	}
	if (message)
		str_copy(b->message, sizeof b->message, message);
	char key[PATH_MAX + 32];
	state_path(ctx, POLICY_SIGNING_KEY, key, sizeof key);
	if (!policy_ensure_signing_key(ctx, err, sizeof err)) {
		bundle_free(b);
		return refuse(a, 500, "no_signing_key", "cannot make the console's signing key: %s", err);
	}
	store_bundle(sc, b, key, 0, "policy.push", actor, a);
	bundle_free(b);
}

void policy_push_document(const policy_ctx_t *ctx, store_conn_t *sc, const char *doc, size_t len, const char *actor,
			  policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	char err[1024];
	bundle_keyset_t ks;
	if (!trusted_keys(ctx, sc, &ks, err, sizeof err))
		return refuse(a, 500, "keys_unavailable", "cannot read the keys this console trusts: %s", err);
	bundle_t *b = bundle_parse(doc, len, err, sizeof err);
	if (!b)
		return refuse_bundle(a, err, json_pack("[s]", err));
	if (!bundle_verify(b, &ks, err, sizeof err)) {
		refuse_bundle(a, err, json_pack("[s]", err));
	} else if (!bundle_check_runnable(b, 0, console_now_ms(), err, sizeof err)) {
		refuse_bundle(a, err, json_pack("[s]", err));
	} else {
		store_bundle(sc, b, NULL, 0, "policy.push", actor, a);
	}
	bundle_free(b);
}

/* ---- reading versions ---- */

void policy_list(store_conn_t *sc, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	json_t *list = json_array();
	if (store_policy_list(sc, list) != 0) {
		json_decref(list);
		return store_down(a, sc);
	}
	answer(a, 200, json_pack("{s:o}", "policies", list));
}

/* The stored bundle of version, parsed; NULL with the answer set. */
static bundle_t *load_version(store_conn_t *sc, int64_t version, policy_answer_t *a)
{
	char *doc = NULL, err[512];
	size_t len = 0;
	int r = store_policy_bundle(sc, version, &doc, &len);
	if (r == STORE_NOT_FOUND) {
		refuse(a, 404, "not_found", "no policy version %lld", (long long)version);
		return NULL;
	}
	if (r != 0) {
		store_down(a, sc);
		return NULL;
	}
	bundle_t *b = bundle_parse(doc, len, err, sizeof err);
	free(doc);
	if (!b)
		refuse(a, 500, "bad_stored_bundle", "stored version %lld does not parse: %s", (long long)version, err);
	return b;
}

/* The stored row of version; false with the answer set (404 or 503). */
static bool get_version(store_conn_t *sc, int64_t version, store_policy_t *p, policy_answer_t *a)
{
	int r = store_policy_get(sc, version, p);
	if (r == STORE_NOT_FOUND)
		refuse(a, 404, "not_found", "no policy version %lld", (long long)version);
	else if (r != 0)
		store_down(a, sc);
	return r == 0;
}

void policy_show(store_conn_t *sc, int64_t version, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	store_policy_t p;
	if (!get_version(sc, version, &p, a))
		return;
	bundle_t *b = load_version(sc, version, a);
	if (!b)
		return;
	json_t *o = store_policy_json(&p), *files = json_array();
	for (size_t i = 0; i < b->n_files; i++)
		json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s}", "path", b->files[i].path, "role",
						       bundle_role_name(b->files[i].role), "size",
						       (json_int_t)b->files[i].size, "sha256", b->files[i].sha256));
	json_object_set_new(o, "files", files);
	json_object_set_new(o, "entry", json_string(b->entry));
	json_object_set_new(o, "min_engine_version", json_string(b->min_engine));
	json_object_set_new(o, "expires_at", b->expires_at[0] ? json_string(b->expires_at) : json_null());
	/* key rotation it carries, by key id */
	json_t *next = json_array(), *retire = json_array();
	for (size_t i = 0; i < b->next_keys.n; i++)
		json_array_append_new(next, json_string(b->next_keys.v[i].key_id));
	for (size_t i = 0; i < b->n_retire; i++)
		json_array_append_new(retire, json_string(b->retire_keys[i]));
	json_object_set_new(o, "next_keys", next);
	json_object_set_new(o, "retire_keys", retire);
	bundle_free(b);
	answer(a, 200, o);
}

/* The text of b's file at path, or 404. */
static void file_answer(const bundle_t *b, int64_t version, const char *path, policy_answer_t *a)
{
	const bundle_file_t *f = bundle_path_ok(path) ? bundle_file(b, path) : NULL;
	if (!f) {
		refuse(a, 404, "not_found", "version %lld has no file \"%.200s\"", (long long)version, path);
	} else if ((a->text = malloc(f->size + 1)) != NULL) {
		memcpy(a->text, f->data, f->size);
		a->text[f->size] = '\0';
		a->text_len = f->size;
		a->text_type = "text/plain";
		a->status = 200;
	} else {
		refuse(a, 500, "internal", "out of memory");
	}
}

void policy_file(store_conn_t *sc, int64_t version, const char *path, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	bundle_t *b = load_version(sc, version, a);
	if (!b)
		return;
	file_answer(b, version, path, a);
	bundle_free(b);
}

void policy_rule_file(store_conn_t *sc, int64_t version, const char *file, bool bundle_path, char *path, size_t n,
		      policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	snprintf(path, n, "%s", file);
	bundle_t *b = load_version(sc, version, a);
	if (!b)
		return;
	if (!bundle_path && !bundle_chunk_path(b, file, path, n))
		refuse(a, 404, "not_found", "version %lld has no file \"%.200s\"", (long long)version, file);
	else
		file_answer(b, version, path, a);
	bundle_free(b);
}

/* ---- diff ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* `diff -u` of one file (either may be "/dev/null"), appended to out, at
 * most POLICY_MAX_DIFF in all. */
static bool diff_file(const char *fa, const char *fb, const char *path, bytebuf_t *out)
{
	char la[256], lb[256];
	snprintf(la, sizeof la, "a/%s", path);
	snprintf(lb, sizeof lb, "b/%s", path);
	char *argv[] = {"diff", "-u", "--label", la, "--label", lb, (char *)fa, (char *)fb, NULL};
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return false;
	posix_spawn_file_actions_t fa_;
	posix_spawn_file_actions_init(&fa_);
	posix_spawn_file_actions_adddup2(&fa_, fds[1], 1);
	pid_t pid;
	int rc = posix_spawnp(&pid, "diff", &fa_, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa_);
	close(fds[1]);
	if (rc != 0) {
		close(fds[0]);
		return false;
	}
	char buf[16384];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof buf)) > 0)
		if (out->len < POLICY_MAX_DIFF)
			bytebuf_append(out, buf, (size_t)n);
	close(fds[0]);
	int st;
	waitpid(pid, &st, 0);
	/* diff: 0 same, 1 different, 2 trouble */
	return WIFEXITED(st) && WEXITSTATUS(st) < 2;
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

void policy_diff(store_conn_t *sc, int64_t va, int64_t vb, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	bundle_t *ba = load_version(sc, va, a);
	if (!ba)
		return;
	bundle_t *bb = load_version(sc, vb, a);
	if (!bb) {
		bundle_free(ba);
		return;
	}
	const char *tmp = getenv("TMPDIR");
	char root[PATH_MAX], da[PATH_MAX + 8], db[PATH_MAX + 8], err[512];
	snprintf(root, sizeof root, "%s/dlpgate-diff-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	bytebuf_t out;
	bytebuf_init(&out, 0);
	size_t n = ba->n_files + bb->n_files;
	const char **paths = calloc(n ? n : 1, sizeof *paths);
	bool ok = paths && mkdtemp(root);
	snprintf(da, sizeof da, "%s/a", root);
	snprintf(db, sizeof db, "%s/b", root);
	if (ok && (!bundle_extract(ba, da, err, sizeof err) || !bundle_extract(bb, db, err, sizeof err))) {
		refuse(a, 500, "internal", "cannot extract the bundles to diff them: %s", err);
		goto done;
	}
	if (!ok) {
		refuse(a, 500, "internal", "cannot make a temp dir to diff in: %s", strerror(errno));
		goto done;
	}
	size_t np = 0;
	for (size_t i = 0; i < ba->n_files; i++)
		paths[np++] = ba->files[i].path;
	for (size_t i = 0; i < bb->n_files; i++)
		if (!bundle_file(ba, bb->files[i].path))
			paths[np++] = bb->files[i].path;
	qsort(paths, np, sizeof *paths, cmp_str);
	for (size_t i = 0; i < np && ok; i++) {
		char fa[PATH_MAX + 256], fb[PATH_MAX + 256];
		snprintf(fa, sizeof fa, "%s/%s", da, paths[i]);
		snprintf(fb, sizeof fb, "%s/%s", db, paths[i]);
		ok = diff_file(bundle_file(ba, paths[i]) ? fa : "/dev/null", bundle_file(bb, paths[i]) ? fb : "/dev/null",
			       paths[i], &out);
	}
	if (!ok) {
		refuse(a, 500, "diff_failed", "cannot run diff (diffutils) on the two versions");
		goto done;
	}
	if (out.len >= POLICY_MAX_DIFF)
		bytebuf_appendf(&out, "\n... diff cut at %u bytes\n", POLICY_MAX_DIFF);
	if (!bytebuf_cstr(&out)) {
		refuse(a, 500, "internal", "out of memory");
		goto done;
	}
	a->status = 200;
	a->text = out.data;
	a->text_len = out.len;
	a->text_type = "text/x-diff";
	out.data = NULL;
done:
	if (root[strlen(root) - 1] != 'X')
		nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	bytebuf_free(&out);
	free(paths);
	bundle_free(ba);
	bundle_free(bb);
}

/* ---- rollouts ---- */

typedef struct {
	const rollout_t *r;
	int64_t targets;
} count_t;

static bool count_target(void *ud, const store_agent_row_t *ag)
{
	count_t *c = ud;
	c->targets += rollout_matches(c->r, ag->agent_id, ag->labels);
	return true;
}

void policy_rollout(store_conn_t *sc, int64_t version, rollout_kind_t kind, const json_t *labels, int percent,
		    int sample_percent, const char *actor, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	char err[256];
	if (labels && !rollout_labels_valid(labels, err, sizeof err))
		return refuse(a, 400, "bad_request", "%s", err);
	if (percent < 1 || percent > 100)
		return refuse(a, 400, "bad_request", "percent must be 1..100");
	if (sample_percent < 1 || sample_percent > 100)
		return refuse(a, 400, "bad_request", "sample_percent must be 1..100");
	store_policy_t p;
	if (!get_version(sc, version, &p, a))
		return;
	rollout_t *running = NULL;
	size_t n_running = 0;
	if (store_rollouts_running(sc, &running, &n_running) != 0)
		return store_down(a, sc);
	store_rollouts_free(running, n_running);
	bool whole_fleet = (!labels || json_object_size(labels) == 0) && percent == 100;
	if (n_running >= STORE_MAX_RUNNING_ROLLOUTS && !whole_fleet)
		return refuse(a, 409, "too_many_rollouts",
			      "%zu rollouts are running: activate a version for the whole fleet (no labels, 100%%), "
			      "which supersedes them, before adding narrower ones",
			      n_running);
	json_t *lab = labels ? json_deep_copy(labels) : json_object();
	rollout_t ro = {.version = version, .kind = kind, .labels = lab, .percent = percent,
			.sample_percent = kind == ROLLOUT_SHADOW ? sample_percent : 100, .running = true};
	count_t cnt = {&ro, 0};
	if (store_agents_each(sc, count_target, &cnt) != 0) {
		json_decref(lab);
		return store_down(a, sc);
	}
	json_t *detail = json_pack("{s:I, s:s, s:O, s:i, s:i}", "version", (json_int_t)version, "kind",
				   kind == ROLLOUT_SHADOW ? "shadow" : "active", "labels", lab, "percent", percent,
				   "sample_percent", ro.sample_percent);
	char *dtext = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(detail);
	char now[64];
	console_time_format(console_now_ms(), now);
	store_audit_t au = {actor, kind == ROLLOUT_SHADOW ? "rollout.shadow" : "rollout.activate", dtext};
	int64_t id = 0;
	int r = store_rollout_add(sc, &ro, now, actor, &au, &id);
	free(dtext);
	json_decref(lab);
	if (r != 0)
		return store_down(a, sc);
	answer(a, 201, json_pack("{s:I, s:I}", "rollout", (json_int_t)id, "targets", (json_int_t)cnt.targets));
	a->targeting_changed = true;
}

void policy_rollouts(store_conn_t *sc, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	json_t *list = json_array();
	if (store_rollouts_list(sc, 0, list) != 0) {
		json_decref(list);
		return store_down(a, sc);
	}
	answer(a, 200, json_pack("{s:o}", "rollouts", list));
}

/* Does rollout p reach at least every agent r reaches? Its labels are
 * among r's and its share is no smaller (buckets are the same per agent). */
static bool rollout_covers(const rollout_t *p, const rollout_t *r)
{
	if (p->percent < r->percent)
		return false;
	const char *k;
	json_t *v;
	json_object_foreach(p->labels, k, v) {
		const char *have = json_string_value(json_object_get(r->labels, k));
		if (!have || strcmp(have, json_string_value(v)) != 0)
			return false;
	}
	return true;
}

/* What the newest active rollout replaced for the agents it reaches: the
 * newest older running rollout that reaches all of them with another
 * version, else (a whole-fleet rollout supersedes its predecessors) the
 * whole-fleet history. 0 when there is none, -1 when the store failed;
 * *target is that newest rollout, in *rs (the caller frees it). */
static int64_t rollback_source(store_conn_t *sc, rollout_t **rs, size_t *n, const rollout_t **target)
{
	*target = NULL;
	if (store_rollouts_running(sc, rs, n) != 0)
		return -1;
	for (size_t i = 0; i < *n; i++)
		if ((*rs)[i].kind == ROLLOUT_ACTIVE && (!*target || (*rs)[i].id > (*target)->id))
			*target = &(*rs)[i];
	if (!*target)
		return 0;
	const rollout_t *best = NULL;
	for (size_t i = 0; i < *n; i++) {
		const rollout_t *r = &(*rs)[i];
		if (r->kind == ROLLOUT_ACTIVE && r->id < (*target)->id && r->version != (*target)->version &&
		    rollout_covers(r, *target) && (!best || r->id > best->id))
			best = r;
	}
	if (best)
		return best->version;
	int64_t hist[ROLLBACK_HISTORY];
	size_t h = 0;
	if (store_rollouts_fleet_history(sc, hist, ROLLBACK_HISTORY, &h) != 0)
		return -1;
	for (size_t i = 0; i < h; i++)
		if (hist[i] != (*target)->version)
			return hist[i];
	return 0;
}

/* The content of old as a new version, signed here, activated for target. */
static void rollback_to(const policy_ctx_t *ctx, store_conn_t *sc, int64_t old, const rollout_t *target,
			const char *actor, policy_answer_t *a)
{
	if (policy_keys_mode(ctx))
		return refuse(a, 409, "no_signing_key",
			      "this console has no signing key (offline signing): sign the content of version %lld "
			      "as a new version with `dlpgate-console policy sign` and push it, then activate it",
			      (long long)old);
	bundle_t *b = load_version(sc, old, a);
	if (!b)
		return;
	char key[PATH_MAX + 32], err[512];
	state_path(ctx, POLICY_SIGNING_KEY, key, sizeof key);
	if (!policy_ensure_signing_key(ctx, err, sizeof err)) {
		bundle_free(b);
		return refuse(a, 500, "no_signing_key", "cannot make the console's signing key: %s", err);
	}
	snprintf(b->message, sizeof b->message, "rollback to the content of version %lld", (long long)old);
	b->expires_at[0] = '\0';
	b->expires_ms = 0;
	store_bundle(sc, b, key, old, "policy.rollback", actor, a);
	int64_t version = b->version;
	bundle_free(b);
	if (a->status != 201)
		return;
	/* exactly the agents the rolled-back rollout reached */
	policy_answer_t ra;
	policy_rollout(sc, version, ROLLOUT_ACTIVE, json_object_size(target->labels) ? target->labels : NULL,
		       target->percent, 100, actor, &ra);
	if (ra.status != 201) {
		policy_answer_free(a);
		*a = ra;
		return;
	}
	bool changed = ra.targeting_changed;
	json_t *o = json_pack("{s:I, s:I, s:O, s:O}", "version", (json_int_t)version, "content_of", (json_int_t)old,
			      "rollout", json_object_get(ra.json, "rollout"), "sha256", json_object_get(a->json, "sha256"));
	policy_answer_free(&ra);
	policy_answer_free(a);
	answer(a, 201, o);
	a->targeting_changed = changed;
}

void policy_rollback(const policy_ctx_t *ctx, store_conn_t *sc, const char *actor, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	rollout_t *rs = NULL;
	size_t n = 0;
	const rollout_t *target;
	int64_t old = rollback_source(sc, &rs, &n, &target);
	if (old < 0)
		store_down(a, sc);
	else if (!old && target)
		refuse(a, 409, "nothing_to_roll_back", "version %lld replaced no other version for the agents it reaches",
		       (long long)target->version);
	else if (!old)
		refuse(a, 409, "nothing_to_roll_back", "no version is active");
	else
		rollback_to(ctx, sc, old, target, actor, a);
	store_rollouts_free(rs, n);
}

/* ---- status ---- */

typedef struct {
	int64_t version;
	rollout_t *rs;
	size_t n;
	int64_t targeted, active, failed, pending;
	json_t *failures, *pending_agents;
} status_t;

static bool status_agent(void *ud, const store_agent_row_t *ag)
{
	status_t *s = ud;
	rollout_offer_t off;
	rollout_offer(s->rs, s->n, ag->agent_id, ag->labels, &off);
	bool targeted = off.active == s->version || off.shadow == s->version;
	bool active = ag->policy_version == s->version || ag->shadow_version == s->version;
	bool failed = !active && ag->failed_version == s->version;
	s->targeted += targeted;
	s->active += active;
	s->failed += failed;
	bool pending = targeted && !active && !failed;
	s->pending += pending;
	/* why pending: what it runs, and when it last reported (never: offline since enrollment) */
	if (pending && json_array_size(s->pending_agents) < MAX_STATUS_FAILURES)
		json_array_append_new(s->pending_agents,
				      json_pack("{s:s, s:o, s:o}", "agent_id", ag->agent_id, "running",
						ag->policy_version ? json_integer(ag->policy_version) : json_null(), "last_seen",
						ag->last_seen ? json_string(ag->last_seen) : json_null()));
	if (failed && json_array_size(s->failures) < MAX_STATUS_FAILURES)
		json_array_append_new(s->failures, json_pack("{s:s, s:s}", "agent_id", ag->agent_id, "error",
							     ag->policy_error ? ag->policy_error : ""));
	return true;
}

void policy_status(store_conn_t *sc, int64_t version, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	store_policy_t p;
	if (!get_version(sc, version, &p, a))
		return;
	status_t s = {.version = version, .failures = json_array(), .pending_agents = json_array()};
	json_t *rollouts = json_array();
	if (store_rollouts_running(sc, &s.rs, &s.n) != 0 || store_agents_each(sc, status_agent, &s) != 0 ||
	    store_rollouts_list(sc, version, rollouts) != 0) {
		store_rollouts_free(s.rs, s.n);
		json_decref(s.failures);
		json_decref(s.pending_agents);
		json_decref(rollouts);
		return store_down(a, sc);
	}
	store_rollouts_free(s.rs, s.n);
	answer(a, 200, json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "version", (json_int_t)version, "targeted",
				 (json_int_t)s.targeted, "active", (json_int_t)s.active, "failed", (json_int_t)s.failed,
				 "pending", (json_int_t)s.pending, "failures", s.failures, "pending_agents",
				 s.pending_agents, "rollouts", rollouts));
}

typedef struct {
	int64_t version, evaluated;
} evaluated_t;

static bool sum_evaluated(void *ud, const store_agent_row_t *ag)
{
	evaluated_t *e = ud;
	if (ag->shadow_version == e->version)
		e->evaluated += ag->shadow_evaluated;
	return true;
}

void policy_shadow_report(store_conn_t *sc, int64_t version, const store_filter_t *f, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	store_policy_t p;
	if (!get_version(sc, version, &p, a))
		return;
	evaluated_t ev = {version, 0};
	json_t *o = json_pack("{s:I}", "version", (json_int_t)version);
	if (store_agents_each(sc, sum_evaluated, &ev) != 0 || store_shadow_report(sc, version, f, o) != 0) {
		json_decref(o);
		return store_down(a, sc);
	}
	/* the agents' own counts of messages the shadow saw (their latest status) */
	json_object_set_new(o, "evaluated", json_integer(ev.evaluated));
	answer(a, 200, o);
}

/* ---- labels and audit ---- */

void policy_set_labels(store_conn_t *sc, const char *agent_id, const json_t *labels, const char *actor,
		       policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	char err[256];
	if (!console_is_uuid(agent_id))
		return refuse(a, 400, "bad_request", "the agent id must be a lowercase UUID");
	if (!rollout_labels_valid(labels, err, sizeof err))
		return refuse(a, 400, "bad_request", "%s", err);
	char *text = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	json_t *detail = json_pack("{s:s, s:O}", "agent_id", agent_id, "labels", labels);
	char *dtext = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(detail);
	store_audit_t au = {actor, "agent.labels", dtext};
	int r = text && dtext ? store_agent_set_labels(sc, agent_id, text, &au) : -1;
	free(text);
	free(dtext);
	if (r == STORE_NOT_FOUND)
		return refuse(a, 404, "not_found", "no enrolled agent %s", agent_id);
	if (r != 0)
		return store_down(a, sc);
	answer(a, 200, json_pack("{s:s, s:O}", "agent_id", agent_id, "labels", labels));
	a->targeting_changed = true;
}

void policy_audit(store_conn_t *sc, const store_filter_t *f, policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	json_t *list = json_array();
	bool more = false;
	int64_t last = 0;
	if (store_audit_list(sc, f, list, &more, &last) != 0) {
		json_decref(list);
		return store_down(a, sc);
	}
	char cursor[40];
	console_cursor_format(0, last, cursor);
	answer(a, 200, json_pack("{s:o, s:o}", "audit", list, "next_cursor", more ? json_string(cursor) : json_null()));
}

/* ---- agents' policy status and halting ---- */

typedef struct {
	const rollout_t *r;
	int64_t reporting, failed;
	char first_error[256];
} halt_count_t;

static bool halt_agent(void *ud, const store_agent_row_t *ag)
{
	halt_count_t *h = ud;
	int64_t k = h->r->version;
	if (!rollout_matches(h->r, ag->agent_id, ag->labels))
		return true;
	bool ran = ag->policy_version == k || ag->shadow_version == k;
	bool failed = !ran && ag->failed_version == k;
	h->reporting += ran || failed;
	if (failed && h->failed++ == 0)
		snprintf(h->first_error, sizeof h->first_error, "%s", ag->policy_error ? ag->policy_error : "(no reason)");
	return true;
}

/* Halts the running rollouts of version k that too many agents failed
 * (*halted: at least one). */
static bool check_halting(const policy_ctx_t *ctx, store_conn_t *sc, int64_t k, bool *halted)
{
	rollout_t *rs = NULL;
	size_t n = 0;
	if (store_rollouts_running(sc, &rs, &n) != 0)
		return false;
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		if (rs[i].version != k)
			continue;
		halt_count_t h = {&rs[i], 0, 0, ""};
		ok = store_agents_each(sc, halt_agent, &h) == 0;
		if (!ok || h.failed < 2 || (double)h.failed <= ctx->halt_share * (double)h.reporting)
			continue;
		char reason[400];
		snprintf(reason, sizeof reason, "%lld of %lld agents failed: %s", (long long)h.failed,
			 (long long)h.reporting, h.first_error);
		json_t *detail = json_pack("{s:I, s:I, s:s}", "rollout", (json_int_t)rs[i].id, "version", (json_int_t)k,
					   "reason", reason);
		char *dtext = json_dumps(detail, JSON_COMPACT);
		json_decref(detail);
		store_audit_t au = {"console", "rollout.halt", dtext};
		int r = store_rollout_halt(sc, rs[i].id, reason, &au);
		free(dtext);
		ok = r == 0 || r == STORE_NOT_FOUND; /* NOT_FOUND: another console halted it first */
		*halted |= r == 0;
	}
	store_rollouts_free(rs, n);
	return ok;
}

/* A positive integer member, or absent/null (0); false if anything else. */
static bool opt_version(const json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_object_get(o, key);
	*out = 0;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = json_integer_value(v);
	return true;
}

static bool opt_text(const json_t *o, const char *key, size_t max, const char **out)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v) || json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return false;
	*out = json_string_value(v);
	return true;
}

bool policy_agent_status(const policy_ctx_t *ctx, store_conn_t *sc, const char *agent_id, const json_t *policy,
			 policy_answer_t *a)
{
	memset(a, 0, sizeof *a);
	static const char *const sources[] = {"console", "file", "last-known-good", "built-in"};
	store_agent_policy_t p = {0};
	int64_t changed;
	const char *bad = !json_is_object(policy)					     ? "policy"
			  : !opt_version(policy, "version", &p.version)			     ? "policy.version"
			  : !opt_version(policy, "failed_version", &p.failed_version)	     ? "policy.failed_version"
			  : !opt_version(policy, "shadow_version", &p.shadow_version)	     ? "policy.shadow_version"
			  : !opt_version(policy, "shadow_evaluated", &p.shadow_evaluated)    ? "policy.shadow_evaluated"
			  : !opt_version(policy, "shadow_changed", &changed)		     ? "policy.shadow_changed"
			  : !opt_text(policy, "source", 32, &p.source)			     ? "policy.source"
			  : !opt_text(policy, "activated_at", 64, &p.activated_at)	     ? "policy.activated_at"
			  : !opt_text(policy, "last_error", 65536, &p.last_error)	     ? "policy.last_error"
											     : NULL;
	/* an agent's reason is kept, cut to a size a status view can show */
	char last_error[1024];
	if (p.last_error && strlen(p.last_error) >= sizeof last_error) {
		size_t n = sizeof last_error - 1;
		while (n > 0 && ((unsigned char)p.last_error[n] & 0xC0) == 0x80)
			n--; /* never inside a UTF-8 character */
		memcpy(last_error, p.last_error, n);
		last_error[n] = '\0';
		p.last_error = last_error;
	}
	bool known_source = !p.source;
	for (size_t i = 0; !known_source && i < sizeof sources / sizeof sources[0]; i++)
		known_source = strcmp(p.source, sources[i]) == 0;
	if (!bad && !known_source)
		bad = "policy.source";
	if (bad) {
		refuse(a, 400, "bad_request", "\"%s\" is not what console-api.md says it is", bad);
		return true;
	}
	int64_t prev_failed = 0;
	if (store_agent_policy_status(sc, agent_id, &p, &prev_failed) != 0)
		return false;
	/* a failure newly reported counts once toward halting its rollouts */
	if (p.failed_version > 0 && p.failed_version != prev_failed &&
	    !check_halting(ctx, sc, p.failed_version, &a->targeting_changed))
		return false;
	a->status = 204;
	return true;
}
