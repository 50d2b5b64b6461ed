/*
 * strictjson: see strictjson.h.
 *
 * A recursive-descent parser over the bytes, depth-limited. Nodes live in
 * one array (indices, not pointers, while it grows); decoded strings in one
 * buffer sized up front from the input, since a JSON string never decodes
 * to more bytes than its text with the quotes, and its NUL takes a quote's
 * place (an escape only shrinks: "\u00e9" is 6 bytes of text, 2 of UTF-8). Keys are checked against the earlier
 * keys of their object, so objects are capped at SJSON_MAX_MEMBERS to keep
 * that quadratic check small.
 */
#include "core/strictjson.h"

#include "core/hex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SJSON_MAX_MEMBERS 256

typedef struct {
	sjson_doc_t *d;
	const unsigned char *p, *end, *start;
	char *err;
	size_t errlen;
} parser_t;

static bool fail(parser_t *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(parser_t *ps, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s (column %zu)", what, (size_t)(ps->p - ps->start) + 1);
	return false;
}

/* Length of the UTF-8 sequence at s[0..n), 0 if it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || /* overlong; surrogates */
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))   /* overlong; past U+10FFFF */
		return 0;
	return len;
}

bool sjson_utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_seq(u + i, n - i)) == 0)
			return false;
	return true;
}

static void skip_space(parser_t *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

/* A new node; its index in *at. */
static bool new_node(parser_t *ps, sjson_type_t type, uint32_t *at)
{
	sjson_doc_t *d = ps->d;
	if (d->n >= SJSON_MAX_NODES)
		return fail(ps, "more than %d values", SJSON_MAX_NODES);
	if (!bytebuf_grow_array(&d->nodes, sizeof *d->nodes, d->n, &d->cap, 64))
		return fail(ps, "out of memory");
	*at = (uint32_t)d->n;
	d->nodes[d->n++] = (sjson_node_t){.type = type};
	return true;
}

static int hex4(const unsigned char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int c = p[i];
		int x = hex_value(c);
		if (x < 0)
			return -1;
		v = v << 4 | x;
	}
	return v;
}

static char *put_code_point(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | cp >> 12);
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | cp >> 18);
		*o++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* A string at ps->p (on the opening quote), decoded into the document's
 * text: *out and *len. */
static bool string(parser_t *ps, const char **out, size_t *len)
{
	sjson_doc_t *d = ps->d;
	char *o = d->text + d->used, *begin = o;
	ps->p++;
	for (;;) {
		if (ps->p >= ps->end)
			return fail(ps, "unterminated string");
		unsigned char c = *ps->p;
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(ps, "control character in a string");
		if (c != '\\') {
			size_t k = utf8_seq(ps->p, (size_t)(ps->end - ps->p));
			if (k == 0)
				return fail(ps, "invalid UTF-8");
			memcpy(o, ps->p, k);
			o += k;
			ps->p += k;
			continue;
		}
		if (ps->end - ps->p < 2)
			return fail(ps, "unterminated string");
		c = ps->p[1];
		const char *simple = strchr("\"\\/bfnrt", c);
		if (simple && c) {
			static const char to[] = "\"\\/\b\f\n\r\t";
			*o++ = to[simple - "\"\\/bfnrt"];
			ps->p += 2;
			continue;
		}
		if (c != 'u')
			return fail(ps, "invalid escape \\%c", c >= 0x20 && c < 0x7f ? c : '?');
		int cp = ps->end - ps->p >= 6 ? hex4(ps->p + 2) : -1;
		if (cp < 0)
			return fail(ps, "invalid \\u escape");
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return fail(ps, "lone low surrogate in \\u escape");
		if (cp >= 0xd800 && cp <= 0xdbff) {
			int lo = ps->end - ps->p >= 12 && ps->p[6] == '\\' && ps->p[7] == 'u' ? hex4(ps->p + 8) : -1;
			if (lo < 0xdc00 || lo > 0xdfff)
				return fail(ps, "high surrogate without its low half in \\u escape");
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			ps->p += 6;
		}
		if (cp == 0)
			return fail(ps, "\\u0000 is not allowed");
		o = put_code_point(o, (unsigned)cp);
		ps->p += 6;
	}
	ps->p++;
	*o++ = '\0';
	*out = begin;
	*len = (size_t)(o - begin) - 1;
	d->used += (size_t)(o - begin);
	return true;
}

static bool number(parser_t *ps, uint32_t at)
{
	const unsigned char *s = ps->p;
	bool negative = ps->p < ps->end && *ps->p == '-';
	if (negative)
		ps->p++;
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return fail(ps, "invalid number");
	uint64_t mag = 0;
	bool overflow = false;
	if (*ps->p == '0') {
		ps->p++;
	} else {
		for (; ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9'; ps->p++) {
			unsigned digit = (unsigned)(*ps->p - '0');
			overflow |= mag > (UINT64_MAX - digit) / 10;
			mag = mag * 10 + digit;
		}
	}
	bool real = false;
	if (ps->p < ps->end && *ps->p == '.') {
		real = true;
		ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "invalid number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		real = true;
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "invalid number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	sjson_node_t *n = &ps->d->nodes[at];
	if (real) {
		n->type = SJSON_REAL;
		return true;
	}
	if (overflow || mag > (uint64_t)INT64_MAX + negative) {
		ps->p = s;
		return fail(ps, "whole number out of range");
	}
	n->type = SJSON_INT;
	n->integer = negative ? (int64_t)(0 - mag) : (int64_t)mag;
	return true;
}

static bool literal(parser_t *ps, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return fail(ps, "invalid literal");
	ps->p += n;
	return true;
}

static bool value(parser_t *ps, uint32_t at, int depth);

/* Members of an array or object: ps->p is past the opening bracket. */
static bool members(parser_t *ps, uint32_t at, int depth, bool object)
{
	char close = object ? '}' : ']';
	uint32_t last = 0;
	skip_space(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return true;
	}
	for (;;) {
		const char *key = NULL;
		size_t key_len = 0;
		skip_space(ps);
		if (object) {
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, "string expected as an object key");
			const unsigned char *key_at = ps->p;
			if (!string(ps, &key, &key_len))
				return false;
			for (uint32_t m = ps->d->nodes[at].first; m; m = ps->d->nodes[m].next)
				if (!strcmp(ps->d->nodes[m].key, key)) {
					ps->p = key_at;
					return fail(ps, "duplicate object key \"%.40s\"", key);
				}
			if (ps->d->nodes[at].len >= SJSON_MAX_MEMBERS)
				return fail(ps, "more than %d keys in an object", SJSON_MAX_MEMBERS);
			skip_space(ps);
			if (ps->p >= ps->end || *ps->p != ':')
				return fail(ps, "':' expected");
			ps->p++;
		}
		uint32_t m;
		if (!new_node(ps, SJSON_NULL, &m))
			return false;
		ps->d->nodes[m].key = key;
		if (last)
			ps->d->nodes[last].next = m;
		else
			ps->d->nodes[at].first = m;
		last = m;
		ps->d->nodes[at].len++;
		if (!value(ps, m, depth + 1))
			return false;
		skip_space(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return true;
		}
		return fail(ps, "',' or '%c' expected", close);
	}
}

static bool value(parser_t *ps, uint32_t at, int depth)
{
	if (depth > SJSON_MAX_DEPTH)
		return fail(ps, "nested deeper than %d", SJSON_MAX_DEPTH);
	skip_space(ps);
	if (ps->p >= ps->end)
		return fail(ps, "unexpected end of input");
	sjson_node_t *n = &ps->d->nodes[at];
	switch (*ps->p) {
	case '{':
	case '[':
		n->type = *ps->p == '{' ? SJSON_OBJECT : SJSON_ARRAY;
		ps->p++;
		return members(ps, at, depth, n->type == SJSON_OBJECT);
	case '"': {
		const char *s;
		size_t len;
		if (!string(ps, &s, &len))
			return false;
		n = &ps->d->nodes[at];
		n->type = SJSON_STRING;
		n->str = s;
		n->len = len;
		return true;
	}
	case 't':
	case 'f':
		n->type = SJSON_BOOL;
		n->boolean = *ps->p == 't';
		return literal(ps, n->boolean ? "true" : "false");
	case 'n':
		return literal(ps, "null");
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return number(ps, at);
		return fail(ps, "unexpected character");
	}
}

bool sjson_parse(sjson_doc_t *d, const char *p, size_t n, char *err, size_t errlen)
{
	memset(d, 0, sizeof *d);
	parser_t ps = {d, (const unsigned char *)p, (const unsigned char *)p + n, (const unsigned char *)p, err,
		       errlen};
	uint32_t root;
	d->text = malloc(n + 1); /* a string's text (quotes included) outsizes its bytes and NUL */
	bool ok = d->text ? new_node(&ps, SJSON_NULL, &root) && value(&ps, root, 1) : fail(&ps, "out of memory");
	if (ok) {
		skip_space(&ps);
		if (ps.p != ps.end)
			ok = fail(&ps, "end of input expected");
	}
	if (!ok)
		sjson_free(d);
	return ok;
}

void sjson_free(sjson_doc_t *d)
{
	free(d->nodes);
	free(d->text);
	memset(d, 0, sizeof *d);
}

const sjson_node_t *sjson_root(const sjson_doc_t *d)
{
	return d->n ? &d->nodes[0] : NULL;
}

const sjson_node_t *sjson_first(const sjson_doc_t *d, const sjson_node_t *o)
{
	return o && o->first ? &d->nodes[o->first] : NULL;
}

const sjson_node_t *sjson_next(const sjson_doc_t *d, const sjson_node_t *m)
{
	return m->next ? &d->nodes[m->next] : NULL;
}

const sjson_node_t *sjson_get(const sjson_doc_t *d, const sjson_node_t *o, const char *key)
{
	if (!o || o->type != SJSON_OBJECT)
		return NULL;
	for (const sjson_node_t *m = sjson_first(d, o); m; m = sjson_next(d, m))
		if (!strcmp(m->key, key))
			return m;
	return NULL;
}

bool sjson_put_string(bytebuf_t *out, const char *s)
{
	size_t n = strlen(s);
	if (!sjson_utf8_valid(s, n) || !bytebuf_append(out, "\"", 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ok = c == '"' || c == '\\' ? bytebuf_appendf(out, "\\%c", c)
			  : c < 0x20		 ? bytebuf_appendf(out, "\\u%04x", c)
						 : bytebuf_append(out, &s[i], 1);
		if (!ok)
			return false;
	}
	return bytebuf_append(out, "\"", 1);
}
