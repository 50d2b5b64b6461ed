#include "core/hostglob.h"

#include <ctype.h>
#include <string.h>

static bool match_at(const char *p, const char *h, const char *hend)
{
	/* Iterative glob with single-star backtracking: linear in practice and
	 * never exponential, whatever the pattern. */
	const char *star_p = NULL, *star_h = NULL;
	while (h < hend) {
		if (*p == '*') {
			star_p = p++;
			star_h = h;
		} else if (*p && (*p == '?' || tolower((unsigned char)*p) == tolower((unsigned char)*h))) {
			p++;
			h++;
		} else if (star_p) {
			p = star_p + 1;
			h = ++star_h;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

bool hostglob_match(const char *pattern, const char *host)
{
	if (!pattern || !host || !*host)
		return false;
	size_t n = strlen(host);
	if (n > 1 && host[n - 1] == '.')
		n--;
	/* "*.example.com" must not match "example.com": the star needs at least
	 * one label, which match_at guarantees because ".example.com" must then
	 * follow something. */
	return match_at(pattern, host, host + n);
}

bool hostglob_match_any(const char *const *patterns, size_t n, const char *host)
{
	for (size_t i = 0; i < n; i++)
		if (hostglob_match(patterns[i], host))
			return true;
	return false;
}

const char *hostglob_check(const char *pattern)
{
	if (!*pattern)
		return "empty host pattern";
	if (strlen(pattern) > 253)
		return "host pattern longer than 253 characters";
	for (const char *p = pattern; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!(isalnum(c) || c == '-' || c == '.' || c == '*' || c == '?' || c == '_' || c == ':' ||
		      c == '[' || c == ']'))
			return "host pattern may only hold letters, digits, '-', '.', '_', ':', '[]', '*' and '?'";
	}
	return NULL;
}
