/*
 * simd: which vector width the detectors' byte loops take on x86-64
 * (the prefilter's Teddy stage, the decoded views' masks, digit runs):
 * AVX-512BW, 64 bytes a round, where the CPU has it; SSE2/SSSE3, 16 a
 * round, otherwise. Elsewhere the loops are scalar and this says false.
 *
 * One switch for all of them, so a test can hold both widths to the same
 * answers on a machine that has the wide one (simd_set_wide(false) makes
 * every loop narrow from then on; a prefilter built before keeps the
 * width it was built with). Read once per 64-byte block, so inline.
 */
#ifndef DLPGATE_SIMD_H
#define DLPGATE_SIMD_H

#include <stdatomic.h>
#include <stdbool.h>

extern atomic_int simd_width_state; /* -1 until asked, then 0 or 1 */
bool simd_wide_ask(void);

/* true when the 64-byte rounds are to be used. */
static inline bool simd_wide(void)
{
	int w = atomic_load_explicit(&simd_width_state, memory_order_relaxed);
	return w < 0 ? simd_wide_ask() : w;
}

/* Tests only: false forces the 16-byte rounds; true asks the CPU again. */
void simd_set_wide(bool wide);

#endif
