/*
 * event: one decision as the JSON object admins and the console read
 * (schemas/verdict.schema.json): who, where, what was decided, by which
 * rule and why, what detectors found (names, counts, masked samples; never
 * a secret), when, and under which policy version.
 *
 * Four kinds: a verdict (a decision on a flow or a message), a flow-log
 * record (a flow that ended without being inspected, or every flow, per
 * report.flow_events), a shadow verdict (what a candidate policy would have
 * decided, when that differs) and a spool_drop (events the agent lost,
 * counted).
 * A built event goes to report_submit(): the spool when a console is
 * configured, stderr as a JSON line otherwise.
 */
#ifndef DLPGATE_EVENT_H
#define DLPGATE_EVENT_H

#include "policy/policy.h"
#include "report/spool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_LEN 37

/* EVENT_SHADOW: what a shadow policy would have decided on a message, when
 * it differs from the active verdict (http/shadow.h). */
/* EVENT_OVERRIDE, EVENT_FALSE_POSITIVE: what a user answered on a coach
 * page (http/coach.h), naming the event they answer (of). */
typedef enum { EVENT_VERDICT = 0, EVENT_FLOW, EVENT_SHADOW, EVENT_OVERRIDE, EVENT_FALSE_POSITIVE } event_kind_t;

typedef struct event {
	event_kind_t kind;
	char id[EVENT_ID_LEN];          /* UUIDv7 */
	const char *stage;              /* "flow", "request", "response" */
	const verdict_t *verdict;
	const policy_msg_t *msg;        /* findings; NULL at the flow stage */
	const flow_facts_t *facts;
	const char *policy_version;
	const char *active_verdict;         /* shadow: what the active policy decided */
	const char *active_policy_version;  /* shadow: and which version that was */
	uint64_t flow_id;
	const char *client_ip;
	const char *method;             /* NULL at the flow stage */
	size_t method_len;
	const char *path;               /* without the query */
	size_t path_len;
	int status;                     /* response status, 0 if none */
	uint64_t body_bytes;
	const char *tls, *up_tls;
	const char *note;               /* "oversize", "decompression-bomb", ... */
	uint64_t latency_us;            /* message held for inspection; 0: not measured */
	/* flow-log records */
	const char *mode;               /* inspect, bypass, pinned, refused, ... */
	uint64_t bytes_up, bytes_down, duration_ms;
	uint32_t requests;
	const char *end;
	/* override and false_positive records */
	const char *of;                 /* the coach event answered */
	const char *justification;      /* the user's words, detectors' findings masked */
	uint32_t ttl_s;                 /* override: how long it lasts */
} event_t;

/* A new time-ordered id (UUIDv7: 48 bits of ms, then random). */
void event_new_id(char out[EVENT_ID_LEN]);
void event_emit(const event_t *e);
/* Reports the losses d as one spool_drop event per cause ("spool_full",
 * "corrupt_record", "rejected", "write_error"), each spooled carrying its
 * count (report_submit). */
void event_emit_drops(const spool_drops_t *d);

#endif
