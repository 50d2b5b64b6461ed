/*
 * libFuzzer: what the console takes from the network before it stores
 * anything. An events upload (the first byte chooses gzip or plain NDJSON;
 * the rest is the body) is either refused with a status and a reason or
 * turns into events that each have an id, a kind and a time; the query
 * string of the admin API, cursors and timestamps parse or are refused,
 * and what parses formats back the same.
 */
#include "console.h"
#include "ingest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AGENT "01900000-0000-7000-8000-0000000000aa"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool gzip = data[0] & 1;
	ingest_batch_t b;
	char err[256] = "";
	int st = ingest_parse((const char *)data + 1, size - 1, gzip, AGENT, &b, err, sizeof err);
	if (st == 0) {
		for (size_t i = 0; i < b.n; i++)
			if (!b.ev[i].id || !b.ev[i].kind || !b.ev[i].json || !console_is_uuid(b.ev[i].id))
				abort();
	} else if ((st != 400 && st != 403 && st != 413 && st != 500) || !err[0]) {
		abort(); /* every refusal is a known status with a reason */
	}
	ingest_free(&b);

	/* the same bytes as a query string, a cursor, a time */
	char *text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	console_params_t p;
	if (console_params_parse(text, &p, err, sizeof err))
		console_params_free(&p);
	int64_t ts, seq, ms;
	if (console_cursor_parse(text, &ts, &seq)) {
		char again[40];
		int64_t ts2, seq2;
		console_cursor_format(ts, seq, again);
		if (!console_cursor_parse(again, &ts2, &seq2) || ts2 != ts || seq2 != seq)
			abort();
	}
	(void)console_time_parse(text, &ms);
	free(text);
	return 0;
}
