/*
 * ClientHello parser: real hellos made by OpenSSL (the bytes a client
 * sends), then the same bytes cut, fragmented, and corrupted.
 */
#include "suites.h"
#include "tls/clienthello.h"

#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

/* The first flight of an OpenSSL client with the given SNI and ALPN. */
static size_t make_hello(uint8_t *out, size_t cap, const char *sni, const char *alpn_wire, size_t alpn_len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, rb, wb);
	if (sni)
		SSL_set_tlsext_host_name(ssl, sni);
	if (alpn_wire)
		SSL_set_alpn_protos(ssl, (const unsigned char *)alpn_wire, (unsigned)alpn_len);
	SSL_set_connect_state(ssl);
	SSL_do_handshake(ssl);
	int n = BIO_read(wb, out, (int)cap);
	ck_assert_int_gt(n, 50);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (size_t)n;
}

static const char alpn_h2_h11[] = "\x02h2\x08http/1.1";

START_TEST(parses_sni_alpn_and_versions)
{
	uint8_t buf[4096];
	size_t n = make_hello(buf, sizeof buf, "Example.COM", alpn_h2_h11, sizeof alpn_h2_h11 - 1);
	clienthello_t ch;
	ck_assert_int_eq(clienthello_parse(buf, n, 16384, &ch), CH_OK);
	ck_assert(ch.has_sni);
	ck_assert_str_eq(ch.sni, "example.com");
	ck_assert(ch.has_alpn && ch.alpn_h2 && ch.alpn_http11);
	ck_assert_int_eq(ch.n_alpn, 2);
	ck_assert_str_eq(ch.alpn[0], "h2");
	ck_assert(ch.offers_tls13);
	ck_assert_uint_eq(ch.consumed, n);
}
END_TEST

START_TEST(no_sni_no_alpn)
{
	uint8_t buf[4096];
	size_t n = make_hello(buf, sizeof buf, NULL, NULL, 0);
	clienthello_t ch;
	ck_assert_int_eq(clienthello_parse(buf, n, 16384, &ch), CH_OK);
	ck_assert(!ch.has_sni);
	ck_assert(!ch.has_alpn);
	ck_assert_str_eq(ch.sni, "");
}
END_TEST

START_TEST(every_prefix_needs_more)
{
	uint8_t buf[4096];
	size_t n = make_hello(buf, sizeof buf, "a.example", alpn_h2_h11, sizeof alpn_h2_h11 - 1);
	for (size_t i = 0; i < n; i++) {
		clienthello_t ch;
		ch_status_t st = clienthello_parse(buf, i, 16384, &ch);
		ck_assert_msg(st == CH_NEED_MORE, "prefix %zu/%zu gave %s", i, n, clienthello_status_name(st));
	}
}
END_TEST

/* The same handshake message split across records of `frag` bytes. */
static size_t refragment(const uint8_t *in, size_t n, uint8_t *out, size_t frag)
{
	const uint8_t *msg = in + 5;
	size_t mlen = n - 5, o = 0;
	for (size_t off = 0; off < mlen; off += frag) {
		size_t k = mlen - off < frag ? mlen - off : frag;
		out[o++] = 0x16;
		out[o++] = 0x03;
		out[o++] = 0x01;
		out[o++] = (uint8_t)(k >> 8);
		out[o++] = (uint8_t)k;
		memcpy(out + o, msg + off, k);
		o += k;
	}
	return o;
}

START_TEST(fragmented_across_records)
{
	uint8_t buf[4096], frag[8192];
	size_t n = make_hello(buf, sizeof buf, "frag.example", alpn_h2_h11, sizeof alpn_h2_h11 - 1);
	size_t sizes[] = {1, 3, 7, 100, 200};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t m = refragment(buf, n, frag, sizes[i]);
		clienthello_t ch;
		ck_assert_int_eq(clienthello_parse(frag, m, 16384, &ch), CH_OK);
		ck_assert_str_eq(ch.sni, "frag.example");
		ck_assert_uint_eq(ch.consumed, m);
		/* and a prefix of the fragmented form still wants more */
		ck_assert_int_eq(clienthello_parse(frag, m - 1, 16384, &ch), CH_NEED_MORE);
	}
}
END_TEST

START_TEST(not_tls)
{
	clienthello_t ch;
	const char *http = "GET / HTTP/1.1\r\n";
	ck_assert_int_eq(clienthello_parse((const uint8_t *)http, strlen(http), 16384, &ch), CH_NOT_TLS);
	/* high bit set, but no SSLv2 CLIENT-HELLO (type 1, version 2.x or 3.x) */
	const uint8_t binary[] = {0x80, 0x2e, 0x05, 0x03, 0x01};
	ck_assert_int_eq(clienthello_parse(binary, sizeof binary, 16384, &ch), CH_NOT_TLS);
	const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
	ck_assert_int_eq(clienthello_parse(alert, sizeof alert, 16384, &ch), CH_NOT_TLS);
}
END_TEST

START_TEST(too_big)
{
	uint8_t buf[4096];
	size_t n = make_hello(buf, sizeof buf, "big.example", NULL, 0);
	clienthello_t ch;
	ck_assert_int_eq(clienthello_parse(buf, n, 100, &ch), CH_TOO_BIG);
	ck_assert_ptr_nonnull(ch.error);
	ck_assert_int_eq(ch.alert, CH_ALERT_ILLEGAL_PARAMETER);
}
END_TEST

/* Finds an extension of the given type in a single-record hello. */
static uint8_t *find_ext(uint8_t *buf, size_t n, uint16_t type)
{
	uint8_t *p = buf + 5 + 4 + 2 + 32;
	p += 1 + p[0];                  /* session id */
	p += 2 + (p[0] << 8 | p[1]);    /* cipher suites */
	p += 1 + p[0];                  /* compression */
	uint8_t *end = p + 2 + (p[0] << 8 | p[1]);
	p += 2;
	while (p + 4 <= end && end <= buf + n) {
		uint16_t t = (uint16_t)(p[0] << 8 | p[1]);
		if (t == type)
			return p;
		p += 4 + (p[2] << 8 | p[3]);
	}
	return NULL;
}

/* Refused with this alert. */
static void refused(const uint8_t *buf, size_t n, uint8_t alert)
{
	clienthello_t ch;
	ck_assert_int_eq(clienthello_parse(buf, n, 16384, &ch), CH_MALFORMED);
	ck_assert_msg(ch.alert == alert, "alert %d, not %d, for: %s", ch.alert, alert, ch.error);
}

START_TEST(malformed_variants)
{
	uint8_t orig[4096], buf[4096];
	size_t n = make_hello(orig, sizeof orig, "bad.example", alpn_h2_h11, sizeof alpn_h2_h11 - 1);
	clienthello_t ch;

	/* SNI with a character no host name has */
	memcpy(buf, orig, n);
	uint8_t *sni = find_ext(buf, n, 0);
	ck_assert_ptr_nonnull(sni);
	sni[4 + 5 + 3] = '/';
	refused(buf, n, CH_ALERT_ILLEGAL_PARAMETER);

	/* an empty host_name: HostName is opaque<1..2^16-1> */
	memcpy(buf, orig, n);
	sni = find_ext(buf, n, 0);
	sni[7] = sni[8] = 0;
	refused(buf, n, CH_ALERT_DECODE_ERROR);

	/* a second server_name extension: the ALPN one renamed */
	memcpy(buf, orig, n);
	uint8_t *alpn = find_ext(buf, n, 16);
	ck_assert_ptr_nonnull(alpn);
	alpn[0] = 0;
	alpn[1] = 0;
	refused(buf, n, CH_ALERT_ILLEGAL_PARAMETER);

	/* an extension whose length runs past the list */
	memcpy(buf, orig, n);
	alpn = find_ext(buf, n, 16);
	alpn[2] = 0x40;
	refused(buf, n, CH_ALERT_DECODE_ERROR);

	/* a non-handshake record in the middle of a fragmented hello */
	uint8_t frag[8192];
	size_t m = refragment(orig, n, frag, 100);
	frag[105] = 0x17;
	refused(frag, m, CH_ALERT_UNEXPECTED_MESSAGE);

	/* a handshake message that is not a ClientHello */
	memcpy(buf, orig, n);
	buf[5] = 2;
	refused(buf, n, CH_ALERT_UNEXPECTED_MESSAGE);

	/* record length zero */
	const uint8_t empty[] = {0x16, 0x03, 0x01, 0x00, 0x00};
	refused(empty, sizeof empty, CH_ALERT_UNEXPECTED_MESSAGE);

	/* a record over 2^14 bytes */
	const uint8_t overflow[] = {0x16, 0x03, 0x01, 0x40, 0x01, 0x01};
	refused(overflow, sizeof overflow, CH_ALERT_RECORD_OVERFLOW);

	/* a version older than SSL 3.0 */
	memcpy(buf, orig, n);
	buf[9] = 0x02;
	refused(buf, n, CH_ALERT_PROTOCOL_VERSION);

	/* bytes after the hello inside its own record: a second message */
	memcpy(buf, orig, n);
	buf[n] = 0x14;
	buf[3] = (uint8_t)((n - 5 + 1) >> 8);
	buf[4] = (uint8_t)(n - 5 + 1);
	refused(buf, n + 1, CH_ALERT_UNEXPECTED_MESSAGE);

	/* an odd cipher suite list length */
	memcpy(buf, orig, n);
	uint8_t *cs = buf + 5 + 4 + 2 + 32;
	cs += 1 + cs[0];
	cs[1] |= 1;
	refused(buf, n, CH_ALERT_DECODE_ERROR);
	(void)ch;
}
END_TEST

/* RFC 8446 D.2 / RFC 5246 E.1: a higher legacy_version is negotiated
 * down by the server, never refused. */
START_TEST(future_versions_are_tls)
{
	uint8_t buf[4096];
	size_t n = make_hello(buf, sizeof buf, "future.example", NULL, 0);
	clienthello_t ch;
	buf[9] = 0x04; /* ClientHello.legacy_version 4.1 */
	buf[10] = 0x01;
	ck_assert_int_eq(clienthello_parse(buf, n, 16384, &ch), CH_OK);
	ck_assert_int_eq(ch.legacy_version, 0x0401);
	ck_assert_str_eq(ch.sni, "future.example");
}
END_TEST

/* The SSLv2-compatible hello (RFC 5246 E.2), as an old client sent it:
 * TLS all the same, and refused, never taken for "not TLS". */
START_TEST(sslv2_hello_is_tls_and_refused)
{
	const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
	clienthello_t ch;
	for (size_t k = 1; k < 4; k++)
		ck_assert_int_eq(clienthello_parse(v2, k, 16384, &ch), CH_NEED_MORE);
	ck_assert_int_eq(clienthello_parse(v2, sizeof v2, 16384, &ch), CH_MALFORMED);
	ck_assert_int_eq(ch.alert, CH_ALERT_PROTOCOL_VERSION);
	ck_assert(strstr(ch.error, "SSLv2"));
}
END_TEST

START_TEST(random_mutations_never_crash)
{
	/* Cheap fuzzing in the unit run; the real fuzzer is tests/fuzz. */
	uint8_t orig[4096], buf[4096];
	size_t n = make_hello(orig, sizeof orig, "m.example", alpn_h2_h11, sizeof alpn_h2_h11 - 1);
	srand(7);
	for (int i = 0; i < 20000; i++) {
		memcpy(buf, orig, n);
		int flips = 1 + rand() % 4;
		for (int k = 0; k < flips; k++)
			buf[rand() % n] = (uint8_t)rand();
		size_t len = (size_t)rand() % (n + 1);
		clienthello_t ch;
		ch_status_t st = clienthello_parse(buf, len, 16384, &ch);
		ck_assert(st >= CH_OK && st <= CH_TOO_BIG);
		if (st == CH_OK && ch.has_sni)
			ck_assert(strlen(ch.sni) > 0 && strlen(ch.sni) <= 253);
	}
}
END_TEST

Suite *clienthello_suite(void)
{
	Suite *s = suite_create("clienthello");
	TCase *t = tcase_create("parse");
	tcase_add_test(t, parses_sni_alpn_and_versions);
	tcase_add_test(t, no_sni_no_alpn);
	tcase_add_test(t, every_prefix_needs_more);
	tcase_add_test(t, fragmented_across_records);
	tcase_add_test(t, not_tls);
	tcase_add_test(t, too_big);
	tcase_add_test(t, malformed_variants);
	tcase_add_test(t, future_versions_are_tls);
	tcase_add_test(t, sslv2_hello_is_tls_and_refused);
	tcase_add_test(t, random_mutations_never_crash);
	tcase_set_timeout(t, 60);
	suite_add_tcase(s, t);
	return s;
}
