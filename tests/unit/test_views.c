/*
 * Decoded views (detect/views.h): each decoder with its map, the set that
 * builds views only where the bytes call for them (and none on their
 * near-misses), nesting with its depth named and bounded, redaction back
 * through the maps that still decodes (URL, JSON, quoted-printable, lines
 * joined) or refuses (base64), and JSON keys as context for detectors.
 */
#include "suites.h"
#include "detect/detector.h"
#include "detect/simd.h"
#include "detect/views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the view named name, or NULL */
static const dview_t *view_named(const dview_set_t *set, const char *name)
{
	for (uint32_t i = 0; i < set->n; i++)
		if (!strcmp(set->v[i].name, name))
			return &set->v[i];
	return NULL;
}

static bool view_holds(const dview_t *v, const char *needle)
{
	return v && memmem(v->text, v->len, needle, strlen(needle)) != NULL;
}

static dview_set_t build(const char *text)
{
	dview_set_t set;
	ck_assert(dview_set_build(&set, (const uint8_t *)text, strlen(text), NULL, 0, NULL));
	return set;
}

/* None of these texts gets a view called name. */
static void assert_no_view(const char *const *texts, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		dview_set_t set = build(texts[i]);
		ck_assert_msg(!view_named(&set, name), "a %s view of %s", name, texts[i]);
		dview_set_free(&set);
	}
}

static int index_of(const dview_set_t *set, const dview_t *v)
{
	return (int)(v - set->v);
}

/* the root writer of the tests: a byte array */
static bool write_array(void *ctx, uint32_t off, uint8_t c, bool dry)
{
	if (!dry)
		((uint8_t *)ctx)[off] = c;
	return true;
}

/* Masks what view name shows of needle in text (a copy) and returns the
 * copy; NULL when the view refused. */
static char *redacted(const char *text, const char *name, const char *needle, uint8_t keep_first, uint8_t keep_last)
{
	dview_set_t set = build(text);
	const dview_t *v = view_named(&set, name);
	ck_assert_msg(v, "no %s view of %s", name, text);
	const uint8_t *at = memmem(v->text, v->len, needle, strlen(needle));
	ck_assert_msg(at, "%s view lacks %s", name, needle);
	char *copy = strdup(text);
	bool ok = dview_redact(&set, index_of(&set, v), (uint32_t)(at - v->text), (uint32_t)strlen(needle), keep_first,
			       keep_last, write_array, copy, false);
	dview_set_free(&set);
	if (!ok) {
		ck_assert_str_eq(copy, text); /* refused: nothing written */
		free(copy);
		return NULL;
	}
	return copy;
}

START_TEST(url_decoder_maps_back)
{
	const char *src = "a%20b+c%2Bd";
	uint8_t t[16], w[16];
	uint32_t m[16];
	size_t n = dview_decode_url((const uint8_t *)src, strlen(src), false, t, m, w);
	ck_assert_uint_eq(n, 7);
	ck_assert(!memcmp(t, "a b c+d", 7));
	ck_assert_uint_eq(m[1], 1);
	ck_assert_uint_eq(w[1], 3);
	ck_assert_uint_eq(m[2], 4);
	ck_assert_uint_eq(w[5], 3);
	uint8_t enc[8];
	ck_assert(dview_encode_char(DVIEW_URL, 3, '*', enc) && !memcmp(enc, "%2A", 3));
	ck_assert(!dview_encode_char(DVIEW_URL, 1, '%', enc)); /* would start an escape */
	ck_assert(!dview_encode_char(DVIEW_BASE64, 0, '*', enc));
	ck_assert(dview_encode_char(DVIEW_JSON, 6, '*', enc) && !memcmp(enc, "\\u002a", 6));
	ck_assert(!dview_encode_char(DVIEW_JSON, 2, '*', enc));
}
END_TEST

START_TEST(url_views_where_escapes_are)
{
	dview_set_t set = build("card=4814+3088+7165+1613&x=1");
	const dview_t *v = view_named(&set, "url");
	ck_assert(view_holds(v, "4814 3088 7165 1613"));
	dview_set_free(&set);

	set = build("GET /pay?num=4814%203088%207165%201613 HTTP/1.1");
	ck_assert(view_holds(view_named(&set, "url"), "num=4814 3088 7165 1613"));
	dview_set_free(&set);

	set = build("mail: jane.doe%40corp-mail.com, phone %2B44 20 7946 0958");
	v = view_named(&set, "url");
	ck_assert(view_holds(v, "jane.doe@corp-mail.com"));
	ck_assert(view_holds(v, "+44 20"));
	ck_assert(view_holds(v, "mail: ")); /* context kept before a token */
	dview_set_free(&set);

	/* near-misses: no escape, or '+' that is no form's */
	static const char *const clean[] = {"C++ and a+b", "100% sure", "x %zz y", "plain text, no escapes at all",
					    "i+j"};
	assert_no_view(clean, sizeof clean / sizeof clean[0], "url");
}
END_TEST

START_TEST(base64_views_of_text_only)
{
	/* {"card":"4814 3088 7165 1613"} in base64, standard and URL-safe */
	dview_set_t set = build("{\"data\":\"eyJjYXJkIjoiNDgxNCAzMDg4IDcxNjUgMTYxMyJ9\"}");
	ck_assert(view_holds(view_named(&set, "base64"), "4814 3088 7165 1613"));
	dview_set_free(&set);
	set = build("token eyJuYW1lIjoiSsO2cmciLCJrZXkiOiI-Pz9-In0= end");
	ck_assert(view_holds(view_named(&set, "base64"), "\"key\":\">??~\""));
	dview_set_free(&set);
	/* MIME: lines of 76 joined into one run */
	set = build("Q2FyZDogNDgxNCAzMDg4IDcxNjUgMTYxMywgZXhwaXJlcyAxMi8yOCwgbmFtZSBKYW5lIERvZSwg\r\n"
		    "YWRkcmVzcyAxIE1haW4gU3Q=\r\n");
	ck_assert(view_holds(view_named(&set, "base64"), "Jane Doe, address 1 Main St"));
	dview_set_free(&set);

	static const char *const clean[] = {
		"sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",   /* hex: no view */
		"/usr/share/doc/python3/changelog.Debian",         /* a path decodes to noise */
		"internationalizationIsLong ABCDEFGHIJKLMNOPQRSTUV", /* words */
		"short c2hvcnQ=",                                  /* under 16 characters */
		"binary RCCCPP3m8cJrMPkOx90B5Ih1NKIPCw0Ew27YDnHg/Xew", /* decodes to bytes, not text */
	};
	assert_no_view(clean, sizeof clean / sizeof clean[0], "base64");
}
END_TEST

START_TEST(nested_views_say_their_depth)
{
	/* base64 of "q=4814%203088%207165%201613&ok=1" */
	dview_set_t set = build("x cT00ODE0JTIwMzA4OCUyMDcxNjUlMjAxNjEzJm9rPTE= y");
	const dview_t *v = view_named(&set, "base64>url");
	ck_assert(view_holds(v, "4814 3088 7165 1613"));
	ck_assert_uint_eq(v->depth, 2);
	uint32_t rs, rl;
	const uint8_t *at = memmem(v->text, v->len, "4814", 4);
	dview_root_span(&set, index_of(&set, v), (uint32_t)(at - v->text), 19, &rs, &rl);
	ck_assert_uint_ge(rs, 2); /* inside the base64 run */
	ck_assert_uint_le(rs + rl, 2 + 44);
	ck_assert(!dview_verbatim(&set, index_of(&set, v), (uint32_t)(at - v->text), 19));
	dview_set_free(&set);

	/* JSON string escapes inside a URL-encoded field: url>json */
	set = build("q=%7B%22card%22%3A%224814%5Cu00203088%5Cu00207165%5Cu00201613%22%7D");
	ck_assert(view_holds(view_named(&set, "url>json"), "4814 3088 7165 1613"));
	dview_set_free(&set);

	/* base64 in base64 in base64 in base64: stops at the depth limit */
	const char *l4 = "VjFSS1IyVldjRVJSVkVKUVVrVlZkMU5WVWs1a01EbEZXakprVDJWclZYbFViRTVDWlVVMWNWSlljRXBTTW5neFUxVmtZV1J0VWxsVFYyUnBVakJaTVZkc2FFdGxaejA5";
	set = build(l4);
	ck_assert(view_named(&set, "base64>base64>base64"));
	ck_assert(!view_named(&set, "base64>base64>base64>base64"));
	for (uint32_t i = 0; i < set.n; i++)
		ck_assert_uint_le(set.v[i].depth, 3);
	dview_set_free(&set);
}
END_TEST

/* Found by fuzz_urlview: a span that ends on the line break closing a
 * piece (tied to the end of the text) reached one byte past the text. */
START_TEST(root_spans_stay_inside_the_text)
{
	const char *text = "c(rd=4816+5+16\xb5+1613&x=1";
	dview_set_t set = build(text);
	const dview_t *v = view_named(&set, "url");
	ck_assert(v);
	for (uint32_t start = 0; start < v->len; start++)
		for (uint32_t len = 0; start + len <= v->len; len++) {
			uint32_t rs, rl;
			dview_root_span(&set, index_of(&set, v), start, len, &rs, &rl);
			ck_assert_uint_le(rs + rl, strlen(text));
		}
	dview_set_free(&set);
	/* a base64 finding's span covers the characters it came from */
	text = "x eyJjYXJkIjoiNDgxNCAzMDg4IDcxNjUgMTYxMyJ9 y";
	set = build(text);
	v = view_named(&set, "base64");
	const uint8_t *at = memmem(v->text, v->len, "4814 3088 7165 1613", 19);
	uint32_t rs, rl;
	dview_root_span(&set, index_of(&set, v), (uint32_t)(at - v->text), 19, &rs, &rl);
	ck_assert_uint_ge(rl, 25); /* 19 bytes are 25+ characters of base64 */
	ck_assert_uint_le(rs + rl, strlen(text) - 2);
	dview_set_free(&set);
}
END_TEST

/* The 64-byte rounds (where the CPU has them) and the 16-byte ones build
 * the same views, byte for byte and map for map, from text made of what
 * the views look for: base64 runs, digits broken by line ends, escapes. */
START_TEST(both_simd_widths_build_the_same_views)
{
	static const char abc[] = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789+/=-_ \n\r%2A";
	/* base64 of text, both alphabets (their + / - _ included) */
	static const char *const b64[] = {
		"Y2FyZCA/Pz8+Pj4gNDExMSAxMTExIDExMTEgMTExMSA/Pz8+Pj4=", "Y2FyZCA_Pz8-Pj4gNDExMSAxMTExIDExMTEgMTExMSA_Pz8-Pj4=",
		"c3NuIDA3OC0wNS0xMTIwIH5+fj8/PyBvdmVy", "c3NuIDA3OC0wNS0xMTIwIH5-fj8_PyBvdmVy",
		"eyJpYmFuIjoiR0I4MiBXRVNUIDEyMzQgNTY5OCA3NjU0IDMyIn0+Pj4=",
	};
	srand(17);
	char text[900];
	for (int round = 0; round < 400; round++) {
		size_t len = (size_t)(rand() % (int)sizeof text);
		for (size_t i = 0; i < len; i++) {
			const char *t = b64[rand() % 5];
			size_t n = strlen(t);
			if (rand() % 40 == 0 && i + n + 1 < len) {
				memcpy(text + i, t, n);
				text[i + n] = ' ';
				i += n;
			} else {
				text[i] = abc[rand() % (int)(sizeof abc - 1)];
			}
		}
		dview_set_t sets[2];
		for (int w = 0; w < 2; w++) {
			simd_set_wide(w == 0);
			ck_assert(dview_set_build(&sets[w], (const uint8_t *)text, len, NULL, 0, NULL));
		}
		simd_set_wide(true);
		ck_assert_uint_eq(sets[0].n, sets[1].n);
		for (uint32_t v = 0; v < sets[0].n; v++) {
			const dview_t *a = &sets[0].v[v], *b = &sets[1].v[v];
			ck_assert_str_eq(a->name, b->name);
			ck_assert_uint_eq(a->len, b->len);
			ck_assert(!memcmp(a->text, b->text, a->len));
			ck_assert(!memcmp(a->map, b->map, a->len * sizeof *a->map));
		}
		dview_set_free(&sets[0]);
		dview_set_free(&sets[1]);
	}
}
END_TEST

START_TEST(views_are_bounded)
{
	/* many encoded tokens: at most max_runs of them, and it says so */
	char *text = malloc(20000);
	size_t n = 0;
	for (int i = 0; i < 1000; i++)
		n += (size_t)sprintf(text + n, "a%%20b ");
	dview_limits_t lim = {.max_runs = 10};
	dview_set_t set;
	ck_assert(dview_set_build(&set, (const uint8_t *)text, n, NULL, 0, &lim));
	ck_assert(set.truncated);
	ck_assert_uint_lt(set.v[0].len, 200);
	dview_set_free(&set);
	/* and the bytes of all views together */
	lim = (dview_limits_t){.max_bytes = 100};
	ck_assert(dview_set_build(&set, (const uint8_t *)text, n, NULL, 0, &lim));
	ck_assert(set.truncated);
	ck_assert_uint_le(set.bytes, 100);
	dview_set_free(&set);
	free(text);
}
END_TEST

START_TEST(redaction_writes_back_through_the_maps)
{
	char *r = redacted("num=4814%203088%207165%201613&x", "url", "4814 3088 7165 1613", 4, 4);
	ck_assert_str_eq(r, "num=4814%20****%20****%201613&x"); /* still decodes */
	free(r);
	r = redacted("card=4814+3088+7165+1613", "url", "4814 3088 7165 1613", 0, 4);
	ck_assert_str_eq(r, "card=****+****+****+1613");
	free(r);
	r = redacted("to=jane%2Edoe%40corp.com", "url", "jane.doe@corp.com", 0, 0);
	ck_assert_str_eq(r, "to=****%2E***%40****.***");
	free(r);
	/* JSON escapes inside a URL-encoded field: the masked digits were plain bytes of both */
	r = redacted("q=%7B%22c%22%3A%224814%5Cu00203088%5Cu00207165%5Cu00201613%22%7D", "url>json",
		     "4814 3088 7165 1613", 4, 4);
	ck_assert_str_eq(r, "q=%7B%22c%22%3A%224814%5Cu0020****%5Cu0020****%5Cu00201613%22%7D");
	free(r);
	/* base64 cannot be masked in place: refused, nothing written */
	ck_assert_ptr_null(redacted("d eyJjYXJkIjoiNDgxNCAzMDg4IDcxNjUgMTYxMyJ9 e", "base64", "4814 3088 7165 1613", 4, 4));
	/* lines joined: the digits are the text's own */
	r = redacted("card 4111 1111\n  1111 1111 ok", "unwrapped", "4111 1111 1111 1111", 4, 4);
	ck_assert_str_eq(r, "card 4111 ****\n  **** 1111 ok");
	free(r);
}
END_TEST

START_TEST(quoted_printable_parts)
{
	const char *text = "--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncard 4814 3088 71=\r\n65 =31613 end\r\n--b--";
	const char *part = strstr(text, "card");
	dview_range_t r = {(uint32_t)(part - text), (uint32_t)(strstr(text, "\r\n--b--") - part)};
	dview_set_t set;
	ck_assert(dview_set_build(&set, (const uint8_t *)text, strlen(text), &r, 1, NULL));
	const dview_t *v = view_named(&set, "qp");
	ck_assert(view_holds(v, "card 4814 3088 7165 1613 end"));
	char *copy = strdup(text);
	const uint8_t *at = memmem(v->text, v->len, "4814", 4);
	ck_assert(dview_redact(&set, index_of(&set, v), (uint32_t)(at - v->text), 19, 0, 4, write_array, copy, false));
	ck_assert_str_eq(strstr(copy, "card"), "card **** **** **=\r\n** =31613 end\r\n--b--");
	free(copy);
	dview_set_free(&set);
	/* no range, no view: a '=' in text is not quoted-printable */
	set = build("a=3D b=20");
	ck_assert(!view_named(&set, "qp"));
	dview_set_free(&set);
}
END_TEST

START_TEST(wrapped_numbers_joined)
{
	/* cards and IBANs; identity numbers: a NINO's six digits, a NIR's
	 * Corsican department, a label longer than 24 bytes kept for the
	 * detectors that need it near */
	static const char *const joined[][2] = {
		{"Please charge 4111 1111 1111\n1111 today", "4111 1111 1111 1111"},
		{"IBAN DE89 3704 0044 0532\r\n    0130 00\n", "DE89 3704 0044 0532 0130 00"},
		{"acct 41111111\n11111111\n", "4111111111111111"},
		{"NINO: AB 12 34\n56 C thanks", "NINO: AB 12 34 56 C"},
		{"NIR: 1 64 04\n2A 404 406 38 thanks", "1 64 04 2A 404 406 38"},
		{"Steueridentifikationsnummer: 86 095\n742 719 thanks", "Steueridentifikationsnummer: 86 095 742 719"},
		{"Steuer-ID:\n86 095\n742 719 thanks", "Steuer-ID:\n86 095 742 719"},
	};
	for (size_t i = 0; i < sizeof joined / sizeof joined[0]; i++) {
		dview_set_t set = build(joined[i][0]);
		ck_assert_msg(view_holds(view_named(&set, "unwrapped"), joined[i][1]), "%s", joined[i][0]);
		dview_set_free(&set);
	}
	/* near-misses: too few digits to be a number worth joining, no digit on
	 * one side, a hex id of three or more characters beside the break */
	static const char *const clean[] = {"line 12\n34 next", "total 4111 1111\nend", "4111\n-- 1111 1111",
					    "id 123 4a5\n678 901", "ab 123\n45 ok"};
	assert_no_view(clean, sizeof clean / sizeof clean[0], "unwrapped");
}
END_TEST

START_TEST(json_keys_are_context)
{
	static const char *const ctx[] = {"phone"};
	detector_spec_t spec = {.name = "phone", .regex = "\\b\\d{3}-\\d{3}-\\d{4}\\b", .context_words = ctx,
				.n_context = 1, .context_distance = 30, .boundary = true};
	char err[256];
	detset_t *set = detset_new();
	detector_t *d = detset_add(set, detector_compile(&spec, err, sizeof err));
	detect_scratch_t *s = detect_scratch_new(0);
	det_result_t *r = calloc(1, sizeof *r);
	static const struct {
		const char *text;
		uint32_t count;
	} cases[] = {
		{"{\"phonenumber\": \"415-555-2671\"}", 1},   /* words run together in a key */
		{"{\"mobilephone\":\"415-555-2671\"}", 1},
		{"{\"phone_number\":\"415-555-2671\"}", 1},
		{"phonenumber 415-555-2671", 0},            /* not a key: not a word */
		{"{\"note\": \"xphonex 415-555-2671\"}", 0}, /* a value, not a key */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		detset_scan(set, s, (const uint8_t *)cases[i].text, strlen(cases[i].text), NULL,
			    (const detector_t *const *)&d, 1, r);
		ck_assert_msg(r->count == cases[i].count, "%s: %u", cases[i].text, r->count);
		detset_scan_all(set, s, (const uint8_t *)cases[i].text, strlen(cases[i].text), NULL,
				(const detector_t *const *)&d, 1, r);
		ck_assert_msg(r->count == cases[i].count, "no prefilter, %s: %u", cases[i].text, r->count);
	}
	free(r);
	detect_scratch_free(s);
	detset_free(set);
}
END_TEST

Suite *views_suite(void)
{
	Suite *s = suite_create("views");
	TCase *t = tcase_create("views");
	tcase_add_test(t, url_decoder_maps_back);
	tcase_add_test(t, url_views_where_escapes_are);
	tcase_add_test(t, base64_views_of_text_only);
	tcase_add_test(t, nested_views_say_their_depth);
	tcase_add_test(t, root_spans_stay_inside_the_text);
	tcase_add_test(t, both_simd_widths_build_the_same_views);
	tcase_add_test(t, views_are_bounded);
	tcase_add_test(t, redaction_writes_back_through_the_maps);
	tcase_add_test(t, quoted_printable_parts);
	tcase_add_test(t, wrapped_numbers_joined);
	tcase_add_test(t, json_keys_are_context);
	suite_add_tcase(s, t);
	return s;
}
