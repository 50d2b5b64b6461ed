/*
 * libFuzzer: keyreach's regex reading and its proofs. The input is a
 * pattern, a newline, keywords separated by commas, a newline, and a
 * text. keyreach must stay within its bounds whatever the pattern; and
 * when it claims that every match holds a keyword at most B bytes past
 * its start, with only bytes of its `between` set before it, every match
 * PCRE2 finds in the text (from every start, not only the leftmost) must,
 * or a detector kept to windows would miss what the whole text holds: a
 * leak.
 */
#include "detect/keyreach.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_KW 8

static bool in_set(const uint8_t *set, uint8_t c)
{
	c = c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
	return (set[c >> 3] >> (c & 7)) & 1;
}

/* A keyword at most bound bytes in, with only `between` bytes before it. */
static bool holds_keyword(const uint8_t *s, size_t start, size_t end, int bound, const uint8_t *between,
			  char *const *kw, size_t n_kw)
{
	for (size_t at = start; at <= start + (size_t)bound && at < end; at++) {
		for (size_t k = 0; k < n_kw; k++) {
			size_t m = strlen(kw[k]);
			if (at + m <= end && !strncasecmp((const char *)s + at, kw[k], m))
				return true;
		}
		if (!in_set(between, s[at]))
			return false;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl1 = memchr(data, '\n', size);
	if (!nl1)
		return 0;
	const uint8_t *nl2 = memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 - data));
	if (!nl2)
		return 0;
	char *pattern = strndup((const char *)data, (size_t)(nl1 - data));
	char *kwline = strndup((const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
	const uint8_t *text = nl2 + 1;
	size_t text_len = size - (size_t)(text - data);
	char *kw[MAX_KW];
	size_t n_kw = 0;
	for (char *save = NULL, *t = strtok_r(kwline, ",", &save); t && n_kw < MAX_KW; t = strtok_r(NULL, ",", &save))
		kw[n_kw++] = t;
	uint8_t between[32];
	int bound = keyreach_bound(pattern, (const char *const *)kw, n_kw, between);
	if (bound >= 0) {
		int code;
		PCRE2_SIZE off;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
		if (re) {
			pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
			pcre2_match_context *mc = pcre2_match_context_create(NULL);
			pcre2_set_match_limit(mc, 100000);
			for (size_t start = 0; start <= text_len; start++) {
				if (pcre2_match(re, text, text_len, start, PCRE2_ANCHORED, md, mc) < 0)
					continue;
				PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
				if (ov[1] > ov[0] && !holds_keyword(text, ov[0], ov[1], bound, between, kw, n_kw)) {
					fprintf(stderr, "keyreach: /%s/ bound %d, but the match at %zu holds no keyword\n",
						pattern, bound, (size_t)ov[0]);
					abort();
				}
			}
			pcre2_match_context_free(mc);
			pcre2_match_data_free(md);
			pcre2_code_free(re);
		}
	}
	free(pattern);
	free(kwline);
	return 0;
}
