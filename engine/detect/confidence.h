/*
 * confidence: how sure a finding is, from its evidence, as Microsoft
 * Purview's sensitive information types grade theirs.
 *
 * Every finding gets low, medium or high. A detector either states one
 * level for all its findings (`confidence = "high"`: the format alone is
 * proof, as for a Luhn-checked card in its brand's grouping), or grades
 * each finding from three pieces of evidence:
 *   validated  the detector's validator passed (a checksum, structure rules)
 *   context    one of its confidence words stands within `distance` bytes
 *              of the match (300 by default, Purview's proximity)
 *   count      how many findings the detector made in the same text
 * A level is a list of alternatives, each a set of conditions that must
 * all hold; a finding gets the highest level one of whose alternatives
 * holds, else low. The defaults:
 *   high   = {validated, context}
 *   medium = {validated} or {context}
 * The confidence words default to the detector's context words, else its
 * keywords (a keyword-gated detector thus always has its context).
 *
 * The word search runs only for detectors that grade their findings, and
 * once over the text whatever the number of findings: state carried from
 * one match to the next remembers how far it looked and where it last saw
 * a word.
 */
#ifndef DLPGATE_CONFIDENCE_H
#define DLPGATE_CONFIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CONF_LOW = 0, CONF_MEDIUM, CONF_HIGH, CONF_LEVELS } confidence_t;

#define CONF_MAX_ALT 4
#define CONF_MAX_WORDS 64
#define CONF_DEFAULT_DISTANCE 300

/* One alternative of a level: every condition set must hold. */
typedef struct {
	bool validated, context;
	uint32_t count; /* 0: no condition */
} conf_cond_t;

/* What an author writes; strings borrowed. n_high/n_medium 0: default. */
typedef struct {
	const char *const *words;
	size_t n_words;
	uint32_t distance; /* 0: CONF_DEFAULT_DISTANCE */
	conf_cond_t high[CONF_MAX_ALT], medium[CONF_MAX_ALT];
	size_t n_high, n_medium;
	bool high_set, medium_set; /* given, even as an empty list (never) */
} conf_rule_spec_t;

/* Compiled: words lower-cased and owned. */
typedef struct {
	char **words;
	size_t n_words, max_len;
	uint32_t distance;
	conf_cond_t high[CONF_MAX_ALT], medium[CONF_MAX_ALT];
	size_t n_high, n_medium;
	bool boundary; /* words as words only (the detector's boundary) */
} conf_rule_t;

/* Per scan of one detector over one text. */
typedef struct {
	size_t scanned_to; /* the text before this was searched */
	int64_t last_word; /* start of the last confidence word seen; -1 none */
} conf_state_t;

/* "low" | "medium" | "high"; -1 for another name. */
int confidence_by_name(const char *name);
const char *confidence_name(confidence_t c);

/* Compiles spec, falling back to fallback_words (the context words or
 * keywords) when it names none. false with err on a bad spec or no memory. */
bool conf_rule_compile(conf_rule_t *r, const conf_rule_spec_t *spec, const char *const *fallback_words,
		       size_t n_fallback, bool boundary, char *err, size_t errlen);
void conf_rule_free(conf_rule_t *r);
/* A stable text form, for detector_key. */
void conf_rule_key(const conf_rule_spec_t *spec, char *out, size_t n);

void conf_state_init(conf_state_t *st);
/* Does a confidence word stand within the distance of [ms, me)? Calls come
 * in text order of ms for one state. */
bool conf_context(const conf_rule_t *r, conf_state_t *st, const uint8_t *buf, size_t len, uint32_t ms, uint32_t me);
/* The level of a finding with this evidence. */
confidence_t conf_level(const conf_rule_t *r, bool validated, bool context, uint32_t count);

#endif
