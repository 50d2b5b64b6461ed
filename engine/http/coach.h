/*
 * coach: a block the user may get past by saying why (dlp.coach).
 *
 * A coach verdict answers the message with a page (http/reply.h) that says
 * what was found (masked samples), the rule, the reason and the event id,
 * and carries a one-time token. The page's forms post back to the same
 * host under a reserved path, /.well-known/dlpgate/, which the gateway
 * answers itself and never forwards:
 *
 *   POST /.well-known/dlpgate/override        token=...&justification=...
 *   POST /.well-known/dlpgate/false-positive  token=...[&justification=...]
 *
 * The token is "EVENT_ID.EXPIRY.MAC", MAC = HMAC-SHA256 under a random
 * per-process key over the event id, the expiry, the app identity, the host
 * and the rule. It is checked against the identity and host of the request
 * that brings it back (so another app, or a page on another host, cannot
 * use it), in constant time, and only while its offer is remembered: an
 * override consumes the offer (single use), a restart forgets every offer.
 * A false-positive report is recorded once per offer and lets nothing
 * through.
 *
 * An accepted override is an `override` event naming the original event;
 * its justification is scanned by the policy's on_request and whatever a
 * detector finds in it is masked before it is stored. From then on, for
 * the verdict's ttl, a coach verdict of the same rule for the same app
 * identity and host passes (the verdict event says so in its note).
 *
 * App identity is the pinned memory's (tls/pinned.h): signing and team id
 * from the system extension, executable and uid in transparent mode. The
 * explicit proxy knows no app: there a client is its address plus its
 * User-Agent, which keeps two programs on one machine apart when they are
 * honest about what they are; anything that can pretend to be another
 * program could have justified the override itself.
 *
 * Both tables (offers, overrides) are bounded LRUs with expiry, shared by
 * every worker under one lock: a page may be answered on another
 * connection, which can be on another worker.
 */
#ifndef DLPGATE_COACH_H
#define DLPGATE_COACH_H

#include "http/head.h"
#include "policy/policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;

#define COACH_PATH_PREFIX "/.well-known/dlpgate/"
#define COACH_IDENT_MAX 800
#define COACH_TOKEN_MAX 128
#define COACH_BODY_MAX 8192          /* the forms' bodies */
#define COACH_JUSTIFICATION_MAX 1000 /* bytes kept of a justification */
#define COACH_OFFERS_MAX 4096
#define COACH_OVERRIDES_MAX 4096

/* Is this request for the gateway itself (the reserved path)? */
bool coach_is_reserved(const http_head_t *h);

/* The identity overrides are kept under (see above). */
void coach_identity(const flow_facts_t *f, const char *client_ip, const http_head_t *req,
		    char out[COACH_IDENT_MAX]);

/* A coach verdict for (ident, host, rule): true if a live override lets it
 * pass; of gets the event id the override was given for. */
bool coach_override_live(const char *ident, const char *host, const char *rule, char of[37]);

/* A coach page is about to be shown for event_id: remember the offer and
 * make its token. False when out of memory (then block without a form). */
bool coach_offer(const char *event_id, const char *ident, const char *host, const verdict_t *v,
		 char token[COACH_TOKEN_MAX]);

/* A request for the reserved path, its body read (complete = all of it). */
typedef struct {
	compiled_policy_t *policy;
	struct worker *w;
	const flow_facts_t *facts;
	uint64_t flow_id;
	const char *client_ip;
	const char *ident;
	const char *host;
	http_head_t *head;
	const uint8_t *body;
	size_t body_len;
	bool complete;
	const char *tls, *up_tls;
} coach_request_t;

/* What to answer (a page made with reply_build). */
typedef struct {
	int status;
	const char *code;
	const char *title;
	char detail[400];
	char event_id[37];  /* the override or false_positive event, if one was recorded */
} coach_answer_t;

void coach_answer(const coach_request_t *q, coach_answer_t *a);

/* Forgets every offer and override (tests, SIGHUP). */
void coach_reset(void);

#endif
