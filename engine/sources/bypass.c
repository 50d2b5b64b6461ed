/*
 * bypass: see bypass.h. The JSON is what lua_policy.c writes from the
 * policy's static_bypass global:
 *   {"policy_version": "...", "apple_platform": true,
 *    "except_signing_ids": ["com.apple.curl"], "hosts": ["*.apple.com"]}
 */
#include "sources/bypass.h"

#include "core/hostglob.h"
#include "core/strictjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool string_list(const sjson_doc_t *d, const sjson_node_t *o, const char *key, char ***out, size_t *n,
			bool hosts, char *err, size_t errlen)
{
	const sjson_node_t *a = sjson_get(d, o, key);
	*out = NULL;
	*n = 0;
	if (!a)
		return true;
	if (a->type != SJSON_ARRAY || a->len > BYPASS_MAX_ENTRIES) {
		snprintf(err, errlen, "bypass table: \"%s\" must be a list of at most %d strings", key, BYPASS_MAX_ENTRIES);
		return false;
	}
	*out = calloc(a->len + 1, sizeof **out);
	if (!*out) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (const sjson_node_t *v = sjson_first(d, a); v; v = sjson_next(d, v)) {
		const char *bad = v->type != SJSON_STRING ? "not a string" : hosts ? hostglob_check(v->str) : NULL;
		if (bad) {
			snprintf(err, errlen, "bypass table: %s[%zu]: %s", key, *n + 1, bad);
			return false;
		}
		if (!((*out)[(*n)++] = strdup(v->str))) {
			snprintf(err, errlen, "out of memory");
			return false;
		}
	}
	return true;
}

bool bypass_table_decode(const char *json, size_t len, bypass_table_t *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	sjson_doc_t d;
	char why[200];
	if (!sjson_parse(&d, json, len, why, sizeof why)) {
		snprintf(err, errlen, "bypass table: %s", why);
		return false;
	}
	const sjson_node_t *o = sjson_root(&d);
	bool ok = o->type == SJSON_OBJECT;
	if (!ok)
		snprintf(err, errlen, "bypass table: not a JSON object");
	const sjson_node_t *version = sjson_get(&d, o, "policy_version");
	const sjson_node_t *apple = sjson_get(&d, o, "apple_platform");
	snprintf(t->policy_version, sizeof t->policy_version, "%s",
		 version && version->type == SJSON_STRING ? version->str : "");
	t->apple_platform = apple && apple->type == SJSON_BOOL && apple->boolean;
	ok = ok && string_list(&d, o, "except_signing_ids", &t->except_signing_ids, &t->n_except, false, err, errlen) &&
	     string_list(&d, o, "hosts", &t->hosts, &t->n_hosts, true, err, errlen);
	sjson_free(&d);
	if (!ok)
		bypass_table_free(t);
	return ok;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

bool bypass_table_fetch(int fd, bypass_table_t *t, char *err, size_t errlen)
{
	static const char ask[] = "{\"get\":\"bypass_table\"}";
	bytebuf_t q, in;
	bytebuf_init(&q, 0);
	bytebuf_init(&in, FRAME_PREFIX + FRAME_MAX_CONTROL);
	bool ok = frame_control_encode(ask, sizeof ask - 1, &q) && write(fd, q.data, q.len) == (ssize_t)q.len;
	char chunk[16384];
	const char *json = NULL;
	size_t len = 0, used;
	frame_status_t st = FRAME_NEED_MORE;
	snprintf(err, errlen, "the engine sent no bypass table");
	for (ssize_t n; ok && st == FRAME_NEED_MORE && (n = read(fd, chunk, sizeof chunk)) > 0;) {
		ok = bytebuf_append(&in, chunk, (size_t)n);
		st = frame_control_decode((const uint8_t *)in.data, in.len, &json, &len, &used, err, errlen);
	}
	ok = ok && st == FRAME_OK && bypass_table_decode(json, len, t, err, errlen);
	bytebuf_free(&q);
	bytebuf_free(&in);
	return ok;
}

void bypass_table_free(bypass_table_t *t)
{
	free_list(t->except_signing_ids, t->n_except);
	free_list(t->hosts, t->n_hosts);
	memset(t, 0, sizeof *t);
}

bool bypass_table_match(const bypass_table_t *t, frame_anchor_t anchor, const char *signing_id, const char *hostname,
			char *why, size_t whylen)
{
	if (t->apple_platform && anchor == FRAME_ANCHOR_APPLE) {
		bool excepted = false;
		for (size_t i = 0; signing_id && !excepted && i < t->n_except; i++)
			excepted = !strcmp(signing_id, t->except_signing_ids[i]);
		if (!excepted) {
			snprintf(why, whylen, "Apple platform code %s", signing_id && *signing_id ? signing_id : "?");
			return true;
		}
	}
	if (hostname && *hostname && hostglob_match_any((const char *const *)t->hosts, t->n_hosts, hostname)) {
		snprintf(why, whylen, "static bypass host %s", hostname);
		return true;
	}
	return false;
}
