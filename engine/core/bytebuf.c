#include "core/bytebuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool bytebuf_reserve(bytebuf_t *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len)
		return false;
	size_t need = b->len + extra;
	if (b->cap && need > b->cap)
		return false;
	if (need <= b->alloc)
		return true;
	size_t n = b->alloc ? b->alloc : 256;
	while (n < need)
		n = n > SIZE_MAX / 2 ? need : n * 2;
	if (b->cap && n > b->cap)
		n = b->cap;
	char *d = realloc(b->data, n);
	if (!d)
		return false;
	b->data = d;
	b->alloc = n;
	return true;
}

bool bytebuf_grow_array(void *items, size_t elem, size_t n, size_t *cap, size_t first)
{
	if (n < *cap)
		return true;
	size_t want = *cap ? *cap * 2 : first;
	if (want <= n || want > SIZE_MAX / elem)
		return false;
	void **p = items;
	void *v = realloc(*p, want * elem);
	if (!v)
		return false;
	*p = v;
	*cap = want;
	return true;
}

bool bytebuf_append(bytebuf_t *b, const void *data, size_t n)
{
	if (n == 0)
		return true;
	if (!bytebuf_reserve(b, n))
		return false;
	memcpy(b->data + b->len, data, n);
	b->len += n;
	return true;
}

bool bytebuf_append_str(bytebuf_t *b, const char *s)
{
	return bytebuf_append(b, s, strlen(s));
}

bool bytebuf_appendf(bytebuf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !bytebuf_reserve(b, (size_t)n + 1))
		return false;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return true;
}

void bytebuf_consume(bytebuf_t *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void bytebuf_free(bytebuf_t *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

bool bytebuf_cstr(bytebuf_t *b)
{
	if (!bytebuf_reserve(b, 1))
		return false;
	b->data[b->len] = '\0';
	return true;
}

bool str_copy(char *dst, size_t n, const char *src)
{
	if (n == 0)
		return false;
	size_t len = strnlen(src, n);
	bool fits = len < n;
	if (!fits)
		len = n - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return fits;
}
