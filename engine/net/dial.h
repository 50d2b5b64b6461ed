/*
 * dial: connect to host:port.
 *
 * IP literals connect at once; names go through uv_getaddrinfo (libuv's
 * thread pool) and every address is tried in order until one answers. Each
 * attempt has its own handle, so a failed attempt is closed and freed on its
 * own and the winner is handed to the caller. The caller's timer enforces
 * the overall connect timeout by calling dial_abort(). Nothing here knows
 * what the connection is for: the result goes to the callback it was given.
 */
#ifndef DLPGATE_DIAL_H
#define DLPGATE_DIAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct dial dial_t;

/* status 0: tcp is connected and now the callee's (to attach and close).
 * Otherwise tcp is NULL, status a libuv error and why a sentence for the
 * client (e.g. "cannot resolve example.test"). */
typedef void (*dial_cb)(void *ud, uv_tcp_t *tcp, int status, const char *why);

/* socket_mark: a SO_MARK for the socket (0: none), so the transparent
 * proxy's own connections are not redirected back to it. 0 and *out, or a
 * libuv error (the callback is then never called). The callback may come
 * before dial_start returns (a literal that cannot be connected). */
int dial_start(uv_loop_t *loop, const char *host, uint16_t port, unsigned socket_mark, dial_cb cb, void *ud,
	       dial_t **out);
/* Stops a dial in progress; its callback is called with UV_ETIMEDOUT when
 * `timed_out`, else never again. */
void dial_abort(dial_t *d, bool timed_out);

#endif
