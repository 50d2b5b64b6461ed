/*
 * engine_reply: reads the reply frame of engine_reply.h. The frame's own
 * decoder says NEED_MORE until the whole frame is there and BAD as soon as
 * the prefix is wrong, so asking for "the prefix, then the rest of the
 * frame" never reads past it.
 */
#include "engine_reply.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void engine_reply_init(engine_reply_t *rr)
{
	rr->have = 0;
}

/* How much of the frame is still to come: the prefix, then its length. */
static size_t wanted(const engine_reply_t *rr)
{
	if (rr->have < FRAME_PREFIX)
		return FRAME_PREFIX - rr->have;
	const uint8_t *p = rr->in;
	size_t total = FRAME_PREFIX + ((size_t)p[6] << 24 | (size_t)p[7] << 16 | (size_t)p[8] << 8 | p[9]);
	return total > rr->have ? total - rr->have : 0;
}

frame_status_t engine_reply_read(engine_reply_t *rr, int fd, frame_reply_t *r, char *err, size_t errlen)
{
	for (;;) {
		size_t want = wanted(rr);
		/* the decoder refuses a prefix whose length is 0 or too big before
		 * we get here; this keeps the buffer safe regardless */
		if (want == 0 || want > sizeof rr->in - rr->have) {
			snprintf(err, errlen, "the engine's reply frame is malformed");
			return FRAME_BAD;
		}
		ssize_t n = read(fd, rr->in + rr->have, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return FRAME_NEED_MORE;
		if (n < 0) {
			snprintf(err, errlen, "reading the engine's reply failed: %s", strerror(errno));
			return FRAME_BAD;
		}
		if (n == 0) {
			snprintf(err, errlen, "the engine closed before its reply");
			return FRAME_BAD;
		}
		rr->have += (size_t)n;
		size_t used;
		frame_status_t st = frame_reply_decode(rr->in, rr->have, r, &used, err, errlen);
		if (st != FRAME_NEED_MORE)
			return st;
	}
}
