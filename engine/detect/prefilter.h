/*
 * prefilter: every keyword of every detector in one case-insensitive
 * Aho-Corasick automaton, scanned once per buffer.
 *
 * A regex is the expensive part of a detector; most buffers hold none of
 * the words that could precede a secret. The automaton is a DFA over an
 * alphabet reduced to the bytes the keywords use (every other byte is one
 * class), so a scan is one table lookup per byte whatever the number of
 * keywords, and the table stays small enough to live in cache.
 *
 * Built once per policy, read-only afterwards: any number of threads may
 * scan with it at once.
 */
#ifndef DLPGATE_PREFILTER_H
#define DLPGATE_PREFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct prefilter prefilter_t;

typedef struct {
	uint32_t tag;   /* what the keyword was added with (a detector id...) */
	uint32_t start; /* offset of the keyword's first byte in the buffer */
	uint32_t len;
} pf_hit_t;

prefilter_t *prefilter_new(void);
/* Adds a keyword (matched ignoring ASCII case) reported with tag. */
bool prefilter_add(prefilter_t *p, const char *word, size_t len, uint32_t tag);
/* Freezes the automaton; no add after this. */
bool prefilter_build(prefilter_t *p);
void prefilter_free(prefilter_t *p);

/* Calls on_hit for every occurrence of every keyword (overlapping ones
 * too), in order of their end. on_hit returns false to stop. */
void prefilter_scan(const prefilter_t *p, const uint8_t *buf, size_t len,
		    bool (*on_hit)(void *ctx, const pf_hit_t *hit), void *ctx);

#endif
