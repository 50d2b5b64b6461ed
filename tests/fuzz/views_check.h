/*
 * What every fuzz target of the decoded views checks (detect/views.h):
 * maps stay inside their parents, root spans inside the text, limits
 * hold, and redaction through the maps never changes the text's length
 * and, where it refuses, writes nothing.
 */
#ifndef DLPGATE_FUZZ_VIEWS_CHECK_H
#define DLPGATE_FUZZ_VIEWS_CHECK_H

#include "detect/views.h"

#include <stdlib.h>
#include <string.h>

static bool fuzz_write(void *ctx, uint32_t off, uint8_t c, bool dry)
{
	uint8_t **b = ctx; /* {copy, end} */
	if (b[0] + off >= b[1])
		abort();
	if (!dry)
		b[0][off] = c;
	return true;
}

static void fuzz_views(const uint8_t *data, size_t size, const dview_range_t *qp, size_t n_qp)
{
	dview_limits_t lim = {.max_views = 8, .max_depth = 3, .max_runs = 64, .max_bytes = 1 << 16};
	dview_set_t set;
	if (!dview_set_build(&set, data, size, qp, n_qp, &lim))
		return;
	if (set.n > 8 || set.bytes > (1 << 16))
		abort();
	for (uint32_t i = 0; i < set.n; i++) {
		const dview_t *v = &set.v[i];
		size_t plen = v->parent < 0 ? size : set.v[v->parent].len;
		if (v->depth > 3 || v->parent >= (int)i)
			abort();
		for (uint32_t k = 0; k < v->len; k++)
			if (v->map[k] > plen || (v->width[k] && (size_t)v->map[k] + v->width[k] > plen))
				abort();
		if (!v->len)
			continue;
		uint32_t start = (uint32_t)(size ? data[size / 2] : 0) % v->len, len = (v->len - start) / 2 + 1;
		if (start + len > v->len)
			len = v->len - start;
		uint32_t rs, rl;
		dview_root_span(&set, (int)i, start, len, &rs, &rl);
		if ((size_t)rs + rl > size)
			abort();
		(void)dview_verbatim(&set, (int)i, start, len);
		uint8_t *copy = malloc(size ? size : 1);
		memcpy(copy, data, size);
		uint8_t *b[2] = {copy, copy + size};
		bool ok = dview_redact(&set, (int)i, start, len, 2, 2, fuzz_write, b, false);
		if (!ok && size && memcmp(copy, data, size))
			abort(); /* refused, yet wrote */
		free(copy);
	}
	dview_set_free(&set);
}

#endif
