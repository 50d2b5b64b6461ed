/*
 * doc_internal: what the format readers of engine/doc share: the budgets,
 * the text output, bounded inflation and the dispatch of a member to the
 * reader of its kind. Not for use outside engine/doc (see doc.h).
 */
#ifndef DLPGATE_DOC_INTERNAL_H
#define DLPGATE_DOC_INTERNAL_H

#include "doc/doc.h"

/* Records the first problem (later ones keep it) and returns false, so a
 * reader can `return doc_fail(...)`. */
bool doc_fail(doc_set_t *s, doc_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* False (and DOC_LIMIT) once the time budget is spent or a problem was met. */
bool doc_go_on(doc_set_t *s);
/* Counts n bytes read without inflating (a stored zip member, a tar
 * member) against max_total. */
bool doc_spend(doc_set_t *s, const char *path, uint64_t n);
/* Counts one more member against max_members. */
bool doc_count_member(doc_set_t *s, const char *path);

/* Text of path: doc_emit appends to the segment named path (a new one if
 * the last segment has another name); doc_emit_end ends a segment's line. */
bool doc_emit(doc_set_t *s, const char *path, const void *text, size_t n);
void doc_emit_end(doc_set_t *s);

/* A small buffer in front of doc_emit, for readers that produce text a
 * few bytes at a time. */
typedef struct {
	doc_set_t *s;
	const char *path;
	uint8_t buf[4096];
	size_t n;
	bool ok; /* false once doc_emit refused (a problem is set) */
} doc_out_t;

void doc_out_put(doc_out_t *o, const void *p, size_t n);
void doc_out_flush(doc_out_t *o);

/* Inflates in (wbits as zlib's inflateInit2: -15 raw, 15 zlib, 31 gzip)
 * into out, at most max_out bytes (more is DOC_LIMIT, or DOC_CORRUPT when
 * max_out is what the container declared and exact is set), under the
 * ratio and the total budget. *used gets the compressed bytes read. A
 * gzip stream stops at the end of its first member. */
bool doc_inflate(doc_set_t *s, const char *path, const uint8_t *in, size_t n, int wbits, uint64_t max_out,
		 bool exact, bytebuf_t *out, size_t *used);

/* A member's bytes: another container (opened, one level deeper), XML
 * (its text), text (as is) or binary (skipped). */
void doc_member(doc_set_t *s, const char *path, const uint8_t *data, size_t n, uint32_t depth);
/* "outer!inner", truncated to fit. */
void doc_join(char out[DOC_NAME_MAX], const char *outer, const char *inner, size_t inner_len);

void doc_zip_read(doc_set_t *s, const char *path, const uint8_t *data, size_t n, uint32_t depth);
void doc_tar_read(doc_set_t *s, const char *path, const uint8_t *data, size_t n, uint32_t depth);
void doc_gzip_read(doc_set_t *s, const char *path, const uint8_t *data, size_t n, uint32_t depth);
void doc_pdf_read(doc_set_t *s, const char *path, const uint8_t *data, size_t n);
void doc_xml_read(doc_set_t *s, const char *path, const uint8_t *data, size_t n);

#endif
