/*
 * Linux transparent mode: transparent.sh builds two network namespaces
 * (the endpoint with dlpgate and its nftables redirect, and an "internet"
 * with nginx) and checks scope, identity, loops, QUIC and removal there;
 * the host's own rules are never touched. Needs root, ip netns and nft:
 * without them the test says it was skipped and why.
 */
#include "dlp.h"
#include "suites.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *missing(void)
{
	if (geteuid() != 0)
		return "needs root (network namespaces, nftables)";
	/* a namespace of our own, with an nftables table in it: what the test needs */
	char probe[256];
	snprintf(probe, sizeof probe,
		 "ip netns add dlpprobe%d && ip netns exec dlpprobe%d nft add table inet probe; r=$?; "
		 "ip netns del dlpprobe%d 2>/dev/null; exit $r",
		 (int)getpid(), (int)getpid(), (int)getpid());
	char *const sh[] = {"sh", "-c", probe, NULL};
	if (th_run(sh, NULL, 0, NULL, NULL, NULL, 10000) != 0)
		return "cannot create a network namespace with nftables in it (iproute2, nftables, CAP_NET_ADMIN)";
	return NULL;
}

START_TEST(transparent_mode_in_namespaces)
{
	const char *why = missing();
	if (why) {
		fprintf(stderr, "transparent_mode_in_namespaces: SKIPPED: %s\n", why);
		return;
	}
	char net[32], tag[16], work[600], abs_bin[PATH_MAX], abs_policy[PATH_MAX];
	unsigned n = (unsigned)getpid() % 200 + 20;
	snprintf(net, sizeof net, "10.77.%u", n);
	snprintf(tag, sizeof tag, "%u", (unsigned)getpid() % 100000);
	/* uid 1000 must read the CA files: a world-readable dir, not the 0700 test dir */
	const char *base = getenv("TMPDIR");
	snprintf(work, sizeof work, "%s/dlpgate-tp-%u", base && *base ? base : "/tmp", (unsigned)getpid());
	mkdir(work, 0755);
	chmod(work, 0755);
	th_cert ca = th_make_ca("tp-ca");
	char up_ip[48];
	snprintf(up_ip, sizeof up_ip, "%s.2", net);
	char up_ip6[48];
	snprintf(up_ip6, sizeof up_ip6, "fd00:77:%x::2", n);
	th_leaf_opts o = {.cn = "up.test", .dns = {"up.test"}, .ip = {up_ip, up_ip6}};
	th_cert server = th_make_leaf(&ca, "tp-server", &o);
	char ca_copy[700];
	snprintf(ca_copy, sizeof ca_copy, "%s/upstream-ca.pem", work);
	size_t len;
	char *pem = th_read_file(ca.cert_path, &len);
	th_write_file(ca_copy, pem, len, 0644);
	free(pem);
	ck_assert(realpath(dlp_bin(), abs_bin) && realpath("rules/default.lua", abs_policy));
	char env[9][PATH_MAX + 32];
	snprintf(env[0], sizeof env[0], "DLPGATE=%s", abs_bin);
	snprintf(env[1], sizeof env[1], "WORK=%s", work);
	snprintf(env[2], sizeof env[2], "UPSTREAM_CA=%s", ca_copy);
	snprintf(env[3], sizeof env[3], "SERVER_CERT=%s", server.cert_path);
	snprintf(env[4], sizeof env[4], "SERVER_KEY=%s", server.key_path);
	snprintf(env[5], sizeof env[5], "POLICY=%s", abs_policy);
	snprintf(env[6], sizeof env[6], "NET=%s", net);
	snprintf(env[7], sizeof env[7], "TAG=%s", tag);
	snprintf(env[8], sizeof env[8], "NET6=fd00:77:%x", n);
	char *const argv[] = {"env",  env[0], env[1], env[2], env[3], env[4], env[5], env[6], env[7], env[8],
			      "bash", "tests/integration/transparent.sh", NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run(argv, NULL, 0, &out, NULL, &err, 120000);
	char *dlog_path = NULL;
	if (asprintf(&dlog_path, "%s/dlpgate.log", work) < 0)
		th_fail("out of memory");
	size_t dlen = 0;
	char *dlog = access(dlog_path, R_OK) == 0 ? th_read_file(dlog_path, &dlen) : strdup("(none)");
	ck_assert_msg(rc == 0 && strstr(out, "all transparent checks passed"), "exit %d\n%s\n%s\ndlpgate log:\n%s", rc,
		      out, err, dlog);
	fprintf(stderr, "%s", out);
	free(out), free(err), free(dlog), free(dlog_path);
	char *const rm[] = {"rm", "-rf", work, NULL};
	th_run(rm, NULL, 0, NULL, NULL, NULL, 10000);
	th_cert_free(&server);
	th_cert_free(&ca);
}
END_TEST

Suite *transparent_suite(void)
{
	Suite *s = suite_create("transparent");
	TCase *t = tcase_create("transparent");
	tcase_set_timeout(t, 150);
	tcase_add_test(t, transparent_mode_in_namespaces);
	suite_add_tcase(s, t);
	return s;
}
