/*
 * digitruns: see digitruns.h.
 *
 * A 64-byte block becomes two masks, D (digits) and S (space or dash).
 * A separator belongs to a run only with a digit on both sides, so the
 * run mask is B = D | (S & D<<1 & D>>1), with the bytes either side of
 * the block standing in at its edges. Runs are then the stretches of
 * ones in B, found with count-trailing-zeros; a run that reaches bit 63
 * stays open into the next block.
 */
#include "detect/digitruns.h"

#include "detect/simd.h"

#include <string.h>

#if defined(__SSE2__)
#include <immintrin.h>

/* AVX-512BW, where the CPU has it: the 64 bytes classified straight into
 * masks in one round instead of four (simd.h chooses). */
__attribute__((target("avx512f,avx512bw"))) static uint64_t block_masks_avx512(const uint8_t *p, uint64_t *sep)
{
	__m512i v = _mm512_loadu_si512((const void *)p);
	*sep = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(' ')) | _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('-'));
	return _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8('0')), _mm512_set1_epi8(9));
}

static uint64_t mask16(__m128i v, uint64_t *sep)
{
	__m128i t = _mm_sub_epi8(v, _mm_set1_epi8('0'));
	__m128i digit = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(9)), t);
	__m128i s = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
	*sep = (uint16_t)_mm_movemask_epi8(s);
	return (uint16_t)_mm_movemask_epi8(digit);
}

static uint64_t block_masks(const uint8_t *p, uint64_t *sep)
{
	if (simd_wide())
		return block_masks_avx512(p, sep);
	uint64_t d = 0, s = 0;
	for (int i = 0; i < 4; i++) {
		uint64_t si;
		d |= mask16(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i)), &si) << (16 * i);
		s |= si << (16 * i);
	}
	*sep = s;
	return d;
}
#else
static uint64_t block_masks(const uint8_t *p, uint64_t *sep)
{
	uint64_t d = 0, s = 0;
	for (int i = 0; i < 64; i++) {
		d |= (uint64_t)((uint8_t)(p[i] - '0') < 10) << i;
		s |= (uint64_t)(p[i] == ' ' || p[i] == '-') << i;
	}
	*sep = s;
	return d;
}
#endif

static inline bool is_digit(uint8_t c) { return (uint8_t)(c - '0') < 10; }

/* Baseline x86-64 has no POPCNT instruction and the builtin becomes a
 * libgcc call; this is a handful of inline operations instead. */
static inline uint32_t popcount64(uint64_t x)
{
	x -= (x >> 1) & 0x5555555555555555ull;
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

typedef struct {
	digit_run_t *out;
	size_t cap, n;
	uint32_t min;
} sink_t;

static inline bool emit(sink_t *k, uint32_t start, uint32_t end, uint32_t digits)
{
	if (digits < k->min)
		return true;
	if (k->n < k->cap)
		k->out[k->n] = (digit_run_t){start, end, digits};
	return ++k->n <= k->cap; /* one past cap says "more": stop there */
}

size_t digit_runs_find(const uint8_t *buf, size_t len, uint32_t min_digits, digit_run_t *out, size_t cap)
{
	sink_t k = {out, cap, 0, min_digits ? min_digits : 1};
	bool open = false;          /* a run reached the end of the last block */
	uint32_t run_start = 0, run_digits = 0;
	uint8_t tail[64];
	for (size_t base = 0; base < len; base += 64) {
		const uint8_t *p = buf + base;
		if (len - base < 64) { /* the last, short block: zeros are neither digit nor separator */
			memset(tail, 0, sizeof tail);
			memcpy(tail, p, len - base);
			p = tail;
		}
		uint64_t s, d = block_masks(p, &s);
		uint64_t before = base > 0 && is_digit(buf[base - 1]);
		uint64_t after = base + 64 < len && is_digit(buf[base + 64]);
		uint64_t b = d | (s & (d << 1 | before) & (d >> 1 | after << 63));
		if (open && !(b & 1)) { /* the open run ended with the last block */
			open = false;
			if (!emit(&k, run_start, (uint32_t)base, run_digits))
				return k.n;
		}
		if (!open && !(b >> 63) && popcount64(d) < k.min)
			continue; /* no run here can reach min digits */
		while (b) {
			unsigned at = (unsigned)__builtin_ctzll(b);
			uint64_t rest = ~(b >> at);
			unsigned n = rest ? (unsigned)__builtin_ctzll(rest) : 64 - at;
			uint64_t run = (n == 64 ? ~0ull : (1ull << n) - 1) << at;
			uint32_t digits = popcount64(d & run);
			if (at == 0 && open) {
				run_digits += digits;
			} else {
				run_start = (uint32_t)(base + at);
				run_digits = digits;
			}
			b &= ~run;
			open = at + n == 64;
			if (!open && !emit(&k, run_start, (uint32_t)(base + at + n), run_digits))
				return k.n;
		}
	}
	if (open)
		emit(&k, run_start, (uint32_t)len, run_digits);
	return k.n;
}
