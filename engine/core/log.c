/*
 * log: key=value lines on stderr. See log.h for why lines are built whole
 * and values escaped.
 */
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

log_level_t log_threshold = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

bool log_parse_level(const char *name, log_level_t *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (log_level_t)i;
			return true;
		}
	}
	return false;
}

static void append(log_line_t *l, const char *s, size_t n)
{
	/* Keep room for the newline. */
	size_t room = sizeof l->line - 1 - l->len;
	if (n > room) {
		n = room;
		l->truncated = true;
	}
	memcpy(l->line + l->len, s, n);
	l->len += n;
}

void log_begin(log_line_t *l, log_level_t level, const char *event)
{
	struct timespec ts;
	struct tm tm;
	char stamp[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(stamp, sizeof stamp, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	l->len = 0;
	l->truncated = false;
	append(l, stamp, (size_t)n);
	append(l, event, strlen(event));
}

static bool needs_quotes(const char *v, size_t n)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			return true;
	}
	return false;
}

static void append_key(log_line_t *l, const char *key)
{
	append(l, " ", 1);
	append(l, key, strlen(key));
	append(l, "=", 1);
}

void log_kv_strn(log_line_t *l, const char *key, const char *v, size_t n)
{
	append_key(l, key);
	if (!v) {
		append(l, "-", 1);
		return;
	}
	if (!needs_quotes(v, n)) {
		append(l, v, n);
		return;
	}
	append(l, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			append(l, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			/* Bytes from the network stay visible but cannot break the line. */
			char e[5];
			snprintf(e, sizeof e, "\\x%02x", c);
			append(l, e, 4);
		} else {
			append(l, (const char *)&v[i], 1);
		}
	}
	append(l, "\"", 1);
}

void log_kv_str(log_line_t *l, const char *key, const char *value)
{
	log_kv_strn(l, key, value, value ? strlen(value) : 0);
}

void log_kv_u64(log_line_t *l, const char *key, uint64_t value)
{
	char b[24];
	int n = snprintf(b, sizeof b, "%" PRIu64, value);
	append_key(l, key);
	append(l, b, (size_t)n);
}

void log_end(log_line_t *l)
{
	if (l->truncated) {
		/* Say so rather than cut silently; the marker always fits. */
		const char mark[] = " truncated=1";
		size_t at = sizeof l->line - 1 - (sizeof mark - 1);
		if (l->len > at)
			l->len = at;
		memcpy(l->line + l->len, mark, sizeof mark - 1);
		l->len += sizeof mark - 1;
	}
	l->line[l->len++] = '\n';
	/* One write per line; a short write to stderr is not worth a retry loop
	 * that could block a worker, but EINTR is. */
	ssize_t w;
	do {
		w = write(STDERR_FILENO, l->line, l->len);
	} while (w < 0 && errno == EINTR);
}

void log_msg(log_level_t level, const char *event, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_line_t l;
	log_begin(&l, level, event);
	log_kv_str(&l, "msg", msg);
	log_end(&l);
}
