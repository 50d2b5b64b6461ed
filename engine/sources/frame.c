/*
 * frame: see frame.h and schemas/flow-frame.md.
 *
 * The JSON goes through jansson, which refuses invalid UTF-8 and \u0000
 * by itself (JSON_REJECT_DUPLICATES refuses a key given twice); every
 * field is then checked against the table of what the protocol allows,
 * so a field the engine does not know is an error and not a silent skip.
 */
#include "sources/frame.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
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

static bool emit(json_t *o, bytebuf_t *out)
{
	bool ok = false;
	if (o) {
		char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
		ok = s && emit_raw(FRAME_MAGIC, s, strlen(s), out);
		free(s);
		json_decref(o);
	}
	return ok;
}

bool frame_request_encode(const frame_request_t *r, bytebuf_t *out, char *err, size_t errlen)
{
	json_t *app = json_pack("{s:I, s:I, s:s, s:s, s:s}", "pid", (json_int_t)r->app.pid, "uid",
				(json_int_t)r->app.uid, "path", r->app.path, "anchor", frame_anchor_name(r->app.anchor),
				"audit_token_sha256", r->app.audit_token_sha256);
	if (app && r->app.signing_id[0])
		json_object_set_new(app, "signing_id", json_string(r->app.signing_id));
	if (app && r->app.team_id[0])
		json_object_set_new(app, "team_id", json_string(r->app.team_id));
	json_t *o = app ? json_pack("{s:s, s:s, s:{s:s, s:i}, s:o}", "extension_version", r->extension_version,
				    "flow_id", r->flow_id, "dst", "ip", r->dst_ip, "port", (int)r->dst_port, "app", app)
			: NULL;
	if (o && r->hostname[0])
		json_object_set_new(o, "hostname", json_string(r->hostname));
	if (!o) {
		/* json_pack fails on a string that is not UTF-8 */
		snprintf(err, errlen, "a field is not valid UTF-8 or memory ran out");
		return false;
	}
	if (!emit(o, out)) {
		snprintf(err, errlen, "frame larger than %d bytes or memory ran out", FRAME_MAX_JSON);
		return false;
	}
	return true;
}

bool frame_reply_encode(const frame_reply_t *r, bytebuf_t *out)
{
	json_t *o = json_pack("{s:s}", "verdict", frame_verdict_name(r->verdict));
	if (o && r->verdict != FRAME_ACCEPT) {
		json_t *reason = json_string(r->reason);
		if (!reason) /* not UTF-8: say so rather than send it */
			reason = json_string("(reason not valid UTF-8)");
		json_object_set_new(o, "reason", reason);
	}
	if (o && r->policy_version[0])
		json_object_set_new(o, "policy_version", json_string(r->policy_version));
	return emit(o, out);
}

/* ---- decoding ---- */

typedef struct {
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

static json_t *parse(const uint8_t *p, size_t len, const char *what, ctx_t *c)
{
	json_error_t je;
	json_t *o = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		fail(c, "%s: %s (column %d)", what, je.text, je.column);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		fail(c, "%s is not a JSON object", what);
		return NULL;
	}
	return o;
}

static bool only_keys(json_t *o, const char *where, const char *const *allowed, ctx_t *c)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		const char *const *a = allowed;
		while (*a && strcmp(*a, k))
			a++;
		if (!*a)
			return fail(c, "%s: unknown field \"%.40s\"", where, k);
	}
	return true;
}

typedef bool (*charset_fn)(unsigned char ch);

static bool printable(unsigned char ch) { return ch >= 0x20 && ch != 0x7f; }
static bool host_char(unsigned char ch) { return isalnum(ch) || ch == '-' || ch == '.' || ch == '_'; }
static bool id_char(unsigned char ch) { return isalnum(ch) || ch == '-' || ch == '.' || ch == '_'; }
static bool hex_char(unsigned char ch) { return isdigit(ch) || (ch >= 'a' && ch <= 'f'); }

/* A string field: present unless optional, within [min, size) bytes, each
 * byte in charset (bytes past 0x7f are UTF-8, which jansson checked). */
static bool string_field(json_t *o, const char *where, const char *key, bool optional, size_t min, char *dst,
			 size_t size, charset_fn charset, ctx_t *c)
{
	json_t *v = json_object_get(o, key);
	dst[0] = '\0';
	if (!v)
		return optional ? true : fail(c, "%s: missing \"%s\"", where, key);
	if (!json_is_string(v))
		return fail(c, "%s: \"%s\" is not a string", where, key);
	size_t n = json_string_length(v);
	const unsigned char *s = (const unsigned char *)json_string_value(v);
	if (n < min || n >= size)
		return fail(c, "%s: \"%s\" is %zu bytes (%zu to %zu allowed)", where, key, n, min, size - 1);
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x80 && !charset(s[i]))
			return fail(c, "%s: \"%s\" holds a character not allowed there (byte %zu)", where, key, i);
	memcpy(dst, s, n + 1);
	return true;
}

static bool int_field(json_t *o, const char *where, const char *key, json_int_t min, json_int_t max, int64_t *dst,
		      ctx_t *c)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return fail(c, "%s: missing \"%s\"", where, key);
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return fail(c, "%s: \"%s\" must be a whole number from %lld to %lld", where, key, (long long)min,
			    (long long)max);
	*dst = json_integer_value(v);
	return true;
}

static int choice(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static bool request_fields(json_t *o, frame_request_t *r, ctx_t *c)
{
	static const char *const top[] = {"extension_version", "flow_id", "dst", "hostname", "app", NULL};
	static const char *const dst_keys[] = {"ip", "port", NULL};
	static const char *const app_keys[] = {"pid", "uid", "path", "signing_id", "team_id", "anchor",
					       "audit_token_sha256", NULL};
	if (!only_keys(o, "header", top, c) ||
	    !string_field(o, "header", "extension_version", false, 1, r->extension_version,
			  sizeof r->extension_version, id_char, c) ||
	    !string_field(o, "header", "flow_id", false, 1, r->flow_id, sizeof r->flow_id, id_char, c) ||
	    !string_field(o, "header", "hostname", true, 1, r->hostname, sizeof r->hostname, host_char, c))
		return false;
	for (char *h = r->hostname; *h; h++)
		*h = (char)tolower((unsigned char)*h);
	json_t *dst = json_object_get(o, "dst");
	if (!json_is_object(dst))
		return fail(c, "header: \"dst\" must be an object {ip, port}");
	int64_t port;
	if (!only_keys(dst, "dst", dst_keys, c) ||
	    !string_field(dst, "dst", "ip", false, 2, r->dst_ip, sizeof r->dst_ip, printable, c) ||
	    !int_field(dst, "dst", "port", 1, 65535, &port, c))
		return false;
	r->dst_port = (uint16_t)port;
	unsigned char addr[16];
	if (inet_pton(AF_INET, r->dst_ip, addr) != 1 && inet_pton(AF_INET6, r->dst_ip, addr) != 1)
		return fail(c, "dst: \"ip\" is not a numeric IPv4 or IPv6 address");
	json_t *app = json_object_get(o, "app");
	if (!json_is_object(app))
		return fail(c, "header: \"app\" must be an object");
	char anchor[16];
	if (!only_keys(app, "app", app_keys, c) || !int_field(app, "app", "pid", 0, INT32_MAX, &r->app.pid, c) ||
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

static bool reply_fields(json_t *o, frame_reply_t *r, ctx_t *c)
{
	static const char *const keys[] = {"verdict", "reason", "policy_version", NULL};
	char verdict[16];
	if (!only_keys(o, "reply", keys, c) ||
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
			     bool (*fields)(json_t *o, void *out, ctx_t *c), size_t *used, char *err, size_t errlen)
{
	ctx_t c = {err, errlen};
	size_t len = 0;
	frame_status_t st = prefix(p, n, FRAME_MAGIC, &len, &c);
	if (st != FRAME_OK)
		return st;
	memset(out, 0, size);
	json_t *o = parse(p + FRAME_PREFIX, len, what, &c);
	bool ok = o && fields(o, out, &c);
	json_decref(o);
	if (!ok)
		return FRAME_BAD;
	*used = FRAME_PREFIX + len;
	return FRAME_OK;
}

static bool request_fields_of(json_t *o, void *r, ctx_t *c) { return request_fields(o, r, c); }
static bool reply_fields_of(json_t *o, void *r, ctx_t *c) { return reply_fields(o, r, c); }

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
	ctx_t c = {err, errlen};
	size_t len = 0;
	frame_status_t st = prefix(p, n, FRAME_CONTROL_MAGIC, &len, &c);
	if (st != FRAME_OK)
		return st;
	*json = (const char *)p + FRAME_PREFIX;
	*json_len = len;
	*used = FRAME_PREFIX + len;
	return FRAME_OK;
}
