/*
 * headview: a request's target and header fields as one text for the
 * detectors, with a map back to the head's arena for redaction and a name
 * for every place a match can be (its location).
 *
 * The text is what a person reading the request would see:
 *
 *     <target>\n                 location "url"
 *     <name>: <value>\n          location "header:<name>" (lowercase), per live field
 *     <name>: <v1><v2>...\n      a field repeated under one name, joined
 *
 * and a Cookie field's pairs each get "cookie:<name>". Header names are in
 * the text too, so keywords and context words in a name (X-Api-Key,
 * X-Card-Number) count, and a secret used as a name is found. One text for
 * all fields means one pass of the prefilter per request.
 *
 * Every text byte that came from the arena belongs to one segment (the
 * target, a name, a value, a cookie's name or value); separators the view
 * adds (": ", "\n") belong to none and are never written back. Redaction
 * masks letters and digits in place, same length ('*' is a legal byte of a
 * target, a token and a cookie), so the request line and the fields stay
 * valid and no framing moves. What cannot be masked: Host (where the
 * request goes; virtual hosting and the upstream certificate depend on it),
 * Content-Length and Transfer-Encoding (framing). A redaction that would
 * touch them is refused (the relay blocks and says which field).
 */
#ifndef DLPGATE_HTTP_HEADVIEW_H
#define DLPGATE_HTTP_HEADVIEW_H

#include "core/bytebuf.h"
#include "http/head.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { HV_TARGET = 0, HV_NAME, HV_VALUE, HV_COOKIE_NAME, HV_COOKIE_VALUE } hv_kind_t;

typedef struct {
	uint32_t text_off, len;  /* the segment in the view's text */
	uint32_t arena_off;      /* the same bytes in the head's arena */
	uint32_t label_seg;      /* the segment that names this one (itself for names) */
	uint8_t kind;            /* hv_kind_t */
	bool maskable;
} hv_seg_t;

typedef struct {
	bytebuf_t text;
	hv_seg_t *segs;
	uint32_t n_segs;
	size_t cap_segs;
	uint32_t joined_from;  /* text past this: repeated fields, joined */
} head_view_t;

/* Builds the view of request head h; false if out of memory. */
bool head_view_build(head_view_t *v, const http_head_t *h);
void head_view_free(head_view_t *v);

/* The location of text offset off: "url", "header:NAME", "cookie:NAME"
 * (names lowercased for headers, cut at 48 bytes). mask_names: the name
 * is masked (letters and digits -> '*') because a match covers it. */
void head_view_location(const head_view_t *v, uint32_t off, char *out, size_t cap, bool mask_name);
/* The text range of the name that labels text offset off (none: len 0). */
void head_view_name_of(const head_view_t *v, uint32_t off, uint32_t *start, uint32_t *len);

/* True for a match in a joined repeated field that lies inside one of
 * its values: that value's own line has it already. */
bool head_view_repeat(const head_view_t *v, uint32_t start, uint32_t len);

/* NULL if text [start, start+len) can be masked, else what cannot, in
 * words (static storage: "the Host header"). */
const char *head_view_unmaskable(const head_view_t *v, const http_head_t *h, uint32_t start, uint32_t len);
/* Masks text [start, start+len) back into h's arena (keep_* as in
 * mask.h); only segment bytes are written, never separators. */
void head_view_redact(const head_view_t *v, http_head_t *h, uint32_t start, uint32_t len, uint8_t keep_first,
		      uint8_t keep_last);

#endif
