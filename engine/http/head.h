/*
 * head: one HTTP message head (start line + header fields) in one arena.
 *
 * Names and values live back to back in a single buffer whose cap is the
 * configured header limit; fields are offsets into it, so growing the arena
 * never invalidates them. Edits (set/remove) never move bytes: a removed
 * field is marked dead and a set value is appended. The head is serialized
 * canonically ("Name: value\r\n"), which is what reaches the other side:
 * nothing of the sender's original whitespace or line endings survives.
 */
#ifndef DLPGATE_HTTP_HEAD_H
#define DLPGATE_HTTP_HEAD_H

#include "core/bytebuf.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
	bool dead;
} http_field_t;

typedef struct {
	bool is_request;
	uint8_t major, minor;
	uint16_t status;          /* responses */
	uint32_t method_off, method_len;
	uint32_t target_off, target_len;  /* requests */
	uint32_t reason_off, reason_len;  /* responses */
	bytebuf_t arena;
	http_field_t *fields;
	uint32_t n_fields, cap_fields, max_fields;
	/* framing facts, filled by the codec at headers-complete */
	bool chunked;
	bool has_length;
	uint64_t content_length;
	bool upgrade;             /* llhttp saw Upgrade (or CONNECT) */
} http_head_t;

void http_head_init(http_head_t *h, bool is_request, uint32_t max_bytes, uint32_t max_fields);
void http_head_reset(http_head_t *h);
void http_head_free(http_head_t *h);

/* Case-insensitive lookup of the first live field; NULL if absent. */
const char *http_head_get(const http_head_t *h, const char *name, uint32_t *len);
unsigned http_head_count(const http_head_t *h, const char *name);
/* The next element of a comma-separated header value (RFC 9110 #list) in
 * [*p, end): its start and length with the surrounding blanks trimmed,
 * empty elements skipped; false at the end. Advances *p. */
bool http_list_next(const char **p, const char *end, const char **elem, size_t *len);
/* True if a comma-separated header (e.g. Connection) lists token. */
bool http_head_has_token(const http_head_t *h, const char *name, const char *token);
void http_head_remove(http_head_t *h, const char *name);
bool http_head_add(http_head_t *h, const char *name, const char *value);
/* A new empty field at the end (the parser fills it); NULL past max_fields. */
http_field_t *http_head_new_field(http_head_t *h);
bool http_head_set(http_head_t *h, const char *name, const char *value);
bool http_head_set_target(http_head_t *h, const char *target, size_t len);

static inline const char *http_head_str(const http_head_t *h, uint32_t off)
{
	return h->arena.data + off;
}

/* A copy of src's start line and of the fields named in fields (NULL =
 * all); dst is initialised here and freed with http_head_free(). */
bool http_head_copy(http_head_t *dst, const http_head_t *src, const char *const *fields);

/* Appends the canonical wire form (start line, fields, blank line). */
bool http_head_serialize(const http_head_t *h, bytebuf_t *out);

#endif
