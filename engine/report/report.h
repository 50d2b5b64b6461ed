/*
 * report: where events go once a stage made them, and the agent's side of
 * the console (enrollment, uploads, status).
 *
 * Without a console, events are JSON lines on stderr. With one
 * (`run --console URL --console-ca FILE --enroll-secret S`), an event is
 * appended to the spool (report/spool.h) before report_submit returns, so a
 * client told "blocked, event E" can rely on E reaching the console. The
 * uploader thread enrolls (once; the token is kept in STATE/agent.json,
 * mode 0600), then posts batches: at most report.batch_max_events or
 * batch_max_kb, sent when full or when the oldest has waited batch_wait_ms,
 * never faster than drain_events_per_s. A batch leaves the spool only after
 * a 2xx. Failures back off exponentially with full jitter up to
 * retry_max_s; 429/503 wait what Retry-After says; a record the console
 * refuses on its own (400/403/413/415) is isolated by halving the batch and
 * then skipped, counted, so one bad record never blocks the queue. Losses
 * (spool full, corrupt, refused, unwritable) become spool_drop events in the
 * next batch and counters in the status the thread posts every
 * status_interval_s. A graceful stop keeps uploading for shutdown_flush_ms.
 *
 * The agent id is a UUID made once and kept in STATE/agent.json, so events
 * spooled before enrollment already carry it; enrollment registers it.
 *
 * One reporter per process: events are made on every worker thread, deep in
 * the relay, and the functions below are safe from any of them.
 */
#ifndef DLPGATE_REPORT_H
#define DLPGATE_REPORT_H

#include "core/config.h"
#include "report/spool.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	const char *state_dir;
	const char *console;        /* https://HOST:PORT; NULL: events go to stderr */
	const char *console_ca;     /* the console's certificate or CA (PEM) */
	const char *enroll_secret;  /* needed until the agent holds a token */
	unsigned socket_mark;       /* transparent mode: mark the console connection (upload.h) */
	const config_t *cfg;
	const char *labels_json;    /* {"k": "v", ...} sent at enrollment (report_labels_parse); NULL: none */
	/* Where to pin the console's bundle_keys from the enrollment answer
	 * (STATE/bundle-keys); NULL when --bundle-keys names the trusted keys.
	 * A pinned list is never replaced by a later enrollment. */
	const char *pin_bundle_keys;
} report_opts_t;

typedef enum {
	REPORT_FLOWS = 0,
	REPORT_INSPECT, REPORT_BYPASS, REPORT_PASS, REPORT_REDACT, REPORT_BLOCK, /* verdict events by kind */
	REPORT_MONITOR,                                 /* of those, reported only */
	REPORT_POLICY_ERRORS,
	REPORT_UPLOADED,                                /* events the console acknowledged */
	REPORT_UPLOAD_FAILURES,
	REPORT_N_COUNTERS
} report_counter_t;

bool report_start(const report_opts_t *o, char *err, size_t errlen);
/* Flushes what it can within report.shutdown_flush_ms (flush) or not at
 * all (an admin asked twice), then stops; what is left stays spooled. */
void report_stop(bool flush);

const char *report_agent_id(void);
/* One JSON event, without a newline; a spool_drop event names the losses
 * it carries (spool_append_drops), any other NULL. */
void report_submit(const char *json, size_t len, const spool_drops_t *carried);
void report_count(report_counter_t c);
/* The policy version status reports name. */
void report_set_policy_version(const char *v);

/* What the agent runs and why, as the status posts carry it ("policy" in
 * schemas/console-api.md). Policy sync pushes it here; report never asks. */
typedef struct {
	int64_t version;             /* bundle version; 0: not a bundle (file, built-in) */
	char source[24];             /* "console", "file", "last-known-good", "built-in" */
	char activated_at[32];       /* RFC 3339; "" unknown */
	int64_t shadow_version;      /* 0: none */
	int64_t failed_version;      /* the last offer refused; 0: none */
	char last_error[512];        /* why; "" none */
} report_policy_t;
void report_set_policy(const report_policy_t *p);
/* p as JSON: version, source, activated_at, shadow_version, last_error
 * (`dlpgate policy status`); with_counts adds failed_version and the
 * shadow counters (the status posts). */
json_t *report_policy_json(const report_policy_t *p, bool with_counts);
/* A shadow policy evaluated a message; changed: its verdict differed. */
void report_count_shadow(bool changed);
void report_shadow_counts(uint64_t *evaluated, uint64_t *changed);

/* The agent's console token, once enrolled (false: none yet). Safe from any
 * thread: policy sync polls with it. */
bool report_token(char *out, size_t n);

/* `--labels k=v,...` into the enrollment's {"k": "v"} (malloc'd JSON), or
 * NULL with a message: at most 32, keys [a-z0-9_.-]{1,63}, values at most
 * 128 bytes. */
char *report_labels_parse(const char *text, char *err, size_t errlen);
/* Where the agent stands with its console, for `dlpgate status` and the
 * metrics; read from any thread. */
typedef enum {
	REPORT_LINK_NONE = 0,   /* no --console: events go to stderr */
	REPORT_LINK_ENROLLING,  /* no token yet */
	REPORT_LINK_PENDING,    /* a token, nothing exchanged since the start */
	REPORT_LINK_UP,         /* the last exchange succeeded */
	REPORT_LINK_FAILING,    /* the last exchange failed; retrying with backoff */
} report_link_t;

typedef struct {
	report_link_t link;
	const char *console;        /* the URL, "" without one */
	uint64_t last_ok_unix_ms;   /* last acknowledged exchange, 0 = never */
	spool_stats_t spool;        /* zero without a console */
	uint64_t counters[REPORT_N_COUNTERS];
	char policy_version[48];
} report_snapshot_t;

void report_snapshot(report_snapshot_t *s);
const char *report_link_name(report_link_t l);

/* Whether a flow-log record is wanted for a flow (config, sampling). */
bool report_want_flow_event(bool inspected);

#endif
