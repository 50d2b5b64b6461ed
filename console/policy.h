/*
 * policy: the console's side of policy distribution (schemas/bundle.md,
 * schemas/console-api.md "Policy distribution"), in three layers:
 *
 *   policy_check.c  a bundle compiled with the engine's own Lua runtime and
 *                   its tests run, in a private temp dir; shipped packs the
 *                   bundle requires but lacks are added so it is
 *                   self-contained.
 *   policy_ops.c    the operations (push, list, show, file, diff, activate,
 *                   shadow, rollback, status, shadow report, labels, agent
 *                   policy status and halting), each answering a status
 *                   and a JSON body. The CLI (policy_cli.c) and the admin
 *                   API (policy_api.c) are thin readers of arguments around
 *                   them, so both say and do exactly the same.
 *   policy_store.c  the tables (store.h).
 *
 * Keys: by default the console signs with STATE/bundle-signing.key (made on
 * first need, 0600). A state dir holding bundle-keys (written by
 * `run|init --bundle-keys FILE`) is "offline signing" mode: the console has
 * no signing key, accepts only bundle files signed by those keys, and
 * refuses to make bundles itself.
 */
#ifndef DLPGATE_CONSOLE_POLICY_H
#define DLPGATE_CONSOLE_POLICY_H

#include "console.h"
#include "store.h"
#include "sync/bundle.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#define POLICY_SIGNING_KEY "bundle-signing.key"
#define POLICY_KEYS_FILE "bundle-keys"
#define POLICY_DEFAULT_HALT_SHARE 0.2
/* Failure lines kept from a test run (the rest are counted). */
#define POLICY_MAX_FAILURES 50
/* A unified diff answered whole up to this; longer is cut with a note. */
#define POLICY_MAX_DIFF (4u << 20)

typedef struct policy_ctx {
	char state_dir[PATH_MAX];
	double halt_share;      /* --rollout-halt-share */
	/* The console's own key or its --bundle-keys, read once by a running
	 * console (policy_load_keys) so enrollments do not read key files;
	 * the CLI reads them when it needs them. */
	bundle_keyset_t base_keys;
	bool base_loaded;
} policy_ctx_t;

/* ---- policy_check.c ---- */

typedef struct {
	int passed, failed;
	json_t *failures;       /* array of strings: "policy.lua:3: ...", "tests/x.lua #2 name: why" */
} policy_check_t;

/* Compiles b's entry with the engine and runs its test files; true when it
 * compiles and no test fails. include_shipped (a bundle made here, not a
 * signed one): the shipped packs it required are added to b first.
 * out->failures is always an array the caller frees (json_decref). */
bool policy_check_bundle(bundle_t *b, bool include_shipped, policy_check_t *out);
/* The FAIL lines of a `dlpgate test` report appended to failures (at most
 * POLICY_MAX_FAILURES); whether there was one. Pure (unit-tested). */
bool policy_parse_test_output(const char *text, json_t *failures);

/* ---- policy_ops.c ---- */

/* An operation's answer: an HTTP status and a body. Errors are
 * {"error", "detail"} (+ "failures" for a refused bundle). Exactly one of
 * json and text is set. */
typedef struct {
	int status;
	json_t *json;
	char *text;             /* file contents and diffs */
	size_t text_len;
	const char *text_type;  /* "text/plain", "text/x-diff" */
	const char *code;       /* the error's code (a literal), NULL on success */
	/* A rollout was added or halted, or labels changed: held polls on this
	 * console should look again now (the store already bumped the
	 * generation and, on PostgreSQL, notified the other consoles). */
	bool targeting_changed;
} policy_answer_t;

void policy_answer_free(policy_answer_t *a);
/* The API's error body: {"error": code, "detail": the formatted text}. */
json_t *console_error_vjson(const char *code, const char *fmt, va_list ap);

/* "cli:USER" for the command line; the first 12 hex digits of the token's
 * hash for the API. */
void policy_actor_cli(char out[80]);
void policy_actor_token(const char *token_hash, char out[80]);

bool policy_keys_mode(const policy_ctx_t *ctx);
/* The key list agents pin (bundle.md "What an agent trusts"): STATE/bundle-keys,
 * or the console's signing key's public line (made if missing), and with a
 * store the key rotations of the stored versions. malloc'ed. */
char *policy_bundle_keys_text(const policy_ctx_t *ctx, store_conn_t *sc, char *err, size_t errlen);
/* run|init --bundle-keys FILE: checked, then copied to STATE/bundle-keys. */
bool policy_install_keys(const policy_ctx_t *ctx, const char *file, char *err, size_t errlen);
/* Reads the base keys into ctx (see policy_ctx_t). */
bool policy_load_keys(policy_ctx_t *ctx, char *err, size_t errlen);
/* The console's signing key, made if missing (not in keys mode). */
bool policy_ensure_signing_key(const policy_ctx_t *ctx, char *err, size_t errlen);

void policy_push_dir(const policy_ctx_t *ctx, store_conn_t *sc, const char *dir, const char *entry,
		     const char *message, const char *actor, policy_answer_t *a);
void policy_push_document(const policy_ctx_t *ctx, store_conn_t *sc, const char *doc, size_t len, const char *actor,
			  policy_answer_t *a);
void policy_list(store_conn_t *sc, policy_answer_t *a);
void policy_show(store_conn_t *sc, int64_t version, policy_answer_t *a);
void policy_file(store_conn_t *sc, int64_t version, const char *path, policy_answer_t *a);
/* The file an event's rule names: file is its chunk name, relative to the
 * entry's folder as agents name it ("policy.lua", "../pii.lua"), or with
 * bundle_path a path in the bundle (an older agent's rule, cut after
 * "/bundle/"). Its path in the bundle goes to path. */
void policy_rule_file(store_conn_t *sc, int64_t version, const char *file, bool bundle_path, char *path, size_t n,
		      policy_answer_t *a);
void policy_diff(store_conn_t *sc, int64_t va, int64_t vb, policy_answer_t *a);
/* kind ROLLOUT_ACTIVE or ROLLOUT_SHADOW; labels may be NULL (all agents). */
void policy_rollout(store_conn_t *sc, int64_t version, rollout_kind_t kind, const json_t *labels, int percent,
		    int sample_percent, const char *actor, policy_answer_t *a);
void policy_rollback(const policy_ctx_t *ctx, store_conn_t *sc, const char *actor, policy_answer_t *a);
void policy_status(store_conn_t *sc, int64_t version, policy_answer_t *a);
void policy_shadow_report(store_conn_t *sc, int64_t version, const store_filter_t *f, policy_answer_t *a);
void policy_rollouts(store_conn_t *sc, policy_answer_t *a);
void policy_set_labels(store_conn_t *sc, const char *agent_id, const json_t *labels, const char *actor,
		       policy_answer_t *a);
void policy_audit(store_conn_t *sc, const store_filter_t *f, policy_answer_t *a);
/* An agent's status post: its `policy` object checked, then into the
 * agents columns, then halting (console-api.md "Targeting") when it names a
 * newly failed version. Returns false on a store failure; a bad `policy`
 * object is answered 400 in a (nothing stored); done leaves a->json NULL. */
bool policy_agent_status(const policy_ctx_t *ctx, store_conn_t *sc, const char *agent_id, const json_t *policy,
			 policy_answer_t *a);

/* ---- policy_routes.c (pure) and policy_api.c ---- */
typedef enum {
	PR_NONE = 0, PR_PUSH, PR_LIST, PR_SHOW, PR_FILE, PR_DIFF, PR_ACTIVATE, PR_SHADOW, PR_ROLLBACK, PR_STATUS,
	PR_SHADOW_REPORT, PR_ROLLOUTS, PR_LABELS, PR_AUDIT
} policy_route_t;
/* PR_NONE when the path is not one of these (*wrong_method: it is, with
 * another method). */
policy_route_t policy_api_route(const char *method, const char *path, bool *wrong_method);
const char *policy_api_route_name(policy_route_t r);
/* The body a route may carry (0: the console's default). */
size_t policy_api_body_limit(const char *method, const char *path);
/* s[0..n) is a policy version (1..16 digits, > 0). */
bool policy_api_is_version(const char *s, size_t n, int64_t *v);
/* "/api/v1/policies/N[/REST]": N, and REST ("" when none). */
bool policy_api_version_path(const char *path, int64_t *v, const char **rest);
/* On a pool thread, after api.c checked the admin token. */
void policy_api_run(policy_route_t r, const policy_ctx_t *ctx, store_conn_t *sc, const console_req_t *req,
		    const char *actor, policy_answer_t *a);

/* ---- policy_cli.c ---- */
/* A mistake in the arguments: "dlpgate-console: MESSAGE" on stderr; 2. */
int console_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int policy_cli_main(int argc, char **argv);   /* dlpgate-console policy ... */
int policy_cli_agent(int argc, char **argv);  /* dlpgate-console agent labels ... */
int policy_cli_audit(int argc, char **argv);  /* dlpgate-console audit list ... */

#endif
