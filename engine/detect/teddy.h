/*
 * teddy: a SIMD first stage for the keyword prefilter, after Hyperscan's
 * Teddy. It answers one question sixteen positions at a time: may a
 * keyword start here?
 *
 * Each keyword's first three bytes (case-folded with |0x20, a superset
 * of ASCII folding) are its fingerprint; the keywords are spread over
 * eight buckets, and for each of the three bytes two 16-entry tables map
 * a byte's low and high nibble to the buckets that allow it. A block's
 * candidates are the positions where some bucket survives all six
 * lookups (PSHUFB does sixteen at once). A candidate is only a hint: the
 * start set (startset.h) confirms it, and the automaton decides. Nothing that starts a keyword is ever turned away,
 * since every keyword's own bytes are in its bucket's tables; keywords
 * shorter than three accept any byte past their end.
 *
 * With many keywords the buckets fill up and almost every position is a
 * candidate, so teddy_build declines sets past TEDDY_MAX_FINGERPRINTS
 * and the prefilter keeps its scalar skip. x86-64 with SSSE3, sixteen
 * positions a round, or AVX-512BW, sixty-four (chosen at run time: on
 * prose this loop is most of the scan, and the wide round costs about the
 * instructions of one narrow one); elsewhere the scalar skip runs.
 */
#ifndef DLPGATE_TEDDY_H
#define DLPGATE_TEDDY_H

#include "detect/startset.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TEDDY_MAX_FINGERPRINTS 64
/* The last bytes of a buffer it leaves to the caller: a block reads 18,
 * and every candidate has four bytes from it for a hash test. */
#define TEDDY_TAIL 19

typedef struct {
	bool usable;
	bool avx512; /* 64 positions a round, where the CPU has AVX-512BW */
	uint8_t lo[3][16], hi[3][16]; /* nibble -> buckets, per fingerprint byte */
} teddy_t;

/* Fills t from n lower-cased keywords; t->usable is false when the set is
 * too large to pay or the CPU lacks SSSE3. */
void teddy_build(teddy_t *t, const uint8_t *const *words, const uint32_t *lens, size_t n);

/* Only when t->usable. Moves *at to the first position at or after it
 * that is a candidate here and passes the start set's test too, and
 * returns true; or returns false with *at where fewer than TEDDY_TAIL
 * bytes remain, which the caller checks itself. Confirming candidates
 * here, not in the caller, keeps the loop going through blocks whose
 * candidates all fail (on English text, most of them). */
bool teddy_next(const teddy_t *t, const startset_t *starts, const uint8_t *buf, size_t len, size_t *at);

#endif
