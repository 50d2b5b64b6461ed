/*
 * store_pg: the PostgreSQL driver (store.h), for consoles that share one
 * database.
 *
 * Every statement is prepared and run with its values as parameters: they
 * travel apart from the SQL text (the server never parses them as SQL), as
 * text, and the server infers their types from the columns they meet. The common layer
 * writes `?` placeholders; they are renumbered to `$1..$n` here (no SQL the
 * store writes has a `?` inside a literal) and prepared once per
 * connection (PQprepare, then PQexecPrepared: the hot INSERT is parsed and
 * planned once, not once per event). Each pool thread has its own PGconn
 * (libpq connections are not shared between threads).
 */
#include "store.h"

#include "core/bytebuf.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_STMT_CACHE 32

typedef struct {
	store_conn_t base;
	PGconn *pg;
	struct {
		char *sql;        /* as the common layer wrote it (with ?) */
		char name[16];
	} cache[PG_STMT_CACHE];
	unsigned next_evict, next_name;
} pg_conn_t;

static void quiet_notices(void *arg, const char *msg)
{
	(void)arg, (void)msg; /* "relation already exists, skipping" and the like */
}

static store_conn_t *pg_connect(store_t *st, char *err, size_t errlen)
{
	pg_conn_t *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->pg = PQconnectdb(st->target);
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
		/* The URL may hold a password: name the server, not the URL. */
		const char *msg = c->pg ? PQerrorMessage(c->pg) : "out of memory";
		size_t n = strcspn(msg, "\n");
		snprintf(err, errlen, "cannot connect to PostgreSQL (--db): %.*s", (int)n, msg);
		PQfinish(c->pg);
		free(c);
		return NULL;
	}
	PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
	return &c->base;
}

static void pg_disconnect(store_conn_t *base)
{
	pg_conn_t *c = (pg_conn_t *)base;
	PQfinish(c->pg);
	for (unsigned i = 0; i < PG_STMT_CACHE; i++)
		free(c->cache[i].sql);
	free(c);
}

static void set_err(pg_conn_t *c, const PGresult *r)
{
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg);
	size_t n = strcspn(msg, "\n");
	snprintf(c->base.error, sizeof c->base.error, "postgresql: %.*s", (int)n, msg);
}

/* The name of sql's prepared statement on this connection, preparing it
 * on first use; NULL with the error set. */
static const char *prepared(pg_conn_t *c, const char *sql, int np)
{
	for (unsigned i = 0; i < PG_STMT_CACHE; i++)
		if (c->cache[i].sql && strcmp(c->cache[i].sql, sql) == 0)
			return c->cache[i].name;
	bytebuf_t q;
	bytebuf_init(&q, 0);
	int k = 0;
	for (const char *s = sql; *s; s++) {
		if (*s == '?')
			bytebuf_appendf(&q, "$%d", ++k);
		else
			bytebuf_append(&q, s, 1);
	}
	if (!bytebuf_cstr(&q) || k != np) {
		bytebuf_free(&q);
		snprintf(c->base.error, sizeof c->base.error, "internal: %d placeholders for %d parameters", k, np);
		return NULL;
	}
	unsigned slot = c->next_evict++ % PG_STMT_CACHE;
	if (c->cache[slot].sql) {
		char dealloc[48];
		snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", c->cache[slot].name);
		PQclear(PQexec(c->pg, dealloc));
		free(c->cache[slot].sql);
		c->cache[slot].sql = NULL;
	}
	char name[16];
	snprintf(name, sizeof name, "s%u", c->next_name++);
	PGresult *r = PQprepare(c->pg, name, q.data, np, NULL);
	bytebuf_free(&q);
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		set_err(c, r);
		PQclear(r);
		return NULL;
	}
	PQclear(r);
	c->cache[slot].sql = strdup(sql);
	if (!c->cache[slot].sql) {
		snprintf(c->base.error, sizeof c->base.error, "out of memory");
		return NULL;
	}
	memcpy(c->cache[slot].name, name, sizeof name);
	return c->cache[slot].name;
}

static int64_t pg_exec(store_conn_t *base, const char *sql, const store_param_t *p, int np, store_row_fn fn,
		       void *ud)
{
	pg_conn_t *c = (pg_conn_t *)base;
	if (np > 65535) { /* the protocol's limit */
		snprintf(base->error, sizeof base->error, "internal: more than 65535 parameters");
		return -1;
	}
	const char *stmt = prepared(c, sql, np);
	if (!stmt)
		return -1;
	/* multi-row inserts bind hundreds of values: text forms on the heap */
	const char **values = malloc((size_t)(np ? np : 1) * (sizeof *values + 24));
	if (!values) {
		snprintf(base->error, sizeof base->error, "out of memory");
		return -1;
	}
	char (*ints)[24] = (char (*)[24])(values + np);
	for (int i = 0; i < np; i++) {
		if (p[i].type == STORE_P_INT) {
			snprintf(ints[i], sizeof ints[i], "%" PRId64, p[i].i);
			values[i] = ints[i];
		} else {
			values[i] = p[i].type == STORE_P_TEXT ? p[i].s : NULL;
		}
	}
	PGresult *r = PQexecPrepared(c->pg, stmt, np, values, NULL, NULL, 0);
	free(values);
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		set_err(c, r);
		PQclear(r);
		return -1;
	}
	int64_t n = 0;
	if (s == PGRES_TUPLES_OK) {
		int rows = PQntuples(r), ncols = PQnfields(r);
		const char *cols[32];
		if (ncols > 32)
			ncols = 32;
		for (int i = 0; i < rows && fn; i++) {
			for (int j = 0; j < ncols; j++)
				cols[j] = PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
			if (!fn(ud, ncols, cols))
				break;
		}
		n = rows;
	}
	const char *tuples = PQcmdTuples(r);
	if (tuples && *tuples)
		n = strtoll(tuples, NULL, 10);
	PQclear(r);
	return n;
}

static bool pg_exec_script(store_conn_t *base, const char *sql)
{
	pg_conn_t *c = (pg_conn_t *)base;
	PGresult *r = PQexec(c->pg, sql);
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
	if (!ok)
		set_err(c, r);
	PQclear(r);
	return ok;
}

static bool pg_begin(store_conn_t *base, bool write)
{
	(void)write;
	return pg_exec_script(base, "BEGIN");
}

static bool pg_commit(store_conn_t *base)
{
	return pg_exec_script(base, "COMMIT");
}

static void pg_rollback(store_conn_t *base)
{
	pg_conn_t *c = (pg_conn_t *)base;
	PQclear(PQexec(c->pg, "ROLLBACK"));
}

static bool pg_migrate_lock(store_conn_t *base)
{
	/* Consoles starting together against one database: one migrates,
	 * the others wait and then find nothing to do. */
	return pg_exec_script(base, "SELECT pg_advisory_xact_lock(7316540274617071)");
}

const store_driver_t store_pg_driver = {
	.name = "postgresql",
	.seq_ddl = "BIGSERIAL PRIMARY KEY",
	.connect = pg_connect,
	.disconnect = pg_disconnect,
	.exec = pg_exec,
	.exec_script = pg_exec_script,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.migrate_lock = pg_migrate_lock,
};
