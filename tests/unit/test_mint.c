/*
 * Leaf minting: every leaf must verify against the CA with OpenSSL's own
 * verifier for the names the upstream had, carry serverAuth, and live at
 * most 397 days inside the upstream's window.
 */
#include "suites.h"
#include "tls/mint.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>

static void add_ext(X509 *issuer, X509 *cert, int nid, const char *v)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
	ck_assert_ptr_nonnull(e);
	X509_add_ext(cert, e, -1);
	X509_EXTENSION_free(e);
}

static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn, const char *san,
		       long from_days, long to_days, bool ca)
{
	X509 *c = X509_new();
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 42);
	X509_gmtime_adj(X509_getm_notBefore(c), from_days * 86400);
	X509_gmtime_adj(X509_getm_notAfter(c), to_days * 86400);
	X509_NAME *n = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : n);
	X509_set_pubkey(c, key);
	add_ext(issuer ? issuer : c, c, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
	add_ext(issuer ? issuer : c, c, NID_subject_key_identifier, "hash");
	if (ca)
		add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (san)
		add_ext(issuer ? issuer : c, c, NID_subject_alt_name, san);
	X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256());
	return c;
}

typedef struct {
	EVP_PKEY *ca_key;
	X509 *ca;
	EVP_PKEY *up_key;
} world_t;

static world_t world(bool rsa_ca)
{
	world_t w;
	w.ca_key = rsa_ca ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	w.ca = make_cert(w.ca_key, NULL, NULL, "test CA", NULL, -1, 3650, true);
	w.up_key = EVP_EC_gen("P-256");
	return w;
}

static void world_free(world_t *w)
{
	X509_free(w->ca);
	EVP_PKEY_free(w->ca_key);
	EVP_PKEY_free(w->up_key);
}

/* OpenSSL's verdict on leaf for name (DNS or IP) with only the CA trusted. */
static int verify(X509 *ca, X509 *leaf, const char *name, bool ip)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_add_cert(st, ca);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, st, leaf, NULL);
	X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
	if (ip)
		X509_VERIFY_PARAM_set1_ip_asc(p, name);
	else
		X509_VERIFY_PARAM_set1_host(p, name, 0);
	int ok = X509_verify_cert(ctx);
	int err = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return ok == 1 ? 0 : err;
}

static long days_between(const ASN1_TIME *a, const ASN1_TIME *b)
{
	int days = 0, secs = 0;
	ASN1_TIME_diff(&days, &secs, a, b);
	return days + (secs > 0 ? 1 : 0);
}

static mint_t *new_mint(world_t *w, size_t cache)
{
	char err[256];
	mint_t *m = mint_new(w->ca, w->ca_key, cache, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	return m;
}

START_TEST(mirrors_names_and_verifies)
{
	world_t w = world(false);
	X509 *up = make_cert(w.up_key, w.ca, w.ca_key, "www.example.com",
			     "DNS:www.example.com,DNS:*.cdn.example.com,IP:192.0.2.7", -10, 90, false);
	mint_t *m = new_mint(&w, 16);
	X509 *leaf = mint_leaf(m, up, "www.example.com");
	ck_assert_ptr_nonnull(leaf);
	ck_assert_int_eq(verify(w.ca, leaf, "www.example.com", false), 0);
	ck_assert_int_eq(verify(w.ca, leaf, "img.cdn.example.com", false), 0);
	ck_assert_int_eq(verify(w.ca, leaf, "192.0.2.7", true), 0);
	ck_assert_int_eq(verify(w.ca, leaf, "other.example.org", false), X509_V_ERR_HOSTNAME_MISMATCH);

	/* serverAuth EKU, not a CA, signed by our CA with our leaf key */
	ck_assert(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
	ck_assert_int_eq(X509_check_ca(leaf), 0);
	ck_assert(EVP_PKEY_eq(X509_get0_pubkey(leaf), mint_leaf_key(m)) == 1);
	/* within the upstream's window and never longer than 397 days */
	ck_assert_int_gt(X509_cmp_current_time(X509_get0_notAfter(leaf)), 0);
	ck_assert_int_lt(X509_cmp_current_time(X509_get0_notBefore(leaf)), 0);
	ck_assert_int_ge(ASN1_TIME_compare(X509_get0_notAfter(up), X509_get0_notAfter(leaf)), 0);
	ck_assert_int_le(days_between(X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), MINT_MAX_DAYS);

	X509_free(leaf);
	X509_free(up);
	mint_free(m);
	world_free(&w);
}
END_TEST

START_TEST(long_lived_upstream_is_capped)
{
	world_t w = world(false);
	X509 *up = make_cert(w.up_key, w.ca, w.ca_key, "long.example", "DNS:long.example", -3000, 3000, false);
	mint_t *m = new_mint(&w, 16);
	X509 *leaf = mint_leaf(m, up, "long.example");
	ck_assert_ptr_nonnull(leaf);
	ck_assert_int_eq(verify(w.ca, leaf, "long.example", false), 0);
	ck_assert_int_le(days_between(X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), MINT_MAX_DAYS);
	X509_free(leaf);
	X509_free(up);
	mint_free(m);
	world_free(&w);
}
END_TEST

START_TEST(sni_added_and_cn_fallback)
{
	world_t w = world(true); /* an RSA CA signs as well */
	/* no SAN at all: the CN is the name */
	X509 *up = make_cert(w.up_key, w.ca, w.ca_key, "legacy.example", NULL, -1, 30, false);
	mint_t *m = new_mint(&w, 16);
	X509 *leaf = mint_leaf(m, up, "legacy.example");
	ck_assert_int_eq(verify(w.ca, leaf, "legacy.example", false), 0);
	X509_free(leaf);
	/* IP-only flow with no upstream (refusal page): the IP is the name */
	leaf = mint_leaf(m, NULL, "127.0.0.1");
	ck_assert_int_eq(verify(w.ca, leaf, "127.0.0.1", true), 0);
	X509_free(leaf);
	X509_free(up);
	mint_free(m);
	world_free(&w);
}
END_TEST

START_TEST(deterministic_and_cached)
{
	world_t w = world(false);
	X509 *up = make_cert(w.up_key, w.ca, w.ca_key, "d.example", "DNS:d.example", -1, 30, false);
	X509 *up2 = make_cert(w.up_key, w.ca, w.ca_key, "e.example", "DNS:e.example", -1, 30, false);
	mint_t *m = new_mint(&w, 1); /* a cache of one: the second name evicts the first */
	X509 *a1 = mint_leaf(m, up, "d.example");
	X509 *a2 = mint_leaf(m, up, "d.example");
	ck_assert_ptr_eq(a1, a2); /* cache hit: the same object */
	X509 *b = mint_leaf(m, up2, "e.example");
	X509 *a3 = mint_leaf(m, up, "d.example"); /* minted again */
	ck_assert_ptr_ne(a1, a3);
	ck_assert_int_eq(ASN1_INTEGER_cmp(X509_get0_serialNumber(a1), X509_get0_serialNumber(a3)), 0);
	ck_assert_int_ne(ASN1_INTEGER_cmp(X509_get0_serialNumber(a1), X509_get0_serialNumber(b)), 0);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(a1), X509_get_subject_name(a3)), 0);
	mint_stats_t st;
	mint_stats(m, &st);
	ck_assert_uint_eq(st.minted, 3);
	ck_assert_uint_eq(st.hits, 1);
	X509_free(a1);
	X509_free(a2);
	X509_free(a3);
	X509_free(b);
	X509_free(up);
	X509_free(up2);
	mint_free(m);
	world_free(&w);
}
END_TEST

Suite *mint_suite(void)
{
	Suite *s = suite_create("mint");
	TCase *t = tcase_create("leaf");
	tcase_add_test(t, mirrors_names_and_verifies);
	tcase_add_test(t, long_lived_upstream_is_capped);
	tcase_add_test(t, sni_added_and_cn_fallback);
	tcase_add_test(t, deterministic_and_cached);
	tcase_set_timeout(t, 30);
	suite_add_tcase(s, t);
	return s;
}
