/*
 * policy_watch: the watcher thread and the snapshots (see policy_watch.h).
 *
 * The thread sleeps in poll() on a pipe (kicks and stop) and, on
 * PostgreSQL, on the LISTEN connection's socket, for at most the tick.
 * Whatever woke it, it reads the generation and rebuilds only when that
 * moved, so a burst of NOTIFYs costs one snapshot. The store connection it
 * reads with comes from the store's pool like a job's; the LISTEN
 * connection is its own (a pooled one goes back to other threads, and
 * notifications arrive only on the connection that listens).
 */
#include "policy_watch.h"

#include "core/log.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 500
#define LISTEN_RETRY_MS 5000

struct policy_watch {
	struct store *st;
	uv_thread_t thread;
	uv_async_t async;
	policy_deliver_fn deliver;
	void *ud;
	uv_mutex_t lock;
	policy_snapshot_t *ready; /* built, not yet taken by the loop (under lock) */
	int wake[2];              /* pipe: a byte is a kick; closing the write end stops */
	atomic_bool stop;
	bool started;             /* the thread runs (to be joined) */
	/* the thread's own */
	int64_t generation;
	policy_doc_t **docs;      /* its references to the last snapshot's documents */
	size_t n_docs;
	PGconn *listen;
	uint64_t listen_tried_ms;
	bool store_down;          /* logged once per outage */
};

static uint64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* ---- documents and snapshots ---- */

static void doc_put(policy_doc_t *d)
{
	if (d && atomic_fetch_sub(&d->refs, 1) == 1)
		free(d);
}

static policy_doc_t *doc_get(policy_doc_t *d)
{
	atomic_fetch_add(&d->refs, 1);
	return d;
}

const policy_doc_t *policy_snapshot_doc(const policy_snapshot_t *s, int64_t version)
{
	for (size_t i = 0; i < s->n_docs; i++)
		if (s->docs[i]->version == version)
			return s->docs[i];
	return NULL;
}

void policy_snapshot_free(policy_snapshot_t *s)
{
	if (!s)
		return;
	store_rollouts_free(s->rollouts, s->n_rollouts);
	for (size_t i = 0; i < s->n_docs; i++)
		doc_put(s->docs[i]);
	free(s->docs);
	json_decref(s->labels);
	free(s);
}

/* A version's document, from the last snapshot or read once from the store.
 * NULL (logged) when it cannot be had or would pass the cache's bound. */
static policy_doc_t *load_doc(policy_watch_t *w, store_conn_t *sc, int64_t version, size_t *held)
{
	for (size_t i = 0; i < w->n_docs; i++)
		if (w->docs[i]->version == version) {
			*held += w->docs[i]->len;
			return doc_get(w->docs[i]);
		}
	char *text = NULL;
	size_t len = 0;
	int r = store_policy_bundle(sc, version, &text, &len);
	if (r != 0) {
		log_msg(LOG_ERROR, "policy_doc", "version %lld: %s", (long long)version,
			r == STORE_NOT_FOUND ? "a rollout names a version that is not stored" : store_conn_error(sc));
		free(text);
		return NULL;
	}
	/* Spliced into answers as it is: it must be one JSON object. */
	json_error_t je;
	json_t *o = json_loadb(text, len, 0, &je);
	bool object = json_is_object(o);
	json_decref(o);
	if (!object || *held + len > POLICY_DOC_CACHE_MAX) {
		log_msg(LOG_ERROR, "policy_doc", "version %lld: %s", (long long)version,
			object ? "the documents of the running rollouts pass the 256 MiB held in memory; "
				 "its polls get 503 until fewer versions run"
			       : "the stored document is not a JSON object");
		free(text);
		return NULL;
	}
	policy_doc_t *d = malloc(sizeof *d + len + 1);
	if (!d) {
		free(text);
		return NULL;
	}
	atomic_init(&d->refs, 1);
	d->version = version;
	d->len = len;
	memcpy(d->text, text, len);
	d->text[len] = '\0';
	free(text);
	*held += len;
	return d;
}

typedef struct {
	json_t *map;
	bool oom;
} labels_ctx_t;

static bool row_labels(void *ud, const store_agent_row_t *a)
{
	labels_ctx_t *lc = ud;
	if (a->labels && json_object_size(a->labels) &&
	    json_object_set(lc->map, a->agent_id, a->labels) != 0)
		lc->oom = true;
	return true;
}

bool policy_read_begin(store_conn_t *sc)
{
	const store_driver_t *d = sc->st->drv;
	if (!d->begin(sc, false))
		return false;
	/* PostgreSQL's default (read committed) lets each statement see a
	 * different commit; SQLite's read transaction is one snapshot already. */
	if (d == &store_pg_driver && !d->exec_script(sc, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")) {
		d->rollback(sc);
		return false;
	}
	return true;
}

/* The targeting state as of one generation, read in one transaction. */
static bool read_targeting(store_conn_t *sc, policy_snapshot_t *s)
{
	const store_driver_t *d = sc->st->drv;
	if (!policy_read_begin(sc))
		return false;
	labels_ctx_t lc = {json_object(), false};
	s->labels = lc.map;
	if (store_policy_generation(sc, &s->generation) != 0 ||
	    store_rollouts_running(sc, &s->rollouts, &s->n_rollouts) != 0 ||
	    store_agents_each(sc, row_labels, &lc) != 0)
		goto fail;
	if (lc.oom) {
		snprintf(sc->error, sizeof sc->error, "out of memory reading the agents' labels");
		goto fail;
	}
	return d->commit(sc);
fail:
	d->rollback(sc);
	return false;
}

static policy_snapshot_t *build(policy_watch_t *w, store_conn_t *sc)
{
	policy_snapshot_t *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	if (!read_targeting(sc, s)) {
		policy_snapshot_free(s);
		return NULL;
	}
	s->docs = calloc(s->n_rollouts ? s->n_rollouts : 1, sizeof *s->docs);
	if (!s->docs) {
		policy_snapshot_free(s);
		return NULL;
	}
	size_t held = 0;
	for (size_t i = 0; i < s->n_rollouts; i++) {
		int64_t v = s->rollouts[i].version;
		if (!s->rollouts[i].running || policy_snapshot_doc(s, v))
			continue;
		policy_doc_t *d = load_doc(w, sc, v, &held);
		if (d)
			s->docs[s->n_docs++] = d;
	}
	/* The watcher's references follow the newest snapshot: a version no
	 * longer running is dropped from memory with the last snapshot using it. */
	for (size_t i = 0; i < w->n_docs; i++)
		doc_put(w->docs[i]);
	free(w->docs);
	w->docs = calloc(s->n_docs ? s->n_docs : 1, sizeof *w->docs);
	w->n_docs = 0;
	for (size_t i = 0; w->docs && i < s->n_docs; i++)
		w->docs[w->n_docs++] = doc_get(s->docs[i]);
	return s;
}

/* ---- the thread ---- */

static void store_trouble(policy_watch_t *w, const char *what)
{
	if (!w->store_down)
		log_msg(LOG_ERROR, "policy_watch", "%s (held polls keep the last known targeting; retrying every %d ms)",
			what, TICK_MS);
	w->store_down = true;
}

/* Reads the generation; builds and hands over a snapshot when it moved. */
static void check(policy_watch_t *w)
{
	char err[512];
	store_conn_t *sc = store_acquire(w->st, err, sizeof err);
	if (!sc) {
		store_trouble(w, err);
		return;
	}
	int64_t gen = 0;
	bool ok = store_policy_generation(sc, &gen) == 0;
	policy_snapshot_t *s = ok && gen != w->generation ? build(w, sc) : NULL;
	if (!ok || (gen != w->generation && !s)) {
		store_trouble(w, store_conn_error(sc));
		store_release(sc, true);
		return;
	}
	store_release(sc, false);
	if (w->store_down)
		log_msg(LOG_INFO, "policy_watch", "the store answers again");
	w->store_down = false;
	if (!s)
		return;
	w->generation = s->generation;
	uv_mutex_lock(&w->lock);
	policy_snapshot_free(w->ready); /* the loop had not taken it: the newer one wins */
	w->ready = s;
	uv_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
}

static void listen_drop(policy_watch_t *w, const char *why)
{
	const char *msg = why ? why : PQerrorMessage(w->listen);
	log_msg(LOG_WARN, "policy_listen", "LISTEN connection lost (%.*s): checking every %d ms until it is back",
		(int)strcspn(msg, "\n"), msg, TICK_MS);
	PQfinish(w->listen);
	w->listen = NULL;
}

/* PostgreSQL: a connection of our own that LISTENs (retried every 5 s). */
static void listen_ensure(policy_watch_t *w)
{
	if (w->st->drv != &store_pg_driver || w->listen)
		return;
	uint64_t now = mono_ms();
	if (w->listen_tried_ms && now - w->listen_tried_ms < LISTEN_RETRY_MS)
		return;
	w->listen_tried_ms = now;
	w->listen = PQconnectdb(w->st->target);
	if (!w->listen || PQstatus(w->listen) != CONNECTION_OK) {
		/* the URL may hold a password: the server's message only */
		listen_drop(w, w->listen ? NULL : "out of memory");
		return;
	}
	PGresult *r = PQexec(w->listen, "LISTEN " STORE_POLICY_CHANNEL);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok) {
		listen_drop(w, NULL);
		return;
	}
	w->listen_tried_ms = 0;
	/* Changes committed while it was down were not notified. */
	check(w);
}

/* Reads what the LISTEN socket has; true when a notification arrived. */
static bool listen_read(policy_watch_t *w)
{
	if (!PQconsumeInput(w->listen)) {
		listen_drop(w, NULL);
		return true; /* look: something may have changed meanwhile */
	}
	bool notified = false;
	PGnotify *n;
	while ((n = PQnotifies(w->listen)) != NULL) {
		notified = true;
		PQfreemem(n);
	}
	return notified;
}

static void watch_main(void *arg)
{
	policy_watch_t *w = arg;
	while (!atomic_load(&w->stop)) {
		listen_ensure(w);
		struct pollfd fds[2] = {{.fd = w->wake[0], .events = POLLIN}, {.fd = -1}};
		if (w->listen)
			fds[1] = (struct pollfd){.fd = PQsocket(w->listen), .events = POLLIN};
		int n = poll(fds, w->listen ? 2 : 1, TICK_MS);
		if (n < 0 && errno != EINTR)
			break;
		if (fds[0].revents) {
			char buf[64];
			if (read(w->wake[0], buf, sizeof buf) == 0)
				break; /* the write end closed: stop */
		}
		if (w->listen && fds[1].revents)
			listen_read(w);
		if (!atomic_load(&w->stop))
			check(w);
	}
}

/* ---- the loop side ---- */

static void on_async(uv_async_t *a)
{
	policy_watch_t *w = a->data;
	uv_mutex_lock(&w->lock);
	policy_snapshot_t *s = w->ready;
	w->ready = NULL;
	uv_mutex_unlock(&w->lock);
	if (s)
		w->deliver(w->ud, s);
}

policy_watch_t *policy_watch_start(struct store *st, uv_loop_t *loop, policy_deliver_fn fn, void *ud,
				   policy_snapshot_t **first, char *err, size_t errlen)
{
	policy_watch_t *w = calloc(1, sizeof *w);
	if (!w || pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		snprintf(err, errlen, "policy watcher: %s", strerror(errno));
		free(w);
		return NULL;
	}
	w->st = st;
	w->deliver = fn;
	w->ud = ud;
	store_conn_t *sc = store_acquire(st, err, errlen);
	*first = sc ? build(w, sc) : NULL;
	if (!*first) {
		if (sc)
			snprintf(err, errlen, "cannot read the rollouts: %s", store_conn_error(sc));
		store_release(sc, true);
		close(w->wake[0]);
		close(w->wake[1]);
		free(w);
		return NULL;
	}
	store_release(sc, false);
	w->generation = (*first)->generation;
	uv_mutex_init(&w->lock);
	uv_async_init(loop, &w->async, on_async);
	w->async.data = w;
	w->started = uv_thread_create(&w->thread, watch_main, w) == 0;
	if (!w->started) {
		snprintf(err, errlen, "policy watcher: cannot start its thread");
		policy_snapshot_free(*first);
		*first = NULL;
		policy_watch_stop(w); /* without a thread to join */
		return NULL;
	}
	return w;
}

void policy_watch_kick(policy_watch_t *w)
{
	if (w && !atomic_load(&w->stop) && write(w->wake[1], "k", 1) < 0) {
		/* full pipe: a kick is already pending */
	}
}

static void on_async_closed(uv_handle_t *h)
{
	policy_watch_t *w = h->data;
	policy_snapshot_free(w->ready);
	uv_mutex_destroy(&w->lock);
	free(w);
}

void policy_watch_stop(policy_watch_t *w)
{
	if (!w)
		return;
	atomic_store(&w->stop, true);
	close(w->wake[1]);
	if (w->started)
		uv_thread_join(&w->thread);
	close(w->wake[0]);
	PQfinish(w->listen);
	for (size_t i = 0; i < w->n_docs; i++)
		doc_put(w->docs[i]);
	free(w->docs);
	uv_close((uv_handle_t *)&w->async, on_async_closed);
}
