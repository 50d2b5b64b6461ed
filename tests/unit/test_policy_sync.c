/*
 * The agent's policy-sync parts that need no network: --labels parsing
 * (what enrollment sends), the policy status record (what `dlpgate policy
 * status` prints) and the last known good files.
 */
#include "suites.h"

#include "report/report.h"
#include "sync/lkg.h"
#include "sync/sync.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

START_TEST(labels_become_the_enrollment_object)
{
	char err[300];
	char *j = report_labels_parse("ring=canary,os=linux,empty=", err, sizeof err);
	ck_assert_msg(j, "%s", err);
	ck_assert_str_eq(j, "{\"empty\":\"\",\"os\":\"linux\",\"ring\":\"canary\"}");
	free(j);
	j = report_labels_parse("", err, sizeof err);
	ck_assert_str_eq(j, "{}");
	free(j);
}
END_TEST

START_TEST(bad_labels_are_refused_naming_the_label)
{
	char err[300], key[80], value[200], many[800] = "";
	memset(key, 'a', 64), key[64] = '\0';
	memset(value, 'v', 129), value[129] = '\0';
	char long_key[100], long_value[220];
	snprintf(long_key, sizeof long_key, "%s=x", key);
	snprintf(long_value, sizeof long_value, "k=%s", value);
	for (int i = 0; i < 33; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "%sk%d=v", i ? "," : "", i);
	const struct {
		const char *text, *want;
	} bad[] = {
		{"Ring=canary", "Ring=canary"}, {"ring", "key=value"},    {"=x", "key=value"},
		{"a=1,a=2", "a given twice"},   {long_key, "1 to 63"},     {long_value, "128 bytes"},
		{many, "at most 32"},           {"ring=x,bad key=1", "bad key=1"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		char *j = report_labels_parse(bad[i].text, err, sizeof err);
		ck_assert_msg(!j, "accepted %s", bad[i].text);
		ck_assert_msg(strstr(err, bad[i].want), "%s: %s", bad[i].text, err);
	}
}
END_TEST

static char *tmpdir(void)
{
	char *d;
	if (asprintf(&d, "%s/dlpgate-sync-XXXXXX", unit_tmp_base()) < 0 || !mkdtemp(d))
		abort();
	return d;
}

START_TEST(the_status_record_round_trips_through_its_file)
{
	char *dir = tmpdir();
	char err[300];
	sync_status_t s;
	ck_assert(!sync_status_read(dir, &s, err, sizeof err));
	ck_assert_msg(strstr(err, "no agent has run"), "%s", err);
	sync_status_init(dir);
	sync_status_t w = {.version = 7, .source = "console", .shadow_version = 9, .failed_version = 8,
			   .last_error = "v8: signature: bundle v8: signed by unknown key 0123456789abcdef"};
	sync_now_rfc3339(w.activated_at);
	sync_status_publish(&w);
	ck_assert(sync_status_read(dir, &s, err, sizeof err));
	ck_assert(s.version == 7 && s.shadow_version == 9 && s.failed_version == 8);
	ck_assert_str_eq(s.source, "console");
	ck_assert_str_eq(s.activated_at, w.activated_at);
	ck_assert_str_eq(s.last_error, w.last_error);
	json_t *o = report_policy_json(&s, false);
	char *text = json_dumps(o, JSON_COMPACT);
	char want[1024];
	snprintf(want, sizeof want,
		 "{\"version\":7,\"source\":\"console\",\"activated_at\":\"%s\",\"shadow_version\":9,\"last_error\":\"%s\"}",
		 w.activated_at, w.last_error);
	ck_assert_str_eq(text, want);
	free(text);
	json_decref(o);
	/* nothing yet: nulls, not zeros */
	sync_status_t b = {.source = "built-in"};
	o = report_policy_json(&b, false);
	text = json_dumps(o, JSON_COMPACT);
	ck_assert_str_eq(text, "{\"version\":null,\"source\":\"built-in\",\"activated_at\":null,\"shadow_version\":null,"
			       "\"last_error\":null}");
	free(text);
	json_decref(o);
	free(dir);
}
END_TEST

START_TEST(last_known_good_is_kept_whole)
{
	char *dir = tmpdir();
	char path[600], err[300], at[32], *doc;
	size_t len;
	ck_assert(!lkg_load(dir, &doc, &len, at, err, sizeof err));
	ck_assert_str_eq(err, ""); /* none is not an error */
	snprintf(path, sizeof path, "%s/policy", dir);
	mkdir(path, 0700);
	ck_assert(lkg_save(dir, "{\"format\":1}", 12, 5, "2026-12-04T10:00:00.000Z", err, sizeof err));
	ck_assert(lkg_load(dir, &doc, &len, at, err, sizeof err));
	ck_assert(len == 12 && !memcmp(doc, "{\"format\":1}", 12));
	ck_assert_str_eq(at, "2026-12-04T10:00:00.000Z");
	free(doc);
	struct stat st;
	snprintf(path, sizeof path, "%s/policy/lkg.dlpbundle", dir);
	ck_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	free(dir);
}
END_TEST

Suite *policy_sync_suite(void)
{
	Suite *s = suite_create("policy_sync");
	TCase *t = tcase_create("policy_sync");
	tcase_add_test(t, labels_become_the_enrollment_object);
	tcase_add_test(t, bad_labels_are_refused_naming_the_label);
	tcase_add_test(t, the_status_record_round_trips_through_its_file);
	tcase_add_test(t, last_known_good_is_kept_whole);
	suite_add_tcase(s, t);
	return s;
}
