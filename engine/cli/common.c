#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("dlpgate: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(CLI_EXIT_USAGE);
}

bool cli_is(const char *arg, const char *name)
{
	size_t n = strlen(name);
	return !strncmp(arg, name, n) && (arg[n] == '\0' || arg[n] == '=');
}

const char *cli_value(int argc, char **argv, int *i, const char *name)
{
	const char *eq = strchr(argv[*i], '=');
	if (eq)
		return eq + 1;
	if (*i + 1 >= argc || !argv[*i + 1][0])
		cli_fail("%s needs a value (see dlpgate --help)", name);
	return argv[++*i];
}

void cli_check_readable(const char *flag, const char *path)
{
	struct stat st;
	FILE *f = fopen(path, "r");
	if (!f)
		cli_fail("%s %s: cannot read: %s", flag, path, strerror(errno));
	if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
		fclose(f);
		cli_fail("%s %s: not a regular file", flag, path);
	}
	fclose(f);
}

const char *cli_state_dir_only(int argc, char **argv, int first, const char *cmd)
{
	const char *state_dir = NULL;
	for (int i = first; i < argc; i++) {
		if (cli_is(argv[i], "--state-dir"))
			state_dir = cli_value(argc, argv, &i, "--state-dir");
		else
			cli_fail("unknown option for %s: %s (see dlpgate --help)", cmd, argv[i]);
	}
	if (!state_dir)
		cli_fail("%s needs --state-dir DIR (the agent's)", cmd);
	return state_dir;
}

void cli_usage(void)
{
	fputs("usage: dlpgate COMMAND [OPTIONS]\n"
	      "\n"
	      "An endpoint DLP gateway: a TLS-intercepting proxy that inspects HTTP.\n"
	      "\n"
	      "commands:\n"
	      "  run        run the gateway\n"
	      "  ca init    create the CA in --state-dir if it does not exist yet\n"
	      "  ca export  print the CA certificate (PEM) that clients must trust\n"
	      "  ca install install the CA certificate into the system store (as root) and the\n"
	      "             NSS databases of Chromium and Firefox (every user's as root; with\n"
	      "             --user only $HOME's); prints and records each store it changed\n"
	      "  ca uninstall  undo exactly what ca install recorded\n"
	      "  ca env     print shell settings that make Node, Python, curl, git and Java\n"
	      "             trust the CA\n"
	      "  check      compile and lint a policy or detector pack, run its examples\n"
	      "  test       run policy test files (cases with expected verdicts)\n"
	      "  scan       run a policy's or pack's detectors over files (JSON lines)\n"
	      "  import     turn a gitleaks configuration into a detector pack\n"
	      "  edm build  turn a table (CSV) of your own sensitive values into an exact data match\n"
	      "             pack of salted hashes (dlp.edm detectors)\n"
	      "  redirect   Linux transparent mode: send a user's or cgroup's outbound TCP to run\n"
	      "             --transparent (nftables table inet dlpgate); remove, status\n"
	      "  spool      what the agent has not yet delivered to the console\n"
	      "  status     ask the running agent (its control socket in --state-dir) how it is\n"
	      "  policy status  which policy the agent enforces, from where, and the last refusal\n"
	      "  pinned     the apps that refused dlpgate's certificate (list, clear)\n"
	      "\n"
	      "dlpgate run --listen ADDR:PORT [--listen ...] --state-dir DIR [options]\n"
	      "  --listen ADDR:PORT   explicit proxy address (IPv4, [IPv6] or localhost); repeatable\n"
	      "  --transparent ADDR:PORT  Linux transparent mode: where `dlpgate redirect` sends\n"
	      "                       outbound TCP (original destination from SO_ORIGINAL_DST);\n"
	      "                       give 127.0.0.1:PORT and [::1]:PORT for IPv4 and IPv6\n"
	      "  --app-identity bpf|proc  how transparent mode names the app behind a flow: bpf\n"
	      "                       (default) has the kernel record who connects (a record-\n"
	      "                       only program, gone when dlpgate exits), /proc if refused;\n"
	      "                       proc walks /proc only (slower per new flow)\n"
	      "  --sysext-socket PATH unix socket for the macOS system extension's flows (one\n"
	      "                       connection per flow, schemas/flow-frame.md); mode 0600\n"
	      "  --sysext-uid UID     who may connect to it besides root (default: root only)\n"
	      "  --state-dir DIR      where the CA lives (created 0700; CA generated on first run)\n"
	      "  --ca-cert FILE       use this CA certificate instead of the generated one ...\n"
	      "  --ca-key FILE        ... with this key (must be mode 0600 or stricter)\n"
	      "  --upstream-ca FILE   extra trust anchors for upstream servers (the system store\n"
	      "                       is always used)\n"
	      "  --workers N          worker threads (default: one per core)\n"
	      "  --balance kernel|engine  who spreads TCP connections over the workers: the\n"
	      "                       kernel (SO_REUSEPORT; Linux's default) or the engine (one\n"
	      "                       socket, each connection to the worker with the fewest\n"
	      "                       flows; macOS's default, where the kernel does not spread)\n"
	      "  --policy FILE        Lua policy (rules/default.lua is the shipped one); without\n"
	      "                       it and with --console, policy comes from the console as\n"
	      "                       signed bundles (last known good at start, else the shipped\n"
	      "                       default until the first arrives);\n"
	      "                       SIGHUP reloads it, a broken one is refused and the old kept\n"
	      "  --watch              reload the policy when a .lua file beside it changes\n"
	      "  --config FILE        JSON config: limits, timeouts, bypass_hosts\n"
	      "                       (schemas/config.schema.json); SIGHUP reloads bypass_hosts\n"
	      "  --log-level LEVEL    error, warn, info (default) or debug\n"
	      "  --log-format FORMAT  text (key=value lines, the default) or json (one object a line)\n"
	      "  --metrics ADDR:PORT  serve Prometheus metrics on GET /metrics (off by default;\n"
	      "                       loopback addresses only unless --metrics-public is given)\n"
	      "  --console URL        send events to the console (https://HOST:PORT): they are\n"
	      "                       spooled in DIR/spool first, so none is lost while it is away;\n"
	      "                       without it, events are JSON lines on stderr\n"
	      "  --console-ca FILE    the console's certificate or CA (PEM); only it is trusted\n"
	      "  --enroll-secret S    the fleet's enroll secret, needed until this agent holds a\n"
	      "                       token (kept in DIR/agent.json, mode 0600)\n"
	      "  --labels k=v,...     labels sent at enrollment (rollouts target them); keys\n"
	      "                       [a-z0-9_.-]{1,63}, values up to 128 bytes, at most 32\n"
	      "  --bundle-keys FILE   the keys console bundles must be signed by (lines \"ed25519\n"
	      "                       KEY_ID BASE64\"); default: the console's keys pinned at\n"
	      "                       enrollment in DIR/bundle-keys\n"
	      "  --policy-wait S      how long the console may hold a policy poll (default 30)\n"
	      "\n"
	      "dlpgate check POLICY_OR_PACK...\n"
	      "dlpgate test POLICY TESTFILE...\n"
	      "dlpgate scan [--no-prefilter] [--profile] POLICY_OR_PACK FILE... (- = stdin)\n"
	      "dlpgate import gitleaks CONFIG.toml > pack.lua\n"
	      "dlpgate edm build --columns NAME:TYPE,... [--primary NAME,...] FILE.csv > edm.pack\n"
	      "                       TYPE digits, alnum, email or name (schemas/edm-pack.md)\n"
	      "dlpgate redirect install --to PORT (--uid UID | --cgroup PATH | --all) [--ports 80,443]\n"
	      "dlpgate redirect remove | status   (nftables table inet dlpgate; Linux)\n"
	      "dlpgate spool status --state-dir DIR   events not yet delivered to the console\n"
	      "dlpgate policy status --state-dir DIR   one JSON object: version, source (console,\n"
	      "                       file, last-known-good, built-in), activated_at,\n"
	      "                       shadow_version, last_error; works without a running agent\n"
	      "dlpgate status --state-dir DIR [--json]   version, uptime, listeners, policy, flows,\n"
	      "                       pinned entries, spool, console link; exit 3 if not running\n"
	      "dlpgate pinned list|clear --state-dir DIR   the apps that refused dlpgate's\n"
	      "                       certificate, by server (their flows go to on_uninspectable),\n"
	      "                       or forget them all (SIGHUP forgets them too)\n"
	      "dlpgate ca init --state-dir DIR\n"
	      "dlpgate ca export|install|uninstall|env (--state-dir DIR | --ca-cert FILE) [--user]\n"
	      "\n"
	      "  --help               this text\n"
	      "  --version            version and library versions\n",
	      stdout);
}
