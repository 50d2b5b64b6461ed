/*
 * rollout: which policy versions target an agent (schemas/console-api.md,
 * "Targeting"). Pure functions over rows the store returns, so the admin
 * API (counting targets, status), the long-poll (one offer per held
 * request, from a cache of the running rollouts) and the tests agree.
 *
 * A rollout matches an agent when every label it names has that value on
 * the agent and the agent's bucket is below its percent. The bucket is the
 * first 32 bits of SHA-256(agent_id) modulo 100: stable for an agent, so
 * widening 10% to 50% keeps the first 10% in and adds others.
 */
#ifndef DLPGATE_CONSOLE_ROLLOUT_H
#define DLPGATE_CONSOLE_ROLLOUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { ROLLOUT_ACTIVE = 0, ROLLOUT_SHADOW } rollout_kind_t;

typedef struct {
	int64_t id;               /* grows with each rollout: newest wins */
	int64_t version;
	rollout_kind_t kind;
	json_t *labels;           /* object of strings (owned by the caller); NULL or {}: any agent */
	int percent;              /* 1..100 */
	int sample_percent;       /* shadow only: share of messages evaluated, 1..100 */
	bool running;             /* false: halted or superseded, targets nobody */
} rollout_t;

/* What targets one agent: versions (0: none) and the shadow sample. */
typedef struct {
	int64_t active, shadow;
	int sample_percent;
} rollout_offer_t;

unsigned rollout_bucket(const char *agent_id);
bool rollout_matches(const rollout_t *r, const char *agent_id, const json_t *agent_labels);
/* The newest running rollout of each kind that matches decides. */
void rollout_offer(const rollout_t *rs, size_t n, const char *agent_id, const json_t *agent_labels,
		   rollout_offer_t *out);
/* "ACTIVE.SHADOW", quoted, as the ETag carries it. */
void rollout_etag(const rollout_offer_t *o, char out[48]);
/* Is etag among the entity tags of an If-None-Match value? */
bool rollout_etag_listed(const char *if_none_match, const char *etag);

/* Labels as agents and admins give them: an object of ≤ 32 string values,
 * keys [a-z0-9_.-]{1,63}, values ≤ 128 bytes. "k=v,k2=v2" is the CLI form. */
bool rollout_labels_valid(const json_t *labels, char *err, size_t errlen);
json_t *rollout_labels_parse(const char *text, char *err, size_t errlen);

#endif
