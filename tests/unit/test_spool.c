/*
 * The spool (report/spool.h) on real files: what is appended is read back
 * in order across segments and across a reopen (a new process); only an
 * acknowledged batch moves the cursor; the size cap drops the oldest and
 * counts exactly what was lost; a torn or damaged record is skipped and
 * counted, and reading goes on with the next segment.
 */
#include "suites.h"
#include "report/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[300];

static void make_dir(void)
{
	snprintf(dir, sizeof dir, "%s/dlpgate-spool-XXXXXX", unit_tmp_base());
	ck_assert(mkdtemp(dir));
}

static void remove_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[600];
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

static spool_t *open_spool(uint64_t max, uint64_t seg)
{
	char err[256] = "";
	spool_opts_t o = {.max_bytes = max, .segment_bytes = seg, .fsync = FSYNC_NEVER};
	spool_t *s = spool_open(dir, &o, err, sizeof err);
	ck_assert_msg(s, "%s", err);
	return s;
}

static void append_n(spool_t *s, int from, int n)
{
	for (int i = from; i < from + n; i++) {
		char rec[64];
		int len = snprintf(rec, sizeof rec, "{\"n\":%d}", i);
		ck_assert(spool_append(s, rec, (size_t)len));
	}
}

/* Reads everything left, acknowledging each batch; each record goes to
 * each(line, arg). */
static void read_all(spool_t *s, uint32_t per_batch, void (*each)(const char *line, void *arg), void *arg)
{
	for (;;) {
		spool_batch_t b;
		spool_read(s, per_batch, 1 << 20, &b);
		for (char *p = b.ndjson.data, *end = p ? p + b.ndjson.len : NULL; p && p < end;) {
			each(p, arg);
			p = (char *)memchr(p, '\n', (size_t)(end - p)) + 1;
		}
		bool more = b.moved;
		if (more)
			spool_commit(s, &b);
		spool_batch_free(&b);
		if (!more)
			return;
	}
}

static void note_number(const char *line, void *seen)
{
	int n;
	ck_assert(sscanf(line, "{\"n\":%d}", &n) == 1);
	snprintf((char *)seen + strlen(seen), 65536 - strlen(seen), "%s%d", *(char *)seen ? "," : "", n);
}

/* Reads everything left; returns the numbers in order as "a,b,c". */
static char *drain(spool_t *s, uint32_t per_batch)
{
	static char seen[65536];
	seen[0] = '\0';
	read_all(s, per_batch, note_number, seen);
	return seen;
}

START_TEST(order_across_segments_and_restarts)
{
	make_dir();
	spool_t *s = open_spool(1 << 20, 100); /* ~9 records per segment */
	append_n(s, 0, 30);
	spool_stats_t st;
	spool_stats(s, &st);
	ck_assert_uint_eq(st.depth, 30);
	ck_assert_uint_gt(st.segments, 3);
	/* a batch read but never acknowledged comes back */
	spool_batch_t b;
	spool_read(s, 5, 1 << 20, &b);
	ck_assert_uint_eq(b.n, 5);
	spool_batch_free(&b);
	spool_close(s);
	/* peeking reads the same without writing anything */
	spool_stats_t peek;
	char err[256];
	ck_assert(spool_peek(dir, &peek, err, sizeof err));
	ck_assert_uint_eq(peek.depth, 30);
	ck_assert_uint_eq(peek.segments, st.segments);
	ck_assert(spool_peek(dir, &peek, err, sizeof err) && peek.segments == st.segments);

	s = open_spool(1 << 20, 100);
	append_n(s, 30, 3);
	char *seen = drain(s, 7);
	char want[512] = "";
	for (int i = 0; i < 33; i++)
		snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? "," : "", i);
	ck_assert_str_eq(seen, want);
	spool_stats(s, &st);
	ck_assert_uint_eq(st.depth, 0);
	ck_assert_uint_eq(st.segments, 1); /* read segments are deleted, the current one stays */
	spool_close(s);

	/* after a restart nothing is read twice */
	s = open_spool(1 << 20, 100);
	ck_assert_str_eq(drain(s, 100), "");
	spool_close(s);
	remove_dir();
}
END_TEST

START_TEST(cap_drops_oldest_and_counts_exactly)
{
	make_dir();
	/* records are 12 + 8..9 bytes; segments roll at 100 bytes (5 records), cap 300 */
	spool_t *s = open_spool(300, 100);
	append_n(s, 0, 100);
	spool_stats_t st;
	spool_stats(s, &st);
	ck_assert_uint_le(st.bytes, 300 + 100);
	spool_drops_t d = spool_take_drops(s);
	char *seen = drain(s, 1000);
	ck_assert(seen[0]);
	uint64_t kept = 1;
	for (char *p = seen; (p = strchr(p, ',')); p++)
		kept++;
	ck_assert_uint_gt(d.full, 0);
	ck_assert_uint_eq(d.full + kept, 100);     /* every event is either delivered or counted */
	ck_assert_int_eq(atoi(seen), (int)d.full); /* the oldest went, in order */
	ck_assert_uint_eq(spool_take_drops(s).full, 0); /* taken once */
	spool_close(s);
	remove_dir();
}
END_TEST

static void count_event_or_report(const char *line, void *arg)
{
	uint64_t *counts = arg;
	unsigned long long n;
	if (sscanf(line, "{\"drop\":%llu}", &n) == 1)
		counts[1] += n;
	else
		counts[0]++;
}

/* A long outage: drops are reported into the spool, and those reports are
 * themselves pushed out by later drops. No count may be lost with them:
 * events appended = events delivered + the sum the reports that get
 * through (or are still to be made) add up to. */
START_TEST(drop_reports_dropped_in_turn_keep_their_counts)
{
	make_dir();
	spool_t *s = open_spool(300, 100); /* as above: ~5 records a segment, cap 300 */
	int next = 0;
	for (int round = 0; round < 20; round++) {
		append_n(s, next, 7);
		next += 7;
		/* what the uploader does each turn while the console is away */
		spool_drops_t d = spool_take_drops(s);
		if (d.full) {
			char rec[64];
			int len = snprintf(rec, sizeof rec, "{\"drop\":%llu}", (unsigned long long)d.full);
			ck_assert(spool_append_drops(s, rec, (size_t)len, &d));
		}
	}
	/* the console is back: read all, counting events and drop reports */
	uint64_t counts[2] = {0, 0}; /* delivered, reported */
	read_all(s, 100, count_event_or_report, counts);
	counts[1] += spool_take_drops(s).full; /* the report still to be made */
	ck_assert_uint_gt(counts[1], 0);
	ck_assert_uint_eq(counts[0] + counts[1], (uint64_t)next);
	spool_close(s);
	remove_dir();
}
END_TEST

/* The newest segment that holds records: the one the last run wrote. */
static char *written_segment(void)
{
	static char p[600];
	DIR *d = opendir(dir);
	struct dirent *e;
	char best[256] = "";
	while ((e = readdir(d))) {
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		if (strstr(e->d_name, ".seg") && stat(p, &st) == 0 && st.st_size > 0 && strcmp(e->d_name, best) > 0)
			snprintf(best, sizeof best, "%s", e->d_name);
	}
	closedir(d);
	snprintf(p, sizeof p, "%s/%s", dir, best);
	return p;
}

START_TEST(torn_tail_and_damage_are_skipped_and_counted)
{
	make_dir();
	spool_t *s = open_spool(1 << 20, 1 << 20);
	append_n(s, 0, 10);
	spool_close(s); /* a crash would leave the same file */

	/* a torn record at the end of the segment */
	int fd = open(written_segment(), O_WRONLY | O_APPEND);
	ck_assert(write(fd, "DLPR\x40\x00\x00\x00\x01\x02\x03\x04{\"n\":", 17) == 17);
	close(fd);
	s = open_spool(1 << 20, 1 << 20);
	spool_stats_t st;
	spool_stats(s, &st);
	ck_assert_uint_eq(st.depth, 11); /* the torn one is counted as a record lost */
	append_n(s, 10, 2);              /* into a new segment: the torn one is never appended to */
	ck_assert_str_eq(drain(s, 4), "0,1,2,3,4,5,6,7,8,9,10,11");
	spool_drops_t d = spool_take_drops(s);
	ck_assert_uint_eq(d.corrupt, 1);
	spool_close(s);

	/* a flipped byte in a payload: that record and the rest of its segment */
	s = open_spool(1 << 20, 1 << 20);
	append_n(s, 20, 5);
	spool_close(s);
	fd = open(written_segment(), O_RDWR);
	ck_assert(pwrite(fd, "X", 1, 12 + 9 + 12 + 3) == 1); /* inside record 21 */
	close(fd);
	s = open_spool(1 << 20, 1 << 20);
	append_n(s, 30, 1);
	ck_assert_str_eq(drain(s, 100), "20,30");
	ck_assert_uint_eq(spool_take_drops(s).corrupt, 1);
	spool_close(s);
	remove_dir();
}
END_TEST

START_TEST(oversized_record_is_refused_and_counted)
{
	make_dir();
	spool_t *s = open_spool(16 << 20, 1 << 20);
	char *big = malloc(SPOOL_RECORD_MAX + 1);
	memset(big, 'a', SPOOL_RECORD_MAX + 1);
	ck_assert(!spool_append(s, big, SPOOL_RECORD_MAX + 1));
	free(big);
	ck_assert_uint_eq(spool_take_drops(s).write_error, 1);
	append_n(s, 1, 1);
	spool_skip(s); /* a record the console refused */
	ck_assert_uint_eq(spool_take_drops(s).rejected, 1);
	ck_assert_str_eq(drain(s, 10), "");
	spool_close(s);
	remove_dir();
}
END_TEST

Suite *spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *t = tcase_create("spool");
	tcase_add_test(t, order_across_segments_and_restarts);
	tcase_add_test(t, cap_drops_oldest_and_counts_exactly);
	tcase_add_test(t, drop_reports_dropped_in_turn_keep_their_counts);
	tcase_add_test(t, torn_tail_and_damage_are_skipped_and_counted);
	tcase_add_test(t, oversized_record_is_refused_and_counted);
	suite_add_tcase(s, t);
	return s;
}
