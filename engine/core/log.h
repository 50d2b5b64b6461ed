/*
 * log: one line per event on stderr, as key=value pairs (the default, what
 * journald and grep read best) or, with --log-format json, as one JSON
 * object per line for log shippers: {"ts":..,"level":..,"event":.., keys in
 * the order logged}, strings escaped, numbers as numbers.
 *
 * A line is built in a stack buffer and written with a single write(2), so
 * lines from different worker threads never interleave. Values go through
 * log_kv_str(), which quotes and escapes them: hostnames and reasons come from
 * the network and must not be able to forge extra keys or lines.
 *
 * What may be logged is a security property: never bodies, query values,
 * cookies or anything a detector found. Callers pass only metadata.
 */
#ifndef DLPGATE_LOG_H
#define DLPGATE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level_t;

typedef enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON } log_format_t;

extern log_level_t log_threshold;
extern log_format_t log_format; /* set once at start, before any thread */

bool log_parse_level(const char *name, log_level_t *out);
bool log_parse_format(const char *name, log_format_t *out);
static inline bool log_enabled(log_level_t level) { return level <= log_threshold; }

typedef struct {
	char line[2048];
	size_t len;
	bool truncated;
} log_line_t;

void log_begin(log_line_t *l, log_level_t level, const char *event);
void log_kv_str(log_line_t *l, const char *key, const char *value);
void log_kv_strn(log_line_t *l, const char *key, const char *value, size_t n);
void log_kv_u64(log_line_t *l, const char *key, uint64_t value);
void log_end(log_line_t *l);

/* Free-form convenience: event plus a msg="..." made from fmt. */
void log_msg(log_level_t level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
