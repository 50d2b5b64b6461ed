/*
 * spool: the agent's on-disk queue of events, so that an event the engine
 * has emitted survives the console being away, the agent being killed and
 * the machine rebooting (per the fsync policy).
 *
 * A spool is a directory of segment files (NNNNNNNNNNNNNNNNNNNN.seg), each
 * a run of records: "DLPR", u32 length, u32 CRC-32 of the payload (little
 * endian), payload (one JSON event, no newline). Writers append whole
 * records under one lock; a new process always starts a new segment, so a
 * segment a crash may have torn is never appended to. One reader (the
 * uploader) reads from a cursor (segment, offset), persisted in `cursor`
 * only after the console acknowledged what was read: a crash between
 * upload and cursor write re-sends, and the console dedupes by event id.
 *
 * Every loss is counted, never silent:
 *   - full: past max_bytes the oldest segment is deleted, its unread
 *     records counted as dropped (the segment being written is never
 *     dropped, so one segment is the floor);
 *   - corrupt: a record with a bad header or checksum ends its segment's
 *     reading (its length cannot be trusted); counted once;
 *   - rejected: a record the console refused on its own (spool_skip);
 *   - write_error: a record that could not be written (disk full, ...).
 * spool_take_drops() hands the uploader what to report in its next batch.
 * Those reports are spooled too (spool_append_drops): when one is itself
 * dropped unread, the losses it carried are handed over again, so a long
 * outage cannot lose the count of its own losses. (Reports written by an
 * earlier run and dropped after a restart still count as one record
 * each: their counts are not kept across runs.)
 */
#ifndef DLPGATE_SPOOL_H
#define DLPGATE_SPOOL_H

#include "core/bytebuf.h"
#include "core/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_RECORD_MAX (1024 * 1024)

typedef struct {
	uint64_t max_bytes;
	uint64_t segment_bytes;
	fsync_mode_t fsync;
} spool_opts_t;

typedef struct spool spool_t;

typedef struct {
	uint64_t seq, off, recs;   /* segment, byte offset, records before off */
} spool_pos_t;

/* Records read from the cursor: payloads joined by '\n' (NDJSON). */
typedef struct {
	bytebuf_t ndjson;
	uint32_t n;
	spool_pos_t end;           /* the cursor once these are acknowledged */
	bool moved;                /* end differs from the cursor (even with n == 0) */
} spool_batch_t;

typedef struct {
	uint64_t full, corrupt, rejected, write_error;
} spool_drops_t;

typedef struct {
	uint64_t bytes;            /* on disk, unread part only */
	uint64_t depth;            /* records not yet acknowledged */
	uint64_t segments;
	uint64_t appended;         /* this run */
	spool_drops_t dropped;     /* this run */
} spool_stats_t;

/* Opens (creating) DIR, finds the segments and the cursor, and starts a new
 * segment. NULL with err naming the path and the problem. */
spool_t *spool_open(const char *dir, const spool_opts_t *o, char *err, size_t errlen);
void spool_close(spool_t *s);
/* What a spool holds, read without opening it for writing (a running agent
 * may own it): depth, bytes, segments. False with err if DIR is unreadable. */
bool spool_peek(const char *dir, spool_stats_t *out, char *err, size_t errlen);

/* Appends one record. False when it could not be stored (too large, disk
 * error): counted as a write_error drop. Thread-safe. */
bool spool_append(spool_t *s, const char *rec, size_t len);
/* A spool_drop event carrying the losses `carried`: should the spool drop
 * its record unread, or fail to write it, those losses are reported again
 * (spool_take_drops) instead of being lost with it. */
bool spool_append_drops(spool_t *s, const char *rec, size_t len, const spool_drops_t *carried);
/* Flushes the segment being written to stable storage (fsync "interval"). */
void spool_sync(spool_t *s);

/* Reader side (one thread). */
void spool_read(spool_t *s, uint32_t max_records, size_t max_bytes, spool_batch_t *b);
/* The batch was acknowledged: advance the cursor, delete what was read. */
bool spool_commit(spool_t *s, const spool_batch_t *b);
/* Counts the first unread record as rejected and steps over it. */
void spool_skip(spool_t *s);
void spool_batch_free(spool_batch_t *b);

void spool_stats(spool_t *s, spool_stats_t *out);
/* Losses since the last call, by cause; resets them. */
spool_drops_t spool_take_drops(spool_t *s);

#endif
