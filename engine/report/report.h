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
