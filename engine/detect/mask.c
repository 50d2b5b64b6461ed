#include "detect/mask.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* How many of the alnum characters stay visible at each end: never more
 * than half of them, so whatever the detector asks, most of a short
 * secret stays hidden. */
static void visible(size_t alnum, uint8_t keep_first, uint8_t keep_last, size_t *first, size_t *last)
{
	size_t budget = alnum / 2;
	*last = keep_last < budget ? keep_last : budget;
	budget -= *last;
	*first = keep_first < budget ? keep_first : budget;
}

void mask_inplace(char *s, size_t n, uint8_t keep_first, uint8_t keep_last, char mask_char)
{
	size_t alnum = 0;
	for (size_t i = 0; i < n; i++)
		alnum += is_alnum(s[i]);
	size_t first, last;
	visible(alnum, keep_first, keep_last, &first, &last);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_alnum(s[i]))
			continue;
		if (k >= first && k < alnum - last)
			s[i] = mask_char;
		k++;
	}
}

char *mask_sample(char *out, const char *s, size_t n, uint8_t keep_first, uint8_t keep_last)
{
	char tmp[MASK_SAMPLE_MAX + 1];
	if (n <= MASK_SAMPLE_MAX) {
		memcpy(tmp, s, n);
		mask_inplace(tmp, n, keep_first, keep_last, '*');
		for (size_t i = 0; i < n; i++) /* samples are text: no control bytes */
			if ((unsigned char)tmp[i] < 0x20 || (unsigned char)tmp[i] >= 0x7f)
				tmp[i] = '.';
		memcpy(out, tmp, n);
		out[n] = '\0';
		return out;
	}
	/* Long (a PEM key, a token): the ends under the same rule, the length
	 * in between. */
	char head[12], tail[12];
	size_t alnum = 0;
	for (size_t i = 0; i < n; i++)
		alnum += is_alnum(s[i]);
	size_t first, last;
	visible(alnum, keep_first, keep_last, &first, &last);
	size_t h = first < 8 ? first : 8, t = last < 8 ? last : 8;
	size_t hi = 0, ti = 0;
	for (size_t i = 0; i < n && hi < h; i++)
		if (is_alnum(s[i]))
			head[hi++] = s[i];
	for (size_t i = n; i > 0 && ti < t; i--)
		if (is_alnum(s[i - 1]))
			tail[t - 1 - ti++] = s[i - 1];
	head[hi] = '\0';
	tail[t] = '\0';
	snprintf(out, MASK_SAMPLE_MAX + 1, "%s****[%zu chars]****%s", head, n, tail + (t - ti));
	return out;
}
