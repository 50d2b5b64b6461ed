/*
 * libFuzzer: the gateway's own endpoint (http/coach.h) on arbitrary form
 * bodies: the form decoder, the token parser and the checks behind them.
 * The first byte picks the path and whether a real offer exists, whose
 * token is then spliced into the input at a position the input chooses,
 * so the parser also sees near-valid tokens. Must never crash, leak or
 * accept a token it did not make for this identity and host.
 */
#include "http/coach.h"

#include "core/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static compiled_policy_t *policy;
static config_t cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!policy) {
		config_defaults(&cfg);
		policy = policy_static_new(&cfg);
	}
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++, size--;
	static const char *const paths[] = {COACH_PATH_PREFIX "override", COACH_PATH_PREFIX "false-positive",
					    COACH_PATH_PREFIX "x", COACH_PATH_PREFIX};
	http_head_t h;
	http_head_init(&h, true, 8192, 16);
	h.method_off = (uint32_t)h.arena.len;
	h.method_len = 4;
	bytebuf_append(&h.arena, (mode & 4) ? "GETX" : "POST", 4);
	const char *path = paths[mode & 3];
	http_head_set_target(&h, path, strlen(path));
	http_head_add(&h, "User-Agent", "fuzz");
	if (!coach_is_reserved(&h))
		abort();

	flow_facts_t facts = {.host = "fuzz.example", .client = "127.0.0.1"};
	const char *ident = "addr:127.0.0.1 ua:fuzz";
	uint8_t *body = malloc(size + COACH_TOKEN_MAX + 8);
	size_t n = size;
	memcpy(body, data, size);
	if (mode & 8) {
		/* a real token at the input's chosen place */
		verdict_t v = {.kind = VERDICT_BLOCK, .coach = true, .coach_ttl_s = 60, .coach_within_s = 60};
		snprintf(v.rule, sizeof v.rule, "fuzz.lua:1");
		char id[37], token[COACH_TOKEN_MAX];
		snprintf(id, sizeof id, "0190%04x-0000-7000-8000-000000000000", (unsigned)(size & 0xffff));
		if (coach_offer(id, (mode & 16) ? "addr:127.0.0.1 ua:other" : ident, facts.host, &v, token)) {
			size_t at = size ? data[size - 1] % (size + 1) : 0;
			size_t tl = strlen(token);
			memmove(body + at + tl, body + at, size - at);
			memcpy(body + at, token, tl);
			n += tl;
		}
	}
	coach_request_t q = {.policy = policy, .facts = &facts, .client_ip = "127.0.0.1", .ident = ident,
			     .host = facts.host, .head = &h, .body = body, .body_len = n, .complete = !(mode & 32)};
	coach_answer_t a;
	coach_answer(&q, &a);
	if (a.status < 200 || a.status > 599 || !a.code || !a.title)
		abort();
	if ((mode & 16) && a.status == 200)
		abort(); /* a token made for another identity was taken */
	free(body);
	http_head_free(&h);
	if ((mode & 64))
		coach_reset(); /* bounded tables either way; this keeps runs independent */
	return 0;
}
