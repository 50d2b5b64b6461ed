/*
 * Test certificates made with the OpenSSL 3 API, not the openssl CLI, so tests can ask for
 * exactly the odd certificate they need (expired, self-signed, IP-only, RSA) in one call.
 *
 * Each certificate is written as PEM files in th_tmpdir(): NAME.pem (the certificate),
 * NAME.key (PKCS#8, mode 0600 like a real key) and NAME-chain.pem (leaf then issuer), the
 * file servers load so clients can build the path to the CA. Extensions are made with
 * X509V3_EXT_conf_nid from the same text forms openssl.cnf uses, which keeps each one a
 * readable line. Serial numbers are random: a verifier (or the proxy's cache) must never
 * confuse two test certificates.
 */
#include "harness/harness.h"
#include "harness/harness_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

static void fail_ssl(const char *what, const char *name)
{
	th_buf why = {0};
	th_buf_ssl_errors(&why);
	char *msg = th_xasprintf("certificate %s: %s: %s", name, what, why.data);
	th_buf_free(&why);
	th_fail("%s", msg);
}

static EVP_PKEY *make_key(bool rsa, const char *name)
{
	EVP_PKEY *key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	if (!key) fail_ssl(rsa ? "RSA-2048 key generation" : "P-256 key generation", name);
	return key;
}

static void set_random_serial(X509 *x, const char *name)
{
	unsigned char bytes[16];
	if (RAND_bytes(bytes, sizeof bytes) != 1) fail_ssl("RAND_bytes", name);
	bytes[0] &= 0x7f; /* positive */
	bytes[0] |= 0x01; /* and never zero or short */
	BIGNUM *bn = BN_bin2bn(bytes, sizeof bytes, NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) fail_ssl("serial", name);
	BN_free(bn);
}

static void set_validity(X509 *x, long not_before_days, long not_after_days, const char *name)
{
	if (!X509_gmtime_adj(X509_getm_notBefore(x), not_before_days * 86400L) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), not_after_days * 86400L))
		fail_ssl("validity", name);
}

static void set_subject_cn(X509 *x, const char *cn, const char *name)
{
	X509_NAME *subject = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0))
		fail_ssl("subject CN", name);
}

/* issuer may be x itself (self-signed): then x must already carry its SKI for the AKI. */
static void add_ext(X509 *x, X509 *issuer, int nid, const char *value, const char *name)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext || !X509_add_ext(x, ext, -1)) {
		X509_EXTENSION_free(ext);
		char *what = th_xasprintf("extension %s = %s", OBJ_nid2sn(nid), value);
		fail_ssl(what, name); /* does not return; what is lost with the failing test */
	}
	X509_EXTENSION_free(ext);
}

static char *pem_of(int (*write)(BIO *, const void *), const void *obj, const char *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio || !write(bio, obj)) fail_ssl("PEM encoding", name);
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	char *copy = th_xmalloc((size_t)len + 1);
	memcpy(copy, data, (size_t)len);
	copy[len] = '\0';
	BIO_free(bio);
	return copy;
}

static int write_cert(BIO *b, const void *x) { return PEM_write_bio_X509(b, (X509 *)x); }
static int write_key(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static void write_files(th_cert *c, const char *name, const th_cert *issuer)
{
	char *cert_pem = pem_of(write_cert, c->cert, name);
	char *key_pem = pem_of(write_key, c->key, name);
	char *file = th_xasprintf("%s.pem", name);
	c->cert_path = th_path(file);
	free(file);
	file = th_xasprintf("%s.key", name);
	c->key_path = th_path(file);
	free(file);
	file = th_xasprintf("%s-chain.pem", name);
	c->chain_path = th_path(file);
	free(file);

	th_write_file(c->cert_path, cert_pem, strlen(cert_pem), 0644);
	th_write_file(c->key_path, key_pem, strlen(key_pem), 0600);
	if (issuer) {
		char *issuer_pem = pem_of(write_cert, issuer->cert, name);
		char *chain = th_xasprintf("%s%s", cert_pem, issuer_pem);
		th_write_file(c->chain_path, chain, strlen(chain), 0644);
		free(chain);
		free(issuer_pem);
	} else {
		th_write_file(c->chain_path, cert_pem, strlen(cert_pem), 0644);
	}
	free(cert_pem);
	free(key_pem);
}

static void sign(X509 *x, EVP_PKEY *key, const char *name)
{
	if (!X509_sign(x, key, EVP_sha256())) fail_ssl("signing", name);
}

th_cert th_make_ca(const char *name)
{
	th_cert c = {0};
	c.key = make_key(false, name);
	c.cert = X509_new();
	if (!c.cert || !X509_set_version(c.cert, X509_VERSION_3)) fail_ssl("X509_new", name);
	set_random_serial(c.cert, name);
	set_validity(c.cert, -1, 3650, name);
	set_subject_cn(c.cert, name, name);
	X509_set_issuer_name(c.cert, X509_get_subject_name(c.cert));
	X509_set_pubkey(c.cert, c.key);
	add_ext(c.cert, c.cert, NID_basic_constraints, "critical,CA:TRUE", name);
	add_ext(c.cert, c.cert, NID_key_usage, "critical,keyCertSign,cRLSign", name);
	add_ext(c.cert, c.cert, NID_subject_key_identifier, "hash", name);
	sign(c.cert, c.key, name);
	write_files(&c, name, NULL);
	return c;
}

th_cert th_make_leaf(const th_cert *issuer, const char *name, const th_leaf_opts *o)
{
	static const th_leaf_opts defaults = {0};
	if (!o) o = &defaults;
	if (!o->self_signed && (!issuer || !issuer->cert || !issuer->key))
		th_fail("th_make_leaf %s: no issuer (pass a CA or set self_signed)", name);

	th_cert c = {0};
	c.key = make_key(o->rsa, name);
	c.cert = X509_new();
	if (!c.cert || !X509_set_version(c.cert, X509_VERSION_3)) fail_ssl("X509_new", name);
	set_random_serial(c.cert, name);
	long nb = o->not_before_days, na = o->not_after_days;
	if (nb == 0 && na == 0) nb = -1, na = 30;
	set_validity(c.cert, nb, na, name);
	set_subject_cn(c.cert, o->cn ? o->cn : name, name);
	X509 *signer_cert = o->self_signed ? c.cert : issuer->cert;
	EVP_PKEY *signer_key = o->self_signed ? c.key : issuer->key;
	X509_set_issuer_name(c.cert, X509_get_subject_name(signer_cert));
	X509_set_pubkey(c.cert, c.key);

	th_buf san = {0};
	for (size_t i = 0; i < sizeof o->dns / sizeof *o->dns && o->dns[i]; i++)
		th_buf_printf(&san, "%sDNS:%s", san.len ? "," : "", o->dns[i]);
	for (size_t i = 0; i < sizeof o->ip / sizeof *o->ip && o->ip[i]; i++)
		th_buf_printf(&san, "%sIP:%s", san.len ? "," : "", o->ip[i]);
	if (san.len) add_ext(c.cert, signer_cert, NID_subject_alt_name, san.data, name);
	th_buf_free(&san);

	add_ext(c.cert, signer_cert, NID_basic_constraints, "CA:FALSE", name);
	/* RSA keys also get keyEncipherment, as real RSA server certificates do (TLS 1.2
	 * RSA key exchange); ECDSA keys can only sign. */
	add_ext(c.cert, signer_cert, NID_key_usage,
	        o->rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature", name);
	add_ext(c.cert, signer_cert, NID_ext_key_usage, "serverAuth", name);
	add_ext(c.cert, signer_cert, NID_subject_key_identifier, "hash", name);
	add_ext(c.cert, signer_cert, NID_authority_key_identifier, "keyid:always", name);
	sign(c.cert, signer_key, name);
	write_files(&c, name, o->self_signed ? NULL : issuer);
	return c;
}

void th_cert_free(th_cert *c)
{
	if (!c) return;
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	free(c->cert_path);
	free(c->key_path);
	free(c->chain_path);
	*c = (th_cert){0};
}
