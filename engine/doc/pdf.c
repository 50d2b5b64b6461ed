/*
 * pdf: the text a PDF shows, read by our own small reader.
 *
 * Why our own and not poppler, mupdf or qpdf: poppler (GPL-2, C++ behind
 * a GLib wrapper) and mupdf (AGPL) are whole renderers with a long CVE
 * history, and run in the gateway's address space on input from whoever
 * uploads; qpdf (Apache-2, C++) decodes streams but extracts no text. What
 * DLP needs is the strings a page shows, which live in content streams:
 * a bounded tokenizer over Flate-compressed (or unfiltered) streams with
 * zlib, already linked, is a few hundred lines, keeps every limit of
 * doc.h (streams count as members; inflation, ratio and time are
 * bounded), builds on macOS unchanged and has its own fuzz target.
 *
 * What it reads: every `stream ... endstream` whose dictionary asks for
 * no filter or FlateDecode alone, skipping images, fonts, XMP metadata,
 * cross-reference and object streams; in it the strings of the text
 * operators Tj, TJ, ' and " (literal strings with their escapes, hex
 * strings), a line break at T* and ET, a space at Td/TD/Tm and at a TJ
 * gap wider than a quarter em. Text in simple fonts (WinAnsi, Standard,
 * MacRoman: what generators write for Latin text) comes out as it reads.
 * What it does not: glyph ids of CID fonts without their ToUnicode map
 * (the bytes come out as they are), streams with other filters (reported
 * as unsupported, so the policy decides), encrypted PDFs (reported).
 */
#include "doc/doc_internal.h"

#include "core/hex.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static bool has(const uint8_t *d, size_t n, const char *what)
{
	return memmem(d, n, what, strlen(what)) != NULL;
}

static bool pdf_space(uint8_t c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == 0;
}

static bool pdf_delim(uint8_t c)
{
	return pdf_space(c) || c == '(' || c == ')' || c == '<' || c == '>' || c == '[' || c == ']' || c == '{' ||
	       c == '}' || c == '/' || c == '%';
}

#define PENDING_MAX 65536 /* string bytes held for the next operator */

typedef struct {
	uint8_t *b;
	size_t n;
} pending_t;

static void pend(pending_t *p, uint8_t c)
{
	if (p->n < PENDING_MAX)
		p->b[p->n++] = c;
}

/* A literal string at p (just past '('); returns where it ends. */
static const uint8_t *literal(const uint8_t *p, const uint8_t *end, pending_t *out)
{
	int depth = 1;
	while (p < end) {
		uint8_t c = *p++;
		if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0)
			return p;
		if (c != '\\') {
			pend(out, c);
			continue;
		}
		if (p == end)
			break;
		c = *p++;
		static const char esc_in[] = "nrtbf()\\", esc_out[] = "\n\r\t\b\f()\\";
		const char *e = memchr(esc_in, c, sizeof esc_in - 1);
		if (e) {
			pend(out, (uint8_t)esc_out[e - esc_in]);
		} else if (c >= '0' && c <= '7') {
			unsigned v = (unsigned)(c - '0');
			for (int k = 0; k < 2 && p < end && *p >= '0' && *p <= '7'; k++)
				v = v * 8 + (unsigned)(*p++ - '0');
			pend(out, (uint8_t)v);
		} else if (c == '\r') {
			if (p < end && *p == '\n')
				p++; /* a line continuation */
		} else if (c != '\n') {
			pend(out, c);
		}
	}
	return end;
}

/* A hex string at p (just past '<'). */
static const uint8_t *hexstring(const uint8_t *p, const uint8_t *end, pending_t *out)
{
	int hi = -1;
	for (; p < end && *p != '>'; p++) {
		int v = hex_value(*p);
		if (v < 0)
			continue;
		if (hi < 0)
			hi = v;
		else {
			pend(out, (uint8_t)(hi << 4 | v));
			hi = -1;
		}
	}
	if (hi >= 0)
		pend(out, (uint8_t)(hi << 4));
	return p < end ? p + 1 : end;
}

/* The text operators of one content stream. */
static void content_text(doc_set_t *s, doc_out_t *o, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	pending_t pd = {malloc(PENDING_MAX), 0};
	if (!pd.b) {
		doc_fail(s, DOC_LIMIT, "out of memory");
		return;
	}
	bool in_array = false;
	uint32_t steps = 0;
	while (p < end && o->ok) {
		if (++steps % 65536 == 0 && !doc_go_on(s))
			break;
		uint8_t c = *p;
		if (pdf_space(c)) {
			p++;
		} else if (c == '%') {
			while (p < end && *p != '\n' && *p != '\r')
				p++;
		} else if (c == '(') {
			p = literal(p + 1, end, &pd);
		} else if (c == '<' && p + 1 < end && p[1] == '<') {
			p += 2;
		} else if (c == '>' && p + 1 < end && p[1] == '>') {
			p += 2;
		} else if (c == '<') {
			p = hexstring(p + 1, end, &pd);
		} else if (c == '[') {
			in_array = true;
			p++;
		} else if (c == ']') {
			in_array = false;
			p++;
		} else if (c == '/') {
			for (p++; p < end && !pdf_delim(*p); p++)
				;
		} else if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.') {
			const uint8_t *q = p;
			for (p++; p < end && !pdf_delim(*p); p++)
				;
			/* a TJ gap wider than a quarter em is a space between words */
			char num[24];
			size_t k = (size_t)(p - q) < sizeof num - 1 ? (size_t)(p - q) : sizeof num - 1;
			memcpy(num, q, k);
			num[k] = '\0';
			if (in_array && strtod(num, NULL) < -250)
				pend(&pd, ' ');
		} else {
			const uint8_t *op = p;
			for (p++; p < end && !pdf_delim(*p); p++)
				;
			size_t on = (size_t)(p - op);
#define OP(s) (on == sizeof(s) - 1 && !memcmp(op, s, sizeof(s) - 1))
			if (OP("'") || OP("\""))
				doc_out_put(o, "\n", 1);
			if (OP("Tj") || OP("TJ") || OP("'") || OP("\"")) {
				doc_out_put(o, pd.b, pd.n);
			} else if (OP("T*") || OP("ET")) {
				doc_out_put(o, "\n", 1);
			} else if (OP("Td") || OP("TD") || OP("Tm")) {
				doc_out_put(o, " ", 1);
			} else if (OP("BI")) {
				/* an inline image: its data ends at EI */
				const uint8_t *ei = p;
				while ((ei = memmem(ei, (size_t)(end - ei), "EI", 2)) &&
				       !(pdf_space(ei[-1]) && (ei + 2 == end || pdf_space(ei[2]))))
					ei += 2;
				p = ei ? ei + 2 : end;
			}
#undef OP
			pd.n = 0;
			in_array = false;
		}
	}
	free(pd.b);
}

/* The stream's dictionary: from the "obj" that opens it to "stream". */
static void stream_dict(const uint8_t *d, const uint8_t *kw, const uint8_t **dict, size_t *dn)
{
	size_t back = (size_t)(kw - d) < 8192 ? (size_t)(kw - d) : 8192;
	const uint8_t *from = kw - back, *obj = NULL;
	for (const uint8_t *q = kw; q-- > from + 2;)
		if (q[0] == 'j' && q[-1] == 'b' && q[-2] == 'o') {
			obj = q + 1;
			break;
		}
	*dict = obj ? obj : from;
	*dn = (size_t)(kw - *dict);
}

static bool skipped_stream(const uint8_t *dict, size_t dn)
{
	static const char *const skip[] = {"/Image", "/XRef", "/ObjStm", "/Metadata", "/Length1", "/Length2",
					   "/Type1C", "/CIDFontType0C", "/OpenType", "/EmbeddedFile", NULL};
	for (int i = 0; skip[i]; i++)
		if (has(dict, dn, skip[i]))
			return true;
	return false;
}

void doc_pdf_read(doc_set_t *s, const char *path, const uint8_t *d, size_t n)
{
	if (has(d, n, "/Encrypt")) {
		doc_fail(s, DOC_ENCRYPTED, "%s: the PDF is encrypted", path);
		return;
	}
	doc_out_t o = {.s = s, .path = path, .ok = true};
	bytebuf_t buf;
	bytebuf_init(&buf, 0);
	const uint8_t *p = d, *end = d + n, *kw;
	while (o.ok && doc_go_on(s) && (kw = memmem(p, (size_t)(end - p), "stream", 6))) {
		p = kw + 6;
		/* the keyword, not the end of "endstream", then its end of line */
		if (kw > d && (kw[-1] == 'd' || !(pdf_space(kw[-1]) || kw[-1] == '>')))
			continue;
		const uint8_t *data = p;
		if (data < end && *data == '\r')
			data++;
		if (data < end && *data == '\n')
			data++;
		if (data == p)
			continue;
		const uint8_t *es = memmem(data, (size_t)(end - data), "endstream", 9);
		const uint8_t *data_end = es ? es : end;
		p = es ? es + 9 : end;
		if (data_end > data && data_end[-1] == '\n')
			data_end--;
		if (data_end > data && data_end[-1] == '\r')
			data_end--;
		const uint8_t *dict;
		size_t dn;
		stream_dict(d, kw, &dict, &dn);
		if (!doc_count_member(s, path))
			break;
		if (skipped_stream(dict, dn))
			continue;
		size_t len = (size_t)(data_end - data);
		if (!has(dict, dn, "/Filter")) {
			if (!doc_spend(s, path, len))
				break;
			content_text(s, &o, data, len);
			continue;
		}
		if (has(dict, dn, "/DCTDecode") || has(dict, dn, "/JPXDecode") || has(dict, dn, "/JBIG2Decode") ||
		    has(dict, dn, "/CCITTFaxDecode"))
			continue; /* pictures */
		if (!has(dict, dn, "/FlateDecode") || has(dict, dn, "/ASCII85Decode") || has(dict, dn, "/LZWDecode") ||
		    has(dict, dn, "/ASCIIHexDecode") || has(dict, dn, "/RunLengthDecode") || has(dict, dn, "/Crypt")) {
			doc_fail(s, DOC_UNSUPPORTED, "%s: a content stream uses a filter dlpgate does not read", path);
			break;
		}
		buf.len = 0;
		if (!doc_inflate(s, path, data, len, MAX_WBITS, s->lim.max_member, false, &buf, NULL))
			break;
		content_text(s, &o, (const uint8_t *)buf.data, buf.len);
	}
	bytebuf_free(&buf);
	doc_out_flush(&o);
	doc_emit_end(s);
}
