/*
 * wsrelay: a WebSocket connection after its 101, inspected message by
 * message instead of spliced.
 *
 * Each direction has a frame parser (http/ws.h) whose whole messages go to
 * the policy (on_message, or on_request / on_response without it: see the
 * README's policy section) and are then re-framed: one frame per message,
 * client frames masked again with a fresh key. Redaction masks in place
 * (the length never changes); a block sends close 1008 both ways and ends
 * the flow; a message over inspect.max_bytes or a protocol error closes
 * with 1009 / 1002 both ways. Ping, pong and close frames pass as they are.
 * Every one of those refusals is a verdict event (stage "message").
 *
 * permessage-deflate (or any extension) is never negotiated: the offer is
 * taken out of the request (wsrelay_prepare_request), a 101 that names an
 * extension anyway is refused before the client sees it, and a frame with
 * a reserved bit set closes the connection. No byte passes unread.
 *
 * Memory per connection: two parsers, each holding at most one message up
 * to inspect.max_bytes while it is reassembled, and what one read produces.
 */
#ifndef DLPGATE_WSRELAY_H
#define DLPGATE_WSRELAY_H

#include "http/head.h"

#include <stdbool.h>
#include <stddef.h>

struct flow;
struct wsrelay;

/* An Upgrade request on its way up: takes out Sec-WebSocket-Extensions of
 * a WebSocket handshake, so the server can agree to no extension. */
void wsrelay_prepare_request(http_head_t *req);

/* Is this 101 (to this request) a WebSocket wsrelay can inspect? False
 * with *refusal set: it is a WebSocket but not one dlpgate can read (the
 * server chose an extension); false with *refusal NULL: not a WebSocket. */
bool wsrelay_accepts(const http_head_t *req, const http_head_t *switched, const char **refusal);

/* Takes over both sides of f once the 101 is out: client_rest and
 * server_rest are the bytes already read after the request and the 101.
 * The heads are copied. NULL when the flow could not be started (it is
 * closed then). */
struct wsrelay *wsrelay_start(struct flow *f, const http_head_t *upgrade, const http_head_t *switched,
			      const char *client_rest, size_t client_len, const char *server_rest, size_t server_len);
void wsrelay_free(struct wsrelay *ws);

#endif
