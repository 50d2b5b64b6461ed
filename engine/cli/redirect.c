/*
 * `dlpgate redirect install|remove|status`: the nftables side of Linux
 * transparent mode, in one table of its own (inet dlpgate) so that
 * installing is one atomic batch and removing is deleting that table,
 * which leaves the machine's ruleset exactly as it was.
 *
 * For the chosen scope (a uid, a cgroup v2 path, or every program) the
 * table redirects outbound TCP to the chosen ports into the transparent
 * listener and drops outbound UDP 443, so QUIC falls back to TCP where it
 * can be inspected. Packets with the engine's socket mark (its upstream
 * connections) and traffic to loopback are never touched: the engine
 * cannot intercept itself, and local services keep working.
 */
#include "cli/cli.h"
#include "engine.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TABLE "inet dlpgate"

/* Runs nft with script on stdin (or args only); returns its exit code.
 * quiet: its complaints are expected (status of a missing table). */
static int nft(const char *script, const char *const args[], bool quiet)
{
	int in[2];
	if (pipe(in) != 0)
		cli_fail("redirect: pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		cli_fail("redirect: fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(in[0], 0);
		close(in[0]);
		if (quiet) {
			int null = open("/dev/null", O_WRONLY);
			if (null >= 0)
				dup2(null, 2);
		}
		close(in[1]);
		const char *argv[8] = {"nft"};
		int a = 1;
		for (int i = 0; args[i] && a < 7; i++)
			argv[a++] = args[i];
		argv[a] = NULL;
		execvp("nft", (char *const *)argv);
		fprintf(stderr, "dlpgate: redirect: cannot run nft (%s): install nftables\n", strerror(errno));
		_exit(127);
	}
	close(in[0]);
	if (script && write(in[1], script, strlen(script)) != (ssize_t)strlen(script))
		cli_fail("redirect: writing the rules to nft: %s", strerror(errno));
	close(in[1]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static const char *ports_set(const char *list, char *out, size_t n)
{
	size_t o = 0;
	int count = 0;
	for (const char *p = list; *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > 65535 || (*end && *end != ','))
			cli_fail("redirect: --ports %s: a comma-separated list of ports, e.g. 80,443", list);
		o += (size_t)snprintf(out + o, n - o, "%s%ld", count++ ? ", " : "", v);
		if (o >= n)
			cli_fail("redirect: --ports %s: too many ports", list);
		p = *end ? end + 1 : end;
	}
	if (!count)
		cli_fail("redirect: --ports needs at least one port");
	return out;
}

/* "meta skuid 1000 " / "socket cgroupv2 level 2 \"a/b\" " / "" */
static void scope_match(const char *uid, const char *cgroup, char *out, size_t n)
{
	if (uid) {
		char *end;
		long v = strtol(uid, &end, 10);
		if (*end || v < 0 || v > 0x7fffffffL)
			cli_fail("redirect: --uid %s: a numeric uid", uid);
		snprintf(out, n, "meta skuid %ld ", v);
	} else if (cgroup) {
		const char *p = cgroup[0] == '/' ? cgroup + 1 : cgroup;
		int level = *p ? 1 : 0;
		for (const char *c = p; *c; c++) {
			if (*c == '/')
				level++;
			if (*c == '"' || *c == '\\' || !isprint((unsigned char)*c))
				cli_fail("redirect: --cgroup %s: a cgroup v2 path like /user.slice/user-1000.slice", cgroup);
		}
		if (!level)
			cli_fail("redirect: --cgroup %s: give a cgroup below the root", cgroup);
		snprintf(out, n, "socket cgroupv2 level %d \"%s\" ", level, p);
	} else {
		out[0] = '\0';
	}
}

static int install(int argc, char **argv)
{
	const char *to = NULL, *uid = NULL, *cgroup = NULL, *ports = "80,443";
	bool all = false;
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is(a, "--to"))
			to = cli_value(argc, argv, &i, "--to");
		else if (cli_is(a, "--uid"))
			uid = cli_value(argc, argv, &i, "--uid");
		else if (cli_is(a, "--cgroup"))
			cgroup = cli_value(argc, argv, &i, "--cgroup");
		else if (cli_is(a, "--ports"))
			ports = cli_value(argc, argv, &i, "--ports");
		else if (!strcmp(a, "--all"))
			all = true;
		else
			cli_fail("redirect install: unknown option %s", a);
	}
	char *end;
	long port = to ? strtol(to, &end, 10) : 0;
	if (!to || *end || port < 1 || port > 65535)
		cli_fail("redirect install needs --to PORT: the port of dlpgate run --transparent");
	if ((uid != NULL) + (cgroup != NULL) + all != 1)
		cli_fail("redirect install: choose one scope: --uid UID, --cgroup PATH or --all");
	char set[512], scope[300], script[2048];
	ports_set(ports, set, sizeof set);
	scope_match(uid, cgroup, scope, sizeof scope);
	/* Creating, deleting and creating again in one batch replaces an old
	 * table atomically: there is no moment without rules, or with two. */
	snprintf(script, sizeof script,
		 "table " TABLE "\n"
		 "delete table " TABLE "\n"
		 "table " TABLE " {\n"
		 "\tchain nat_out {\n"
		 "\t\ttype nat hook output priority -100; policy accept;\n"
		 "\t\tmeta mark 0x%x return\n"
		 "\t\toifname \"lo\" return\n"
		 "\t\tip daddr 127.0.0.0/8 return\n"
		 "\t\tip6 daddr ::1 return\n"
		 "\t\t%stcp dport { %s } redirect to :%ld\n"
		 "\t}\n"
		 "\tchain quic_out {\n"
		 "\t\ttype filter hook output priority 0; policy accept;\n"
		 "\t\tmeta mark 0x%x return\n"
		 "\t\toifname \"lo\" return\n"
		 "\t\t%sudp dport 443 drop\n"
		 "\t}\n"
		 "}\n",
		 ENGINE_SOCKET_MARK, scope, set, port, ENGINE_SOCKET_MARK, scope);
	int rc = nft(script, (const char *const[]){"-f", "-", NULL}, false);
	if (rc != 0)
		cli_fail("redirect install: nft refused the rules (exit %d; see above)", rc);
	printf("dlpgate: redirecting TCP %s%s%s to port %ld; UDP 443 dropped for the same scope "
	       "(dlpgate redirect remove undoes it)\n",
	       set, uid ? " of uid " : cgroup ? " of cgroup " : " of every program", uid ? uid : cgroup ? cgroup : "",
	       port);
	return 0;
}

int cli_redirect(int argc, char **argv)
{
#ifndef __linux__
	cli_fail("redirect is Linux only (nftables); on macOS the system extension hands flows to the engine");
#endif
	const char *sub = argc > 2 ? argv[2] : "";
	if (!strcmp(sub, "install"))
		return install(argc, argv);
	if (argc > 3)
		cli_fail("redirect %s takes no options", sub);
	if (!strcmp(sub, "remove")) {
		/* Deleting what is not there is not an error: remove is idempotent. */
		int rc = nft("table " TABLE "\ndelete table " TABLE "\n", (const char *const[]){"-f", "-", NULL}, false);
		if (rc != 0)
			cli_fail("redirect remove: nft failed (exit %d)", rc);
		printf("dlpgate: redirect removed\n");
		return 0;
	}
	if (!strcmp(sub, "status")) {
		int rc = nft(NULL, (const char *const[]){"list", "table", "inet", "dlpgate", NULL}, true);
		if (rc != 0)
			printf("dlpgate: no redirect installed\n");
		return rc == 0 ? 0 : 1;
	}
	cli_fail("usage: dlpgate redirect install --to PORT (--uid UID | --cgroup PATH | --all) [--ports 80,443] | "
		 "remove | status");
}
