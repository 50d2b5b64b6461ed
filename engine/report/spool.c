/*
 * spool: segment files, a cursor, and counts of everything lost (see
 * spool.h for the format and the rules).
 *
 * The segment list (sequence, size, record count) lives in memory, built at
 * open by walking the record headers of the segments already there, so the
 * size cap and the drop counts never need to read a payload. The lock
 * covers the list, the writer's descriptor and the counters; the reader
 * copies what it needs under it and reads the files without it, which a
 * concurrent drop cannot disturb (an unlinked file stays readable through
 * the descriptor the reader opened).
 */
#include "report/spool.h"

#include "core/log.h"
#include "core/platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#define HDR 12
static const char magic[4] = {'D', 'L', 'P', 'R'};

/* A spool_drop record and the losses it reports. */
typedef struct {
	uint64_t rec; /* its index in the segment */
	spool_drops_t carried;
} carrier_t;

typedef struct {
	uint64_t seq, size, recs;
	carrier_t *carriers; /* spool_drop records appended by this run */
	size_t n_carriers, cap_carriers;
} segment_t;

struct spool {
	char dir[512];
	spool_opts_t o;
	pthread_mutex_t lock;
	segment_t *segs;        /* oldest first; the last one is being written */
	size_t n_segs, cap_segs;
	uint64_t bytes;         /* the segments' sizes summed, for the cap */
	int wfd;
	spool_pos_t cursor;
	uint64_t appended;
	spool_drops_t pending, total;
};

static void seg_path(const spool_t *s, uint64_t seq, char *out, size_t n)
{
	snprintf(out, n, "%s/%020" PRIu64 ".seg", s->dir, seq);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Header checks that need no payload: magic and a length that fits. */
static bool header_ok(const unsigned char *h, uint64_t off, uint64_t size)
{
	uint32_t len = get32(h + 4);
	return !memcmp(h, magic, 4) && len <= SPOOL_RECORD_MAX && off + HDR + len <= size;
}

/* Records in a segment, by headers; a bad header ends the count (the
 * reader will meet it and count it as corrupt). */
static uint64_t count_records(int fd, uint64_t size)
{
	uint64_t off = 0, n = 0;
	unsigned char h[HDR];
	while (off + HDR <= size && pread(fd, h, HDR, (off_t)off) == HDR && header_ok(h, off, size)) {
		off += HDR + get32(h + 4);
		n++;
	}
	return n + (off < size); /* a torn tail still is one record lost */
}

static bool add_segment(spool_t *s, uint64_t seq, uint64_t size, uint64_t recs)
{
	if (!bytebuf_grow_array(&s->segs, sizeof *s->segs, s->n_segs, &s->cap_segs, 16))
		return false;
	s->segs[s->n_segs++] = (segment_t){.seq = seq, .size = size, .recs = recs};
	s->bytes += size;
	return true;
}

static int cmp_seq(const void *a, const void *b)
{
	const segment_t *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool save_cursor(spool_t *s)
{
	char tmp[600], path[600], line[96];
	snprintf(tmp, sizeof tmp, "%s/cursor.tmp", s->dir);
	snprintf(path, sizeof path, "%s/cursor", s->dir);
	int n = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s->cursor.seq, s->cursor.off,
			 s->cursor.recs);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	bool ok = write(fd, line, (size_t)n) == n && (s->o.fsync == FSYNC_NEVER || platform_datasync(fd) == 0);
	close(fd);
	return ok && rename(tmp, path) == 0;
}

static void load_cursor(spool_t *s)
{
	char path[600];
	snprintf(path, sizeof path, "%s/cursor", s->dir);
	FILE *f = fopen(path, "re");
	spool_pos_t c = {0};
	if (f && fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64, &c.seq, &c.off, &c.recs) == 3)
		s->cursor = c;
	if (f)
		fclose(f);
}

/* Keeps the cursor inside the segment list: a cursor before the first
 * segment (its segment was deleted) moves to the start of the first. */
static void clamp_cursor(spool_t *s)
{
	if (s->n_segs && s->cursor.seq < s->segs[0].seq)
		s->cursor = (spool_pos_t){s->segs[0].seq, 0, 0};
}

static bool open_writer(spool_t *s, char *err, size_t errlen)
{
	uint64_t seq = s->n_segs ? s->segs[s->n_segs - 1].seq + 1 : 1;
	char path[600];
	seg_path(s, seq, path, sizeof path);
	s->wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (s->wfd < 0) {
		snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
		return false;
	}
	if (!add_segment(s, seq, 0, 0)) {
		snprintf(err, errlen, "spool: out of memory");
		return false;
	}
	clamp_cursor(s);
	return true;
}

/* The segments there (by their record headers) and the cursor. */
static bool scan(spool_t *s, char *err, size_t errlen)
{
	DIR *d = opendir(s->dir);
	if (!d) {
		snprintf(err, errlen, "spool %s: %s", s->dir, strerror(errno));
		return false;
	}
	bool ok = true;
	struct dirent *de;
	while (ok && (de = readdir(d))) {
		char *end;
		unsigned long long seq = strtoull(de->d_name, &end, 10);
		if (end == de->d_name || strcmp(end, ".seg"))
			continue;
		char path[600];
		seg_path(s, seq, path, sizeof path);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		ok = add_segment(s, seq, (uint64_t)st.st_size, count_records(fd, (uint64_t)st.st_size));
		close(fd);
		if (!ok)
			snprintf(err, errlen, "spool: out of memory");
	}
	closedir(d);
	if (s->n_segs)
		qsort(s->segs, s->n_segs, sizeof *s->segs, cmp_seq);
	load_cursor(s);
	clamp_cursor(s);
	return ok;
}

static spool_t *spool_new(const char *dir, const spool_opts_t *o, char *err, size_t errlen)
{
	spool_t *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "spool: out of memory");
		return NULL;
	}
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	if (o)
		s->o = *o;
	s->wfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

spool_t *spool_open(const char *dir, const spool_opts_t *o, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "spool %s: %s", dir, strerror(errno));
		return NULL;
	}
	spool_t *s = spool_new(dir, o, err, errlen);
	if (s && (!scan(s, err, errlen) || !open_writer(s, err, errlen))) {
		spool_close(s);
		return NULL;
	}
	return s;
}

bool spool_peek(const char *dir, spool_stats_t *out, char *err, size_t errlen)
{
	spool_t *s = spool_new(dir, NULL, err, errlen);
	bool ok = s && scan(s, err, errlen);
	if (ok)
		spool_stats(s, out);
	spool_close(s);
	return ok;
}

void spool_close(spool_t *s)
{
	if (!s)
		return;
	if (s->wfd >= 0) {
		if (s->o.fsync != FSYNC_NEVER)
			platform_datasync(s->wfd);
		close(s->wfd);
	}
	pthread_mutex_destroy(&s->lock);
	for (size_t i = 0; i < s->n_segs; i++)
		free(s->segs[i].carriers);
	free(s->segs);
	free(s);
}

static uint64_t unread_in(const spool_t *s, const segment_t *g)
{
	if (g->seq < s->cursor.seq)
		return 0;
	if (g->seq == s->cursor.seq)
		return g->recs > s->cursor.recs ? g->recs - s->cursor.recs : 0;
	return g->recs;
}

static void delete_first_segment(spool_t *s)
{
	char path[600];
	seg_path(s, s->segs[0].seq, path, sizeof path);
	unlink(path);
	free(s->segs[0].carriers);
	s->bytes -= s->segs[0].size;
	memmove(s->segs, s->segs + 1, (s->n_segs - 1) * sizeof *s->segs);
	s->n_segs--;
}

static void add_drops(spool_drops_t *to, const spool_drops_t *d)
{
	to->full += d->full;
	to->corrupt += d->corrupt;
	to->rejected += d->rejected;
	to->write_error += d->write_error;
}

/* Losses, to report (pending) and for the status (total). Callers hold
 * the lock. */
static void count_lost(spool_t *s, spool_drops_t d)
{
	add_drops(&s->pending, &d);
	add_drops(&s->total, &d);
}

/* Dropping segment g unread: its spool_drop records are not events lost,
 * and the losses they carried are reported again (else a long outage
 * would drop the reports of its own drops, and the count with them).
 * Returns how many of g's unread records those were. */
static uint64_t recarry(spool_t *s, const segment_t *g)
{
	uint64_t first_unread = g->seq < s->cursor.seq ? UINT64_MAX : g->seq == s->cursor.seq ? s->cursor.recs : 0;
	uint64_t n = 0;
	for (size_t i = 0; i < g->n_carriers; i++)
		if (g->carriers[i].rec >= first_unread) {
			add_drops(&s->pending, &g->carriers[i].carried);
			n++;
		}
	return n;
}

/* Over the cap, the oldest segments go, the one being written never. */
static void enforce_cap(spool_t *s)
{
	while (s->bytes > s->o.max_bytes && s->n_segs > 1) {
		uint64_t lost = unread_in(s, &s->segs[0]);
		lost -= recarry(s, &s->segs[0]);
		count_lost(s, (spool_drops_t){.full = lost});
		delete_first_segment(s);
		clamp_cursor(s);
		if (lost)
			log_msg(LOG_WARN, "spool_full", "spool over %" PRIu64 " bytes: dropped %" PRIu64
				" unsent events (the oldest); raise report.spool_max_kb or check the console", s->o.max_bytes,
				lost);
	}
}

static void roll(spool_t *s)
{
	char err[256];
	int old = s->wfd;
	if (s->o.fsync != FSYNC_NEVER)
		platform_datasync(old);
	if (!open_writer(s, err, sizeof err)) {
		s->wfd = old; /* keep writing where we can */
		log_msg(LOG_ERROR, "spool_error", "%s", err);
		return;
	}
	close(old);
}

bool spool_append(spool_t *s, const char *rec, size_t len)
{
	return spool_append_drops(s, rec, len, NULL);
}

bool spool_append_drops(spool_t *s, const char *rec, size_t len, const spool_drops_t *carried)
{
	unsigned char h[HDR];
	memcpy(h, magic, 4);
	put32(h + 4, (uint32_t)len);
	put32(h + 8, (uint32_t)crc32(0, (const Bytef *)rec, (uInt)len));
	struct iovec iov[2] = {{h, HDR}, {(void *)rec, len}};
	pthread_mutex_lock(&s->lock);
	segment_t *g = &s->segs[s->n_segs - 1];
	ssize_t w = len <= SPOOL_RECORD_MAX ? writev(s->wfd, iov, 2) : -1;
	int e = errno;
	bool ok = w == (ssize_t)(HDR + len);
	if (ok) {
		g->size += HDR + len;
		s->bytes += HDR + len;
		g->recs++;
		s->appended++;
		if (carried && bytebuf_grow_array(&g->carriers, sizeof *g->carriers, g->n_carriers, &g->cap_carriers, 4))
			g->carriers[g->n_carriers++] = (carrier_t){g->recs - 1, *carried};
		if (s->o.fsync == FSYNC_ALWAYS)
			platform_datasync(s->wfd);
		if (g->size >= s->o.segment_bytes)
			roll(s);
		enforce_cap(s);
	} else {
		if (w > 0 && ftruncate(s->wfd, (off_t)g->size) != 0)
			roll(s); /* a torn record stays behind: start clean */
		if (carried)
			add_drops(&s->pending, carried); /* reported again, next time */
		else
			count_lost(s, (spool_drops_t){.write_error = 1});
	}
	pthread_mutex_unlock(&s->lock);
	if (!ok)
		log_msg(LOG_ERROR, "spool_error", "event of %zu bytes not spooled: %s", len,
			len > SPOOL_RECORD_MAX ? "larger than 1 MiB" : w < 0 ? strerror(e) : "short write");
	return ok;
}

void spool_sync(spool_t *s)
{
	pthread_mutex_lock(&s->lock);
	int fd = dup(s->wfd);
	pthread_mutex_unlock(&s->lock);
	if (fd >= 0) {
		platform_datasync(fd);
		close(fd);
	}
}

void spool_batch_free(spool_batch_t *b)
{
	bytebuf_free(&b->ndjson);
	memset(b, 0, sizeof *b);
}

/* The segments from the cursor on, copied under the lock. */
static size_t snapshot(spool_t *s, segment_t *out, size_t max, spool_pos_t *cur)
{
	pthread_mutex_lock(&s->lock);
	*cur = s->cursor;
	size_t n = 0;
	for (size_t i = 0; i < s->n_segs && n < max; i++)
		if (s->segs[i].seq >= cur->seq)
			out[n++] = s->segs[i];
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void count_corrupt(spool_t *s, uint64_t seq, uint64_t off)
{
	pthread_mutex_lock(&s->lock);
	count_lost(s, (spool_drops_t){.corrupt = 1});
	pthread_mutex_unlock(&s->lock);
	log_msg(LOG_WARN, "spool_corrupt", "segment %" PRIu64 " offset %" PRIu64
		": bad record (torn write or damage); skipping the rest of the segment", seq, off);
}

void spool_read(spool_t *s, uint32_t max_records, size_t max_bytes, spool_batch_t *b)
{
	memset(b, 0, sizeof *b);
	segment_t segs[64];
	spool_pos_t cur;
	size_t n = snapshot(s, segs, 64, &cur);
	spool_pos_t pos = cur;
	for (size_t i = 0; i < n && b->n < max_records; i++) {
		segment_t *g = &segs[i];
		if (g->seq != pos.seq)
			pos = (spool_pos_t){g->seq, 0, 0};
		bool last = i + 1 == n;
		char path[600];
		seg_path(s, g->seq, path, sizeof path);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) /* dropped meanwhile */
			continue;
		bool corrupt = false;
		while (pos.off < g->size && b->n < max_records) {
			unsigned char h[HDR];
			if (pread(fd, h, HDR, (off_t)pos.off) != HDR || !header_ok(h, pos.off, g->size)) {
				corrupt = true;
				break;
			}
			uint32_t len = get32(h + 4);
			if (b->n && b->ndjson.len + len + 1 > max_bytes)
				break;
			/* straight into the batch; kept only if its checksum holds */
			if (!bytebuf_reserve(&b->ndjson, (size_t)len + 1))
				break;
			char *rec = b->ndjson.data + b->ndjson.len;
			if (pread(fd, rec, len, (off_t)(pos.off + HDR)) != (ssize_t)len)
				break;
			if ((uint32_t)crc32(0, (const Bytef *)rec, len) != get32(h + 8)) {
				corrupt = true;
				break;
			}
			rec[len] = '\n';
			b->ndjson.len += (size_t)len + 1;
			b->n++;
			pos.off += HDR + len;
			pos.recs++;
		}
		close(fd);
		if (corrupt) {
			count_corrupt(s, g->seq, pos.off);
			pos.off = g->size; /* the rest of this segment cannot be trusted */
			pos.recs = g->recs;
			if (last)
				break;
			continue;
		}
		if (pos.off < g->size || last)
			break; /* the batch is full, or this is the segment being written */
	}
	b->end = pos;
	b->moved = pos.seq != cur.seq || pos.off != cur.off;
}

bool spool_commit(spool_t *s, const spool_batch_t *b)
{
	pthread_mutex_lock(&s->lock);
	const spool_pos_t *e = &b->end;
	/* A drop may have moved the cursor past this batch meanwhile. */
	if (e->seq > s->cursor.seq || (e->seq == s->cursor.seq && e->off > s->cursor.off))
		s->cursor = *e;
	/* Segments wholly read go; the one being written stays. */
	while (s->n_segs > 1 && (s->segs[0].seq < s->cursor.seq ||
				 (s->segs[0].seq == s->cursor.seq && s->cursor.off >= s->segs[0].size))) {
		delete_first_segment(s);
		clamp_cursor(s);
	}
	bool ok = save_cursor(s);
	pthread_mutex_unlock(&s->lock);
	if (!ok)
		log_msg(LOG_ERROR, "spool_error", "cannot save the spool cursor in %s: %s (events may be sent twice; the "
			"console dedupes them)", s->dir, strerror(errno));
	return ok;
}

void spool_skip(spool_t *s)
{
	spool_batch_t b;
	spool_read(s, 1, SPOOL_RECORD_MAX + 1, &b);
	if (b.n) {
		pthread_mutex_lock(&s->lock);
		count_lost(s, (spool_drops_t){.rejected = 1});
		pthread_mutex_unlock(&s->lock);
	}
	if (b.moved)
		spool_commit(s, &b);
	spool_batch_free(&b);
}

void spool_stats(spool_t *s, spool_stats_t *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_segs; i++) {
		const segment_t *g = &s->segs[i];
		out->depth += unread_in(s, g);
		if (g->seq > s->cursor.seq)
			out->bytes += g->size;
		else if (g->seq == s->cursor.seq)
			out->bytes += g->size - (s->cursor.off < g->size ? s->cursor.off : g->size);
	}
	out->segments = s->n_segs;
	out->appended = s->appended;
	out->dropped = s->total;
	pthread_mutex_unlock(&s->lock);
}

spool_drops_t spool_take_drops(spool_t *s)
{
	pthread_mutex_lock(&s->lock);
	spool_drops_t d = s->pending;
	memset(&s->pending, 0, sizeof s->pending);
	pthread_mutex_unlock(&s->lock);
	return d;
}
