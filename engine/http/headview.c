/*
 * headview: see headview.h.
 */
#include "http/headview.h"

#include "detect/mask.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Fields whose values the request cannot do without: masking them would
 * send the request elsewhere or break its framing. */
static const char *const unmaskable_fields[] = {"host", "content-length", "transfer-encoding", NULL};

static bool seg_add(head_view_t *v, uint32_t text_off, uint32_t len, uint32_t arena_off, hv_kind_t kind,
		    uint32_t label_seg, bool maskable)
{
	if (!len)
		return true;
	if (!bytebuf_grow_array(&v->segs, sizeof *v->segs, v->n_segs, &v->cap_segs, 16))
		return false;
	v->segs[v->n_segs++] = (hv_seg_t){text_off, len, arena_off, label_seg, (uint8_t)kind, maskable};
	return true;
}

static bool is_named(const char *s, uint32_t n, const char *name)
{
	return strlen(name) == n && !strncasecmp(s, name, n);
}

/* A Cookie value "a=1; b=2": a segment per cookie name and value. */
static bool cookie_segs(head_view_t *v, const char *val, uint32_t n, uint32_t text_off, uint32_t arena_off,
			uint32_t header_seg)
{
	uint32_t i = 0;
	while (i < n) {
		while (i < n && (val[i] == ' ' || val[i] == '\t' || val[i] == ';'))
			i++;
		uint32_t start = i;
		while (i < n && val[i] != ';')
			i++;
		uint32_t end = i;
		while (end > start && (val[end - 1] == ' ' || val[end - 1] == '\t'))
			end--;
		if (end == start)
			continue;
		const char *eq = memchr(val + start, '=', end - start);
		uint32_t name_end = eq ? (uint32_t)(eq - val) : start;
		uint32_t name_seg = v->n_segs;
		if (name_end > start) {
			if (!seg_add(v, text_off + start, name_end - start, arena_off + start, HV_COOKIE_NAME, name_seg, true))
				return false;
		} else {
			name_seg = header_seg; /* no name: the Cookie field labels it */
		}
		uint32_t vs = eq ? name_end + 1 : start;
		if (!seg_add(v, text_off + vs, end - vs, arena_off + vs, HV_COOKIE_VALUE, name_seg, true))
			return false;
	}
	return true;
}

bool head_view_build(head_view_t *v, const http_head_t *h)
{
	memset(v, 0, sizeof *v);
	bytebuf_init(&v->text, 0);
	if (!bytebuf_reserve(&v->text, h->arena.len + 4 * h->n_fields + 2))
		return false;
	const char *a = h->arena.data;
	/* An absolute-form target's scheme and authority say where the
	 * request goes, as Host does: scanned, never masked. */
	const char *t = a + h->target_off;
	uint32_t fixed_len = 0;
	const char *sep = h->target_len && t[0] != '/' ? memmem(t, h->target_len, "://", 3) : NULL;
	if (sep) {
		const char *path = memchr(sep + 3, '/', (size_t)(t + h->target_len - sep - 3));
		fixed_len = path ? (uint32_t)(path - t) : h->target_len;
	} else if (h->target_len && t[0] != '/') {
		fixed_len = h->target_len; /* authority-form (CONNECT) or "*" */
	}
	if (!seg_add(v, 0, fixed_len, h->target_off, HV_TARGET, 0, false) ||
	    !seg_add(v, fixed_len, h->target_len - fixed_len, h->target_off + fixed_len, HV_TARGET, 0, true) ||
	    !bytebuf_append(&v->text, t, h->target_len) || !bytebuf_append(&v->text, "\n", 1))
		goto oom;
	for (uint32_t i = 0; i < h->n_fields; i++) {
		const http_field_t *fl = &h->fields[i];
		if (fl->dead)
			continue;
		const char *name = a + fl->name_off;
		bool fixed = false;
		for (int k = 0; unmaskable_fields[k]; k++)
			fixed |= is_named(name, fl->name_len, unmaskable_fields[k]);
		uint32_t name_seg = v->n_segs;
		uint32_t name_at = (uint32_t)v->text.len;
		if (!seg_add(v, name_at, fl->name_len, fl->name_off, HV_NAME, name_seg, !fixed) ||
		    !bytebuf_append(&v->text, name, fl->name_len) || !bytebuf_append(&v->text, ": ", 2))
			goto oom;
		uint32_t value_at = (uint32_t)v->text.len;
		bool cookie = is_named(name, fl->name_len, "cookie");
		if (cookie) {
			if (!cookie_segs(v, a + fl->value_off, fl->value_len, value_at, fl->value_off, name_seg))
				goto oom;
		} else if (!seg_add(v, value_at, fl->value_len, fl->value_off, HV_VALUE, name_seg, !fixed)) {
			goto oom;
		}
		if (!bytebuf_append(&v->text, a + fl->value_off, fl->value_len) || !bytebuf_append(&v->text, "\n", 1))
			goto oom;
	}
	/* A field repeated under one name is also read joined, values back
	 * to back: a number split over "X-Data: 4539 1488" and "X-Data: 0343
	 * 6467" is one number to the detectors (and masked where each part
	 * lies). */
	v->joined_from = (uint32_t)v->text.len;
	for (uint32_t i = 0; i < h->n_fields; i++) {
		const http_field_t *fl = &h->fields[i];
		if (fl->dead)
			continue;
		const char *name = a + fl->name_off;
		bool first = true, repeated = false;
		for (uint32_t j = 0; j < h->n_fields; j++) {
			const http_field_t *g = &h->fields[j];
			if (g->dead || j == i || g->name_len != fl->name_len || strncasecmp(a + g->name_off, name, fl->name_len))
				continue;
			repeated = true;
			if (j < i)
				first = false;
		}
		if (!repeated || !first || is_named(name, fl->name_len, "cookie"))
			continue;
		uint32_t name_seg = v->n_segs;
		bool fixed = false;
		for (int k = 0; unmaskable_fields[k]; k++)
			fixed |= is_named(name, fl->name_len, unmaskable_fields[k]);
		if (!seg_add(v, (uint32_t)v->text.len, fl->name_len, fl->name_off, HV_NAME, name_seg, !fixed) ||
		    !bytebuf_append(&v->text, name, fl->name_len) || !bytebuf_append(&v->text, ": ", 2))
			goto oom;
		for (uint32_t j = i; j < h->n_fields; j++) {
			const http_field_t *g = &h->fields[j];
			if (g->dead || g->name_len != fl->name_len || strncasecmp(a + g->name_off, name, fl->name_len))
				continue;
			if (!seg_add(v, (uint32_t)v->text.len, g->value_len, g->value_off, HV_VALUE, name_seg, !fixed) ||
			    !bytebuf_append(&v->text, a + g->value_off, g->value_len))
				goto oom;
		}
		if (!bytebuf_append(&v->text, "\n", 1))
			goto oom;
	}
	return true;
oom:
	head_view_free(v);
	return false;
}

void head_view_free(head_view_t *v)
{
	bytebuf_free(&v->text);
	free(v->segs);
	memset(v, 0, sizeof *v);
}

/* The segment holding text offset off, else the first one after it. */
static const hv_seg_t *seg_at(const head_view_t *v, uint32_t off)
{
	uint32_t lo = 0, hi = v->n_segs;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (v->segs[mid].text_off + v->segs[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->n_segs ? &v->segs[lo] : NULL;
}

bool head_view_repeat(const head_view_t *v, uint32_t start, uint32_t len)
{
	if (start < v->joined_from)
		return false;
	const hv_seg_t *s = seg_at(v, start);
	return s && s->text_off <= start && start + len <= s->text_off + s->len;
}

void head_view_name_of(const head_view_t *v, uint32_t off, uint32_t *start, uint32_t *len)
{
	const hv_seg_t *s = seg_at(v, off);
	*start = *len = 0;
	if (!s || s->kind == HV_TARGET)
		return;
	const hv_seg_t *n = &v->segs[s->label_seg];
	*start = n->text_off;
	*len = n->len;
}

void head_view_location(const head_view_t *v, uint32_t off, char *out, size_t cap, bool mask_name)
{
	const hv_seg_t *s = seg_at(v, off);
	if (!s || s->kind == HV_TARGET) {
		snprintf(out, cap, "url");
		return;
	}
	const hv_seg_t *n = &v->segs[s->label_seg];
	bool is_cookie = n->kind == HV_COOKIE_NAME;
	char name[49];
	size_t k = n->len < sizeof name - 1 ? n->len : sizeof name - 1;
	for (size_t i = 0; i < k; i++) {
		unsigned char c = (unsigned char)v->text.data[n->text_off + i];
		c = is_cookie ? c : (unsigned char)tolower(c);
		name[i] = mask_name && isalnum(c) ? '*' : c < 0x20 || c > 0x7e ? '?' : (char)c;
	}
	name[k] = '\0';
	snprintf(out, cap, "%s:%s", is_cookie ? "cookie" : "header", name);
}

const char *head_view_unmaskable(const head_view_t *v, const http_head_t *h, uint32_t start, uint32_t len)
{
	for (const hv_seg_t *s = seg_at(v, start); s && s < v->segs + v->n_segs && s->text_off < start + len; s++) {
		if (s->maskable)
			continue;
		if (s->kind == HV_TARGET)
			return "the request target's authority";
		/* which field: the name segment that labels it */
		const hv_seg_t *n = &v->segs[s->label_seg];
		const char *name = h->arena.data + n->arena_off;
		static const char *const phrase[] = {"the Host header", "the Content-Length header",
						     "the Transfer-Encoding header"};
		for (int k = 0; unmaskable_fields[k]; k++)
			if (is_named(name, n->len, unmaskable_fields[k]))
				return phrase[k];
		return "a framing field";
	}
	return NULL;
}

void head_view_redact(const head_view_t *v, http_head_t *h, uint32_t start, uint32_t len, uint8_t keep_first,
		      uint8_t keep_last)
{
	if ((size_t)start + len > v->text.len)
		return;
	char *t = malloc(len ? len : 1);
	if (!t)
		return;
	memcpy(t, v->text.data + start, len);
	mask_inplace(t, len, keep_first, keep_last, '*');
	for (const hv_seg_t *s = seg_at(v, start); s && s < v->segs + v->n_segs && s->text_off < start + len; s++) {
		if (!s->maskable)
			continue;
		uint32_t from = s->text_off > start ? s->text_off : start;
		uint32_t to = s->text_off + s->len < start + len ? s->text_off + s->len : start + len;
		for (uint32_t i = from; i < to; i++)
			if (t[i - start] != v->text.data[i])
				h->arena.data[s->arena_off + (i - s->text_off)] = t[i - start];
	}
	free(t);
}
