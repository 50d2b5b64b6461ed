/*
 * edm: exact data match. An organisation's own sensitive table (customer
 * numbers, account numbers, names with emails) as salted hashes, and a
 * detector that reports a value of the table in a text only when enough
 * values of the same row stand near it, as Microsoft Purview's EDM does.
 *
 * The pack (schemas/edm-pack.md) holds no value: per column, a per-row
 * 32-bit check of each value, and for searchable columns an index of
 * 52-bit prefixes of each value's hash, bucketed by its top bits. The hash
 * is HMAC-SHA-256 keyed by the pack's own random 256-bit salt over the
 * column number and the normalised value. Why not a slow hash: the
 * matcher must hash every candidate token of every body, so whatever a
 * guess costs an attacker holding the pack it costs the scanner per token;
 * a cost that hurts a brute force of an 8-digit account number (1e8
 * guesses) would stop scanning. The salt defeats precomputed tables and
 * cross-pack comparison; low-entropy columns remain guessable by whoever
 * holds the pack, so the pack is as sensitive as the salt it carries:
 * keep it 0600, deliver it like the policy.
 *
 * Normalisation, the same at build and at scan:
 *   digits  the digits only (account and customer numbers, phone numbers)
 *   alnum   letters and digits only, upper-cased (customer ids, policy
 *           numbers); values must hold a digit
 *   email   trimmed, ASCII lower-cased
 *   name    ASCII lower-cased, every run of other characters than
 *           letters and digits one space, trimmed (bytes past 0x7f are
 *           kept as they are: no Unicode folding); at most 8 words
 * Candidates in a text come from a tokenizer per type: digit runs with
 * single separators (space . - / between digits), alnum words holding a
 * digit, addresses around each '@', and runs of 1 to 8 words for names.
 * Only lengths present in the column are hashed. Names cannot be
 * searchable (every word of every body would be hashed); they corroborate.
 *
 * A pack is read once per process and shared (edm_pack_open), refcounted;
 * the loader is a parser of outside input: every size is checked against
 * the file before anything is read through it.
 */
#ifndef DLPGATE_EDM_H
#define DLPGATE_EDM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EDM_MAX_COLUMNS 16
#define EDM_MAX_ROWS 100000000ull      /* 100 million */
#define EDM_MAX_NAME_WORDS 8
#define EDM_MAX_VALUE 255              /* bytes of a normalised value */
#define EDM_MAX_DISTANCE 10000
#define EDM_MAX_PACK_BYTES (4ull << 30) /* 4 GiB */

typedef enum { EDM_DIGITS = 1, EDM_ALNUM, EDM_EMAIL, EDM_NAME } edm_type_t;

typedef struct edm_pack edm_pack_t;
typedef struct edm_query edm_query_t;

/* "digits", "alnum", "email", "name"; 0 for none of them. */
edm_type_t edm_type_by_name(const char *s);
const char *edm_type_name(edm_type_t t);

/* value in, normalised out (room for EDM_MAX_VALUE + 1); its length, or
 * -1 when nothing is left or it is longer than EDM_MAX_VALUE. */
int edm_normalize(edm_type_t t, const char *in, size_t n, char *out);

/* ---- build ---- */

typedef struct {
	char name[32];
	edm_type_t type;
	bool searchable;
} edm_column_t;

typedef struct {
	uint64_t rows, skipped_rows;         /* rows read; rows with a wrong field count */
	uint64_t empty[EDM_MAX_COLUMNS];     /* values that normalised to nothing */
	bool header;                         /* the first line named the columns */
} edm_build_stats_t;

/* Reads CSV (RFC 4180: quotes, "" inside them, CRLF) from in with these
 * columns and writes the pack to out. A first line whose fields are the
 * column names is a header. false with err on bad input or I/O. */
bool edm_build(FILE *in, const edm_column_t *cols, size_t n_cols, FILE *out, edm_build_stats_t *st, char *err,
	       size_t errlen);

/* ---- load and match ---- */

/* The pack in the file at path, read once per process and shared: the
 * same file (device, inode, size, mtime) opened again is the same pack. */
edm_pack_t *edm_pack_open(const char *path, char *err, size_t errlen);
/* A pack from bytes (copied): the loader the fuzz target drives. */
edm_pack_t *edm_pack_parse(const uint8_t *data, size_t n, char *err, size_t errlen);
void edm_pack_unref(edm_pack_t *p);
uint64_t edm_pack_rows(const edm_pack_t *p);
size_t edm_pack_bytes(const edm_pack_t *p);
/* The column named name, or -1. */
int edm_pack_column(const edm_pack_t *p, const char *name);

/* What a detector asks: the primary column's values, each with at least
 * min_corroborate of the corroborating columns' values of the same row
 * within distance bytes. Takes a reference to the pack. */
edm_query_t *edm_query_new(edm_pack_t *p, const char *primary, const char *const *corroborate, size_t n_corroborate,
			   uint32_t distance, uint32_t min_corroborate, char *err, size_t errlen);
void edm_query_free(edm_query_t *q);
/* A stable text naming what the query finds (for identical detectors). */
const char *edm_query_key(const edm_query_t *q);

typedef struct {
	uint32_t start, len;     /* the primary value in the text */
	uint32_t corroborated;   /* columns of its row found near it */
} edm_hit_t;

/* Calls found for each primary value with enough corroboration, in text
 * order; stops when found returns false. */
void edm_query_scan(const edm_query_t *q, const uint8_t *buf, size_t len,
		    bool (*found)(void *ctx, const edm_hit_t *h), void *ctx);

struct digit_run;
/* The same, given the text's runs of digits (at least as short as the
 * primary column's values; digitruns.h) when the caller has them. */
void edm_query_scan_runs(const edm_query_t *q, const uint8_t *buf, size_t len, const struct digit_run *runs,
			 size_t n_runs, bool (*found)(void *ctx, const edm_hit_t *h), void *ctx);

/* The query as a detector's matcher (detector.h); the detector owns q. */
#include "detect/detector.h"
det_matcher_t edm_matcher(edm_query_t *q);

#endif
