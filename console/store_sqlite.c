/*
 * store_sqlite: the embedded default driver (store.h).
 *
 * One database file in WAL mode: readers run beside the one writer and
 * never block it. Each pool thread has its own connection (store.h), and
 * each connection keeps its prepared statements in a small cache keyed by
 * the SQL text, so the hot INSERT is prepared once per thread, not once per
 * event. Write transactions start with BEGIN IMMEDIATE under the store's
 * write mutex: threads of this process queue on the mutex instead of
 * spinning in SQLITE_BUSY, and busy_timeout covers other processes (the
 * `admin token create` CLI on a running console).
 *
 * synchronous=FULL: an agent deletes a batch once the console answered
 * 2xx, so a committed batch must survive a power cut, not just a crash.
 * It costs a WAL fsync per batch (ingest bench: 26,541 -> 20,129 events/s).
 */
#include "store.h"

#include "core/bytebuf.h"

#include <sqlite3.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define SQLITE_STMT_CACHE 24

typedef struct {
	store_conn_t base;
	sqlite3 *db;
	bool holds_write_lock;
	struct {
		char *sql;
		sqlite3_stmt *stmt;
	} cache[SQLITE_STMT_CACHE];
	unsigned next_evict;
} sqlite_conn_t;

static void set_err(sqlite_conn_t *c, const char *what)
{
	snprintf(c->base.error, sizeof c->base.error, "sqlite: %s: %s", what, sqlite3_errmsg(c->db));
}

static store_conn_t *sq_connect(store_t *st, char *err, size_t errlen)
{
	sqlite_conn_t *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* Born 0600: the events are audit data. SQLite gives its -wal and -shm
	 * files the database file's mode. O_EXCL: only when it does not exist
	 * yet. Closing a descriptor of a file drops every POSIX lock this
	 * process holds on it, the other connections' included; another
	 * process (the CLI) then took itself for the last user, checkpointed
	 * and reset the WAL under them, and they read a stale database until
	 * restarted (a policy watcher stuck at an old generation). */
	int fd = open(st->target, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	int r = sqlite3_open_v2(st->target, &c->db,
				SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (r != SQLITE_OK) {
		snprintf(err, errlen, "cannot open database %s: %s (check --db / --state-dir)", st->target,
			 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(r));
		sqlite3_close(c->db);
		free(c);
		return NULL;
	}
	sqlite3_busy_timeout(c->db, 10000);
	char *msg = NULL;
	if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", NULL,
			 NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "cannot set up database %s: %s", st->target, msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(c->db);
		free(c);
		return NULL;
	}
	return &c->base;
}

static void sq_disconnect(store_conn_t *base)
{
	sqlite_conn_t *c = (sqlite_conn_t *)base;
	if (c->holds_write_lock) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		pthread_mutex_unlock(&base->st->write_lock);
	}
	for (unsigned i = 0; i < SQLITE_STMT_CACHE; i++) {
		sqlite3_finalize(c->cache[i].stmt);
		free(c->cache[i].sql);
	}
	sqlite3_close(c->db);
	free(c);
}

static sqlite3_stmt *prepare(sqlite_conn_t *c, const char *sql)
{
	for (unsigned i = 0; i < SQLITE_STMT_CACHE; i++)
		if (c->cache[i].sql && strcmp(c->cache[i].sql, sql) == 0)
			return c->cache[i].stmt;
	sqlite3_stmt *stmt = NULL;
	if (sqlite3_prepare_v2(c->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		set_err(c, "prepare");
		return NULL;
	}
	char *copy = strdup(sql);
	if (!copy) {
		sqlite3_finalize(stmt);
		snprintf(c->base.error, sizeof c->base.error, "out of memory");
		return NULL;
	}
	unsigned slot = c->next_evict++ % SQLITE_STMT_CACHE;
	sqlite3_finalize(c->cache[slot].stmt);
	free(c->cache[slot].sql);
	c->cache[slot].sql = copy;
	c->cache[slot].stmt = stmt;
	return stmt;
}

static int64_t sq_exec(store_conn_t *base, const char *sql, const store_param_t *p, int np, store_row_fn fn,
		       void *ud)
{
	sqlite_conn_t *c = (sqlite_conn_t *)base;
	sqlite3_stmt *stmt = prepare(c, sql);
	if (!stmt)
		return -1;
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	for (int i = 0; i < np; i++) {
		int r = p[i].type == STORE_P_TEXT  ? sqlite3_bind_text(stmt, i + 1, p[i].s, -1, SQLITE_STATIC)
			: p[i].type == STORE_P_INT ? sqlite3_bind_int64(stmt, i + 1, p[i].i)
						   : sqlite3_bind_null(stmt, i + 1);
		if (r != SQLITE_OK) {
			set_err(c, "bind");
			return -1;
		}
	}
	int ncols = sqlite3_column_count(stmt);
	const char *cols[32];
	if (ncols > 32)
		ncols = 32;
	bool want = fn != NULL;
	int r;
	while ((r = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (!want)
			continue;
		for (int i = 0; i < ncols; i++)
			cols[i] = (const char *)sqlite3_column_text(stmt, i);
		want = fn(ud, ncols, cols);
	}
	int64_t changes = sqlite3_changes(c->db);
	if (r != SQLITE_DONE) {
		set_err(c, "step");
		sqlite3_reset(stmt);
		return -1;
	}
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return changes;
}

static bool sq_exec_script(store_conn_t *base, const char *sql)
{
	sqlite_conn_t *c = (sqlite_conn_t *)base;
	char *msg = NULL;
	if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(base->error, sizeof base->error, "sqlite: %s", msg ? msg : "?");
		sqlite3_free(msg);
		return false;
	}
	return true;
}

static bool sq_begin(store_conn_t *base, bool write)
{
	sqlite_conn_t *c = (sqlite_conn_t *)base;
	if (write) {
		pthread_mutex_lock(&base->st->write_lock);
		c->holds_write_lock = true;
	}
	if (!sq_exec_script(base, write ? "BEGIN IMMEDIATE" : "BEGIN")) {
		if (write) {
			c->holds_write_lock = false;
			pthread_mutex_unlock(&base->st->write_lock);
		}
		return false;
	}
	return true;
}

static void end_tx(sqlite_conn_t *c)
{
	if (c->holds_write_lock) {
		c->holds_write_lock = false;
		pthread_mutex_unlock(&c->base.st->write_lock);
	}
}

static bool sq_commit(store_conn_t *base)
{
	sqlite_conn_t *c = (sqlite_conn_t *)base;
	bool ok = sq_exec_script(base, "COMMIT");
	if (!ok)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	end_tx(c);
	return ok;
}

static void sq_rollback(store_conn_t *base)
{
	sqlite_conn_t *c = (sqlite_conn_t *)base;
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	end_tx(c);
}

const store_driver_t store_sqlite_driver = {
	.name = "sqlite",
	.seq_ddl = "INTEGER PRIMARY KEY",
	.connect = sq_connect,
	.disconnect = sq_disconnect,
	.exec = sq_exec,
	.exec_script = sq_exec_script,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.migrate_lock = NULL,
};
