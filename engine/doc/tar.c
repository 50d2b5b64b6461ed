/*
 * tar: ustar and GNU archives (POSIX.1-2001 pax records for long paths).
 *
 * A tar is 512-byte header blocks each followed by its file's data rounded
 * up to 512; two zero blocks end it. Every header's checksum must hold (a
 * bad one is corruption, not the end); sizes are octal, and a base-256
 * size (GNU, for files past 8 GiB) is refused as over max_member. Regular
 * files are read; links, devices and folders have no data to scan. A GNU
 * long-name ('L') or pax ('x') record names the next file.
 */
#include "doc/doc_internal.h"

#include <stdio.h>
#include <string.h>

static bool octal(const uint8_t *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	while (i < n && p[i] == ' ')
		i++;
	if (i < n && (p[i] & 0x80))
		return false; /* base-256 */
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v >> 60)
			return false;
		v = v * 8 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return true;
}

static bool checksum_ok(const uint8_t *b)
{
	uint64_t want;
	if (!octal(b + 148, 8, &want))
		return false;
	uint64_t sum = 0;
	for (int i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : b[i];
	return sum == want;
}

static bool zero_block(const uint8_t *b)
{
	for (int i = 0; i < 512; i++)
		if (b[i])
			return false;
	return true;
}

/* The path of a pax extended header's "path=" record, if any. */
static size_t pax_path(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t got = 0;
	for (size_t i = 0; i < n;) {
		size_t len = 0, j = i;
		while (j < n && p[j] >= '0' && p[j] <= '9' && len < 1000000)
			len = len * 10 + (size_t)(p[j++] - '0');
		if (j >= n || p[j] != ' ' || len == 0 || i + len > n || len <= j + 1 - i)
			break;
		const uint8_t *kv = p + j + 1;
		size_t kvn = i + len - (j + 1);
		if (kvn > 5 && !memcmp(kv, "path=", 5)) {
			got = kvn - 5 - (kv[kvn - 1] == '\n');
			if (got >= cap)
				got = cap - 1;
			memcpy(out, kv + 5, got);
			out[got] = '\0';
		}
		i += len;
	}
	return got;
}

void doc_tar_read(doc_set_t *s, const char *path, const uint8_t *d, size_t n, uint32_t depth)
{
	char longname[DOC_NAME_MAX] = "", member[DOC_NAME_MAX];
	size_t off = 0;
	while (doc_go_on(s)) {
		if (off + 512 > n) {
			if (off < n || off == 0)
				doc_fail(s, DOC_CORRUPT, "%s: the tar is cut short", path);
			return; /* some writers leave out the two zero blocks */
		}
		const uint8_t *h = d + off;
		if (zero_block(h))
			return;
		if (!checksum_ok(h)) {
			doc_fail(s, DOC_CORRUPT, "%s: a tar header's checksum is wrong", path);
			return;
		}
		uint64_t size;
		if (!octal(h + 124, 12, &size) || size > s->lim.max_member) {
			doc_fail(s, DOC_LIMIT, "%s: a tar member is larger than %llu bytes", path,
				 (unsigned long long)s->lim.max_member);
			return;
		}
		if (size > n - off - 512) {
			doc_fail(s, DOC_CORRUPT, "%s: a tar member runs past the end", path);
			return;
		}
		const uint8_t *data = h + 512;
		off += 512 + ((size + 511) & ~(uint64_t)511);
		if (off > n)
			off = n;
		char type = (char)h[156];
		if (type == 'L') {
			size_t k = size < sizeof longname ? (size_t)size : sizeof longname - 1;
			memcpy(longname, data, k);
			longname[k] = '\0';
			continue;
		}
		if (type == 'x') {
			pax_path(data, (size_t)size, longname, sizeof longname);
			continue;
		}
		if (type == 'g')
			continue;
		char name[DOC_NAME_MAX + 8];
		if (longname[0]) {
			snprintf(name, sizeof name, "%s", longname);
			longname[0] = '\0';
		} else if (!memcmp(h + 257, "ustar", 5) && h[345]) {
			snprintf(name, sizeof name, "%.155s/%.100s", (const char *)h + 345, (const char *)h);
		} else {
			snprintf(name, sizeof name, "%.100s", (const char *)h);
		}
		doc_join(member, path, name, strlen(name));
		if (!doc_count_member(s, member))
			return;
		if (type != '0' && type != '\0' && type != '7')
			continue; /* links, folders, devices: no data */
		if (!doc_spend(s, member, size))
			return;
		doc_member(s, member, data, (size_t)size, depth);
	}
}

void doc_gzip_read(doc_set_t *s, const char *path, const uint8_t *d, size_t n, uint32_t depth)
{
	/* the name inside is the original file's (FNAME), else ours less .gz */
	char inner[DOC_NAME_MAX];
	const char *base = strrchr(path, '!');
	base = base ? base + 1 : path;
	size_t bl = strlen(base);
	if (bl > 4 && !strcmp(base + bl - 4, ".tgz"))
		snprintf(inner, sizeof inner, "%.*s.tar", (int)(bl - 4), base);
	else
		snprintf(inner, sizeof inner, "%.*s", (int)(bl > 3 && !strcmp(base + bl - 3, ".gz") ? bl - 3 : bl), base);
	if (n > 10 && (d[3] & 8)) {
		const uint8_t *p = d + 10, *end = d + n;
		if (d[3] & 4) { /* FEXTRA */
			size_t xl = end - p >= 2 ? (size_t)(p[0] | p[1] << 8) : 0;
			p = (size_t)(end - p) >= 2 + xl ? p + 2 + xl : end;
		}
		const uint8_t *z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
		if (z && z > p)
			snprintf(inner, sizeof inner, "%.*s", (int)(z - p), (const char *)p);
	}
	char member[DOC_NAME_MAX];
	doc_join(member, path, inner, strlen(inner));
	if (!doc_count_member(s, member))
		return;
	/* every member of the stream, back to back: one file */
	bytebuf_t out;
	bytebuf_init(&out, 0);
	size_t off = 0;
	while (off < n && doc_go_on(s)) {
		size_t used = 0;
		if (n - off < 3 || d[off] != 0x1f || d[off + 1] != 0x8b) {
			if (off == 0)
				doc_fail(s, DOC_CORRUPT, "%s: not gzip", path);
			break; /* trailing bytes after the last member */
		}
		if (!doc_inflate(s, member, d + off, n - off, 16 + 15, s->lim.max_member - out.len, false, &out, &used))
			break;
		off += used ? used : n - off;
	}
	if (s->status == DOC_OK)
		doc_member(s, member, (const uint8_t *)out.data, out.len, depth);
	bytebuf_free(&out);
}
