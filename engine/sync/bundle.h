/*
 * bundle: a signed policy bundle (schemas/bundle.md), the unit the console
 * pushes and the agent runs. Pure data and crypto: no network, no policy
 * runtime, so the console, the agent, the offline signer and the fuzzer
 * share one reader.
 *
 * On the wire a bundle is one JSON document:
 *   {"format": 1, "manifest": "<manifest JSON text>",
 *    "signature": {"alg": "ed25519", "key_id": K, "sig": B64},
 *    "files": {"policy.lua": B64, ...}}
 * The signature covers the manifest's exact bytes (no canonical form to get
 * wrong); the manifest names every file with its SHA-256 and size, so the
 * files are covered through it. bundle_parse checks the document's shape,
 * the manifest and every file against it; bundle_verify checks the
 * signature against a key set. Both are needed before anything runs.
 *
 * Keys are Ed25519 through OpenSSL 3. A key id is the first 16 hex digits of
 * the SHA-256 of the 32-byte public key. A key file is text, one key per
 * line: "ed25519 KEY_ID BASE64_PUBLIC_KEY" ('#' starts a comment); a private
 * key is PKCS#8 PEM, mode 0600.
 */
#ifndef DLPGATE_BUNDLE_H
#define DLPGATE_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_FORMAT 1
#define BUNDLE_MAX_FILES 256
#define BUNDLE_MAX_CONTENT (8u << 20)   /* all files' bytes together */
#define BUNDLE_MAX_PATH 200
/* The document: base64 of the content plus the manifest and some slack. */
#define BUNDLE_MAX_DOCUMENT (BUNDLE_MAX_CONTENT / 3 * 4 + (1u << 20))
#define BUNDLE_MAX_KEYS 32
#define BUNDLE_KEY_ID_LEN 16

typedef enum { BUNDLE_ROLE_ENTRY = 0, BUNDLE_ROLE_MODULE, BUNDLE_ROLE_TEST, BUNDLE_ROLE_DATA } bundle_role_t;

typedef struct {
	char *path;                   /* relative, checked (bundle_path_ok) */
	bundle_role_t role;
	unsigned char *data;
	size_t size;
	char sha256[65];
} bundle_file_t;

typedef struct {
	char key_id[BUNDLE_KEY_ID_LEN + 1];
	unsigned char pub[32];
} bundle_key_t;

typedef struct {
	bundle_key_t v[BUNDLE_MAX_KEYS];
	size_t n;
} bundle_keyset_t;

typedef struct bundle {
	/* manifest */
	int64_t version;              /* policy version, > 0, only grows */
	char created_at[32];          /* RFC 3339 UTC, ms */
	char expires_at[32];          /* "" when it never expires */
	int64_t expires_ms;           /* 0: never */
	char min_engine[16];          /* "MAJOR.MINOR.PATCH" */
	char entry[BUNDLE_MAX_PATH + 1];
	char message[512];            /* the push's message ("" if none) */
	char key_id[BUNDLE_KEY_ID_LEN + 1]; /* the key that signed it */
	bundle_keyset_t next_keys;    /* keys this bundle introduces (rotation) */
	char retire_keys[BUNDLE_MAX_KEYS][BUNDLE_KEY_ID_LEN + 1];
	size_t n_retire;
	bundle_file_t *files;         /* sorted by path */
	size_t n_files;
	size_t content_size;
	/* the signed parts, as they came */
	char *manifest_text;
	unsigned char sig[64];
	bool signed_;
	char sha256[65];              /* of the whole document, names it in status and the store */
} bundle_t;

/* ---- making one (console, offline signer) ---- */

/* A bundle from a policy directory: ENTRY (default "policy.lua") is the
 * entry, *.lua under tests/ are tests, other *.lua files are modules, any
 * other regular file is data. Symbolic links, special files, hidden files,
 * bad names and the limits refuse the whole directory, with the path named. */
bundle_t *bundle_from_dir(const char *dir, const char *entry, char *err, size_t errlen);
/* Adds (or replaces) one file, e.g. a shipped pack the entry requires. */
bool bundle_add_file(bundle_t *b, const char *path, bundle_role_t role, const void *data, size_t size, char *err,
		     size_t errlen);
/* Fills version, created_at (now), min_engine (this engine unless set), and
 * writes the manifest for key_id; then signs it with the private key.
 * next_keys / retire_keys / expires / message are taken as set on b. */
bool bundle_sign(bundle_t *b, int64_t version, const char *private_key_pem_path, char *err, size_t errlen);
/* The wire document (malloc'd, NUL-terminated). */
char *bundle_serialize(const bundle_t *b, size_t *len);

/* ---- reading one (agent, console) ---- */

/* Parses a document and checks it against its manifest: shape, format,
 * paths, roles, limits, sizes and hashes, no file missing and none extra.
 * Does not check the signature (bundle_verify) nor the version, expiry or
 * engine version (bundle_check_runnable): those need the reader's state. */
bundle_t *bundle_parse(const void *doc, size_t len, char *err, size_t errlen);
/* The signature, by a key in keys. */
bool bundle_verify(const bundle_t *b, const bundle_keyset_t *keys, char *err, size_t errlen);
/* Version above running_version, not expired at now_ms, engine new enough. */
bool bundle_check_runnable(const bundle_t *b, int64_t running_version, int64_t now_ms, char *err, size_t errlen);
/* Writes the files under dir (created 0700; it must not exist). */
bool bundle_extract(const bundle_t *b, const char *dir, char *err, size_t errlen);
const bundle_file_t *bundle_file(const bundle_t *b, const char *path);
void bundle_free(bundle_t *b);

bool bundle_path_ok(const char *path);
/* A policy chunk's name (relative to the entry's folder, as an agent names
 * the file of a rule: "policy.lua", "../pii.lua"; sandbox.h) as a path in
 * b ("src/policy.lua", "pii.lua"); false if it is not one. */
bool bundle_chunk_path(const bundle_t *b, const char *chunk, char *out, size_t n);
const char *bundle_role_name(bundle_role_t r);

/* ---- keys ---- */

/* A new Ed25519 key: private PEM at path (0600, must not exist); the
 * public half in *pub. */
bool bundle_key_generate(const char *path, bundle_key_t *pub, char *err, size_t errlen);
/* The public half of a private key file. */
bool bundle_key_public(const char *private_key_pem_path, bundle_key_t *pub, char *err, size_t errlen);
/* "ed25519 KEY_ID BASE64" lines; a bad line is refused with its number. */
bool bundle_keys_load(const char *path, bundle_keyset_t *ks, char *err, size_t errlen);
bool bundle_keys_parse(const char *text, bundle_keyset_t *ks, char *err, size_t errlen);
/* One line per key, as bundle_keys_parse reads (malloc'd). */
char *bundle_keys_format(const bundle_keyset_t *ks);
bool bundle_keys_add(bundle_keyset_t *ks, const bundle_key_t *k);
bool bundle_keys_remove(bundle_keyset_t *ks, const char *key_id);

/* "MAJOR.MINOR.PATCH" compared numerically; false if either is malformed. */
bool bundle_version_cmp(const char *a, const char *b, int *cmp);

#endif
