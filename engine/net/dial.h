/*
 * dial: connect a flow's upstream side to host:port.
 *
 * IP literals connect at once; names go through uv_getaddrinfo (libuv's
 * thread pool) and every address is tried in order until one answers. Each
 * attempt has its own handle, so a failed attempt is closed and freed on its
 * own and the winner is handed to the side. The flow's timer enforces the
 * overall connect timeout by calling dial_abort().
 */
#ifndef DLPGATE_DIAL_H
#define DLPGATE_DIAL_H

#include <stdbool.h>
#include <stdint.h>

struct flow;
struct dial;

/* status 0: the upstream side is connected. Otherwise a libuv error and a
 * sentence for the client (e.g. "cannot resolve example.test"). */
typedef void (*dial_cb)(struct flow *f, int status, const char *why);

int dial_start(struct flow *f, const char *host, uint16_t port, dial_cb cb);
/* Stops a dial in progress; its callback is called with UV_ETIMEDOUT when
 * `timed_out`, else never again. */
void dial_abort(struct flow *f, bool timed_out);

#endif
