/*
 * edm_build: CSV in, EDM pack out (edm.h, schemas/edm-pack.md).
 *
 * The values are normalised and hashed as they are read; only the hashes
 * are kept (16 bytes per searchable value, 4 per value while building), so
 * building 10 million rows takes a few hundred MB, and the values never
 * reach the pack, a log or an error message (errors name the line).
 */
#include "core/bytebuf.h"
#include "detect/edm.h"
#include "detect/edm_internal.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FIELD 4096 /* bytes of one CSV field */

typedef struct {
	uint64_t h;
	uint32_t row;
} ent_t;

typedef struct {
	ent_t *v;
	size_t n, cap;
} ents_t;

/* One CSV record into fields (NUL-terminated in buf); the number of
 * fields, 0 at the end of input, -1 for a record that is too long or an
 * unclosed quote. */
static int read_record(FILE *in, char *buf, size_t cap, char **fields, int max_fields, uint64_t *line)
{
	int c = fgetc(in);
	if (c == EOF)
		return 0;
	int nf = 0;
	size_t k = 0;
	bool quoted = false, bad = false;
	fields[nf++] = buf;
	for (;; c = fgetc(in)) {
		if (c == EOF) {
			if (quoted)
				bad = true;
			break;
		}
		if (quoted) {
			if (c == '"') {
				int d = fgetc(in);
				if (d == '"')
					goto add;
				quoted = false;
				if (d == EOF)
					break;
				c = d; /* fall through to the unquoted handling of d */
			} else {
				if (c == '\n')
					(*line)++;
				goto add;
			}
		}
		if (c == '"') {
			quoted = true;
			continue;
		}
		if (c == '\r')
			continue;
		if (c == '\n') {
			(*line)++;
			break;
		}
		if (c == ',') {
			if (k == cap)
				bad = true;
			else
				buf[k++] = '\0';
			if (nf == max_fields)
				bad = true;
			else
				fields[nf++] = buf + k;
			continue;
		}
	add:
		if (k + 1 >= cap)
			bad = true;
		else
			buf[k++] = (char)c;
	}
	buf[k < cap ? k : cap - 1] = '\0';
	return bad ? -1 : nf;
}

static bool push(ents_t *e, uint64_t h, uint32_t row)
{
	if (!bytebuf_grow_array(&e->v, sizeof *e->v, e->n, &e->cap, 4096))
		return false;
	e->v[e->n++] = (ent_t){h, row};
	return true;
}

static int by_hash(const void *a, const void *b)
{
	uint64_t x = ((const ent_t *)a)->h, y = ((const ent_t *)b)->h;
	return x < y ? -1 : x > y;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

bool edm_build(FILE *in, const edm_column_t *cols, size_t n_cols, FILE *out, edm_build_stats_t *st, char *err,
	       size_t errlen)
{
	memset(st, 0, sizeof *st);
	err[0] = '\0';
	if (n_cols < 1 || n_cols > EDM_MAX_COLUMNS) {
		snprintf(err, errlen, "1 to %d columns", EDM_MAX_COLUMNS);
		return false;
	}
	uint8_t salt[EDM_SALT_BYTES];
	if (RAND_bytes(salt, sizeof salt) != 1) {
		snprintf(err, errlen, "no random bytes for the salt");
		return false;
	}
	edm_key_t key;
	edm_key_init(&key, salt);
	ents_t idx[EDM_MAX_COLUMNS] = {0};
	uint32_t *checks = NULL;
	size_t checks_cap = 0;
	uint64_t lengths[EDM_MAX_COLUMNS][4] = {{0}};
	uint8_t max_words[EDM_MAX_COLUMNS] = {0};
	char *buf = malloc(MAX_FIELD * EDM_MAX_COLUMNS);
	char *fields[EDM_MAX_COLUMNS + 1];
	char norm[EDM_MAX_VALUE + 1];
	uint64_t line = 0, rows = 0;
	bool ok = buf != NULL, first = true;
	if (!ok)
		snprintf(err, errlen, "out of memory");
	while (ok) {
		uint64_t at = line + 1;
		int nf = read_record(in, buf, MAX_FIELD * EDM_MAX_COLUMNS, fields, EDM_MAX_COLUMNS + 1, &line);
		if (nf == 0)
			break;
		if (nf < 0) {
			snprintf(err, errlen, "line %llu: a record longer than %d bytes, or a quote never closed",
				 (unsigned long long)at, MAX_FIELD * EDM_MAX_COLUMNS);
			ok = false;
			break;
		}
		if (nf == 1 && !fields[0][0])
			continue; /* a blank line */
		if ((size_t)nf != n_cols) {
			st->skipped_rows++;
			continue;
		}
		if (first) {
			first = false;
			bool header = true;
			for (size_t c = 0; c < n_cols; c++)
				header &= !strcasecmp(fields[c], cols[c].name);
			if (header) {
				st->header = true;
				continue;
			}
		}
		if (rows == EDM_MAX_ROWS) {
			snprintf(err, errlen, "more than %llu rows", EDM_MAX_ROWS);
			ok = false;
			break;
		}
		if (!bytebuf_grow_array(&checks, sizeof *checks, rows * n_cols + n_cols - 1, &checks_cap, 4096 * n_cols)) {
			snprintf(err, errlen, "out of memory at row %llu", (unsigned long long)rows + 1);
			ok = false;
			break;
		}
		for (size_t c = 0; c < n_cols; c++) {
			int n = edm_normalize(cols[c].type, fields[c], strlen(fields[c]), norm);
			uint32_t check = 0;
			if (n > 0) {
				uint64_t h = edm_hash(&key, (uint8_t)c, norm, (size_t)n);
				check = edm_check_of(h);
				lengths[c][n >> 6] |= (uint64_t)1 << (n & 63);
				if (cols[c].type == EDM_NAME) {
					uint8_t words = 1;
					for (int i = 0; i < n; i++)
						words += norm[i] == ' ';
					if (words > max_words[c])
						max_words[c] = words;
				}
				if (cols[c].searchable && !push(&idx[c], h, (uint32_t)rows)) {
					snprintf(err, errlen, "out of memory at row %llu", (unsigned long long)rows + 1);
					ok = false;
				}
			} else {
				st->empty[c]++;
			}
			checks[rows * n_cols + c] = check;
		}
		rows++;
	}
	st->rows = rows;
	if (ok && rows == 0) {
		snprintf(err, errlen, "no rows with %zu fields", n_cols);
		ok = false;
	}
	/* about 8 entries a bucket: 2^bits near rows / 8 */
	uint32_t bits = EDM_MIN_BITS;
	while (bits < EDM_MAX_BITS && ((uint64_t)1 << (bits + 3)) < rows)
		bits++;
	uint8_t head[EDM_HEADER_BYTES] = {0};
	memcpy(head, EDM_MAGIC, 8);
	put32(head + 8, EDM_VERSION);
	put32(head + 12, (uint32_t)n_cols);
	put64(head + 16, rows);
	put32(head + 24, bits);
	memcpy(head + 32, salt, EDM_SALT_BYTES);
	if (ok)
		ok = fwrite(head, sizeof head, 1, out) == 1;
	for (size_t c = 0; ok && c < n_cols; c++) {
		uint8_t cd[EDM_COLUMN_BYTES] = {0};
		snprintf((char *)cd, 32, "%s", cols[c].name);
		cd[32] = (uint8_t)cols[c].type;
		cd[33] = cols[c].searchable;
		cd[34] = max_words[c];
		put64(cd + 40, cols[c].searchable ? idx[c].n : 0);
		for (int i = 0; i < 4; i++)
			put64(cd + 48 + 8 * i, lengths[c][i]);
		ok = fwrite(cd, sizeof cd, 1, out) == 1;
	}
	size_t nb = ((size_t)1 << bits) + 1;
	uint32_t *buckets = ok ? malloc(nb * sizeof *buckets) : NULL;
	if (ok && !buckets) {
		snprintf(err, errlen, "out of memory");
		ok = false;
	}
	for (size_t c = 0; ok && c < n_cols; c++) {
		if (!cols[c].searchable)
			continue;
		ents_t *e = &idx[c];
		qsort(e->v, e->n, sizeof *e->v, by_hash);
		size_t k = 0;
		for (size_t b = 0; b < nb; b++) {
			while (k < e->n && (e->v[k].h >> (64 - bits)) < b)
				k++;
			uint8_t le[4];
			put32(le, (uint32_t)k);
			memcpy(&buckets[b], le, 4);
		}
		ok = fwrite(buckets, 4, nb, out) == nb;
		static const uint8_t zero[8];
		size_t pad = (8 - (nb * 4) % 8) % 8;
		if (ok && pad)
			ok = fwrite(zero, 1, pad, out) == pad;
		for (size_t i = 0; ok && i < e->n; i++) {
			uint8_t le[8];
			put64(le, (uint64_t)(uint32_t)(e->v[i].h >> (32 - bits)) << 32 | e->v[i].row);
			ok = fwrite(le, 8, 1, out) == 1;
		}
	}
	for (uint64_t i = 0; ok && i < rows * n_cols; i++) {
		uint8_t le[4];
		put32(le, checks[i]);
		ok = fwrite(le, 4, 1, out) == 1;
	}
	if (ok && fflush(out) != 0)
		ok = false;
	if (!ok && !err[0])
		snprintf(err, errlen, "cannot write the pack");
	free(buckets);
	free(buf);
	free(checks);
	for (size_t c = 0; c < n_cols; c++)
		free(idx[c].v);
	return ok;
}
