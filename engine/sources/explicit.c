#include "sources/explicit.h"

#include "core/log.h"
#include "flow.h"
#include "http/relay.h"
#include "http/reply.h"
#include "net/worker.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void explicit_start(flow_t *f)
{
	relay_start_proxy(f);
}

static bool host_char_ok(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_';
}

const char *explicit_parse_authority(const char *s, size_t n, uint16_t default_port, char *host, size_t hostlen,
				     uint16_t *port)
{
	const char *end = s + n, *h = s, *he, *colon;
	if (n == 0)
		return "empty authority";
	if (*s == '[') {
		he = memchr(s, ']', n);
		if (!he)
			return "unterminated IPv6 address in authority";
		h = s + 1;
		colon = he + 1 < end ? he + 1 : NULL;
		if (colon && *colon != ':')
			return "garbage after IPv6 address in authority";
		for (const char *p = h; p < he; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return "bad IPv6 address in authority";
	} else {
		colon = memchr(s, ':', n);
		he = colon ? colon : end;
		for (const char *p = h; p < he; p++)
			if (!host_char_ok((unsigned char)*p))
				return "host name holds a character not allowed in a host name";
	}
	size_t hl = (size_t)(he - h);
	if (hl == 0 || hl >= hostlen || hl > 253)
		return "host name empty or too long";
	memcpy(host, h, hl);
	host[hl] = '\0';
	for (char *p = host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!colon) {
		if (!default_port)
			return "authority needs a port (host:port)";
		*port = default_port;
		return NULL;
	}
	const char *ps = colon + 1;
	if (ps == end || end - ps > 5)
		return "bad port in authority";
	unsigned long v = 0;
	for (const char *p = ps; p < end; p++) {
		if (!isdigit((unsigned char)*p))
			return "bad port in authority";
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return "port out of range";
	*port = (uint16_t)v;
	return NULL;
}

const char *explicit_parse_absolute(const char *t, size_t n, char *host, size_t hostlen, uint16_t *port,
				    const char **path, size_t *pathlen)
{
	static const char http[] = "http://";
	if (n >= 8 && !strncasecmp(t, "https://", 8))
		return "https:// request targets are not proxied in the clear: use CONNECT";
	if (n < sizeof http - 1 || strncasecmp(t, http, sizeof http - 1))
		return "request target is not an absolute http:// URL";
	const char *a = t + sizeof http - 1, *end = t + n;
	const char *p = a;
	while (p < end && *p != '/' && *p != '?' && *p != '#')
		p++;
	if (memchr(a, '@', (size_t)(p - a)))
		return "credentials in the request URL are refused";
	const char *bad = explicit_parse_authority(a, (size_t)(p - a), 80, host, hostlen, port);
	if (bad)
		return bad;
	if (p == end || *p != '/') {
		*path = "/";
		*pathlen = 1;
		if (p < end && *p == '?') {
			/* "http://h?q" means "/?q": the caller rebuilds it. */
			return "request URL has a query but no path";
		}
		return NULL;
	}
	const char *frag = memchr(p, '#', (size_t)(end - p));
	*path = p;
	*pathlen = (size_t)((frag ? frag : end) - p);
	return NULL;
}

/* ---- CONNECT ---- */

static void reply_and_finish(flow_t *f, int status, const char *code, const char *detail)
{
	bytebuf_t out;
	bytebuf_init(&out, 0);
	reply_t rp = {.status = status,
		      .code = code,
		      .title = status == 504 ? "The server did not answer" : "Cannot reach the server",
		      .detail = detail,
		      .flow_id = f->id};
	reply_build(&out, &rp, NULL);
	side_write(&f->client, out.data, out.len);
	bytebuf_free(&out);
	flow_finish(f, "connect-failed", "%d %s", status, detail);
}

static void connected(flow_t *f, int status, const char *why)
{
	flow_deadline(f, 0, NULL);
	if (status) {
		reply_and_finish(f, status == UV_ETIMEDOUT ? 504 : 502, status == UV_ETIMEDOUT ? "connect-timeout"
											     : "connect-failed",
				 why);
		return;
	}
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	if (!side_write(&f->client, ok, sizeof ok - 1)) {
		flow_close(f, "error", "client gone before the tunnel opened");
		return;
	}
	flow_tunnel_start(f);
}

void explicit_connect(flow_t *f, const http_head_t *req, const char *rest, size_t rest_len)
{
	char host[256];
	uint16_t port = 0;
	const char *bad = explicit_parse_authority(http_head_str(req, req->target_off), req->target_len, 0, host,
						   sizeof host, &port);
	relay_free(f->relay);
	f->relay = NULL;
	if (bad) {
		bytebuf_t out;
		bytebuf_init(&out, 0);
		reply_t rp = {.status = 400, .code = "bad-connect", .title = "Bad CONNECT request", .detail = bad,
			      .flow_id = f->id};
		reply_build(&out, &rp, NULL);
		side_write(&f->client, out.data, out.len);
		bytebuf_free(&out);
		flow_finish(f, "bad-request", "CONNECT: %s", bad);
		return;
	}
	flow_set_destination(f, host, port);
	f->tunnel = true;
	/* Bytes sent after CONNECT without waiting for our 200 belong to the
	 * tunnel. */
	if (rest_len && !bytebuf_append(&f->peek, rest, rest_len)) {
		flow_close(f, "bad-clienthello", "first bytes larger than limits.clienthello_bytes");
		return;
	}
	side_read(&f->client, false);
	flow_set_state(f, FLOW_DIAL);
	flow_idle(f, 0);
	flow_deadline(f, f->eng->cfg.connect_timeout_ms, "connect");
	int e = flow_dial(f, host, port, connected);
	if (e < 0) {
		char why[400];
		snprintf(why, sizeof why, "cannot connect to %s: %s", host, uv_strerror(e));
		reply_and_finish(f, 502, "connect-failed", why);
	}
}
