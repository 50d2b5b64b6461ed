#include "tls/mint.h"

#include "core/lru.h"
#include "tls/ca.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_NAMES 100

struct mint {
	X509 *ca_cert;
	EVP_PKEY *ca_key;
	EVP_PKEY *leaf_key;
	unsigned char ca_digest[32];
	unsigned char leaf_pub_digest[32];
	pthread_mutex_t lock;
	lru_t *cache;
	unsigned long minted, hits;
};

static void free_x509(void *p)
{
	X509_free(p);
}

mint_t *mint_new(X509 *ca_cert, EVP_PKEY *ca_key, size_t cache_size, char *err, size_t n)
{
	mint_t *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->leaf_key = EVP_EC_gen("P-256");
	m->cache = lru_new(cache_size, free_x509);
	unsigned int dlen = 0;
	unsigned char *pub = NULL;
	int publen = m->leaf_key ? i2d_PUBKEY(m->leaf_key, &pub) : -1;
	if (!m->leaf_key || !m->cache || publen <= 0 || !X509_digest(ca_cert, EVP_sha256(), m->ca_digest, &dlen)) {
		snprintf(err, n, "cannot set up leaf minting: %s", ERR_reason_error_string(ERR_get_error()));
		OPENSSL_free(pub);
		mint_free(m);
		return NULL;
	}
	EVP_Digest(pub, (size_t)publen, m->leaf_pub_digest, NULL, EVP_sha256(), NULL);
	OPENSSL_free(pub);
	X509_up_ref(ca_cert);
	EVP_PKEY_up_ref(ca_key);
	m->ca_cert = ca_cert;
	m->ca_key = ca_key;
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void mint_free(mint_t *m)
{
	if (!m)
		return;
	lru_free(m->cache);
	EVP_PKEY_free(m->leaf_key);
	X509_free(m->ca_cert);
	EVP_PKEY_free(m->ca_key);
	if (m->ca_cert)
		pthread_mutex_destroy(&m->lock);
	free(m);
}

EVP_PKEY *mint_leaf_key(const mint_t *m)
{
	return m->leaf_key;
}

void mint_stats(mint_t *m, mint_stats_t *out)
{
	pthread_mutex_lock(&m->lock);
	out->minted = m->minted;
	out->hits = m->hits;
	out->cached = lru_count(m->cache);
	pthread_mutex_unlock(&m->lock);
}

/* The names a leaf will carry, in order, deduplicated: "DNS:x" / "IP:y". */
typedef struct {
	char *v[MAX_NAMES];
	size_t n;
} names_t;

static void names_add(names_t *ns, const char *kind, const char *value)
{
	if (ns->n >= MAX_NAMES || !*value)
		return;
	char tmp[300];
	snprintf(tmp, sizeof tmp, "%s:%s", kind, value);
	for (size_t i = 0; i < ns->n; i++)
		if (strcasecmp(ns->v[i], tmp) == 0)
			return;
	ns->v[ns->n++] = strdup(tmp);
	if (!ns->v[ns->n - 1])
		ns->n--;
}

static void names_free(names_t *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	ns->n = 0;
}

static bool dns_name_ok(const unsigned char *s, int len)
{
	if (len <= 0 || len > 253)
		return false;
	for (int i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.' || c == '*' || c == '_'))
			return false;
	}
	return true;
}

static void add_ip_bytes(names_t *ns, const unsigned char *ip, int len)
{
	char text[INET6_ADDRSTRLEN];
	if (len == 4 && inet_ntop(AF_INET, ip, text, sizeof text))
		names_add(ns, "IP", text);
	else if (len == 16 && inet_ntop(AF_INET6, ip, text, sizeof text))
		names_add(ns, "IP", text);
}

static void collect_upstream_names(names_t *ns, X509 *up)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(up, NID_subject_alt_name, NULL, NULL);
	if (sans) {
		for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
			if (g->type == GEN_DNS) {
				const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
				int len = ASN1_STRING_length(g->d.dNSName);
				if (dns_name_ok(s, len)) {
					char tmp[256];
					memcpy(tmp, s, (size_t)len);
					tmp[len] = '\0';
					names_add(ns, "DNS", tmp);
				}
			} else if (g->type == GEN_IPADD) {
				add_ip_bytes(ns, ASN1_STRING_get0_data(g->d.iPAddress),
					     ASN1_STRING_length(g->d.iPAddress));
			}
		}
		GENERAL_NAMES_free(sans);
		return;
	}
	/* No SAN: legacy certificates name their host in the CN. */
	X509_NAME *subj = X509_get_subject_name(up);
	int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (idx >= 0) {
		ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
		const unsigned char *s = ASN1_STRING_get0_data(cn);
		int len = ASN1_STRING_length(cn);
		if (dns_name_ok(s, len)) {
			char tmp[256];
			memcpy(tmp, s, (size_t)len);
			tmp[len] = '\0';
			names_add(ns, "DNS", tmp);
		}
	}
}

static bool is_ip_literal(const char *name)
{
	unsigned char b[16];
	return inet_pton(AF_INET, name, b) == 1 || inet_pton(AF_INET6, name, b) == 1;
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* Validity window: from the start of yesterday (UTC) or the upstream's
 * notBefore if later, to at most 397 days on and never past the upstream's
 * notAfter. Day granularity keeps identical inputs identical all day. */
static void validity(X509 *up, time_t now, time_t *nb, time_t *na)
{
	time_t day = now - now % 86400;
	*nb = day - 86400;
	*na = *nb + (time_t)MINT_MAX_DAYS * 86400;
	if (up) {
		time_t unb = asn1_to_time(X509_get0_notBefore(up));
		time_t una = asn1_to_time(X509_get0_notAfter(up));
		if (unb > *nb)
			*nb = unb;
		if (una && una < *na)
			*na = una;
		if (*na - *nb > (time_t)MINT_MAX_DAYS * 86400)
			*na = *nb + (time_t)MINT_MAX_DAYS * 86400;
	} else {
		/* Minted only to tell a client why upstream failed: short. */
		*na = day + 7 * 86400;
	}
}

static bool add_san(X509 *cert, const names_t *ns)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	bool ok = gens != NULL;
	for (size_t i = 0; ok && i < ns->n; i++) {
		const char *v = ns->v[i];
		GENERAL_NAME *g = NULL;
		if (!strncmp(v, "DNS:", 4)) {
			ASN1_IA5STRING *s = ASN1_IA5STRING_new();
			ok = s && ASN1_STRING_set(s, v + 4, -1);
			g = ok ? GENERAL_NAME_new() : NULL;
			if (g)
				GENERAL_NAME_set0_value(g, GEN_DNS, s);
			else
				ASN1_IA5STRING_free(s);
		} else {
			ASN1_OCTET_STRING *ip = a2i_IPADDRESS(v + 3);
			g = ip ? GENERAL_NAME_new() : NULL;
			if (g)
				GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
			else
				ASN1_OCTET_STRING_free(ip);
		}
		ok = g && sk_GENERAL_NAME_push(gens, g) > 0;
		if (!ok)
			GENERAL_NAME_free(g);
	}
	ok = ok && X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok;
}

static X509 *build_leaf(mint_t *m, const names_t *ns, time_t nb, time_t na)
{
	/* Serial: SHA-256 of the CA, the leaf key, the names and the window;
	 * 127 bits, positive, never zero. */
	unsigned char digest[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *sh = EVP_MD_CTX_new();
	int64_t w[2] = {(int64_t)nb, (int64_t)na};
	bool hashed = sh && EVP_DigestInit_ex(sh, EVP_sha256(), NULL) &&
		      EVP_DigestUpdate(sh, m->ca_digest, sizeof m->ca_digest) &&
		      EVP_DigestUpdate(sh, m->leaf_pub_digest, sizeof m->leaf_pub_digest);
	for (size_t i = 0; hashed && i < ns->n; i++)
		hashed = EVP_DigestUpdate(sh, ns->v[i], strlen(ns->v[i]) + 1);
	hashed = hashed && EVP_DigestUpdate(sh, w, sizeof w) && EVP_DigestFinal_ex(sh, digest, NULL);
	EVP_MD_CTX_free(sh);
	if (!hashed)
		return NULL;
	digest[0] &= 0x7f;
	digest[0] |= 0x01;

	X509 *cert = X509_new();
	X509_NAME *subj = X509_NAME_new();
	BIGNUM *bn = BN_bin2bn(digest, 16, NULL);
	char cn[65];
	snprintf(cn, sizeof cn, "%s", strchr(ns->v[0], ':') + 1);
	X509V3_CTX ctx;
	bool ok = cert && subj && bn && X509_set_version(cert, 2) &&
		  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
		  ASN1_TIME_set(X509_getm_notBefore(cert), nb) && ASN1_TIME_set(X509_getm_notAfter(cert), na) &&
		  X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) &&
		  X509_set_subject_name(cert, subj) &&
		  X509_set_issuer_name(cert, X509_get_subject_name(m->ca_cert)) &&
		  X509_set_pubkey(cert, m->leaf_key);
	if (ok) {
		X509V3_set_ctx(&ctx, m->ca_cert, cert, NULL, NULL, 0);
		ok = ca_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
		     ca_add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature") &&
		     ca_add_ext(cert, &ctx, NID_ext_key_usage, "serverAuth") &&
		     ca_add_ext(cert, &ctx, NID_subject_key_identifier, "hash") &&
		     ca_add_ext(cert, &ctx, NID_authority_key_identifier, "keyid") && add_san(cert, ns);
	}
	/* EdDSA CA keys take no digest; everything else signs with SHA-256. */
	int id = EVP_PKEY_get_base_id(m->ca_key);
	const EVP_MD *md = (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? NULL : EVP_sha256();
	ok = ok && X509_sign(cert, m->ca_key, md) > 0;
	BN_free(bn);
	X509_NAME_free(subj);
	if (!ok) {
		X509_free(cert);
		ERR_clear_error();
		return NULL;
	}
	return cert;
}

X509 *mint_leaf(mint_t *m, X509 *upstream, const char *name)
{
	time_t now = time(NULL);
	time_t nb, na;
	validity(upstream, now, &nb, &na);

	/* Cache key: upstream certificate, requested name, window. */
	unsigned char key[32 + 8 + 256];
	size_t klen = 0;
	unsigned int dlen = 0;
	if (upstream && X509_digest(upstream, EVP_sha256(), key, &dlen))
		klen = dlen;
	else
		memset(key, 0, klen = 32);
	int64_t nb64 = (int64_t)nb;
	memcpy(key + klen, &nb64, sizeof nb64);
	klen += sizeof nb64;
	size_t nl = strnlen(name, 255);
	memcpy(key + klen, name, nl);
	klen += nl;

	pthread_mutex_lock(&m->lock);
	X509 *hit = lru_get(m->cache, key, klen, 0);
	if (hit) {
		X509_up_ref(hit);
		m->hits++;
		pthread_mutex_unlock(&m->lock);
		return hit;
	}
	pthread_mutex_unlock(&m->lock);

	/* Mint outside the lock: a signature is the slow part and two workers
	 * minting the same name at once just produce the same certificate. */
	names_t ns = {0};
	names_add(&ns, is_ip_literal(name) ? "IP" : "DNS", name);
	if (upstream)
		collect_upstream_names(&ns, upstream);
	X509 *leaf = ns.n ? build_leaf(m, &ns, nb, na) : NULL;
	names_free(&ns);
	if (!leaf)
		return NULL;

	pthread_mutex_lock(&m->lock);
	X509_up_ref(leaf);
	lru_put(m->cache, key, klen, leaf, 0);
	m->minted++;
	pthread_mutex_unlock(&m->lock);
	return leaf;
}
