/*
 * main: dlpgate-console's command line.
 *
 *   dlpgate-console run --listen ADDR:PORT --state-dir DIR [options]
 *   dlpgate-console admin token create --state-dir DIR [--db ...]
 *   dlpgate-console init --state-dir DIR [--bundle-keys FILE]
 *   dlpgate-console policy|agent|audit ...   (policy_cli.c)
 *
 * Every mistake a user can make is one line on stderr naming the argument
 * or file and the fix, and exit code 2 (1 for failures at run time).
 * Secrets given on the command line are never echoed back.
 */
#include "console.h"

#include "core/fdlimit.h"
#include "core/log.h"
#include "net/addr.h"
#include "net/metrics_http.h"
#include "policy.h"
#include "store.h"
#include "tls/ca.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "dlpgate-console"
/* One line on stderr and exit code 2, the same for every command (policy_cli.c). */
#define usage_error console_usage_error

static const char usage_run[] =
	"usage: " PROG " run --listen ADDR:PORT --state-dir DIR [options]\n"
	"  --listen ADDR:PORT        HTTPS address to serve (e.g. 0.0.0.0:8443)\n"
	"  --state-dir DIR           console.pem/console.key, enroll-secret, console.db\n"
	"  --db sqlite:PATH | postgresql://USER@HOST:PORT/DB\n"
	"                            the store (default sqlite:DIR/console.db)\n"
	"  --tls-cert FILE --tls-key FILE\n"
	"                            serve this certificate (default: DIR/console.pem,\n"
	"                            self-signed, generated on first run)\n"
	"  --enroll-secret S         the fleet's enroll secret (default: DIR/enroll-secret,\n"
	"                            generated on first run)\n"
	"  --request-timeout-ms N    a request (head and body) must arrive within N ms (10000)\n"
	"  --idle-timeout-ms N       keep-alive connections idle this long are closed (60000)\n"
	"  --max-connections N       connections served at once (4096)\n"
	"  --max-held-polls N        policy long-polls held at once; past it 503 (50000)\n"
	"  --web-root DIR            the web UI's files, served at / (default\n"
	"                            " CONSOLE_WEB_ROOT "; make run: build/web)\n"
	"  --session-idle S          a browser session ends after S seconds unused (1800)\n"
	"  --session-max S           and S seconds after sign-in at the latest (43200)\n"
	"  --policy-check-ms N       how often the store is asked whether policy changed (500);\n"
	"                            on PostgreSQL LISTEN/NOTIFY wakes sooner, this is the fallback\n"
	"  --log-level error|warn|info|debug\n"
	"  --log-format text|json    key=value lines (default) or one JSON object a line\n"
	"  --metrics ADDR:PORT       serve Prometheus metrics on GET /metrics (off by default;\n"
	"                            loopback only unless --metrics-public)\n"
	"  --bundle-keys FILE        accept only policy bundles signed offline by these keys\n"
	"                            (copied to DIR/bundle-keys; the console then has no\n"
	"                            signing key). Default: the console signs with\n"
	"                            DIR/bundle-signing.key, made on first run\n"
	"  --rollout-halt-share S    a rollout halts when more than this share (0..1, default\n"
	"                            0.2) of its reporting agents failed it, at least 2\n";

static const char usage_admin[] =
	"usage: " PROG " admin token create [--role viewer|analyst|admin] [--name NAME] --state-dir DIR [--db ...]\n"
	"       " PROG " admin token list --state-dir DIR [--db ...]\n"
	"       " PROG " admin token revoke TOKEN_ID --state-dir DIR [--db ...]\n"
	"  create: makes an API token and prints it on stdout (it is shown only once; the\n"
	"  console keeps its SHA-256). --role (default admin, what tokens made before\n"
	"  roles were): viewer reads counts, events and agents without masked samples;\n"
	"  analyst also sees masked samples and works incidents; admin also manages\n"
	"  policy, agent labels and tokens. list: the tokens (id, role, name, created,\n"
	"  revoked) as JSON. revoke: the token with that id (12 hex digits) and its\n"
	"  browser sessions stop working at once. DIR must exist: the console's state dir.\n";

static const char usage_init[] =
	"usage: " PROG " init --state-dir DIR [--bundle-keys FILE]\n"
	"  Creates what run would on its first start, and nothing that exists: the state\n"
	"  dir (0700), console.pem and console.key (self-signed; key 0600), enroll-secret,\n"
	"  and bundle-signing.key (0600) unless --bundle-keys FILE (offline signing: the\n"
	"  keys are copied to DIR/bundle-keys and no signing key is made).\n"
	"  For packages and provisioning: the certificate exists before agents need it.\n";

static const char usage_top[] = "usage: " PROG " run|init|admin|policy|agent|audit ... (--help on each)\n"
				"  " PROG " run --listen ADDR:PORT --state-dir DIR [...]\n"
				"  " PROG " init --state-dir DIR [--bundle-keys FILE]\n"
				"  " PROG " admin token create|list|revoke --state-dir DIR [--db ...]\n"
				"  " PROG " policy push|sign|keygen|list|show|diff|activate|shadow|shadow-report|\n"
				"                      rollback|status|rollouts ...\n"
				"  " PROG " agent labels AGENT_ID k=v,... --state-dir DIR\n"
				"  " PROG " audit list --state-dir DIR [--limit N]\n"
				"  " PROG " --version\n";


static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* One descriptor per connection plus a reserve (listener, database, logs). */
static void raise_fd_limit(uint32_t want)
{
	uint64_t limit = fdlimit_raise();
	if (limit != FDLIMIT_UNLIMITED && limit < (uint64_t)want + 64)
		log_msg(LOG_WARN, "fd_limit",
			"open-file limit %" PRIu64 " is below --max-connections %u; raise LimitNOFILE= or ulimit -n", limit,
			want);
}

/* The keys of policy distribution, as run and init make them: --bundle-keys
 * installed (offline signing), or the console's own signing key made if
 * missing; then the keys are read once for enrollment to answer. */
static bool policy_setup(policy_ctx_t *p, const char *state_dir, const char *bundle_keys, char *err, size_t errlen)
{
	if (!str_copy(p->state_dir, sizeof p->state_dir, state_dir)) {
		snprintf(err, errlen, "--state-dir path too long");
		return false;
	}
	if (bundle_keys && !policy_install_keys(p, bundle_keys, err, errlen))
		return false;
	if (!policy_keys_mode(p) && !policy_ensure_signing_key(p, err, errlen))
		return false;
	return policy_load_keys(p, err, errlen); /* enrollment answers them */
}

/* Which keys this console signs with or trusts, for the start log. */
static void log_bundle_keys(const policy_ctx_t *p)
{
	bundle_keyset_t ks;
	char err[256];
	char *keys = policy_bundle_keys_text(p, NULL, err, sizeof err);
	if (keys && bundle_keys_parse(keys, &ks, err, sizeof err))
		log_msg(LOG_INFO, "bundle_keys", "%s: %zu key(s), first %s",
			policy_keys_mode(p) ? "offline signing (bundle-keys), this console cannot sign"
					    : "the console signs",
			ks.n, ks.n ? ks.v[0].key_id : "-");
	free(keys);
}

static int cmd_run(int argc, char **argv)
{
	const char *metrics_addr = NULL, *bundle_keys = NULL, *halt_share = NULL;
	bool metrics_public = false;
	console_t c;
	memset(&c, 0, sizeof c);
	c.cfg.request_timeout_ms = 10000;
	c.cfg.idle_timeout_ms = 60000;
	c.cfg.max_connections = 4096;
	c.cfg.max_held_polls = 50000;
	c.cfg.policy_check_ms = 500;
	c.cfg.web_root = CONSOLE_WEB_ROOT;
	c.cfg.session_idle_s = 1800;
	c.cfg.session_max_s = 43200;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage_run, stdout);
			return 0;
		}
		if (strncmp(a, "--", 2) != 0)
			return usage_error("run: unexpected argument \"%s\" (see " PROG " run --help)", a);
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **slot = strcmp(a, "--listen") == 0		? &c.cfg.listen
				    : strcmp(a, "--state-dir") == 0	? &c.cfg.state_dir
				    : strcmp(a, "--db") == 0		? &c.cfg.db
				    : strcmp(a, "--tls-cert") == 0	? &c.cfg.tls_cert
				    : strcmp(a, "--tls-key") == 0	? &c.cfg.tls_key
				    : strcmp(a, "--enroll-secret") == 0 ? &c.cfg.enroll_secret
				    : strcmp(a, "--metrics") == 0	? &metrics_addr
				    : strcmp(a, "--bundle-keys") == 0	? &bundle_keys
				    : strcmp(a, "--rollout-halt-share") == 0 ? &halt_share
				    : strcmp(a, "--web-root") == 0	? &c.cfg.web_root
									: NULL;
		if (strcmp(a, "--metrics-public") == 0) {
			metrics_public = true;
			continue;
		}
		bool numeric = strcmp(a, "--request-timeout-ms") == 0 || strcmp(a, "--idle-timeout-ms") == 0 ||
			       strcmp(a, "--max-connections") == 0 || strcmp(a, "--max-held-polls") == 0 ||
			       strcmp(a, "--policy-check-ms") == 0 || strcmp(a, "--session-idle") == 0 ||
			       strcmp(a, "--session-max") == 0;
		if (!slot && !numeric && strcmp(a, "--log-level") != 0 && strcmp(a, "--log-format") != 0)
			return usage_error("run: unknown option %s (see " PROG " run --help)", a);
		if (!v)
			return usage_error("run: %s needs a value", a);
		i++;
		if (slot) {
			*slot = v;
		} else if (strcmp(a, "--log-level") == 0) {
			if (!log_parse_level(v, &log_threshold))
				return usage_error("--log-level %s: use error, warn, info or debug", v);
		} else if (strcmp(a, "--log-format") == 0) {
			if (!log_parse_format(v, &log_format))
				return usage_error("--log-format %s: use text or json", v);
		} else if (strcmp(a, "--request-timeout-ms") == 0) {
			if (!parse_u32(v, 100, 3600000, &c.cfg.request_timeout_ms))
				return usage_error("--request-timeout-ms %s: give 100..3600000", v);
		} else if (strcmp(a, "--idle-timeout-ms") == 0) {
			if (!parse_u32(v, 100, 86400000, &c.cfg.idle_timeout_ms))
				return usage_error("--idle-timeout-ms %s: give 100..86400000", v);
		} else if (strcmp(a, "--policy-check-ms") == 0) {
			if (!parse_u32(v, 50, 3600000, &c.cfg.policy_check_ms))
				return usage_error("--policy-check-ms %s: give 50..3600000", v);
		} else if (strcmp(a, "--session-idle") == 0) {
			if (!parse_u32(v, 1, 86400, &c.cfg.session_idle_s))
				return usage_error("--session-idle %s: give 1..86400 seconds", v);
		} else if (strcmp(a, "--session-max") == 0) {
			if (!parse_u32(v, 1, 30 * 86400, &c.cfg.session_max_s))
				return usage_error("--session-max %s: give 1..2592000 seconds", v);
		} else if (strcmp(a, "--max-held-polls") == 0) {
			if (!parse_u32(v, 1, 1000000, &c.cfg.max_held_polls))
				return usage_error("--max-held-polls %s: give 1..1000000", v);
		} else if (!parse_u32(v, 1, 1000000, &c.cfg.max_connections)) {
			return usage_error("--max-connections %s: give 1..1000000", v);
		}
	}
	if (!c.cfg.listen)
		return usage_error("run: --listen ADDR:PORT is required (e.g. --listen 127.0.0.1:8443)");
	if (!c.cfg.state_dir)
		return usage_error("run: --state-dir DIR is required");
	char err[1024];
	if (!addr_parse("--listen", c.cfg.listen, &c.listen_addr, err, sizeof err))
		return usage_error("%s", err);
	if (c.cfg.db && !store_spec_valid(c.cfg.db))
		return usage_error("--db: unknown database \"%.64s\": use sqlite:PATH or postgresql://USER@HOST:PORT/DB",
				   c.cfg.db);

	static policy_ctx_t policy;
	policy.halt_share = POLICY_DEFAULT_HALT_SHARE;
	if (halt_share) {
		char *end;
		policy.halt_share = strtod(halt_share, &end);
		if (!*halt_share || *end || !(policy.halt_share >= 0 && policy.halt_share < 1))
			return usage_error("--rollout-halt-share %s: give a share from 0 to below 1, e.g. 0.2", halt_share);
	}
	if (!ca_ensure_dir(c.cfg.state_dir, err, sizeof err))
		return usage_error("%s", err);
	if (!policy_setup(&policy, c.cfg.state_dir, bundle_keys, err, sizeof err))
		return usage_error("%s", err);
	c.policy_ctx = &policy;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(c.cfg.max_connections);
	c.ssl_ctx = console_tls_ctx(&c.cfg, err, sizeof err);
	if (!c.ssl_ctx)
		return usage_error("%s", err);
	if (!console_enroll_secret(&c, err, sizeof err)) {
		SSL_CTX_free(c.ssl_ctx);
		return usage_error("%s", err);
	}
	c.store = store_open_state(c.cfg.state_dir, c.cfg.db, err, sizeof err);
	if (!c.store) {
		SSL_CTX_free(c.ssl_ctx);
		OPENSSL_cleanse(c.enroll_secret, sizeof c.enroll_secret);
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	c.loop = &c.w.loop;
	uv_loop_init(c.loop);
	int rc = 0;
	if (metrics_addr) {
		console_metrics_init();
		c.metrics = metrics_http_start(c.loop, metrics_addr, metrics_public, console_metrics_render, &c, err,
					       sizeof err);
		if (!c.metrics) {
			fprintf(stderr, PROG ": %s\n", err);
			rc = 2;
		}
	} else if (metrics_public) {
		fprintf(stderr, PROG ": --metrics-public lets --metrics bind a non-loopback address: give --metrics\n");
		rc = 2;
	}
	if (rc) {
		/* nothing runs yet: the loop only closes what was opened */
	} else if (!console_server_start(&c, err, sizeof err)) {
		fprintf(stderr, PROG ": %s\n", err);
		rc = 2;
	} else {
		log_line_t l;
		log_begin(&l, LOG_INFO, "start");
		log_kv_str(&l, "listen", c.cfg.listen);
		log_kv_str(&l, "db", c.store->drv->name);
		log_kv_str(&l, "state_dir", c.cfg.state_dir);
		log_kv_u64(&l, "request_timeout_ms", c.cfg.request_timeout_ms);
		log_kv_u64(&l, "max_connections", c.cfg.max_connections);
		log_end(&l);
		log_bundle_keys(&policy);
	}
	uv_run(c.loop, UV_RUN_DEFAULT);
	c.w.stopping = true;
	while (c.w.free_blocks) {
		iobuf_t *b = c.w.free_blocks;
		c.w.free_blocks = b->next;
		free(b);
	}
	uv_loop_close(c.loop);
	store_close(c.store);
	SSL_CTX_free(c.ssl_ctx);
	OPENSSL_cleanse(c.enroll_secret, sizeof c.enroll_secret);
	if (rc == 0)
		log_msg(LOG_INFO, "stopped", "clean exit");
	return rc;
}

static bool is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int cmd_admin(int argc, char **argv)
{
	/* admin --help, admin token --help, admin token create --help */
	if ((argc >= 1 && is_help(argv[0])) || (argc >= 2 && !strcmp(argv[0], "token") && is_help(argv[1]))) {
		fputs(usage_admin, stdout);
		return 0;
	}
	const char *sub = argc >= 2 && !strcmp(argv[0], "token") ? argv[1] : "";
	bool create = !strcmp(sub, "create"), list = !strcmp(sub, "list"), revoke = !strcmp(sub, "revoke");
	if (!create && !list && !revoke)
		return usage_error("admin: unknown command; there are: admin token create|list|revoke --state-dir DIR");
	const char *state_dir = NULL, *db = NULL, *role_name = "admin", *name = NULL, *revoke_id = NULL;
	for (int i = 2; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(usage_admin, stdout);
			return 0;
		}
		if (revoke && !revoke_id && argv[i][0] != '-') {
			revoke_id = argv[i];
			continue;
		}
		const char **slot = strcmp(argv[i], "--state-dir") == 0 ? &state_dir
				    : strcmp(argv[i], "--db") == 0	    ? &db
				    : create && !strcmp(argv[i], "--role") ? &role_name
				    : create && !strcmp(argv[i], "--name") ? &name
									    : NULL;
		if (!slot)
			return usage_error("admin token %s: unknown option %s (see " PROG " admin --help)", sub, argv[i]);
		if (i + 1 >= argc)
			return usage_error("admin token %s: %s needs a value", sub, argv[i]);
		*slot = argv[++i];
	}
	if (!state_dir)
		return usage_error("admin token %s: --state-dir DIR is required (the console's state dir)", sub);
	store_role_t role = store_role_parse(role_name);
	if (!role)
		return usage_error("admin token create: --role must be viewer, analyst or admin");
	if (name && (strlen(name) > 128 || !*name))
		return usage_error("admin token create: --name must be 1 to 128 bytes");
	if (revoke && (!revoke_id || strlen(revoke_id) != 12 || strspn(revoke_id, "0123456789abcdef") != 12))
		return usage_error("admin token revoke: give the token's id (12 hex digits, from admin token list)");
	/* A token goes into an existing console's store: a mistyped directory
	 * must not become a new, empty database no console reads. */
	struct stat sd;
	if (stat(state_dir, &sd) != 0 || !S_ISDIR(sd.st_mode))
		return usage_error("admin token %s: --state-dir %s does not exist (give the console's state dir; "
				   "`" PROG " run` creates it)",
				   sub, state_dir);
	char err[1024];
	store_t *st = store_open_state(state_dir, db, err, sizeof err);
	if (!st) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	store_conn_t *sc = store_acquire(st, err, sizeof err);
	char token[72], hash[65], now[64], actor[80], detail[160];
	console_time_format(console_now_ms(), now);
	policy_actor_cli(actor);
	int r = -1;
	if (sc && list) {
		json_t *tokens = json_array();
		r = store_tokens_list(sc, tokens);
		json_t *o = json_pack("{s:o}", "tokens", tokens);
		if (r == 0) {
			json_dumpf(o, stdout, JSON_COMPACT);
			putchar('\n');
		}
		json_decref(o);
	} else if (sc && revoke) {
		snprintf(detail, sizeof detail, "{\"token_id\":\"%s\"}", revoke_id);
		store_audit_t au = {actor, "admin.token.revoke", detail};
		r = store_token_revoke(sc, revoke_id, now, &au);
		if (r == STORE_NOT_FOUND) {
			fprintf(stderr, PROG ": admin token revoke: no live token has the id %s\n", revoke_id);
			store_release(sc, false);
			store_close(st);
			return 1;
		}
		if (r == 0)
			printf("{\"token_id\":\"%s\",\"revoked_at\":\"%s\"}\n", revoke_id, now);
	} else if (sc) {
		console_random_hex(token, 32);
		console_sha256_hex(token, hash);
		/* who made a token, and which one (its id is the actor of what it does) */
		snprintf(detail, sizeof detail, "{\"token_id\":\"%.12s\",\"role\":\"%s\"}", hash, store_role_name(role));
		store_audit_t au = {actor, "admin.token.create", detail};
		r = store_admin_token_add_audited(sc, hash, now, role, name, &au);
		if (r == 0)
			printf("%s\n", token);
		OPENSSL_cleanse(token, sizeof token);
	}
	if (r != 0)
		fprintf(stderr, PROG ": admin token %s: %s\n", sub, sc ? store_conn_error(sc) : err);
	store_release(sc, r != 0);
	store_close(st);
	return r == 0 ? 0 : 1;
}

static int cmd_init(int argc, char **argv)
{
	const char *bundle_keys = NULL;
	console_t c;
	memset(&c, 0, sizeof c);
	for (int i = 0; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(usage_init, stdout);
			return 0;
		}
		const char **slot = strcmp(argv[i], "--state-dir") == 0	? &c.cfg.state_dir
				    : strcmp(argv[i], "--bundle-keys") == 0 ? &bundle_keys
									    : NULL;
		if (!slot)
			return usage_error("init: unknown option %s (see " PROG " init --help)", argv[i]);
		if (i + 1 >= argc)
			return usage_error("init: %s needs a value", argv[i]);
		*slot = argv[++i];
	}
	if (!c.cfg.state_dir)
		return usage_error("init: --state-dir DIR is required");
	char err[1024];
	if (!ca_ensure_dir(c.cfg.state_dir, err, sizeof err))
		return usage_error("%s", err);
	/* the same functions run uses: made if missing, kept if there */
	c.ssl_ctx = console_tls_ctx(&c.cfg, err, sizeof err);
	if (!c.ssl_ctx)
		return usage_error("%s", err);
	policy_ctx_t policy = {.halt_share = POLICY_DEFAULT_HALT_SHARE};
	bool ok = console_enroll_secret(&c, err, sizeof err) &&
		  policy_setup(&policy, c.cfg.state_dir, bundle_keys, err, sizeof err);
	SSL_CTX_free(c.ssl_ctx);
	OPENSSL_cleanse(c.enroll_secret, sizeof c.enroll_secret);
	if (!ok)
		return usage_error("%s", err);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("no command: use run, init, admin, policy, agent or audit (see " PROG " --help)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage_top, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf(PROG " %s\n", DLPGATE_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 2, argv + 2);
	if (strcmp(argv[1], "admin") == 0)
		return cmd_admin(argc - 2, argv + 2);
	if (strcmp(argv[1], "init") == 0)
		return cmd_init(argc - 2, argv + 2);
	if (strcmp(argv[1], "policy") == 0)
		return policy_cli_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "agent") == 0)
		return policy_cli_agent(argc - 2, argv + 2);
	if (strcmp(argv[1], "audit") == 0)
		return policy_cli_audit(argc - 2, argv + 2);
	return usage_error("unknown command \"%s\": use run, init, admin, policy, agent or audit (see " PROG
			   " --help)",
			   argv[1]);
}
