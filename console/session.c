/*
 * session: the pieces of browser sign-in that need no database: reading
 * the session cookie, comparing CSRF tokens, and the failed sign-in limit.
 * The sessions themselves are rows (store_ui.c); the routes are api.c's.
 *
 * The limit is per client address and per console process: at most
 * SIGNIN_FAILURES failed sign-ins in SIGNIN_WINDOW_MS, then 429 until the
 * window of the first failure ends. A token is 256 random bits, so this is
 * not what keeps tokens from being guessed; it keeps a script hammering the
 * sign-in from filling the log and the database with lookups. The table is
 * fixed (SIGNIN_SLOTS): when full, the slot whose window is oldest is
 * reused, so many addresses cannot make it grow.
 */
#include "console.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SIGNIN_FAILURES 10
#define SIGNIN_WINDOW_MS (5 * 60 * 1000)
#define SIGNIN_SLOTS 1024

static bool is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

void console_cookie_session(const char *cookie, size_t len, char out[72])
{
	static const char name[] = CONSOLE_COOKIE "=";
	const size_t nlen = sizeof name - 1;
	out[0] = '\0';
	size_t i = 0;
	while (i < len) {
		while (i < len && (cookie[i] == ' ' || cookie[i] == '\t'))
			i++;
		size_t end = i;
		while (end < len && cookie[end] != ';')
			end++;
		if (end - i > nlen && !memcmp(cookie + i, name, nlen)) {
			size_t vlen = end - i - nlen;
			while (vlen && (cookie[i + nlen + vlen - 1] == ' '))
				vlen--;
			/* two cookies of that name: neither (which one a browser
			 * sends first is not something to bet a session on) */
			if (out[0] || !is_hex64(cookie + i + nlen, vlen)) {
				out[0] = '\0';
				return;
			}
			memcpy(out, cookie + i + nlen, 64);
			out[64] = '\0';
		}
		i = end + 1;
	}
}

bool console_token_equal(const char *a, const char *b)
{
	size_t n = strlen(a);
	return n == 64 && strlen(b) == 64 && CRYPTO_memcmp(a, b, n) == 0;
}

typedef struct {
	char peer[48];
	int64_t since_ms;
	int failures;
} slot_t;

static slot_t slots[SIGNIN_SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;

/* The peer's slot, or NULL (make: the oldest reused). Under the lock. */
static slot_t *slot_of(const char *peer, int64_t now_ms, bool make)
{
	slot_t *oldest = &slots[0];
	for (int i = 0; i < SIGNIN_SLOTS; i++) {
		slot_t *s = &slots[i];
		if (s->peer[0] && now_ms - s->since_ms >= SIGNIN_WINDOW_MS)
			s->peer[0] = '\0';
		if (s->peer[0] && !strcmp(s->peer, peer))
			return s;
		if (!s->peer[0] || (oldest->peer[0] && s->since_ms < oldest->since_ms))
			oldest = s;
	}
	if (!make)
		return NULL;
	snprintf(oldest->peer, sizeof oldest->peer, "%s", peer);
	oldest->since_ms = now_ms;
	oldest->failures = 0;
	return oldest;
}

bool console_signin_allowed(const char *peer, int64_t now_ms, int *retry_s)
{
	pthread_mutex_lock(&slots_lock);
	slot_t *s = slot_of(peer, now_ms, false);
	bool ok = !s || s->failures < SIGNIN_FAILURES;
	if (!ok)
		*retry_s = (int)((s->since_ms + SIGNIN_WINDOW_MS - now_ms) / 1000) + 1;
	pthread_mutex_unlock(&slots_lock);
	return ok;
}

void console_signin_failed(const char *peer, int64_t now_ms)
{
	pthread_mutex_lock(&slots_lock);
	slot_of(peer, now_ms, true)->failures++;
	pthread_mutex_unlock(&slots_lock);
}
