/*
 * views: the decoded readings of a text that detectors also scan.
 *
 * A card written 4814+3088+7165+1613 in a form field, %20-separated in a
 * query string, inside a base64 blob or a JSON string that holds a
 * URL-encoded field is not in the bytes as a person would read it. A view
 * is that reading: the text decoded by one encoding, with a map from each
 * decoded byte back to the bytes of its parent (the text it was decoded
 * from) and the width of its source there. Views stack: a view's text can
 * itself hold URL-encoding, base64 or JSON escapes, and each of those is a
 * view of it, up to a depth limit ("base64>url" is URL-encoding found
 * inside a base64 blob of the scanned text).
 *
 * Views cost only where the bytes call for them: a URL view exists only
 * when the text has a %XX escape (or a '+' between digits, or a form's
 * '+' and '='), and holds only the tokens that have them, each with a few
 * bytes of its line either side for context words; a JSON view only the
 * strings with escapes; a base64 view only the runs of at least 16 base64
 * characters whose decoded bytes read as text; the unwrapped view only
 * numbers broken over two lines (digits on one side of the break, groups
 * of pure digits or letters either side, 9 digits in all), joined with
 * the separator the number uses. Text with none of these costs two
 * vectorised passes (line breaks, base64 runs) and two memchr.
 *
 * Redaction writes back through the maps: a masked byte is encoded the
 * way its source was (a '*' for a plain byte, %2A for a percent-escape,
 * \u002a for a JSON escape, =2A for quoted-printable), so the result has
 * the same length and still decodes. A byte that came out of base64 (or
 * a JSON short escape) cannot be rewritten alone: dview_redact says so,
 * and the caller refuses the message instead.
 *
 * Everything is bounded: views per text, depth, runs per view and the
 * decoded bytes in all.
 */
#ifndef DLPGATE_VIEWS_H
#define DLPGATE_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	DVIEW_URL = 0,  /* %XX and '+' */
	DVIEW_FORM,     /* the same, and '&' read as a line break (a form body) */
	DVIEW_JSON,     /* string escapes: \n, \u0041, surrogate pairs */
	DVIEW_BASE64,   /* standard and URL-safe alphabets, MIME line breaks */
	DVIEW_QP,       /* quoted-printable (a multipart part that says so) */
	DVIEW_WRAP,     /* numbers broken over two lines, joined again */
} dview_kind_t;

const char *dview_kind_name(dview_kind_t k);

/* ---- decoders (one reading of n bytes of src) ----
 * Each writes at most n bytes to text, and for each text byte the offset
 * of its source in src (map) and the source bytes of its character
 * (width; 0 for the continuation bytes of a character and for bytes that
 * cannot be rewritten alone). Returns the text's length. */
size_t dview_decode_url(const uint8_t *src, size_t n, bool form, uint8_t *text, uint32_t *map, uint8_t *width);
size_t dview_decode_json(const uint8_t *src, size_t n, uint8_t *text, uint32_t *map, uint8_t *width);
size_t dview_decode_qp(const uint8_t *src, size_t n, uint8_t *text, uint32_t *map, uint8_t *width);

/* Writes byte c as a source of `width` bytes in an encoding of kind k
 * (out has room for 8); false when that encoding cannot (base64, a JSON
 * short escape, a byte the plain form would change the meaning of). */
bool dview_encode_char(dview_kind_t k, uint8_t width, uint8_t c, uint8_t *out);

/* ---- the views of one text ---- */

#define DVIEW_MAX 16

typedef struct {
	uint32_t max_views;  /* at most DVIEW_MAX; 0 = DVIEW_MAX */
	uint32_t max_depth;  /* views of views; 0 = 3 */
	uint32_t max_runs;   /* base64 runs (and URL tokens) per view; 0 = 4096 */
	uint64_t max_bytes;  /* decoded bytes of all views together; 0 = 2 x the text + 64 KiB
	                      * (each costs 6 bytes with its map: bounded memory) */
	uint32_t min_base64; /* shortest base64 run; 0 = 16 */
} dview_limits_t;

typedef struct {
	uint32_t off, len;
} dview_range_t;

typedef struct {
	dview_kind_t kind;
	int parent;          /* index of the view it was decoded from; -1 = the text */
	uint8_t depth;       /* 1: decoded from the text itself */
	char name[48];       /* the chain: "url", "base64>json>url" */
	uint8_t *text;
	uint32_t len;
	uint32_t *map;       /* text byte -> offset in the parent */
	uint8_t *width;
} dview_t;

typedef struct dview_set {
	dview_t v[DVIEW_MAX];
	uint32_t n;
	const uint8_t *root;
	size_t root_len;
	bool truncated;      /* a limit stopped a view (what was decoded is kept) */
	uint64_t bytes;
} dview_set_t;

/* Builds the views of text[0, len) (which must outlive the set): URL,
 * base64, and quoted-printable on the given ranges (the parts that declare
 * it), then the views of those views. False only when out of memory. */
bool dview_set_build(dview_set_t *set, const uint8_t *text, size_t len, const dview_range_t *qp, size_t n_qp,
		     const dview_limits_t *lim);
void dview_set_free(dview_set_t *set);

/* Is text[start, start+len) of view vi the text's own bytes, unchanged
 * (found already by a scan of the text itself)? */
bool dview_verbatim(const dview_set_t *set, int vi, uint32_t start, uint32_t len);
/* The span of the text that view vi's [start, start+len) came from. */
void dview_root_span(const dview_set_t *set, int vi, uint32_t start, uint32_t len, uint32_t *rstart,
		     uint32_t *rlen);

/* Writes byte c at offset off of the text (what the caller's text came
 * from decides how); with dry, only says whether it could. */
typedef bool (*dview_write_fn)(void *ctx, uint32_t off, uint8_t c, bool dry);

/* Masks view vi's [start, start+len) as mask_inplace would, through the
 * maps down to the text. Returns false, having written nothing, when a
 * masked byte cannot be rewritten in its source's encoding (base64); with
 * dry, writes nothing in any case. */
bool dview_redact(const dview_set_t *set, int vi, uint32_t start, uint32_t len, uint8_t keep_first,
		  uint8_t keep_last, dview_write_fn write, void *ctx, bool dry);

#endif
