/*
 * xml: the character data of an XML member, as a person reads it.
 *
 * Not a validating parser: a tokenizer that keeps text and CDATA, drops
 * tags, attributes, comments, processing instructions and declarations,
 * and decodes the five named entities and numeric references. Word splits
 * one typed number over several runs (<w:t>4111 1111</w:t>...<w:t> 1111
 * 1111</w:t>), so runs join with nothing between them; elements that end a
 * paragraph, a row or a cell (w:p, a:p, text:p, text:h, row, c, si, tc,
 * table-cell, br, ...) end a line, and tabs and ODF's <text:s/> are a
 * space. Element nesting past max_xml_depth is a limit (a billion-laughs
 * style document needs entities we never expand, but depth costs nothing
 * to bound).
 */
#include "doc/doc_internal.h"

#include "core/utf8.h"

#include <string.h>

/* local names (after any prefix) whose end is the end of a line */
static bool ends_line(const uint8_t *name, size_t n)
{
	static const char *const names[] = {"p", "h", "br", "cr", "tr", "row", "c", "si", "tc", "table-cell",
					    "table-row", "list-item", "line-break", "li", "div", "td", "th", NULL};
	for (int i = 0; names[i]; i++)
		if (strlen(names[i]) == n && !memcmp(names[i], name, n))
			return true;
	return false;
}

static bool is_space_elem(const uint8_t *name, size_t n)
{
	return (n == 3 && !memcmp(name, "tab", 3)) || (n == 1 && name[0] == 's');
}

static void put_cp(doc_out_t *o, uint32_t cp)
{
	uint8_t u[4];
	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
		cp = 0xfffd;
	doc_out_put(o, u, utf8_encode(cp, u));
}

/* An entity at p (after '&'); returns the bytes it took, 0 if it is none. */
static size_t entity(doc_out_t *o, const uint8_t *p, const uint8_t *end)
{
	const uint8_t *semi = memchr(p, ';', (size_t)(end - p) < 12 ? (size_t)(end - p) : 12);
	if (!semi)
		return 0;
	size_t n = (size_t)(semi - p);
	static const struct {
		const char *name;
		char c;
	} named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
		if (strlen(named[i].name) == n && !memcmp(p, named[i].name, n)) {
			doc_out_put(o, (const uint8_t *)&named[i].c, 1);
			return n + 1;
		}
	if (n >= 2 && p[0] == '#') {
		uint32_t cp = 0;
		bool hex = p[1] == 'x' || p[1] == 'X';
		size_t i = hex ? 2 : 1;
		if (i == n)
			return 0;
		for (; i < n; i++) {
			uint8_t c = p[i];
			int v = c >= '0' && c <= '9' ? c - '0'
				: hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
				: hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
							       : -1;
			if (v < 0 || cp > 0x10ffff)
				return 0;
			cp = cp * (hex ? 16 : 10) + (uint32_t)v;
		}
		put_cp(o, cp);
		return n + 1;
	}
	return 0;
}

static const uint8_t *skip_to(const uint8_t *p, const uint8_t *end, const char *what)
{
	const uint8_t *at = memmem(p, (size_t)(end - p), what, strlen(what));
	return at ? at + strlen(what) : end;
}

void doc_xml_read(doc_set_t *s, const char *path, const uint8_t *d, size_t n)
{
	doc_out_t o = {.s = s, .path = path, .ok = true};
	uint32_t steps = 0;
	const uint8_t *p = d, *end = d + n;
	uint32_t depth = 0;
	while (p < end && o.ok) {
		if (*p == '&') {
			size_t k = entity(&o, p + 1, end);
			if (!k)
				doc_out_put(&o, p, 1);
			p += 1 + k;
			continue;
		}
		if (*p != '<') {
			const uint8_t *q = p;
			while (q < end && *q != '<' && *q != '&')
				q++;
			doc_out_put(&o, p, (size_t)(q - p));
			p = q;
			continue;
		}
		/* markup */
		size_t left = (size_t)(end - p);
		if (left >= 4 && !memcmp(p, "<!--", 4)) {
			p = skip_to(p + 4, end, "-->");
		} else if (left >= 9 && !memcmp(p, "<![CDATA[", 9)) {
			const uint8_t *q = memmem(p + 9, left - 9, "]]>", 3);
			const uint8_t *stop = q ? q : end;
			doc_out_put(&o, p + 9, (size_t)(stop - p - 9));
			p = q ? q + 3 : end;
		} else if (left >= 2 && (p[1] == '?' || p[1] == '!')) {
			p = skip_to(p + 2, end, ">");
		} else {
			bool closing = left >= 2 && p[1] == '/';
			const uint8_t *name = p + 1 + closing, *q = name;
			while (q < end && *q != '>' && *q != '/' && *q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
				q++;
			const uint8_t *colon = memchr(name, ':', (size_t)(q - name));
			const uint8_t *local = colon ? colon + 1 : name;
			size_t ln = (size_t)(q - local);
			/* to the tag's end, past quoted attribute values */
			uint8_t quote = 0;
			while (q < end && (quote || *q != '>')) {
				if (quote && *q == quote)
					quote = 0;
				else if (!quote && (*q == '"' || *q == '\''))
					quote = *q;
				q++;
			}
			bool self = q > p && q[-1] == '/';
			p = q < end ? q + 1 : end;
			if (closing) {
				if (depth)
					depth--;
			} else if (!self && ++depth > s->lim.max_xml_depth) {
				doc_out_flush(&o);
				doc_fail(s, DOC_LIMIT, "%s: XML nested more than %u deep", path, s->lim.max_xml_depth);
				return;
			}
			if ((closing || self) && ends_line(local, ln))
				doc_out_put(&o, (const uint8_t *)"\n", 1);
			else if (is_space_elem(local, ln))
				doc_out_put(&o, (const uint8_t *)" ", 1);
		}
		if (++steps % 4096 == 0 && !doc_go_on(s))
			break;
	}
	doc_out_flush(&o);
	doc_emit_end(s);
}
