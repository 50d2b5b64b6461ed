/*
 * edm: the pack loader, the shared pack cache, the tokenizers and the
 * matcher. See edm.h; the format is schemas/edm-pack.md.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: a plain struct we copy per hash */
#include "detect/edm.h"
#include "detect/edm_internal.h"

#include "detect/detector.h"
#include "detect/digitruns.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- types and normalisation ---- */

static const char *const type_names[] = {"", "digits", "alnum", "email", "name"};

edm_type_t edm_type_by_name(const char *s)
{
	for (int t = EDM_DIGITS; t <= EDM_NAME; t++)
		if (s && !strcmp(s, type_names[t]))
			return (edm_type_t)t;
	return 0;
}

const char *edm_type_name(edm_type_t t)
{
	return t >= EDM_DIGITS && t <= EDM_NAME ? type_names[t] : "?";
}

static inline bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static inline bool is_alpha(uint8_t c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static inline bool is_alnum(uint8_t c) { return is_digit(c) || is_alpha(c); }
static inline bool is_word(uint8_t c) { return is_alnum(c) || c >= 0x80; }
static inline char lower(uint8_t c) { return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c); }

int edm_normalize(edm_type_t t, const char *in, size_t n, char *out)
{
	size_t k = 0;
	const uint8_t *s = (const uint8_t *)in;
	switch (t) {
	case EDM_DIGITS:
		for (size_t i = 0; i < n; i++)
			if (is_digit(s[i])) {
				if (k == EDM_MAX_VALUE)
					return -1;
				out[k++] = (char)s[i];
			}
		break;
	case EDM_ALNUM: {
		bool digit = false;
		for (size_t i = 0; i < n; i++)
			if (is_alnum(s[i])) {
				if (k == EDM_MAX_VALUE)
					return -1;
				digit |= is_digit(s[i]);
				out[k++] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
			}
		if (!digit)
			return -1;
		break;
	}
	case EDM_EMAIL: {
		size_t a = 0, b = n;
		while (a < b && (s[a] == ' ' || s[a] == '\t'))
			a++;
		while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r'))
			b--;
		if (b - a > EDM_MAX_VALUE || !memchr(s + a, '@', b - a))
			return -1;
		for (size_t i = a; i < b; i++)
			out[k++] = lower(s[i]);
		break;
	}
	case EDM_NAME: {
		bool gap = false;
		unsigned words = 0;
		for (size_t i = 0; i < n; i++) {
			if (!is_word(s[i])) {
				gap = k > 0;
				continue;
			}
			if (gap || k == 0) {
				if (++words > EDM_MAX_NAME_WORDS)
					return -1;
				if (gap) {
					if (k == EDM_MAX_VALUE)
						return -1;
					out[k++] = ' ';
				}
				gap = false;
			}
			if (k == EDM_MAX_VALUE)
				return -1;
			out[k++] = lower(s[i]);
		}
		break;
	}
	default:
		return -1;
	}
	out[k] = '\0';
	return k ? (int)k : -1;
}

/* ---- the keyed hash ---- */

void edm_key_init(edm_key_t *k, const uint8_t salt[EDM_SALT_BYTES])
{
	uint8_t ipad[64], opad[64];
	memset(ipad, 0x36, sizeof ipad);
	memset(opad, 0x5c, sizeof opad);
	for (int i = 0; i < EDM_SALT_BYTES; i++) {
		ipad[i] ^= salt[i];
		opad[i] ^= salt[i];
	}
	SHA256_Init(&k->inner);
	SHA256_Update(&k->inner, ipad, sizeof ipad);
	SHA256_Init(&k->outer);
	SHA256_Update(&k->outer, opad, sizeof opad);
}

/* HMAC-SHA-256(salt, column || value), its first 8 bytes big-endian. */
uint64_t edm_hash(const edm_key_t *k, uint8_t column, const char *v, size_t n)
{
	SHA256_CTX c = k->inner;
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256_Update(&c, &column, 1);
	SHA256_Update(&c, v, n);
	SHA256_Final(d, &c);
	c = k->outer;
	SHA256_Update(&c, d, sizeof d);
	SHA256_Final(d, &c);
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | d[i];
	return h;
}

/* ---- loading ---- */

struct edm_pack {
	uint8_t *data;
	size_t size;
	uint64_t rows;
	uint32_t n_cols, bits;
	edm_key_t key;
	edm_col_t cols[EDM_MAX_COLUMNS];
	const uint32_t *row_checks; /* rows x n_cols */
	/* the cache's */
	int refs;
	dev_t dev;
	ino_t ino;
	off_t st_size;
	time_t mtime;
	struct edm_pack *next;
};

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

#define FAIL(...)                                                                                                      \
	do {                                                                                                           \
		snprintf(err, errlen, "not a usable EDM pack: " __VA_ARGS__);                                          \
		return false;                                                                                          \
	} while (0)

/* Checks every size against the bytes there are before pointing into
 * them; the buckets must rise to the entry count. Entries' rows are
 * checked where they are read (edm_lookup). The pack's data is aligned
 * (malloc) and every section starts on 8 bytes. */
static bool parse(edm_pack_t *p, char *err, size_t errlen)
{
	const uint8_t *d = p->data;
	if (p->size < EDM_HEADER_BYTES || memcmp(d, EDM_MAGIC, 8))
		FAIL("it does not start with the EDM magic (build it with dlpgate edm build)");
	if (rd32(d + 8) != EDM_VERSION)
		FAIL("format version %u; this dlpgate reads version %u", rd32(d + 8), EDM_VERSION);
	p->n_cols = rd32(d + 12);
	p->rows = rd64(d + 16);
	p->bits = rd32(d + 24);
	if (p->n_cols < 1 || p->n_cols > EDM_MAX_COLUMNS)
		FAIL("%u columns (1 to %d)", p->n_cols, EDM_MAX_COLUMNS);
	if (p->rows > EDM_MAX_ROWS)
		FAIL("%llu rows (at most %llu)", (unsigned long long)p->rows, EDM_MAX_ROWS);
	if (p->bits < EDM_MIN_BITS || p->bits > EDM_MAX_BITS)
		FAIL("index of 2^%u buckets (%d to %d bits)", p->bits, EDM_MIN_BITS, EDM_MAX_BITS);
	edm_key_init(&p->key, d + 32);
	uint64_t off = EDM_HEADER_BYTES + (uint64_t)p->n_cols * EDM_COLUMN_BYTES;
	if (off > p->size)
		FAIL("truncated in its column list");
	uint64_t buckets = ((uint64_t)1 << p->bits) + 1;
	uint64_t bucket_bytes = (buckets * 4 + 7) & ~(uint64_t)7;
	for (uint32_t c = 0; c < p->n_cols; c++) {
		const uint8_t *cd = d + EDM_HEADER_BYTES + (size_t)c * EDM_COLUMN_BYTES;
		edm_col_t *col = &p->cols[c];
		memcpy(col->name, cd, sizeof col->name);
		if (!col->name[0] || memchr(col->name, 0, sizeof col->name) == NULL)
			FAIL("column %u has no name, or one not ended", c + 1);
		for (uint32_t o = 0; o < c; o++)
			if (!strcmp(p->cols[o].name, col->name))
				FAIL("column \"%s\" twice", col->name);
		col->type = cd[32];
		col->searchable = cd[33];
		col->max_words = cd[34];
		if (col->type < EDM_DIGITS || col->type > EDM_NAME)
			FAIL("column \"%s\" has an unknown type %u", col->name, col->type);
		if (col->searchable > 1 || (col->searchable && col->type == EDM_NAME))
			FAIL("column \"%s\": only digits, alnum and email columns can be searchable", col->name);
		if (col->max_words > EDM_MAX_NAME_WORDS)
			FAIL("column \"%s\": %u words in a name (at most %d)", col->name, col->max_words,
			     EDM_MAX_NAME_WORDS);
		col->n_entries = rd64(cd + 40);
		for (int i = 0; i < 4; i++)
			col->lengths[i] = rd64(cd + 48 + 8 * i);
		if (!col->searchable) {
			if (col->n_entries)
				FAIL("column \"%s\" is not searchable but has index entries", col->name);
			continue;
		}
		if (col->n_entries > p->rows)
			FAIL("column \"%s\" has more index entries than the pack has rows", col->name);
		if (off + bucket_bytes + col->n_entries * 8 > p->size)
			FAIL("truncated in column \"%s\"'s index", col->name);
		col->buckets = (const uint32_t *)(d + off);
		col->entries = (const uint64_t *)(d + off + bucket_bytes);
		off += bucket_bytes + col->n_entries * 8;
		/* little-endian on disk; the engine runs on little-endian machines
		 * (x86-64, arm64), so the sections are read in place */
		if (col->buckets[0] != 0 || col->buckets[buckets - 1] != col->n_entries)
			FAIL("column \"%s\"'s index does not cover its entries", col->name);
		for (uint64_t b = 1; b < buckets; b++)
			if (col->buckets[b] < col->buckets[b - 1])
				FAIL("column \"%s\"'s index goes backwards", col->name);
	}
	uint64_t checks = p->rows * p->n_cols;
	if (off + checks * 4 != p->size)
		FAIL("%llu bytes where its header says %llu", (unsigned long long)p->size,
		     (unsigned long long)(off + checks * 4));
	p->row_checks = (const uint32_t *)(d + off);
	return true;
}

static edm_pack_t *pack_from(uint8_t *data, size_t n, char *err, size_t errlen)
{
	edm_pack_t *p = calloc(1, sizeof *p);
	if (!p) {
		free(data);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->data = data;
	p->size = n;
	p->refs = 1;
	if (!parse(p, err, errlen)) {
		free(p->data);
		free(p);
		return NULL;
	}
	return p;
}

edm_pack_t *edm_pack_parse(const uint8_t *data, size_t n, char *err, size_t errlen)
{
	if (n > EDM_MAX_PACK_BYTES) {
		snprintf(err, errlen, "an EDM pack is at most %llu bytes", EDM_MAX_PACK_BYTES);
		return NULL;
	}
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(copy, data, n);
	return pack_from(copy, n, err, errlen);
}

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static edm_pack_t *cache;

/* Read whole, not mapped: a pack rewritten in place (`> edm.pack`) under a
 * mapping would kill the process with SIGBUS. */
edm_pack_t *edm_pack_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot read EDM pack %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > EDM_MAX_PACK_BYTES) {
		snprintf(err, errlen, "EDM pack %s is not a regular file of at most %llu bytes", path,
			 EDM_MAX_PACK_BYTES);
		close(fd);
		return NULL;
	}
	pthread_mutex_lock(&cache_lock);
	for (edm_pack_t *p = cache; p; p = p->next)
		if (p->dev == st.st_dev && p->ino == st.st_ino && p->st_size == st.st_size && p->mtime == st.st_mtime) {
			p->refs++;
			pthread_mutex_unlock(&cache_lock);
			close(fd);
			return p;
		}
	pthread_mutex_unlock(&cache_lock);
	size_t n = (size_t)st.st_size;
	uint8_t *data = malloc(n ? n : 1);
	size_t got = 0;
	while (data && got < n) {
		ssize_t r = read(fd, data + got, n - got);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	if (!data || got != n) {
		snprintf(err, errlen, "cannot read EDM pack %s: %s", path, data ? "it changed while read" : "out of memory");
		free(data);
		return NULL;
	}
	char why[200];
	edm_pack_t *p = pack_from(data, n, why, sizeof why);
	if (!p) {
		snprintf(err, errlen, "%s: %s", path, why);
		return NULL;
	}
	p->dev = st.st_dev;
	p->ino = st.st_ino;
	p->st_size = st.st_size;
	p->mtime = st.st_mtime;
	pthread_mutex_lock(&cache_lock);
	p->next = cache;
	cache = p;
	pthread_mutex_unlock(&cache_lock);
	return p;
}

void edm_pack_unref(edm_pack_t *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&cache_lock);
	bool last = --p->refs == 0;
	if (last)
		for (edm_pack_t **pp = &cache; *pp; pp = &(*pp)->next)
			if (*pp == p) {
				*pp = p->next;
				break;
			}
	pthread_mutex_unlock(&cache_lock);
	if (last) {
		free(p->data);
		free(p);
	}
}

uint64_t edm_pack_rows(const edm_pack_t *p) { return p->rows; }
size_t edm_pack_bytes(const edm_pack_t *p) { return p->size; }

int edm_pack_column(const edm_pack_t *p, const char *name)
{
	for (uint32_t c = 0; c < p->n_cols; c++)
		if (!strcmp(p->cols[c].name, name))
			return (int)c;
	return -1;
}

/* Rows whose value in column c hashes to h (at most max). */
static size_t lookup(const edm_pack_t *p, uint32_t c, uint64_t h, uint32_t *rows, size_t max)
{
	const edm_col_t *col = &p->cols[c];
	uint64_t b = h >> (64 - p->bits);
	uint32_t key = (uint32_t)(h >> (32 - p->bits));
	size_t lo = col->buckets[b], hi = col->buckets[b + 1];
	while (lo < hi) { /* the first entry with its key >= key */
		size_t mid = lo + (hi - lo) / 2;
		if ((uint32_t)(col->entries[mid] >> 32) < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t n = 0;
	for (size_t i = lo; i < col->buckets[b + 1] && (uint32_t)(col->entries[i] >> 32) == key && n < max; i++) {
		uint32_t row = (uint32_t)col->entries[i];
		if (row < p->rows)
			rows[n++] = row;
	}
	return n;
}

uint32_t edm_check_of(uint64_t h)
{
	uint32_t c = (uint32_t)h;
	return c ? c : 1; /* 0 marks an empty value */
}

/* ---- queries ---- */

struct edm_query {
	edm_pack_t *pack;
	uint32_t primary;
	uint32_t corr[EDM_MAX_COLUMNS];
	size_t n_corr;
	uint32_t distance, min_corr;
	char key[160];
};

edm_query_t *edm_query_new(edm_pack_t *p, const char *primary, const char *const *corroborate, size_t n_corroborate,
			   uint32_t distance, uint32_t min_corroborate, char *err, size_t errlen)
{
	int pc = edm_pack_column(p, primary);
	if (pc < 0) {
		snprintf(err, errlen, "the pack has no column \"%s\"", primary);
		return NULL;
	}
	if (!p->cols[pc].searchable) {
		snprintf(err, errlen, "column \"%s\" is not searchable (build the pack with --primary %s; a name column "
				      "can only corroborate)", primary, primary);
		return NULL;
	}
	if (n_corroborate > EDM_MAX_COLUMNS || min_corroborate > n_corroborate) {
		snprintf(err, errlen, "min_corroborate = %u but %zu corroborating columns", min_corroborate, n_corroborate);
		return NULL;
	}
	if (distance > EDM_MAX_DISTANCE) {
		snprintf(err, errlen, "distance is at most %d bytes", EDM_MAX_DISTANCE);
		return NULL;
	}
	edm_query_t *q = calloc(1, sizeof *q);
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->primary = (uint32_t)pc;
	for (size_t i = 0; i < n_corroborate; i++) {
		int c = edm_pack_column(p, corroborate[i]);
		if (c < 0 || c == pc) {
			snprintf(err, errlen, c < 0 ? "the pack has no column \"%s\"" : "\"%s\" is the primary column",
				 corroborate[i]);
			free(q);
			return NULL;
		}
		q->corr[q->n_corr++] = (uint32_t)c;
	}
	q->distance = distance;
	q->min_corr = min_corroborate;
	q->pack = p;
	pthread_mutex_lock(&cache_lock); /* the cache may hand p to another thread meanwhile */
	p->refs++;
	pthread_mutex_unlock(&cache_lock);
	int w = snprintf(q->key, sizeof q->key, "edm:%p:%u:%u:%u:", (void *)p, q->primary, distance, min_corroborate);
	for (size_t i = 0; i < q->n_corr && w > 0 && (size_t)w < sizeof q->key; i++)
		w += snprintf(q->key + w, sizeof q->key - (size_t)w, "%u,", q->corr[i]);
	return q;
}

void edm_query_free(edm_query_t *q)
{
	if (!q)
		return;
	edm_pack_unref(q->pack);
	free(q);
}

const char *edm_query_key(const edm_query_t *q)
{
	return q->key;
}

/* ---- tokenizers ---- */

typedef struct {
	uint32_t start, end;
	int n;                       /* normalised length */
	char v[EDM_MAX_VALUE + 1];   /* normalised */
} cand_t;

/* Calls each(ctx, cand) for the candidates of type t in buf[from, to)
 * (a candidate may not start before from nor end after to); stops when
 * each returns false. */
typedef bool (*cand_fn)(void *ctx, const cand_t *c);

static bool length_ok(const edm_col_t *col, int n)
{
	return n > 0 && n <= EDM_MAX_VALUE && (col->lengths[n >> 6] >> (n & 63) & 1);
}

/* The fewest digits a value of the column has (its shortest length). */
static uint32_t shortest(const edm_col_t *col)
{
	for (int n = 1; n <= EDM_MAX_VALUE; n++)
		if (col->lengths[n >> 6] >> (n & 63) & 1)
			return (uint32_t)n;
	return EDM_MAX_VALUE + 1;
}

/* The end of the space-separated piece of a run starting at i, and its
 * digits. */
static uint32_t piece_end(const uint8_t *buf, uint32_t i, uint32_t end, uint32_t *digits)
{
	*digits = 0;
	for (; i < end && buf[i] != ' '; i++)
		*digits += is_digit(buf[i]);
	return i;
}

/* The candidates of one run of digits (single spaces or dashes between
 * them, digitruns.h): every span of its space-separated pieces with as
 * many digits as a value of the column has. A span is at most the longest
 * value long, so a run of any length (a table of numbers around an
 * account number) costs pieces times the pieces a value can span. */
static bool run_candidates(const edm_col_t *col, const uint8_t *buf, size_t to, uint32_t start, uint32_t end,
			   cand_fn each, void *ctx)
{
	if ((start > 0 && is_alnum(buf[start - 1])) || (end < to && is_alpha(buf[end])))
		return true; /* glued to a word: not a number of its own */
	cand_t c;
	for (uint32_t a = start; a < end;) {
		uint32_t digits = 0, d, e = a;
		while (e < end) {
			e = piece_end(buf, e, end, &d);
			digits += d;
			if (digits > EDM_MAX_VALUE)
				break;
			if (length_ok(col, (int)digits)) {
				c.start = a;
				c.end = e;
				c.n = edm_normalize(EDM_DIGITS, (const char *)buf + a, e - a, c.v);
				if (c.n > 0 && !each(ctx, &c))
					return false;
			}
			e++; /* past the space */
		}
		a = piece_end(buf, a, end, &d) + 1;
	}
	return true;
}

/* Runs of digits come from digitruns' SIMD finder, which skips prose and
 * code at well under a byte a nanosecond: a byte-by-byte tokenizer here
 * cost a quarter of the scan. */
static bool digit_candidates(const edm_col_t *col, const uint8_t *buf, size_t from, size_t to, cand_fn each, void *ctx)
{
	uint32_t min = shortest(col);
	if (min > EDM_MAX_VALUE)
		return true;
	digit_run_t runs[256];
	size_t pos = from;
	while (pos < to) {
		size_t n = digit_runs_find(buf + pos, to - pos, min, runs, 256);
		size_t kept = n < 256 ? n : 256;
		for (size_t i = 0; i < kept; i++)
			if (!run_candidates(col, buf, to, (uint32_t)(pos + runs[i].start), (uint32_t)(pos + runs[i].end),
					    each, ctx))
				return false;
		if (n <= 256)
			break;
		pos += runs[255].end;
	}
	return true;
}

static bool alnum_candidates(const edm_col_t *col, const uint8_t *buf, size_t from, size_t to, cand_fn each, void *ctx)
{
	cand_t c;
	size_t i = from;
	while (i < to) {
		if (!is_alnum(buf[i]) || (i > 0 && (is_alnum(buf[i - 1]) || buf[i - 1] == '-'))) {
			i++;
			continue;
		}
		size_t j = i;
		bool digit = false;
		while (j < to && (is_alnum(buf[j]) || (buf[j] == '-' && j + 1 < to && is_alnum(buf[j + 1])))) {
			digit |= is_digit(buf[j]);
			j++;
		}
		if (digit && j - i <= EDM_MAX_VALUE * 2) {
			c.start = (uint32_t)i;
			c.end = (uint32_t)j;
			c.n = edm_normalize(EDM_ALNUM, (const char *)buf + i, j - i, c.v);
			if (length_ok(col, c.n) && !each(ctx, &c))
				return false;
		}
		i = j + 1;
	}
	return true;
}

static bool local_char(uint8_t c) { return is_alnum(c) || (c && strchr("._%+-'", c)); }
static bool domain_char(uint8_t c) { return is_alnum(c) || c == '.' || c == '-'; }

static bool email_candidates(const edm_col_t *col, const uint8_t *buf, size_t from, size_t to, cand_fn each, void *ctx)
{
	cand_t c;
	for (const uint8_t *at = memchr(buf + from, '@', to - from); at; at = memchr(at + 1, '@', (size_t)(buf + to - at - 1))) {
		size_t i = (size_t)(at - buf), a = i, b = i + 1;
		while (a > from && i - a < 64 && local_char(buf[a - 1]))
			a--;
		while (b < to && b - i < 254 && domain_char(buf[b]))
			b++;
		while (a < i && buf[a] == '.')
			a++;
		while (b > i + 1 && (buf[b - 1] == '.' || buf[b - 1] == '-'))
			b--;
		if (a < i && b > i + 1) {
			c.start = (uint32_t)a;
			c.end = (uint32_t)b;
			c.n = edm_normalize(EDM_EMAIL, (const char *)buf + a, b - a, c.v);
			if (length_ok(col, c.n) && !each(ctx, &c))
				return false;
		}
		if (at + 1 >= buf + to)
			break;
	}
	return true;
}

/* Runs of 1 to max_words words (a name written "Smith, John" is "smith john"). */
static bool name_candidates(const edm_col_t *col, const uint8_t *buf, size_t from, size_t to, cand_fn each, void *ctx)
{
	enum { MAXW = EDM_MAX_NAME_WORDS };
	uint32_t ws[MAXW], we[MAXW]; /* the last words seen, a ring */
	unsigned n = 0, max = col->max_words ? col->max_words : 1;
	cand_t c;
	size_t i = from;
	while (i < to) {
		if (!is_word(buf[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < to && is_word(buf[j]))
			j++;
		if (i > from && is_word(buf[i - 1])) { /* cut by the window's start */
			i = j;
			continue;
		}
		ws[n % MAXW] = (uint32_t)i;
		we[n % MAXW] = (uint32_t)j;
		n++;
		/* every run of words ending with this one */
		for (unsigned k = 1; k <= max && k <= n; k++) {
			uint32_t s = ws[(n - k) % MAXW];
			if (j - s > EDM_MAX_VALUE * 2)
				break;
			c.start = s;
			c.end = (uint32_t)j;
			c.n = edm_normalize(EDM_NAME, (const char *)buf + s, j - s, c.v);
			if (length_ok(col, c.n) && !each(ctx, &c))
				return false;
		}
		i = j;
	}
	(void)we;
	return true;
}

static bool candidates(const edm_col_t *col, const uint8_t *buf, size_t from, size_t to, cand_fn each, void *ctx)
{
	switch (col->type) {
	case EDM_DIGITS: return digit_candidates(col, buf, from, to, each, ctx);
	case EDM_ALNUM: return alnum_candidates(col, buf, from, to, each, ctx);
	case EDM_EMAIL: return email_candidates(col, buf, from, to, each, ctx);
	case EDM_NAME: return name_candidates(col, buf, from, to, each, ctx);
	}
	return true;
}

/* ---- the scan ---- */

#define MAX_ROWS_PER_VALUE 16
#define MAX_NEAR 4096 /* corroborating candidates kept per column per hit */

typedef struct {
	const edm_query_t *q;
	const uint8_t *buf;
	size_t len;
	bool (*found)(void *, const edm_hit_t *);
	void *ctx;
	uint32_t skip_to;          /* past the last hit: overlapping candidates are the same value */
	/* corroboration of one hit */
	uint32_t col;
	size_t n_near;
	uint32_t near[MAX_NEAR];   /* 16 KiB: the scan's frame, not the heap */
} scan_t;

static bool collect_near(void *p, const cand_t *c)
{
	scan_t *s = p;
	if (s->n_near == MAX_NEAR)
		return false;
	s->near[s->n_near++] = edm_check_of(edm_hash(&s->q->pack->key, (uint8_t)s->col, c->v, (size_t)c->n));
	return true;
}

static bool on_primary(void *p, const cand_t *c)
{
	scan_t *s = p;
	const edm_query_t *q = s->q;
	const edm_pack_t *pk = q->pack;
	if (c->start < s->skip_to)
		return true;
	uint32_t rows[MAX_ROWS_PER_VALUE];
	size_t n_rows = lookup(pk, q->primary, edm_hash(&pk->key, (uint8_t)q->primary, c->v, (size_t)c->n), rows,
			       MAX_ROWS_PER_VALUE);
	if (!n_rows)
		return true;
	uint32_t best = 0, score[MAX_ROWS_PER_VALUE] = {0};
	size_t from = c->start > q->distance ? c->start - q->distance : 0;
	size_t to = (size_t)c->end + q->distance < s->len ? (size_t)c->end + q->distance : s->len;
	const uint32_t *near = s->near;
	for (size_t k = 0; k < q->n_corr; k++) {
		s->col = q->corr[k];
		s->n_near = 0;
		candidates(&pk->cols[s->col], s->buf, from, to, collect_near, s);
		for (size_t r = 0; r < n_rows; r++) {
			uint32_t want = pk->row_checks[(uint64_t)rows[r] * pk->n_cols + s->col];
			for (size_t i = 0; want && i < s->n_near; i++)
				if (near[i] == want) {
					score[r]++;
					break;
				}
		}
	}
	for (size_t r = 0; r < n_rows; r++)
		if (score[r] > best)
			best = score[r];
	if (best < q->min_corr)
		return true;
	s->skip_to = c->end;
	edm_hit_t h = {c->start, c->end - c->start, best};
	return s->found(s->ctx, &h);
}

void edm_query_scan(const edm_query_t *q, const uint8_t *buf, size_t len,
		    bool (*found)(void *ctx, const edm_hit_t *h), void *ctx)
{
	edm_query_scan_runs(q, buf, len, NULL, 0, found, ctx);
}

void edm_query_scan_runs(const edm_query_t *q, const uint8_t *buf, size_t len, const digit_run_t *runs,
			 size_t n_runs, bool (*found)(void *ctx, const edm_hit_t *h), void *ctx)
{
	scan_t s = {.q = q, .buf = buf, .len = len, .found = found, .ctx = ctx};
	const edm_col_t *col = &q->pack->cols[q->primary];
	if (!runs || col->type != EDM_DIGITS) {
		candidates(col, buf, 0, len, on_primary, &s);
		return;
	}
	/* the scan's runs hold at least as few digits as ours: keep those long enough */
	uint32_t min = shortest(col);
	for (size_t i = 0; i < n_runs; i++)
		if (runs[i].digits >= min && !run_candidates(col, buf, len, runs[i].start, runs[i].end, on_primary, &s))
			return;
}

/* ---- as a detector ---- */

typedef struct {
	det_result_t *r;
} fill_t;

static bool fill_result(void *p, const edm_hit_t *h)
{
	det_result_t *r = ((fill_t *)p)->r;
	r->count++;
	r->at_level[CONF_HIGH] += h->corroborated > 0; /* context, graded by detector.c */
	if (r->n_matches < DET_MAX_MATCHES)
		r->matches[r->n_matches++] = (det_match_t){h->start, h->len, h->start, h->len, h->corroborated > 0};
	return true;
}

static void matcher_scan(void *ctx, const uint8_t *buf, size_t len, const digit_run_t *runs, size_t n_runs,
			 det_result_t *r)
{
	fill_t f = {r};
	edm_query_scan_runs(ctx, buf, len, runs, n_runs, fill_result, &f);
}

static void matcher_release(void *ctx)
{
	edm_query_free(ctx);
}

det_matcher_t edm_matcher(edm_query_t *q)
{
	const edm_col_t *col = &q->pack->cols[q->primary];
	uint32_t digits = col->type == EDM_DIGITS ? shortest(col) : 0;
	return (det_matcher_t){matcher_scan, matcher_release, q, edm_query_key(q), digits <= EDM_MAX_VALUE ? digits : 0};
}
