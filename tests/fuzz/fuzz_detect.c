/*
 * libFuzzer: the detection scan over outside bytes. Detectors with each
 * kind of trigger (digits, an asymmetric keyword window, none) scan the
 * input windowed and then over every byte; the two must agree, since a
 * window that misses what the full scan finds is a leak. Digit runs are
 * also checked against their definition, run by run, and the keyword
 * prefilter (its SIMD stage and its scalar skip) against a naive search.
 * A detector whose keywords gate the whole text (kept to windows by
 * keyreach's proof) must find, in a text holding a keyword, what its regex
 * finds with no keywords at all, and nothing in a text without one.
 */
#include "detect/detector.h"
#include "detect/digitruns.h"
#include "detect/prefilter.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Short and long, shared prefixes, a one-byte word, case mixes: few
 * enough that the SIMD stage runs (the big set takes the scalar path). */
static const char *const words[] = {"ssn", "soc", "ss#", "@", "AKIA", "akid", "secret", "secretary", "passw",
				    "-----BEGIN", "ghp_", "xoxb-", "key", "k3y", "token"};
#define N_WORDS (sizeof words / sizeof words[0])
static prefilter_t *few, *many;
static detset_t *set;
static detect_scratch_t *scratch;
static const detector_t *want[3];
static const detector_t *gated[2]; /* window = "text", and the same regex ungated */
static const char *const gate_kw[] = {"key", "secret"};

static void setup(void)
{
	static const char *const kw[] = {"key"};
	static const detector_spec_t specs[] = {
		{.name = "card", .regex = "(?<![0-9])[3-6][0-9]{3}([ -]?)[0-9]{4}\\1[0-9]{4}\\1[0-9]{2,4}(?![0-9])",
		 .digits = 14, .window_set = true},
		{.name = "named", .regex = "(?i)(?<![a-z_])[a-z_]{0,12}key\\s{0,2}[=:]\\s{0,2}[a-z0-9]{4,}",
		 .keywords = kw, .n_keywords = 1, .window_set = true, .window_before = 12},
		{.name = "ssn", .regex = "(?<![0-9-])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9-])", .digits = 9},
	};
	few = prefilter_new();
	many = prefilter_new();
	for (size_t i = 0; i < N_WORDS; i++)
		if (!prefilter_add(few, words[i], strlen(words[i]), (uint32_t)i))
			abort();
	char w[8];
	for (uint32_t i = 0; i < 300; i++) { /* past the SIMD stage's limit */
		snprintf(w, sizeof w, "w%03u", i);
		if (!prefilter_add(many, w, strlen(w), (uint32_t)N_WORDS + i))
			abort();
	}
	for (size_t i = 0; i < N_WORDS; i++)
		if (!prefilter_add(many, words[i], strlen(words[i]), (uint32_t)i))
			abort();
	if (!prefilter_build(few) || !prefilter_build(many))
		abort();
	set = detset_new();
	scratch = detect_scratch_new(0);
	char err[256];
	for (size_t i = 0; i < 3; i++) {
		detector_t *d = detector_compile(&specs[i], err, sizeof err);
		if (!d || !(want[i] = detset_add(set, d)))
			abort();
	}
	static const char gate_re[] = "(?i)[\\w.-]{0,20}?(?:key|secret)[ \\t]{0,3}[=:][ \\t]{0,3}([\\w.=-]{6,40})";
	const detector_spec_t gate_specs[] = {
		{.name = "gated", .regex = gate_re, .keywords = gate_kw, .n_keywords = 2, .gate_text = true,
		 .group_first = true},
		{.name = "plain", .regex = gate_re, .group_first = true},
	};
	for (size_t i = 0; i < 2; i++) {
		detector_t *d = detector_compile(&gate_specs[i], err, sizeof err);
		if (!d || !(gated[i] = detset_add(set, d)))
			abort();
	}
}

static void check_text_gate(const uint8_t *b, size_t len)
{
	bool has_kw = false;
	for (size_t k = 0; k < 2 && !has_kw; k++)
		for (size_t i = 0; i + strlen(gate_kw[k]) <= len && !has_kw; i++)
			has_kw = !strncasecmp((const char *)b + i, gate_kw[k], strlen(gate_kw[k]));
	static det_result_t r[2];
	detset_scan(set, scratch, b, len, NULL, gated, 2, r);
	if (!has_kw ? r[0].count != 0 : r[0].count != r[1].count)
		abort();
	for (uint32_t k = 0; has_kw && k < r[0].n_matches; k++)
		if (r[0].matches[k].start != r[1].matches[k].start || r[0].matches[k].len != r[1].matches[k].len)
			abort();
}

/* Every run is maximal, starts and ends on a digit, counts its digits
 * right, and only space or dash stands alone between them. */
static void check_runs(const uint8_t *b, size_t len, uint32_t min)
{
	digit_run_t runs[64];
	size_t n = digit_runs_find(b, len, min, runs, 64);
	uint32_t prev_end = 0;
	for (size_t k = 0; k < n && k < 64; k++) {
		const digit_run_t *r = &runs[k];
		if (r->start < prev_end || r->end > len || r->start >= r->end || r->digits < min)
			abort();
		uint32_t digits = 0;
		for (uint32_t i = r->start; i < r->end; i++) {
			bool digit = b[i] >= '0' && b[i] <= '9';
			digits += digit;
			if (!digit && (b[i] != ' ' && b[i] != '-'))
				abort();
			if (!digit && !(b[i + 1] >= '0' && b[i + 1] <= '9'))
				abort();
		}
		if (digits != r->digits || !(b[r->start] >= '0' && b[r->start] <= '9') ||
		    !(b[r->end - 1] >= '0' && b[r->end - 1] <= '9'))
			abort();
		bool digit_before = r->start > 0 && b[r->start - 1] >= '0' && b[r->start - 1] <= '9';
		bool joins_before = r->start > 1 && (b[r->start - 1] == ' ' || b[r->start - 1] == '-') &&
				    b[r->start - 2] >= '0' && b[r->start - 2] <= '9';
		bool digit_after = r->end < len && b[r->end] >= '0' && b[r->end] <= '9';
		bool joins_after = r->end + 1 < len && (b[r->end] == ' ' || b[r->end] == '-') && b[r->end + 1] >= '0' &&
				   b[r->end + 1] <= '9';
		if (digit_before || joins_before || digit_after || joins_after)
			abort(); /* not maximal */
		prev_end = r->end;
	}
}

static bool count_hit(void *ctx, const pf_hit_t *h)
{
	if (h->tag < N_WORDS)
		(*(size_t *)ctx)++;
	return true;
}

static void check_prefilter(const prefilter_t *p, const uint8_t *b, size_t len)
{
	size_t expected = 0, got = 0;
	for (size_t w = 0; w < N_WORDS; w++) {
		size_t m = strlen(words[w]);
		for (size_t i = 0; i + m <= len; i++)
			expected += !strncasecmp((const char *)b + i, words[w], m);
	}
	prefilter_scan(p, b, len, count_hit, &got);
	if (got != expected)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!set)
		setup();
	if (size > 1 << 20)
		return 0;
	check_runs(data, size, size ? 1 + data[0] % 20 : 1);
	if (size <= 4096) { /* the naive search is quadratic-ish */
		check_prefilter(few, data, size);
		check_prefilter(many, data, size);
	}
	check_text_gate(data, size);
	static det_result_t a[3], b[3];
	detset_scan(set, scratch, data, size, NULL, want, 3, a);
	detset_scan_all(set, scratch, data, size, NULL, want, 3, b);
	for (int i = 0; i < 3; i++) {
		if (a[i].count != b[i].count || a[i].n_matches != b[i].n_matches)
			abort();
		for (uint32_t k = 0; k < a[i].n_matches; k++)
			if (a[i].matches[k].start != b[i].matches[k].start || a[i].matches[k].len != b[i].matches[k].len)
				abort();
	}
	return 0;
}
