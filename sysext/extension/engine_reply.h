/*
 * engine_reply: the engine's reply frame (sources/frame.h), read from the
 * flow's non-blocking unix socket by the extension's read source.
 *
 * The reply is followed on the same socket by the flow's own bytes (an
 * accept: the server's first bytes may already be there), so it is read
 * exactly: first the 10-byte prefix, then the length the prefix gives,
 * never a byte past the frame. Those belong to the relay (flowrelay.h),
 * which reads the socket next. Whatever state a read leaves is kept in
 * the reader, so the read source can fire any number of times.
 */
#ifndef DLPGATE_SYSEXT_ENGINE_REPLY_H
#define DLPGATE_SYSEXT_ENGINE_REPLY_H

#include "sources/frame.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint8_t in[FRAME_PREFIX + FRAME_MAX_JSON];
	size_t have;
} engine_reply_t;

void engine_reply_init(engine_reply_t *rr);

/* Reads what is there. FRAME_OK: *r is the reply. FRAME_NEED_MORE: the
 * socket has nothing more now (wait for the read source). FRAME_BAD: err
 * says why, for the log: the engine closed before its reply, reading
 * failed, or what came is not a reply frame. */
frame_status_t engine_reply_read(engine_reply_t *rr, int fd, frame_reply_t *r, char *err, size_t errlen);

#endif
