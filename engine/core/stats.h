/*
 * stats: the agent's counter families for --metrics (core/metrics.h), one
 * place that names them, so the modules that count (flow.c, http/relay.c,
 * intercept.c, policy/lua_policy.c) share names and label sets and
 * the exposition stays one consistent set. Registered once by `dlpgate
 * run` before the workers start; until then (the unit tests, the policy
 * tools) every family is NULL and counting is a no-op.
 */
#ifndef DLPGATE_STATS_H
#define DLPGATE_STATS_H

#include "core/metrics.h"

extern metrics_family_t *stats_flows;          /* source, mode, end */
extern metrics_family_t *stats_messages;       /* stage: request, response, message (WebSocket) */
extern metrics_family_t *stats_detector_hits;  /* detector */
extern metrics_family_t *stats_policy_errors;  /* stage, kind: error, instruction_limit, memory_limit */
extern metrics_family_t *stats_handshakes;     /* side, result */
extern metrics_family_t *stats_uninspectable;  /* why, decision: bypass, block */

void stats_init(void);

#endif
