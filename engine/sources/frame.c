/*
 * frame: see frame.h and schemas/flow-frame.md.
 *
 * The JSON goes through core/strictjson (not jansson: the extension links
 * this file and nothing from outside Apple's SDK), which refuses invalid
 * UTF-8, \u0000 and a key given twice by itself; every field is then
 * checked against the table of what the protocol allows, so a field the
 * engine does not know is an error and not a silent skip.
 */
#include "sources/frame.h"

#include "core/strictjson.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const anchor_names[] = {"apple", "app_store", "developer_id", "adhoc", "unsigned"};
static const char *const verdict_names[] = {"accept", "bypass", "reject"};

const char *frame_anchor_name(frame_anchor_t a)
{
	return (unsigned)a < 5 ? anchor_names[a] : "?";
}

const char *frame_verdict_name(frame_verdict_t v)
{
	return (unsigned)v < 3 ? verdict_names[v] : "?";
}

static void put_prefix(uint8_t *p, const char *magic, size_t json_len)
{
	memcpy(p, magic, 4);
	p[4] = FRAME_VERSION >> 8;
	p[5] = FRAME_VERSION & 0xff;
	for (int i = 0; i < 4; i++)
		p[6 + i] = (uint8_t)(json_len >> (24 - 8 * i));
}

static bool emit_raw(const char *magic, const char *s, size_t n, bytebuf_t *out)
{
	uint8_t prefix[FRAME_PREFIX];
	if (n == 0 || n > (strcmp(magic, FRAME_MAGIC) ? FRAME_MAX_CONTROL : FRAME_MAX_JSON))
		return false;
	put_prefix(prefix, magic, n);
	return bytebuf_append(out, prefix, sizeof prefix) && bytebuf_append(out, s, n);
}

bool frame_control_encode(const char *json, size_t len, bytebuf_t *out)
{
	return emit_raw(FRAME_CONTROL_MAGIC, json, len, out);
}

/* The JSON of a frame is written in place after a prefix whose length
 * is filled in once it is known. */
static size_t open_frame(bytebuf_t *out)
{
	size_t at = out->len;
	static const uint8_t room[FRAME_PREFIX];
	return bytebuf_append(out, room, sizeof room) ? at : SIZE_MAX;
}

static bool close_frame(bytebuf_t *out, size_t at)
{
	size_t n = out->len - at - FRAME_PREFIX;
	if (n == 0 || n > FRAME_MAX_JSON) {
		out->len = at;
		return false;
	}
	put_prefix((uint8_t *)out->data + at, FRAME_MAGIC, n);
	return true;
}

/* ,"key":"value" (or without the comma first) */
static bool put_field(bytebuf_t *out, const char *key, const char *value, bool first)
{
	return bytebuf_appendf(out, "%s\"%s\":", first ? "" : ",", key) && sjson_put_string(out, value);
}

bool frame_request_encode(const frame_request_t *r, bytebuf_t *out, char *err, size_t errlen)
{
	size_t at = open_frame(out);
	bool ok = at != SIZE_MAX && bytebuf_append_str(out, "{\"app\":{") &&
		  put_field(out, "anchor", frame_anchor_name(r->app.anchor), true) &&
		  put_field(out, "audit_token_sha256", r->app.audit_token_sha256, false) &&
		  put_field(out, "path", r->app.path, false) &&
		  bytebuf_appendf(out, ",\"pid\":%lld", (long long)r->app.pid) &&
		  (!r->app.signing_id[0] || put_field(out, "signing_id", r->app.signing_id, false)) &&
		  (!r->app.team_id[0] || put_field(out, "team_id", r->app.team_id, false)) &&
		  bytebuf_appendf(out, ",\"uid\":%lld},\"dst\":{", (long long)r->app.uid) &&
		  put_field(out, "ip", r->dst_ip, true) && bytebuf_appendf(out, ",\"port\":%u}", (unsigned)r->dst_port) &&
		  put_field(out, "extension_version", r->extension_version, false) &&
		  put_field(out, "flow_id", r->flow_id, false) &&
		  (!r->hostname[0] || put_field(out, "hostname", r->hostname, false)) && bytebuf_append_str(out, "}");
	if (!ok) {
		if (at != SIZE_MAX)
			out->len = at;
		snprintf(err, errlen, "a field is not valid UTF-8 or memory ran out");
		return false;
	}
	if (!close_frame(out, at)) {
		snprintf(err, errlen, "frame larger than %d bytes", FRAME_MAX_JSON);
		return false;
	}
	return true;
}

bool frame_reply_encode(const frame_reply_t *r, bytebuf_t *out)
{
	/* a reason that is not UTF-8 is said so rather than sent */
	const char *reason = sjson_utf8_valid(r->reason, strlen(r->reason)) ? r->reason : "(reason not valid UTF-8)";
	size_t at = open_frame(out);
	bool ok = at != SIZE_MAX && bytebuf_append_str(out, "{") &&
		  put_field(out, "verdict", frame_verdict_name(r->verdict), true) &&
		  (r->verdict == FRAME_ACCEPT || put_field(out, "reason", reason, false)) &&
		  (!r->policy_version[0] || put_field(out, "policy_version", r->policy_version, false)) &&
		  bytebuf_append_str(out, "}");
	if (!ok && at != SIZE_MAX)
		out->len = at;
	return ok && close_frame(out, at);
}

/* ---- decoding ---- */

typedef struct {
	sjson_doc_t doc;
	char *err;
	size_t errlen;
} ctx_t;

static bool fail(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(ctx_t *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return false;
}

/* The prefix: BAD as soon as what is there is wrong, NEED_MORE until the
 * whole frame is. */
static frame_status_t prefix(const uint8_t *p, size_t n, const char *magic, size_t *json_len, ctx_t *c)
{
	if (memcmp(p, magic, n < 4 ? n : 4) != 0) {
		fail(c, "not a dlpgate %s frame (it does not start with \"%s\")",
		     strcmp(magic, FRAME_MAGIC) ? "control" : "flow", magic);
		return FRAME_BAD;
	}
	if (n < FRAME_PREFIX)
		return FRAME_NEED_MORE;
	unsigned version = (unsigned)p[4] << 8 | p[5];
	if (version != FRAME_VERSION) {
		fail(c, "flow protocol version %u, this engine speaks %d: update the %s", version, FRAME_VERSION,
		     version > FRAME_VERSION ? "engine" : "system extension");
		return FRAME_BAD;
	}
	uint32_t len = (uint32_t)p[6] << 24 | (uint32_t)p[7] << 16 | (uint32_t)p[8] << 8 | p[9];
	uint32_t max = strcmp(magic, FRAME_MAGIC) ? FRAME_MAX_CONTROL : FRAME_MAX_JSON;
	if (len == 0 || len > max) {
		fail(c, "frame of %u bytes (1 to %u allowed)", len, max);
		return FRAME_BAD;
	}
	*json_len = len;
	return n < FRAME_PREFIX + (size_t)len ? FRAME_NEED_MORE : FRAME_OK;
}

static const sjson_node_t *parse(const uint8_t *p, size_t len, const char *what, ctx_t *c)
{
	char why[200];
	if (!sjson_parse(&c->doc, (const char *)p, len, why, sizeof why)) {
		fail(c, "%s: %s", what, why);
		return NULL;
	}
	const sjson_node_t *o = sjson_root(&c->doc);
	if (o->type != SJSON_OBJECT) {
		fail(c, "%s is not a JSON object", what);
		return NULL;
	}
	return o;
}

static bool only_keys(ctx_t *c, const sjson_node_t *o, const char *where, const char *const *allowed)
{
	for (const sjson_node_t *m = sjson_first(&c->doc, o); m; m = sjson_next(&c->doc, m)) {
		const char *const *a = allowed;
		while (*a && strcmp(*a, m->key))
			a++;
		if (!*a)
			return fail(c, "%s: unknown field \"%.40s\"", where, m->key);
	}
	return true;
}

typedef bool (*charset_fn)(unsigned char ch);

static bool printable(unsigned char ch) { return ch >= 0x20 && ch != 0x7f; }
static bool host_char(unsigned char ch) { return isalnum(ch) || ch == '-' || ch == '.' || ch == '_'; }
static bool id_char(unsigned char ch) { return isalnum(ch) || ch == '-' || ch == '.' || ch == '_'; }
static bool hex_char(unsigned char ch) { return isdigit(ch) || (ch >= 'a' && ch <= 'f'); }

/* A string field: present unless optional, within [min, size) bytes, each
 * byte in charset (bytes past 0x7f are UTF-8, which strictjson checked). */
static bool string_field(const sjson_node_t *o, const char *where, const char *key, bool optional, size_t min, char *dst,
			 size_t size, charset_fn charset, ctx_t *c)
{
	const sjson_node_t *v = sjson_get(&c->doc, o, key);
	dst[0] = '\0';
	if (!v)
		return optional ? true : fail(c, "%s: missing \"%s\"", where, key);
	if (v->type != SJSON_STRING)
		return fail(c, "%s: \"%s\" is not a string", where, key);
	size_t n = v->len;
	const unsigned char *s = (const unsigned char *)v->str;
	if (n < min || n >= size)
		return fail(c, "%s: \"%s\" is %zu bytes (%zu to %zu allowed)", where, key, n, min, size - 1);
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x80 && !charset(s[i]))
			return fail(c, "%s: \"%s\" holds a character not allowed there (byte %zu)", where, key, i);
	memcpy(dst, s, n + 1);
	return true;
}

static bool int_field(const sjson_node_t *o, const char *where, const char *key, int64_t min, int64_t max,
		      int64_t *dst, ctx_t *c)
{
	const sjson_node_t *v = sjson_get(&c->doc, o, key);
	if (!v)
		return fail(c, "%s: missing \"%s\"", where, key);
	if (v->type != SJSON_INT || v->integer < min || v->integer > max)
		return fail(c, "%s: \"%s\" must be a whole number from %lld to %lld", where, key, (long long)min,
			    (long long)max);
	*dst = v->integer;
	return true;
}

static int choice(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static bool request_fields(const sjson_node_t *o, frame_request_t *r, ctx_t *c)
{
	static const char *const top[] = {"extension_version", "flow_id", "dst", "hostname", "app", NULL};
	static const char *const dst_keys[] = {"ip", "port", NULL};
	static const char *const app_keys[] = {"pid", "uid", "path", "signing_id", "team_id", "anchor",
					       "audit_token_sha256", NULL};
	if (!only_keys(c, o, "header", top) ||
	    !string_field(o, "header", "extension_version", false, 1, r->extension_version,
			  sizeof r->extension_version, id_char, c) ||
	    !string_field(o, "header", "flow_id", false, 1, r->flow_id, sizeof r->flow_id, id_char, c) ||
	    !string_field(o, "header", "hostname", true, 1, r->hostname, sizeof r->hostname, host_char, c))
		return false;
	for (char *h = r->hostname; *h; h++)
		*h = (char)tolower((unsigned char)*h);
	const sjson_node_t *dst = sjson_get(&c->doc, o, "dst");
	if (!dst || dst->type != SJSON_OBJECT)
		return fail(c, "header: \"dst\" must be an object {ip, port}");
	int64_t port;
	if (!only_keys(c, dst, "dst", dst_keys) ||
	    !string_field(dst, "dst", "ip", false, 2, r->dst_ip, sizeof r->dst_ip, printable, c) ||
	    !int_field(dst, "dst", "port", 1, 65535, &port, c))
		return false;
	r->dst_port = (uint16_t)port;
	unsigned char addr[16];
	if (inet_pton(AF_INET, r->dst_ip, addr) != 1 && inet_pton(AF_INET6, r->dst_ip, addr) != 1)
		return fail(c, "dst: \"ip\" is not a numeric IPv4 or IPv6 address");
	const sjson_node_t *app = sjson_get(&c->doc, o, "app");
	if (!app || app->type != SJSON_OBJECT)
		return fail(c, "header: \"app\" must be an object");
	char anchor[16];
	if (!only_keys(c, app, "app", app_keys) || !int_field(app, "app", "pid", 0, INT32_MAX, &r->app.pid, c) ||
	    !int_field(app, "app", "uid", 0, UINT32_MAX, &r->app.uid, c) ||
	    !string_field(app, "app", "path", false, 1, r->app.path, sizeof r->app.path, printable, c) ||
	    !string_field(app, "app", "signing_id", true, 1, r->app.signing_id, sizeof r->app.signing_id, printable,
			  c) ||
	    !string_field(app, "app", "team_id", true, 1, r->app.team_id, sizeof r->app.team_id, id_char, c) ||
	    !string_field(app, "app", "anchor", false, 1, anchor, sizeof anchor, id_char, c) ||
	    !string_field(app, "app", "audit_token_sha256", false, 64, r->app.audit_token_sha256,
			  sizeof r->app.audit_token_sha256, hex_char, c))
		return false;
	if (r->app.path[0] != '/')
		return fail(c, "app: \"path\" must be absolute");
	int a = choice(anchor, anchor_names, 5);
	if (a < 0)
		return fail(c, "app: \"anchor\" must be apple, app_store, developer_id, adhoc or unsigned");
	r->app.anchor = (frame_anchor_t)a;
	return true;
}

static bool reply_fields(const sjson_node_t *o, frame_reply_t *r, ctx_t *c)
{
	static const char *const keys[] = {"verdict", "reason", "policy_version", NULL};
	char verdict[16];
	if (!only_keys(c, o, "reply", keys) ||
	    !string_field(o, "reply", "verdict", false, 1, verdict, sizeof verdict, id_char, c) ||
	    !string_field(o, "reply", "reason", true, 1, r->reason, sizeof r->reason, printable, c) ||
	    !string_field(o, "reply", "policy_version", true, 1, r->policy_version, sizeof r->policy_version, printable,
			  c))
		return false;
	int v = choice(verdict, verdict_names, 3);
	if (v < 0)
		return fail(c, "reply: \"verdict\" must be accept, bypass or reject");
	r->verdict = (frame_verdict_t)v;
	return true;
}

/* Both directions: the prefix, the JSON, then fields(o, out) fills out
 * (zeroed first, size bytes) from the object. */
static frame_status_t decode(const uint8_t *p, size_t n, const char *what, void *out, size_t size,
			     bool (*fields)(const sjson_node_t *o, void *out, ctx_t *c), size_t *used, char *err, size_t errlen)
{
	ctx_t c = {.err = err, .errlen = errlen};
	size_t len = 0;
	frame_status_t st = prefix(p, n, FRAME_MAGIC, &len, &c);
	if (st != FRAME_OK)
		return st;
	memset(out, 0, size);
	const sjson_node_t *o = parse(p + FRAME_PREFIX, len, what, &c);
	bool ok = o && fields(o, out, &c);
	sjson_free(&c.doc);
	if (!ok)
		return FRAME_BAD;
	*used = FRAME_PREFIX + len;
	return FRAME_OK;
}

static bool request_fields_of(const sjson_node_t *o, void *r, ctx_t *c) { return request_fields(o, r, c); }
static bool reply_fields_of(const sjson_node_t *o, void *r, ctx_t *c) { return reply_fields(o, r, c); }

frame_status_t frame_request_decode(const uint8_t *p, size_t n, frame_request_t *r, size_t *used, char *err,
				    size_t errlen)
{
	return decode(p, n, "header", r, sizeof *r, request_fields_of, used, err, errlen);
}

frame_status_t frame_reply_decode(const uint8_t *p, size_t n, frame_reply_t *r, size_t *used, char *err,
				  size_t errlen)
{
	return decode(p, n, "reply", r, sizeof *r, reply_fields_of, used, err, errlen);
}

frame_status_t frame_control_decode(const uint8_t *p, size_t n, const char **json, size_t *json_len, size_t *used,
				    char *err, size_t errlen)
{
	ctx_t c = {.err = err, .errlen = errlen};
	size_t len = 0;
	frame_status_t st = prefix(p, n, FRAME_CONTROL_MAGIC, &len, &c);
	if (st != FRAME_OK)
		return st;
	*json = (const char *)p + FRAME_PREFIX;
	*json_len = len;
	*used = FRAME_PREFIX + len;
	return FRAME_OK;
}
