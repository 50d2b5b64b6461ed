/*
 * libFuzzer: a spool segment as a crash, a bad disk or a meddler may have
 * left it. Whatever the bytes, opening and draining the spool ends: every
 * record read back has the length and checksum it was written with (so it
 * is one of the well-formed records in the input), what cannot be read is
 * counted as corrupt, and a second drain after the cursor moved reads
 * nothing again.
 */
#include "core/log.h"
#include "report/spool.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void clear_dir(void)
{
	const char *names[] = {"00000000000000000001.seg", "00000000000000000002.seg", "cursor", "cursor.tmp"};
	char p[128];
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		log_threshold = LOG_ERROR; /* a warning per corrupt input would drown the run */
		snprintf(dir, sizeof dir, "/tmp/fuzz-spool-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	clear_dir();
	char path[128], err[256];
	snprintf(path, sizeof path, "%s/00000000000000000001.seg", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	spool_opts_t o = {.max_bytes = 1 << 30, .segment_bytes = 1 << 20, .fsync = FSYNC_NEVER};
	spool_t *s = spool_open(dir, &o, err, sizeof err);
	if (!s)
		abort();
	size_t total = 0;
	for (int round = 0; round < 2; round++) {
		for (;;) {
			spool_batch_t b;
			spool_read(s, 7, 4096, &b);
			if (round == 1 && b.n)
				abort(); /* acknowledged records never come back */
			total += b.ndjson.len;
			bool moved = b.moved;
			if (moved)
				spool_commit(s, &b);
			spool_batch_free(&b);
			if (!moved)
				break;
		}
	}
	if (total > size)
		abort();
	spool_close(s);
	clear_dir();
	return 0;
}
