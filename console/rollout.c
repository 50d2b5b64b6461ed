/*
 * rollout: targeting (see rollout.h).
 */
#include "rollout.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#define MAX_LABELS 32
#define MAX_LABEL_KEY 63
#define MAX_LABEL_VALUE 128

unsigned rollout_bucket(const char *agent_id)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)agent_id, strlen(agent_id), md);
	uint32_t v = (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3];
	return v % 100;
}

bool rollout_matches(const rollout_t *r, const char *agent_id, const json_t *agent_labels)
{
	if (!r->running || rollout_bucket(agent_id) >= (unsigned)r->percent)
		return false;
	const char *k;
	json_t *want;
	json_object_foreach((json_t *)r->labels, k, want) {
		const char *have = json_string_value(json_object_get(agent_labels, k));
		if (!have || strcmp(have, json_string_value(want)) != 0)
			return false;
	}
	return true;
}

void rollout_offer(const rollout_t *rs, size_t n, const char *agent_id, const json_t *agent_labels,
		   rollout_offer_t *out)
{
	memset(out, 0, sizeof *out);
	int64_t best[2] = {0, 0};
	for (size_t i = 0; i < n; i++) {
		const rollout_t *r = &rs[i];
		if (r->id <= best[r->kind] || !rollout_matches(r, agent_id, agent_labels))
			continue;
		best[r->kind] = r->id;
		if (r->kind == ROLLOUT_ACTIVE) {
			out->active = r->version;
		} else {
			out->shadow = r->version;
			out->sample_percent = r->sample_percent;
		}
	}
}

void rollout_etag(const rollout_offer_t *o, char out[48])
{
	snprintf(out, 48, "\"%lld.%lld\"", (long long)o->active, (long long)o->shadow);
}

bool rollout_etag_listed(const char *inm, const char *etag)
{
	if (!inm)
		return false;
	size_t n = strlen(etag);
	for (const char *p = inm; (p = strstr(p, etag)) != NULL; p += n) {
		/* whole tags only: bounded by the start, a comma or a space, and W/ is not ours */
		bool start_ok = p == inm || p[-1] == ' ' || p[-1] == ',';
		bool end_ok = p[n] == '\0' || p[n] == ',' || p[n] == ' ';
		if (start_ok && end_ok)
			return true;
	}
	return false;
}

static bool key_ok(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > MAX_LABEL_KEY)
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' || *k == '.' || *k == '-'))
			return false;
	return true;
}

bool rollout_labels_valid(const json_t *labels, char *err, size_t errlen)
{
	if (!json_is_object(labels)) {
		snprintf(err, errlen, "labels must be an object of strings");
		return false;
	}
	if (json_object_size(labels) > MAX_LABELS) {
		snprintf(err, errlen, "at most %d labels", MAX_LABELS);
		return false;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)labels, k, v) {
		if (!key_ok(k)) {
			snprintf(err, errlen, "label \"%.64s\": keys are 1..%d of a-z 0-9 _ . -", k, MAX_LABEL_KEY);
			return false;
		}
		if (!json_is_string(v) || json_string_length(v) > MAX_LABEL_VALUE ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			snprintf(err, errlen, "label %s: the value must be a string of at most %d bytes", k,
				 MAX_LABEL_VALUE);
			return false;
		}
	}
	return true;
}

json_t *rollout_labels_parse(const char *text, char *err, size_t errlen)
{
	json_t *o = json_object();
	char buf[4096];
	if (strlen(text) >= sizeof buf) {
		snprintf(err, errlen, "labels: too long");
		json_decref(o);
		return NULL;
	}
	snprintf(buf, sizeof buf, "%s", text);
	char *save = NULL;
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq || eq == item) {
			snprintf(err, errlen, "labels: \"%.64s\" is not KEY=VALUE", item);
			json_decref(o);
			return NULL;
		}
		*eq = '\0';
		if (json_object_get(o, item)) {
			snprintf(err, errlen, "labels: %.64s given twice", item);
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, item, json_string(eq + 1));
	}
	if (!rollout_labels_valid(o, err, errlen)) {
		json_decref(o);
		return NULL;
	}
	return o;
}
