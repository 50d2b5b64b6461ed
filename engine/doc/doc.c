/*
 * doc: the set of texts taken from a message's documents, the budgets every
 * reader spends, bounded inflation, and the dispatch of a member to the
 * reader of its kind. See doc.h.
 */
#include "doc/doc_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

doc_limits_t doc_limits_default(void)
{
	return (doc_limits_t){.max_total = 64u << 20,
			      .max_member = 16u << 20,
			      .max_ratio = 200,
			      .max_members = 4096,
			      .max_depth = 4,
			      .max_xml_depth = 256,
			      .max_text = 16u << 20,
			      .max_ms = 2000,
			      .max_hold = 32u << 20};
}

const char *doc_status_name(doc_status_t s)
{
	switch (s) {
	case DOC_OK: return "ok";
	case DOC_LIMIT: return "limit";
	case DOC_ENCRYPTED: return "encrypted";
	case DOC_CORRUPT: return "corrupt";
	case DOC_UNSUPPORTED: return "unsupported";
	}
	return "?";
}

const char *doc_kind_name(doc_kind_t k)
{
	static const char *const names[] = {"none", "zip", "gzip", "tar", "pdf", "sealed"};
	return k <= DOC_SEALED ? names[k] : "?";
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static bool name_ends(const char *name, const char *const *exts)
{
	size_t n = name ? strlen(name) : 0;
	for (int i = 0; exts[i]; i++) {
		size_t e = strlen(exts[i]);
		if (n > e && !strcasecmp(name + n - e, exts[i]))
			return true;
	}
	return false;
}

/* A tar header block: its checksum holds (ustar or v7). */
static bool tar_header_ok(const uint8_t *b, size_t n)
{
	if (n < 512)
		return false;
	unsigned long want = 0, sum = 0;
	int digits = 0;
	for (int i = 148; i < 156; i++) {
		if (b[i] >= '0' && b[i] <= '7') {
			want = want * 8 + (unsigned long)(b[i] - '0');
			digits++;
		} else if (b[i] != ' ' && b[i] != '\0')
			return false;
	}
	for (int i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : b[i];
	return digits > 0 && sum == want && b[0] != '\0';
}

doc_kind_t doc_sniff(const uint8_t *d, size_t n, const char *name)
{
	if (n >= 4 && d[0] == 'P' && d[1] == 'K' && ((d[2] == 3 && d[3] == 4) || (d[2] == 5 && d[3] == 6)))
		return DOC_ZIP;
	if (n >= 3 && d[0] == 0x1f && d[1] == 0x8b && d[2] == 8)
		return DOC_GZIP;
	/* PDF readers accept the header anywhere in the first KiB */
	if (n >= 5 && memmem(d, n < 1024 ? n : 1024, "%PDF-", 5))
		return DOC_PDF;
	if (n >= 512 && (!memcmp(d + 257, "ustar", 5) || tar_header_ok(d, n)))
		return DOC_TAR;
	/* OLE compound file with the stream name "EncryptedPackage" (UTF-16LE) */
	static const uint8_t ole[8] = {0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1};
	static const char sealed[] = "E\0n\0c\0r\0y\0p\0t\0e\0d\0P\0a\0c\0k\0a\0g\0e\0";
	if (n >= 512 && !memcmp(d, ole, 8) && memmem(d, n, sealed, sizeof sealed - 1))
		return DOC_SEALED;
	static const char *const zips[] = {".zip", ".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm", ".odt",
					   ".ods",  ".odp",  ".jar",  ".epub", NULL};
	static const char *const gz[] = {".gz", ".tgz", NULL};
	/* by name only when the bytes could be it: a text file named .zip is
	 * text, and scanned as such */
	if (name_ends(name, zips) && n >= 4 && d[0] == 'P' && d[1] == 'K')
		return DOC_ZIP;
	if (name_ends(name, gz) && n >= 2 && d[0] == 0x1f && d[1] == 0x8b)
		return DOC_GZIP;
	return DOC_NONE;
}

void doc_set_init(doc_set_t *s, const doc_limits_t *lim)
{
	memset(s, 0, sizeof *s);
	s->lim = lim ? *lim : doc_limits_default();
	bytebuf_init(&s->text, (size_t)s->lim.max_text + 1);
}

void doc_set_free(doc_set_t *s)
{
	bytebuf_free(&s->text);
	free(s->segs);
	memset(s, 0, sizeof *s);
}

bool doc_fail(doc_set_t *s, doc_status_t st, const char *fmt, ...)
{
	if (s->status == DOC_OK) {
		s->status = st;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->problem, sizeof s->problem, fmt, ap);
		va_end(ap);
	}
	return false;
}

bool doc_go_on(doc_set_t *s)
{
	if (s->status != DOC_OK)
		return false;
	if (now_ns() > s->deadline_ns)
		return doc_fail(s, DOC_LIMIT, "opening documents took longer than %u ms", s->lim.max_ms);
	return true;
}

bool doc_spend(doc_set_t *s, const char *path, uint64_t n)
{
	s->inflated += n;
	if (s->inflated > s->lim.max_total)
		return doc_fail(s, DOC_LIMIT, "%s: documents hold more than %llu bytes in all", path,
				(unsigned long long)s->lim.max_total);
	return true;
}

bool doc_count_member(doc_set_t *s, const char *path)
{
	if (++s->members > s->lim.max_members)
		return doc_fail(s, DOC_LIMIT, "%s: more than %u members", path, s->lim.max_members);
	return true;
}

void doc_join(char out[DOC_NAME_MAX], const char *outer, const char *inner, size_t inner_len)
{
	snprintf(out, DOC_NAME_MAX, "%s!%.*s", outer, (int)(inner_len > DOC_NAME_MAX ? DOC_NAME_MAX : inner_len), inner);
}

bool doc_emit(doc_set_t *s, const char *path, const void *text, size_t n)
{
	doc_segment_t *last = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;
	if (!last || (strcmp(last->name, path) && s->n_segs < DOC_MAX_SEGMENTS)) {
		if (!bytebuf_grow_array(&s->segs, sizeof *s->segs, s->n_segs, &s->cap_segs, 8))
			return doc_fail(s, DOC_LIMIT, "out of memory");
		last = &s->segs[s->n_segs++];
		snprintf(last->name, sizeof last->name, "%s", path);
		last->off = (uint32_t)s->text.len;
		last->len = 0;
	}
	if (s->text.len + n > s->lim.max_text)
		return doc_fail(s, DOC_LIMIT, "%s: documents hold more than %llu bytes of text", path,
				(unsigned long long)s->lim.max_text);
	if (!bytebuf_append(&s->text, text, n))
		return doc_fail(s, DOC_LIMIT, "out of memory");
	last->len = (uint32_t)(s->text.len - last->off);
	return true;
}

void doc_out_flush(doc_out_t *o)
{
	if (o->n && o->ok)
		o->ok = doc_emit(o->s, o->path, o->buf, o->n);
	o->n = 0;
}

void doc_out_put(doc_out_t *o, const void *data, size_t n)
{
	const uint8_t *p = data;
	while (n && o->ok) {
		size_t k = sizeof o->buf - o->n < n ? sizeof o->buf - o->n : n;
		memcpy(o->buf + o->n, p, k);
		o->n += k;
		p += k;
		n -= k;
		if (o->n == sizeof o->buf)
			doc_out_flush(o);
	}
}

void doc_emit_end(doc_set_t *s)
{
	if (s->n_segs && s->text.len && s->text.data[s->text.len - 1] != '\n' && s->text.len < s->lim.max_text &&
	    bytebuf_append(&s->text, "\n", 1))
		s->segs[s->n_segs - 1].len++;
}

const doc_segment_t *doc_set_segment_at(const doc_set_t *s, uint32_t off)
{
	uint32_t lo = 0, hi = s->n_segs;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->segs[mid].off + s->segs[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n_segs && off >= s->segs[lo].off ? &s->segs[lo] : NULL;
}

bool doc_inflate(doc_set_t *s, const char *path, const uint8_t *in, size_t n, int wbits, uint64_t max_out,
		 bool exact, bytebuf_t *out, size_t *used)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, wbits) != Z_OK)
		return doc_fail(s, DOC_LIMIT, "out of memory");
	uint8_t chunk[32768];
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
	size_t start = out->len;
	bool ok = true;
	int r;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		r = inflate(&z, Z_NO_FLUSH);
		size_t got = sizeof chunk - z.avail_out;
		uint64_t member = out->len - start + got;
		if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
			ok = doc_fail(s, DOC_CORRUPT, "%s: compressed data is corrupt", path);
			break;
		}
		if (member > max_out) {
			ok = exact ? doc_fail(s, DOC_CORRUPT, "%s: inflates past the size its header declares", path)
				   : doc_fail(s, DOC_LIMIT, "%s: inflates past %llu bytes", path,
					      (unsigned long long)max_out);
			break;
		}
		if (member > 65536 && member / (z.total_in + 1) > s->lim.max_ratio) {
			ok = doc_fail(s, DOC_LIMIT, "%s: expands more than %u times (a compression bomb)", path,
				      s->lim.max_ratio);
			break;
		}
		s->inflated += got;
		if (s->inflated > s->lim.max_total) {
			ok = doc_fail(s, DOC_LIMIT, "%s: documents inflate past %llu bytes in all", path,
				      (unsigned long long)s->lim.max_total);
			break;
		}
		if (!bytebuf_append(out, chunk, got)) {
			ok = doc_fail(s, DOC_LIMIT, "out of memory");
			break;
		}
		if (!doc_go_on(s)) {
			ok = false;
			break;
		}
	} while (r == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
	if (ok && r != Z_STREAM_END)
		ok = doc_fail(s, DOC_CORRUPT, "%s: compressed data is cut short", path);
	if (used)
		*used = z.total_in;
	inflateEnd(&z);
	return ok;
}

static bool is_xml(const char *path, const uint8_t *d, size_t n)
{
	static const char *const xml[] = {".xml", ".xhtml", ".svg", ".html", ".htm", NULL};
	if (name_ends(path, xml))
		return true;
	size_t i = 0;
	if (n >= 3 && d[0] == 0xef && d[1] == 0xbb && d[2] == 0xbf)
		i = 3;
	while (i < n && (d[i] == ' ' || d[i] == '\n' || d[i] == '\r' || d[i] == '\t'))
		i++;
	return n - i >= 5 && !memcmp(d + i, "<?xml", 5);
}

/* Text, as far as the first 8 KiB tell: no NUL byte. Images, fonts and
 * other binaries hold one almost at once. */
static bool is_text(const uint8_t *d, size_t n)
{
	return !memchr(d, 0, n < 8192 ? n : 8192);
}

static void open_kind(doc_set_t *s, doc_kind_t k, const char *path, const uint8_t *d, size_t n, uint32_t depth)
{
	switch (k) {
	case DOC_ZIP: doc_zip_read(s, path, d, n, depth); break;
	case DOC_GZIP: doc_gzip_read(s, path, d, n, depth); break;
	case DOC_TAR: doc_tar_read(s, path, d, n, depth); break;
	case DOC_PDF: doc_pdf_read(s, path, d, n); break;
	case DOC_SEALED: doc_fail(s, DOC_ENCRYPTED, "%s: a password-protected Office document", path); break;
	case DOC_NONE: break;
	}
}

void doc_member(doc_set_t *s, const char *path, const uint8_t *d, size_t n, uint32_t depth)
{
	if (!doc_go_on(s) || n == 0)
		return;
	doc_kind_t k = doc_sniff(d, n, path);
	if (k != DOC_NONE) {
		if (depth + 1 > s->lim.max_depth) {
			doc_fail(s, DOC_LIMIT, "%s: archives nested more than %u deep", path, s->lim.max_depth);
			return;
		}
		open_kind(s, k, path, d, n, depth + 1);
	} else if (is_xml(path, d, n)) {
		doc_xml_read(s, path, d, n);
	} else if (is_text(d, n)) {
		doc_emit(s, path, d, n);
		doc_emit_end(s);
	}
}

void doc_set_open_as(doc_set_t *s, doc_kind_t k, const char *name, const uint8_t *data, size_t n)
{
	if (k == DOC_NONE)
		return;
	if (s->n_documents++ == 0)
		s->deadline_ns = now_ns() + (uint64_t)s->lim.max_ms * 1000000u;
	if (s->status != DOC_OK)
		return;
	char path[DOC_NAME_MAX];
	snprintf(path, sizeof path, "%s", name && *name ? name : "body");
	open_kind(s, k, path, data, n, 1);
}

doc_kind_t doc_set_open(doc_set_t *s, const char *name, const uint8_t *data, size_t n)
{
	doc_kind_t k = doc_sniff(data, n, name);
	doc_set_open_as(s, k, name, data, n);
	return k;
}

/* The zip that ends with the end record at eocd: its first byte, or
 * SIZE_MAX when the record does not describe a zip before it. */
static size_t zip_start(const uint8_t *d, size_t n, size_t eocd)
{
	if (eocd + 22 > n)
		return SIZE_MAX;
	const uint8_t *e = d + eocd;
	uint64_t cd_size = (uint64_t)e[12] | (uint64_t)e[13] << 8 | (uint64_t)e[14] << 16 | (uint64_t)e[15] << 24;
	uint64_t cd_off = (uint64_t)e[16] | (uint64_t)e[17] << 8 | (uint64_t)e[18] << 16 | (uint64_t)e[19] << 24;
	if (cd_size + cd_off > eocd)
		return SIZE_MAX;
	size_t start = (size_t)(eocd - cd_size - cd_off);
	return !memcmp(d + start, "PK\3\4", 4) || (cd_size == 0 && start == eocd) ? start : SIZE_MAX;
}

/* The first place at or after from where the m bytes of what stand, or
 * NULL: memchr to the first byte, then a compare. Every upload's body is
 * searched for these signatures, and in text their first bytes ('P', '%')
 * are rare, so this runs at memchr's speed; memmem and a byte loop were
 * a sixth of the gateway's CPU on 64 KiB text uploads. */
static const uint8_t *find_sig(const uint8_t *d, size_t n, size_t from, const char *what, size_t m)
{
	while (from + m <= n) {
		const uint8_t *p = memchr(d + from, what[0], n - from - m + 1);
		if (!p)
			return NULL;
		if (!memcmp(p, what, m))
			return p;
		from = (size_t)(p - d) + 1;
	}
	return NULL;
}

bool doc_in_prefix(const uint8_t *d, size_t n)
{
	if (doc_sniff(d, n, NULL) != DOC_NONE)
		return true;
	/* a multipart part: a zip member's local header or a PDF's header */
	return find_sig(d, n, 0, "PK\x03\x04", 4) || find_sig(d, n, 0, "%PDF-", 5);
}

/* A zip whose end-of-central-directory record at eocd names a start that
 * holds a local header: opened, true. */
static bool carve_zip(doc_set_t *s, const uint8_t *d, size_t n, size_t eocd)
{
	size_t start = zip_start(d, n, eocd);
	if (start == SIZE_MAX)
		return false;
	/* to the end of the record and its comment */
	size_t end = eocd + 22 + (size_t)(d[eocd + 20] | d[eocd + 21] << 8);
	doc_set_open_as(s, DOC_ZIP, NULL, d + start, (end < n ? end : n) - start);
	return true;
}

doc_kind_t doc_set_carve(doc_set_t *s, const uint8_t *d, size_t n)
{
	/* The last end record that makes sense wins (a zip's own comment may
	 * hold the bytes of one): the records are found front to back, the
	 * last CARVE_TRIES kept, and tried from the last. More than that many
	 * is no upload anyone makes: then every position is tried, from the
	 * end, as a plain loop. */
	enum { CARVE_TRIES = 16 };
	size_t found[CARVE_TRIES], n_found = 0;
	const uint8_t *p;
	for (size_t from = 0; (p = find_sig(d, n >= 18 ? n - 18 : 0, from, "PK\5\6", 4)); from = (size_t)(p - d) + 1)
		found[n_found++ % CARVE_TRIES] = (size_t)(p - d);
	if (n_found <= CARVE_TRIES) {
		while (n_found)
			if (carve_zip(s, d, n, found[--n_found]))
				return DOC_ZIP;
	} else {
		for (size_t i = n - 22 + 1; i-- > 0;)
			if (!memcmp(d + i, "PK\5\6", 4) && carve_zip(s, d, n, i))
				return DOC_ZIP;
	}
	const uint8_t *pdf = find_sig(d, n, 0, "%PDF-", 5);
	if (pdf) {
		doc_set_open_as(s, DOC_PDF, NULL, pdf, n - (size_t)(pdf - d));
		return DOC_PDF;
	}
	return DOC_NONE;
}
