/*
 * log: key=value or JSON lines on stderr. See log.h for why lines are built
 * whole and values escaped.
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
log_format_t log_format = LOG_FORMAT_TEXT;

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

bool log_parse_format(const char *name, log_format_t *out)
{
	if (!strcmp(name, "text") || !strcmp(name, "json")) {
		*out = name[0] == 'j' ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
		return true;
	}
	return false;
}

/* Room always kept at the end of a line for the truncation mark, the
 * closing brace and the newline. */
#define LOG_TAIL 24

static void append(log_line_t *l, const char *s, size_t n)
{
	size_t room = sizeof l->line - LOG_TAIL - l->len;
	if (n > room) {
		n = room;
		l->truncated = true;
	}
	memcpy(l->line + l->len, s, n);
	l->len += n;
}

/* A quoted value: quote and backslash escaped, and every byte outside
 * printable ASCII, so bytes from the network stay visible but can neither
 * break the line nor (JSON) make it invalid UTF-8: \u00XX in JSON, \xXX
 * in text. */
static void append_quoted(log_line_t *l, const char *v, size_t n)
{
	bool json = log_format == LOG_FORMAT_JSON;
	append(l, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			append(l, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			char e[7];
			int k = json ? snprintf(e, sizeof e, "\\u%04x", c) : snprintf(e, sizeof e, "\\x%02x", c);
			append(l, e, (size_t)k);
		} else {
			append(l, (const char *)&v[i], 1);
		}
	}
	append(l, "\"", 1);
}

void log_begin(log_line_t *l, log_level_t level, const char *event)
{
	struct timespec ts;
	struct tm tm;
	char stamp[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	l->len = 0;
	l->truncated = false;
	/* what comes before the stamp, the level and the event, per format */
	static const char *const lead[][3] = {[LOG_FORMAT_TEXT] = {"ts=", " level=", " event="},
					      [LOG_FORMAT_JSON] = {"{\"ts\":\"", "\",\"level\":\"", "\",\"event\":"}};
	const char *const *p = lead[log_format];
	const char *parts[] = {p[0], stamp, p[1], level_names[level], p[2]};
	for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
		append(l, parts[i], strlen(parts[i]));
	if (log_format == LOG_FORMAT_JSON)
		append_quoted(l, event, strlen(event));
	else
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

/* Returns where the pair began: a JSON pair cut by truncation is taken
 * back whole (kv_done), so the line stays valid JSON. */
static size_t append_key(log_line_t *l, const char *key)
{
	size_t at = l->len;
	if (log_format == LOG_FORMAT_JSON) {
		/* A pair named like a member every object has (a reply's event id
		 * is logged as event=) is renamed: no duplicate keys in JSON. */
		if (!strcmp(key, "event") || !strcmp(key, "level") || !strcmp(key, "ts"))
			key = !strcmp(key, "event") ? "event_id" : !strcmp(key, "level") ? "level_" : "ts_";
		append(l, ",", 1);
		append_quoted(l, key, strlen(key));
		append(l, ":", 1);
	} else {
		append(l, " ", 1);
		append(l, key, strlen(key));
		append(l, "=", 1);
	}
	return at;
}

static void kv_done(log_line_t *l, size_t at)
{
	if (l->truncated && log_format == LOG_FORMAT_JSON)
		l->len = at;
}

void log_kv_strn(log_line_t *l, const char *key, const char *v, size_t n)
{
	if (l->truncated)
		return;
	size_t at = append_key(l, key);
	if (log_format == LOG_FORMAT_JSON) {
		if (v)
			append_quoted(l, v, n);
		else
			append(l, "null", 4);
		kv_done(l, at);
		return;
	}
	if (!v) {
		append(l, "-", 1);
		return;
	}
	if (!needs_quotes(v, n))
		append(l, v, n);
	else
		append_quoted(l, v, n);
}

void log_kv_str(log_line_t *l, const char *key, const char *value)
{
	log_kv_strn(l, key, value, value ? strlen(value) : 0);
}

void log_kv_u64(log_line_t *l, const char *key, uint64_t value)
{
	if (l->truncated)
		return;
	char b[24];
	int n = snprintf(b, sizeof b, "%" PRIu64, value);
	size_t at = append_key(l, key);
	append(l, b, (size_t)n);
	kv_done(l, at);
}

void log_end(log_line_t *l)
{
	/* Say so rather than cut silently; LOG_TAIL keeps room for the mark. */
	const char *mark = !l->truncated ? "" : log_format == LOG_FORMAT_JSON ? ",\"truncated\":true" : " truncated=1";
	memcpy(l->line + l->len, mark, strlen(mark));
	l->len += strlen(mark);
	if (log_format == LOG_FORMAT_JSON)
		l->line[l->len++] = '}';
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
