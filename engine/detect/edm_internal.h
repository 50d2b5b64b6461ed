/*
 * edm_internal: what the EDM loader/matcher (edm.c) and the builder
 * (edm_build.c) share: the on-disk layout and the keyed hash.
 * schemas/edm-pack.md is the format's reference.
 */
#ifndef DLPGATE_EDM_INTERNAL_H
#define DLPGATE_EDM_INTERNAL_H

#include "detect/edm.h"

#include <openssl/sha.h>

#define EDM_MAGIC "DLPEDM1\n"
#define EDM_VERSION 1
#define EDM_SALT_BYTES 32
#define EDM_HEADER_BYTES 64  /* magic, version, columns, rows, bits, reserved, salt */
#define EDM_COLUMN_BYTES 80  /* name[32], type, searchable, max_words, pad, entries, lengths[4] */
#define EDM_MIN_BITS 4
#define EDM_MAX_BITS 24

typedef struct {
	char name[32];
	uint8_t type, searchable, max_words;
	uint64_t n_entries;
	uint64_t lengths[4];         /* bit n: a normalised value of n bytes exists */
	const uint32_t *buckets;     /* 2^bits + 1 */
	const uint64_t *entries;     /* key << 32 | row, sorted */
} edm_col_t;

typedef struct {
	SHA256_CTX inner, outer;     /* after the padded key block */
} edm_key_t;

void edm_key_init(edm_key_t *k, const uint8_t salt[EDM_SALT_BYTES]);
uint64_t edm_hash(const edm_key_t *k, uint8_t column, const char *v, size_t n);
/* The per-row check of a value hashing to h (never 0: 0 is empty). */
uint32_t edm_check_of(uint64_t h);

#endif
