/*
 * engine: the process-wide state every worker shares, read-mostly.
 *
 * Built once by `dlpgate run` before any worker starts; after that the only
 * fields that change are the atomics, the caches (each behind its own lock)
 * and the current policy pointer (behind policy_lock, taken once per flow).
 */
#ifndef DLPGATE_ENGINE_H
#define DLPGATE_ENGINE_H

#include "core/config.h"
#include "policy/policy.h"
#include "tls/ca.h"
#include "tls/mint.h"
#include "tls/pinned.h"
#include "tls/tlsctx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#define ENGINE_MAX_LISTEN 16

/* Explicit proxy (TCP), Linux transparent (TCP, redirected by nftables),
 * or system extension flows (a unix socket, framed). */
typedef enum { LISTEN_EXPLICIT = 0, LISTEN_SYSEXT, LISTEN_TRANSPARENT } listen_kind_t;

/* The mark on the engine's upstream sockets: the redirect rules skip
 * packets that carry it, so the engine never intercepts itself. */
#define ENGINE_SOCKET_MARK 0x646c70 /* "dlp" */

typedef struct {
	listen_kind_t kind;
	struct sockaddr_storage addr;
	char text[120]; /* as given, for messages */
} listen_spec_t;

typedef struct worker worker_t;

typedef struct engine {
	config_t cfg;
	ca_t ca;
	tlsctx_t tls;
	mint_t *mint;
	pinned_t *pinned;

	pthread_mutex_t policy_lock;
	compiled_policy_t *policy;
	/* A candidate run beside the policy with no effect on traffic (policy
	 * sync installs it from the console's shadow offer); NULL: none. Its
	 * sample is the percent of messages it sees. Both under policy_lock. */
	compiled_policy_t *shadow;
	unsigned shadow_sample_percent;

	listen_spec_t listens[ENGINE_MAX_LISTEN];
	size_t n_listens;
	int64_t sysext_uid;             /* may connect to the sysext socket besides root; -1: nobody else */
	bool mark_upstream;             /* set ENGINE_SOCKET_MARK on upstream sockets (transparent mode) */
	/* TCP listeners: one socket shared by the workers, each connection handed to
	 * the worker with the fewest flows (macOS, where SO_REUSEPORT does not spread
	 * connections), instead of one SO_REUSEPORT socket per worker (Linux). */
	bool balance_in_engine;
	worker_t *workers;
	unsigned n_workers;

	atomic_uint connections;        /* client connections open now */
	atomic_uint_fast64_t next_flow_id;
	atomic_uint_fast64_t flows_total, flows_refused;
} engine_t;

/* A reference to the current policy; release with policy_unref(). */
compiled_policy_t *engine_policy_acquire(engine_t *e);
/* Makes p current (takes the caller's reference); flows in progress keep theirs. */
void engine_policy_swap(engine_t *e, compiled_policy_t *p);
/* The shadow policy and its sample percent, referenced, or NULL. */
compiled_policy_t *engine_shadow_acquire(engine_t *e, unsigned *sample_percent);
/* Installs p (may be NULL: no shadow; takes the caller's reference). */
void engine_shadow_swap(engine_t *e, compiled_policy_t *p, unsigned sample_percent);

#endif
