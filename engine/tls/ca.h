/*
 * ca: the local certificate authority that signs minted leaves.
 *
 * Generated on first run (ECDSA P-256, 10 years) into the state dir as
 * ca.pem (certificate, 0644) and ca.key (private key, 0600, created with
 * O_EXCL so an existing file is never overwritten or widened), or loaded
 * from --ca-cert/--ca-key. A key file that group or others can read is
 * refused: the CA key is the one secret that lets anyone impersonate every
 * site to this machine.
 */
#ifndef DLPGATE_CA_H
#define DLPGATE_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
	X509 *cert;
	EVP_PKEY *key;
	char cert_path[4096];
	bool generated; /* made by this run */
} ca_t;

/* Uses cert_file/key_file when both are given, else STATE_DIR/ca.pem and
 * ca.key, generating them when neither exists. */
bool ca_load_or_create(ca_t *ca, const char *state_dir, const char *cert_file, const char *key_file,
		       char *err, size_t errlen);
/* Only the certificate (for `dlpgate ca export|install`): never opens the key. */
bool ca_load_cert(ca_t *ca, const char *state_dir, const char *cert_file, char *err, size_t errlen);
void ca_free(ca_t *ca);

/* "what: OpenSSL's first queued error" into err; clears the queue. */
void ca_openssl_error(char *err, size_t errlen, const char *what);

/* Adds an X.509v3 extension given in OpenSSL's config syntax. */
bool ca_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value);

typedef struct {
	int nid;            /* 0 ends a list */
	const char *value;  /* OpenSSL config syntax */
} ca_ext_t;
/* A self-signed certificate for key: O=dlpgate, CN=cn, a random serial,
 * valid from yesterday for `days` days, with the extensions listed. The
 * engine's CA and the console's server certificate are both made here. */
X509 *ca_self_signed(EVP_PKEY *key, const char *cn, long days, const ca_ext_t *exts);
/* Writes the certificate, or the key when key != NULL, as PEM into a new
 * file (O_EXCL) born with mode, fsync'ed; removes it on failure. */
bool ca_write_pem(const char *path, int mode, X509 *cert, EVP_PKEY *key, char *err, size_t errlen);

/* Creates DIR (and parents) mode 0700 if missing; refuses a path that is not a directory. */
bool ca_ensure_dir(const char *dir, char *err, size_t errlen);

#endif
