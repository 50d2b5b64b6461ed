/*
 * policy_cli: `dlpgate-console policy|agent|audit ...`, the admin's command
 * line over the operations of policy_ops.c (the same ones the admin API
 * runs), straight on the store: no running console is needed, and a
 * console that runs sees the change through the store (the generation, and
 * NOTIFY on PostgreSQL).
 *
 * Output: a success prints exactly one JSON object on stdout (a diff or a
 * file prints its text). A mistake in the arguments is one line on stderr
 * and exit 2; a refusal (bundle refused, unknown version, nothing to roll
 * back) names the problem, lists the failures, stores nothing, exit 1.
 * The actor in the audit log is "cli:USER".
 */
#include "policy.h"

#include "console.h"
#include "core/bytebuf.h"
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "dlpgate-console"
#define MAX_POSITIONAL 3

static const char usage_policy[] =
	"usage: " PROG " policy COMMAND ... (each takes --help)\n"
	"  push --state-dir DIR [--db URL] BUNDLE_DIR|FILE.dlpbundle [--message TEXT] [--entry FILE]\n"
	"        compile with the engine, run the bundle's tests, sign (a directory) or verify\n"
	"        (a signed file), store as the next version; prints {\"version\",\"sha256\",\"tests\"}\n"
	"  sign BUNDLE_DIR --key KEYFILE --version N [--out FILE] [--message T] [--entry FILE]\n"
	"        [--expires RFC3339] [--next-key PUBFILE] [--retire-key KEY_ID]\n"
	"        offline: compile, test and sign on this machine; no console involved.\n"
	"        --next-key introduces the keys in PUBFILE (rotation: once the console stores\n"
	"        this version it accepts bundles signed by them); --retire-key withdraws one\n"
	"  keygen --out KEYFILE      a new Ed25519 signing key; prints its public key line\n"
	"  list | show N | diff A B | status N | rollouts\n"
	"  activate N [--labels k=v,...] [--percent P]\n"
	"  shadow N [--labels k=v,...] [--percent P] [--sample P]\n"
	"  shadow-report N [--since RFC3339] [--until RFC3339]\n"
	"  rollback                  a new version with the content of the version active\n"
	"                            before the current whole-fleet one, activated for all\n"
	"  All but sign and keygen take --state-dir DIR [--db sqlite:PATH|postgresql://...].\n";

static const char usage_agent[] =
	"usage: " PROG " agent labels AGENT_ID k=v,... --state-dir DIR [--db URL]\n"
	"  Replaces the agent's labels (an empty string clears them); rollouts target them.\n";

static const char usage_audit[] = "usage: " PROG " audit list --state-dir DIR [--db URL] [--limit N]\n"
				  "  The audit log, newest first: who (admin token id or cli:USER), when, what.\n";

typedef struct {
	const char *state_dir, *db, *message, *entry, *key, *out, *expires, *next_key, *retire_key, *labels, *since, *until;
	const char *percent, *sample, *version, *limit;
	const char *pos[MAX_POSITIONAL];
	int npos;
} opts_t;

int console_usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, PROG ": %s\n", msg);
	return 2;
}

static const char **slot_of(opts_t *o, const char *name)
{
	static const char *const names[] = {"--state-dir", "--db",	  "--message", "--entry",   "--key",
					    "--out",	   "--expires",	  "--next-key", "--labels", "--since",
					    "--until",	   "--percent",	  "--sample",  "--version", "--limit", "--retire-key"};
	const char **slots[] = {&o->state_dir, &o->db,	    &o->message, &o->entry,  &o->key,
				&o->out,       &o->expires, &o->next_key, &o->labels, &o->since,
				&o->until,     &o->percent, &o->sample,	 &o->version, &o->limit, &o->retire_key};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(name, names[i]) == 0)
			return slots[i];
	return NULL;
}

/* Options allowed for cmd (space-separated names), positionals counted. 0,
 * 1 for --help (printed), or 2 after saying what is wrong. */
static int parse(const char *cmd, int argc, char **argv, const char *allowed, int min_pos, int max_pos,
		 const char *help, opts_t *o)
{
	memset(o, 0, sizeof *o);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(help, stdout);
			return 1;
		}
		if (strncmp(a, "--", 2) != 0) {
			if (o->npos == max_pos)
				return console_usage_error("%s: unexpected argument \"%.200s\" (see --help)", cmd, a);
			o->pos[o->npos++] = a;
			continue;
		}
		const char **slot = slot_of(o, a);
		char padded[64];
		snprintf(padded, sizeof padded, " %s ", a);
		char allowed_padded[512];
		snprintf(allowed_padded, sizeof allowed_padded, " %s ", allowed);
		if (!slot || !strstr(allowed_padded, padded))
			return console_usage_error("%s: unknown option %s (see --help)", cmd, a);
		if (i + 1 >= argc)
			return console_usage_error("%s: %s needs a value", cmd, a);
		if (*slot)
			return console_usage_error("%s: %s given twice", cmd, a);
		*slot = argv[++i];
	}
	if (o->npos < min_pos)
		return console_usage_error("%s: missing argument (see --help)", cmd);
	if (strstr(allowed, "--state-dir") && !o->state_dir)
		return console_usage_error("%s: --state-dir DIR is required (the console's state dir)", cmd);
	return 0;
}

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Prints the answer; the exit code. */
static int finish(const char *cmd, policy_answer_t *a)
{
	int rc;
	if (a->status >= 200 && a->status < 300) {
		if (a->text)
			fwrite(a->text, 1, a->text_len, stdout);
		else if (a->json) {
			char *s = json_dumps(a->json, JSON_COMPACT);
			printf("%s\n", s ? s : "{}");
			free(s);
		}
		rc = 0;
	} else {
		const char *detail = json_string_value(json_object_get(a->json, "detail"));
		fprintf(stderr, PROG ": %s: %s\n", cmd, detail ? detail : "failed");
		size_t i;
		json_t *f;
		json_array_foreach(json_object_get(a->json, "failures"), i, f)
			fprintf(stderr, "  %s\n", json_string_value(f));
		rc = a->status == 400 ? 2 : 1;
	}
	policy_answer_free(a);
	return rc;
}

typedef struct {
	store_t *st;
	store_conn_t *sc;
	policy_ctx_t ctx;
	char actor[80];
} cli_store_t;

/* The console's store, which must exist already (a mistyped state dir must
 * not become a new, empty console). */
static bool open_console(const char *cmd, const opts_t *o, cli_store_t *cs)
{
	memset(cs, 0, sizeof *cs);
	struct stat sd;
	if (stat(o->state_dir, &sd) != 0 || !S_ISDIR(sd.st_mode)) {
		fprintf(stderr, PROG ": %s: --state-dir %s does not exist (give the console's state dir)\n", cmd,
			o->state_dir);
		return false;
	}
	if (o->db && !store_spec_valid(o->db)) {
		fprintf(stderr, PROG ": %s: --db: use sqlite:PATH or postgresql://USER@HOST:PORT/DB\n", cmd);
		return false;
	}
	char err[1024];
	cs->st = store_open_state(o->state_dir, o->db, err, sizeof err);
	cs->sc = cs->st ? store_acquire(cs->st, err, sizeof err) : NULL;
	if (!cs->sc) {
		fprintf(stderr, PROG ": %s: %s\n", cmd, err);
		store_close(cs->st);
		return false;
	}
	str_copy(cs->ctx.state_dir, sizeof cs->ctx.state_dir, o->state_dir);
	cs->ctx.halt_share = POLICY_DEFAULT_HALT_SHARE;
	policy_actor_cli(cs->actor);
	return true;
}

static void close_console(cli_store_t *cs)
{
	store_release(cs->sc, false);
	store_close(cs->st);
}

static bool read_file(const char *path, size_t max, char **data, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	bytebuf_t b;
	bytebuf_init(&b, 0);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= max)
		bytebuf_append(&b, chunk, n);
	bool bad = ferror(f);
	fclose(f);
	if (bad || b.len > max || !bytebuf_cstr(&b)) {
		snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "larger than a bundle may be");
		bytebuf_free(&b);
		return false;
	}
	*data = b.data;
	*len = b.len;
	return true;
}

/* ---- commands ---- */

static int cmd_push(int argc, char **argv)
{
	opts_t o;
	int r = parse("policy push", argc, argv, "--state-dir --db --message --entry", 1, 1, usage_policy, &o);
	if (r)
		return r == 1 ? 0 : r;
	struct stat st;
	if (stat(o.pos[0], &st) != 0)
		return console_usage_error("policy push: %s: %s", o.pos[0], strerror(errno));
	if (!S_ISDIR(st.st_mode) && (o.message || o.entry))
		return console_usage_error("policy push: --message and --entry are for a directory; a signed file carries its own");
	cli_store_t cs;
	if (!open_console("policy push", &o, &cs))
		return 1;
	policy_answer_t a;
	if (S_ISDIR(st.st_mode)) {
		policy_push_dir(&cs.ctx, cs.sc, o.pos[0], o.entry, o.message, cs.actor, &a);
	} else {
		char *doc = NULL, err[512];
		size_t len = 0;
		if (!read_file(o.pos[0], BUNDLE_MAX_DOCUMENT, &doc, &len, err, sizeof err)) {
			close_console(&cs);
			fprintf(stderr, PROG ": policy push: %s\n", err);
			return 1;
		}
		policy_push_document(&cs.ctx, cs.sc, doc, len, cs.actor, &a);
		free(doc);
	}
	close_console(&cs);
	return finish("policy push", &a);
}

static int cmd_sign(int argc, char **argv)
{
	opts_t o;
	int r = parse("policy sign", argc, argv, "--key --version --out --message --entry --expires --next-key --retire-key", 1, 1,
		      usage_policy, &o);
	if (r)
		return r == 1 ? 0 : r;
	int64_t version, expires_ms = 0;
	if (!o.key || !o.version)
		return console_usage_error("policy sign: --key KEYFILE and --version N are required");
	if (!parse_int(o.version, 1, (int64_t)1 << 53, &version))
		return console_usage_error("policy sign: --version %s: give an integer 1..2^53", o.version);
	if (o.expires && !console_time_parse(o.expires, &expires_ms))
		return console_usage_error("policy sign: --expires %s: give an RFC 3339 time, e.g. 2027-01-31T12:00:00Z", o.expires);
	char err[1024];
	bundle_t *b = bundle_from_dir(o.pos[0], o.entry, err, sizeof err);
	if (!b) {
		fprintf(stderr, PROG ": policy sign: %s\n", err);
		return 1;
	}
	bundle_keyset_t next;
	int rc = 1;
	if (o.message && strlen(o.message) >= sizeof b->message) {
		rc = console_usage_error("policy sign: --message: at most %zu bytes", sizeof b->message - 1);
		goto out;
	}
	if (o.message)
		str_copy(b->message, sizeof b->message, o.message);
	if (o.expires) {
		char t[64];
		console_time_format(expires_ms, t);
		str_copy(b->expires_at, sizeof b->expires_at, t);
		b->expires_ms = expires_ms;
	}
	if (o.next_key) {
		if (!bundle_keys_load(o.next_key, &next, err, sizeof err)) {
			fprintf(stderr, PROG ": policy sign: --next-key %s: %s\n", o.next_key, err);
			goto out;
		}
		for (size_t i = 0; i < next.n; i++)
			bundle_keys_add(&b->next_keys, &next.v[i]);
	}
	if (o.retire_key) {
		if (strlen(o.retire_key) != BUNDLE_KEY_ID_LEN) {
			rc = console_usage_error("policy sign: --retire-key %.40s: give a key id (16 hex digits)", o.retire_key);
			goto out;
		}
		str_copy(b->retire_keys[b->n_retire++], sizeof b->retire_keys[0], o.retire_key);
	}
	policy_check_t chk;
	if (!policy_check_bundle(b, true, &chk)) {
		fprintf(stderr, PROG ": policy sign: refused: %s\n",
			chk.failed ? "tests failed" : "the bundle does not compile or its tests cannot run");
		size_t i;
		json_t *f;
		json_array_foreach(chk.failures, i, f)
			fprintf(stderr, "  %s\n", json_string_value(f));
		json_decref(chk.failures);
		goto out;
	}
	json_decref(chk.failures);
	if (!bundle_sign(b, version, o.key, err, sizeof err)) {
		fprintf(stderr, PROG ": policy sign: %s\n", err);
		goto out;
	}
	size_t len = 0;
	char *doc = bundle_serialize(b, &len);
	char out[4200];
	if (o.out)
		snprintf(out, sizeof out, "%s", o.out);
	else
		snprintf(out, sizeof out, "policy-%lld.dlpbundle", (long long)version);
	FILE *f = doc ? fopen(out, "wbx") : NULL;
	bool ok = f && fwrite(doc, 1, len, f) == len;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok) {
		fprintf(stderr, PROG ": policy sign: cannot write %s: %s%s\n", out, strerror(errno),
			errno == EEXIST ? " (it exists; choose another --out)" : "");
	} else {
		char sha[65];
		console_sha256_hex(doc, sha);
		json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:{s:i, s:i}}", "version", (json_int_t)version, "sha256", sha,
				      "key_id", b->key_id, "out", out, "tests", "passed", chk.passed, "failed", chk.failed);
		char *s = json_dumps(j, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(j);
		rc = 0;
	}
	free(doc);
out:
	bundle_free(b);
	return rc;
}

static int cmd_keygen(int argc, char **argv)
{
	opts_t o;
	int r = parse("policy keygen", argc, argv, "--out", 0, 0, usage_policy, &o);
	if (r)
		return r == 1 ? 0 : r;
	if (!o.out)
		return console_usage_error("policy keygen: --out KEYFILE is required (the private key, written 0600)");
	bundle_key_t pub;
	char err[512];
	if (!bundle_key_generate(o.out, &pub, err, sizeof err)) {
		fprintf(stderr, PROG ": policy keygen: %s\n", err);
		return 1;
	}
	bundle_keyset_t ks = {.n = 0};
	bundle_keys_add(&ks, &pub);
	char *line = bundle_keys_format(&ks);
	fputs(line ? line : "", stdout);
	free(line);
	return 0;
}

/* A version argument, or a usage error. */
static bool version_arg(const char *cmd, const char *s, int64_t *v)
{
	if (parse_int(s, 1, (int64_t)1 << 53, v))
		return true;
	console_usage_error("%s: \"%.40s\" is not a policy version (a positive integer)", cmd, s);
	return false;
}

static int cmd_rollout(const char *cmd, rollout_kind_t kind, int argc, char **argv)
{
	opts_t o;
	int r = parse(cmd, argc, argv,
		      kind == ROLLOUT_SHADOW ? "--state-dir --db --labels --percent --sample" : "--state-dir --db --labels --percent",
		      1, 1, usage_policy, &o);
	if (r)
		return r == 1 ? 0 : r;
	int64_t version, percent = 100, sample = 100;
	if (!version_arg(cmd, o.pos[0], &version))
		return 2;
	if (o.percent && !parse_int(o.percent, 1, 100, &percent))
		return console_usage_error("%s: --percent %s: give 1..100", cmd, o.percent);
	if (o.sample && !parse_int(o.sample, 1, 100, &sample))
		return console_usage_error("%s: --sample %s: give 1..100", cmd, o.sample);
	char err[256];
	json_t *labels = NULL;
	if (o.labels && !(labels = rollout_labels_parse(o.labels, err, sizeof err)))
		return console_usage_error("%s: --labels: %s", cmd, err);
	cli_store_t cs;
	if (!open_console(cmd, &o, &cs)) {
		json_decref(labels);
		return 1;
	}
	policy_answer_t a;
	policy_rollout(cs.sc, version, kind, labels, (int)percent, (int)sample, cs.actor, &a);
	json_decref(labels);
	close_console(&cs);
	return finish(cmd, &a);
}

/* list, show, diff, status, shadow-report, rollback, rollouts: a store and
 * at most two versions. */
static int cmd_simple(const char *cmd, const char *name, int argc, char **argv)
{
	bool two = !strcmp(name, "diff"), none = !strcmp(name, "list") || !strcmp(name, "rollback") ||
						 !strcmp(name, "rollouts");
	bool report = !strcmp(name, "shadow-report");
	opts_t o;
	int npos = two ? 2 : none ? 0 : 1;
	int r = parse(cmd, argc, argv, report ? "--state-dir --db --since --until" : "--state-dir --db", npos, npos,
		      usage_policy, &o);
	if (r)
		return r == 1 ? 0 : r;
	int64_t v[2] = {0, 0};
	for (int i = 0; i < npos; i++)
		if (!version_arg(cmd, o.pos[i], &v[i]))
			return 2;
	store_filter_t f = {.limit = 100};
	if (o.since && !console_time_parse(o.since, &f.since_ms))
		return console_usage_error("%s: --since %s: give an RFC 3339 time", cmd, o.since);
	if (o.until && !console_time_parse(o.until, &f.until_ms))
		return console_usage_error("%s: --until %s: give an RFC 3339 time", cmd, o.until);
	f.has_since = o.since != NULL;
	f.has_until = o.until != NULL;
	cli_store_t cs;
	if (!open_console(cmd, &o, &cs))
		return 1;
	policy_answer_t a;
	if (!strcmp(name, "list"))
		policy_list(cs.sc, &a);
	else if (!strcmp(name, "rollouts"))
		policy_rollouts(cs.sc, &a);
	else if (!strcmp(name, "rollback"))
		policy_rollback(&cs.ctx, cs.sc, cs.actor, &a);
	else if (two)
		policy_diff(cs.sc, v[0], v[1], &a);
	else if (!strcmp(name, "show"))
		policy_show(cs.sc, v[0], &a);
	else if (!strcmp(name, "status"))
		policy_status(cs.sc, v[0], &a);
	else
		policy_shadow_report(cs.sc, v[0], &f, &a);
	close_console(&cs);
	return finish(cmd, &a);
}

int policy_cli_main(int argc, char **argv)
{
	/* A bundle's failing tests are the answer, listed once on stderr: the
	 * engine's own warning line per policy error would repeat them. */
	log_threshold = LOG_ERROR;
	if (argc < 1)
		return console_usage_error("policy: which command? push, sign, keygen, list, show, diff, activate, shadow, "
			     "shadow-report, rollback, status, rollouts (see " PROG " policy --help)");
	const char *c = argv[0];
	if (!strcmp(c, "--help") || !strcmp(c, "-h")) {
		fputs(usage_policy, stdout);
		return 0;
	}
	char cmd[64];
	snprintf(cmd, sizeof cmd, "policy %.40s", c);
	if (!strcmp(c, "push"))
		return cmd_push(argc - 1, argv + 1);
	if (!strcmp(c, "sign"))
		return cmd_sign(argc - 1, argv + 1);
	if (!strcmp(c, "keygen"))
		return cmd_keygen(argc - 1, argv + 1);
	if (!strcmp(c, "activate"))
		return cmd_rollout(cmd, ROLLOUT_ACTIVE, argc - 1, argv + 1);
	if (!strcmp(c, "shadow"))
		return cmd_rollout(cmd, ROLLOUT_SHADOW, argc - 1, argv + 1);
	static const char *const simple[] = {"list", "show", "diff", "status", "shadow-report", "rollback", "rollouts"};
	for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
		if (!strcmp(c, simple[i]))
			return cmd_simple(cmd, c, argc - 1, argv + 1);
	return console_usage_error("policy: unknown command \"%.40s\" (see " PROG " policy --help)", c);
}

/* `agent labels` and `audit list`: a group with one command. The exit
 * code, or -1 to go on with o parsed. */
static int only_command(int argc, char **argv, const char *group, const char *cmd, const char *allowed, int npos,
			const char *help, const char *synopsis, opts_t *o)
{
	if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		fputs(help, stdout);
		return 0;
	}
	if (argc < 1 || strcmp(argv[0], cmd) != 0)
		return console_usage_error("%s: the command there is: %s", group, synopsis);
	char name[64];
	snprintf(name, sizeof name, "%s %s", group, cmd);
	int r = parse(name, argc - 1, argv + 1, allowed, npos, npos, help, o);
	return r ? (r == 1 ? 0 : r) : -1;
}

int policy_cli_agent(int argc, char **argv)
{
	opts_t o;
	int r = only_command(argc, argv, "agent", "labels", "--state-dir --db", 2, usage_agent,
			     "agent labels AGENT_ID k=v,... --state-dir DIR", &o);
	if (r >= 0)
		return r;
	char err[256];
	json_t *labels = rollout_labels_parse(o.pos[1], err, sizeof err);
	if (!labels)
		return console_usage_error("agent labels: %s", err);
	cli_store_t cs;
	if (!open_console("agent labels", &o, &cs)) {
		json_decref(labels);
		return 1;
	}
	policy_answer_t a;
	policy_set_labels(cs.sc, o.pos[0], labels, cs.actor, &a);
	json_decref(labels);
	close_console(&cs);
	return finish("agent labels", &a);
}

int policy_cli_audit(int argc, char **argv)
{
	opts_t o;
	int r = only_command(argc, argv, "audit", "list", "--state-dir --db --limit", 0, usage_audit,
			     "audit list --state-dir DIR [--limit N]", &o);
	if (r >= 0)
		return r;
	int64_t limit = 100;
	if (o.limit && !parse_int(o.limit, 1, 1000, &limit))
		return console_usage_error("audit list: --limit %s: give 1..1000", o.limit);
	cli_store_t cs;
	if (!open_console("audit list", &o, &cs))
		return 1;
	store_filter_t f = {.limit = (int)limit};
	policy_answer_t a;
	policy_audit(cs.sc, &f, &a);
	close_console(&cs);
	return finish("audit list", &a);
}
