#include "http/head.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void http_head_init(http_head_t *h, bool is_request, uint32_t max_bytes, uint32_t max_fields)
{
	memset(h, 0, sizeof *h);
	h->is_request = is_request;
	bytebuf_init(&h->arena, max_bytes);
	h->max_fields = max_fields;
}

void http_head_reset(http_head_t *h)
{
	bool req = h->is_request;
	bytebuf_t arena = h->arena;
	http_field_t *fields = h->fields;
	uint32_t cap = h->cap_fields, max = h->max_fields;
	memset(h, 0, sizeof *h);
	h->is_request = req;
	h->arena = arena;
	h->arena.len = 0;
	h->fields = fields;
	h->cap_fields = cap;
	h->max_fields = max;
}

void http_head_free(http_head_t *h)
{
	bytebuf_free(&h->arena);
	free(h->fields);
	h->fields = NULL;
	h->n_fields = h->cap_fields = 0;
}

static bool name_eq(const http_head_t *h, const http_field_t *f, const char *name, size_t n)
{
	return !f->dead && f->name_len == n && strncasecmp(h->arena.data + f->name_off, name, n) == 0;
}

const char *http_head_get(const http_head_t *h, const char *name, uint32_t *len)
{
	size_t n = strlen(name);
	for (uint32_t i = 0; i < h->n_fields; i++) {
		const http_field_t *f = &h->fields[i];
		if (name_eq(h, f, name, n)) {
			if (len)
				*len = f->value_len;
			return h->arena.data + f->value_off;
		}
	}
	return NULL;
}

unsigned http_head_count(const http_head_t *h, const char *name)
{
	size_t n = strlen(name);
	unsigned c = 0;
	for (uint32_t i = 0; i < h->n_fields; i++)
		if (name_eq(h, &h->fields[i], name, n))
			c++;
	return c;
}

bool http_list_next(const char **p, const char *end, const char **elem, size_t *len)
{
	const char *q = *p;
	for (;;) {
		while (q < end && (*q == ' ' || *q == '\t' || *q == ','))
			q++;
		if (q >= end) {
			*p = q;
			return false;
		}
		const char *s = q;
		while (q < end && *q != ',')
			q++;
		const char *e = q;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s) {
			*p = q;
			*elem = s;
			*len = (size_t)(e - s);
			return true;
		}
	}
}

bool http_head_has_token(const http_head_t *h, const char *name, const char *token)
{
	size_t n = strlen(name), tl = strlen(token);
	for (uint32_t i = 0; i < h->n_fields; i++) {
		const http_field_t *f = &h->fields[i];
		if (!name_eq(h, f, name, n))
			continue;
		const char *p = h->arena.data + f->value_off, *end = p + f->value_len, *s;
		size_t sl;
		while (http_list_next(&p, end, &s, &sl))
			if (sl == tl && strncasecmp(s, token, tl) == 0)
				return true;
	}
	return false;
}

void http_head_remove(http_head_t *h, const char *name)
{
	size_t n = strlen(name);
	for (uint32_t i = 0; i < h->n_fields; i++)
		if (name_eq(h, &h->fields[i], name, n))
			h->fields[i].dead = true;
}

http_field_t *http_head_new_field(http_head_t *h)
{
	if (h->n_fields >= h->max_fields)
		return NULL;
	if (h->n_fields == h->cap_fields) {
		uint32_t cap = h->cap_fields ? h->cap_fields * 2 : 16;
		if (cap > h->max_fields)
			cap = h->max_fields;
		http_field_t *f = realloc(h->fields, cap * sizeof *f);
		if (!f)
			return NULL;
		h->fields = f;
		h->cap_fields = cap;
	}
	http_field_t *f = &h->fields[h->n_fields++];
	*f = (http_field_t){0};
	return f;
}

bool http_head_add(http_head_t *h, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	uint32_t off = (uint32_t)h->arena.len;
	if (h->n_fields >= h->max_fields || !bytebuf_append(&h->arena, name, nl) || !bytebuf_append(&h->arena, value, vl))
		return false;
	http_field_t *f = http_head_new_field(h);
	if (!f)
		return false;
	*f = (http_field_t){off, (uint32_t)nl, off + (uint32_t)nl, (uint32_t)vl, false};
	return true;
}

bool http_head_set(http_head_t *h, const char *name, const char *value)
{
	http_head_remove(h, name);
	return http_head_add(h, name, value);
}

bool http_head_set_target(http_head_t *h, const char *target, size_t len)
{
	uint32_t off = (uint32_t)h->arena.len;
	/* The new target is often a piece of the old one (an absolute-form
	 * target's path), in the arena itself: growing the arena would move
	 * it under the copy. Copy it from where it is after the growth. */
	const char *base = h->arena.data;
	bool inside = base && target >= base && target < base + h->arena.len;
	size_t at = inside ? (size_t)(target - base) : 0;
	if (!bytebuf_reserve(&h->arena, len))
		return false;
	if (inside)
		target = h->arena.data + at;
	if (!bytebuf_append(&h->arena, target, len))
		return false;
	h->target_off = off;
	h->target_len = (uint32_t)len;
	return true;
}

bool http_head_serialize(const http_head_t *h, bytebuf_t *out)
{
	const char *a = h->arena.data;
	bool ok = true;
	if (h->is_request) {
		ok = bytebuf_append(out, a + h->method_off, h->method_len) && bytebuf_append(out, " ", 1) &&
		     bytebuf_append(out, a + h->target_off, h->target_len) &&
		     bytebuf_appendf(out, " HTTP/%u.%u\r\n", h->major, h->minor);
	} else {
		ok = bytebuf_appendf(out, "HTTP/%u.%u %03u ", h->major, h->minor, h->status) &&
		     bytebuf_append(out, a + h->reason_off, h->reason_len) && bytebuf_append(out, "\r\n", 2);
	}
	for (uint32_t i = 0; ok && i < h->n_fields; i++) {
		const http_field_t *f = &h->fields[i];
		if (f->dead)
			continue;
		ok = bytebuf_append(out, a + f->name_off, f->name_len) && bytebuf_append(out, ": ", 2) &&
		     bytebuf_append(out, a + f->value_off, f->value_len) && bytebuf_append(out, "\r\n", 2);
	}
	return ok && bytebuf_append(out, "\r\n", 2);
}

bool http_head_copy(http_head_t *dst, const http_head_t *src, const char *const *fields)
{
	http_head_init(dst, src->is_request, (uint32_t)src->arena.cap, src->max_fields);
	dst->major = src->major;
	dst->minor = src->minor;
	dst->status = src->status;
	const char *a = src->arena.data;
	dst->method_off = (uint32_t)dst->arena.len;
	dst->method_len = src->method_len;
	bool ok = bytebuf_append(&dst->arena, a + src->method_off, src->method_len);
	dst->target_off = (uint32_t)dst->arena.len;
	dst->target_len = src->target_len;
	ok = ok && bytebuf_append(&dst->arena, a + src->target_off, src->target_len);
	for (uint32_t i = 0; ok && i < src->n_fields; i++) {
		const http_field_t *f = &src->fields[i];
		if (f->dead)
			continue;
		bool keep = !fields;
		for (const char *const *k = fields; k && *k && !keep; k++)
			keep = strlen(*k) == f->name_len && !strncasecmp(a + f->name_off, *k, f->name_len);
		if (!keep)
			continue;
		char name[128], value[1024];
		if (f->name_len >= sizeof name || f->value_len >= sizeof value)
			continue;
		memcpy(name, a + f->name_off, f->name_len);
		name[f->name_len] = '\0';
		memcpy(value, a + f->value_off, f->value_len);
		value[f->value_len] = '\0';
		ok = http_head_add(dst, name, value);
	}
	return ok;
}
