/*
 * ingest: an events upload (gzip NDJSON) turned into rows to store, or an
 * HTTP status naming what is wrong with it.
 *
 * Decompression has a hard cap checked as it goes (a gzip bomb stops at the
 * cap, never allocates past it), every line is validated against
 * schemas/verdict.schema.json's rules before anything is stored, and the
 * batch is refused whole on the first bad line: the agent keeps it in its
 * spool and a human can read which line was wrong.
 */
#ifndef DLPGATE_CONSOLE_INGEST_H
#define DLPGATE_CONSOLE_INGEST_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	store_event_t *ev;
	size_t n;
	json_t **docs;      /* the parsed lines: the strings in ev point into them */
	const char **names; /* detector names, all events */
	int64_t *counts;
	char *text;         /* the inflated body, lines NUL-terminated in place */
} ingest_batch_t;

/* 0, or the HTTP status (400, 403, 413; 500 out of memory) with detail in
 * err. Either way the caller ends with ingest_free(b). */
int ingest_parse(const char *body, size_t len, bool gzip, const char *agent_id, ingest_batch_t *b, char *err,
		 size_t errlen);
void ingest_free(ingest_batch_t *b);

/* Inflates gzip into a malloc'ed buffer of at most cap bytes: 0, 413 past
 * the cap, 400 if it is not gzip. */
int ingest_gunzip(const char *in, size_t len, size_t cap, char **out, size_t *out_len);

#endif
