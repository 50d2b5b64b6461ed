/*
 * zip: the central directory, checked against every local header, and the
 * members it names (APPNOTE.TXT 6.3).
 *
 * The central directory is the archive's table of contents, the local
 * headers are what a streaming reader sees; a sender who wants a member
 * unseen makes them disagree. So each member must agree in both places
 * (name, method, encryption flag) and lie inside the archive before the
 * directory, and no two members' bytes may overlap: the overlapping-member
 * bomb (one deflate stream named by thousands of entries, 42 KB for 4.5 PB)
 * is refused before anything is inflated. Declared sizes are checked
 * against max_member, max_total and max_ratio first, and inflation stops
 * at the declared size: a member that inflates past it is corrupt.
 */
#include "doc/doc_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

typedef struct {
	uint64_t start, end; /* local header to end of data */
	uint32_t csize, usize;
	uint32_t entry;      /* central directory order */
} span_t;

static int span_cmp(const void *a, const void *b)
{
	const span_t *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

#define EOCD_MIN 22

void doc_zip_read(doc_set_t *s, const char *path, const uint8_t *d, size_t n, uint32_t depth)
{
	if (n < EOCD_MIN) {
		doc_fail(s, DOC_CORRUPT, "%s: not a complete zip (no end of central directory)", path);
		return;
	}
	/* the end record, searched back over at most a 64 KiB comment */
	size_t eocd = SIZE_MAX;
	size_t lo = n > EOCD_MIN + 65535 ? n - EOCD_MIN - 65535 : 0;
	for (size_t i = n - EOCD_MIN + 1; i-- > lo;)
		if (d[i] == 'P' && d[i + 1] == 'K' && d[i + 2] == 5 && d[i + 3] == 6) {
			eocd = i;
			break;
		}
	if (eocd == SIZE_MAX) {
		doc_fail(s, DOC_CORRUPT, "%s: not a complete zip (no end of central directory)", path);
		return;
	}
	const uint8_t *e = d + eocd;
	uint16_t disk = le16(e + 4), cd_disk = le16(e + 6), on_disk = le16(e + 8), total = le16(e + 10);
	uint32_t cd_size = le32(e + 12), cd_off = le32(e + 16);
	if (total == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu ||
	    (eocd >= 20 && le32(d + eocd - 20) == 0x07064b50)) {
		doc_fail(s, DOC_UNSUPPORTED, "%s: ZIP64 archives are not read", path);
		return;
	}
	if (disk || cd_disk || on_disk != total) {
		doc_fail(s, DOC_UNSUPPORTED, "%s: multi-disk (spanned) zip archives are not read", path);
		return;
	}
	if ((uint64_t)cd_off + cd_size > eocd) {
		doc_fail(s, DOC_CORRUPT, "%s: the central directory lies outside the archive", path);
		return;
	}
	span_t *spans = calloc(total ? total : 1, sizeof *spans);
	if (!spans) {
		doc_fail(s, DOC_LIMIT, "out of memory");
		return;
	}
	/* Pass 1: every entry's structure checked, nothing inflated. */
	const uint8_t *c = d + cd_off, *cend = d + cd_off + cd_size;
	char member[DOC_NAME_MAX];
	uint32_t k;
	for (k = 0; k < total; k++) {
		if (cend - c < 46 || le32(c) != 0x02014b50) {
			doc_fail(s, DOC_CORRUPT, "%s: the central directory is cut short or damaged", path);
			goto out;
		}
		uint16_t flags = le16(c + 8), method = le16(c + 10), nl = le16(c + 28), xl = le16(c + 30),
			 cl = le16(c + 32);
		uint32_t csize = le32(c + 20), usize = le32(c + 24), loff = le32(c + 42);
		if ((size_t)(cend - c) < 46u + nl + xl + cl) {
			doc_fail(s, DOC_CORRUPT, "%s: the central directory is cut short or damaged", path);
			goto out;
		}
		const char *name = (const char *)c + 46;
		doc_join(member, path, name, nl);
		if (!doc_count_member(s, member))
			goto out;
		if (csize == 0xffffffffu || usize == 0xffffffffu || loff == 0xffffffffu) {
			doc_fail(s, DOC_UNSUPPORTED, "%s: ZIP64 members are not read", member);
			goto out;
		}
		if ((uint64_t)loff + 30 > cd_off || le32(d + loff) != 0x04034b50) {
			doc_fail(s, DOC_CORRUPT, "%s: no local header where the central directory says", member);
			goto out;
		}
		const uint8_t *l = d + loff;
		uint16_t lnl = le16(l + 26), lxl = le16(l + 28);
		uint64_t data = (uint64_t)loff + 30 + lnl + lxl;
		if (lnl != nl || data > cd_off || memcmp(l + 30, name, nl) || le16(l + 8) != method ||
		    ((le16(l + 6) ^ flags) & 1)) {
			doc_fail(s, DOC_CORRUPT, "%s: the local header disagrees with the central directory", member);
			goto out;
		}
		if (data + csize > cd_off) {
			doc_fail(s, DOC_CORRUPT, "%s: its data runs past the central directory", member);
			goto out;
		}
		spans[k] = (span_t){loff, data + csize, csize, usize, k};
		if ((flags & 1) || method == 99) {
			doc_fail(s, DOC_ENCRYPTED, "%s: encrypted", member);
			goto out;
		}
		if (method != 0 && method != 8) {
			doc_fail(s, DOC_UNSUPPORTED, "%s: compression method %u is not read", member, method);
			goto out;
		}
		if (method == 0 && csize != usize) {
			doc_fail(s, DOC_CORRUPT, "%s: stored with two different sizes", member);
			goto out;
		}
		c += 46u + nl + xl + cl;
	}
	/* members may not share bytes: the overlapping-member bomb */
	qsort(spans, total, sizeof *spans, span_cmp);
	for (k = 1; k < total; k++)
		if (spans[k].start < spans[k - 1].end) {
			doc_fail(s, DOC_LIMIT, "%s: members overlap (a zip bomb construction)", path);
			goto out;
		}
	/* sizes as declared, before a byte is inflated: a bomb stops here */
	uint64_t declared = 0;
	for (k = 0; k < total; k++) {
		const span_t *sp = &spans[k];
		if (sp->usize > s->lim.max_member) {
			doc_fail(s, DOC_LIMIT, "%s: a member declares %u bytes, more than the %llu one may inflate to", path,
				 sp->usize, (unsigned long long)s->lim.max_member);
			goto out;
		}
		if (sp->usize > 65536 && sp->usize / ((uint64_t)sp->csize + 1) > s->lim.max_ratio) {
			doc_fail(s, DOC_LIMIT, "%s: a member declares an expansion over %u times (a compression bomb)", path,
				 s->lim.max_ratio);
			goto out;
		}
		declared += sp->usize;
		if (s->inflated + declared > s->lim.max_total) {
			doc_fail(s, DOC_LIMIT, "%s: the archive declares more than %llu bytes in all", path,
				 (unsigned long long)s->lim.max_total);
			goto out;
		}
	}
	/* Pass 2: read them, one at a time. */
	c = d + cd_off;
	bytebuf_t buf;
	bytebuf_init(&buf, 0);
	for (k = 0; k < total && doc_go_on(s); k++) {
		uint16_t method = le16(c + 10), nl = le16(c + 28), xl = le16(c + 30), cl = le16(c + 32);
		uint32_t crc = le32(c + 16), csize = le32(c + 20), usize = le32(c + 24), loff = le32(c + 42);
		const char *name = (const char *)c + 46;
		c += 46u + nl + xl + cl;
		if (nl && name[nl - 1] == '/')
			continue; /* a folder */
		doc_join(member, path, name, nl);
		const uint8_t *l = d + loff;
		const uint8_t *data = l + 30 + le16(l + 26) + le16(l + 28);
		const uint8_t *plain = data;
		size_t plain_n = csize;
		if (method == 8) {
			buf.len = 0;
			if (!doc_inflate(s, member, data, csize, -MAX_WBITS, usize, true, &buf, NULL))
				break;
			if (buf.len != usize) {
				doc_fail(s, DOC_CORRUPT, "%s: inflates to %zu bytes, not the %u declared", member, buf.len,
					 usize);
				break;
			}
			plain = (const uint8_t *)buf.data;
			plain_n = buf.len;
		} else if (!doc_spend(s, member, csize)) {
			break;
		}
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* so the fuzzer reaches what members hold */
		if ((uint32_t)crc32(0, plain, (uInt)plain_n) != crc) {
			doc_fail(s, DOC_CORRUPT, "%s: CRC mismatch", member);
			break;
		}
#else
		(void)crc;
#endif
		doc_member(s, member, plain, plain_n, depth);
	}
	bytebuf_free(&buf);
out:
	free(spans);
}
