/*
 * Detection: the prefilter against a naive search, validators on known
 * good and bad numbers, masking, and detectors end to end: keywords,
 * windows, groups, context, allowlists, min_count, and a catastrophic
 * pattern that must time out instead of stalling; digit runs against a
 * byte-by-byte reference, and windowed scans (digits, before/after)
 * finding what the scan of every byte finds; gitleaks' semantics (the
 * first non-empty group, strict entropy, keywords gating the whole text)
 * and keyreach's proofs against the whole-text scan they stand for.
 */
#include "suites.h"
#include "core/bytebuf.h"
#include "detect/detector.h"
#include "detect/digitruns.h"
#include "detect/keyreach.h"
#include "detect/mask.h"
#include "detect/prefilter.h"
#include "detect/simd.h"
#include "detect/validate.h"

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <time.h>
#ifndef PR_SET_MDWE /* Linux 6.3; older headers lack it */
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

typedef struct {
	uint32_t n;
	pf_hit_t hits[4096];
} hits_t;

static bool collect(void *ctx, const pf_hit_t *h)
{
	hits_t *c = ctx;
	if (c->n < 4096)
		c->hits[c->n++] = *h;
	return true;
}

static uint32_t naive(const char *const *words, size_t nw, const char *buf, size_t len)
{
	uint32_t n = 0;
	for (size_t w = 0; w < nw; w++) {
		size_t m = strlen(words[w]);
		for (size_t i = 0; i + m <= len; i++)
			if (!strncasecmp(buf + i, words[w], m))
				n++;
	}
	return n;
}

static void prefilter_vs_naive(const char *const *words, size_t n_words, const char *alphabet)
{
	prefilter_t *p = prefilter_new();
	for (size_t i = 0; i < n_words; i++)
		ck_assert(prefilter_add(p, words[i], strlen(words[i]), (uint32_t)i));
	ck_assert(prefilter_build(p));
	srand(3);
	char buf[2048];
	for (int round = 0; round < 200; round++) {
		size_t len = (size_t)(rand() % (int)sizeof buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = alphabet[rand() % (int)strlen(alphabet)];
		hits_t *h = calloc(1, sizeof *h);
		prefilter_scan(p, (const uint8_t *)buf, len, collect, h);
		uint32_t want = naive(words, n_words, buf, len);
		ck_assert_msg(h->n == want || h->n == 4096, "round %d: %u hits, naive %u", round, h->n, want);
		for (uint32_t k = 0; k < h->n; k++) {
			const char *w = words[h->hits[k].tag];
			ck_assert(!strncasecmp(buf + h->hits[k].start, w, strlen(w)));
		}
		free(h);
	}
	prefilter_free(p);
}

/* Loop tests run twice: _i 0 with the 64-byte rounds where the CPU has
 * them, _i 1 with the 16-byte rounds, so both widths are held to the
 * same answers (simd.h). */
static void width_for(int i)
{
	simd_set_wide(i == 0);
}

START_TEST(prefilter_finds_what_naive_search_finds)
{
	width_for(_i);
	/* overlapping words, a one-byte word, mixed case */
	static const char *const words[] = {"he", "she", "his", "hers", "AKIA", "akia", "ghp_", "secret", "s", "xoxb-"};
	prefilter_vs_naive(words, sizeof words / sizeof words[0], "ahersikAKIghp_xob-ctS ");
	/* bytes that fold together in the pair filter ('@' and '`', '_' and DEL)
	 * must still only be reported for the real keyword */
	static const char *const folded[] = {"@acme", "key_", "PRIVATE KEY", "@"};
	prefilter_vs_naive(folded, sizeof folded / sizeof folded[0], "@`_\x7fkeyKEY acmPRIVATE");
}
END_TEST

START_TEST(validators)
{
	ck_assert(validate_luhn("4539 1488 0343 6467", 19));
	ck_assert(validate_luhn("4111-1111-1111-1111", 19));
	ck_assert(validate_luhn("340000000000009", 15));
	ck_assert(!validate_luhn("4539 1488 0343 6468", 19));
	ck_assert(!validate_luhn("0000000000000000", 16));
	ck_assert(!validate_luhn("1234", 4));
	ck_assert(validate_iban("GB82 WEST 1234 5698 7654 32", 27));
	ck_assert(validate_iban("DE89370400440532013000", 22));
	ck_assert(!validate_iban("GB82 WEST 1234 5698 7654 33", 27));
	ck_assert(!validate_iban("DE8937040044053201300", 21)); /* wrong length for DE */
	ck_assert(!validate_iban("ZZ89370400440532013000", 22));
	ck_assert(validate_us_ssn("536-22-8107", 11));
	ck_assert(!validate_us_ssn("000-12-3456", 11));
	ck_assert(!validate_us_ssn("666-12-3456", 11));
	ck_assert(!validate_us_ssn("912-12-3456", 11));
	ck_assert(!validate_us_ssn("536-00-8107", 11));
	ck_assert(!validate_us_ssn("536-22-0000", 11));
	ck_assert(!validate_us_ssn("078-05-1120", 11));
	ck_assert(validate_aba("011000015", 9));  /* Federal Reserve Boston */
	ck_assert(validate_aba("021000021", 9));  /* JPMorgan Chase */
	ck_assert(!validate_aba("021000022", 9));
	ck_assert(!validate_aba("991000021", 9)); /* no such prefix */
	ck_assert(validate_entropy("aaaaaaaa", 8) < 0.01);
	ck_assert(validate_entropy("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 40) > 4.0);
	ck_assert_int_eq(validate_by_name("luhn"), VALIDATE_LUHN);
	ck_assert_int_eq(validate_by_name("nope"), -1);
}
END_TEST

START_TEST(masking)
{
	char out[MASK_SAMPLE_MAX + 1];
	ck_assert_str_eq(mask_sample(out, "4111 1111 1111 1111", 19, 4, 4), "4111 **** **** 1111");
	ck_assert_str_eq(mask_sample(out, "536-22-8107", 11, 0, 4), "***-**-8107");
	ck_assert_str_eq(mask_sample(out, "AKIAIOSFODNN7EXAMPLE", 20, 4, 4), "AKIA************MPLE");
	/* never more than half: a short secret stays mostly hidden */
	mask_sample(out, "hunter22", 8, 4, 4);
	size_t shown = 0;
	for (const char *p = out; *p; p++)
		shown += *p != '*';
	ck_assert_uint_le(shown, 4);
	/* long secrets: ends and a length */
	char pem[2000];
	memset(pem, 'A', sizeof pem);
	mask_sample(out, pem, sizeof pem, 4, 4);
	ck_assert(strstr(out, "[2000 chars]"));
	ck_assert_uint_le(strlen(out), MASK_SAMPLE_MAX);
	/* in place keeps the length and the separators */
	char card[] = "4539-1488-0343-6467";
	mask_inplace(card, strlen(card), 0, 4, 'X');
	ck_assert_str_eq(card, "XXXX-XXXX-XXXX-6467");
}
END_TEST

static detset_t *set_of(const detector_spec_t *specs, size_t n, detector_t **out)
{
	detset_t *set = detset_new();
	char err[256];
	for (size_t i = 0; i < n; i++) {
		detector_t *d = detector_compile(&specs[i], err, sizeof err);
		ck_assert_msg(d != NULL, "%s", err);
		out[i] = detset_add(set, d);
	}
	return set;
}

static void end_to_end(void)
{
	static const char *const aws_kw[] = {"AKIA"};
	static const char *const ctx[] = {"ssn", "social security"};
	static const char *const stop[] = {"example"};
	detector_spec_t specs[] = {
		{.name = "aws", .regex = "\\b(AKIA[A-Z0-9]{16})\\b", .keywords = aws_kw, .n_keywords = 1, .group = 1},
		{.name = "card", .regex = "\\b(?:\\d[ -]?){12,18}\\d\\b", .validate = VALIDATE_LUHN},
		{.name = "ssn9", .regex = "\\b\\d{9}\\b", .validate = VALIDATE_US_SSN, .context_words = ctx, .n_context = 2,
		 .context_distance = 30},
		{.name = "tok", .regex = "token=(\\w{12,})", .group = 1, .allow = {{.stopwords = stop, .n_stopwords = 1}},
		 .n_allow = 1, .min_count = 2},
	};
	detector_t *d[4];
	detset_t *set = set_of(specs, 4, d);
	detect_scratch_t *s = detect_scratch_new(0);
	const char *text = "key AKIAIOSFODNN7EXAMPLE and AKIA1234567890ABCDEF; card 4539 1488 0343 6467 not 4539 1488 0343 6468;"
			   " ssn 536228107 far away............................................ 536228108 "
			   "token=abcdefghijklmn token=exampleexampleexample token=zyxwvutsrqpo";
	det_result_t *r = calloc(4, sizeof *r);
	size_t execs = detset_scan(set, s, (const uint8_t *)text, strlen(text), NULL, (const detector_t *const *)d, 4, r);
	ck_assert_uint_gt(execs, 0);
	ck_assert_uint_eq(r[0].count, 2);
	ck_assert_uint_eq(r[0].matches[0].len, 20); /* the group, not "\b...\b" */
	ck_assert_uint_eq(r[1].count, 1);           /* the Luhn-valid one only */
	ck_assert_uint_eq(r[2].count, 1);           /* only the one near "ssn" */
	ck_assert_uint_eq(r[3].count, 2);           /* the stopword one allowed */
	/* no keyword, no regex run for a keyword detector */
	const char *clean = "nothing to see here 4539 1488 0343 6467";
	execs = detset_scan(set, s, (const uint8_t *)clean, strlen(clean), NULL, (const detector_t *const *)d, 1, r);
	ck_assert_uint_eq(execs, 0);
	ck_assert_uint_eq(r[0].count, 0);
	/* the same results without the prefilter */
	detset_scan_all(set, s, (const uint8_t *)text, strlen(text), NULL, (const detector_t *const *)d, 4, r);
	ck_assert_uint_eq(r[0].count, 2);
	ck_assert_uint_eq(r[2].count, 1);
	free(r);
	detect_scratch_free(s);
	detset_free(set);
}

START_TEST(detectors_end_to_end)
{
	end_to_end();
}
END_TEST

/* A service sandbox that refuses writable-executable memory (systemd's
 * MemoryDenyWriteExecute, here the same kernel switch) leaves PCRE2 no
 * JIT: the detectors must find exactly the same, interpreted (and the
 * engine says once that they are slower). */
START_TEST(detectors_without_jit_find_the_same)
{
	const char *fork_mode = getenv("CK_FORK");
	if (fork_mode && !strcmp(fork_mode, "no")) {
		fprintf(stderr, "detectors_without_jit_find_the_same: SKIPPED (needs its own process: CK_FORK=no)\n");
		return;
	}
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0) {
		fprintf(stderr, "detectors_without_jit_find_the_same: SKIPPED (no PR_SET_MDWE before Linux 6.3)\n");
		return;
	}
	int e;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR) "\\d{4}", PCRE2_ZERO_TERMINATED, 0, &e, &off, NULL);
	ck_assert_int_ne(pcre2_jit_compile(re, PCRE2_JIT_COMPLETE), 0); /* the sandbox holds */
	pcre2_code_free(re);
	end_to_end();
}
END_TEST

START_TEST(identical_specs_share_one_detector)
{
	detector_spec_t a = {.name = "x", .regex = "abc"};
	char err[128];
	detset_t *set = detset_new();
	detector_t *d1 = detset_add(set, detector_compile(&a, err, sizeof err));
	detector_t *d2 = detset_add(set, detector_compile(&a, err, sizeof err));
	ck_assert_ptr_eq(d1, d2);
	ck_assert_uint_eq(detset_count(set), 1);
	detector_spec_t bad = {.name = "bad", .regex = "(unclosed"};
	ck_assert_ptr_null(detector_compile(&bad, err, sizeof err));
	ck_assert_msg(strstr(err, "does not compile"), "%s", err);
	detector_spec_t grp = {.name = "g", .regex = "(a)", .group = 2};
	ck_assert_ptr_null(detector_compile(&grp, err, sizeof err));
	ck_assert_msg(strstr(err, "capture group"), "%s", err);
	detset_free(set);
}
END_TEST

/* A keyword narrows where a match may start, not what it may read: a long
 * token after its keyword is found whole, look-aheads see the real text,
 * and the prefilter changes nothing but the work done. */
START_TEST(keyword_window_does_not_cut_matches)
{
	static const char *const kw[] = {"tok_"};
	detector_spec_t spec = {.name = "tok", .regex = "tok_[a-z]+(?![a-z])", .keywords = kw, .n_keywords = 1};
	detector_t *d;
	detset_t *set = set_of(&spec, 1, &d);
	detect_scratch_t *s = detect_scratch_new(0);
	size_t n = 2 + 4 + 600;
	char *text = malloc(n + 1);
	memcpy(text, "x tok_", 6);
	memset(text + 6, 'a', 600);
	text[n] = '\0';
	det_result_t *r = calloc(1, sizeof *r);
	detset_scan(set, s, (const uint8_t *)text, n, NULL, (const detector_t *const *)&d, 1, r);
	ck_assert_uint_eq(r->count, 1);
	ck_assert_uint_eq(r->matches[0].start, 2);
	ck_assert_uint_eq(r->matches[0].len, 604);
	detset_scan_all(set, s, (const uint8_t *)text, n, NULL, (const detector_t *const *)&d, 1, r);
	ck_assert_uint_eq(r->count, 1);
	ck_assert_uint_eq(r->matches[0].len, 604);
	free(r);
	free(text);
	detect_scratch_free(s);
	detset_free(set);
}
END_TEST

/* The reference: one byte at a time, straight from the definition. */
static size_t runs_naive(const uint8_t *b, size_t len, uint32_t min, digit_run_t *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		if (b[i] < '0' || b[i] > '9') {
			i++;
			continue;
		}
		size_t start = i, end = i + 1;
		uint32_t digits = 1;
		for (size_t j = i + 1; j < len;) {
			if (b[j] >= '0' && b[j] <= '9') {
				digits++;
				end = ++j;
			} else if ((b[j] == ' ' || b[j] == '-') && j + 1 < len && b[j + 1] >= '0' && b[j + 1] <= '9') {
				j++;
			} else {
				break;
			}
		}
		if (digits >= min && n++ < cap)
			out[n - 1] = (digit_run_t){(uint32_t)start, (uint32_t)end, digits};
		i = end;
	}
	return n;
}

START_TEST(digit_runs_match_the_definition)
{
	width_for(_i);
	static const char *const alphabets[] = {"0123456789 -", "0123456789 -a", "01 -x.", "9", "5-", "7 "};
	srand(11);
	uint8_t buf[700];
	digit_run_t got[400], want[400];
	for (int round = 0; round < 3000; round++) {
		const char *abc = alphabets[round % 6];
		size_t len = (size_t)(rand() % (int)sizeof buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)abc[rand() % (int)strlen(abc)];
		uint32_t min = 1 + (uint32_t)(rand() % 20);
		size_t cap = round % 7 ? 400 : 3;
		size_t n = digit_runs_find(buf, len, min, got, cap);
		size_t m = runs_naive(buf, len, min, want, cap);
		if (m > cap) /* the finder stops one past cap */
			ck_assert_uint_eq(n, cap + 1);
		else
			ck_assert_msg(n == m, "round %d (min %u, len %zu): %zu runs, reference %zu", round, min, len, n, m);
		for (size_t k = 0; k < (n < cap ? n : cap); k++)
			ck_assert_msg(!memcmp(&got[k], &want[k], sizeof got[k]), "round %d run %zu: [%u,%u) %u digits, "
				      "reference [%u,%u) %u", round, k, got[k].start, got[k].end, got[k].digits,
				      want[k].start, want[k].end, want[k].digits);
	}
	/* a run across many 64-byte blocks, and one that ends exactly at a block end */
	memset(buf, '4', 640);
	ck_assert_uint_eq(digit_runs_find(buf, 640, 14, got, 4), 1);
	ck_assert_uint_eq(got[0].digits, 640);
	memset(buf, 'x', 128);
	memcpy(buf + 50, "4111 1111-1111", 14);
	ck_assert_uint_eq(digit_runs_find(buf, 128, 12, got, 4), 1);
	ck_assert_uint_eq(got[0].start, 50);
	ck_assert_uint_eq(got[0].end, 64);
}
END_TEST

/* A text of up to max_pieces random pieces. */
static void random_text(bytebuf_t *text, const char *const *pieces, size_t n_pieces, int max_pieces)
{
	text->len = 0;
	int n = rand() % max_pieces;
	for (int i = 0; i < n; i++) {
		const char *p = pieces[rand() % (int)n_pieces];
		bytebuf_append(text, p, strlen(p));
	}
}

/* A windowed scan finds what the scan of every byte finds, when the
 * windows hold their promise; texts mix digits, separators, keywords. */
static void windowed_equals_every_byte(const detector_spec_t *spec, const char *const *pieces, size_t n_pieces)
{
	detector_t *d;
	detset_t *set = set_of(spec, 1, &d);
	detect_scratch_t *s = detect_scratch_new(0);
	det_result_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
	bytebuf_t text = {0};
	srand(5);
	for (int round = 0; round < 300; round++) {
		random_text(&text, pieces, n_pieces, 400);
		detset_scan(set, s, (const uint8_t *)text.data, text.len, NULL, (const detector_t *const *)&d, 1, a);
		detset_scan_all(set, s, (const uint8_t *)text.data, text.len, NULL, (const detector_t *const *)&d, 1, b);
		ck_assert_msg(a->count == b->count, "round %d: windowed %u, every byte %u", round, a->count, b->count);
		for (uint32_t k = 0; k < a->n_matches; k++)
			ck_assert(a->matches[k].start == b->matches[k].start && a->matches[k].len == b->matches[k].len);
	}
	bytebuf_free(&text);
	free(a);
	free(b);
	detect_scratch_free(s);
	detset_free(set);
}

START_TEST(digit_windows_find_what_every_byte_finds)
{
	static const char *const pieces[] = {"4", "1", "0", " ", "-", "x", ";", "=", "\n", "4111", "1111 ", "2027"};
	/* a card with one kind of separator: 16 digits, a match starts at the first */
	detector_spec_t card = {.name = "card", .regex = "(?<![0-9])4[0-9]{3}([ -]?)[0-9]{4}\\1[0-9]{4}\\1[0-9]{4}(?![0-9])",
				.digits = 16, .window_set = true};
	windowed_equals_every_byte(&card, pieces, sizeof pieces / sizeof pieces[0]);
	/* a sentinel before the digits: the window reaches back one byte */
	detector_spec_t track = {.name = "track", .regex = ";[0-9]{13,19}=", .digits = 13, .window_set = true,
				 .window_before = 1};
	windowed_equals_every_byte(&track, pieces, sizeof pieces / sizeof pieces[0]);
}
END_TEST

START_TEST(asymmetric_keyword_windows)
{
	static const char *const kw[] = {"key"};
	static const char *const pieces[] = {"key", "my_", "api", "=", ": ", "abc", " ", "x", "9", "\n"};
	/* the keyword ends the name: a match starts at most 8 bytes before it, never after */
	detector_spec_t spec = {.name = "named", .regex = "(?<![a-z_])[a-z_]{0,8}key\\s*[=:]\\s*[a-z0-9]+",
				.keywords = kw, .n_keywords = 1, .window_set = true, .window_before = 8};
	windowed_equals_every_byte(&spec, pieces, sizeof pieces / sizeof pieces[0]);
	/* window = 0 means no slack at all, not the default */
	detector_spec_t tight = {.name = "tight", .regex = "key=[0-9]", .keywords = kw, .n_keywords = 1, .window_set = true};
	windowed_equals_every_byte(&tight, pieces, sizeof pieces / sizeof pieces[0]);
	char err[200];
	detector_spec_t both = {.name = "both", .regex = "x", .keywords = kw, .n_keywords = 1, .digits = 3};
	ck_assert_ptr_null(detector_compile(&both, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "digits and keywords"));
}
END_TEST

/* gitleaks' generic rule, as its default configuration writes it. */
static const char generic_re[] =
	"(?i)[\\w.-]{0,50}?(?:access|auth|(?-i:[Aa]pi|API)|credential|creds|key|passw(?:or)?d|secret|token)"
	"(?:[ \\t\\w.-]{0,20})[\\s'\"]{0,3}(?:=|>|:{1,3}=|\\|\\||:|=>|\\?=|,)[\\x60'\"\\s=]{0,5}"
	"([\\w.=-]{10,150}|[a-z0-9][a-z0-9+/]{11,}={0,3})(?:[\\x60'\"\\s;]|\\\\[nr]|$)";
static const char *const generic_kw[] = {"access", "api", "auth", "key", "credential", "creds", "passwd", "password",
					 "secret", "token"};

START_TEST(keyreach_proves_only_what_holds)
{
	static const char *const kw[] = {"key", "tok_"};
	static const struct {
		const char *re;
		int want;
	} cases[] = {
		{"tok_[a-z]{8}", 0},
		{"\\btok_[a-z]+\\b", 0},              /* anchors are zero-width */
		{"x{2,3}key", 3},                       /* the longest text before it */
		{"[\\w.-]{0,50}?(?:key|tok_)=", 50},
		{"(?i)[Kk][Ee][Yy]=", 0},               /* narrow classes are expanded, case folded */
		{"(?:KEY|Tok_)+x", 0},
		{"ab?k(?:e|E)y", 2},                    /* a keyword across several parts */
		{"(?<=x)key", 0},                       /* look-arounds consume nothing */
		{"\\Qkey\\E", 0},
		{"[a-z]*key", -1},                      /* unbounded before it */
		{"(?:key|foo)=", -1},                   /* a branch without one */
		{"(?:key)?=x", -1},                     /* optional */
		{"(a)\\1key", -1},                      /* a back-reference: not understood */
		{"a\\Kkey", -1},                        /* \\K moves the match start */
		{"(?x) k e y", -1},                     /* extended syntax */
		{"x{,3}key", -1},                       /* read differently across PCRE2 versions */
		{"(*UTF)key", -1},
		{"[[:alpha:]]key", 1},
		{"k.y", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = keyreach_bound(cases[i].re, kw, 2, NULL);
		ck_assert_msg(got == cases[i].want, "%s: %d, want %d", cases[i].re, got, cases[i].want);
	}
	/* a match starts within the run of [\\w.-] before its keyword */
	uint8_t between[32];
	ck_assert_int_eq(keyreach_bound(generic_re, generic_kw, 10, between), 50);
	for (int c = 0; c < 128; c++) {
		bool want = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		ck_assert_msg(((between[c >> 3] >> (c & 7)) & 1) == want, "byte %d", c);
	}
	/* hostile patterns end in "no proof", within their bounds */
	char deep[4096];
	memset(deep, '(', 2000);
	memcpy(deep + 2000, "key", 3);
	memset(deep + 2003, ')', 2000);
	deep[4003] = '\0';
	ck_assert_int_eq(keyreach_bound(deep, kw, 2, NULL), -1);
	char wide[8192];
	for (int i = 0; i < 2000; i++)
		memcpy(wide + 4 * i, "(a|b", 4);
	wide[8000] = '\0';
	ck_assert_int_eq(keyreach_bound(wide, kw, 2, NULL), -1);
}
END_TEST

/* A detector whose keywords gate the whole text finds, in a text holding
 * a keyword, what its regex finds with no keywords at all (and nothing in
 * a text without one), whether keyreach kept it to windows or not. */
static void text_gate_equals_whole_text(const char *re, const char *const *kw, size_t n_kw, const char *const *pieces,
					size_t n_pieces)
{
	detector_spec_t specs[2] = {
		{.name = "gated", .regex = re, .keywords = kw, .n_keywords = n_kw, .gate_text = true},
		{.name = "plain", .regex = re},
	};
	detector_t *d[2];
	detset_t *set = set_of(specs, 2, d);
	detect_scratch_t *s = detect_scratch_new(0);
	det_result_t *r = calloc(2, sizeof *r);
	bytebuf_t text = {0};
	srand(7);
	for (int round = 0; round < 400; round++) {
		random_text(&text, pieces, n_pieces, 300);
		bool has_kw = false;
		for (size_t k = 0; k < n_kw; k++)
			for (size_t i = 0; i + strlen(kw[k]) <= text.len && !has_kw; i++)
				has_kw = !strncasecmp(text.data + i, kw[k], strlen(kw[k]));
		for (int mode = 0; mode < 2; mode++) {
			if (mode == 0)
				detset_scan(set, s, (const uint8_t *)text.data, text.len, NULL, (const detector_t *const *)d, 2, r);
			else
				detset_scan_all(set, s, (const uint8_t *)text.data, text.len, NULL, (const detector_t *const *)d, 2, r);
			uint32_t want = has_kw ? r[1].count : 0;
			ck_assert_msg(r[0].count == want, "%s round %d mode %d: gated %u, whole text %u", re, round, mode,
				      r[0].count, want);
			for (uint32_t k = 0; has_kw && k < r[0].n_matches; k++)
				ck_assert(r[0].matches[k].start == r[1].matches[k].start &&
					  r[0].matches[k].len == r[1].matches[k].len);
		}
	}
	bytebuf_free(&text);
	free(r);
	detect_scratch_free(s);
	detset_free(set);
}

START_TEST(text_gated_detectors_find_what_the_whole_text_finds)
{
	static const char *const pieces[] = {"api", "KEY", "token", "my_", "secret", "=", ": ", " ", "\"", "\n",
					     "Zf3D0LXCM3EIMbgJ", "abc123", "x9", ".", "-", "Passwd", "rapid", "aaaa"};
	text_gate_equals_whole_text(generic_re, generic_kw, 10, pieces, sizeof pieces / sizeof pieces[0]);
	/* no proof (a keyword that need not be in the match): the whole text */
	static const char *const far_kw[] = {"secret"};
	ck_assert_int_eq(keyreach_bound("[a-z0-9]{10}=", far_kw, 1, NULL), -1);
	text_gate_equals_whole_text("[a-z0-9]{10}=", far_kw, 1, pieces, sizeof pieces / sizeof pieces[0]);
}
END_TEST

/* The secret is the first group that matched something; entropy must
 * exceed the threshold; newlines at a match's ends are not part of it. */
START_TEST(gitleaks_secret_semantics)
{
	static const char *const marker[] = {"gitleaks:allow"};
	detector_spec_t specs[] = {
		{.name = "first", .regex = "k=(?:\"(\\w+)\"|(\\w+))", .group_first = true, .min_entropy = 1.9},
		{.name = "exact", .regex = "k=(?:\"(\\w+)\"|(\\w+))", .group_first = true, .min_entropy = 2.0},
		{.name = "line", .regex = "t=\\w+\\s", .allow = {{.regexes = marker, .n_regexes = 1, .target = ALLOW_LINE}},
		 .n_allow = 1},
	};
	detector_t *d[3];
	detset_t *set = set_of(specs, 3, d);
	detect_scratch_t *s = detect_scratch_new(0);
	det_result_t *r = calloc(3, sizeof *r);
	/* "abcd": entropy exactly 2 bits: above 1.9, not above 2 */
	const char *text = "k=abcd;\nt=zz\n# gitleaks:allow\n";
	detset_scan(set, s, (const uint8_t *)text, strlen(text), NULL, (const detector_t *const *)d, 3, r);
	ck_assert_uint_eq(r[0].count, 1);
	ck_assert_uint_eq(r[0].matches[0].start, 2); /* group 2, the first that matched */
	ck_assert_uint_eq(r[0].matches[0].len, 4);
	ck_assert_uint_eq(r[1].count, 0);
	/* the match ends in a newline; its line is still "t=zz" alone */
	ck_assert_uint_eq(r[2].count, 1);
	ck_assert_uint_eq(r[2].matches[0].mlen, 4);
	const char *allowed = "t=zz # gitleaks:allow\n";
	detset_scan(set, s, (const uint8_t *)allowed, strlen(allowed), NULL, (const detector_t *const *)d, 3, r);
	ck_assert_uint_eq(r[2].count, 0);
	free(r);
	detect_scratch_free(s);
	detset_free(set);
	/* a filename-only detector: a file allowlist drops the file */
	static const char *const vendored[] = {"(?:^|/)vendor/"};
	detector_spec_t pem = {.name = "pem", .filename = "\\.pem$", .allow = {{.filenames = vendored, .n_filenames = 1}},
			       .n_allow = 1};
	char err[200];
	detector_t *pd = detector_compile(&pem, err, sizeof err);
	ck_assert_ptr_nonnull(pd);
	detect_scratch_t *s2 = detect_scratch_new(0);
	ck_assert(detector_filename_matches(pd, "keys/a.pem", 10, s2));
	ck_assert(!detector_filename_matches(pd, "vendor/a.pem", 12, s2));
	ck_assert(!detector_filename_matches(pd, "keys/a.txt", 10, s2));
	detect_scratch_free(s2);
	detset_t *set2 = detset_new();
	detset_add(set2, pd);
	detset_free(set2);
}
END_TEST

/* A generic detector gives way where a specific one found, on the same
 * line, a secret that holds its own; elsewhere it still finds. */
START_TEST(generic_detectors_give_way)
{
	detector_spec_t specs[] = {
		{.name = "generic", .regex = "key=(\\w+)", .group = 1, .generic = true},
		{.name = "vendor", .regex = "(sk_[a-z0-9]+)", .group = 1},
	};
	detector_t *d[2];
	detset_t *set = set_of(specs, 2, d);
	detect_scratch_t *s = detect_scratch_new(0);
	det_result_t *r = calloc(2, sizeof *r);
	/* line 1: the same secret; line 2: generic only; line 3: the vendor
	 * token is on the next line, so the generic finding stays */
	const char *text = "key=sk_abc123\nkey=plain999\nkey=other77\nsk_other77\n";
	detset_scan(set, s, (const uint8_t *)text, strlen(text), NULL, (const detector_t *const *)d, 2, r);
	ck_assert_uint_eq(r[1].count, 2);
	ck_assert_uint_eq(r[0].count, 2);
	ck_assert_uint_eq(r[0].n_matches, 2);
	ck_assert_uint_eq(r[0].matches[0].start, 18); /* plain999 */
	ck_assert_uint_eq(r[0].matches[1].start, 31); /* other77 */
	/* alone, it finds all three */
	detset_scan(set, s, (const uint8_t *)text, strlen(text), NULL, (const detector_t *const *)d, 1, r);
	ck_assert_uint_eq(r[0].count, 3);
	free(r);
	detect_scratch_free(s);
	detset_free(set);
}
END_TEST

/* Stuffing a body with a context word must not push the real one out. */
/* boundary: keywords and context words count only as words, through the
 * prefilter's hits, the flooded path and the scan without a prefilter. */
START_TEST(words_stand_as_words)
{
	const uint8_t *t = (const uint8_t *)"ARABIC bic card_number creditCardNumber TIOCMBIC sms2 ssMSSQL tel: x";
	size_t n = strlen((const char *)t);
	ck_assert(!detect_word_at(t, n, 3, 3));  /* bic in ARABIC */
	ck_assert(detect_word_at(t, n, 7, 3));   /* bic */
	ck_assert(detect_word_at(t, n, 11, 4));  /* card in card_number */
	ck_assert(detect_word_at(t, n, 29, 4));  /* Card in creditCardNumber */
	ck_assert(!detect_word_at(t, n, 45, 3)); /* BIC in TIOCMBIC */
	ck_assert(detect_word_at(t, n, 49, 3));  /* sms before a digit */
	ck_assert(!detect_word_at(t, n, 55, 3)); /* sMS in ssMSSQL */
	ck_assert(detect_word_at(t, n, 62, 4));  /* "tel:" ends in a non-word byte: no check there */

	static const char *const ctx[] = {"bic"};
	detector_spec_t spec = {.name = "bic", .regex = "\\b[A-Z]{6}[A-Z0-9]{2}\\b", .context_words = ctx, .n_context = 1,
				.context_distance = 20, .boundary = true};
	detector_spec_t loose = spec;
	loose.boundary = false;
	loose.name = "loose";
	detector_spec_t both[] = {spec, loose};
	detector_t *d[2];
	detset_t *set = set_of(both, 2, d);
	detect_scratch_t *s = detect_scratch_new(0);
	det_result_t *r = calloc(2, sizeof *r);
	const char *text = "ARABIC DEUTDEFF ......................... bic: NWBKGB2L";
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0)
			detset_scan(set, s, (const uint8_t *)text, strlen(text), NULL, (const detector_t *const *)d, 2, r);
		else
			detset_scan_all(set, s, (const uint8_t *)text, strlen(text), NULL, (const detector_t *const *)d, 2, r);
		ck_assert_uint_eq(r[0].count, 1); /* only the BIC next to the word "bic" */
		ck_assert_uint_eq(r[1].count, 2); /* without boundary, ARABIC vouches for DEUTDEFF */
	}
	ck_assert_str_ne(detector_key(d[0]), detector_key(d[1]));
	free(r);
	detect_scratch_free(s);
	detset_free(set);
}
END_TEST

START_TEST(context_survives_flooding)
{
	static const char *const ctx[] = {"routing"};
	detector_spec_t spec = {.name = "aba", .regex = "\\b\\d{9}\\b", .context_words = ctx, .n_context = 1,
				.context_distance = 20};
	detector_t *d;
	detset_t *set = set_of(&spec, 1, &d);
	detect_scratch_t *s = detect_scratch_new(0);
	bytebuf_t b = {0};
	for (int i = 0; i < 10000; i++)
		bytebuf_append(&b, "routing ", 8);
	for (int i = 0; i < 1000; i++)
		bytebuf_append(&b, ".", 1);
	bytebuf_append(&b, " routing 021000021 and, far from any word: ", 43);
	for (int i = 0; i < 100; i++)
		bytebuf_append(&b, ".", 1);
	bytebuf_append(&b, " 021000021", 10);
	det_result_t *r = calloc(1, sizeof *r);
	detset_scan(set, s, (const uint8_t *)b.data, b.len, NULL, (const detector_t *const *)&d, 1, r);
	ck_assert_uint_eq(r->count, 1);
	detset_scan_all(set, s, (const uint8_t *)b.data, b.len, NULL, (const detector_t *const *)&d, 1, r);
	ck_assert_uint_eq(r->count, 1);
	free(r);
	bytebuf_free(&b);
	detect_scratch_free(s);
	detset_free(set);
}
END_TEST

START_TEST(catastrophic_pattern_times_out)
{
	detector_spec_t spec = {.name = "evil", .regex = "(a+)+$"};
	detector_t *d;
	detset_t *set = set_of(&spec, 1, &d);
	detect_scratch_t *s = detect_scratch_new(100000);
	char text[4096];
	memset(text, 'a', sizeof text - 2);
	text[sizeof text - 2] = '!';
	text[sizeof text - 1] = '\0';
	det_result_t *r = calloc(1, sizeof *r);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	detset_scan(set, s, (const uint8_t *)text, strlen(text), NULL, (const detector_t *const *)&d, 1, r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert(r->timed_out);
	ck_assert_uint_eq(r->count, 0);
	ck_assert_msg(secs < 2.0, "the scan took %.2f s", secs);
	free(r);
	detect_scratch_free(s);
	detset_free(set);
}
END_TEST

Suite *detect_suite(void)
{
	Suite *s = suite_create("detect");
	TCase *t = tcase_create("detect");
	tcase_set_timeout(t, 30);
	tcase_add_loop_test(t, prefilter_finds_what_naive_search_finds, 0, 2);
	tcase_add_test(t, validators);
	tcase_add_test(t, masking);
	tcase_add_test(t, detectors_end_to_end);
	tcase_add_test(t, detectors_without_jit_find_the_same);
	tcase_add_test(t, identical_specs_share_one_detector);
	tcase_add_test(t, keyword_window_does_not_cut_matches);
	tcase_add_test(t, context_survives_flooding);
	tcase_add_test(t, words_stand_as_words);
	tcase_add_test(t, catastrophic_pattern_times_out);
	tcase_add_loop_test(t, digit_runs_match_the_definition, 0, 2);
	tcase_add_test(t, digit_windows_find_what_every_byte_finds);
	tcase_add_test(t, asymmetric_keyword_windows);
	tcase_add_test(t, keyreach_proves_only_what_holds);
	tcase_add_test(t, text_gated_detectors_find_what_the_whole_text_finds);
	tcase_add_test(t, gitleaks_secret_semantics);
	tcase_add_test(t, generic_detectors_give_way);
	suite_add_tcase(s, t);
	return s;
}
