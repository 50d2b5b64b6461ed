/*
 * The body of the document fuzz targets (fuzz_zip, fuzz_tar, fuzz_pdf):
 * the input opened as one kind, and carved (doc_set_carve), under small limits (so bombs are cheap to
 * find), then the set's invariants checked: text within max_text, every
 * segment inside the text, a problem named whenever the status says one.
 */
#ifndef DLPGATE_DOC_FUZZ_H
#define DLPGATE_DOC_FUZZ_H

#include "doc/doc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static inline void doc_fuzz_check(doc_kind_t kind, bool carve, const char *name, const uint8_t *data, size_t size)
{
	doc_limits_t lim = doc_limits_default();
	lim.max_total = 4u << 20;
	lim.max_member = 1u << 20;
	lim.max_members = 256;
	lim.max_text = 256u << 10;
	lim.max_ratio = 50;
	doc_set_t s;
	doc_set_init(&s, &lim);
	if (carve)
		doc_set_carve(&s, data, size);
	else
		doc_set_open_as(&s, kind, name, data, size);
	if (s.text.len > lim.max_text + 1 || s.inflated > lim.max_total + (64u << 10) + size)
		abort();
	for (uint32_t i = 0; i < s.n_segs; i++)
		if ((size_t)s.segs[i].off + s.segs[i].len > s.text.len ||
		    (doc_set_segment_at(&s, s.segs[i].off) != &s.segs[i] && s.segs[i].len))
			abort();
	if ((s.status != DOC_OK) != (s.problem[0] != '\0'))
		abort();
	doc_set_free(&s);
}

/* The input as the kind, then carved out of whatever surrounds it. */
static inline int doc_fuzz_one(doc_kind_t kind, const char *name, const uint8_t *data, size_t size)
{
	doc_fuzz_check(kind, false, name, data, size);
	doc_fuzz_check(kind, true, name, data, size);
	return 0;
}

#endif
