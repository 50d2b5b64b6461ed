/*
 * libFuzzer: what the console reads from a browser's request head before
 * any database: the Cookie header (the session value is 64 hex digits or
 * nothing) and a static file's path (accepted only when it is segments of
 * safe characters, so nothing accepted can climb out of the web root).
 * The first byte chooses which.
 */
#include "console.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 8192)
		return 0;
	if (data[0] & 1) {
		char out[72];
		memset(out, 'x', sizeof out);
		console_cookie_session((const char *)data + 1, size - 1, out);
		size_t n = strnlen(out, sizeof out);
		if (n != 0 && (n != 64 || strspn(out, "0123456789abcdef") != 64))
			abort();
		return 0;
	}
	char *path = malloc(size);
	memcpy(path, data + 1, size - 1);
	path[size - 1] = '\0';
	if (console_web_path_ok(path)) {
		if (path[0] != '/' || strstr(path, "..") == path + 1 || strstr(path, "/.") || strstr(path, "//") ||
		    strchr(path, '%') || strchr(path, '\\'))
			abort();
		(void)console_web_type(path);
		(void)console_web_hashed(path);
	}
	free(path);
	return 0;
}
