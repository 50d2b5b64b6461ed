/*
 * body: decoding with zlib and brotli under limits, views with maps back
 * to the body, and width-preserving redaction. See body.h.
 */
#include "http/body.h"

#include "core/utf8.h"
#include "detect/mask.h"
#include "detect/views.h"
#include "http/head.h"

#include <brotli/decode.h>
#include <ctype.h>
#include <zstd.h>
#include <zstd_errors.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

const char *body_status_name(body_status_t s)
{
	switch (s) {
	case BODY_OK: return "ok";
	case BODY_TRUNCATED: return "truncated";
	case BODY_BOMB: return "decompression-bomb";
	case BODY_UNSUPPORTED: return "unsupported-encoding";
	case BODY_CORRUPT: return "corrupt-encoding";
	}
	return "?";
}

/* ---- Content-Encoding ---- */

typedef enum { CODING_IDENTITY, CODING_GZIP, CODING_DEFLATE, CODING_BR, CODING_ZSTD, CODING_OTHER } coding_t;

static coding_t coding_of(const char *t, size_t n)
{
	if (n == 8 && !strncasecmp(t, "identity", 8))
		return CODING_IDENTITY;
	if ((n == 4 && !strncasecmp(t, "gzip", 4)) || (n == 6 && !strncasecmp(t, "x-gzip", 6)))
		return CODING_GZIP;
	if (n == 7 && !strncasecmp(t, "deflate", 7))
		return CODING_DEFLATE;
	if (n == 2 && !strncasecmp(t, "br", 2))
		return CODING_BR;
	if (n == 4 && !strncasecmp(t, "zstd", 4))
		return CODING_ZSTD;
	return CODING_OTHER;
}

/* The codings in the order they were applied; returns how many, or -1 if
 * there are more than cap. */
static int parse_codings(const char *ce, size_t n, coding_t *out, int cap)
{
	int k = 0;
	const char *p = ce, *end = ce + n, *s;
	size_t sl;
	while (http_list_next(&p, end, &s, &sl)) {
		coding_t c = coding_of(s, sl);
		if (c == CODING_IDENTITY)
			continue;
		if (k == cap)
			return -1;
		out[k++] = c;
	}
	return k;
}

bool body_is_encoded(const char *ce, size_t n)
{
	coding_t c[4];
	return ce && parse_codings(ce, n, c, 4) != 0;
}

/* Keeps what a decoder step produced, within max_out, and stops a bomb:
 * BODY_OK to go on. consumed is the input read so far. */
static body_status_t keep_output(bytebuf_t *out, const uint8_t *chunk, size_t got, uint64_t max_out, uint64_t consumed,
				 uint32_t ratio, const char **why)
{
	size_t room = out->len < max_out ? (size_t)(max_out - out->len) : 0;
	if (!bytebuf_append(out, chunk, got < room ? got : room)) {
		*why = "out of memory";
		return BODY_CORRUPT;
	}
	if (got > room)
		return BODY_TRUNCATED;
	if (out->len > 65536 && out->len / (consumed + 1) > ratio) {
		*why = "expands more than limits allow (ratio)";
		return BODY_BOMB;
	}
	return BODY_OK;
}

/* The largest zstd window a sender may ask for: RFC 8878 tells decoders to
 * support 8 MiB and lets them refuse more, so a frame cannot make us
 * allocate more than that for its history. */
#define ZSTD_MAX_WINDOW_LOG 23

/* zstd, one or more frames back to back (RFC 8878, 3.1). */
static body_status_t unzstd_layer(const uint8_t *in, size_t n, bytebuf_t *out, uint64_t max_out, uint32_t ratio,
				  const char **why)
{
	ZSTD_DCtx *z = ZSTD_createDCtx();
	if (!z || ZSTD_isError(ZSTD_DCtx_setParameter(z, ZSTD_d_windowLogMax, ZSTD_MAX_WINDOW_LOG))) {
		ZSTD_freeDCtx(z);
		*why = "out of memory";
		return BODY_CORRUPT;
	}
	uint8_t chunk[16384];
	ZSTD_inBuffer src = {in, n, 0};
	body_status_t rc = BODY_OK;
	size_t hint = 1;
	while (rc == BODY_OK) {
		ZSTD_outBuffer dst = {chunk, sizeof chunk, 0};
		hint = ZSTD_decompressStream(z, &dst, &src);
		if (ZSTD_isError(hint)) {
			*why = ZSTD_getErrorCode(hint) == ZSTD_error_frameParameter_windowTooLarge
				       ? "zstd frame asks for a window larger than 8 MiB"
				       : "zstd data is corrupt";
			rc = BODY_CORRUPT;
			break;
		}
		rc = keep_output(out, chunk, dst.pos, max_out, src.pos, ratio, why);
		/* done: all input read and the last frame complete (hint 0), with
		 * nothing left buffered inside the decoder (output not full) */
		if (src.pos == src.size && dst.pos < dst.size)
			break;
	}
	ZSTD_freeDCtx(z);
	if (rc == BODY_OK && hint != 0) {
		*why = "zstd data is cut short";
		rc = BODY_CORRUPT;
	}
	return rc;
}

/* One layer: in -> out, stopping at max_out decoded bytes. */
static body_status_t inflate_layer(coding_t c, const uint8_t *in, size_t n, bytebuf_t *out, uint64_t max_out,
				   uint32_t ratio, const char **why)
{
	uint8_t chunk[16384];
	if (c == CODING_ZSTD)
		return unzstd_layer(in, n, out, max_out, ratio, why);
	if (c == CODING_BR) {
		BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
		if (!st) {
			*why = "out of memory";
			return BODY_CORRUPT;
		}
		size_t avail_in = n, total = 0;
		const uint8_t *next_in = in;
		body_status_t rc = BODY_OK;
		for (;;) {
			size_t avail_out = sizeof chunk;
			uint8_t *next_out = chunk;
			BrotliDecoderResult r =
				BrotliDecoderDecompressStream(st, &avail_in, &next_in, &avail_out, &next_out, &total);
			rc = keep_output(out, chunk, sizeof chunk - avail_out, max_out, n - avail_in, ratio, why);
			if (rc != BODY_OK || r == BROTLI_DECODER_RESULT_SUCCESS)
				break;
			if (r == BROTLI_DECODER_RESULT_ERROR || (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)) {
				*why = r == BROTLI_DECODER_RESULT_ERROR ? "brotli data is corrupt" : "brotli data is cut short";
				rc = BODY_CORRUPT;
				break;
			}
		}
		BrotliDecoderDestroyInstance(st);
		return rc;
	}
	/* gzip (with header) or deflate (zlib-wrapped, or raw as some send) */
	for (int attempt = 0; attempt < 2; attempt++) {
		size_t start_len = out->len;
		z_stream z;
		memset(&z, 0, sizeof z);
		int wbits = c == CODING_GZIP ? 16 + MAX_WBITS : attempt == 0 ? MAX_WBITS : -MAX_WBITS;
		if (inflateInit2(&z, wbits) != Z_OK) {
			*why = "out of memory";
			return BODY_CORRUPT;
		}
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
		body_status_t rc = BODY_OK;
		int r;
		do {
			z.next_out = chunk;
			z.avail_out = sizeof chunk;
			r = inflate(&z, Z_NO_FLUSH);
			rc = keep_output(out, chunk, sizeof chunk - z.avail_out, max_out, z.total_in, ratio, why);
		} while (rc == BODY_OK && r == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
		inflateEnd(&z);
		if (rc != BODY_OK)
			return rc;
		if (r == Z_STREAM_END)
			return BODY_OK;
		if (c == CODING_DEFLATE && attempt == 0 && r == Z_DATA_ERROR) {
			out->len = start_len; /* try raw deflate */
			continue;
		}
		*why = r == Z_BUF_ERROR || r == Z_OK ? "compressed data is cut short" : "compressed data is corrupt";
		return BODY_CORRUPT;
	}
	*why = "compressed data is corrupt";
	return BODY_CORRUPT;
}

/* Within the layer limit, and every coding one we can undo. */
static body_status_t codings_allowed(const coding_t *layers, int k, const body_limits_t *lim, const char **why)
{
	if (k < 0 || (uint32_t)k > lim->max_layers) {
		*why = "more Content-Encoding layers than limits allow";
		return BODY_BOMB;
	}
	for (int i = 0; i < k; i++)
		if (layers[i] == CODING_OTHER) {
			*why = "a Content-Encoding dlpgate cannot decode";
			return BODY_UNSUPPORTED;
		}
	return BODY_OK;
}

body_status_t body_decode(const char *ce, size_t ce_len, const uint8_t *raw, size_t n, const body_limits_t *lim,
			  bytebuf_t *out, const char **why)
{
	coding_t layers[8];
	int k = ce ? parse_codings(ce, ce_len, layers, 8) : 0;
	*why = NULL;
	body_status_t ok = codings_allowed(layers, k, lim, why);
	if (ok != BODY_OK)
		return ok;
	out->len = 0;
	if (k == 0) {
		size_t keep = n > lim->max_bytes ? (size_t)lim->max_bytes : n;
		if (!bytebuf_append(out, raw, keep)) {
			*why = "out of memory";
			return BODY_CORRUPT;
		}
		return keep < n ? BODY_TRUNCATED : BODY_OK;
	}
	/* Undo the last applied first. Intermediate layers get the same
	 * limits: a bomb inside a bomb stops at the first. */
	bytebuf_t cur, next;
	bytebuf_init(&cur, 0);
	bytebuf_init(&next, 0);
	const uint8_t *src = raw;
	size_t src_n = n;
	body_status_t st = BODY_OK;
	for (int i = k - 1; i >= 0; i--) {
		next.len = 0;
		st = inflate_layer(layers[i], src, src_n, &next, lim->max_bytes, lim->max_ratio ? lim->max_ratio : 200,
				   why);
		bytebuf_t t = cur;
		cur = next;
		next = t;
		src = (const uint8_t *)cur.data;
		src_n = cur.len;
		if (st != BODY_OK)
			break;
	}
	if ((st == BODY_OK || st == BODY_TRUNCATED) && (!out->cap || cur.len <= out->cap)) {
		/* the decoded bytes move into out; copying them would double the
		 * memory and the time of every decoded body */
		size_t cap = out->cap;
		bytebuf_free(out);
		*out = cur;
		out->cap = cap;
		bytebuf_init(&cur, 0);
	} else if (st == BODY_OK || st == BODY_TRUNCATED) {
		*why = "out of memory"; /* past the caller's own cap */
		st = BODY_CORRUPT;
	}
	bytebuf_free(&cur);
	bytebuf_free(&next);
	return st;
}

bool body_gzip(const void *in, size_t n, bytebuf_t *out)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return false;
	size_t bound = deflateBound(&z, (uLong)n) + 32;
	bool ok = bytebuf_reserve(out, bound);
	if (ok) {
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)n;
		z.next_out = (Bytef *)out->data + out->len;
		z.avail_out = (uInt)bound;
		ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
		out->len += z.total_out;
	}
	deflateEnd(&z);
	return ok;
}

/* ---- views ---- */

static bool param_value(const char *ct, size_t n, const char *param, char *out, size_t cap)
{
	size_t pl = strlen(param);
	for (size_t i = 0; i + pl + 1 < n; i++) {
		if ((i == 0 || ct[i - 1] == ';' || ct[i - 1] == ' ' || ct[i - 1] == '\t') && !strncasecmp(ct + i, param, pl) &&
		    ct[i + pl] == '=') {
			const char *v = ct + i + pl + 1, *end = ct + n;
			size_t k = 0;
			if (v < end && *v == '"') {
				v++;
				while (v < end && *v != '"' && k + 1 < cap)
					out[k++] = *v++;
			} else {
				while (v < end && *v != ';' && *v != ' ' && *v != '\t' && k + 1 < cap)
					out[k++] = *v++;
			}
			out[k] = '\0';
			return k > 0;
		}
	}
	return false;
}

static bool type_is(const char *ct, size_t n, const char *type)
{
	size_t tl = strlen(type);
	return n >= tl && !strncasecmp(ct, type, tl) && (n == tl || ct[tl] == ';' || ct[tl] == ' ');
}

static bool json_type(const char *ct, size_t n)
{
	if (type_is(ct, n, "application/json") || type_is(ct, n, "text/json"))
		return true;
	/* application/<something>+json */
	for (size_t i = 0; i + 5 <= n && ct[i] != ';'; i++)
		if (!strncasecmp(ct + i, "+json", 5))
			return true;
	return false;
}

static bool view_alloc(body_view_t *v, size_t n)
{
	v->map = malloc((n ? n : 1) * sizeof *v->map);
	v->width = malloc(n ? n : 1);
	return v->map && v->width && bytebuf_reserve(&v->own, n ? n : 1);
}

/* The form and JSON readings are the views module's decoders (the same
 * ones that read URL-encoding and JSON escapes inside any text), so the
 * body's view and the views of it rewrite their sources the same way. */
static bool view_form(body_view_t *v, const uint8_t *b, size_t n)
{
	if (!view_alloc(v, n))
		return false;
	v->own.len = dview_decode_url(b, n, true, (uint8_t *)v->own.data, v->map, v->width);
	return true;
}

static bool view_json(body_view_t *v, const uint8_t *b, size_t n)
{
	if (!view_alloc(v, n))
		return false;
	v->own.len = dview_decode_json(b, n, (uint8_t *)v->own.data, v->map, v->width);
	return true;
}

static void copy_field(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static const uint8_t *find(const uint8_t *h, size_t hn, const char *needle, size_t nn)
{
	if (nn == 0 || hn < nn)
		return NULL;
	return memmem(h, hn, needle, nn);
}

static void view_multipart(body_view_t *v, const char *ct, size_t ct_len, const uint8_t *b, size_t n)
{
	char boundary[200];
	if (!param_value(ct, ct_len, "boundary", boundary, sizeof boundary))
		return;
	char delim[206];
	int dl = snprintf(delim, sizeof delim, "--%s", boundary);
	v->parts = calloc(BODY_MAX_PARTS, sizeof *v->parts);
	if (!v->parts)
		return;
	const uint8_t *p = find(b, n, delim, (size_t)dl), *end = b + n;
	while (p) {
		p += dl;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			break; /* closing delimiter */
		const uint8_t *hdr = find(p, (size_t)(end - p), "\r\n", 2);
		if (!hdr)
			break;
		hdr += 2;
		const uint8_t *hend = find(hdr, (size_t)(end - hdr), "\r\n\r\n", 4);
		if (!hend)
			break;
		const uint8_t *data = hend + 4;
		char nd[210];
		int ndl = snprintf(nd, sizeof nd, "\r\n%s", delim);
		const uint8_t *next = find(data, (size_t)(end - data), nd, (size_t)ndl);
		const uint8_t *data_end = next ? next : end;
		if (v->n_parts == BODY_MAX_PARTS) {
			v->parts_truncated = true;
			break;
		}
		body_part_t *part = &v->parts[v->n_parts++];
		part->off = (uint32_t)(data - b);
		part->len = (uint32_t)(data_end - data);
		/* part headers, one per line */
		for (const uint8_t *line = hdr; line < hend;) {
			const uint8_t *eol = find(line, (size_t)(hend + 2 - line), "\r\n", 2);
			if (!eol)
				eol = hend;
			size_t ll = (size_t)(eol - line);
			if (ll > 20 && !strncasecmp((const char *)line, "content-disposition:", 20)) {
				char tmp[512];
				copy_field(tmp, sizeof tmp, (const char *)line + 20, ll - 20);
				param_value(tmp, strlen(tmp), "name", part->name, sizeof part->name);
				param_value(tmp, strlen(tmp), "filename", part->filename, sizeof part->filename);
			} else if (ll > 26 && !strncasecmp((const char *)line, "content-transfer-encoding:", 26)) {
				char tmp[64];
				copy_field(tmp, sizeof tmp, (const char *)line + 26, ll - 26);
				part->quoted_printable = strcasestr(tmp, "quoted-printable") != NULL;
			} else if (ll > 13 && !strncasecmp((const char *)line, "content-type:", 13)) {
				const char *t = (const char *)line + 13;
				size_t tl = ll - 13;
				while (tl && (*t == ' ' || *t == '\t'))
					t++, tl--;
				copy_field(part->content_type, sizeof part->content_type, t, tl);
			}
			line = eol + 2;
		}
		p = next ? next + 2 : NULL;
	}
}

/* Views go by what the bytes are as well as by what the sender declared:
 * a JSON or form body sent as text/plain or application/octet-stream is
 * read as JSON or as a form all the same (its escapes hide what it holds
 * otherwise). JSON: it opens with { or [ and has a string escape to
 * resolve. A form: see sniff_form. Anything else with escapes in it
 * still gets its decoded views (detect/views.h). */
static bool sniff_json(const uint8_t *b, size_t n)
{
	size_t i = 0;
	while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
		i++;
	return i < n && (b[i] == '{' || b[i] == '[') && memchr(b, '\\', n) && memchr(b, '"', n);
}

/* What a form serializer leaves as it is: letters, digits, *-._ and '+'
 * for a space; everything else is %XX. A body of nothing else but
 * name=value pairs joined by '&' is a form whatever its type says. */
static bool form_byte(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '*' || c == '-' ||
	       c == '.' || c == '_' || c == '+' || c == '%';
}

static bool sniff_form(const uint8_t *b, size_t n)
{
	bool encoded = false, in_value = false;
	size_t name = 0;
	while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
		n--; /* a final line break (curl -d @file) */
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = b[i];
		if (c == '&') {
			if (!in_value && name)
				return false;
			in_value = false;
			name = 0;
		} else if (c == '=' && !in_value && name) {
			in_value = true;
		} else if (form_byte(c) || c == '[' || c == ']') { /* a[]=1: PHP's arrays */
			if (c == '%' && !(i + 2 < n && isxdigit(b[i + 1]) && isxdigit(b[i + 2])))
				return false;
			encoded |= c == '%' || c == '+';
			name += !in_value;
		} else {
			return false;
		}
	}
	return encoded && (in_value || !name);
}

bool body_view_build(body_view_t *v, const char *ct, size_t ct_len, const uint8_t *b, size_t n)
{
	memset(v, 0, sizeof *v);
	bytebuf_init(&v->own, 0);
	v->text = b;
	v->len = n;
	if (!ct)
		ct = "", ct_len = 0;
	bool ok = true;
	if (type_is(ct, ct_len, "multipart/form-data") || type_is(ct, ct_len, "multipart/mixed")) {
		v->kind = VIEW_MULTIPART;
		view_multipart(v, ct, ct_len, b, n);
	} else if (type_is(ct, ct_len, "application/x-www-form-urlencoded") ||
		   (!json_type(ct, ct_len) && sniff_form(b, n))) {
		v->kind = VIEW_FORM;
		ok = view_form(v, b, n);
	} else if (json_type(ct, ct_len) || sniff_json(b, n)) {
		v->kind = VIEW_JSON;
		ok = view_json(v, b, n);
	}
	if (!ok) {
		body_view_free(v);
		return false;
	}
	if (v->map) {
		v->text = (const uint8_t *)v->own.data;
		v->len = v->own.len;
	}
	return true;
}

void body_view_free(body_view_t *v)
{
	bytebuf_free(&v->own);
	free(v->map);
	free(v->width);
	free(v->parts);
	memset(v, 0, sizeof *v);
}

/* The encoding the view's map undoes, for rewriting a byte of it. */
static dview_kind_t view_encoding(const body_view_t *v)
{
	return v->kind == VIEW_JSON ? DVIEW_JSON : DVIEW_FORM;
}

bool body_view_write(const body_view_t *v, uint8_t *body, uint32_t off, uint8_t c, bool dry)
{
	if (off >= v->len)
		return false;
	if (!v->map) {
		if (!dry)
			body[off] = c;
		return true;
	}
	uint8_t enc[8];
	uint8_t w = v->width[off];
	if (!w || !dview_encode_char(view_encoding(v), w, c, enc))
		return false;
	if (!dry)
		memcpy(body + v->map[off], enc, w);
	return true;
}

void body_view_redact(const body_view_t *v, uint8_t *body, uint32_t start, uint32_t len, uint8_t keep_first,
		      uint8_t keep_last)
{
	if ((size_t)start + len > v->len)
		return;
	if (!v->map) {
		mask_inplace((char *)body + start, len, keep_first, keep_last, '*');
		return;
	}
	char *t = malloc(len ? len : 1);
	if (!t)
		return;
	memcpy(t, v->text + start, len);
	mask_inplace(t, len, keep_first, keep_last, '*');
	/* each masked character is rewritten in its source, same width */
	for (uint32_t i = 0; i < len; i++)
		if (t[i] != (char)v->text[start + i])
			body_view_write(v, body, start + i, (uint8_t)t[i], false);
	free(t);
}

/* ---- streaming decoder (a body's tail past inspect.max_bytes) ---- */

typedef struct {
	coding_t c;
	bool started, done;
	uint8_t hold[2], n_hold; /* deflate: the first bytes, until zlib or raw is told */
	z_stream z;
	BrotliDecoderState *br;
	ZSTD_DCtx *zs;
} layer_t;

struct body_decoder {
	layer_t layer[8]; /* layer[0] undone first (the last applied) */
	int n;
	uint32_t max_ratio;
	uint64_t in_total, out_total;
	bytebuf_t stage[2]; /* between layers */
};

body_status_t body_decoder_new(const char *ce, size_t ce_len, const body_limits_t *lim, body_decoder_t **out,
			       const char **why)
{
	coding_t layers[8];
	int k = ce ? parse_codings(ce, ce_len, layers, 8) : 0;
	*out = NULL;
	*why = NULL;
	body_status_t ok = codings_allowed(layers, k, lim, why);
	if (ok != BODY_OK)
		return ok;
	body_decoder_t *d = calloc(1, sizeof *d);
	if (!d) {
		*why = "out of memory";
		return BODY_CORRUPT;
	}
	d->n = k;
	d->max_ratio = lim->max_ratio ? lim->max_ratio : 200;
	for (int i = 0; i < k; i++)
		d->layer[i].c = layers[k - 1 - i];
	bytebuf_init(&d->stage[0], 0);
	bytebuf_init(&d->stage[1], 0);
	*out = d;
	return BODY_OK;
}

static body_status_t layer_start(layer_t *l, const uint8_t *in, size_t n, const char **why)
{
	if (l->c == CODING_BR) {
		l->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
		if (!l->br)
			goto oom;
	} else if (l->c == CODING_ZSTD) {
		l->zs = ZSTD_createDCtx();
		if (!l->zs || ZSTD_isError(ZSTD_DCtx_setParameter(l->zs, ZSTD_d_windowLogMax, ZSTD_MAX_WINDOW_LOG)))
			goto oom;
	} else {
		int wbits = 16 + MAX_WBITS;
		if (l->c == CODING_DEFLATE) {
			/* zlib-wrapped (RFC 9110) or raw, as some send: a zlib
			 * header is a multiple of 31 with method 8 */
			if (n < 2)
				return BODY_OK; /* decide when two bytes are in */
			bool zlib = (in[0] & 0x0f) == 8 && ((in[0] << 8) | in[1]) % 31 == 0;
			wbits = zlib ? MAX_WBITS : -MAX_WBITS;
		}
		if (inflateInit2(&l->z, wbits) != Z_OK)
			goto oom;
	}
	l->started = true;
	return BODY_OK;
oom:
	*why = "out of memory";
	return BODY_CORRUPT;
}

/* One layer: in -> out (appended). */
static body_status_t layer_feed(layer_t *l, const uint8_t *in, size_t n, bytebuf_t *out, const char **why)
{
	uint8_t chunk[16384];
	if (!l->started && l->c == CODING_DEFLATE && l->n_hold + n < 2) {
		if (n)
			l->hold[l->n_hold++] = in[0];
		return BODY_OK;
	}
	if (!l->started) {
		uint8_t head[2];
		size_t k = 0;
		for (; k < l->n_hold; k++)
			head[k] = l->hold[k];
		for (size_t j = 0; k < 2 && j < n; k++, j++)
			head[k] = in[j];
		body_status_t st = layer_start(l, head, k, why);
		if (st != BODY_OK)
			return st;
		if (l->n_hold) {
			/* the held byte first, then the rest */
			uint8_t held = l->hold[0];
			l->n_hold = 0;
			st = layer_feed(l, &held, 1, out, why);
			if (st != BODY_OK)
				return st;
		}
	}
	if (l->done && l->c != CODING_ZSTD) { /* zstd: frames may follow frames */
		if (n) {
			*why = "data after the end of the compressed stream";
			return BODY_CORRUPT;
		}
		return BODY_OK;
	}
	if (l->c == CODING_BR) {
		size_t avail_in = n;
		const uint8_t *next_in = in;
		for (;;) {
			size_t avail_out = sizeof chunk;
			uint8_t *next_out = chunk;
			BrotliDecoderResult r = BrotliDecoderDecompressStream(l->br, &avail_in, &next_in, &avail_out, &next_out, NULL);
			if (!bytebuf_append(out, chunk, sizeof chunk - avail_out))
				goto oom;
			if (r == BROTLI_DECODER_RESULT_SUCCESS) {
				l->done = true;
				return avail_in ? (*why = "data after the end of the brotli stream", BODY_CORRUPT) : BODY_OK;
			}
			if (r == BROTLI_DECODER_RESULT_ERROR) {
				*why = "brotli data is corrupt";
				return BODY_CORRUPT;
			}
			if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)
				return BODY_OK;
		}
	}
	if (l->c == CODING_ZSTD) {
		ZSTD_inBuffer src = {in, n, 0};
		for (;;) {
			ZSTD_outBuffer dst = {chunk, sizeof chunk, 0};
			size_t hint = ZSTD_decompressStream(l->zs, &dst, &src);
			if (ZSTD_isError(hint)) {
				*why = "zstd data is corrupt";
				return BODY_CORRUPT;
			}
			if (!bytebuf_append(out, chunk, dst.pos))
				goto oom;
			if (src.pos == src.size && dst.pos < dst.size) {
				l->done = hint == 0; /* the last frame is complete */
				return BODY_OK;
			}
		}
	}
	l->z.next_in = (Bytef *)in;
	l->z.avail_in = (uInt)n;
	for (;;) {
		l->z.next_out = chunk;
		l->z.avail_out = sizeof chunk;
		int r = inflate(&l->z, Z_NO_FLUSH);
		if (!bytebuf_append(out, chunk, sizeof chunk - l->z.avail_out))
			goto oom;
		if (r == Z_STREAM_END) {
			l->done = true;
			if (l->z.avail_in) {
				*why = "data after the end of the compressed stream";
				return BODY_CORRUPT;
			}
			return BODY_OK;
		}
		if (r != Z_OK && r != Z_BUF_ERROR) {
			*why = "compressed data is corrupt";
			return BODY_CORRUPT;
		}
		if (l->z.avail_in == 0 && l->z.avail_out != 0)
			return BODY_OK;
		if (r == Z_BUF_ERROR && l->z.avail_in == 0)
			return BODY_OK;
	}
oom:
	*why = "out of memory";
	return BODY_CORRUPT;
}

body_status_t body_decoder_feed(body_decoder_t *d, const uint8_t *in, size_t n, bytebuf_t *out, const char **why)
{
	*why = NULL;
	d->in_total += n;
	const uint8_t *src = in;
	size_t src_n = n;
	size_t before = out->len;
	for (int i = 0; i < d->n; i++) {
		bool last = i == d->n - 1;
		bytebuf_t *dst = last ? out : &d->stage[i & 1];
		if (!last)
			dst->len = 0;
		body_status_t st = layer_feed(&d->layer[i], src, src_n, dst, why);
		if (st != BODY_OK)
			return st;
		src = (const uint8_t *)dst->data;
		src_n = dst->len;
	}
	if (d->n == 0 && !bytebuf_append(out, in, n)) {
		*why = "out of memory";
		return BODY_CORRUPT;
	}
	d->out_total += out->len - before;
	if (d->out_total > 65536 && d->out_total / (d->in_total + 1) > d->max_ratio) {
		*why = "expands more than limits allow (ratio)";
		return BODY_BOMB;
	}
	return BODY_OK;
}

bool body_decoder_done(const body_decoder_t *d)
{
	for (int i = 0; i < d->n; i++)
		if (!d->layer[i].done)
			return false;
	return true;
}

void body_decoder_free(body_decoder_t *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->n; i++) {
		layer_t *l = &d->layer[i];
		if (!l->started)
			continue;
		if (l->br)
			BrotliDecoderDestroyInstance(l->br);
		else if (l->zs)
			ZSTD_freeDCtx(l->zs);
		else
			inflateEnd(&l->z);
	}
	bytebuf_free(&d->stage[0]);
	bytebuf_free(&d->stage[1]);
	free(d);
}
