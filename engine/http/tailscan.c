/*
 * tailscan: see tailscan.h.
 */
#include "http/tailscan.h"

#include <string.h>

static void init(tail_t *t, size_t carry_max, size_t step)
{
	memset(t, 0, sizeof *t);
	t->carry_max = carry_max;
	t->step = step ? step : TAIL_STEP_DEFAULT;
	bytebuf_init(&t->text, 0);
	bytebuf_init(&t->raw, 0);
}

bool tail_init_identity(tail_t *t, size_t carry_max, size_t step, const uint8_t *carry, size_t n, uint64_t offset)
{
	init(t, carry_max, step);
	t->offset = offset;
	t->carry = n;
	return bytebuf_reserve(&t->text, carry_max + t->step) && bytebuf_append(&t->text, carry, n);
}

body_status_t tail_init_encoded(tail_t *t, size_t carry_max, size_t step, const char *ce, size_t ce_len,
				const body_limits_t *lim, uint64_t scanned, const char **why)
{
	init(t, carry_max, step);
	t->skip = scanned > carry_max ? scanned - carry_max : 0;
	t->offset = t->skip;
	t->seen_end = scanned;
	return body_decoder_new(ce, ce_len, lim, &t->dec, why);
}

void tail_free(tail_t *t)
{
	body_decoder_free(t->dec);
	bytebuf_free(&t->text);
	bytebuf_free(&t->raw);
	memset(t, 0, sizeof *t);
}

size_t tail_feed(tail_t *t, const uint8_t *data, size_t n, body_status_t *st, const char **why)
{
	*st = BODY_OK;
	size_t used = 0;
	while (used < n && !tail_ready(t)) {
		if (!t->dec) {
			size_t want = t->step - (t->text.len - t->carry);
			size_t k = n - used < want ? n - used : want;
			if (!bytebuf_append(&t->text, data + used, k))
				goto oom;
			used += k;
			continue;
		}
		size_t k = n - used < TAIL_FEED_PIECE ? n - used : TAIL_FEED_PIECE;
		if (!bytebuf_append(&t->raw, data + used, k))
			goto oom;
		size_t before = t->text.len;
		*st = body_decoder_feed(t->dec, data + used, k, &t->text, why);
		used += k;
		if (t->skip && t->text.len > before) {
			/* decoded again from byte 0: what the prefix scan read,
			 * but for its last carry bytes, is dropped */
			size_t fresh = t->text.len - before;
			size_t drop = t->skip < fresh ? (size_t)t->skip : fresh;
			memmove(t->text.data + before, t->text.data + before + drop, fresh - drop);
			t->text.len -= drop;
			t->skip -= drop;
		}
		/* the part of text the prefix scan read counts as carry */
		if (t->seen_end > t->offset && t->seen_end - t->offset > t->carry)
			t->carry = (size_t)(t->seen_end - t->offset);
		if (t->carry > t->text.len)
			t->carry = t->text.len;
		if (*st != BODY_OK)
			return used;
	}
	return used;
oom:
	*st = BODY_CORRUPT;
	*why = "out of memory";
	return used;
}

const uint8_t *tail_output(tail_t *t, bool final, size_t *len)
{
	if (t->dec) {
		*len = t->out_len = t->raw.len;
		return (const uint8_t *)t->raw.data;
	}
	size_t keep = final ? 0 : t->text.len < t->carry_max ? t->text.len : t->carry_max;
	*len = t->out_len = t->text.len - keep;
	return (const uint8_t *)t->text.data;
}

void tail_shift(tail_t *t)
{
	size_t keep = t->text.len < t->carry_max ? t->text.len : t->carry_max;
	if (t->dec)
		t->raw.len = 0;
	else
		keep = t->text.len - t->out_len;
	size_t drop = t->text.len - keep;
	if (keep && drop)
		memmove(t->text.data, t->text.data + drop, keep);
	t->text.len = keep;
	t->offset += drop;
	t->carry = keep;
	t->out_len = 0;
}
