#include "tls/tlsctx.h"

#include "tls/ca.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int session_key_index = -1;
static const unsigned char alpn_http11[] = "\x08http/1.1";

/* The sessions kept for one upstream. Each ticket is used once while there
 * are others (TLS 1.3 tickets are meant for one use, RFC 8446 C.4, and
 * OpenSSL retires a session its handshake used); servers send one or two
 * per connection, which keeps the slot stocked. When one is left, copies
 * of it are used rather than paying for a full handshake during a burst. */
#define TICKETS_PER_KEY 8

typedef struct {
	SSL_SESSION *s[TICKETS_PER_KEY]; /* oldest first */
	unsigned n;
} sess_slot_t;

static void free_slot(void *p)
{
	sess_slot_t *slot = p;
	for (unsigned i = 0; i < slot->n; i++)
		SSL_SESSION_free(slot->s[i]);
	free(slot);
}

/* OpenSSL hands us each new upstream session (for TLS 1.3, each ticket as
 * it arrives after the handshake). */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	tlsctx_t *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0);
	const char *key = SSL_get_ex_data(ssl, session_key_index);
	if (!t || !key || !SSL_SESSION_is_resumable(sess))
		return 0;
	/* A copy: OpenSSL may still mark the connection's own session not
	 * resumable (when that connection ends without close_notify). */
	SSL_SESSION *copy = SSL_SESSION_dup(sess);
	if (!copy)
		return 0;
	size_t klen = strlen(key);
	pthread_mutex_lock(&t->sess_lock);
	sess_slot_t *slot = lru_get(t->sessions, key, klen, 0);
	if (!slot) {
		slot = calloc(1, sizeof *slot);
		if (slot && !lru_put(t->sessions, key, klen, slot, 0))
			slot = NULL; /* lru_put freed it */
	}
	if (!slot) {
		pthread_mutex_unlock(&t->sess_lock);
		SSL_SESSION_free(copy);
		return 0;
	}
	if (slot->n == TICKETS_PER_KEY) {
		SSL_SESSION_free(slot->s[0]);
		memmove(slot->s, slot->s + 1, (TICKETS_PER_KEY - 1) * sizeof slot->s[0]);
		slot->n--;
	}
	slot->s[slot->n++] = copy;
	pthread_mutex_unlock(&t->sess_lock);
	return 0; /* OpenSSL keeps its own reference to sess */
}

/* A session to resume for key (the caller owns the reference), or NULL. */
static SSL_SESSION *take_session(tlsctx_t *t, const char *key)
{
	SSL_SESSION *sess = NULL;
	pthread_mutex_lock(&t->sess_lock);
	sess_slot_t *slot = lru_get(t->sessions, key, strlen(key), 0);
	while (slot && slot->n && !sess) {
		SSL_SESSION *s = slot->s[slot->n - 1];
		if (!SSL_SESSION_is_resumable(s)) {
			slot->n--;
			SSL_SESSION_free(s);
		} else if (slot->n > 1) {
			slot->n--;
			sess = s;
		} else {
			sess = SSL_SESSION_dup(s);
			if (!sess)
				break;
		}
	}
	pthread_mutex_unlock(&t->sess_lock);
	return sess;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	unsigned char *sel = NULL;
	if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof alpn_http11 - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED) {
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	/* The flow was peeked before we got here: a client without http/1.1
	 * in its list was spliced, so this is a client that sent no ALPN. */
	return SSL_TLSEXT_ERR_NOACK;
}

/* AES-128-GCM first on both legs: as strong as TLS needs, and every byte
 * is decrypted and encrypted again here, where it is the cheapest AEAD
 * with AES-NI. The others stay available for peers that want them. */
static const char tls13_suites[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
				    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
				    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
				    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:"
				    "ECDHE-RSA-AES128-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA";

static bool fail(char *err, size_t n, const char *what)
{
	ca_openssl_error(err, n, what);
	return false;
}

/* OpenSSL caches a certificate's extensions on first use behind a
 * double-checked lock; two workers verifying against the same CA at once
 * race on it (ThreadSanitizer: ASN1_STRING_set against ASN1_STRING_cmp;
 * openssl/openssl#32609 and its kin). Caching them now, before any worker
 * starts, leaves the workers only reads. Certificates OpenSSL loads
 * lazily later (hashed directories) stay OpenSSL's to lock. */
static void cache_extensions_now(X509_STORE *store)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		if (x)
			X509_check_purpose(x, -1, 0);
	}
}

bool tlsctx_init(tlsctx_t *t, const config_t *cfg, const char *upstream_ca_file, char *err, size_t n)
{
	memset(t, 0, sizeof *t);
	if (session_key_index < 0)
		session_key_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	int min = cfg->tls_min_version == TLS_MIN_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;

	t->server = SSL_CTX_new(TLS_server_method());
	if (!t->server)
		return fail(err, n, "cannot create the client-leg TLS context");
	SSL_CTX_set_min_proto_version(t->server, min);
	SSL_CTX_set_options(t->server, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(t->server, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(t->server, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(t->server, 1);
	SSL_CTX_set_session_id_context(t->server, (const unsigned char *)"dlpgate", 7);
	SSL_CTX_set_alpn_select_cb(t->server, select_alpn, NULL);
	SSL_CTX_set_read_ahead(t->server, 1);
	if (SSL_CTX_set_ciphersuites(t->server, tls13_suites) != 1 ||
	    SSL_CTX_set_cipher_list(t->server, tls12_ciphers) != 1)
		return fail(err, n, "cannot set the client-leg ciphers");

	t->client = SSL_CTX_new(TLS_client_method());
	if (!t->client)
		return fail(err, n, "cannot create the upstream TLS context");
	SSL_CTX_set_min_proto_version(t->client, TLS1_2_VERSION);
	SSL_CTX_set_options(t->client, SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(t->client, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_read_ahead(t->client, 1);
	if (SSL_CTX_set_ciphersuites(t->client, tls13_suites) != 1 ||
	    SSL_CTX_set_cipher_list(t->client, tls12_ciphers) != 1)
		return fail(err, n, "cannot set the upstream ciphers");
	if (SSL_CTX_set_default_verify_paths(t->client) != 1)
		return fail(err, n, "cannot load the system trust store");
	if (upstream_ca_file && SSL_CTX_load_verify_file(t->client, upstream_ca_file) != 1) {
		char what[4200];
		snprintf(what, sizeof what, "cannot load --upstream-ca %s", upstream_ca_file);
		return fail(err, n, what);
	}
	cache_extensions_now(SSL_CTX_get_cert_store(t->client));
	if (SSL_CTX_set_alpn_protos(t->client, alpn_http11, sizeof alpn_http11 - 1) != 0)
		return fail(err, n, "cannot set upstream ALPN");
	SSL_CTX_set_session_cache_mode(t->client, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->client, on_new_session);
	SSL_CTX_set_ex_data(t->client, 0, t);

	t->sessions = lru_new(cfg->upstream_session_cache_size, free_slot);
	if (!t->sessions)
		return fail(err, n, "out of memory");
	pthread_mutex_init(&t->sess_lock, NULL);
	return true;
}

void tlsctx_free(tlsctx_t *t)
{
	SSL_CTX_free(t->server);
	SSL_CTX_free(t->client);
	if (t->sessions) {
		lru_free(t->sessions);
		pthread_mutex_destroy(&t->sess_lock);
	}
	memset(t, 0, sizeof *t);
}

static bool is_ip(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

SSL *tlsctx_new_upstream(tlsctx_t *t, const char *verify_name, const char *sni, const char *session_key)
{
	SSL *ssl = SSL_new(t->client);
	if (!ssl)
		return NULL;
	bool ok = true;
	if (sni && !is_ip(sni))
		ok = SSL_set_tlsext_host_name(ssl, sni) == 1;
	if (ok && is_ip(verify_name))
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), verify_name) == 1;
	else if (ok)
		ok = SSL_set1_host(ssl, verify_name) == 1;
	if (ok)
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!ok) {
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_ex_data(ssl, session_key_index, (void *)session_key);
	SSL_SESSION *sess = take_session(t, session_key);
	if (sess) {
		SSL_set_session(ssl, sess); /* takes its own reference */
		SSL_SESSION_free(sess);
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

bool tlsctx_send_ca(tlsctx_t *t, X509 *ca)
{
	/* extra chain certs go with any leaf that has no chain of its own */
	if (X509_up_ref(ca) != 1)
		return false;
	if (SSL_CTX_add_extra_chain_cert(t->server, ca) != 1) {
		X509_free(ca);
		ERR_clear_error();
		return false;
	}
	return true;
}

SSL *tlsctx_new_server(tlsctx_t *t, X509 *leaf, EVP_PKEY *key)
{
	SSL *ssl = SSL_new(t->server);
	if (!ssl)
		return NULL;
	if (SSL_use_certificate(ssl, leaf) != 1 || SSL_use_PrivateKey(ssl, key) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

void tlsctx_forget_session(tlsctx_t *t, const char *session_key)
{
	pthread_mutex_lock(&t->sess_lock);
	lru_remove(t->sessions, session_key, strlen(session_key));
	pthread_mutex_unlock(&t->sess_lock);
}

const char *tlsctx_verify_error(SSL *ssl)
{
	long r = SSL_get_verify_result(ssl);
	return r == X509_V_OK ? NULL : X509_verify_cert_error_string(r);
}

bool tlsctx_client_rejected_cert(unsigned long e)
{
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return false;
	switch (ERR_GET_REASON(e)) {
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
		return true;
	default:
		return false;
	}
}
