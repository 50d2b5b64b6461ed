/*
 * tlsctx: the two process-wide SSL_CTX objects and the upstream session
 * cache.
 *
 * Building an SSL_CTX costs more than a handshake in OpenSSL 3, so there are
 * exactly two, made at start and shared by all workers (SSL_new is
 * thread-safe on a shared context):
 *   - server: the client leg. ALPN http/1.1 only, session tickets (one per
 *     handshake) so a returning client resumes cheaply, no server-side session
 *     store (tickets are stateless: memory does not grow with clients),
 *     renegotiation refused, buffers released when idle.
 *   - client: the upstream leg. Always verifies: the system trust store plus
 *     --upstream-ca, and the host name or IP. ALPN http/1.1 only. Sessions
 *     are kept in a bounded LRU keyed by (host, port, SNI), a few tickets
 *     per key used once each, so a repeat connection to a server resumes
 *     instead of verifying a chain again.
 */
#ifndef DLPGATE_TLSCTX_H
#define DLPGATE_TLSCTX_H

#include "core/config.h"
#include "core/lru.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>

typedef struct {
	SSL_CTX *server;
	SSL_CTX *client;
	pthread_mutex_t sess_lock;
	lru_t *sessions;
	unsigned long sess_resumed, sess_full;
} tlsctx_t;

bool tlsctx_init(tlsctx_t *t, const config_t *cfg, const char *upstream_ca_file, char *err, size_t errlen);
void tlsctx_free(tlsctx_t *t);

/* An upstream SSL verifying `verify_name` (DNS name or IP literal), sending
 * `sni` when it is a DNS name, resuming a cached session for session_key.
 * session_key must outlive the SSL (the flow owns it). */
SSL *tlsctx_new_upstream(tlsctx_t *t, const char *verify_name, const char *sni, const char *session_key);
/* Drops the cached session after a failed upstream handshake. */
void tlsctx_forget_session(tlsctx_t *t, const char *session_key);
/* Every client-leg handshake sends ca after the leaf (clients that build
 * the chain from what the server sends, not from their store, need it).
 * Set once on the shared context: no cost per handshake. */
bool tlsctx_send_ca(tlsctx_t *t, X509 *ca);
/* A client-leg SSL presenting leaf with key. */
SSL *tlsctx_new_server(tlsctx_t *t, X509 *leaf, EVP_PKEY *key);

/* Why upstream verification failed, in words, or NULL if it did not. */
const char *tlsctx_verify_error(SSL *ssl);
/* After a client-leg handshake failure: did the client reject our
 * certificate (alert unknown_ca / bad_certificate / certificate_unknown ...)? */
bool tlsctx_client_rejected_cert(unsigned long err);

#endif
