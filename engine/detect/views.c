/*
 * views: decoders with maps, the bounded set of views of a text, and
 * redaction back through the maps. See views.h.
 */
#include "detect/views.h"

#include "core/bytebuf.h"
#include "core/hex.h"
#include "detect/mask.h"
#include "detect/simd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dview_kind_name(dview_kind_t k)
{
	switch (k) {
	case DVIEW_URL: return "url";
	case DVIEW_FORM: return "form";
	case DVIEW_JSON: return "json";
	case DVIEW_BASE64: return "base64";
	case DVIEW_QP: return "qp";
	case DVIEW_WRAP: return "unwrapped";
	}
	return "?";
}

static bool is_escape(const uint8_t *s, size_t n, size_t i)
{
	return i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0;
}

/* ---- decoders ---- */

size_t dview_decode_url(const uint8_t *b, size_t n, bool form, uint8_t *text, uint32_t *map, uint8_t *width)
{
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		map[k] = (uint32_t)i;
		if (b[i] == '%' && is_escape(b, n, i)) {
			text[k] = (uint8_t)(hex_value(b[i + 1]) << 4 | hex_value(b[i + 2]));
			width[k++] = 3;
			i += 3;
			continue;
		}
		text[k] = b[i] == '+' ? ' ' : form && b[i] == '&' ? '\n' : b[i]; /* a form's fields read as lines */
		width[k++] = 1;
		i++;
	}
	return k;
}

static int hex4(const uint8_t *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* UTF-8 of cp; the first byte carries the source width, the others 0. */
static size_t put_utf8(uint8_t *text, uint32_t *map, uint8_t *width, size_t k, uint32_t cp, size_t off, uint8_t w)
{
	uint8_t u[4];
	int m;
	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		m = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | cp >> 6);
		u[1] = (uint8_t)(0x80 | (cp & 0x3f));
		m = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | cp >> 12);
		u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f));
		m = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | cp >> 18);
		u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		m = 4;
	}
	for (int i = 0; i < m; i++) {
		text[k] = u[i];
		map[k] = (uint32_t)off;
		width[k++] = i == 0 ? w : 0;
	}
	return k;
}

/* Escapes only shorten: the text is never longer than the source. */
size_t dview_decode_json(const uint8_t *b, size_t n, uint8_t *text, uint32_t *map, uint8_t *width)
{
	static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
	bool in_str = false;
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		uint8_t c = b[i];
		if (!in_str || c != '\\' || i + 1 >= n) {
			if (c == '"')
				in_str = !in_str;
			text[k] = c;
			map[k] = (uint32_t)i;
			width[k++] = 1;
			i++;
			continue;
		}
		uint8_t e = b[i + 1];
		const char *s = memchr(simple_in, e, sizeof simple_in - 1);
		if (s) {
			text[k] = (uint8_t)simple_out[s - simple_in];
			map[k] = (uint32_t)i;
			width[k++] = 2;
			i += 2;
			continue;
		}
		int cp, lo;
		if (e == 'u' && i + 6 <= n && (cp = hex4(b + i + 2)) >= 0) {
			if (cp >= 0xd800 && cp < 0xdc00 && i + 12 <= n && b[i + 6] == '\\' && b[i + 7] == 'u' &&
			    (lo = hex4(b + i + 8)) >= 0xdc00 && lo < 0xe000) {
				uint32_t full = 0x10000 + (((uint32_t)cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
				k = put_utf8(text, map, width, k, full, i, 12);
				i += 12;
			} else {
				k = put_utf8(text, map, width, k, (uint32_t)cp, i, 6);
				i += 6;
			}
			continue;
		}
		text[k] = c; /* a broken escape stays as it is */
		map[k] = (uint32_t)i;
		width[k++] = 1;
		i++;
	}
	return k;
}

size_t dview_decode_qp(const uint8_t *b, size_t n, uint8_t *text, uint32_t *map, uint8_t *width)
{
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		if (b[i] == '=') {
			/* a soft line break joins the lines: it decodes to nothing */
			size_t j = i + 1;
			while (j < n && (b[j] == ' ' || b[j] == '\t'))
				j++;
			if (j < n && b[j] == '\n') {
				i = j + 1;
				continue;
			}
			if (j + 1 < n && b[j] == '\r' && b[j + 1] == '\n') {
				i = j + 2;
				continue;
			}
			if (is_escape(b, n, i)) {
				text[k] = (uint8_t)(hex_value(b[i + 1]) << 4 | hex_value(b[i + 2]));
				map[k] = (uint32_t)i;
				width[k++] = 3;
				i += 3;
				continue;
			}
		}
		text[k] = b[i];
		map[k] = (uint32_t)i;
		width[k++] = 1;
		i++;
	}
	return k;
}

/* c as a plain byte (printable, none of the encoding's own specials) or
 * as escape-char + two hex digits (%2A, =2A). */
static bool encode_plain_or_hex(uint8_t width, uint8_t c, char esc, const char *specials, uint8_t *out)
{
	static const char hex[] = "0123456789ABCDEF";
	if (width == 1 && c > 0x20 && c < 0x7f && !strchr(specials, c)) {
		out[0] = c;
		return true;
	}
	if (width != 3)
		return false;
	out[0] = (uint8_t)esc, out[1] = (uint8_t)hex[c >> 4], out[2] = (uint8_t)hex[c & 15];
	return true;
}

bool dview_encode_char(dview_kind_t k, uint8_t width, uint8_t c, uint8_t *out)
{
	static const char hex[] = "0123456789abcdef";
	switch (k) {
	case DVIEW_URL:
	case DVIEW_FORM:
		return encode_plain_or_hex(width, c, '%', "%+&", out);
	case DVIEW_QP:
		return encode_plain_or_hex(width, c, '=', "=", out);
	case DVIEW_JSON:
		if (width == 6 && c < 0x80) {
			memcpy(out, "\\u00", 4);
			out[4] = (uint8_t)hex[c >> 4], out[5] = (uint8_t)hex[c & 15];
			return true;
		}
		/* a short escape (\n) stands for a character a mask never writes */
		return width == 1 && c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && (out[0] = c, true);
	case DVIEW_BASE64:
		return false; /* six bits of three bytes: no byte is rewritten alone */
	case DVIEW_WRAP:
		return width == 1 && (out[0] = c, true); /* its bytes are the text's own */
	}
	return false;
}

/* ---- growing output of one view ---- */

typedef struct {
	uint8_t *text;
	uint32_t *map;
	uint8_t *width;
	size_t len, cap;
} vbuf_t;

static bool vbuf_room(vbuf_t *b, size_t more)
{
	if (b->len + more <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *t = realloc(b->text, cap);
	if (t)
		b->text = t;
	uint32_t *m = t ? realloc(b->map, cap * sizeof *m) : NULL;
	if (m)
		b->map = m;
	uint8_t *w = m ? realloc(b->width, cap) : NULL;
	if (!w)
		return false;
	b->width = w;
	b->cap = cap;
	return true;
}

static void vbuf_free(vbuf_t *b)
{
	free(b->text);
	free(b->map);
	free(b->width);
	memset(b, 0, sizeof *b);
}

/* bytes copied as they are (context before a token) */
static void vbuf_copy(vbuf_t *b, const uint8_t *src, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		b->text[b->len] = src[i];
		b->map[b->len] = (uint32_t)i;
		b->width[b->len++] = 1;
	}
}

/* a line break between pieces, tied to no source byte that can be written */
static void vbuf_break(vbuf_t *b, size_t at)
{
	b->text[b->len] = '\n';
	b->map[b->len] = (uint32_t)at;
	b->width[b->len++] = 0;
}

static void vbuf_shift(vbuf_t *b, size_t from, size_t by)
{
	for (size_t i = from; i < b->len; i++)
		b->map[i] += (uint32_t)by;
}

/* ---- finding what calls for a view ---- */

#define CONTEXT_BEFORE 40 /* bytes kept before a decoded token for context words */

static bool token_byte(uint8_t c)
{
	return !(c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' || c == '\'' || c == '<' || c == '>' ||
		 c == '`');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Does token [a, b) read differently URL-decoded in a way worth a view:
 * a %XX escape, a '+' between digits, or a form's '+' beside a '='? */
static bool token_encoded(const uint8_t *s, size_t a, size_t b)
{
	bool plus = false, eq = false;
	for (size_t i = a; i < b; i++) {
		if (s[i] == '%' && i + 2 < b && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0)
			return true;
		if (s[i] == '+') {
			plus = true;
			if (i > a && i + 1 < b && is_digit(s[i - 1]) && is_digit(s[i + 1]))
				return true;
		}
		eq |= s[i] == '=';
	}
	return plus && eq;
}

/* Up to CONTEXT_BEFORE bytes from `from` on, to the end of the line. */
static size_t context_after(const uint8_t *s, size_t n, size_t from)
{
	size_t e = from;
	while (e < n && e - from < CONTEXT_BEFORE && s[e] != '\n')
		e++;
	return e;
}

/* Where the next encoded token at or past i is: [*a, *b), with *a not
 * before done; false when there is none. */
typedef bool (*token_fn)(const uint8_t *s, size_t n, size_t i, size_t done, size_t *a, size_t *b, void *st);

typedef struct {
	const uint8_t *pct, *plus; /* the next '%' and '+' (NULL: none) */
} url_state_t;

/* A token holding a %XX escape (or a form's '+'): bounded by whitespace,
 * quotes and angle brackets. */
static bool next_url_token(const uint8_t *s, size_t n, size_t i, size_t done, size_t *ta, size_t *tb, void *st)
{
	url_state_t *u = st;
	for (; i < n; i++) {
		if (u->pct && u->pct < s + i)
			u->pct = memchr(s + i, '%', n - i);
		if (u->plus && u->plus < s + i)
			u->plus = memchr(s + i, '+', n - i);
		if (!u->pct && !u->plus)
			return false;
		size_t at = (size_t)((u->pct && (!u->plus || u->pct < u->plus) ? u->pct : u->plus) - s);
		size_t a = at, b = at + 1;
		while (a > done && token_byte(s[a - 1]))
			a--;
		while (b < n && token_byte(s[b]))
			b++;
		i = b;
		if (token_encoded(s, a, b)) {
			*ta = a, *tb = b;
			return true;
		}
	}
	return false;
}

#define JSON_STRING_MAX 65536 /* how far a string's quotes are looked for */

/* A JSON string holding a backslash escape, quotes included. */
static bool next_json_token(const uint8_t *s, size_t n, size_t i, size_t done, size_t *ta, size_t *tb, void *st)
{
	(void)st;
	while (i < n) {
		const uint8_t *bs = memchr(s + i, '\\', n - i);
		if (!bs)
			return false;
		size_t at = (size_t)(bs - s), a = at, b = at + 2;
		while (a > done && at - a < JSON_STRING_MAX && !(s[a - 1] == '"' && (a < 2 || s[a - 2] != '\\')))
			a--;
		if (a > done && s[a - 1] == '"')
			a--; /* the opening quote, so the decoder knows it is in a string */
		while (b < n && b - at < JSON_STRING_MAX && !(s[b] == '"' && s[b - 1] != '\\'))
			b++;
		if (b < n && s[b] == '"')
			b++;
		i = b > at + 2 ? b : at + 2;
		if (a < at && s[a] == '"' && at + 1 < n && s[at + 1] && strchr("\"\\/bfnrtu", s[at + 1])) {
			*ta = a, *tb = b < n ? b : n;
			return true;
		}
	}
	return false;
}

/* A view of pieces: each encoded token, decoded, with up to
 * CONTEXT_BEFORE bytes of its line either side as they are ("phone
 * %2B44 20 7946 0958" reads "+44 20 7946 0958"); tokens close together
 * share one piece. The view costs what the encoded tokens do, not what
 * the text does. */
static bool pieces_view(vbuf_t *out, const uint8_t *s, size_t n, dview_kind_t kind, token_fn next, void *st,
			uint32_t max_runs, bool *truncated)
{
	size_t done = 0, runs = 0, a, b; /* source consumed into the view, tokens decoded */
	bool open = false;               /* a piece is open: done is the end of its last token */
	for (size_t i = 0; next(s, n, i, done, &a, &b, st); i = b) {
		if (runs++ == max_runs) {
			*truncated = true;
			break;
		}
		size_t c;
		if (!open || a - done > 2 * CONTEXT_BEFORE) {
			if (open) { /* close the last piece with its context after */
				size_t e = context_after(s, n, done);
				if (!vbuf_room(out, e - done + 1))
					return false;
				vbuf_copy(out, s, done, e);
				vbuf_break(out, e);
				done = e;
			}
			c = a > done + CONTEXT_BEFORE ? a - CONTEXT_BEFORE : done;
			for (size_t j = a; j > c; j--)
				if (s[j - 1] == '\n') {
					c = j;
					break;
				}
		} else {
			c = done;
		}
		if (!vbuf_room(out, (a - c) + (b - a)))
			return false;
		vbuf_copy(out, s, c, a);
		size_t from = out->len;
		out->len += kind == DVIEW_JSON
				    ? dview_decode_json(s + a, b - a, out->text + from, out->map + from, out->width + from)
				    : dview_decode_url(s + a, b - a, false, out->text + from, out->map + from, out->width + from);
		vbuf_shift(out, from, a);
		done = b;
		open = true;
	}
	if (open) {
		size_t e = context_after(s, n, done);
		if (!vbuf_room(out, e - done + 1))
			return false;
		vbuf_copy(out, s, done, e);
		vbuf_break(out, e);
	}
	return true;
}

/* 1: standard alphabet only, 2: URL-safe only, 3: both, 0: neither */
static uint8_t b64_class[256];
static int8_t b64_value[256];

static void b64_tables(void)
{
	if (b64_class['A'])
		return;
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	for (int i = 0; i < 256; i++)
		b64_value[i] = -1;
	for (int i = 0; std[i]; i++) {
		b64_class[(uint8_t)std[i]] = 3;
		b64_value[(uint8_t)std[i]] = (int8_t)i;
	}
	b64_class['+'] = b64_class['/'] = 1;
	b64_class['-'] = b64_class['_'] = 2;
	b64_value['+'] = b64_value['-'] = 62;
	b64_value['/'] = b64_value['_'] = 63;
}

/* Which of the 64 bytes at p are base64 characters (either alphabet).
 * Where the CPU has AVX-512BW one instruction classifies all 64 bytes
 * straight into a mask, five times fewer than SSE2's four rounds of 16:
 * on prose, where these passes look at every byte and find nothing, that
 * is most of what the decoded views cost (simd.h chooses). */
#if defined(__SSE2__)
#include <immintrin.h>

#define AVX512BW __attribute__((target("avx512f,avx512bw")))

AVX512BW static inline __mmask64 in_range64(__m512i v, char lo, char span)
{
	return _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8(lo)), _mm512_set1_epi8(span));
}

AVX512BW static uint64_t b64_mask_avx512(const uint8_t *p)
{
	__m512i v = _mm512_loadu_si512((const void *)p);
	return in_range64(_mm512_or_si512(v, _mm512_set1_epi8(0x20)), 'a', 25) | in_range64(v, '0', 9) |
	       _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('+')) | _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('/')) |
	       _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('-')) | _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('_'));
}

static inline __m128i in_range(__m128i v, char lo, char span)
{
	__m128i t = _mm_sub_epi8(v, _mm_set1_epi8(lo));
	return _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(span)), t);
}

static uint64_t b64_mask(const uint8_t *p)
{
	if (simd_wide())
		return b64_mask_avx512(p);
	uint64_t m = 0;
	for (int i = 0; i < 4; i++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
		__m128i c = _mm_or_si128(in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 25), in_range(v, '0', 9));
		c = _mm_or_si128(c, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('+')), _mm_cmpeq_epi8(v, _mm_set1_epi8('/'))));
		c = _mm_or_si128(c, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('-')), _mm_cmpeq_epi8(v, _mm_set1_epi8('_'))));
		m |= (uint64_t)(uint16_t)_mm_movemask_epi8(c) << (16 * i);
	}
	return m;
}
#else
static uint64_t b64_mask(const uint8_t *p)
{
	uint64_t m = 0;
	for (int i = 0; i < 64; i++)
		m |= (uint64_t)(b64_class[p[i]] != 0) << i;
	return m;
}
#endif

/* Line breaks that may cut a number (for the unwrapped view): bit i of
 * the result is a '\n' at p[i] with a digit or '\r' just before it, or a
 * digit just after it. prev/next are the bytes either side
 * of the 64. */
#if defined(__SSE2__)
AVX512BW static uint64_t wrap_mask_avx512(const uint8_t *p, uint8_t prev, uint8_t next)
{
	__m512i v = _mm512_loadu_si512((const void *)p);
	uint64_t nl = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\n')), d = in_range64(v, '0', 9),
		 x = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\r'));
	uint64_t before = (d | x) << 1 | (uint64_t)(is_digit(prev) || prev == '\r');
	uint64_t after = d >> 1 | (uint64_t)is_digit(next) << 63;
	return nl & (before | after);
}

static uint64_t wrap_mask(const uint8_t *p, uint8_t prev, uint8_t next)
{
	if (simd_wide())
		return wrap_mask_avx512(p, prev, next);
	uint64_t nl = 0, d = 0, x = 0;
	for (int i = 0; i < 4; i++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
		nl |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))) << (16 * i);
		d |= (uint64_t)(uint16_t)_mm_movemask_epi8(in_range(v, '0', 9)) << (16 * i);
		x |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))) << (16 * i);
	}
	uint64_t before = (d | x) << 1 | (uint64_t)(is_digit(prev) || prev == '\r');
	uint64_t after = d >> 1 | (uint64_t)is_digit(next) << 63;
	return nl & (before | after);
}
#else
static uint64_t wrap_mask(const uint8_t *p, uint8_t prev, uint8_t next)
{
	uint64_t m = 0;
	for (int i = 0; i < 64; i++) {
		uint8_t b = i ? p[i - 1] : prev, a = i < 63 ? p[i + 1] : next;
		if (p[i] == '\n' && (is_digit(b) || b == '\r' || is_digit(a)))
			m |= 1ull << i;
	}
	return m;
}
#endif

/* The next line break at or past from that may cut a number, or n. */
static size_t next_wrap(const uint8_t *s, size_t n, size_t from)
{
	for (size_t base = from & ~(size_t)63; base < n; base += 64) {
		uint8_t prev = base ? s[base - 1] : 0, next = base + 64 < n ? s[base + 64] : 0;
		uint64_t m;
		if (n - base >= 64) {
			m = wrap_mask(s + base, prev, next);
		} else {
			uint8_t tail[64] = {0};
			memcpy(tail, s + base, n - base);
			m = wrap_mask(tail, prev, 0) & (~0ull >> (64 - (n - base)));
		}
		if (base < from)
			m &= ~0ull << (from - base);
		if (m)
			return base + (size_t)__builtin_ctzll(m);
	}
	return n;
}

static uint64_t b64_mask_at(const uint8_t *s, size_t n, size_t base)
{
	if (base >= n)
		return 0;
	if (n - base >= 64)
		return b64_mask(s + base);
	uint8_t tail[64] = {0}; /* zeros are no base64 character */
	memcpy(tail, s + base, n - base);
	return b64_mask(tail);
}

/* The first offset at or past from where 16 base64 characters follow one
 * another, or n: 64 bytes at a time, so prose (words shorter than 16)
 * costs a fraction of a nanosecond a byte. */
static size_t next_run16(const uint8_t *s, size_t n, size_t from)
{
	size_t base = from & ~(size_t)63;
	uint64_t lo = b64_mask_at(s, n, base) & (~0ull << (from - base)), hi = b64_mask_at(s, n, base + 64);
	for (;;) {
		/* bit i of m: bytes i .. i+15 are all base64 (hi supplies those past the block) */
		uint64_t m = lo, h = hi;
		for (unsigned k = 1; k < 16; k <<= 1) {
			m &= (m >> k) | (h << (64 - k));
			h &= h >> k;
		}
		if (m)
			return base + (size_t)__builtin_ctzll(m);
		base += 64;
		if (base >= n)
			return n;
		lo = hi;
		hi = b64_mask_at(s, n, base + 64);
	}
}

/* Do these decoded bytes read as text? At least 9 in 10 printable ASCII,
 * whitespace or whole UTF-8 characters: random bytes (an image, a hash, a
 * word that happens to be base64) are far from it. */
static bool reads_as_text(const uint8_t *t, size_t n)
{
	size_t bad = 0;
	for (size_t i = 0; i < n;) {
		uint8_t c = t[i];
		if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t') {
			i++;
			continue;
		}
		int more = c >= 0xf0 && c < 0xf5 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : -1;
		int k = 0;
		if (more > 0 && c < 0xf5)
			while (k < more && i + 1 + (size_t)k < n && (t[i + 1 + k] & 0xc0) == 0x80)
				k++;
		if (more > 0 && k == more) {
			i += 1 + (size_t)more;
			continue;
		}
		bad++;
		i++;
	}
	return bad * 10 <= n;
}

/* Decodes the base64 characters at positions pos[0, m) of s into out;
 * each byte maps to the character its first bits are in. */
static void b64_decode(vbuf_t *out, const uint8_t *s, const uint32_t *pos, size_t m)
{
	for (size_t q = 0; q + 1 < m; q += 4) {
		size_t left = m - q < 4 ? m - q : 4;
		uint32_t v = 0;
		for (size_t k = 0; k < 4; k++)
			v = v << 6 | (k < left ? (uint32_t)b64_value[s[pos[q + k]]] : 0);
		for (size_t k = 0; k + 1 < left; k++) {
			out->text[out->len] = (uint8_t)(v >> (16 - 8 * k));
			out->map[out->len] = pos[q + k];
			out->width[out->len++] = 0;
		}
	}
}

/* The base64 view of s: each run of at least min base64 characters (MIME
 * line breaks allowed between groups of four) whose decoding reads as
 * text, decoded. */
static bool base64_view(vbuf_t *out, const uint8_t *s, size_t n, uint32_t min, uint32_t max_runs, bool *truncated)
{
	b64_tables();
	uint32_t *pos = NULL;
	size_t pos_cap = 0, runs = 0;
	bool ok = true;
	for (size_t i = 0; i < n;) {
		if (min >= 16) {
			/* skip to a stretch of 16, then back to where its run starts */
			size_t at = next_run16(s, n, i);
			if (at >= n)
				break;
			while (at > i && b64_class[s[at - 1]])
				at--;
			i = at;
			if (!b64_class[s[i]]) { /* a candidate the table refuses: past it */
				while (i < n && !b64_class[s[i]])
					i++;
				continue;
			}
		} else if (!b64_class[s[i]]) {
			i++;
			continue;
		}
		/* a run: its characters' positions; the first 16 decoded at once
		 * tell most runs (identifiers, hashes, paths) from text */
		size_t m = 0, j = i;
		bool probed = false, text = true;
		for (;;) {
			while (j < n && b64_class[s[j]]) {
				if (!bytebuf_grow_array(&pos, sizeof *pos, m, &pos_cap, 1024)) {
					free(pos);
					return false;
				}
				pos[m++] = (uint32_t)j++;
				if (m == 16 && !probed) {
					probed = true;
					if (!vbuf_room(out, 13)) {
						free(pos);
						return false;
					}
					size_t from = out->len;
					b64_decode(out, s, pos, 16);
					text = reads_as_text(out->text + from, out->len - from);
					out->len = from;
					if (!text)
						break;
				}
			}
			/* a MIME line break after a whole group goes on with the run */
			size_t nl = j < n && s[j] == '\r' ? j + 1 : j;
			if (text && m && m % 4 == 0 && nl < n && s[nl] == '\n' && nl + 1 < n && b64_class[s[nl + 1]]) {
				j = nl + 1;
				continue;
			}
			break;
		}
		while (!text && j < n && b64_class[s[j]])
			j++; /* not text: the rest of the run is skipped unread */
		size_t end = j;
		while (end < n && end < j + 2 && s[end] == '=')
			end++;
		if (m < min || !text) {
			i = end > i ? end : i + 1;
			continue;
		}
		if (runs++ == max_runs) {
			*truncated = true;
			break;
		}
		if (m % 4 == 1)
			m--; /* a lone sixth of a byte */
		if (!vbuf_room(out, m * 3 / 4 + 1)) {
			ok = false;
			break;
		}
		/* then their first 64 characters before decoding all of it */
		size_t from = out->len;
		for (size_t probe = 64; text && probe < 128; probe *= 4) {
			b64_decode(out, s, pos, probe < m ? probe : m);
			text = reads_as_text(out->text + from, out->len - from);
			out->len = from;
		}
		if (text) {
			b64_decode(out, s, pos, m);
			text = reads_as_text(out->text + from, out->len - from);
		}
		if (text)
			vbuf_break(out, end);
		else
			out->len = from;
		i = end;
	}
	free(pos);
	return ok;
}

static bool qp_view(vbuf_t *out, const uint8_t *s, size_t n, const dview_range_t *r, size_t nr)
{
	for (size_t k = 0; k < nr; k++) {
		if ((uint64_t)r[k].off + r[k].len > n || !memchr(s + r[k].off, '=', r[k].len))
			continue;
		if (!vbuf_room(out, (size_t)r[k].len + 1))
			return false;
		size_t from = out->len;
		out->len += dview_decode_qp(s + r[k].off, r[k].len, out->text + from, out->map + from, out->width + from);
		vbuf_shift(out, from, r[k].off);
		vbuf_break(out, (size_t)r[k].off + r[k].len);
	}
	return true;
}

static bool is_alnum(uint8_t c)
{
	return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* Digits of the run of letters and digits, single spaces or dashes
 * between them, that ends at end (exclusive), looking back at most limit
 * bytes; *sep is a space or dash found between two of its digits. */
static size_t digits_before(const uint8_t *s, size_t end, size_t limit, uint8_t *sep, size_t *start)
{
	size_t d = 0;
	*sep = 0;
	*start = end;
	for (size_t i = end; i > 0 && end - i < limit; i--) {
		uint8_t c = s[i - 1];
		if (is_alnum(c))
			d += is_digit(c), *start = i - 1;
		else if ((c == ' ' || c == '-') && i >= 2 && is_alnum(s[i - 2]) && i < end && is_alnum(s[i]))
			*sep = is_digit(s[i - 2]) && is_digit(s[i]) ? c : *sep; /* between digits: the number's own */
		else
			break;
	}
	return d;
}

/* The same, forward from `from`; *sep is set only if still 0. */
static size_t digits_after(const uint8_t *s, size_t n, size_t from, size_t limit, uint8_t *sep, size_t *end)
{
	size_t d = 0;
	*end = from;
	for (size_t i = from; i < n && i - from < limit; i++) {
		if (is_alnum(s[i]))
			d += is_digit(s[i]), *end = i + 1;
		else if ((s[i] == ' ' || s[i] == '-') && i + 1 < n && is_alnum(s[i + 1]) && i > from && is_alnum(s[i - 1]))
			*sep = *sep || !is_digit(s[i - 1]) || !is_digit(s[i + 1]) ? *sep : s[i];
		else
			break;
	}
	return d;
}

/* bytes kept before a joined number, on its line (or the line above when
 * the number starts its own): its label, which the identity detectors need
 * ("Steueridentifikationsnummer: ", 29 bytes; a sentence that names it) */
#define WRAP_CONTEXT 128
#define WRAP_DIGITS 6 /* the shortest number worth joining (a UK NINO's) */

/* A group of letters before a break belongs to a number only as an IBAN's
 * bank code does: at most 4 of them, after a group holding a digit
 * ("NL91 QXQH\n0417 ..."), not the last word of a sentence. */
static bool letters_in_number(const uint8_t *s, size_t end)
{
	size_t i = end;
	while (i > 0 && is_alnum(s[i - 1]) && !is_digit(s[i - 1]))
		i--;
	if (i == end)
		return true; /* it ends with a digit */
	if (end - i > 4 || i < 2 || (s[i - 1] != ' ' && s[i - 1] != '-'))
		return false;
	return is_digit(s[i - 2]);
}

/* Is the group of letters and digits that ends at at (dir -1) or starts
 * there (dir = n, the text's length) all digits or all letters, or of two
 * characters (a French NIR's Corsican department, 2A or 2B)? */
static bool pure_group(const uint8_t *s, size_t at, long dir)
{
	bool digits = false, letters = false;
	size_t k = 0;
	if (dir < 0) {
		for (size_t i = at; i > 0 && is_alnum(s[i - 1]) && !(digits && letters && k > 2); i--, k++)
			digits |= is_digit(s[i - 1]), letters |= !is_digit(s[i - 1]);
	} else {
		for (size_t i = at; i < (size_t)dir && is_alnum(s[i]) && !(digits && letters && k > 2); i++, k++)
			digits |= is_digit(s[i]), letters |= !is_digit(s[i]);
	}
	return !(digits && letters) || k <= 2;
}

/* A number's label may stand on the line above its own ("Steuer-ID:\n86
 * 095\n742 719"): where that line starts, if it is short and past done;
 * else line (the start of the number's line). */
static size_t label_above(const uint8_t *s, size_t line, size_t done)
{
	if (line < done + 2 || s[line - 1] != '\n')
		return line;
	size_t q = line - 1;
	while (q > done && line - q <= WRAP_CONTEXT && s[q - 1] != '\n')
		q--;
	return (q == 0 || s[q - 1] == '\n') && line - q <= WRAP_CONTEXT ? q : line;
}

/* The unwrapped view of s: a number broken over two lines ("4111 1111\n
 * 1111 1111", an IBAN whose last groups went to the next line) joined
 * again, with the separator the number uses elsewhere where the break
 * took its place. Only breaks with digits on both sides, WRAP_DIGITS in
 * all, and the lines around them up to WRAP_REACH bytes. */
static bool wrap_view(vbuf_t *out, const uint8_t *s, size_t n, uint32_t max_runs, bool *truncated)
{
	size_t done = 0, runs = 0;
	for (size_t nl = next_wrap(s, n, 0); nl < n; nl = next_wrap(s, n, nl + 1)) {
		size_t cut = nl;
		if (cut > 0 && s[cut - 1] == '\r')
			cut--;
		size_t next = nl + 1;
		while (next < n && (s[next] == ' ' || s[next] == '\t') && next - nl < 16)
			next++;
		uint8_t sep = 0, trail = 0;
		size_t end = cut;
		if (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '-'))
			trail = s[--end]; /* "4111 1111 \n1111": the separator is still there */
		/* a number goes on across the break: a letter or digit either side,
		 * a digit on one of them (an IBAN's groups hold letters) */
		if (end == 0 || next >= n || end < done || !is_alnum(s[end - 1]) || !is_alnum(s[next]) ||
		    !(is_digit(s[end - 1]) || is_digit(s[next])))
			continue;
		/* the groups either side of the break are a number's: all digits or
		 * all letters (an IBAN's bank code), not a hex id or a word */
		if (!pure_group(s, end, -1) || !pure_group(s, next, n) || !letters_in_number(s, end))
			continue;
		/* the number's separator: from before the break, else after it;
		 * digits on both lines (a whole number and a word on the next line
		 * are not a cut one), WRAP_DIGITS in all */
		size_t a, b;
		size_t before = digits_before(s, end, 40, &sep, &a);
		size_t after = before ? digits_after(s, n, next, 40, &sep, &b) : 0;
		if (after == 0 || before + after < WRAP_DIGITS)
			continue;
		if (runs++ == max_runs) {
			*truncated = true;
			break;
		}
		/* the piece: the number, the label before it, a byte after it */
		size_t floor = a > done + WRAP_CONTEXT ? a - WRAP_CONTEXT : done;
		while (a > floor && s[a - 1] != '\n')
			a--;
		a = label_above(s, a, done);
		if (b < n && s[b] != '\n')
			b++;
		if (!vbuf_room(out, (end - a) + 2 + (b - next)))
			return false;
		vbuf_copy(out, s, a, end);
		if (trail || sep) {
			/* the join, tied to the break: nothing a mask rewrites */
			out->text[out->len] = trail ? trail : sep;
			out->map[out->len] = (uint32_t)(trail ? end : cut);
			out->width[out->len++] = trail ? 1 : 0;
		}
		vbuf_copy(out, s, next, b);
		vbuf_break(out, b);
		done = b;
	}
	return true;
}

/* ---- the set ---- */

static bool changed(const vbuf_t *b, const uint8_t *src, size_t n)
{
	if (b->len != n)
		return true;
	return memcmp(b->text, src, n) != 0;
}

static bool looks_json(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	return i < n && (s[i] == '{' || s[i] == '[') && memchr(s, '\\', n) && memchr(s, '"', n);
}

/* Tries one kind of view on parent pi's text; keeps it when it says
 * something the parent did not. */
static bool try_view(dview_set_t *set, int pi, dview_kind_t kind, const dview_limits_t *lim, uint64_t max_bytes,
		     const dview_range_t *qp, size_t n_qp)
{
	const uint8_t *s = pi < 0 ? set->root : set->v[pi].text;
	size_t n = pi < 0 ? set->root_len : set->v[pi].len;
	uint8_t depth = pi < 0 ? 1 : (uint8_t)(set->v[pi].depth + 1);
	if (set->n >= lim->max_views || set->bytes >= max_bytes) {
		set->truncated = true;
		return true;
	}
	vbuf_t b = {0};
	bool ok = true;
	switch (kind) {
	case DVIEW_URL: {
		url_state_t u = {memchr(s, '%', n), memchr(s, '+', n)};
		if (!u.pct && !u.plus)
			return true;
		ok = pieces_view(&b, s, n, DVIEW_URL, next_url_token, &u, lim->max_runs, &set->truncated);
		break;
	}
	case DVIEW_BASE64:
		ok = base64_view(&b, s, n, lim->min_base64, lim->max_runs, &set->truncated);
		break;
	case DVIEW_QP:
		ok = qp_view(&b, s, n, qp, n_qp);
		break;
	case DVIEW_JSON:
		if (pi < 0 ? !looks_json(s, n) : !memchr(s, '\\', n))
			return true;
		ok = pieces_view(&b, s, n, DVIEW_JSON, next_json_token, NULL, lim->max_runs, &set->truncated);
		break;
	case DVIEW_WRAP:
		ok = wrap_view(&b, s, n, lim->max_runs, &set->truncated);
		break;
	default:
		return true;
	}
	if (!ok) {
		vbuf_free(&b);
		return false;
	}
	if (!b.len || !changed(&b, s, n)) {
		vbuf_free(&b);
		return true;
	}
	if (set->bytes + b.len > max_bytes) {
		set->truncated = true;
		vbuf_free(&b);
		return true;
	}
	char name[sizeof set->v[0].name];
	if (pi < 0)
		snprintf(name, sizeof name, "%s", dview_kind_name(kind));
	else
		snprintf(name, sizeof name, "%s>%s", set->v[pi].name, dview_kind_name(kind));
	dview_t *v = &set->v[set->n++];
	memcpy(v->name, name, sizeof name);
	v->kind = kind;
	v->parent = pi;
	v->depth = depth;
	v->text = b.text;
	v->map = b.map;
	v->width = b.width;
	v->len = (uint32_t)b.len;
	set->bytes += b.len;
	return true;
}

bool dview_set_build(dview_set_t *set, const uint8_t *text, size_t len, const dview_range_t *qp, size_t n_qp,
		     const dview_limits_t *limits)
{
	memset(set, 0, sizeof *set);
	set->root = text;
	set->root_len = len;
	if (len > UINT32_MAX)
		len = set->root_len = UINT32_MAX;
	dview_limits_t lim = limits ? *limits : (dview_limits_t){0};
	if (!lim.max_views || lim.max_views > DVIEW_MAX)
		lim.max_views = DVIEW_MAX;
	if (!lim.max_depth)
		lim.max_depth = 3;
	if (!lim.max_runs)
		lim.max_runs = 4096;
	if (!lim.min_base64)
		lim.min_base64 = 16;
	uint64_t max_bytes = lim.max_bytes ? lim.max_bytes : 2 * (uint64_t)len + (64u << 10);
	if (!try_view(set, -1, DVIEW_QP, &lim, max_bytes, qp, n_qp) ||
	    !try_view(set, -1, DVIEW_JSON, &lim, max_bytes, NULL, 0) ||
	    !try_view(set, -1, DVIEW_URL, &lim, max_bytes, NULL, 0) ||
	    !try_view(set, -1, DVIEW_BASE64, &lim, max_bytes, NULL, 0) ||
	    !try_view(set, -1, DVIEW_WRAP, &lim, max_bytes, NULL, 0))
		goto oom;
	/* views of views, breadth first, to the depth limit */
	for (uint32_t i = 0; i < set->n; i++) {
		if (set->v[i].depth >= lim.max_depth) {
			continue;
		}
		dview_kind_t k = set->v[i].kind;
		if ((k != DVIEW_JSON && !try_view(set, (int)i, DVIEW_JSON, &lim, max_bytes, NULL, 0)) ||
		    !try_view(set, (int)i, DVIEW_URL, &lim, max_bytes, NULL, 0) ||
		    !try_view(set, (int)i, DVIEW_BASE64, &lim, max_bytes, NULL, 0) ||
		    (k != DVIEW_WRAP && !try_view(set, (int)i, DVIEW_WRAP, &lim, max_bytes, NULL, 0)))
			goto oom;
	}
	return true;
oom:
	dview_set_free(set);
	return false;
}

void dview_set_free(dview_set_t *set)
{
	for (uint32_t i = 0; i < set->n; i++) {
		free(set->v[i].text);
		free(set->v[i].map);
		free(set->v[i].width);
	}
	memset(set, 0, sizeof *set);
}

/* ---- back to the text ---- */

static bool byte_verbatim(const dview_set_t *set, int vi, uint32_t off)
{
	while (vi >= 0) {
		const dview_t *v = &set->v[vi];
		if (v->width[off] != 1)
			return false;
		const uint8_t *ptext = v->parent < 0 ? set->root : set->v[v->parent].text;
		if (ptext[v->map[off]] != v->text[off])
			return false;
		off = v->map[off];
		vi = v->parent;
	}
	return true;
}

bool dview_verbatim(const dview_set_t *set, int vi, uint32_t start, uint32_t len)
{
	for (uint32_t i = start; i < start + len; i++)
		if (!byte_verbatim(set, vi, i))
			return false;
	return true;
}

void dview_root_span(const dview_set_t *set, int vi, uint32_t start, uint32_t len, uint32_t *rstart, uint32_t *rlen)
{
	uint32_t a = start, e = start + len; /* [a, e) in the current view */
	while (vi >= 0) {
		const dview_t *v = &set->v[vi];
		uint32_t plen = v->parent < 0 ? (uint32_t)set->root_len : set->v[v->parent].len;
		if (e > v->len || a > e) {
			*rstart = *rlen = 0;
			return;
		}
		/* from the first byte's source to the furthest end of any source
		 * (a line break between pieces has none, and may sit at the end) */
		uint32_t na = a < e ? v->map[a] : plen, ne = na;
		for (uint32_t i = a; i < e; i++) {
			/* a base64 byte comes from the character its bits start in and the next */
			uint32_t w = v->width[i] ? v->width[i] : v->kind == DVIEW_BASE64 ? 2 : 0;
			if (v->map[i] + w > ne)
				ne = v->map[i] + w;
		}
		a = na < plen ? na : plen;
		e = ne < plen ? ne : plen;
		if (a > e)
			a = e;
		vi = v->parent;
	}
	*rstart = a;
	*rlen = e - a;
}

static bool write_byte(const dview_set_t *set, int vi, uint32_t off, uint8_t c, dview_write_fn write, void *ctx,
		       bool dry)
{
	if (vi < 0)
		return write(ctx, off, c, dry);
	const dview_t *v = &set->v[vi];
	uint8_t enc[8];
	uint8_t w = v->width[off];
	if (!w || !dview_encode_char(v->kind, w, c, enc))
		return false;
	for (uint8_t k = 0; k < w; k++)
		if (!write_byte(set, v->parent, v->map[off] + k, enc[k], write, ctx, dry))
			return false;
	return true;
}

bool dview_redact(const dview_set_t *set, int vi, uint32_t start, uint32_t len, uint8_t keep_first,
		  uint8_t keep_last, dview_write_fn write, void *ctx, bool dry)
{
	const dview_t *v = &set->v[vi];
	if ((uint64_t)start + len > v->len)
		return false;
	char *t = malloc(len ? len : 1);
	if (!t)
		return false;
	memcpy(t, v->text + start, len);
	mask_inplace(t, len, keep_first, keep_last, '*');
	bool ok = true;
	/* every byte first without writing: all of it can be masked, or none is */
	for (int pass = 0; pass < (dry ? 1 : 2) && ok; pass++)
		for (uint32_t i = 0; i < len && ok; i++)
			if (t[i] != (char)v->text[start + i])
				ok = write_byte(set, vi, start + i, (uint8_t)t[i], write, ctx, pass == 0);
	free(t);
	return ok;
}
