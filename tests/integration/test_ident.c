/*
 * Identity numbers, confidence and exact data match through the proxy:
 * real curl, real TLS interception, a real upstream whose received bytes
 * are the proof. A Steuer-ID next to its word is high confidence and
 * blocked (the event says so, with a masked sample only); a CPF next to
 * a weak word is medium and reaches the upstream masked; a customer's
 * account number with her email in the same JSON is blocked by an EDM
 * detector built from a CSV, and the same number without a corroborating
 * value passes.
 */
#include "detect/edm.h"
#include "dlp.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char policy_src[] =
	"local dlp = require 'dlp'\n"
	"local pii = require 'pii'\n"
	"fail = 'closed'\n"
	"local ids = dlp.merge(pii)\n"
	"ids.email, ids.phone = nil, nil -- addresses are the EDM's corroboration here\n"
	"customers = dlp.edm{ pack = 'customers.pack', primary = 'account', corroborate = {'email', 'name'},\n"
	"                     distance = 300, min_corroborate = 1, name = 'customers', severity = 'high' }\n"
	"function on_request(req, flow)\n"
	"  local sure = req:scan(dlp.merge(ids, {customers = customers}), {min_confidence = 'high'})\n"
	"  if next(sure) then return dlp.block('sure: ' .. dlp.names(sure), sure) end\n"
	"  local likely = req:scan(ids, {min_confidence = 'medium'})\n"
	"  if next(likely) then return dlp.redact(likely) end\n"
	"  return dlp.pass()\n"
	"end\n";

static const char customers_csv[] = "account,email,name\n"
				    "1234567890,Jane.Doe@Acme-Corp.com,Jane Doe\n"
				    "9876543210,bob@contoso.com,Robert Smith\n";

typedef struct {
	world_t w;
	th_upstream *up;
	dlp_t d;
} fixture_t;

static void setup(fixture_t *fx)
{
	fx->w = world_new();
	fx->up = th_upstream_start(&fx->w.server);
	/* a folder of its own: require looks in the policy's folder and its parent */
	char *dir = th_path("policy");
	ck_assert(mkdir(dir, 0700) == 0);
	char *csv, *pack, *policy;
	ck_assert(asprintf(&csv, "%s/customers.csv", dir) > 0 && asprintf(&pack, "%s/customers.pack", dir) > 0 &&
		  asprintf(&policy, "%s/policy.lua", dir) > 0);
	free(dir);
	th_write_file(csv, customers_csv, sizeof customers_csv - 1, 0600);
	static const edm_column_t cols[] = {{"account", EDM_DIGITS, true}, {"email", EDM_EMAIL, false},
					    {"name", EDM_NAME, false}};
	FILE *in = fopen(csv, "r"), *out = fopen(pack, "w");
	edm_build_stats_t st;
	char err[300];
	ck_assert_msg(in && out && edm_build(in, cols, 3, out, &st, err, sizeof err), "%s", err);
	fclose(in);
	fclose(out);
	th_write_file(policy, policy_src, sizeof policy_src - 1, 0644);
	fx->d = dlp_start(fx->w.ca.cert_path, NULL, (const char *const[]){"--policy", policy, NULL});
	free(csv), free(pack), free(policy);
}

static void teardown(fixture_t *fx)
{
	dlp_stop(&fx->d);
	th_upstream_stop(fx->up);
	world_free(&fx->w);
}

static char *post(fixture_t *fx, const char *type, const char *body)
{
	char *u = url("127.0.0.1", th_upstream_port(fx->up), "/echo", true);
	const char *args[] = {"-H", type, "-H", "Accept: application/json", "-w", "\nstatus=%{http_code}",
			      "--data-binary", body, u, NULL};
	char *out = NULL, *err = NULL;
	dlp_curl(&fx->d, args, &out, &err);
	free(err), free(u);
	return out;
}

START_TEST(identity_numbers_by_confidence)
{
	fixture_t fx;
	setup(&fx);
	/* high: blocked, the upstream never sees it, the event has the level */
	char *out = post(&fx, "Content-Type: text/plain", "Steuer-ID: 86095742719");
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "de_steuer_id"), "%s", out);
	ck_assert(dlp_log_wait(&fx.d, "\"de_steuer_id\":{", 3000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "\"confidence\":\"high\""), "%s", log);
	ck_assert_msg(!strstr(log, "86095742719"), "the number reached the log:\n%s", log);
	ck_assert_uint_eq(th_upstream_request_count(fx.up), 0);
	free(out), free(log);
	/* medium: masked on its way */
	out = post(&fx, "Content-Type: text/plain", "cliente 529.982.247-25 ok");
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	size_t len;
	char *rx = th_upstream_received(fx.up, &len);
	ck_assert_msg(strstr(rx, "cliente ***.***.***-25 ok") && !strstr(rx, "529.982"), "%s", rx);
	free(rx), free(out);
	teardown(&fx);
}
END_TEST

START_TEST(exact_data_match_with_corroboration)
{
	fixture_t fx;
	setup(&fx);
	/* the account with her email in the same JSON: blocked */
	char *out = post(&fx, "Content-Type: application/json",
			 "{\"account\":\"1234-567-890\",\"contact\":\"JANE.DOE@acme-corp.com\"}");
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "customers"), "%s", out);
	ck_assert(dlp_log_wait(&fx.d, "\"customers\":{", 3000));
	char *log = dlp_log(&fx.d);
	ck_assert_msg(strstr(log, "\"confidence\":\"high\"") && !strstr(log, "1234-567-890"), "%s", log);
	free(log), free(out);
	ck_assert_uint_eq(th_upstream_request_count(fx.up), 0);
	/* the same number alone, and with another customer's email: not hers, passes */
	out = post(&fx, "Content-Type: application/json", "{\"account\":\"1234567890\"}");
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	free(out);
	out = post(&fx, "Content-Type: application/json", "{\"account\":\"1234567890\",\"contact\":\"bob@contoso.com\"}");
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	free(out);
	ck_assert_uint_eq(th_upstream_request_count(fx.up), 2);
	teardown(&fx);
}
END_TEST

/* dlpgate (the command) with args; its stdout as bytes */
static int cmd(const char *const args[], char **out, size_t *out_len, char **err)
{
	const char *argv[16];
	int a = 0;
	argv[a++] = dlp_bin();
	for (int i = 0; args[i]; i++)
		argv[a++] = args[i];
	argv[a] = NULL;
	return th_run((char *const *)argv, NULL, 0, out, out_len, err, 60000);
}

/* The command line: edm build from CSV to a pack, a policy's check running
 * its EDM detector's examples, scan printing the match with its
 * confidence; bad columns and a broken pack refused with clear words. */
START_TEST(edm_commands)
{
	char *dir = th_path("cli");
	ck_assert(mkdir(dir, 0700) == 0);
	char *csv, *pack, *policy, *text, *out, *err;
	size_t n;
	ck_assert(asprintf(&csv, "%s/c.csv", dir) > 0 && asprintf(&pack, "%s/edm.pack", dir) > 0 &&
		  asprintf(&policy, "%s/p.lua", dir) > 0 && asprintf(&text, "%s/t.txt", dir) > 0);
	th_write_file(csv, customers_csv, sizeof customers_csv - 1, 0600);
	int rc = cmd((const char *const[]){"edm", "build", "--columns", "account:digits,email:email,name:name", csv, NULL},
		     &out, &n, &err);
	ck_assert_msg(rc == 0 && n > 64 && strstr(err, "2 rows, 3 columns"), "rc %d: %s", rc, err);
	ck_assert(!memmem(out, n, "Jane", 4) && !memmem(out, n, "1234567890", 10));
	th_write_file(pack, out, n, 0600);
	free(out), free(err);
	static const char src[] =
		"local dlp = require 'dlp'\n"
		"return { customers = dlp.edm{ pack = 'edm.pack', primary = 'account', corroborate = {'email', 'name'},\n"
		"  examples = { match = {'acct 9876543210, Robert Smith'}, nomatch = {'acct 9876543210, Jane Doe'} } } }\n";
	th_write_file(policy, src, sizeof src - 1, 0644);
	rc = cmd((const char *const[]){"check", policy, NULL}, &out, NULL, &err);
	ck_assert_msg(rc == 0 && strstr(out, "ok:"), "%s%s", out, err);
	free(out), free(err);
	static const char t[] = "order for robert smith <bob@contoso.com>: account 98765 43210\n";
	th_write_file(text, t, sizeof t - 1, 0644);
	rc = cmd((const char *const[]){"scan", policy, text, NULL}, &out, NULL, &err);
	ck_assert_msg(rc == 0 && strstr(out, "\"detector\":\"customers\"") && strstr(out, "\"confidence\":\"high\"") &&
			      strstr(out, "\"sample\":\"***** ***10\""),
		      "%s%s", out, err);
	free(out), free(err);
	/* a type that does not exist; a name column as primary */
	rc = cmd((const char *const[]){"edm", "build", "--columns", "account:phone", csv, NULL}, &out, &n, &err);
	ck_assert_msg(rc == 2 && strstr(err, "unknown type \"phone\""), "%s", err);
	free(out), free(err);
	rc = cmd((const char *const[]){"edm", "build", "--columns", "name:name,account:digits", "--primary", "name", csv,
				       NULL},
		 &out, &n, &err);
	ck_assert_msg(rc == 2 && strstr(err, "cannot be primary"), "%s", err);
	free(out), free(err);
	/* a pack cut short: the policy does not load, and says why */
	th_write_file(pack, "DLPEDM1\n\1\0\0\0", 12, 0600);
	rc = cmd((const char *const[]){"check", policy, NULL}, &out, NULL, &err);
	ck_assert_msg(rc != 0 && strstr(out, "not a usable EDM pack"), "%s%s", out, err);
	free(out), free(err);
	free(dir), free(csv), free(pack), free(policy), free(text);
}
END_TEST

Suite *ident_suite(void)
{
	Suite *s = suite_create("ident");
	TCase *t = tcase_create("ident");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, identity_numbers_by_confidence);
	tcase_add_test(t, exact_data_match_with_corroboration);
	tcase_add_test(t, edm_commands);
	suite_add_tcase(s, t);
	return s;
}
