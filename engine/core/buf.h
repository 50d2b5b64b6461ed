/*
 * buf: a growable byte buffer with a hard cap.
 *
 * Everything that grows with input in dlpgate grows inside a buf_t whose cap
 * is set from a configured limit, so "nothing per flow is unbounded" is
 * enforced in one place: buf_append() refuses to pass the cap and the caller
 * turns that into a 431, a 502 or a closed flow.
 */
#ifndef DLPGATE_BUF_H
#define DLPGATE_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap; /* 0 = no cap (only for buffers fed by our own code) */
} buf_t;

static inline void buf_init(buf_t *b, size_t cap)
{
	b->data = NULL;
	b->len = b->alloc = 0;
	b->cap = cap;
}

bool buf_reserve(buf_t *b, size_t extra);
/* Room for item n in a malloc'ed array of *cap items of elem bytes: when
 * n == *cap it doubles (first: the first size). False when memory runs
 * out; the array is kept as it was. The one growth rule for the engine's
 * lists, so none of them repeats it. */
bool buf_grow_array(void *items, size_t elem, size_t n, size_t *cap, size_t first);
bool buf_append(buf_t *b, const void *data, size_t n);
bool buf_append_str(buf_t *b, const char *s);
bool buf_appendf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void buf_consume(buf_t *b, size_t n);
/* Empties the buffer and returns its memory. */
void buf_free(buf_t *b);
/* NUL-terminates without counting the NUL in len; false past the cap. */
bool buf_cstr(buf_t *b);

/* Copies a C string into dst[n], truncating; true if it all fit. */
bool str_copy(char *dst, size_t n, const char *src);

#endif
