/*
 * metrics_http: the admin listener that serves GET /metrics (Prometheus
 * text format) for `--metrics ADDR:PORT`, on the daemon's main loop, never
 * a worker's. Plain HTTP/1.1, one request per connection, 5 s to send it,
 * at most 16 scrapes at once: it is for one monitoring system, not the
 * network. It binds loopback addresses only unless the caller says the
 * admin asked for more (--metrics-public): metrics name hosts and policy
 * versions, which are not for everyone on the network to read.
 */
#ifndef DLPGATE_METRICS_HTTP_H
#define DLPGATE_METRICS_HTTP_H

#include "core/bytebuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* Writes the whole exposition to out; false when out of memory. */
typedef bool (*metrics_render_fn)(void *ud, bytebuf_t *out);

typedef struct metrics_http metrics_http_t;

/* NULL with err naming the address and the problem (a usage error: the
 * caller exits 2). */
metrics_http_t *metrics_http_start(uv_loop_t *loop, const char *addr, bool public_ok, metrics_render_fn fn, void *ud,
				   char *err, size_t errlen);
/* Closes the listener and every scrape in progress; memory goes once
 * libuv has closed the handles. NULL is ignored. */
void metrics_http_stop(metrics_http_t *m);

#endif
