/*
 * libFuzzer: base64 runs (MIME line breaks, both alphabets, padding)
 * decoded into views, nested to the depth limit, with a quoted-printable
 * range picked by the first bytes; the checks of views_check.h, and a
 * base64 view never rewritten by redaction.
 */
#include "views_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 1 << 16)
		return 0;
	uint32_t off = data[0] % size, len = (uint32_t)(size - off) * data[1] / 255;
	dview_range_t qp = {off, len};
	fuzz_views(data + 2, size - 2, &qp, qp.off + qp.len <= size - 2 ? 1 : 0);
	return 0;
}
