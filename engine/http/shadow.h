/*
 * shadow: a candidate policy asked the same question as the active one,
 * with no effect on traffic (DESIGN.md "Policy distribution").
 *
 * Policy sync installs the console's shadow offer in the engine's shadow
 * slot with a sample percent. For that share of the messages the active
 * policy decides at on_request / on_response, the shadow decides too: on a
 * copy of the head (a stage may edit the head it is given; the copy is
 * thrown away), over the same read-only body view, into its own findings
 * and spans. Nothing it decides is applied. The shadow runs before the
 * active stage, so it sees the message exactly as it arrived, and the
 * active one's redaction has not touched the body yet.
 *
 * When the two verdicts differ (kind, or redact), the relay emits a
 * "shadow" event (schemas/verdict.schema.json) naming both versions.
 *
 * What the shadow sees is what the active policy's reading made available:
 * a body only when the active policy reads bodies at that stage (the relay
 * holds a message for the policy that decides, not for a candidate), and
 * no flow stage (on_flow decides whether there are messages at all; a
 * shadow that would bypass more is seen as pass where it differs).
 */
#ifndef DLPGATE_SHADOW_H
#define DLPGATE_SHADOW_H

#include "policy/policy.h"

struct worker;

typedef struct {
	compiled_policy_t *policy;   /* referenced while the result lives; NULL: not evaluated */
	verdict_t verdict;
	policy_msg_t msg;            /* the shadow's own findings (for its event) */
	http_head_t head;            /* the copy it was given */
} shadow_result_t;

/* Asks the shadow (if one is installed and this message is in its sample)
 * about m; s->policy is NULL when it was not asked. */
void shadow_ask(struct worker *w, const flow_facts_t *f, const policy_msg_t *m, shadow_result_t *s);
/* Asked, and its verdict is not the active one's. */
bool shadow_differs(const shadow_result_t *s, const verdict_t *active);
void shadow_result_free(shadow_result_t *s);
/* The verdict as events name it: pass, redact, block, ... */
const char *shadow_verdict_name(const verdict_t *v);

#endif
