/*
 * query: the text forms the admin API reads and writes: query strings,
 * RFC 3339 times and pagination cursors.
 *
 * The cursor is opaque to clients on purpose (the key may change), but it
 * is only the last row's (ts_ms, seq) in hex: nothing in it is trusted
 * beyond two integers, and it is parsed strictly.
 */
#include "console.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t console_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void console_time_format(int64_t ms, char out[64])
{
	time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)s * 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	if (tm.tm_year > 8000 || tm.tm_year < -1900)
		tm.tm_year = 0; /* keeps the form; such times never pass parsing */
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

bool console_time_parse(const char *s, int64_t *ms)
{
	int Y, M, D, h, m, sec;
	if (strlen(s) < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
	    !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) || s[13] != ':' ||
	    !digits(s + 14, 2, &m) || s[16] != ':' || !digits(s + 17, 2, &sec))
		return false;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return false;
	const char *p = s + 19;
	int frac = 0;
	if (*p == '.') {
		p++;
		int n = 0;
		while (*p >= '0' && *p <= '9') {
			if (n < 3)
				frac = frac * 10 + (*p - '0');
			n++, p++;
		}
		if (n == 0)
			return false;
		for (; n < 3; n++)
			frac *= 10;
	}
	int off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return false;
		off = (oh * 60 + om) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return false;
	}
	if (*p)
		return false;
	struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
	time_t t = timegm(&tm);
	*ms = ((int64_t)t - (int64_t)off * 60) * 1000 + frac;
	return true;
}

bool console_event_time_parse(const char *s, int64_t *ms)
{
	/* ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$ */
	return strlen(s) == 24 && s[10] == 'T' && s[19] == '.' && s[23] == 'Z' && console_time_parse(s, ms);
}

void console_cursor_format(int64_t ts, int64_t seq, char out[40])
{
	snprintf(out, 40, "%016" PRIx64 "%016" PRIx64, (uint64_t)ts, (uint64_t)seq);
}

bool console_cursor_parse(const char *s, int64_t *ts, int64_t *seq)
{
	if (strlen(s) != 32)
		return false;
	uint64_t v[2] = {0, 0};
	for (int i = 0; i < 32; i++) {
		char ch = s[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
		if (d < 0)
			return false;
		v[i / 16] = v[i / 16] << 4 | (uint64_t)d;
	}
	*ts = (int64_t)v[0];
	*seq = (int64_t)v[1];
	return *seq >= 0;
}

static int hexval(char ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		: ch >= 'A' && ch <= 'F'  ? ch - 'A' + 10
					  : -1;
}

/* Percent-decoding ('+' is a space); NULL when malformed or holding NUL. */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int a = i + 2 < n ? hexval(s[i + 1]) : -1;
			int b = i + 2 < n ? hexval(s[i + 2]) : -1;
			if (a < 0 || b < 0 || (a == 0 && b == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(a << 4 | b);
			i += 2;
		} else {
			*o++ = s[i] == '+' ? ' ' : s[i];
		}
	}
	*o = '\0';
	return out;
}

bool console_params_parse(const char *query, console_params_t *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof *p);
	if (!query)
		return true;
	for (const char *s = query; *s;) {
		size_t n = strcspn(s, "&");
		if (n) {
			const char *eq = memchr(s, '=', n);
			size_t kn = eq ? (size_t)(eq - s) : n;
			if (p->n == 32) {
				snprintf(err, errlen, "too many query parameters");
				console_params_free(p);
				return false;
			}
			char *k = decode(s, kn), *v = decode(eq ? eq + 1 : s + n, eq ? n - kn - 1 : 0);
			if (!k || !v) {
				snprintf(err, errlen, "query parameter \"%.*s\" is not validly percent-encoded",
					 (int)(kn > 40 ? 40 : kn), s);
				free(k), free(v);
				console_params_free(p);
				return false;
			}
			p->names[p->n] = k;
			p->values[p->n] = v;
			p->n++;
		}
		s += n;
		if (*s == '&')
			s++;
	}
	return true;
}

void console_params_free(console_params_t *p)
{
	for (int i = 0; i < p->n; i++) {
		free(p->names[i]);
		free(p->values[i]);
	}
	p->n = 0;
}
