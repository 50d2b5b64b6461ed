/*
 * worker: one thread, one libuv loop, its own listeners (SO_REUSEPORT: the
 * kernel spreads connections) and everything its flows need that must not be
 * shared: the block free list and scratch buffers. A flow lives and dies on
 * one worker: the one that accepted it, except where the engine spreads
 * connections itself: the system extension's socket always, and TCP
 * listeners with balance_in_engine (macOS). There every worker listens on
 * one shared socket and the one that accepts hands the connection to the
 * worker with the fewest flows (through its inbox).
 */
#ifndef DLPGATE_WORKER_H
#define DLPGATE_WORKER_H

#include "core/bytebuf.h"
#include "engine.h"
#include "net/iobuf.h"
#include "net/side.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

/* What a worker hands its connections to (the flow layer, flow.c's
 * flow_worker_hooks), so this layer never names what it carries: a
 * connection accepted here or handed over by another worker, one drain
 * tick (end what rests between messages), and the final close of all. */
typedef struct {
	void (*accept)(worker_t *w, uv_stream_t *server, listen_kind_t kind);
	void (*adopt)(worker_t *w, int fd, listen_kind_t kind); /* fd is w's to close */
	void (*end_at_rest)(worker_t *w);
	void (*close_all)(worker_t *w);
} worker_hooks_t;

#define WORKER_INBOX 256 /* connections waiting to be taken over; past it the accepting worker keeps them */

/* A connection accepted by one worker for another. */
typedef struct {
	int fd;
	listen_kind_t kind;
} worker_handoff_t;

struct worker {
	engine_t *eng;
	unsigned index;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t wake;           /* stop request from the main thread */
	side_conn_t listeners[ENGINE_MAX_LISTEN]; /* TCP, or the sysext unix socket */
	int listen_fds[ENGINE_MAX_LISTEN];
	size_t n_listeners;
	iobuf_t *free_blocks;
	unsigned n_free_blocks;
	const worker_hooks_t *hooks;
	void *conns;               /* the hooks' list of open connections */
	atomic_uint n_conns;       /* kept by the hooks' owner; read by other workers to balance */
	uv_mutex_t inbox_lock;     /* connections handed over by other workers */
	worker_handoff_t inbox[WORKER_INBOX];
	size_t n_inbox;
	atomic_uint n_incoming;    /* handed over, not yet flows */
	uv_async_t inbox_wake;
	bytebuf_t scratch;             /* serialization scratch, reused */
	uint64_t last_refusal_log;
	unsigned refused_since_log;
	bool stopping;             /* listeners closed, nothing more handed over */
	atomic_bool drain;         /* a wake means: close listeners, let flows finish */
	uv_timer_t drain_timer;    /* net/drain.c */
	bool draining;
};

/* Opens the listening sockets of every worker for every listen spec; on
 * failure one line naming the address and the problem goes to err. */
bool worker_open_listeners(engine_t *e, char *err, size_t errlen);
bool worker_start_all(engine_t *e, const worker_hooks_t *hooks, char *err, size_t errlen);
/* Graceful stop, first step: every worker closes its listeners and ends
 * each flow once it rests between messages (net/drain.c); e->connections
 * says how many are left. worker_stop_all then closes what remains. */
void worker_drain_all(engine_t *e);
/* Asks every worker to stop and waits for their threads. */
void worker_stop_all(engine_t *e);

/* net/drain.c, on the worker's thread. */
void drain_begin(worker_t *w);
void drain_end(worker_t *w);

uint64_t worker_now(worker_t *w);

#endif
