/*
 * libFuzzer: the URL view (and what nests in it) over text from outside.
 * The decoder is checked against its own encoder: every escape it read
 * re-encodes to the width it came from; then the whole set of views with
 * the checks of views_check.h.
 */
#include "views_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16)
		return 0;
	uint8_t *t = malloc(size + 1), *w = malloc(size + 1);
	uint32_t *m = malloc((size + 1) * sizeof *m);
	size_t n = dview_decode_url(data, size, size && (data[0] & 1), t, m, w);
	for (size_t k = 0; k < n; k++) {
		uint8_t enc[8];
		if (m[k] >= size || (k && m[k] <= m[k - 1]) || (w[k] != 1 && w[k] != 3))
			abort();
		if (w[k] == 3 && (!dview_encode_char(DVIEW_URL, 3, t[k], enc) || enc[0] != '%'))
			abort();
	}
	free(t), free(w), free(m);
	fuzz_views(data, size, NULL, 0);
	return 0;
}
