/*
 * Exact data match: normalisation per column type; a pack built from CSV
 * holds none of the values; a primary value is found only with enough
 * corroborating values of its own row within the distance (not another
 * row's, not one byte too far), whatever its formatting; malformed packs
 * are refused with a clear message; an EDM detector's findings are graded
 * high with corroboration and medium without.
 */
#include "suites.h"
#include "detect/detector.h"
#include "detect/edm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char CSV[] = "account,email,name\n"
			  "1234567890,Jane.Doe@Acme-Corp.com,Jane Doe\n"
			  "9876543210,bob@contoso.com,\"Smith, Robert\"\n"
			  "5550001111,alice@example.org,Alice O'Brien\n"
			  "broken,row\n";

static const edm_column_t COLS[] = {
	{"account", EDM_DIGITS, true},
	{"email", EDM_EMAIL, false},
	{"name", EDM_NAME, false},
};

/* The pack CSV builds, as bytes (caller frees). */
static uint8_t *build(size_t *n, edm_build_stats_t *st)
{
	FILE *in = fmemopen((void *)CSV, sizeof CSV - 1, "r");
	char *buf = NULL;
	FILE *out = open_memstream(&buf, n);
	char err[300];
	ck_assert_msg(edm_build(in, COLS, 3, out, st, err, sizeof err), "%s", err);
	fclose(in);
	fclose(out);
	return (uint8_t *)buf;
}

static edm_pack_t *pack(void)
{
	size_t n;
	edm_build_stats_t st;
	uint8_t *b = build(&n, &st);
	char err[300];
	edm_pack_t *p = edm_pack_parse(b, n, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	free(b);
	return p;
}

typedef struct {
	size_t n;
	edm_hit_t h[8];
} hits_t;

static bool keep(void *ctx, const edm_hit_t *h)
{
	hits_t *x = ctx;
	if (x->n < 8)
		x->h[x->n] = *h;
	x->n++;
	return true;
}

static hits_t find(edm_pack_t *p, const char *text, uint32_t distance, uint32_t min)
{
	static const char *const corr[] = {"email", "name"};
	char err[300];
	edm_query_t *q = edm_query_new(p, "account", corr, 2, distance, min, err, sizeof err);
	ck_assert_msg(q != NULL, "%s", err);
	hits_t x = {0};
	edm_query_scan(q, (const uint8_t *)text, strlen(text), keep, &x);
	edm_query_free(q);
	return x;
}

START_TEST(normalisation_per_type)
{
	char out[EDM_MAX_VALUE + 1];
	ck_assert_int_eq(edm_normalize(EDM_DIGITS, "12-34 5/6", 9, out), 6);
	ck_assert_str_eq(out, "123456");
	ck_assert_int_eq(edm_normalize(EDM_DIGITS, "n/a", 3, out), -1);
	ck_assert_int_eq(edm_normalize(EDM_ALNUM, "ab-12", 5, out), 4);
	ck_assert_str_eq(out, "AB12");
	ck_assert_int_eq(edm_normalize(EDM_ALNUM, "abc-def", 7, out), -1); /* no digit: not indexed */
	ck_assert_int_eq(edm_normalize(EDM_EMAIL, " Jane.Doe@ACME.com ", 19, out), 17);
	ck_assert_str_eq(out, "jane.doe@acme.com");
	ck_assert_int_eq(edm_normalize(EDM_EMAIL, "nobody", 6, out), -1);
	ck_assert_int_eq(edm_normalize(EDM_NAME, "  Smith,  JOHN ", 15, out), 10);
	ck_assert_str_eq(out, "smith john");
	ck_assert_int_eq(edm_normalize(EDM_NAME, "O'Brien", 7, out), 7);
	ck_assert_str_eq(out, "o brien");
	ck_assert_int_eq(edm_normalize(EDM_NAME, "a b c d e f g h i", 17, out), -1); /* 9 words */
	ck_assert_int_eq(edm_type_by_name("email"), EDM_EMAIL);
	ck_assert_int_eq(edm_type_by_name("phone"), 0);
}
END_TEST

START_TEST(pack_holds_no_value)
{
	size_t n;
	edm_build_stats_t st;
	uint8_t *b = build(&n, &st);
	ck_assert_uint_eq(st.rows, 3);
	ck_assert_uint_eq(st.skipped_rows, 1);
	ck_assert(st.header);
	static const char *const values[] = {"1234567890", "jane", "Jane", "acme", "Robert", "5550001111", "contoso"};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
		ck_assert_msg(!memmem(b, n, values[i], strlen(values[i])), "the pack holds %s", values[i]);
	/* two builds of the same table differ: each pack has its own salt */
	size_t n2;
	uint8_t *b2 = build(&n2, &st);
	ck_assert_uint_eq(n, n2);
	ck_assert(memcmp(b, b2, n) != 0);
	free(b), free(b2);
}
END_TEST

START_TEST(match_needs_its_rows_corroboration)
{
	edm_pack_t *p = pack();
	hits_t x = find(p, "acct 9876543210 for bob@contoso.com", 300, 1);
	ck_assert_uint_eq(x.n, 1);
	ck_assert_uint_eq(x.h[0].start, 5);
	ck_assert_uint_eq(x.h[0].len, 10);
	ck_assert_uint_eq(x.h[0].corroborated, 1);
	/* jane.doe@... holds the words "jane doe": her name corroborates too */
	x = find(p, "acct 1234567890 for jane.doe@acme-corp.com", 300, 1);
	ck_assert_uint_eq(x.n, 1);
	ck_assert_uint_eq(x.h[0].corroborated, 2);
	/* both corroborate, formatted otherwise (normalisation) */
	x = find(p, "JANE   DOE, account 1234-567-890, JANE.DOE@ACME-CORP.COM", 300, 2);
	ck_assert_uint_eq(x.n, 1);
	ck_assert_uint_eq(x.h[0].corroborated, 2);
	/* a value not in the table; the primary alone; another row's email */
	ck_assert_uint_eq(find(p, "acct 1234567891 jane.doe@acme-corp.com", 300, 1).n, 0);
	ck_assert_uint_eq(find(p, "acct 1234567890 and nothing else", 300, 1).n, 0);
	ck_assert_uint_eq(find(p, "acct 1234567890 for bob@contoso.com", 300, 1).n, 0);
	/* min_corroborate = 0: the primary alone is enough */
	x = find(p, "acct 1234567890 and nothing else", 300, 0);
	ck_assert_uint_eq(x.n, 1);
	ck_assert_uint_eq(x.h[0].corroborated, 0);
	/* names: word order counts, punctuation does not */
	ck_assert_uint_eq(find(p, "9876543210 smith robert", 300, 1).n, 1);
	ck_assert_uint_eq(find(p, "9876543210 Smith, Robert.", 300, 1).n, 1);
	ck_assert_uint_eq(find(p, "9876543210 robert", 300, 1).n, 0);
	/* inside a long run of spaced numbers (a table): still found */
	ck_assert_uint_eq(find(p, "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 1234567890 19 20 jane doe", 300, 1).n, 1);
	ck_assert_uint_eq(find(p, "7 7 1234 5678 90 7 jane doe", 300, 1).n, 1);
	/* glued into a longer number or a word: not the value */
	ck_assert_uint_eq(find(p, "id 91234567890 jane doe", 300, 1).n, 0);
	ck_assert_uint_eq(find(p, "id x1234567890 jane doe", 300, 1).n, 0);
	edm_pack_unref(p);
}
END_TEST

START_TEST(corroboration_distance)
{
	edm_pack_t *p = pack();
	char text[1024];
	/* the email starts 290 bytes after the account's end: in; 310: out */
	snprintf(text, sizeof text, "1234567890%290sjane.doe@acme-corp.com", "");
	ck_assert_uint_eq(find(p, text, 300, 1).n, 1);
	snprintf(text, sizeof text, "1234567890%310sjane.doe@acme-corp.com", "");
	ck_assert_uint_eq(find(p, text, 300, 1).n, 0);
	/* before the account too */
	snprintf(text, sizeof text, "jane doe%280s1234567890", "");
	ck_assert_uint_eq(find(p, text, 300, 1).n, 1);
	snprintf(text, sizeof text, "jane doe%320s1234567890", "");
	ck_assert_uint_eq(find(p, text, 300, 1).n, 0);
	edm_pack_unref(p);
}
END_TEST

START_TEST(malformed_packs_are_refused)
{
	size_t n;
	edm_build_stats_t st;
	uint8_t *b = build(&n, &st);
	char err[300];
	uint8_t *m = malloc(n);
	/* truncated, by one byte and to the header */
	ck_assert_ptr_null(edm_pack_parse(b, n - 1, err, sizeof err));
	ck_assert_msg(strstr(err, "not a usable EDM pack"), "%s", err);
	ck_assert_ptr_null(edm_pack_parse(b, 70, err, sizeof err));
	ck_assert_ptr_null(edm_pack_parse(b, 3, err, sizeof err));
	ck_assert(strstr(err, "magic"));
	/* another version */
	memcpy(m, b, n);
	m[8] = 9;
	ck_assert_ptr_null(edm_pack_parse(m, n, err, sizeof err));
	ck_assert(strstr(err, "version"));
	/* rows past the limit, columns 0 */
	memcpy(m, b, n);
	m[23] = 0x7f;
	ck_assert_ptr_null(edm_pack_parse(m, n, err, sizeof err));
	ck_assert(strstr(err, "rows"));
	memcpy(m, b, n);
	m[12] = 0;
	ck_assert_ptr_null(edm_pack_parse(m, n, err, sizeof err));
	ck_assert(strstr(err, "columns"));
	/* the first searchable column's buckets going backwards */
	memcpy(m, b, n);
	size_t buckets = 64 + 3 * 80;
	m[buckets + 4] = 0xff;
	ck_assert_ptr_null(edm_pack_parse(m, n, err, sizeof err));
	ck_assert_msg(strstr(err, "index"), "%s", err);
	/* a name column said searchable */
	memcpy(m, b, n);
	m[64 + 2 * 80 + 33] = 1;
	ck_assert_ptr_null(edm_pack_parse(m, n, err, sizeof err));
	ck_assert_msg(strstr(err, "searchable"), "%s", err);
	/* a file that is not there */
	ck_assert_ptr_null(edm_pack_open("/nonexistent/edm.pack", err, sizeof err));
	ck_assert(strstr(err, "cannot read EDM pack"));
	free(m), free(b);
}
END_TEST

START_TEST(edm_detector_grades_by_corroboration)
{
	edm_pack_t *p = pack();
	char err[300];
	static const char *const corr[] = {"email", "name"};
	edm_query_t *q = edm_query_new(p, "account", corr, 2, 300, 0, err, sizeof err);
	ck_assert(q != NULL);
	det_matcher_t m = edm_matcher(q);
	detector_spec_t spec = {.name = "customers", .matcher = &m};
	detector_t *d = detector_compile(&spec, err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	detset_t *set = detset_new();
	const detector_t *want = detset_add(set, d);
	detect_scratch_t *s = detect_scratch_new(0);
	det_result_t *r = malloc(sizeof *r);
	const char *text = "1234567890 jane doe ........................................................................"
			   "......................................................................................."
			   "......................................................................................."
			   "............................................................. 5550001111";
	detset_scan(set, s, (const uint8_t *)text, strlen(text), NULL, &want, 1, r);
	ck_assert_uint_eq(r->count, 2);
	ck_assert_uint_eq(r->matches[0].confidence, CONF_HIGH);
	ck_assert_uint_eq(r->matches[1].confidence, CONF_MEDIUM);
	free(r);
	detect_scratch_free(s);
	detset_free(set);
	/* a matcher with a regex too is refused, and released */
	q = edm_query_new(p, "account", corr, 2, 300, 0, err, sizeof err);
	m = edm_matcher(q);
	detector_spec_t bad = {.name = "x", .regex = "x", .matcher = &m};
	ck_assert_ptr_null(detector_compile(&bad, err, sizeof err));
	/* name columns cannot be primary; unknown columns are named */
	ck_assert_ptr_null(edm_query_new(p, "name", NULL, 0, 300, 0, err, sizeof err));
	ck_assert(strstr(err, "not searchable"));
	ck_assert_ptr_null(edm_query_new(p, "account", (const char *const[]){"phone"}, 1, 300, 1, err, sizeof err));
	ck_assert(strstr(err, "no column \"phone\""));
	edm_pack_unref(p);
}
END_TEST

Suite *edm_suite(void)
{
	Suite *s = suite_create("edm");
	TCase *t = tcase_create("edm");
	tcase_add_test(t, normalisation_per_type);
	tcase_add_test(t, pack_holds_no_value);
	tcase_add_test(t, match_needs_its_rows_corroboration);
	tcase_add_test(t, corroboration_distance);
	tcase_add_test(t, malformed_packs_are_refused);
	tcase_add_test(t, edm_detector_grades_by_corroboration);
	suite_add_tcase(s, t);
	return s;
}
