/*
 * teddy: see teddy.h.
 *
 * Buckets: the distinct fingerprints, sorted, are cut into eight runs of
 * about equal size, so fingerprints that share leading bytes share a
 * bucket and widen its tables least.
 */
#include "detect/teddy.h"

#include "detect/simd.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

typedef struct {
	uint8_t b[3];
	uint8_t len; /* 1..3: bytes past len are wildcards */
} fingerprint_t;

static int fp_cmp(const void *a, const void *b)
{
	const fingerprint_t *x = a, *y = b;
	if (x->len != y->len)
		return x->len - y->len; /* the short ones (wildcards) together */
	return memcmp(x->b, y->b, 3);
}

static void add_to_bucket(teddy_t *t, const fingerprint_t *f, int bucket)
{
	uint8_t bit = (uint8_t)(1u << bucket);
	for (int j = 0; j < 3; j++) {
		if (j >= f->len) { /* any byte */
			for (int n = 0; n < 16; n++) {
				t->lo[j][n] |= bit;
				t->hi[j][n] |= bit;
			}
			continue;
		}
		t->lo[j][f->b[j] & 15] |= bit;
		t->hi[j][f->b[j] >> 4] |= bit;
	}
}

__attribute__((target("ssse3"))) static bool next_ssse3(const teddy_t *t, const startset_t *starts,
							 const uint8_t *buf, size_t len, size_t *at)
{
	const __m128i fold = _mm_set1_epi8(0x20), nibble = _mm_set1_epi8(0x0f), zero = _mm_setzero_si128();
	__m128i lo[3], hi[3];
	for (int j = 0; j < 3; j++) {
		lo[j] = _mm_loadu_si128((const __m128i *)(const void *)t->lo[j]);
		hi[j] = _mm_loadu_si128((const __m128i *)(const void *)t->hi[j]);
	}
	size_t i = *at;
	for (; len >= TEDDY_TAIL && i <= len - TEDDY_TAIL; i += 16) {
		__m128i alive = _mm_set1_epi8(-1);
		for (int j = 0; j < 3; j++) {
			__m128i v = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(buf + i + j)), fold);
			__m128i l = _mm_shuffle_epi8(lo[j], _mm_and_si128(v, nibble));
			__m128i h = _mm_shuffle_epi8(hi[j], _mm_and_si128(_mm_srli_epi16(v, 4), nibble));
			alive = _mm_and_si128(alive, _mm_and_si128(l, h));
		}
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(alive, zero)) ^ 0xffffu;
		for (; m; m &= m - 1) {
			size_t c = i + (unsigned)__builtin_ctz(m);
			if (startset_may_start(starts, buf + c)) {
				*at = c;
				return true;
			}
		}
	}
	*at = i;
	return false;
}

/* The same, 64 positions a round where the CPU has AVX-512BW: PSHUFB works
 * within each 128-bit lane, so the tables are the 16-byte ones in all four,
 * and the compare gives the candidates as a mask directly. It stops where
 * fewer than TEDDY_TAIL64 bytes remain and leaves the rest to next_ssse3. */
#define TEDDY_TAIL64 67
__attribute__((target("avx512f,avx512bw"))) static bool next_avx512(const teddy_t *t, const startset_t *starts,
								     const uint8_t *buf, size_t len, size_t *at)
{
	const __m512i fold = _mm512_set1_epi8(0x20), nibble = _mm512_set1_epi8(0x0f);
	__m512i lo[3], hi[3];
	for (int j = 0; j < 3; j++) {
		lo[j] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)t->lo[j]));
		hi[j] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)t->hi[j]));
	}
	size_t i = *at;
	for (; len >= TEDDY_TAIL64 && i <= len - TEDDY_TAIL64; i += 64) {
		__m512i alive = _mm512_set1_epi8(-1);
		for (int j = 0; j < 3; j++) {
			__m512i v = _mm512_or_si512(_mm512_loadu_si512((const void *)(buf + i + j)), fold);
			__m512i l = _mm512_shuffle_epi8(lo[j], _mm512_and_si512(v, nibble));
			__m512i h = _mm512_shuffle_epi8(hi[j], _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble));
			alive = _mm512_and_si512(alive, _mm512_and_si512(l, h));
		}
		for (uint64_t m = _mm512_test_epi8_mask(alive, alive); m; m &= m - 1) {
			size_t c = i + (unsigned)__builtin_ctzll(m);
			if (startset_may_start(starts, buf + c)) {
				*at = c;
				return true;
			}
		}
	}
	*at = i;
	return false;
}

void teddy_build(teddy_t *t, const uint8_t *const *words, const uint32_t *lens, size_t n)
{
	memset(t, 0, sizeof *t);
	if (!n || !__builtin_cpu_supports("ssse3"))
		return;
	fingerprint_t *fp = malloc(n * sizeof *fp);
	if (!fp)
		return;
	size_t k = 0;
	for (size_t w = 0; w < n; w++) {
		fingerprint_t f = {{0, 0, 0}, (uint8_t)(lens[w] < 3 ? lens[w] : 3)};
		for (int j = 0; j < f.len; j++)
			f.b[j] = (uint8_t)(words[w][j] | 0x20);
		fp[k++] = f;
	}
	qsort(fp, k, sizeof *fp, fp_cmp);
	size_t distinct = 0;
	for (size_t i = 0; i < k; i++)
		if (!distinct || fp_cmp(&fp[distinct - 1], &fp[i]))
			fp[distinct++] = fp[i];
	if (distinct <= TEDDY_MAX_FINGERPRINTS) {
		for (size_t i = 0; i < distinct; i++)
			add_to_bucket(t, &fp[i], (int)(i * 8 / distinct));
		t->usable = true;
		t->avx512 = simd_wide();
	}
	free(fp);
}

bool teddy_next(const teddy_t *t, const startset_t *starts, const uint8_t *buf, size_t len, size_t *at)
{
	if (t->avx512 && next_avx512(t, starts, buf, len, at))
		return true;
	return next_ssse3(t, starts, buf, len, at);
}

#else /* no SIMD stage here: never usable, the scalar skip does it all */

void teddy_build(teddy_t *t, const uint8_t *const *words, const uint32_t *lens, size_t n)
{
	(void)words, (void)lens, (void)n;
	memset(t, 0, sizeof *t);
}

bool teddy_next(const teddy_t *t, const startset_t *starts, const uint8_t *buf, size_t len, size_t *at)
{
	(void)t, (void)starts, (void)buf, (void)len, (void)at;
	return false;
}
#endif
