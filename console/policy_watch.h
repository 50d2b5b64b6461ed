/*
 * policy_watch: what targets whom, kept in memory and refreshed when it
 * changes, so a held long-poll is re-evaluated without a query of its own.
 *
 * A snapshot is everything an offer (rollout_offer) needs, read in one
 * read transaction so its parts agree: the policy generation, the running
 * rollouts, every agent's labels, and the signed documents of the versions
 * those rollouts name (immutable, so a document is read once per version
 * and shared by later snapshots).
 *
 * One thread of its own watches. Every 500 ms it reads the generation
 * (one indexed row); on PostgreSQL it also LISTENs on the store's channel
 * on a dedicated connection and looks at once when a NOTIFY arrives (a
 * change made by any console or the CLI), the 500 ms check staying as the
 * fallback when that connection is down. When the generation moved it
 * builds a new snapshot and hands it to the loop (uv_async); the loop side
 * (longpoll.c) re-evaluates the held polls. Nothing here runs on the loop
 * but the hand-over.
 */
#ifndef DLPGATE_CONSOLE_POLICY_WATCH_H
#define DLPGATE_CONSOLE_POLICY_WATCH_H

#include "rollout.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct store;

/* Documents held in memory, all versions together. The rollouts that run
 * at once name a handful of versions; past this a version is left out and
 * its polls get 503 (and the log says why) rather than the console growing. */
#define POLICY_DOC_CACHE_MAX (256u * 1024 * 1024)

typedef struct {
	atomic_uint refs;
	int64_t version;
	size_t len;
	char text[]; /* the signed document (a JSON object), NUL-terminated */
} policy_doc_t;

typedef struct {
	int64_t generation;
	rollout_t *rollouts;
	size_t n_rollouts;
	policy_doc_t **docs;
	size_t n_docs;
	json_t *labels; /* agent_id -> labels object; agents without labels are absent */
} policy_snapshot_t;

typedef struct policy_watch policy_watch_t;
/* On the loop thread; takes ownership of s. */
typedef void (*policy_deliver_fn)(void *ud, policy_snapshot_t *s);

/* Reads the first snapshot on the calling thread (*first), then watches on
 * a thread of its own. NULL with err when the store cannot be read. */
policy_watch_t *policy_watch_start(struct store *st, uv_loop_t *loop, policy_deliver_fn fn, void *ud,
				   policy_snapshot_t **first, char *err, size_t errlen);
/* Look now rather than at the next tick. Any thread. */
void policy_watch_kick(policy_watch_t *w);
/* Ends the thread (joined) and closes the hand-over; loop thread. */
void policy_watch_stop(policy_watch_t *w);

/* Begins a read transaction whose statements all see one commit (on
 * PostgreSQL, repeatable read): a generation and what it read agree. */
struct store_conn;
bool policy_read_begin(struct store_conn *sc);

/* The document of version, NULL when it is not held. */
const policy_doc_t *policy_snapshot_doc(const policy_snapshot_t *s, int64_t version);
void policy_snapshot_free(policy_snapshot_t *s);

#endif
