/*
 * Identity numbers and confidence: each national validator on numbers
 * built by its issuer's rules (valid), and on near misses (a wrong check
 * digit, a wrong length, the number inside a longer one, a structure
 * rule broken); confidence levels from evidence (validator, words within
 * the distance, count) through real scans, and the min_confidence filter.
 */
#include "suites.h"
#include "detect/confidence.h"
#include "detect/detector.h"
#include "detect/validate.h"
#include "detect/validate_id.h"

#include <stdlib.h>
#include <string.h>

#define V(fn, s) fn(s, strlen(s))

START_TEST(national_validators)
{
	ck_assert(V(validate_uk_nino, "AB123456C"));
	ck_assert(V(validate_uk_nino, "JG 10 37 59 A"));
	ck_assert(!V(validate_uk_nino, "QQ123456C"));   /* Q never first */
	ck_assert(!V(validate_uk_nino, "AO123456C"));   /* O never second */
	ck_assert(!V(validate_uk_nino, "GB123456A"));   /* unallocated prefix */
	ck_assert(!V(validate_uk_nino, "AB123456E"));   /* suffix past D */
	ck_assert(!V(validate_uk_nino, "AB1234567C"));  /* length */

	ck_assert(V(validate_ca_sin, "130 456 270"));
	ck_assert(V(validate_ca_sin, "271-828-188"));
	ck_assert(!V(validate_ca_sin, "130 456 271"));  /* Luhn */
	ck_assert(!V(validate_ca_sin, "046 456 281"));  /* 0 first, Luhn ok */
	ck_assert(!V(validate_ca_sin, "13045627"));     /* length */
	ck_assert(!V(validate_ca_sin, "1304562701"));

	ck_assert(V(validate_br_cpf, "529.982.247-25"));
	ck_assert(V(validate_br_cpf, "11144477735"));
	ck_assert(!V(validate_br_cpf, "529.982.247-26"));
	ck_assert(!V(validate_br_cpf, "529.982.247-52"));
	ck_assert(!V(validate_br_cpf, "111.111.111-11")); /* passes the sums, nobody's */
	ck_assert(!V(validate_br_cpf, "529982247250"));
	ck_assert(!V(validate_br_cpf, "529x982.247-25"));

	ck_assert(V(validate_br_cnpj, "11.222.333/0001-81"));
	ck_assert(V(validate_br_cnpj, "45761238000178"));
	ck_assert(!V(validate_br_cnpj, "11.222.333/0001-82"));
	ck_assert(!V(validate_br_cnpj, "11.222.333/0001-18"));
	ck_assert(!V(validate_br_cnpj, "1122233300018"));

	ck_assert(V(validate_in_pan, "ABCPE1234F"));
	ck_assert(V(validate_in_pan, "AFZPK7190K"));
	ck_assert(!V(validate_in_pan, "ABCXE1234F"));    /* X: no holder type */
	ck_assert(!V(validate_in_pan, "ABCPE12345F"));
	ck_assert(!V(validate_in_pan, "ABCP11234F"));
	ck_assert(V(validate_in_pan, "TMGPY1111K"));     /* sequence 1111 is issued */
	ck_assert(!V(validate_in_pan, "ABCPE0000F"));    /* sequences start at 0001 */

	ck_assert(V(validate_in_aadhaar, "2341 2341 2346"));
	ck_assert(V(validate_in_aadhaar, "499185372604"));
	ck_assert(!V(validate_in_aadhaar, "2341 2341 2345")); /* Verhoeff */
	ck_assert(!V(validate_in_aadhaar, "2341 2341 2364")); /* a transposition: Verhoeff catches it */
	ck_assert(!V(validate_in_aadhaar, "134123412346"));   /* never starts with 1 */
	ck_assert(!V(validate_in_aadhaar, "23412341234"));
	ck_assert(V(validate_verhoeff, "2363"));               /* the textbook example: 236 -> 3 */
	ck_assert(!V(validate_verhoeff, "2364"));

	ck_assert(V(validate_de_steuer_id, "86095742719"));
	ck_assert(V(validate_de_steuer_id, "65 718 364 093"));
	ck_assert(!V(validate_de_steuer_id, "86095742718"));   /* MOD 11,10 */
	ck_assert(!V(validate_de_steuer_id, "47158369024"));   /* no digit repeats */
	ck_assert(!V(validate_de_steuer_id, "06095742719"));   /* leading 0 */
	ck_assert(!V(validate_de_steuer_id, "860957427190"));

	ck_assert(V(validate_fr_nir, "1 84 06 76 451 089 47"));
	ck_assert(V(validate_fr_nir, "291057512345620"));
	ck_assert(V(validate_fr_nir, "1 85 02 2A 012 345 31"));
	ck_assert(V(validate_fr_nir, "2 91 05 2B 034 567 44"));
	ck_assert(!V(validate_fr_nir, "1 84 06 76 451 089 48"));  /* key */
	ck_assert(!V(validate_fr_nir, "1 85 02 2B 012 345 31"));  /* 2B is not 2A */
	ck_assert(!V(validate_fr_nir, "5 84 06 76 451 089 47"));  /* sex digit */
	ck_assert(!V(validate_fr_nir, "18406764510894"));

	ck_assert(V(validate_es_dni, "12345678Z"));
	ck_assert(V(validate_es_dni, "48215679-C"));
	ck_assert(V(validate_es_dni, "X1234567L"));
	ck_assert(V(validate_es_dni, "Y-7654321-G"));
	ck_assert(!V(validate_es_dni, "12345678A"));
	ck_assert(!V(validate_es_dni, "X1234567A"));
	ck_assert(!V(validate_es_dni, "123456789Z"));
	ck_assert(!V(validate_es_dni, "1234567Z"));

	ck_assert(V(validate_nl_bsn, "111222333"));
	ck_assert(V(validate_nl_bsn, "1234.56.782"));
	ck_assert(!V(validate_nl_bsn, "123456789"));
	ck_assert(!V(validate_nl_bsn, "000000000"));
	ck_assert(!V(validate_nl_bsn, "1112223330"));

	ck_assert(V(validate_it_cf, "RSSMRA85T10A562S"));
	ck_assert(V(validate_it_cf, "BNCGPP70A41H501G"));
	ck_assert(V(validate_it_cf, "RSSMRA85T10A56NH"));  /* omocodia: the last 2 written N */
	ck_assert(!V(validate_it_cf, "RSSMRA85T10A562T"));
	ck_assert(!V(validate_it_cf, "RSSMRA85F10A562S"));  /* F is no month letter */
	ck_assert(!V(validate_it_cf, "RSSMRA85T10A562"));

	for (int v = 1; v < VALIDATE_COUNT; v++)
		ck_assert_int_eq(validate_by_name(validate_name((validator_t)v)), v);
	ck_assert(validate_run(VALIDATE_BR_CPF, "529.982.247-25", 14));
}
END_TEST

/* One detector over text: its result (caller frees). */
static det_result_t *scan_one(const detector_spec_t *spec, const char *text)
{
	char err[256];
	detset_t *set = detset_new();
	detector_t *d = detector_compile(spec, err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	const detector_t *want = detset_add(set, d);
	detect_scratch_t *s = detect_scratch_new(0);
	det_result_t *r = malloc(sizeof *r);
	detset_scan(set, s, (const uint8_t *)text, strlen(text), NULL, &want, 1, r);
	detect_scratch_free(s);
	detset_free(set);
	return r;
}

static const char *const CPF_WORDS[] = {"cpf"};

static detector_spec_t cpf_spec(void)
{
	return (detector_spec_t){
		.name = "cpf",
		.regex = "(?<![\\w.-])\\d{3}\\.\\d{3}\\.\\d{3}-\\d{2}(?![\\w-])",
		.digits = 5,
		.window_set = true,
		.window_before = 8,
		.validate = VALIDATE_BR_CPF,
		.boundary = true,
		.conf = {.words = CPF_WORDS, .n_words = 1},
	};
}

static char *far_apart(const char *before, size_t gap, const char *after)
{
	char *t = malloc(strlen(before) + gap + strlen(after) + 1);
	strcpy(t, before);
	memset(t + strlen(before), ' ', gap);
	strcpy(t + strlen(before) + gap, after);
	return t;
}

START_TEST(confidence_from_evidence)
{
	detector_spec_t spec = cpf_spec();
	/* validated and the word within 300 bytes: high */
	det_result_t *r = scan_one(&spec, "CPF: 529.982.247-25");
	ck_assert_uint_eq(r->count, 1);
	ck_assert_uint_eq(r->matches[0].confidence, CONF_HIGH);
	ck_assert_uint_eq(r->at_level[CONF_HIGH], 1);
	free(r);
	/* the word 299 bytes before: still high; 301: medium (validated only) */
	char *t = far_apart("cpf", 296, "529.982.247-25");
	r = scan_one(&spec, t);
	ck_assert_uint_eq(r->count, 1);
	ck_assert_uint_eq(r->matches[0].confidence, CONF_HIGH);
	free(r), free(t);
	t = far_apart("cpf", 301, "529.982.247-25");
	r = scan_one(&spec, t);
	ck_assert_uint_eq(r->count, 1);
	ck_assert_uint_eq(r->matches[0].confidence, CONF_MEDIUM);
	free(r), free(t);
	/* after the number counts too; "cpfs" glued on is no word */
	r = scan_one(&spec, "529.982.247-25 (cpf)");
	ck_assert_uint_eq(r->matches[0].confidence, CONF_HIGH);
	free(r);
	r = scan_one(&spec, "529.982.247-25 cpfx");
	ck_assert_uint_eq(r->matches[0].confidence, CONF_MEDIUM);
	free(r);
	/* no validator, no words: low; count = 2 raises to medium */
	static const char *const none[] = {"nothing-here"};
	detector_spec_t plain = {.name = "n", .regex = "\\bID-\\d{4}\\b", .keywords = (const char *const[]){"ID-"},
				 .n_keywords = 1, .conf = {.words = none, .n_words = 1}};
	r = scan_one(&plain, "ID-1234");
	ck_assert_uint_eq(r->matches[0].confidence, CONF_LOW);
	free(r);
	plain.conf.medium[0] = (conf_cond_t){.count = 2};
	plain.conf.n_medium = 1;
	plain.conf.medium_set = true;
	r = scan_one(&plain, "ID-1234");
	ck_assert_uint_eq(r->matches[0].confidence, CONF_LOW);
	free(r);
	r = scan_one(&plain, "ID-1234 ID-5678");
	ck_assert_uint_eq(r->count, 2);
	ck_assert_uint_eq(r->matches[0].confidence, CONF_MEDIUM);
	ck_assert_uint_eq(r->at_level[CONF_MEDIUM], 2);
	free(r);
	/* a stated level is every finding's */
	spec.confidence = "low";
	r = scan_one(&spec, "CPF: 529.982.247-25");
	ck_assert_uint_eq(r->matches[0].confidence, CONF_LOW);
	free(r);
	/* the default words are the keywords: a keyword-gated detector has context */
	detector_spec_t kw = {.name = "k", .regex = "\\d{9}", .keywords = (const char *const[]){"bsn"}, .n_keywords = 1,
			      .validate = VALIDATE_NL_BSN};
	r = scan_one(&kw, "bsn 111222333");
	ck_assert_uint_eq(r->matches[0].confidence, CONF_HIGH);
	free(r);
}
END_TEST

START_TEST(min_confidence_keeps_the_sure_ones)
{
	detector_spec_t spec = cpf_spec();
	/* one near its word, one far from it, one near again */
	char *t = far_apart("cpf 529.982.247-25", 400, "111.444.777-35");
	char *t2 = far_apart(t, 400, " cpf 111.444.777-35");
	det_result_t *r = scan_one(&spec, t2);
	ck_assert_uint_eq(r->count, 3);
	ck_assert_uint_eq(r->at_level[CONF_HIGH], 2);
	ck_assert_uint_eq(r->at_level[CONF_MEDIUM], 1);
	ck_assert_int_eq(det_result_top(r), CONF_HIGH);
	det_result_keep_min(r, CONF_MEDIUM);
	ck_assert_uint_eq(r->count, 3);
	det_result_keep_min(r, CONF_HIGH);
	ck_assert_uint_eq(r->count, 2);
	ck_assert_uint_eq(r->n_matches, 2);
	for (uint32_t k = 0; k < r->n_matches; k++)
		ck_assert_uint_eq(r->matches[k].confidence, CONF_HIGH);
	free(r), free(t), free(t2);
	ck_assert_int_eq(confidence_by_name("medium"), CONF_MEDIUM);
	ck_assert_int_eq(confidence_by_name("sure"), -1);
	/* a stated level that is no level is refused at compile */
	spec.confidence = "certain";
	char err[256];
	ck_assert_ptr_null(detector_compile(&spec, err, sizeof err));
	ck_assert(strstr(err, "confidence"));
}
END_TEST

Suite *ident_suite(void)
{
	Suite *s = suite_create("ident");
	TCase *t = tcase_create("ident");
	tcase_add_test(t, national_validators);
	tcase_add_test(t, confidence_from_evidence);
	tcase_add_test(t, min_confidence_keeps_the_sure_ones);
	suite_add_tcase(s, t);
	return s;
}
