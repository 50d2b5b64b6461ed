/*
 * startset: may a keyword start at this position? The prefilter's exact
 * first test, shared by its scalar skip and its SIMD stage (teddy.h).
 *
 * The four bytes at a position, folded with |0x20 (a superset of ASCII
 * case folding: it also joins '@' with '`' and the like, which a filter
 * may do), are hashed into a 64 Kbit set built from the first four bytes
 * of every keyword of four bytes or more; keywords shorter than four are
 * looked up by their first two bytes in a second set. One load gives both
 * tests their index. A position that passes neither starts no keyword.
 */
#ifndef DLPGATE_STARTSET_H
#define DLPGATE_STARTSET_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef struct {
	uint64_t start4[1024]; /* bit hash4(first 4 bytes) of the keywords of 4+ bytes */
	uint64_t start2[1024]; /* bit pair16(first 2 bytes) of the shorter ones */
	bool has_short;
} startset_t;

static inline uint32_t startset_fold4(const uint8_t *b)
{
	uint32_t v;
	memcpy(&v, b, 4);
	return v | 0x20202020u;
}

static inline uint32_t startset_hash4(uint32_t folded)
{
	return (folded * 2654435761u) >> 16;
}

/* The first two of the four bytes, as they sit in the loaded word. */
static inline uint32_t startset_pair16(uint32_t folded)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return folded >> 16;
#else
	return folded & 0xffff;
#endif
}

static inline bool startset_bit(const uint64_t *set, uint32_t i)
{
	return set[i >> 6] >> (i & 63) & 1;
}

/* Needs four readable bytes at b. */
static inline bool startset_may_start(const startset_t *s, const uint8_t *b)
{
	uint32_t v = startset_fold4(b);
	return startset_bit(s->start4, startset_hash4(v)) || (s->has_short && startset_bit(s->start2, startset_pair16(v)));
}

/* Adds a (lower-cased) keyword. */
static inline void startset_add(startset_t *s, const uint8_t *k, uint32_t len)
{
	if (len >= 4) {
		uint32_t h = startset_hash4(startset_fold4(k));
		s->start4[h >> 6] |= 1ull << (h & 63);
		return;
	}
	s->has_short = true;
	for (int b = 0; b < 256; b++) { /* a one-byte keyword starts every pair */
		uint8_t head[4] = {k[0], len > 1 ? k[1] : (uint8_t)b, 0, 0};
		uint32_t ix = startset_pair16(startset_fold4(head));
		s->start2[ix >> 6] |= 1ull << (ix & 63);
		if (len > 1)
			break;
	}
}

#endif
