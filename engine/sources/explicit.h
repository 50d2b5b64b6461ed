/*
 * explicit: the explicit-proxy ingress (clients configured with a proxy).
 *
 * A client connection starts in the relay's proxy mode. A CONNECT request
 * comes here: the authority is checked, the upstream is dialled first, and
 * only a connected upstream earns "200 Connection established"; a failure is
 * a 502/504 naming the problem. The tunnel then goes to flow_tunnel_start().
 * Absolute-form requests (GET http://host/path) stay in the relay, which
 * uses explicit_parse_absolute() to route them.
 */
#ifndef DLPGATE_EXPLICIT_H
#define DLPGATE_EXPLICIT_H

#include "http/head.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct flow;

void explicit_start(struct flow *f);
/* CONNECT: takes over the client connection; `rest` are client bytes that
 * followed the request (kept for the tunnel). The caller's relay is freed. */
void explicit_connect(struct flow *f, const http_head_t *req, const char *rest, size_t rest_len);

/* "host:port" or "[v6]:port" -> host (no brackets) and port; a missing port
 * takes default_port (0 = required). NULL or a reason. */
const char *explicit_parse_authority(const char *s, size_t n, uint16_t default_port, char *host, size_t hostlen,
				     uint16_t *port);
/* "http://authority/path?q" -> host, port, and the origin-form target
 * ("/path?q", "/" when empty). NULL or a reason. */
const char *explicit_parse_absolute(const char *target, size_t n, char *host, size_t hostlen, uint16_t *port,
				    const char **path, size_t *pathlen);

#endif
