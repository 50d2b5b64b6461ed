/*
 * bytebuf: a growable byte buffer with a hard cap.
 *
 * Everything that grows with input in dlpgate grows inside a bytebuf_t whose
 * cap is set from a configured limit, so "nothing per flow is unbounded" is
 * enforced in one place: bytebuf_append() refuses to pass the cap and the
 * caller turns that into a 431, a 502 or a closed flow.
 *
 * Not "buf_": Darwin's <sys/buf.h> owns buf_t and buf_free(), and with
 * clang modules on (Xcode's default) every Darwin header is visible.
 */
#ifndef DLPGATE_BYTEBUF_H
#define DLPGATE_BYTEBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap; /* 0 = no cap (only for buffers fed by our own code) */
} bytebuf_t;

static inline void bytebuf_init(bytebuf_t *b, size_t cap)
{
	b->data = NULL;
	b->len = b->alloc = 0;
	b->cap = cap;
}

bool bytebuf_reserve(bytebuf_t *b, size_t extra);
/* Room for item n in a malloc'ed array of *cap items of elem bytes: when
 * n == *cap it doubles (first: the first size). False when memory runs
 * out; the array is kept as it was. The one growth rule for the engine's
 * lists, so none of them repeats it. */
bool bytebuf_grow_array(void *items, size_t elem, size_t n, size_t *cap, size_t first);
bool bytebuf_append(bytebuf_t *b, const void *data, size_t n);
bool bytebuf_append_str(bytebuf_t *b, const char *s);
bool bytebuf_appendf(bytebuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void bytebuf_consume(bytebuf_t *b, size_t n);
/* Empties the buffer and returns its memory. */
void bytebuf_free(bytebuf_t *b);
/* NUL-terminates without counting the NUL in len; false past the cap. */
bool bytebuf_cstr(bytebuf_t *b);

/* Copies a C string into dst[n], truncating; true if it all fit. */
bool str_copy(char *dst, size_t n, const char *src);

#endif
