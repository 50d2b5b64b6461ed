/*
 * tailscan: the part of a body past inspect.max_bytes, scanned as it
 * streams, in windows with carry-over.
 *
 * Up to max_bytes a message is held and decided whole (inspect.c). Past
 * it, nothing is held whole again: the bytes that follow are cut into
 * windows of `step` fresh bytes, and each window starts with the last
 * `carry_max` bytes of the one before, so a match that straddles a cut
 * lies whole in the later window as long as it is no longer than the
 * carry (inspect.carry; 4 KiB unless the policy says). Matches that end
 * inside the carry were counted by the window before and are not counted
 * again (policy_msg_t.fresh_from).
 *
 * An identity body is forwarded from the window itself, so redaction
 * masks in place before anything leaves: the carry is the only part held
 * back from the upstream between windows. An encoded body (gzip, deflate,
 * br, zstd, stacked) is decoded as it arrives by one streaming decoder
 * that is fed the held prefix again (its state starts at byte 0; the
 * prefix's raw bytes go up through the windows like the rest); raw bytes
 * wait until the window holding what they decode to has been scanned. A mask cannot be written back into compressed bytes: a
 * redaction there becomes an abort (the relay's call).
 *
 * Memory per streamed message: carry_max + step of text, plus, encoded,
 * the raw bytes of one window and the decoders' windows (body.h); a
 * decoder is fed at most TAIL_FEED_PIECE raw bytes before the window is
 * checked, so one piece can overshoot a window by at most that times
 * inspect.max_ratio.
 *
 * The module is pure (no I/O): the relay feeds it body spans and asks it
 * what to forward.
 */
#ifndef DLPGATE_HTTP_TAILSCAN_H
#define DLPGATE_HTTP_TAILSCAN_H

#include "core/bytebuf.h"
#include "http/body.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAIL_FEED_PIECE 4096
#define TAIL_STEP_DEFAULT (256u << 10)
#define TAIL_CARRY_DEFAULT 4096u

typedef struct {
	size_t carry_max, step;
	body_decoder_t *dec;     /* NULL: identity */
	bytebuf_t text;          /* [0, carry): seen by the window before; the rest is fresh */
	size_t carry;
	bytebuf_t raw;           /* encoded: bytes not forwarded yet */
	uint64_t offset;         /* where text[0] is in the (decoded) body */
	uint64_t skip;           /* encoded: decoded bytes still to drop (read by the prefix scan) */
	uint64_t seen_end;       /* encoded: decoded bytes the prefix scan read */
	size_t out_len;          /* what tail_output() handed out */
} tail_t;

/* Identity: carry (n bytes, not forwarded yet) ends at body offset
 * offset + n and was scanned with the prefix. */
bool tail_init_identity(tail_t *t, size_t carry_max, size_t step, const uint8_t *carry, size_t n, uint64_t offset);
/* Encoded: the body is fed again from its first raw byte (the decoder's
 * state starts there); of what it decodes to, the first `scanned` bytes
 * were read by the prefix scan, and only their last carry_max are kept
 * (as carry). */
body_status_t tail_init_encoded(tail_t *t, size_t carry_max, size_t step, const char *ce, size_t ce_len,
				const body_limits_t *lim, uint64_t scanned, const char **why);
void tail_free(tail_t *t);

/* Takes body bytes until a window is ready; returns how many it took
 * (all, unless a window became ready first). *st is BODY_OK unless
 * decoding failed (why says how). */
size_t tail_feed(tail_t *t, const uint8_t *data, size_t n, body_status_t *st, const char **why);
/* A window is ready: step fresh bytes or more. */
static inline bool tail_ready(const tail_t *t)
{
	return t->text.len - t->carry >= t->step;
}
/* The window to scan: text (identity: the body bytes themselves, mask
 * them in place), its length, and where its fresh part starts. */
static inline uint8_t *tail_text(const tail_t *t, size_t *len, size_t *fresh_from)
{
	*len = t->text.len;
	*fresh_from = t->carry;
	return (uint8_t *)t->text.data;
}
/* After the window was decided: the bytes to forward now (the last
 * window, final: everything left). Call tail_shift() once they are out. */
const uint8_t *tail_output(tail_t *t, bool final, size_t *len);
void tail_shift(tail_t *t);

#endif
