/*
 * strictjson: a strict, bounded JSON reader and string writer for the
 * small documents of the flow protocol (sources/frame.c, sources/bypass.c).
 *
 * Why not jansson, which the rest of the engine uses: this code is also
 * compiled into the macOS system extension, a universal (arm64 + x86_64)
 * binary that must link from Apple's SDK alone. A third-party library
 * there means one build of it per architecture on every builder, and the
 * extension could not be linked against the SDK's stubs on Linux, where
 * `make -C sysext check` holds it to the compiler. The protocol needs
 * little: objects, arrays, strings, whole numbers and booleans.
 *
 * Reading is all or nothing. The whole text is parsed into a tree of
 * nodes held in one document (two allocations, freed by sjson_free), or
 * refused with a message and the column where it went wrong. Refused:
 * anything RFC 8259 does not allow, invalid UTF-8 (overlong forms,
 * surrogates, past U+10FFFF), \u0000, a key given twice in an object,
 * nesting deeper than SJSON_MAX_DEPTH, more than SJSON_MAX_NODES values,
 * whole numbers outside int64. Numbers with a fraction or an exponent are
 * kept as SJSON_REAL without a value: the protocol has none.
 */
#ifndef DLPGATE_STRICTJSON_H
#define DLPGATE_STRICTJSON_H

#include "core/bytebuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SJSON_MAX_DEPTH 32
#define SJSON_MAX_NODES 65536

typedef enum { SJSON_NULL, SJSON_BOOL, SJSON_INT, SJSON_REAL, SJSON_STRING, SJSON_ARRAY, SJSON_OBJECT } sjson_type_t;

typedef struct {
	sjson_type_t type;
	bool boolean;       /* SJSON_BOOL */
	int64_t integer;    /* SJSON_INT */
	const char *str;    /* SJSON_STRING: decoded UTF-8, NUL-terminated (no NUL inside) */
	size_t len;         /* SJSON_STRING: bytes; SJSON_ARRAY, SJSON_OBJECT: members */
	const char *key;    /* the member's name when the parent is an object */
	uint32_t first;     /* first member (0: none; the root is never a member) */
	uint32_t next;      /* next member of the same parent (0: none) */
} sjson_node_t;

typedef struct {
	sjson_node_t *nodes;
	size_t n, cap;
	char *text;         /* decoded strings and keys */
	size_t used;
} sjson_doc_t;

/* Parses p[0..n) into d (which needs no initialisation). False with err
 * "what is wrong (column C)" and nothing to free. */
bool sjson_parse(sjson_doc_t *d, const char *p, size_t n, char *err, size_t errlen);
void sjson_free(sjson_doc_t *d);

const sjson_node_t *sjson_root(const sjson_doc_t *d);
/* The member named key of an object; NULL if absent or o is no object. */
const sjson_node_t *sjson_get(const sjson_doc_t *d, const sjson_node_t *o, const char *key);
/* Members in order: for (m = sjson_first(d, o); m; m = sjson_next(d, m)). */
const sjson_node_t *sjson_first(const sjson_doc_t *d, const sjson_node_t *o);
const sjson_node_t *sjson_next(const sjson_doc_t *d, const sjson_node_t *m);

/* Appends s as a JSON string (quoted, escaped); false if s is not valid
 * UTF-8 or out's cap refuses it. */
bool sjson_put_string(bytebuf_t *out, const char *s);
/* Is s[0..n) valid UTF-8 (no overlong forms, no surrogates)? */
bool sjson_utf8_valid(const char *s, size_t n);

#endif
