/*
 * libFuzzer: flow frames from the system extension's socket (and replies,
 * which the extension decodes). Whatever arrives, decoding ends in OK,
 * NEED_MORE or BAD with a message; an OK request encodes again and
 * decodes to the same fields, so what the engine acts on is exactly what
 * it would send. Control frames carry bypass tables, which the extension
 * decodes and matches flows against: any table decodes or is refused,
 * and matching it never fails. The JSON reader under all of them
 * (core/strictjson) also gets the raw bytes: what it accepts is valid
 * UTF-8 throughout, and every string it decodes writes out and reads back
 * to the same bytes.
 */
#include "core/strictjson.h"
#include "sources/bypass.h"
#include "sources/frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frame_request_t r, again;
	size_t used = 0;
	char err[200];
	frame_status_t st = frame_request_decode(data, size, &r, &used, err, sizeof err);
	if (st == FRAME_BAD && !err[0])
		abort(); /* every refusal says why */
	if (st == FRAME_OK) {
		if (used > size || used < FRAME_PREFIX)
			abort();
		bytebuf_t b;
		bytebuf_init(&b, 0);
		if (!frame_request_encode(&r, &b, err, sizeof err))
			abort();
		if (frame_request_decode((const uint8_t *)b.data, b.len, &again, &used, err, sizeof err) != FRAME_OK ||
		    memcmp(&r, &again, sizeof r) != 0)
			abort();
		bytebuf_free(&b);
	}
	frame_reply_t rep;
	if (frame_reply_decode(data, size, &rep, &used, err, sizeof err) == FRAME_OK && used > size)
		abort();
	const char *json;
	size_t len;
	bypass_table_t t;
	if (frame_control_decode(data, size, &json, &len, &used, err, sizeof err) == FRAME_OK &&
	    bypass_table_decode(json, len, &t, err, sizeof err)) {
		char why[300];
		bypass_table_match(&t, FRAME_ANCHOR_APPLE, "com.apple.curl", "www.apple.com", why, sizeof why);
		bypass_table_match(&t, FRAME_ANCHOR_UNSIGNED, NULL, NULL, why, sizeof why);
		bypass_table_free(&t);
	}
	sjson_doc_t d;
	if (sjson_parse(&d, (const char *)data, size, err, sizeof err)) {
		for (size_t i = 0; i < d.n; i++) {
			const sjson_node_t *n = &d.nodes[i];
			if (n->type != SJSON_STRING)
				continue;
			if (strlen(n->str) != n->len || !sjson_utf8_valid(n->str, n->len))
				abort();
			bytebuf_t b;
			bytebuf_init(&b, 0);
			sjson_doc_t reread;
			if (!sjson_put_string(&b, n->str) || !sjson_parse(&reread, b.data, b.len, err, sizeof err) ||
			    strcmp(sjson_root(&reread)->str, n->str) != 0)
				abort();
			sjson_free(&reread);
			bytebuf_free(&b);
		}
		sjson_free(&d);
	} else if (!err[0]) {
		abort();
	}
	return 0;
}
