/* libFuzzer: the ClientHello parser on arbitrary bytes, at every limit a
 * config can set. Facts it returns must be sane whatever the input. */
#include "tls/clienthello.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {512, 16 * 1024, 256 * 1024};
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		clienthello_t ch;
		ch_status_t st = clienthello_parse(data, size, limits[i], &ch);
		if (st == CH_OK) {
			if (ch.consumed > size)
				abort();
			if (ch.has_sni && (strlen(ch.sni) == 0 || strlen(ch.sni) > 253))
				abort();
			if (ch.n_alpn > CH_MAX_ALPN)
				abort();
		}
		if ((st == CH_MALFORMED || st == CH_TOO_BIG) && !ch.error)
			abort();
	}
	return 0;
}
