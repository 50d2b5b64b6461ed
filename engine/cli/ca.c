/*
 * `dlpgate ca export|install`: only the certificate is ever read here; the
 * key is not needed to trust a CA and is never opened.
 */
#include "cli/cli.h"
#include "tls/ca.h"

#include <errno.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int install(const ca_t *ca)
{
#ifdef __APPLE__
	char *argv[] = {"security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k",
			"/Library/Keychains/System.keychain", (char *)ca->cert_path, NULL};
	const char *dest = "the System keychain";
#else
	const char *dir = "/usr/local/share/ca-certificates";
	const char *dest = "/usr/local/share/ca-certificates/dlpgate.crt";
	if (geteuid() != 0)
		cli_fail("ca install writes %s and runs update-ca-certificates: run it as root", dest);
	if (access("/usr/sbin/update-ca-certificates", X_OK) != 0)
		cli_fail("ca install needs update-ca-certificates (Debian package ca-certificates); "
			 "or trust %s by hand", ca->cert_path);
	mkdir(dir, 0755);
	FILE *f = fopen(dest, "w");
	if (!f)
		cli_fail("cannot write %s: %s", dest, strerror(errno));
	if (PEM_write_X509(f, ca->cert) != 1 || fclose(f) != 0)
		cli_fail("cannot write %s", dest);
	chmod(dest, 0644);
	char *argv[] = {"update-ca-certificates", NULL};
#endif
	pid_t pid = fork();
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		cli_fail("%s failed: the CA is not installed", argv[0]);
	printf("dlpgate: CA %s installed into %s\n", ca->cert_path, dest);
	return 0;
}

int cli_ca(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[2], "export") && strcmp(argv[2], "install") && strcmp(argv[2], "init")))
		cli_fail("usage: dlpgate ca init --state-dir DIR | dlpgate ca export|install (--state-dir DIR | --ca-cert FILE)");
	const char *state_dir = NULL, *cert = NULL;
	for (int i = 3; i < argc; i++) {
		if (cli_is(argv[i], "--state-dir"))
			state_dir = cli_value(argc, argv, &i, "--state-dir");
		else if (cli_is(argv[i], "--ca-cert"))
			cert = cli_value(argc, argv, &i, "--ca-cert");
		else
			cli_fail("unknown option for ca %s: %s (see dlpgate --help)", argv[2], argv[i]);
	}
	if (!state_dir && !cert)
		cli_fail("ca %s needs --state-dir DIR or --ca-cert FILE", argv[2]);
	ca_t ca;
	char err[512];
	if (!strcmp(argv[2], "init")) {
		/* Makes the CA `dlpgate run` would make, without running. */
		if (!state_dir || cert)
			cli_fail("ca init needs --state-dir DIR (and no --ca-cert)");
		if (!ca_load_or_create(&ca, state_dir, NULL, NULL, err, sizeof err))
			cli_fail("%s", err);
		printf("%s\n", ca.cert_path);
		ca_free(&ca);
		return 0;
	}
	if (!ca_load_cert(&ca, state_dir, cert, err, sizeof err))
		cli_fail("%s%s", err, state_dir && !cert ? " (has `dlpgate run` made the CA yet?)" : "");
	int rc = 0;
	if (!strcmp(argv[2], "export")) {
		if (PEM_write_X509(stdout, ca.cert) != 1 || fflush(stdout) != 0)
			cli_fail("cannot write the certificate to stdout");
	} else {
		rc = install(&ca);
	}
	ca_free(&ca);
	return rc;
}
