/*
 * hostglob: matching server names against admin-written patterns.
 *
 *   "example.com"      exactly that name
 *   "*.example.com"    any name below example.com (not example.com itself)
 *   "*"                anything; '?' is one character; '*' may span dots
 *
 * Matching ignores ASCII case and a trailing dot on the name, as DNS does.
 */
#ifndef DLPGATE_HOSTGLOB_H
#define DLPGATE_HOSTGLOB_H

#include <stdbool.h>
#include <stddef.h>

bool hostglob_match(const char *pattern, const char *host);
/* NULL if the pattern is usable, else a reason a person can act on. */
const char *hostglob_check(const char *pattern);
bool hostglob_match_any(const char *const *patterns, size_t n, const char *host);

#endif
