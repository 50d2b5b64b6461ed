/*
 * event: one decision as the JSON object admins and the console read
 * (schemas/verdict.schema.json): who, where, what was decided, by which
 * rule and why, what detectors found (names, counts, masked samples; never
 * a secret), when, and under which policy version.
 *
 * Until the console exists (issue 5) events are written as JSON lines on
 * stderr, one write per event.
 */
#ifndef DLPGATE_EVENT_H
#define DLPGATE_EVENT_H

#include "policy/policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_LEN 37

typedef struct {
	char id[EVENT_ID_LEN];          /* UUIDv7 */
	const char *stage;              /* "flow", "request", "response" */
	const verdict_t *verdict;
	const policy_msg_t *msg;        /* findings; NULL at the flow stage */
	const flow_facts_t *facts;
	const char *policy_version;
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
} event_t;

/* A new time-ordered id (UUIDv7: 48 bits of ms, then random). */
void event_new_id(char out[EVENT_ID_LEN]);
void event_emit(const event_t *e);

#endif
