/*
 * digest: bytes as lowercase hex, and SHA-256 as hex: how bundles, tokens
 * and key ids are named in files, events and the console's store. One
 * place, so the engine and the console spell them alike.
 */
#ifndef DLPGATE_DIGEST_H
#define DLPGATE_DIGEST_H

#include <stddef.h>

/* out: room for 2 * n + 1 bytes. */
void digest_hex(const void *in, size_t n, char *out);
void digest_sha256_hex(const void *data, size_t len, char out[65]);

#endif
