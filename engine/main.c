/*
 * dlpgate: the endpoint DLP gateway. This file only dispatches commands;
 * see cli/ for each of them and DESIGN.md for the map.
 */
#include "cli/cli.h"

#include <llhttp.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_usage();
		return CLI_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		cli_usage();
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("dlpgate %s\n%s, libuv %s, llhttp %d.%d.%d\n", DLPGATE_VERSION,
		       OpenSSL_version(OPENSSL_VERSION), uv_version_string(), LLHTTP_VERSION_MAJOR,
		       LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
		return 0;
	}
	if (!strcmp(cmd, "run"))
		return cli_run(argc, argv);
	if (!strcmp(cmd, "ca"))
		return cli_ca(argc, argv);
	if (!strcmp(cmd, "check"))
		return cli_check(argc, argv);
	if (!strcmp(cmd, "test"))
		return cli_test(argc, argv);
	if (!strcmp(cmd, "scan"))
		return cli_scan(argc, argv);
	if (!strcmp(cmd, "import"))
		return cli_import(argc, argv);
	if (!strcmp(cmd, "edm"))
		return cli_edm(argc, argv);
	if (!strcmp(cmd, "redirect"))
		return cli_redirect(argc, argv);
	if (!strcmp(cmd, "spool"))
		return cli_spool(argc, argv);
	if (!strcmp(cmd, "status"))
		return cli_status(argc, argv);
	if (!strcmp(cmd, "pinned"))
		return cli_pinned(argc, argv);
	if (!strcmp(cmd, "policy"))
		return cli_policy(argc, argv);
	cli_fail("unknown command \"%s\" (commands: run, ca, check, test, scan, import, edm, redirect, spool, status, "
		 "pinned, policy; see "
		 "dlpgate --help)",
		 cmd);
}
