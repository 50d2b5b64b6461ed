/*
 * simd: see simd.h. The answer is the CPU's, asked once. Worker threads
 * read it while scanning, so it is an atomic (relaxed: every writer stores
 * the same answer, and a race between first callers only asks twice).
 */
#include "detect/simd.h"

atomic_int simd_width_state = -1;

static int ask_cpu(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
	return __builtin_cpu_supports("avx512bw") ? 1 : 0;
#else
	return 0;
#endif
}

bool simd_wide_ask(void)
{
	int w = ask_cpu();
	atomic_store_explicit(&simd_width_state, w, memory_order_relaxed);
	return w;
}

void simd_set_wide(bool w)
{
	atomic_store_explicit(&simd_width_state, w ? ask_cpu() : 0, memory_order_relaxed);
}
