/*
 * body: a message body as the policy reads it, and redaction back into it.
 *
 * Two steps, each bounded:
 *   decode  Content-Encoding layers (gzip, deflate, br, zstd) undone, with limits
 *           on the decoded size, the expansion ratio and the number of
 *           layers: a 10 KB zip of zeros never becomes 10 GB in memory.
 *   view    the text a person would read: percent-escapes of a form
 *           resolved, JSON string escapes (\n, \u0041, surrogate pairs)
 *           resolved, multipart parts listed (name, file name, type, size).
 *           Where the view differs from the bytes, a map ties each view
 *           byte back to the bytes it came from.
 *
 * Redaction masks letters and digits of a view span and writes each masked
 * character back in the same width it had: '*' for a plain byte, "%2A" for
 * a percent-escape, "\u002a" for a JSON escape. The body never changes
 * length, so a Content-Length stays right and a stream stays a stream.
 */
#ifndef DLPGATE_BODY_H
#define DLPGATE_BODY_H

#include "core/bytebuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint64_t max_bytes;  /* decoded bytes kept (the inspection limit) */
	uint32_t max_ratio;  /* decoded : encoded, once past 64 KiB decoded */
	uint32_t max_layers; /* Content-Encoding layers */
	uint32_t carry;      /* streamed past max_bytes: bytes each window re-reads (0 = 4 KiB) */
} body_limits_t;

typedef enum {
	BODY_OK = 0,
	BODY_TRUNCATED,   /* decoded past max_bytes: out holds the prefix */
	BODY_BOMB,        /* ratio or layers past the limits */
	BODY_UNSUPPORTED, /* a coding we do not know (compress, ...) */
	BODY_CORRUPT,     /* the data does not decode */
} body_status_t;

const char *body_status_name(body_status_t s);

/* Undoes the codings listed in content_encoding (as in the header; NULL
 * or "identity" = none) on raw; the result goes to out. */
body_status_t body_decode(const char *content_encoding, size_t ce_len, const uint8_t *raw, size_t n,
			  const body_limits_t *lim, bytebuf_t *out, const char **why);
/* Appends in, gzipped (one member, level 6), to out. The encoder beside
 * the decoder: test bodies, the agent's uploads. False if out of memory. */
bool body_gzip(const void *in, size_t n, bytebuf_t *out);

/* The same decoding, fed piece by piece: what each piece decodes to is
 * appended to out (all of it: the caller bounds what it keeps). Memory is
 * the decoders' own state: zlib 32 KiB + 7 KiB, brotli up to its 16 MiB
 * window, zstd up to 8 MiB (ZSTD_MAX_WINDOW_LOG), per layer. The ratio
 * limit still stops a bomb. A deflate body is told zlib or raw by its
 * first two bytes. */
typedef struct body_decoder body_decoder_t;
body_status_t body_decoder_new(const char *content_encoding, size_t ce_len, const body_limits_t *lim,
			       body_decoder_t **out, const char **why);
body_status_t body_decoder_feed(body_decoder_t *d, const uint8_t *in, size_t n, bytebuf_t *out, const char **why);
/* Every layer reached its end (the message may end here). */
bool body_decoder_done(const body_decoder_t *d);
void body_decoder_free(body_decoder_t *d);

/* True if content_encoding lists anything but identity. */
bool body_is_encoded(const char *content_encoding, size_t ce_len);

typedef enum { VIEW_RAW = 0, VIEW_FORM, VIEW_JSON, VIEW_MULTIPART } view_kind_t;

#define BODY_MAX_PARTS 256

typedef struct {
	char name[128];
	char filename[256];
	char content_type[128];
	uint32_t off, len;   /* the part's data in the body */
	bool quoted_printable; /* Content-Transfer-Encoding says so (detect/views.h reads it) */
} body_part_t;

typedef struct {
	view_kind_t kind;
	const uint8_t *text;
	size_t len;
	bytebuf_t own;           /* the text when it differs from the body */
	uint32_t *map;       /* text byte -> offset of its source in the body; NULL = same */
	uint8_t *width;      /* source bytes of that text byte's character */
	body_part_t *parts;
	uint32_t n_parts;
	bool parts_truncated;
} body_view_t;

/* Builds the view of body (already decoded) for this Content-Type. */
bool body_view_build(body_view_t *v, const char *content_type, size_t ct_len, const uint8_t *body, size_t n);
void body_view_free(body_view_t *v);
/* Writes byte c at view offset off into body in the encoding its source
 * has there (a '*' stays '*', becomes %2A or \u002a), same length; false
 * (nothing written) where that encoding cannot hold it. With dry, only
 * says whether it could. The root writer of the views (detect/views.h). */
bool body_view_write(const body_view_t *v, uint8_t *body, uint32_t off, uint8_t c, bool dry);
/* Masks view bytes [start, start+len) in body (the buffer the view was
 * built from), same length; keep_* as in mask.h. */
void body_view_redact(const body_view_t *v, uint8_t *body, uint32_t start, uint32_t len, uint8_t keep_first,
		      uint8_t keep_last);

#endif
