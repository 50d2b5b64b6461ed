/*
 * clienthello: our own parser for the first flight of a TLS client.
 *
 * The bypass decision is taken from what this parser returns, before any
 * OpenSSL object exists for the flow: peeking through OpenSSL is what made
 * Squid's peek-and-splice slow. The parser is pure (bytes in, facts out), has
 * no allocation but an optional reassembly buffer bounded by `limit`, and is
 * a libFuzzer target (tests/fuzz/fuzz_clienthello.c).
 *
 * A ClientHello we cannot parse is reported as malformed, never guessed at:
 * splicing what we do not understand would let a crafted hello walk around
 * inspection. A refusal names the fatal alert RFC 8446 (6.2) gives for it,
 * so the client hears why, as it would from a TLS server. A legacy_version
 * above TLS 1.2 is no refusal: the server negotiates down (RFC 8446 D.2).
 * An SSLv2-compatible hello (RFC 5246 E.2) is recognised as TLS and
 * refused: no current client sends one, and taking it for "not TLS" would
 * let a whole TLS session through uninspected.
 */
#ifndef DLPGATE_CLIENTHELLO_H
#define DLPGATE_CLIENTHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	CH_OK = 0,      /* a whole ClientHello was parsed */
	CH_NEED_MORE,   /* a prefix of a plausible ClientHello: read more */
	CH_NOT_TLS,     /* the bytes are not a TLS handshake record */
	CH_MALFORMED,   /* TLS, but broken or hostile; see ch->error */
	CH_TOO_BIG      /* the hello is larger than the limit */
} ch_status_t;

#define CH_MAX_ALPN 8

/* Fatal alert descriptions (RFC 8446 6) a refusal carries. */
#define CH_ALERT_UNEXPECTED_MESSAGE 10
#define CH_ALERT_RECORD_OVERFLOW 22
#define CH_ALERT_ILLEGAL_PARAMETER 47
#define CH_ALERT_DECODE_ERROR 50
#define CH_ALERT_PROTOCOL_VERSION 70
#define CH_ALERT_INTERNAL_ERROR 80

typedef struct {
	char sni[256];            /* lowercased host_name, no trailing dot; "" if absent */
	bool has_sni;
	bool has_alpn;
	uint8_t n_alpn;           /* protocols kept (at most CH_MAX_ALPN) */
	char alpn[CH_MAX_ALPN][32];
	bool alpn_http11;         /* "http/1.1" is offered */
	bool alpn_h2;
	bool offers_tls13;        /* supported_versions lists 0x0304 */
	uint16_t legacy_version;
	size_t consumed;          /* bytes of records that carried the hello */
	const char *error;        /* why CH_MALFORMED / CH_TOO_BIG */
	uint8_t alert;            /* the fatal alert to answer them with */
} clienthello_t;

ch_status_t clienthello_parse(const uint8_t *data, size_t len, size_t limit, clienthello_t *ch);
const char *clienthello_status_name(ch_status_t s);

#endif
