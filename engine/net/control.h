/*
 * control: a daemon's local control socket (the agent's STATE/control.sock).
 * A client connects, sends one command line ("status\n", "pinned list\n",
 * ...) and reads one answer (a JSON document) up to EOF; `dlpgate status`
 * and `dlpgate pinned` are such clients. A client that sends nothing for a
 * second gets the answer to "status", as the first clients (which sent
 * nothing) did. The socket is mode 0600 in a 0700 state directory: only
 * its owner (root, or the service's user) asks.
 *
 * It runs on the main thread's loop, never a worker's: asking must cost
 * the proxy nothing. The answer comes from a function the caller gives, so
 * this layer knows nothing of what is reported.
 */
#ifndef DLPGATE_CONTROL_H
#define DLPGATE_CONTROL_H

#include <stddef.h>
#include <uv.h>

#define CONTROL_MAX_COMMAND 128

/* Returns the answer to command (without its newline; "status" when the
 * client sent none), malloc'd (NULL: the connection is just closed). */
typedef char *(*control_answer_fn)(void *ud, const char *command);

typedef struct control control_t;

/* Binds path. A socket file already there that answers belongs to a
 * running daemon: refused, naming it; one that does not is stale and
 * replaced. NULL with err naming the path and the problem. */
control_t *control_start(uv_loop_t *loop, const char *path, control_answer_fn fn, void *ud, char *err,
			 size_t errlen);
/* Closes the socket and removes its file; the memory goes once libuv has
 * closed the handle (run the loop once more). NULL is ignored. */
void control_stop(control_t *c);

/* The client side: connects to path, sends command and reads the whole
 * answer (at most 1 MiB, 5 s). NULL with err when nothing answers. */
char *control_ask(const char *path, const char *command, char *err, size_t errlen);

#endif
