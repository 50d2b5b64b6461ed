/*
 * cert: the console's TLS identity.
 *
 * Given (--tls-cert/--tls-key), or generated on first run into the state
 * dir: a self-signed ECDSA P-256 certificate for localhost, 127.0.0.1, ::1,
 * the host name and the --listen address when it is a single one;
 * console.pem (0644) and console.key (0600, created O_EXCL so an existing
 * key is never overwritten or widened). Agents pin console.pem (or a real
 * certificate replaces it).
 */
#include "console.h"

#include "tls/ca.h"

#include <arpa/inet.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The address of --listen when it is one address agents can dial (not a
 * wildcard, not loopback, which the certificate names anyway). */
static bool listen_ip(const char *listen, char *out, size_t n)
{
	const char *colon = strrchr(listen, ':');
	size_t len = colon ? (size_t)(colon - listen) : 0;
	if (len > 2 && listen[0] == '[' && listen[len - 1] == ']')
		listen++, len -= 2;
	if (!len || len >= n)
		return false;
	memcpy(out, listen, len);
	out[len] = '\0';
	unsigned char a[16];
	bool v4 = inet_pton(AF_INET, out, a) == 1, v6 = !v4 && inet_pton(AF_INET6, out, a) == 1;
	return (v4 || v6) && strcmp(out, "0.0.0.0") && strcmp(out, "::") && strcmp(out, "127.0.0.1") &&
	       strcmp(out, "::1");
}

static X509 *make_cert(EVP_PKEY *key, const char *listen)
{
	char host[256] = "localhost", san[700], ip[64];
	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	if (!strchr(host, ',') && !strchr(host, ':') && strcmp(host, "localhost") != 0)
		snprintf(san, sizeof san, "DNS:localhost,IP:127.0.0.1,IP:::1,DNS:%s", host);
	else
		snprintf(san, sizeof san, "DNS:localhost,IP:127.0.0.1,IP:::1");
	if (listen && listen_ip(listen, ip, sizeof ip))
		snprintf(san + strlen(san), sizeof san - strlen(san), ",IP:%s", ip);
	const ca_ext_t exts[] = {{NID_subject_alt_name, san},
				 {NID_ext_key_usage, "serverAuth"},
				 {NID_subject_key_identifier, "hash"},
				 {0, NULL}};
	return ca_self_signed(key, "dlpgate console", 825, exts);
}

static bool generate(const char *cert_path, const char *key_path, const char *listen, char *err, size_t n)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = key ? make_cert(key, listen) : NULL;
	if (!cert) {
		ca_openssl_error(err, n, "cannot make the console certificate");
		EVP_PKEY_free(key);
		return false;
	}
	bool ok = ca_write_pem(key_path, 0600, NULL, key, err, n);
	if (ok && !(ok = ca_write_pem(cert_path, 0644, cert, NULL, err, n)))
		unlink(key_path);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ok;
}

SSL_CTX *console_tls_ctx(const console_cfg_t *cfg, char *err, size_t n)
{
	char cert_path[4096], key_path[4096];
	if (cfg->tls_cert || cfg->tls_key) {
		if (!cfg->tls_cert || !cfg->tls_key) {
			snprintf(err, n, "--tls-cert and --tls-key go together: give both or neither");
			return NULL;
		}
		snprintf(cert_path, sizeof cert_path, "%s", cfg->tls_cert);
		snprintf(key_path, sizeof key_path, "%s", cfg->tls_key);
	} else {
		snprintf(cert_path, sizeof cert_path, "%s/console.pem", cfg->state_dir);
		snprintf(key_path, sizeof key_path, "%s/console.key", cfg->state_dir);
		bool have_cert = access(cert_path, F_OK) == 0, have_key = access(key_path, F_OK) == 0;
		if (!have_cert && !have_key) {
			if (!generate(cert_path, key_path, cfg->listen, err, n))
				return NULL;
		} else if (have_cert != have_key) {
			snprintf(err, n, "%s exists without %s: restore it, or remove both to have new ones generated",
				 have_cert ? cert_path : key_path, have_cert ? key_path : cert_path);
			return NULL;
		}
	}
	struct stat st;
	if (stat(key_path, &st) == 0 && (st.st_mode & 077)) {
		snprintf(err, n, "TLS key %s is readable by group or others; run: chmod 600 %s", key_path, key_path);
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ca_openssl_error(err, n, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		ca_openssl_error(err, n, cert_path);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		ca_openssl_error(err, n, key_path);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
