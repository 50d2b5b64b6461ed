/*
 * config: defaults and the strict JSON loader. The table below is the one
 * place a key is named, typed and bounded; the loader and the error
 * messages are driven by it.
 */
#include "core/config.h"

#include "core/hostglob.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(config_t *c)
{
	memset(c, 0, sizeof *c);
	c->max_connections = 10000;
	c->header_bytes = 64 * 1024;
	c->header_count = 256;
	c->pipeline_depth = 32;
	c->clienthello_bytes = 64 * 1024; /* post-quantum key shares are over 1 KiB each */
	c->connect_timeout_ms = 10000;
	c->handshake_timeout_ms = 10000;
	c->header_timeout_ms = 30000;
	c->keepalive_timeout_ms = 60000;
	c->idle_timeout_ms = 300000;
	c->drain_timeout_ms = 10000;
	c->leaf_cache_size = 4096;
	c->upstream_session_cache_size = 4096;
	c->pinned_ttl_s = 3600;
	c->pinned_max = 4096;
	c->tls_min_version = TLS_MIN_1_2;
	c->workers = 0;
	c->spool_max_kb = 256 * 1024;
	c->spool_segment_kb = 4096;
	c->spool_fsync = FSYNC_INTERVAL;
	c->fsync_interval_ms = 1000;
	c->batch_max_events = 1000;
	c->batch_max_kb = 1024;
	c->batch_wait_ms = 1000;
	c->drain_events_per_s = 2000;
	c->retry_max_s = 300;
	c->status_interval_s = 60;
	c->shutdown_flush_ms = 5000;
	c->flow_events = FLOW_EVENTS_UNINSPECTED;
	c->flow_sample_percent = 100;
}

typedef struct {
	const char *section; /* NULL = top level */
	const char *key;
	size_t offset;
	uint32_t min, max;
} uint_key_t;

#define U(sec, key, field, lo, hi) {sec, key, offsetof(config_t, field), lo, hi}
static const uint_key_t uint_keys[] = {
	U("limits", "max_connections", max_connections, 1, 1000000),
	U("limits", "header_bytes", header_bytes, 1024, 1024 * 1024),
	U("limits", "header_count", header_count, 8, 10000),
	U("limits", "pipeline_depth", pipeline_depth, 1, 1024),
	U("limits", "clienthello_bytes", clienthello_bytes, 512, 256 * 1024),
	U("timeouts", "connect_ms", connect_timeout_ms, 100, 600000),
	U("timeouts", "handshake_ms", handshake_timeout_ms, 100, 600000),
	U("timeouts", "header_ms", header_timeout_ms, 100, 600000),
	U("timeouts", "keepalive_ms", keepalive_timeout_ms, 100, 3600000),
	U("timeouts", "idle_ms", idle_timeout_ms, 100, 86400000),
	U("timeouts", "drain_ms", drain_timeout_ms, 0, 600000),
	U("tls", "leaf_cache_size", leaf_cache_size, 1, 1000000),
	U("tls", "upstream_session_cache_size", upstream_session_cache_size, 1, 1000000),
	U("tls", "pinned_ttl_s", pinned_ttl_s, 0, 30 * 86400),
	U("tls", "pinned_max", pinned_max, 1, 1000000),
	U("report", "spool_max_kb", spool_max_kb, 64, 1u << 30),
	U("report", "spool_segment_kb", spool_segment_kb, 4, 1024 * 1024),
	U("report", "fsync_interval_ms", fsync_interval_ms, 10, 600000),
	U("report", "batch_max_events", batch_max_events, 1, 10000),
	U("report", "batch_max_kb", batch_max_kb, 4, 8192),
	U("report", "batch_wait_ms", batch_wait_ms, 0, 600000),
	U("report", "drain_events_per_s", drain_events_per_s, 1, 1000000),
	U("report", "retry_max_s", retry_max_s, 1, 86400),
	U("report", "status_interval_s", status_interval_s, 1, 86400),
	U("report", "shutdown_flush_ms", shutdown_flush_ms, 0, 600000),
	U("report", "flow_sample_percent", flow_sample_percent, 0, 100),
	U(NULL, "workers", workers, 0, 256),
};
#undef U

static void errf(char *err, size_t n, const char *path, const char *fmt, const char *a, const char *b)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, a, b);
	snprintf(err, n, "%s: %s", path, msg);
}

static const char *const sections[] = {"limits", "timeouts", "tls", "report"};

/* Keys whose value is one word of a fixed list. */
typedef struct {
	const char *section, *key;
	size_t offset;
	const char *words[4]; /* index = the enum value */
} enum_key_t;

static const enum_key_t enum_keys[] = {
	{"tls", "min_version", offsetof(config_t, tls_min_version), {"1.2", "1.3"}},
	{"report", "fsync", offsetof(config_t, spool_fsync), {"never", "interval", "always"}},
	{"report", "flow_events", offsetof(config_t, flow_events), {"off", "uninspected", "all"}},
};

/* 0: not an enum key; 1: set; -1: a bad value (the error written). */
static int set_enum(config_t *c, const char *section, const char *key, json_t *v, const char *path, char *err,
		    size_t n)
{
	for (size_t i = 0; i < sizeof enum_keys / sizeof enum_keys[0]; i++) {
		const enum_key_t *k = &enum_keys[i];
		if (strcmp(k->section, section) || strcmp(k->key, key))
			continue;
		const char *s = json_string_value(v);
		char allowed[128] = "";
		for (int w = 0; w < 4 && k->words[w]; w++) {
			if (s && !strcmp(s, k->words[w])) {
				*(int *)((char *)c + k->offset) = w; /* the fields are C enums */
				return 1;
			}
			snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s\"%s\"", w ? ", " : "",
				 k->words[w]);
		}
		char name[128];
		snprintf(name, sizeof name, "%s.%s", section, key);
		errf(err, n, path, "\"%s\" must be one of %s", name, allowed);
		return -1;
	}
	return 0;
}

static const uint_key_t *find_uint(const char *section, const char *key)
{
	for (size_t i = 0; i < sizeof uint_keys / sizeof uint_keys[0]; i++) {
		const uint_key_t *k = &uint_keys[i];
		if (((!section && !k->section) || (section && k->section && !strcmp(section, k->section))) &&
		    !strcmp(key, k->key))
			return k;
	}
	return NULL;
}

static bool set_uint(config_t *c, const uint_key_t *k, json_t *v, const char *path, char *err, size_t n)
{
	char name[128];
	snprintf(name, sizeof name, "%s%s%s", k->section ? k->section : "", k->section ? "." : "", k->key);
	if (!json_is_integer(v)) {
		errf(err, n, path, "\"%s\" must be a whole number%s", name, "");
		return false;
	}
	json_int_t x = json_integer_value(v);
	if (x < (json_int_t)k->min || x > (json_int_t)k->max) {
		char range[64];
		snprintf(range, sizeof range, " (allowed %u..%u)", k->min, k->max);
		errf(err, n, path, "\"%s\" is out of range%s", name, range);
		return false;
	}
	*(uint32_t *)((char *)c + k->offset) = (uint32_t)x;
	return true;
}

static bool load_bypass(config_t *c, json_t *v, const char *path, char *err, size_t n)
{
	if (!json_is_array(v)) {
		errf(err, n, path, "\"bypass_hosts\" must be a list of host patterns%s%s", "", "");
		return false;
	}
	size_t count = json_array_size(v);
	char **list = calloc(count ? count : 1, sizeof *list);
	if (!list) {
		errf(err, n, path, "out of memory%s%s", "", "");
		return false;
	}
	for (size_t i = 0; i < count; i++) {
		json_t *s = json_array_get(v, i);
		const char *why = json_is_string(s) ? hostglob_check(json_string_value(s)) : "not a string";
		if (why) {
			errf(err, n, path, "bypass_hosts entry \"%s\": %s", json_is_string(s) ? json_string_value(s) : "?", why);
			for (size_t j = 0; j < i; j++)
				free(list[j]);
			free(list);
			return false;
		}
		list[i] = strdup(json_string_value(s));
	}
	for (size_t j = 0; j < c->n_bypass_hosts; j++)
		free(c->bypass_hosts[j]);
	free(c->bypass_hosts);
	c->bypass_hosts = list;
	c->n_bypass_hosts = count;
	return true;
}

static bool load_section(config_t *c, const char *section, json_t *obj, const char *path, char *err, size_t n)
{
	const char *key;
	json_t *v;
	if (!json_is_object(obj)) {
		errf(err, n, path, "\"%s\" must be an object%s", section, "");
		return false;
	}
	json_object_foreach(obj, key, v) {
		int set = set_enum(c, section, key, v, path, err, n);
		if (set < 0)
			return false;
		if (set)
			continue;
		const uint_key_t *k = find_uint(section, key);
		if (!k) {
			errf(err, n, path, "unknown key \"%s.%s\" (see schemas/config.schema.json)", section, key);
			return false;
		}
		if (!set_uint(c, k, v, path, err, n))
			return false;
	}
	return true;
}

bool config_load_file(config_t *c, const char *path, char *err, size_t n)
{
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		if (je.line < 0 || strstr(je.text, "unable to open"))
			snprintf(err, n, "%s: cannot read config: %s", path, je.text);
		else
			snprintf(err, n, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
		return false;
	}
	bool ok = true;
	if (!json_is_object(root)) {
		snprintf(err, n, "%s: the config must be a JSON object", path);
		ok = false;
	}
	const char *key;
	json_t *v;
	if (ok) {
		json_object_foreach(root, key, v) {
			bool known_section = false;
			for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
				if (!strcmp(key, sections[i]))
					known_section = true;
			if (known_section)
				ok = load_section(c, key, v, path, err, n);
			else if (!strcmp(key, "bypass_hosts"))
				ok = load_bypass(c, v, path, err, n);
			else if (!strcmp(key, "$schema") || !strcmp(key, "comment"))
				ok = true; /* documentation keys, allowed anywhere at top level */
			else if (find_uint(NULL, key))
				ok = set_uint(c, find_uint(NULL, key), v, path, err, n);
			else {
				errf(err, n, path, "unknown key \"%s\" (see schemas/config.schema.json)", key, "");
				ok = false;
			}
			if (!ok)
				break;
		}
	}
	json_decref(root);
	return ok;
}

void config_free(config_t *c)
{
	for (size_t i = 0; i < c->n_bypass_hosts; i++)
		free(c->bypass_hosts[i]);
	free(c->bypass_hosts);
	c->bypass_hosts = NULL;
	c->n_bypass_hosts = 0;
}
