/*
 * mint: leaf certificates for intercepted servers, signed by our CA.
 *
 * One ECDSA P-256 leaf key is made per process and reused for every leaf,
 * so a new intercepted server costs one signature by the CA and nothing
 * else; the handshake itself signs with that cheap P-256 key.
 *
 * A leaf mirrors the upstream certificate's names (DNS and IP SANs, or its
 * CN when it has no SAN) plus the name the client asked for, carries
 * serverAuth EKU, and is valid for at most 397 days and never past the
 * upstream certificate. Its serial is a hash of everything that goes into it,
 * so the same inputs on the same day give the same certificate.
 *
 * Leaves are kept in an LRU shared by the workers (mutex; a mint is rare, a
 * lookup is a hash). X509 objects are reference counted: a caller owns the
 * reference mint_leaf() returns.
 */
#ifndef DLPGATE_MINT_H
#define DLPGATE_MINT_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#define MINT_MAX_DAYS 397

typedef struct mint mint_t;

mint_t *mint_new(X509 *ca_cert, EVP_PKEY *ca_key, size_t cache_size, char *err, size_t errlen);
void mint_free(mint_t *m);
EVP_PKEY *mint_leaf_key(const mint_t *m);

/* A leaf for `name` (the SNI, or the CONNECT host: a DNS name or an IP
 * literal), mirroring `upstream` when it is not NULL. NULL on failure. */
X509 *mint_leaf(mint_t *m, X509 *upstream, const char *name);

typedef struct {
	unsigned long minted, hits;
	size_t cached;
} mint_stats_t;
void mint_stats(mint_t *m, mint_stats_t *out);

#endif
