/*
 * libFuzzer: the EDM pack loader (detect/edm.h), a parser of files that
 * come from outside. Any bytes must be refused with a message or loaded
 * into a pack whose every lookup stays inside it: the input is parsed,
 * and a pack that loads is queried (its first searchable column against
 * all others) over a fixed text full of candidates and over the input
 * itself as text.
 */
#include "detect/edm.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char text[] = "acct 1234567890 jane.doe@acme-corp.com Jane Doe, 12-34-56 78 9; AB-123x "
			   "bob@contoso.com Smith, Robert 9876543210 5550001111 alice o'brien 1.2.3.4/5";

static bool count(void *ctx, const edm_hit_t *h)
{
	(*(size_t *)ctx) += h->len;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[300];
	edm_pack_t *p = edm_pack_parse(data, size, err, sizeof err);
	if (!p)
		return 0;
	/* the column names as the pack holds them: try each as primary */
	static const char *const names[] = {"account", "email", "name", "id", "a", "b", "c"};
	const char *all[7];
	for (size_t i = 0; i < 7; i++)
		all[i] = names[i];
	for (size_t i = 0; i < 7; i++) {
		if (edm_pack_column(p, names[i]) < 0)
			continue;
		const char *corr[6];
		size_t n = 0;
		for (size_t k = 0; k < 7; k++)
			if (k != i && edm_pack_column(p, all[k]) >= 0)
				corr[n++] = all[k];
		for (uint32_t min = 0; min <= (n ? 1u : 0u); min++) {
			edm_query_t *q = edm_query_new(p, names[i], corr, n, 300, min, err, sizeof err);
			if (!q)
				continue;
			size_t seen = 0;
			edm_query_scan(q, (const uint8_t *)text, sizeof text - 1, count, &seen);
			edm_query_scan(q, data, size, count, &seen);
			edm_query_free(q);
		}
	}
	edm_pack_unref(p);
	return 0;
}
