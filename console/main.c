/*
 * main: dlpgate-console's command line.
 *
 *   dlpgate-console run --listen ADDR:PORT --state-dir DIR [options]
 *   dlpgate-console admin token create --state-dir DIR [--db ...]
 *   dlpgate-console init --state-dir DIR
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
	"  --log-level error|warn|info|debug\n"
	"  --log-format text|json    key=value lines (default) or one JSON object a line\n"
	"  --metrics ADDR:PORT       serve Prometheus metrics on GET /metrics (off by default;\n"
	"                            loopback only unless --metrics-public)\n";

static const char usage_admin[] =
	"usage: " PROG " admin token create --state-dir DIR [--db sqlite:PATH | postgresql://...]\n"
	"  Creates an admin API token and prints it on stdout (it is shown only once;\n"
	"  the console keeps its SHA-256). DIR must exist: it is the console's state dir.\n";

static const char usage_init[] =
	"usage: " PROG " init --state-dir DIR\n"
	"  Creates what run would on its first start, and nothing that exists: the state\n"
	"  dir (0700), console.pem and console.key (self-signed; key 0600), enroll-secret.\n"
	"  For packages and provisioning: the certificate exists before agents need it.\n";

static const char usage_top[] = "usage: " PROG " run|init|admin ... (--help on each)\n"
				"  " PROG " run --listen ADDR:PORT --state-dir DIR [...]\n"
				"  " PROG " init --state-dir DIR\n"
				"  " PROG " admin token create --state-dir DIR [--db ...]\n"
				"  " PROG " --version\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, PROG ": %s\n", msg);
	return 2;
}

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

static char default_db[4096];

static store_t *open_store(const char *state_dir, const char *db, char *err, size_t errlen)
{
	if (snprintf(default_db, sizeof default_db, "%s/console.db", state_dir) >= (int)sizeof default_db) {
		snprintf(err, errlen, "--state-dir path too long");
		return NULL;
	}
	return store_open(db, default_db, err, errlen);
}

static int cmd_run(int argc, char **argv)
{
	const char *metrics_addr = NULL;
	bool metrics_public = false;
	console_t c;
	memset(&c, 0, sizeof c);
	c.cfg.request_timeout_ms = 10000;
	c.cfg.idle_timeout_ms = 60000;
	c.cfg.max_connections = 4096;
	c.cfg.max_held_polls = 50000;
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
									: NULL;
		if (strcmp(a, "--metrics-public") == 0) {
			metrics_public = true;
			continue;
		}
		bool numeric = strcmp(a, "--request-timeout-ms") == 0 || strcmp(a, "--idle-timeout-ms") == 0 ||
			       strcmp(a, "--max-connections") == 0 || strcmp(a, "--max-held-polls") == 0;
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

	if (!ca_ensure_dir(c.cfg.state_dir, err, sizeof err))
		return usage_error("%s", err);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(c.cfg.max_connections);
	c.ssl_ctx = console_tls_ctx(&c.cfg, err, sizeof err);
	if (!c.ssl_ctx)
		return usage_error("%s", err);
	if (!console_enroll_secret(&c, err, sizeof err)) {
		SSL_CTX_free(c.ssl_ctx);
		return usage_error("%s", err);
	}
	c.store = open_store(c.cfg.state_dir, c.cfg.db, err, sizeof err);
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
	if (argc < 2 || strcmp(argv[0], "token") != 0 || strcmp(argv[1], "create") != 0)
		return usage_error("admin: unknown command; the one there is: admin token create --state-dir DIR");
	const char *state_dir = NULL, *db = NULL;
	for (int i = 2; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(usage_admin, stdout);
			return 0;
		}
		const char **slot = strcmp(argv[i], "--state-dir") == 0 ? &state_dir
				    : strcmp(argv[i], "--db") == 0	    ? &db
									    : NULL;
		if (!slot)
			return usage_error("admin token create: unknown option %s (see " PROG " admin --help)", argv[i]);
		if (i + 1 >= argc)
			return usage_error("admin token create: %s needs a value", argv[i]);
		*slot = argv[++i];
	}
	if (!state_dir)
		return usage_error("admin token create: --state-dir DIR is required (the console's state dir)");
	/* A token goes into an existing console's store: a mistyped directory
	 * must not become a new, empty database no console reads. */
	struct stat sd;
	if (stat(state_dir, &sd) != 0 || !S_ISDIR(sd.st_mode))
		return usage_error("admin token create: --state-dir %s does not exist (give the console's state dir; "
				   "`" PROG " run` creates it)",
				   state_dir);
	char err[1024];
	store_t *st = open_store(state_dir, db, err, sizeof err);
	if (!st) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	store_conn_t *sc = store_acquire(st, err, sizeof err);
	char token[72], hash[65], now[64];
	console_random_hex(token, 32);
	console_sha256_hex(token, hash);
	console_time_format(console_now_ms(), now);
	int r = sc ? store_admin_token_add(sc, hash, now) : -1;
	if (r != 0)
		fprintf(stderr, PROG ": cannot store the token: %s\n", sc ? store_conn_error(sc) : err);
	else
		printf("%s\n", token);
	OPENSSL_cleanse(token, sizeof token);
	store_release(sc, r != 0);
	store_close(st);
	return r == 0 ? 0 : 1;
}

static int cmd_init(int argc, char **argv)
{
	console_t c;
	memset(&c, 0, sizeof c);
	for (int i = 0; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(usage_init, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--state-dir") != 0)
			return usage_error("init: unknown option %s (see " PROG " init --help)", argv[i]);
		if (i + 1 >= argc)
			return usage_error("init: --state-dir needs a value");
		c.cfg.state_dir = argv[++i];
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
	bool ok = console_enroll_secret(&c, err, sizeof err);
	SSL_CTX_free(c.ssl_ctx);
	OPENSSL_cleanse(c.enroll_secret, sizeof c.enroll_secret);
	if (!ok)
		return usage_error("%s", err);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("no command: use run, init or admin (see " PROG " --help)");
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
	return usage_error("unknown command \"%s\": use run, init or admin (see " PROG " --help)", argv[1]);
}
