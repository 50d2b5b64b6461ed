/*
 * relay: the HTTP stage of a flow. Requests from the client and responses
 * from the upstream are parsed (http/codec.h), judged (policy hook), and
 * re-emitted with framing we write ourselves, streaming: a body is never
 * held whole, so a 1 GiB upload costs what one block costs.
 *
 * Three modes share the machinery:
 *   proxy   the explicit proxy's own connection: absolute-form requests are
 *           routed (and re-routed when the authority changes); CONNECT hands
 *           the flow to sources/explicit.c.
 *   origin  inside a tunnel (TLS or clear): requests go to the flow's upstream.
 *   report  the upstream could not be used (bad certificate, blocked flow):
 *           the first request is answered with a page saying why.
 *
 * Pipelining: requests are forwarded as they come, up to
 * limits.pipeline_depth unanswered; responses are matched to them in order
 * (HEAD, 1xx, 204, 304 have no body; a 101 after an Upgrade request hands
 * the flow to http/wsrelay.c for a WebSocket, and to the policy's
 * on_uninspectable "upgrade" for any other protocol). A reply dlpgate makes itself (400, 403, 431, 502)
 * waits for the responses before it, then closes the connection.
 */
#ifndef DLPGATE_RELAY_H
#define DLPGATE_RELAY_H

#include <stdbool.h>

struct flow;
struct relay;

void relay_start_proxy(struct flow *f);
void relay_start_tls(struct flow *f);     /* both sides are TLS and up */
void relay_start_tunnel(struct flow *f);  /* clear HTTP inside CONNECT */
void relay_start_report(struct flow *f);  /* answer with f->report */
void relay_free(struct relay *r);

/* Graceful stop: ends the flow if it rests between messages (every request
 * it sent was answered, nothing of the next has arrived) and says so; a
 * flow that has not sent its first request is not at rest, as that request
 * may be on its way. */
bool relay_end_if_at_rest(struct relay *r);

/* A stage deadline or idle limit fired in the HTTP state; true if the relay
 * handled it (answered and finished the flow). */
bool relay_on_timeout(struct relay *r, const char *what);

/* The WebSocket this relay turned into after a 101 (http/wsrelay.h), or
 * NULL. */
struct wsrelay *relay_websocket(struct relay *r);

#endif
