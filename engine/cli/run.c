/*
 * `dlpgate run`: everything is checked before the first worker starts
 * (flags, config, CA, trust anchors, listening sockets), so a bad setup is
 * one line and exit 2, never a half-running gateway. The main thread then
 * only waits for signals: SIGINT/SIGTERM stop gracefully (cli/stop.h),
 * SIGHUP reloads the policy part of the config.
 */
#include "cli/cli.h"
#include "cli/status.h"
#include "cli/stop.h"
#include "core/fdlimit.h"
#include "core/log.h"
#include "core/stats.h"
#include "engine.h"
#include "flow.h"
#include "net/addr.h"
#include "net/control.h"
#include "net/metrics_http.h"
#include "net/worker.h"
#include "policy/lua_policy.h"
#include "report/report.h"
#include "sources/appid.h"
#include "sync/sync.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <errno.h>
#include <inttypes.h>
#include <unistd.h>

typedef struct {
	const char *listen[ENGINE_MAX_LISTEN];
	size_t n_listen;
	const char *state_dir, *ca_cert, *ca_key, *upstream_ca, *config, *log_level, *log_format, *policy;
	const char *sysext_socket;
	const char *metrics;       /* --metrics ADDR:PORT */
	bool metrics_public;
	const char *console, *console_ca, *enroll_secret;
	const char *bundle_keys;   /* --bundle-keys FILE: the keys console bundles must be signed by */
	char *labels_json;         /* --labels k=v,... as the enrollment's object */
	long policy_wait;          /* --policy-wait S: the long-poll hold asked of the console */
	const char *transparent[4];  /* IPv4 and IPv6 redirects go to 127.0.0.1 and [::1] */
	size_t n_transparent;
	long sysext_uid;
	const char *app_identity; /* "bpf" (default) or "proc" */
	const char *balance;      /* "kernel" or "engine"; NULL: the platform's default */
	bool watch;
	long workers;
} run_opts_t;

/* Transparent mode marks its upstream sockets so the redirect skips
 * them; without the right to (CAP_NET_ADMIN) it would loop, so it does
 * not start. */
static void check_socket_mark(void)
{
#ifdef SO_MARK
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned mark = ENGINE_SOCKET_MARK;
	int r = fd >= 0 ? setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) : -1;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (r != 0)
		cli_fail("--transparent needs to mark its upstream sockets (SO_MARK): %s; run as root or with "
			 "CAP_NET_ADMIN", strerror(e));
#else
	cli_fail("--transparent is Linux only (nftables); on macOS the system extension hands flows over");
#endif
}

static void parse_sysext_socket(listen_spec_t *l, const char *path)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&l->addr;
	if (path[0] != '/')
		cli_fail("--sysext-socket %s: give an absolute path", path);
	if (strlen(path) >= sizeof sun->sun_path || strlen(path) >= sizeof l->text)
		cli_fail("--sysext-socket %s: path longer than %zu bytes", path, sizeof sun->sun_path - 1);
	memset(l, 0, sizeof *l);
	l->kind = LISTEN_SYSEXT;
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof sun->sun_path, "%s", path);
	snprintf(l->text, sizeof l->text, "%s", path);
}

static void parse_listen(listen_spec_t *l, const char *text, listen_kind_t kind)
{
	char err[200];
	memset(l, 0, sizeof *l);
	if (!addr_parse(kind == LISTEN_TRANSPARENT ? "--transparent" : "--listen", text, &l->addr, err, sizeof err))
		cli_fail("%s", err);
	snprintf(l->text, sizeof l->text, "%s", text);
	l->kind = kind;
}

static void parse(int argc, char **argv, run_opts_t *o)
{
	memset(o, 0, sizeof *o);
	o->workers = -1;
	o->sysext_uid = -1;
	o->policy_wait = -1;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is(a, "--listen")) {
			if (o->n_listen == ENGINE_MAX_LISTEN)
				cli_fail("at most %d --listen addresses", ENGINE_MAX_LISTEN);
			o->listen[o->n_listen++] = cli_value(argc, argv, &i, "--listen");
		} else if (cli_is(a, "--transparent")) {
			if (o->n_transparent == 4)
				cli_fail("at most 4 --transparent addresses");
			o->transparent[o->n_transparent++] = cli_value(argc, argv, &i, "--transparent");
		} else if (cli_is(a, "--sysext-socket")) {
			o->sysext_socket = cli_value(argc, argv, &i, "--sysext-socket");
		} else if (cli_is(a, "--sysext-uid")) {
			const char *v = cli_value(argc, argv, &i, "--sysext-uid");
			char *end;
			o->sysext_uid = strtol(v, &end, 10);
			if (*end || o->sysext_uid < 0 || o->sysext_uid > 0x7fffffffL)
				cli_fail("--sysext-uid %s: must be a numeric uid", v);
		} else if (cli_is(a, "--app-identity")) {
			o->app_identity = cli_value(argc, argv, &i, "--app-identity");
			if (strcmp(o->app_identity, "bpf") && strcmp(o->app_identity, "proc"))
				cli_fail("--app-identity %s: bpf (the kernel records who connects; /proc when it "
					 "cannot) or proc (/proc only)",
					 o->app_identity);
		} else if (cli_is(a, "--state-dir")) {
			o->state_dir = cli_value(argc, argv, &i, "--state-dir");
		} else if (cli_is(a, "--ca-cert")) {
			o->ca_cert = cli_value(argc, argv, &i, "--ca-cert");
		} else if (cli_is(a, "--ca-key")) {
			o->ca_key = cli_value(argc, argv, &i, "--ca-key");
		} else if (cli_is(a, "--upstream-ca")) {
			o->upstream_ca = cli_value(argc, argv, &i, "--upstream-ca");
		} else if (cli_is(a, "--config")) {
			o->config = cli_value(argc, argv, &i, "--config");
		} else if (cli_is(a, "--policy")) {
			o->policy = cli_value(argc, argv, &i, "--policy");
		} else if (cli_is(a, "--console")) {
			o->console = cli_value(argc, argv, &i, "--console");
		} else if (cli_is(a, "--console-ca")) {
			o->console_ca = cli_value(argc, argv, &i, "--console-ca");
		} else if (cli_is(a, "--enroll-secret")) {
			o->enroll_secret = cli_value(argc, argv, &i, "--enroll-secret");
		} else if (cli_is(a, "--bundle-keys")) {
			o->bundle_keys = cli_value(argc, argv, &i, "--bundle-keys");
		} else if (cli_is(a, "--labels")) {
			char err[300];
			free(o->labels_json);
			o->labels_json = report_labels_parse(cli_value(argc, argv, &i, "--labels"), err, sizeof err);
			if (!o->labels_json)
				cli_fail("%s", err);
		} else if (cli_is(a, "--policy-wait")) {
			const char *v = cli_value(argc, argv, &i, "--policy-wait");
			char *end;
			o->policy_wait = strtol(v, &end, 10);
			if (*end || o->policy_wait < 1 || o->policy_wait > SYNC_WAIT_MAX)
				cli_fail("--policy-wait %s: seconds the console may hold a policy poll, 1 to %d", v, SYNC_WAIT_MAX);
		} else if (!strcmp(a, "--watch")) {
			o->watch = true;
		} else if (cli_is(a, "--log-level")) {
			o->log_level = cli_value(argc, argv, &i, "--log-level");
		} else if (cli_is(a, "--balance")) {
			o->balance = cli_value(argc, argv, &i, "--balance");
			if (strcmp(o->balance, "kernel") && strcmp(o->balance, "engine"))
				cli_fail("--balance %s: must be kernel or engine", o->balance);
		} else if (cli_is(a, "--metrics")) {
			o->metrics = cli_value(argc, argv, &i, "--metrics");
		} else if (!strcmp(a, "--metrics-public")) {
			o->metrics_public = true;
		} else if (cli_is(a, "--log-format")) {
			o->log_format = cli_value(argc, argv, &i, "--log-format");
			if (!log_parse_format(o->log_format, &log_format))
				cli_fail("--log-format %s: must be text (key=value, the default) or json", o->log_format);
		} else if (cli_is(a, "--workers")) {
			const char *v = cli_value(argc, argv, &i, "--workers");
			char *end;
			o->workers = strtol(v, &end, 10);
			if (*end || o->workers < 1 || o->workers > 256)
				cli_fail("--workers %s: must be a number from 1 to 256", v);
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			cli_usage();
			exit(0);
		} else {
			cli_fail("unknown option for run: %s (see dlpgate --help)", a);
		}
	}
	if (!o->n_listen && !o->sysext_socket && !o->n_transparent)
		cli_fail("run needs at least one --listen ADDR:PORT (e.g. --listen 127.0.0.1:3128), --transparent ADDR:PORT "
			 "or --sysext-socket PATH");
	if (o->sysext_uid >= 0 && !o->sysext_socket)
		cli_fail("--sysext-uid says who may use --sysext-socket: give --sysext-socket PATH");
	if (o->app_identity && !o->n_transparent)
		cli_fail("--app-identity says how --transparent finds the app behind a flow: give --transparent ADDR:PORT");
	if (!o->state_dir)
		cli_fail("run needs --state-dir DIR (where the CA is kept)");
	if (!o->ca_cert != !o->ca_key)
		cli_fail("--ca-cert and --ca-key go together: give both or neither");
	if (o->ca_cert)
		cli_check_readable("--ca-cert", o->ca_cert);
	if (o->upstream_ca)
		cli_check_readable("--upstream-ca", o->upstream_ca);
	if (o->config)
		cli_check_readable("--config", o->config);
	if (o->policy)
		cli_check_readable("--policy", o->policy);
	if (o->console_ca)
		cli_check_readable("--console-ca", o->console_ca);
	if ((o->console_ca || o->enroll_secret || o->labels_json) && !o->console)
		cli_fail("--console-ca, --enroll-secret and --labels are for --console URL: give --console too");
	if ((o->bundle_keys || o->policy_wait > 0) && (!o->console || o->policy))
		cli_fail("--bundle-keys and --policy-wait are for policy from the console: give --console URL and no "
			 "--policy FILE");
	if (o->bundle_keys)
		cli_check_readable("--bundle-keys", o->bundle_keys);
	if (o->metrics_public && !o->metrics)
		cli_fail("--metrics-public lets --metrics bind a non-loopback address: give --metrics ADDR:PORT");
	if (o->watch && !o->policy)
		cli_fail("--watch reloads the --policy file: give --policy FILE");
}

/* ---- signals and reload ---- */

typedef struct {
	engine_t *e;
	const char *config_path;
	const char *policy_path;
	bool from_console;         /* policy sync owns the policy: a reload leaves it alone */
	uv_fs_event_t watch;
	uv_timer_t settle;
} main_ctx_t;

/* The policy a run uses: the Lua file when there is one, else the
 * config's bypass_hosts. */
static compiled_policy_t *make_policy(engine_t *e, const char *policy_path, const config_t *c, char *err, size_t n)
{
	if (policy_path) {
		lua_policy_opts_t o = {.n_workers = e->n_workers};
		return lua_policy_load(policy_path, &o, err, n);
	}
	compiled_policy_t *p = policy_static_new(c);
	if (!p)
		snprintf(err, n, "out of memory");
	return p;
}

/* A new policy is compiled first and swapped in only if it loads; flows in
 * progress keep the one they started with. */
static void reload(main_ctx_t *m, const char *why)
{
	char err[1024] = "";
	config_t c;
	config_defaults(&c);
	if (m->config_path && !config_load_file(&c, m->config_path, err, sizeof err)) {
		log_msg(LOG_ERROR, "reload_failed", "%s: %s (keeping the running policy)", why, err);
		config_free(&c);
		return;
	}
	compiled_policy_t *p = make_policy(m->e, m->policy_path, &c, err, sizeof err);
	config_free(&c);
	if (!p) {
		log_msg(LOG_ERROR, "reload_failed", "%s: %s (keeping the running policy)", why, err);
		return;
	}
	p->version = m->e->policy->version + 1;
	engine_policy_swap(m->e, p);
	report_set_policy_version(p->version_text);
	log_line_t l;
	log_begin(&l, LOG_INFO, "reload");
	log_kv_str(&l, "why", why);
	log_kv_str(&l, "policy", m->policy_path ? m->policy_path : "config bypass_hosts");
	log_kv_str(&l, "version", p->version_text);
	log_end(&l);
}

static void on_hup(uv_signal_t *s, int signum)
{
	(void)signum;
	main_ctx_t *m = s->data;
	/* an admin who reloads wants apps that pinned a certificate asked about
	 * again, under the policy now in force */
	size_t forgotten = pinned_clear(m->e->pinned);
	if (forgotten)
		log_msg(LOG_INFO, "pinned_cleared", "SIGHUP: %zu pinned app entries forgotten", forgotten);
	if (m->from_console) {
		log_msg(LOG_INFO, "reload", "SIGHUP: the policy comes from the console (dlpgate policy status); the "
			"config's limits apply at the next start");
		return;
	}
	if (!m->config_path && !m->policy_path) {
		log_msg(LOG_INFO, "reload", "SIGHUP: nothing to reload (no --policy, no --config)");
		return;
	}
	reload(m, "SIGHUP");
}

static void on_settled(uv_timer_t *t)
{
	reload(t->data, "the policy file changed");
}

static void on_policy_changed(uv_fs_event_t *w, const char *file, int events, int status)
{
	(void)events, (void)status;
	main_ctx_t *m = w->data;
	/* The policy and the packs it requires live beside it. */
	size_t n = file ? strlen(file) : 0;
	if (n < 4 || strcmp(file + n - 4, ".lua"))
		return;
	/* Editors write in bursts (truncate, write, rename): wait for quiet. */
	uv_timer_start(&m->settle, on_settled, 300, 0);
}

/* Each client connection costs two descriptors (client, upstream); the
 * rest (listeners, logs, spool, the app lookup's pidfds) fit in a reserve
 * of FD_RESERVE. The soft limit is raised to the hard one. A config that
 * does not name limits.max_connections (0 here) gets the default or what
 * the limit holds, whichever is less, quietly: that is sizing, not a
 * problem. One that names more than fits is lowered to what fits and the
 * start says so, rather than accept() failing under load. */
#define FD_RESERVE (64 + APPID_CACHE)

static void fit_fd_limit(config_t *c, uint32_t default_max)
{
	uint64_t limit = fdlimit_raise();
	uint64_t fits = limit == FDLIMIT_UNLIMITED ? UINT32_MAX
			: limit > 2 * FD_RESERVE  ? (limit - FD_RESERVE) / 2
						  : 32;
	if (!c->max_connections) {
		c->max_connections = fits < default_max ? (uint32_t)fits : default_max;
		return;
	}
	if (fits >= c->max_connections)
		return;
	log_msg(LOG_WARN, "fd_limit",
		"open-file limit %" PRIu64 " holds %" PRIu64 " connections: limits.max_connections lowered from %u "
		"(raise LimitNOFILE= or ulimit -n to keep it)",
		limit, fits, c->max_connections);
	c->max_connections = (uint32_t)fits;
}

int cli_run(int argc, char **argv)
{
	run_opts_t o;
	parse(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);

	static engine_t e;
	char err[1024];
	config_defaults(&e.cfg);
	uint32_t default_max = e.cfg.max_connections;
	e.cfg.max_connections = 0; /* still 0 after loading: the config did not say (fit_fd_limit) */
	if (o.config && !config_load_file(&e.cfg, o.config, err, sizeof err))
		cli_fail("%s", err);
	if (o.log_level && !log_parse_level(o.log_level, &log_threshold))
		cli_fail("--log-level %s: must be error, warn, info or debug", o.log_level);
	if (o.workers > 0)
		e.cfg.workers = (uint32_t)o.workers;
	e.n_workers = e.cfg.workers ? e.cfg.workers : uv_available_parallelism();
	if (e.n_workers < 1)
		e.n_workers = 1;
#ifdef __APPLE__
	e.balance_in_engine = !o.balance || !strcmp(o.balance, "engine"); /* SO_REUSEPORT does not spread there */
#else
	e.balance_in_engine = o.balance && !strcmp(o.balance, "engine");
#endif
	for (size_t i = 0; i < o.n_listen; i++)
		parse_listen(&e.listens[e.n_listens++], o.listen[i], LISTEN_EXPLICIT);
	for (size_t i = 0; i < o.n_transparent; i++) {
		if (e.n_listens == ENGINE_MAX_LISTEN)
			cli_fail("at most %d --listen and --transparent addresses", ENGINE_MAX_LISTEN);
		parse_listen(&e.listens[e.n_listens++], o.transparent[i], LISTEN_TRANSPARENT);
		check_socket_mark();
		e.mark_upstream = true;
	}
	if (o.sysext_socket) {
		if (e.n_listens == ENGINE_MAX_LISTEN)
			cli_fail("at most %d --listen addresses with --sysext-socket", ENGINE_MAX_LISTEN - 1);
		parse_sysext_socket(&e.listens[e.n_listens++], o.sysext_socket);
	}
	e.sysext_uid = o.sysext_uid;

	if (!ca_load_or_create(&e.ca, o.state_dir, o.ca_cert, o.ca_key, err, sizeof err))
		cli_fail("%s", err);
	/* `dlpgate status` asks through the control socket; bound before the
	 * spool is opened, so a second agent on this state dir stops here.
	 * (With --ca-cert the CA did not need the state dir: make it now.) */
	if (!ca_ensure_dir(o.state_dir, err, sizeof err))
		cli_fail("%s", err);
	uv_loop_t *loop = uv_default_loop();
	cli_stop_t stop;
	cli_stop_init(&stop, loop, &e);
	struct timespec started;
	clock_gettime(CLOCK_REALTIME, &started);
	status_source_t status_src = {.e = &e, .stop = &stop,
				      .started_unix_ms = (uint64_t)started.tv_sec * 1000 + (uint64_t)started.tv_nsec / 1000000};
	char ctl_path[PATH_MAX];
	if (snprintf(ctl_path, sizeof ctl_path, "%s/%s", o.state_dir, STATUS_SOCKET) >= (int)sizeof ctl_path)
		cli_fail("--state-dir %s: path too long", o.state_dir);
	control_t *ctl = control_start(loop, ctl_path, status_answer, &status_src, err, sizeof err);
	if (!ctl)
		cli_fail("%s", err);
	metrics_http_t *metrics = NULL;
	if (o.metrics) {
		stats_init();
		metrics = metrics_http_start(loop, o.metrics, o.metrics_public, agent_metrics_render, &status_src, err,
					     sizeof err);
		if (!metrics)
			cli_fail("%s", err);
	}
	if (!tlsctx_init(&e.tls, &e.cfg, o.upstream_ca, err, sizeof err))
		cli_fail("%s", err);
	if (!tlsctx_send_ca(&e.tls, e.ca.cert))
		cli_fail("cannot add the CA certificate to the client-leg TLS context");
	e.mint = mint_new(e.ca.cert, e.ca.key, e.cfg.leaf_cache_size, err, sizeof err);
	if (!e.mint)
		cli_fail("%s", err);
	e.pinned = pinned_new(e.cfg.pinned_max, e.cfg.pinned_ttl_s);
	e.workers = calloc(e.n_workers, sizeof *e.workers);
	if (!e.pinned || !e.workers)
		cli_fail("out of memory");
	if (o.policy && e.cfg.n_bypass_hosts)
		log_msg(LOG_WARN, "config", "bypass_hosts in %s is not used: --policy decides (dlp.host_matches in on_flow)",
			o.config);
	/* With a console and no --policy, the console decides what runs:
	 * the last known good bundle, else the shipped default, then what
	 * policy sync receives. */
	bool from_console = o.console && !o.policy;
	sync_opts_t so = {.e = &e, .state_dir = o.state_dir, .console = o.console, .console_ca = o.console_ca,
			  .socket_mark = e.mark_upstream ? ENGINE_SOCKET_MARK : 0, .bundle_keys = o.bundle_keys,
			  .wait_s = o.policy_wait > 0 ? (unsigned)o.policy_wait : SYNC_WAIT_DEFAULT};
	if (from_console) {
		e.policy = sync_boot(&so, err, sizeof err);
	} else {
		e.policy = make_policy(&e, o.policy, &e.cfg, err, sizeof err);
		if (e.policy)
			e.policy->version = 1;
	}
	if (!e.policy)
		cli_fail("%s", err);
	pthread_mutex_init(&e.policy_lock, NULL);

	char pin[PATH_MAX];
	snprintf(pin, sizeof pin, "%s/bundle-keys", o.state_dir);
	report_opts_t ro = {.state_dir = o.state_dir, .console = o.console, .console_ca = o.console_ca,
			    .enroll_secret = o.enroll_secret, .cfg = &e.cfg,
			    .socket_mark = e.mark_upstream ? ENGINE_SOCKET_MARK : 0, .labels_json = o.labels_json,
			    .pin_bundle_keys = o.console && !o.bundle_keys ? pin : NULL};
	if (!report_start(&ro, err, sizeof err))
		cli_fail("%s", err);
	report_set_policy_version(e.policy->version_text);
	if (from_console) {
		if (!sync_start(&so, err, sizeof err))
			cli_fail("%s", err);
	} else {
		sync_status_t st = {.source = "file"};
		sync_now_rfc3339(st.activated_at);
		sync_status_init(o.state_dir);
		sync_status_publish(&st);
	}

	if (!worker_open_listeners(&e, err, sizeof err))
		cli_fail("%s", err);
	fit_fd_limit(&e.cfg, default_max);
	/* Transparent mode names the app behind each flow: from the kernel's
	 * record of connects when it can keep one, else through /proc. */
	const char *app_identity = NULL;
	if (e.mark_upstream) {
		char why[512];
		bool want_bpf = !o.app_identity || !strcmp(o.app_identity, "bpf");
		bool bpf = want_bpf && appid_bpf_start(why, sizeof why);
		if (want_bpf && !bpf)
			log_msg(LOG_WARN, "app_identity",
				"the kernel cannot record who connects (%s): apps are found through /proc, "
				"which costs more per new flow",
				why);
		app_identity = bpf ? "bpf" : "proc";
	}
	if (!worker_start_all(&e, &flow_worker_hooks, err, sizeof err))
		cli_fail("%s", err);

	log_line_t l;
	log_begin(&l, LOG_INFO, "start");
	log_kv_str(&l, "version", DLPGATE_VERSION);
	for (size_t i = 0; i < e.n_listens; i++)
		log_kv_str(&l, "listen", e.listens[i].text);
	log_kv_u64(&l, "workers", e.n_workers);
	log_kv_u64(&l, "max_connections", e.cfg.max_connections);
	log_kv_str(&l, "ca", e.ca.cert_path);
	log_kv_str(&l, "ca_generated", e.ca.generated ? "yes" : "no");
	log_kv_str(&l, "policy", o.policy ? o.policy : from_console ? "console" : "config bypass_hosts");
	log_kv_str(&l, "policy_version", e.policy->version_text);
	log_kv_str(&l, "agent", report_agent_id());
	log_kv_str(&l, "console", o.console);
	if (o.metrics)
		log_kv_str(&l, "metrics", o.metrics);
	if (app_identity)
		log_kv_str(&l, "app_identity", app_identity);
	log_end(&l);

	main_ctx_t m = {.e = &e, .config_path = o.config, .policy_path = o.policy, .from_console = from_console};
	uv_signal_t shup;
	uv_signal_init(loop, &shup);
	shup.data = &m;
	uv_signal_start(&shup, on_hup, SIGHUP);
	uv_timer_init(loop, &m.settle);
	m.settle.data = &m;
	if (o.watch) {
		uv_fs_event_init(loop, &m.watch);
		m.watch.data = &m;
		/* The folder, not the file: editors replace files by rename. */
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s", o.policy);
		int r = uv_fs_event_start(&m.watch, on_policy_changed, dirname(dir), 0);
		if (r < 0)
			cli_fail("--watch %s: %s", o.policy, uv_strerror(r));
	}
	uv_run(loop, UV_RUN_DEFAULT);

	worker_stop_all(&e);
	sync_stop(); /* before report: it polls with report's token */
	/* after the workers: their last events are spooled and flushed */
	report_stop(cli_stop_graceful(&stop));
	if (o.sysext_socket)
		unlink(o.sysext_socket); /* the extension then sees "engine unreachable", not a dead socket */
	cli_stop_close(&stop);
	control_stop(ctl);
	metrics_http_stop(metrics);
	uv_close((uv_handle_t *)&shup, NULL);
	uv_close((uv_handle_t *)&m.settle, NULL);
	if (o.watch)
		uv_close((uv_handle_t *)&m.watch, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);

	mint_stats_t ms;
	mint_stats(e.mint, &ms);
	log_begin(&l, LOG_INFO, "stopped");
	log_kv_u64(&l, "flows", atomic_load(&e.flows_total));
	log_kv_u64(&l, "refused", atomic_load(&e.flows_refused));
	log_kv_u64(&l, "leaves_minted", ms.minted);
	log_kv_u64(&l, "leaf_cache_hits", ms.hits);
	log_end(&l);

	policy_unref(e.policy);
	pinned_free(e.pinned);
	mint_free(e.mint);
	tlsctx_free(&e.tls);
	ca_free(&e.ca);
	config_free(&e.cfg);
	free(e.workers);
	free(o.labels_json);
	return 0;
}
