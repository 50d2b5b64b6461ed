/*
 * clienthello: record reassembly, then a bounds-checked walk of the
 * handshake message. Every read goes through rd_*() on a cursor that knows
 * its end, so a length field can never point outside the input.
 */
#include "tls/clienthello.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	const uint8_t *p, *end;
} cur_t;

static bool rd_u8(cur_t *c, uint8_t *v)
{
	if (c->end - c->p < 1)
		return false;
	*v = *c->p++;
	return true;
}

static bool rd_u16(cur_t *c, uint16_t *v)
{
	if (c->end - c->p < 2)
		return false;
	*v = (uint16_t)(c->p[0] << 8 | c->p[1]);
	c->p += 2;
	return true;
}

/* A sub-cursor over the next n bytes, which the parent skips. */
static bool rd_sub(cur_t *c, size_t n, cur_t *sub)
{
	if ((size_t)(c->end - c->p) < n)
		return false;
	sub->p = c->p;
	sub->end = c->p + n;
	c->p += n;
	return true;
}

/* Refused with the alert RFC 8446 (6.2) names for it. */
#define FAIL(alert_, msg)                \
	do {                             \
		ch->error = (msg);       \
		ch->alert = (alert_);    \
		return CH_MALFORMED;     \
	} while (0)

static ch_status_t parse_sni(cur_t ext, clienthello_t *ch)
{
	uint16_t list_len;
	cur_t list;
	if (!rd_u16(&ext, &list_len) || !rd_sub(&ext, list_len, &list) || ext.p != ext.end || list_len == 0)
		FAIL(CH_ALERT_DECODE_ERROR, "server_name extension has a bad length");
	while (list.p < list.end) {
		uint8_t type;
		uint16_t n;
		cur_t name;
		if (!rd_u8(&list, &type) || !rd_u16(&list, &n) || !rd_sub(&list, n, &name))
			FAIL(CH_ALERT_DECODE_ERROR, "server_name entry overruns its list");
		if (type != 0)
			continue; /* only host_name is defined; others are skipped */
		if (ch->has_sni)
			FAIL(CH_ALERT_ILLEGAL_PARAMETER, "two host_name entries in server_name");
		if (n == 0) /* HostName is opaque<1..2^16-1> (RFC 6066 3) */
			FAIL(CH_ALERT_DECODE_ERROR, "empty server name");
		if (n > 254)
			FAIL(CH_ALERT_ILLEGAL_PARAMETER, "server name longer than a host name");
		size_t k = 0;
		for (const uint8_t *q = name.p; q < name.end; q++) {
			uint8_t b = *q;
			if (b >= 'A' && b <= 'Z')
				b = (uint8_t)(b - 'A' + 'a');
			bool ok = (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '-' || b == '.' || b == '_';
			if (!ok)
				FAIL(CH_ALERT_ILLEGAL_PARAMETER, "server name holds a character not allowed in a host name");
			ch->sni[k++] = (char)b;
		}
		if (k > 0 && ch->sni[k - 1] == '.')
			k--;
		if (k == 0 || ch->sni[0] == '.' || k > 253)
			FAIL(CH_ALERT_ILLEGAL_PARAMETER, "server name is not a host name");
		ch->sni[k] = '\0';
		if (strstr(ch->sni, ".."))
			FAIL(CH_ALERT_ILLEGAL_PARAMETER, "server name has an empty label");
		ch->has_sni = true;
	}
	return CH_OK;
}

static ch_status_t parse_alpn(cur_t ext, clienthello_t *ch)
{
	uint16_t list_len;
	cur_t list;
	if (!rd_u16(&ext, &list_len) || !rd_sub(&ext, list_len, &list) || ext.p != ext.end || list_len < 2)
		FAIL(CH_ALERT_DECODE_ERROR, "ALPN extension has a bad length");
	ch->has_alpn = true;
	while (list.p < list.end) {
		uint8_t n;
		cur_t proto;
		if (!rd_u8(&list, &n) || n == 0 || !rd_sub(&list, n, &proto))
			FAIL(CH_ALERT_DECODE_ERROR, "ALPN protocol name overruns its list");
		if (n == 8 && !memcmp(proto.p, "http/1.1", 8))
			ch->alpn_http11 = true;
		if (n == 2 && !memcmp(proto.p, "h2", 2))
			ch->alpn_h2 = true;
		if (ch->n_alpn < CH_MAX_ALPN && n < sizeof ch->alpn[0]) {
			/* Kept for logs: printable bytes only. */
			char *dst = ch->alpn[ch->n_alpn++];
			for (uint8_t i = 0; i < n; i++)
				dst[i] = (proto.p[i] >= 0x21 && proto.p[i] < 0x7f) ? (char)proto.p[i] : '?';
			dst[n] = '\0';
		}
	}
	return CH_OK;
}

static ch_status_t parse_versions(cur_t ext, clienthello_t *ch)
{
	uint8_t n;
	cur_t list;
	if (!rd_u8(&ext, &n) || n < 2 || (n & 1) || !rd_sub(&ext, n, &list) || ext.p != ext.end)
		FAIL(CH_ALERT_DECODE_ERROR, "supported_versions extension has a bad length");
	while (list.p < list.end) {
		uint16_t v = 0;
		rd_u16(&list, &v);
		if (v == 0x0304)
			ch->offers_tls13 = true;
	}
	return CH_OK;
}

static ch_status_t parse_hello(cur_t c, clienthello_t *ch)
{
	uint8_t sid_len, comp_len;
	uint16_t cs_len, ext_len;
	cur_t skip, exts;

	if (!rd_u16(&c, &ch->legacy_version))
		FAIL(CH_ALERT_DECODE_ERROR, "ClientHello too short");
	if (ch->legacy_version < 0x0300) /* higher ones are negotiated down */
		FAIL(CH_ALERT_PROTOCOL_VERSION, "ClientHello version is older than SSL 3.0");
	if (!rd_sub(&c, 32, &skip))
		FAIL(CH_ALERT_DECODE_ERROR, "ClientHello too short for its random");
	if (!rd_u8(&c, &sid_len) || sid_len > 32 || !rd_sub(&c, sid_len, &skip))
		FAIL(CH_ALERT_DECODE_ERROR, "bad session id");
	if (!rd_u16(&c, &cs_len) || cs_len < 2 || (cs_len & 1) || !rd_sub(&c, cs_len, &skip))
		FAIL(CH_ALERT_DECODE_ERROR, "bad cipher suite list");
	if (!rd_u8(&c, &comp_len) || comp_len < 1 || !rd_sub(&c, comp_len, &skip))
		FAIL(CH_ALERT_DECODE_ERROR, "bad compression method list");
	if (c.p == c.end)
		return CH_OK; /* no extensions: legal before TLS 1.3 */
	if (!rd_u16(&c, &ext_len) || !rd_sub(&c, ext_len, &exts) || c.p != c.end)
		FAIL(CH_ALERT_DECODE_ERROR, "extensions do not fill the ClientHello exactly");

	/* Duplicate extension types are forbidden (RFC 8446 4.2); a parser
	 * that takes the first while the server takes the last is an evasion.
	 * Track the ones whose content we act on. */
	bool seen_sni = false, seen_alpn = false, seen_versions = false;
	while (exts.p < exts.end) {
		uint16_t type, n;
		cur_t ext;
		if (!rd_u16(&exts, &type) || !rd_u16(&exts, &n) || !rd_sub(&exts, n, &ext))
			FAIL(CH_ALERT_DECODE_ERROR, "extension overruns the extension list");
		ch_status_t s = CH_OK;
		switch (type) {
		case 0:
			if (seen_sni)
				FAIL(CH_ALERT_ILLEGAL_PARAMETER, "duplicate server_name extension");
			seen_sni = true;
			if (n > 0) /* a server's empty echo; legal, means nothing here */
				s = parse_sni(ext, ch);
			break;
		case 16:
			if (seen_alpn)
				FAIL(CH_ALERT_ILLEGAL_PARAMETER, "duplicate ALPN extension");
			seen_alpn = true;
			s = parse_alpn(ext, ch);
			break;
		case 43:
			if (seen_versions)
				FAIL(CH_ALERT_ILLEGAL_PARAMETER, "duplicate supported_versions extension");
			seen_versions = true;
			s = parse_versions(ext, ch);
			break;
		default:
			break;
		}
		if (s != CH_OK)
			return s;
	}
	return CH_OK;
}

/* Stops the record walk with a refusal. */
static ch_status_t refuse(clienthello_t *ch, ch_status_t st, uint8_t alert, const char *why)
{
	ch->error = why;
	ch->alert = alert;
	return st;
}

/* An SSLv2-compatible CLIENT-HELLO: a 2-byte length with the top bit set,
 * message type 1, then a version whose major is 2 or 3. */
static ch_status_t sslv2_hello(const uint8_t *data, size_t len, clienthello_t *ch)
{
	if (len < 4)
		return CH_NEED_MORE;
	if (data[2] != 1 || (data[3] != 2 && data[3] != 3))
		return CH_NOT_TLS;
	return refuse(ch, CH_MALFORMED, CH_ALERT_PROTOCOL_VERSION,
		      "SSLv2-compatible ClientHello (no current client sends one)");
}

ch_status_t clienthello_parse(const uint8_t *data, size_t len, size_t limit, clienthello_t *ch)
{
	memset(ch, 0, sizeof *ch);
	if (len >= 1 && (data[0] & 0x80))
		return sslv2_hello(data, len, ch);
	if (len >= 1 && data[0] != 0x16)
		return CH_NOT_TLS;
	if (len >= 2 && data[1] != 0x03)
		return CH_NOT_TLS;

	/* Walk the records. The usual case is one record holding the whole
	 * hello, parsed in place; a hello fragmented over records is copied
	 * into a buffer bounded by the limit. */
	const uint8_t *single = NULL;
	uint8_t *joined = NULL;
	size_t have = 0, need = 0, off = 0;
	ch_status_t st = CH_NEED_MORE;

	while (off + 5 <= len) {
		const uint8_t *r = data + off;
		size_t rlen = (size_t)(r[3] << 8 | r[4]);
		if (r[0] != 0x16) {
			st = refuse(ch, CH_MALFORMED, CH_ALERT_UNEXPECTED_MESSAGE,
				    "ClientHello interrupted by a non-handshake record");
			goto out;
		}
		if (r[1] != 0x03) {
			st = off == 0 ? CH_NOT_TLS
				      : refuse(ch, CH_MALFORMED, CH_ALERT_DECODE_ERROR, "record version is not TLS");
			goto out;
		}
		if (rlen == 0) { /* RFC 8446 5.1: no empty handshake fragments */
			st = refuse(ch, CH_MALFORMED, CH_ALERT_UNEXPECTED_MESSAGE, "empty handshake record");
			goto out;
		}
		if (rlen > 16384) {
			st = refuse(ch, CH_MALFORMED, CH_ALERT_RECORD_OVERFLOW, "handshake record longer than 2^14 bytes");
			goto out;
		}
		if (off + 5 + rlen > len)
			break; /* record incomplete */
		const uint8_t *payload = r + 5;
		if (off == 0 && rlen >= 4) {
			if (payload[0] != 1) {
				st = refuse(ch, CH_MALFORMED, CH_ALERT_UNEXPECTED_MESSAGE,
					    "first handshake message is not a ClientHello");
				goto out;
			}
			need = 4 + (size_t)(payload[1] << 16 | payload[2] << 8 | payload[3]);
			if (need > limit) {
				st = refuse(ch, CH_TOO_BIG, CH_ALERT_ILLEGAL_PARAMETER,
					    "ClientHello larger than limits.clienthello_bytes");
				goto out;
			}
			if (rlen > need) {
				st = refuse(ch, CH_MALFORMED, CH_ALERT_UNEXPECTED_MESSAGE,
					    "extra data after the ClientHello");
				goto out;
			}
			if (rlen == need) {
				single = payload;
				off += 5 + rlen;
				break;
			}
		}
		if (!joined) {
			joined = malloc(limit + 4);
			if (!joined) {
				st = refuse(ch, CH_MALFORMED, CH_ALERT_INTERNAL_ERROR, "out of memory");
				goto out;
			}
		}
		if (have + rlen > limit + 4) {
			st = refuse(ch, CH_TOO_BIG, CH_ALERT_ILLEGAL_PARAMETER,
				    "ClientHello larger than limits.clienthello_bytes");
			goto out;
		}
		memcpy(joined + have, payload, rlen);
		have += rlen;
		off += 5 + rlen;
		if (!need && have >= 4) {
			if (joined[0] != 1) {
				st = refuse(ch, CH_MALFORMED, CH_ALERT_UNEXPECTED_MESSAGE,
					    "first handshake message is not a ClientHello");
				goto out;
			}
			need = 4 + (size_t)(joined[1] << 16 | joined[2] << 8 | joined[3]);
			if (need > limit) {
				st = refuse(ch, CH_TOO_BIG, CH_ALERT_ILLEGAL_PARAMETER,
					    "ClientHello larger than limits.clienthello_bytes");
				goto out;
			}
		}
		if (need && have >= need)
			break;
	}

	if (single || (need && have >= need)) {
		const uint8_t *msg = single ? single : joined;
		/* Bytes after the hello in its last record would be a second
		 * handshake message from a client that has not seen our reply:
		 * legal nowhere. */
		if (!single && have != need) {
			st = refuse(ch, CH_MALFORMED, CH_ALERT_UNEXPECTED_MESSAGE, "extra data after the ClientHello");
			goto out;
		}
		cur_t c = {msg + 4, msg + need};
		ch->consumed = off;
		st = parse_hello(c, ch);
	}
out:
	free(joined);
	return st;
}

const char *clienthello_status_name(ch_status_t s)
{
	switch (s) {
	case CH_OK: return "ok";
	case CH_NEED_MORE: return "need-more";
	case CH_NOT_TLS: return "not-tls";
	case CH_MALFORMED: return "malformed";
	case CH_TOO_BIG: return "too-big";
	}
	return "?";
}
