/*
 * libFuzzer: policy bundle documents (sync/bundle.h), which arrive from the
 * console over the network. Whatever arrives, parsing accepts or refuses
 * with a message; an accepted bundle passes its own limits and writes out
 * to a document that parses again to the same manifest and files. Key
 * lists (the other text an agent reads from its console) parse or are
 * refused with a message, and what parses formats back to the same keys.
 * The same text as the file of an event's rule (which the console gets from
 * agents) maps into a bundle path or is refused, never above the bundle.
 */
#include "sync/bundle.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void keys_one(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	bundle_keyset_t ks, again;
	char err[300] = "";
	if (bundle_keys_parse(text, &ks, err, sizeof err)) {
		char *out = bundle_keys_format(&ks);
		if (!out || !bundle_keys_parse(out, &again, err, sizeof err) || again.n != ks.n ||
		    memcmp(again.v, ks.v, ks.n * sizeof ks.v[0]) != 0)
			abort();
		free(out);
	} else if (!err[0]) {
		abort();
	}
	free(text);
}

static void chunk_one(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	bundle_t *b = calloc(1, sizeof *b);
	if (b) {
		strcpy(b->entry, "a/b/policy.lua");
		/* the answer, worked out another way: the entry's folder a/b
		 * less one folder per leading "../", then the rest */
		const char *rest = text;
		int up = 0;
		for (; !strncmp(rest, "../", 3); rest += 3)
			up++;
		static const char *const dirs[] = {"a/b/", "a/", ""};
		char want[2 * BUNDLE_MAX_PATH + 8], out[BUNDLE_MAX_PATH + 1];
		bool ok = bundle_chunk_path(b, text, out, sizeof out);
		bool in = up <= 2 && strlen(rest) <= BUNDLE_MAX_PATH;
		if (in)
			snprintf(want, sizeof want, "%s%s", dirs[up], rest);
		if (ok != (in && bundle_path_ok(want)) || (ok && strcmp(out, want)))
			abort();
	}
	free(b);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	bundle_t *b = bundle_parse(data, size, err, sizeof err);
	if (!b) {
		if (!err[0])
			abort(); /* every refusal says why */
		keys_one(data, size);
		chunk_one(data, size);
		return 0;
	}
	if (b->n_files == 0 || b->n_files > BUNDLE_MAX_FILES || b->content_size > BUNDLE_MAX_CONTENT ||
	    !bundle_file(b, b->entry) || bundle_file(b, b->entry)->role != BUNDLE_ROLE_ENTRY)
		abort();
	for (size_t i = 0; i < b->n_files; i++)
		if (!bundle_path_ok(b->files[i].path))
			abort();
	size_t len = 0;
	char *doc = bundle_serialize(b, &len);
	bundle_t *again = doc ? bundle_parse(doc, len, err, sizeof err) : NULL;
	if (!again || strcmp(again->manifest_text, b->manifest_text) != 0 || again->n_files != b->n_files ||
	    memcmp(again->sig, b->sig, sizeof b->sig) != 0)
		abort();
	for (size_t i = 0; i < b->n_files; i++)
		if (strcmp(again->files[i].sha256, b->files[i].sha256) != 0)
			abort();
	bundle_free(again);
	free(doc);
	bundle_free(b);
	return 0;
}
