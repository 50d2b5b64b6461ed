/*
 * confidence: evidence to a level. See confidence.h.
 */
#include "detect/confidence.h"

#include "detect/detector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[CONF_LEVELS] = {"low", "medium", "high"};

int confidence_by_name(const char *name)
{
	for (int i = 0; name && i < CONF_LEVELS; i++)
		if (!strcmp(name, level_names[i]))
			return i;
	return -1;
}

const char *confidence_name(confidence_t c)
{
	return (unsigned)c < CONF_LEVELS ? level_names[c] : "low";
}

bool conf_rule_compile(conf_rule_t *r, const conf_rule_spec_t *spec, const char *const *fallback_words,
		       size_t n_fallback, bool boundary, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	const char *const *words = spec->n_words ? spec->words : fallback_words;
	size_t n = spec->n_words ? spec->n_words : n_fallback;
	if (n > CONF_MAX_WORDS) {
		snprintf(err, errlen, "confidence: at most %d words", CONF_MAX_WORDS);
		return false;
	}
	r->words = calloc(n ? n : 1, sizeof *r->words);
	if (!r->words) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		size_t m = strlen(words[i]);
		if (m == 0 || m > 255) {
			snprintf(err, errlen, "confidence: word %zu is empty or longer than 255 bytes", i + 1);
			conf_rule_free(r);
			return false;
		}
		r->words[i] = strdup(words[i]);
		if (!r->words[i]) {
			snprintf(err, errlen, "out of memory");
			conf_rule_free(r);
			return false;
		}
		r->n_words = i + 1;
		for (char *p = r->words[i]; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p + 32);
		if (m > r->max_len)
			r->max_len = m;
	}
	r->distance = spec->distance ? spec->distance : CONF_DEFAULT_DISTANCE;
	r->boundary = boundary;
	if (spec->high_set) {
		memcpy(r->high, spec->high, sizeof r->high);
		r->n_high = spec->n_high;
	} else {
		r->high[0] = (conf_cond_t){.validated = true, .context = true};
		r->n_high = 1;
	}
	if (spec->medium_set) {
		memcpy(r->medium, spec->medium, sizeof r->medium);
		r->n_medium = spec->n_medium;
	} else {
		r->medium[0] = (conf_cond_t){.validated = true};
		r->medium[1] = (conf_cond_t){.context = true};
		r->n_medium = 2;
	}
	return true;
}

void conf_rule_free(conf_rule_t *r)
{
	for (size_t i = 0; r->words && i < r->n_words; i++)
		free(r->words[i]);
	free(r->words);
	r->words = NULL;
	r->n_words = 0;
}

static size_t conds_key(char *out, size_t n, const char *tag, bool set, const conf_cond_t *c, size_t k)
{
	int w = snprintf(out, n, "%s%d:", tag, (int)set);
	for (size_t i = 0; i < k && w >= 0 && (size_t)w < n; i++)
		w += snprintf(out + w, n - (size_t)w, "%d%d%u,", c[i].validated, c[i].context, c[i].count);
	return w < 0 ? 0 : (size_t)w < n ? (size_t)w : n - 1;
}

void conf_rule_key(const conf_rule_spec_t *s, char *out, size_t n)
{
	/* the words are part of the detector's key through the caller */
	size_t w = (size_t)snprintf(out, n, "cd%u;", s->distance);
	if (w < n)
		w += conds_key(out + w, n - w, "h", s->high_set, s->high, s->n_high);
	if (w < n)
		conds_key(out + w, n - w, "m", s->medium_set, s->medium, s->n_medium);
}

void conf_state_init(conf_state_t *st)
{
	st->scanned_to = 0;
	st->last_word = -1;
}

static bool word_here(const conf_rule_t *r, const uint8_t *buf, size_t len, size_t i)
{
	uint8_t c = buf[i] >= 'A' && buf[i] <= 'Z' ? (uint8_t)(buf[i] + 32) : buf[i];
	for (size_t w = 0; w < r->n_words; w++) {
		const char *word = r->words[w];
		if ((uint8_t)word[0] != c)
			continue;
		size_t m = strlen(word), k = 1;
		if (i + m > len)
			continue;
		while (k < m) {
			uint8_t x = buf[i + k];
			if (x >= 'A' && x <= 'Z')
				x = (uint8_t)(x + 32);
			if (x != (uint8_t)word[k])
				break;
			k++;
		}
		if (k == m && (!r->boundary || detect_word_at(buf, len, i, m)))
			return true;
	}
	return false;
}

bool conf_context(const conf_rule_t *r, conf_state_t *st, const uint8_t *buf, size_t len, uint32_t ms, uint32_t me)
{
	if (!r->n_words)
		return false;
	size_t lo = ms > r->distance ? ms - r->distance : 0;
	size_t hi = (size_t)me + r->distance < len ? (size_t)me + r->distance : len;
	/* a word starting at or after lo (a word that starts before lo and
	 * reaches into the range counts too: Purview measures to the word) */
	size_t reach = lo > r->max_len ? lo - r->max_len + 1 : 0;
	if (st->last_word >= (int64_t)reach && st->last_word < (int64_t)hi)
		return true;
	/* search what no earlier call searched: [max(reach, scanned_to), hi) */
	size_t from = st->scanned_to > reach ? st->scanned_to : reach;
	for (size_t i = from; i < hi; i++)
		if (word_here(r, buf, len, i))
			st->last_word = (int64_t)i;
	if (hi > st->scanned_to)
		st->scanned_to = hi;
	return st->last_word >= (int64_t)reach && st->last_word < (int64_t)hi;
}

static bool any_holds(const conf_cond_t *c, size_t n, bool validated, bool context, uint32_t count)
{
	for (size_t i = 0; i < n; i++)
		if ((!c[i].validated || validated) && (!c[i].context || context) && count >= c[i].count)
			return true;
	return false;
}

confidence_t conf_level(const conf_rule_t *r, bool validated, bool context, uint32_t count)
{
	if (any_holds(r->high, r->n_high, validated, context, count))
		return CONF_HIGH;
	if (any_holds(r->medium, r->n_medium, validated, context, count))
		return CONF_MEDIUM;
	return CONF_LOW;
}
