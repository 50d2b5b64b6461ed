/*
 * store: the operations and the schema, once for both drivers (store.h).
 *
 * Queries with optional filters are assembled from fixed SQL fragments, one
 * per filter that is present, each with its own `?`; the values travel only
 * as parameters. Pagination is keyset on (ts_ms, seq), newest first: a page
 * costs an index range scan whatever page it is, and rows inserted meanwhile
 * never shift a page.
 */
#include "store.h"

#include "console.h"
#include "core/bytebuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schema ---- */

/* Migration N brings the schema from version N-1 to N. Never edit one that
 * has shipped: add the next. "%SEQ%" is the driver's row-key type. */
static const char *const migrations[] = {
	"CREATE TABLE agents ("
	" agent_id TEXT PRIMARY KEY, hostname TEXT NOT NULL, version TEXT NOT NULL,"
	" token_hash TEXT NOT NULL UNIQUE, enrolled_at TEXT NOT NULL, last_seen TEXT, status TEXT);"
	"CREATE TABLE admin_tokens (token_hash TEXT PRIMARY KEY, created_at TEXT NOT NULL);"
	"CREATE TABLE events ("
	" seq %SEQ%, agent_id TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,"
	" ts_ms BIGINT NOT NULL, verdict TEXT, host TEXT, app_path TEXT, app_signing_id TEXT,"
	" received_at TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (id, agent_id));"
	"CREATE INDEX events_time ON events (ts_ms, seq);"
	"CREATE INDEX events_agent ON events (agent_id, ts_ms, seq);"
	"CREATE INDEX events_verdict ON events (verdict, ts_ms, seq);"
	"CREATE INDEX events_host ON events (host, ts_ms, seq);"
	"CREATE INDEX events_app_path ON events (app_path, ts_ms, seq);"
	"CREATE INDEX events_app_signing ON events (app_signing_id, ts_ms, seq);"
	"CREATE INDEX events_kind ON events (kind, ts_ms, seq);"
	/* Rows are written only with their event, in its transaction: a
	 * foreign key and a seq index would cost a lookup and a btree per row
	 * and serve no query (the detector filter and stats use the primary
	 * key). Retention, when it comes, adds the seq index it needs. */
	"CREATE TABLE event_detectors ("
	" seq BIGINT NOT NULL, detector TEXT NOT NULL,"
	" count BIGINT NOT NULL, PRIMARY KEY (detector, seq));",
	/* 2: policy distribution (schemas/console-api.md "Policy distribution").
	 * Bundles are immutable rows: nothing in the console updates
	 * policy_versions. policy_generation is one counter every change of
	 * targeting bumps (rollouts, halts, labels), so a held long-poll can
	 * tell cheaply whether its offer may have changed. next_keys and
	 * retire_keys copy a bundle's key rotation out of its manifest (key
	 * list text; key ids, space-separated), so the keys the console trusts
	 * are a fold over small columns, not a parse of every bundle. The
	 * events gain the
	 * columns a shadow report groups by, filled at ingest. */
	"ALTER TABLE agents ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';"
	"ALTER TABLE agents ADD COLUMN policy_version BIGINT;"
	"ALTER TABLE agents ADD COLUMN policy_source TEXT;"
	"ALTER TABLE agents ADD COLUMN failed_version BIGINT;"
	"ALTER TABLE agents ADD COLUMN policy_error TEXT;"
	"ALTER TABLE agents ADD COLUMN shadow_version BIGINT;"
	"ALTER TABLE agents ADD COLUMN policy_at TEXT;"
	"ALTER TABLE agents ADD COLUMN shadow_evaluated BIGINT;"
	"CREATE TABLE policy_versions ("
	" version BIGINT PRIMARY KEY, sha256 TEXT NOT NULL, created_at TEXT NOT NULL, author TEXT NOT NULL,"
	" message TEXT NOT NULL, key_id TEXT NOT NULL, tests_passed INTEGER NOT NULL,"
	" tests_failed INTEGER NOT NULL, content_of BIGINT, bundle TEXT NOT NULL,"
	" next_keys TEXT, retire_keys TEXT);"
	"CREATE TABLE rollouts ("
	" id %SEQ%, version BIGINT NOT NULL, kind TEXT NOT NULL, labels TEXT NOT NULL,"
	" percent INTEGER NOT NULL, sample_percent INTEGER NOT NULL, state TEXT NOT NULL,"
	" halt_reason TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL);"
	"CREATE INDEX rollouts_state ON rollouts (state, id);"
	"CREATE TABLE audit ("
	" id %SEQ%, ts_ms BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);"
	"CREATE TABLE policy_generation (id INTEGER PRIMARY KEY, gen BIGINT NOT NULL);"
	"INSERT INTO policy_generation (id, gen) VALUES (1, 0);"
	"ALTER TABLE events ADD COLUMN policy_version TEXT;"
	"ALTER TABLE events ADD COLUMN rule TEXT;"
	"ALTER TABLE events ADD COLUMN active_verdict TEXT;"
	"CREATE INDEX events_policy ON events (kind, policy_version, ts_ms, seq);",
	/* 3: the web UI (schemas/console-api.md "Web UI API"). Tokens made
	 * before roles existed were all-powerful and stay admin. Sessions keep
	 * only the SHA-256 of the cookie value. An incident is made at ingest
	 * from a block or redact, in the event's transaction (event_seq is
	 * unique: an event is never two incidents); its detectors are a
	 * ",a,b," list so a filter is one LIKE. events.monitor is filled at
	 * ingest (older rows: NULL, which no monitor filter matches).
	 * event_detectors gains the event's time so a detector filter walks
	 * (detector, ts_ms, seq) newest first instead of probing every event. */
	"ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';"
	"ALTER TABLE admin_tokens ADD COLUMN name TEXT;"
	"ALTER TABLE admin_tokens ADD COLUMN revoked_at TEXT;"
	"CREATE TABLE sessions ("
	" id_hash TEXT PRIMARY KEY, token_hash TEXT NOT NULL, csrf TEXT NOT NULL,"
	" created_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL);"
	"CREATE INDEX sessions_token ON sessions (token_hash);"
	"ALTER TABLE events ADD COLUMN monitor INTEGER;"
	"CREATE INDEX events_policy_version ON events (policy_version, ts_ms, seq);"
	"ALTER TABLE event_detectors ADD COLUMN ts_ms BIGINT;"
	"UPDATE event_detectors SET ts_ms = (SELECT e.ts_ms FROM events e WHERE e.seq = event_detectors.seq);"
	"CREATE INDEX event_detectors_time ON event_detectors (detector, ts_ms, seq);"
	"CREATE TABLE incidents ("
	" id %SEQ%, event_seq BIGINT NOT NULL UNIQUE, event_id TEXT NOT NULL, agent_id TEXT NOT NULL,"
	" ts_ms BIGINT NOT NULL, verdict TEXT NOT NULL, host TEXT, app TEXT, rule TEXT, detectors TEXT NOT NULL,"
	" status TEXT NOT NULL, assignee TEXT, updated_ms BIGINT NOT NULL, updated_by TEXT);"
	"CREATE INDEX incidents_time ON incidents (ts_ms, id);"
	"CREATE INDEX incidents_status ON incidents (status, ts_ms, id);"
	"CREATE TABLE incident_notes ("
	" id %SEQ%, incident_id BIGINT NOT NULL, ts_ms BIGINT NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL);"
	"CREATE INDEX incident_notes_incident ON incident_notes (incident_id, id);"
	"CREATE TABLE agent_status_history (agent_id TEXT NOT NULL, ts_ms BIGINT NOT NULL, status TEXT NOT NULL);"
	"CREATE INDEX agent_status_history_agent ON agent_status_history (agent_id, ts_ms);",
	/* 4: hourly counts of verdict events for the dashboard (rollup.c),
	 * filled from the events already stored. */
	"CREATE INDEX events_monitor ON events (ts_ms, seq) WHERE monitor = 1;"
	"CREATE TABLE event_rollup ("
	" dim TEXT NOT NULL, hour_ms BIGINT NOT NULL, k TEXT NOT NULL, shard INTEGER NOT NULL, n BIGINT NOT NULL,"
	" PRIMARY KEY (dim, hour_ms, k, shard));"
	"INSERT INTO event_rollup (dim, hour_ms, k, shard, n)"
	" SELECT 'v', (ts_ms / 3600000) * 3600000 AS h, verdict, 0, count(*) FROM events"
	" WHERE kind = 'verdict' AND verdict IS NOT NULL GROUP BY h, verdict;"
	"INSERT INTO event_rollup (dim, hour_ms, k, shard, n)"
	" SELECT 'host', (ts_ms / 3600000) * 3600000 AS h, host, 0, count(*) FROM events"
	" WHERE kind = 'verdict' AND host IS NOT NULL GROUP BY h, host;"
	"INSERT INTO event_rollup (dim, hour_ms, k, shard, n)"
	" SELECT 'app', (ts_ms / 3600000) * 3600000 AS h, COALESCE(app_path, app_signing_id) AS a, 0, count(*)"
	" FROM events WHERE kind = 'verdict' AND COALESCE(app_path, app_signing_id) IS NOT NULL GROUP BY h, a;"
	"INSERT INTO event_rollup (dim, hour_ms, k, shard, n)"
	" SELECT 'agent', (ts_ms / 3600000) * 3600000 AS h, agent_id, 0, count(*) FROM events"
	" WHERE kind = 'verdict' GROUP BY h, agent_id;"
	"INSERT INTO event_rollup (dim, hour_ms, k, shard, n)"
	" SELECT 'det', (e.ts_ms / 3600000) * 3600000 AS h, d.detector, 0, count(*) FROM event_detectors d"
	" JOIN events e ON e.seq = d.seq WHERE e.kind = 'verdict' GROUP BY h, d.detector;"
	"INSERT INTO event_rollup (dim, hour_ms, k, shard, n)"
	" SELECT dim || '.d', (hour_ms / 86400000) * 86400000 AS d, k, 0, sum(n) FROM event_rollup"
	" WHERE dim IN ('host', 'app', 'agent', 'det') GROUP BY dim, d, k;",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

bool store_row_int(void *ud, int n, const char *const *cols)
{
	if (n > 0 && cols[0])
		*(int64_t *)ud = strtoll(cols[0], NULL, 10);
	return false;
}

static bool migrate(store_conn_t *c, char *err, size_t errlen)
{
	const store_driver_t *d = c->st->drv;
	if (!d->begin(c, true))
		goto fail;
	if (d->migrate_lock && !d->migrate_lock(c))
		goto fail_tx;
	if (!d->exec_script(c, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
		goto fail_tx;
	int64_t have = 0;
	if (d->exec(c, "SELECT max(version) FROM schema_version", NULL, 0, store_row_int, &have) < 0)
		goto fail_tx;
	if (have > N_MIGRATIONS) {
		d->rollback(c);
		snprintf(err, errlen, "the database has schema version %lld, newer than this console knows (%d): "
			 "run a newer dlpgate-console", (long long)have, N_MIGRATIONS);
		return false;
	}
	for (int v = (int)have + 1; v <= N_MIGRATIONS; v++) {
		bytebuf_t sql;
		bytebuf_init(&sql, 0);
		for (const char *p = migrations[v - 1]; *p;) {
			const char *q = strstr(p, "%SEQ%");
			if (!q) {
				bytebuf_append_str(&sql, p);
				break;
			}
			bytebuf_append(&sql, p, (size_t)(q - p));
			bytebuf_append_str(&sql, d->seq_ddl);
			p = q + 5;
		}
		bool ok = bytebuf_cstr(&sql) && d->exec_script(c, sql.data);
		bytebuf_free(&sql);
		store_param_t pv = store_int(v);
		if (!ok || d->exec(c, "INSERT INTO schema_version (version) VALUES (?)", &pv, 1, NULL, NULL) < 0)
			goto fail_tx;
	}
	if (!d->commit(c))
		goto fail;
	return true;
fail_tx:
	snprintf(err, errlen, "schema migration failed: %s", c->error);
	d->rollback(c);
	return false;
fail:
	snprintf(err, errlen, "schema migration failed: %s", c->error);
	return false;
}

/* ---- opening and the pool ---- */

bool store_spec_valid(const char *spec)
{
	return (strncmp(spec, "sqlite:", 7) == 0 && spec[7]) || strncmp(spec, "postgresql://", 13) == 0 ||
	       strncmp(spec, "postgres://", 11) == 0;
}

store_t *store_open(const char *spec, const char *default_sqlite, char *err, size_t errlen)
{
	store_t *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->write_lock, NULL);
	const char *target;
	if (!spec) {
		st->drv = &store_sqlite_driver;
		target = default_sqlite;
	} else if (strncmp(spec, "sqlite:", 7) == 0 && spec[7]) {
		st->drv = &store_sqlite_driver;
		target = spec + 7;
	} else if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0) {
		st->drv = &store_pg_driver;
		target = spec;
	} else {
		snprintf(err, errlen, "--db: unknown database \"%.64s\": use sqlite:PATH or postgresql://USER@HOST:PORT/DB",
			 spec);
		store_close(st);
		return NULL;
	}
	if (!str_copy(st->target, sizeof st->target, target)) {
		snprintf(err, errlen, "--db: too long");
		store_close(st);
		return NULL;
	}
	store_conn_t *c = st->drv->connect(st, err, errlen);
	if (!c) {
		store_close(st);
		return NULL;
	}
	c->st = st;
	if (!migrate(c, err, errlen)) {
		st->drv->disconnect(c);
		store_close(st);
		return NULL;
	}
	store_release(c, false);
	return st;
}

store_t *store_open_state(const char *state_dir, const char *db, char *err, size_t errlen)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/console.db", state_dir) >= (int)sizeof path) {
		snprintf(err, errlen, "--state-dir path too long");
		return NULL;
	}
	return store_open(db, path, err, errlen);
}

void store_close(store_t *st)
{
	if (!st)
		return;
	while (st->idle) {
		store_conn_t *c = st->idle;
		st->idle = c->next_idle;
		st->drv->disconnect(c);
	}
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->write_lock);
	free(st);
}

store_conn_t *store_acquire(store_t *st, char *err, size_t errlen)
{
	pthread_mutex_lock(&st->lock);
	store_conn_t *c = st->idle;
	if (c)
		st->idle = c->next_idle;
	pthread_mutex_unlock(&st->lock);
	if (c)
		return c;
	c = st->drv->connect(st, err, errlen);
	if (c)
		c->st = st;
	return c;
}

void store_release(store_conn_t *c, bool broken)
{
	if (!c)
		return;
	store_t *st = c->st;
	if (broken) {
		st->drv->disconnect(c);
		return;
	}
	c->error[0] = '\0';
	pthread_mutex_lock(&st->lock);
	c->next_idle = st->idle;
	st->idle = c;
	pthread_mutex_unlock(&st->lock);
}

/* ---- tokens and agents ---- */

typedef struct {
	store_role_t *role;
	char *agent_id;
	bool found;
} lookup_t;

static bool row_lookup(void *ud, int n, const char *const *cols)
{
	lookup_t *l = ud;
	if (n < 2 || !cols[0])
		return false;
	l->found = true;
	*l->role = strcmp(cols[0], "agent") == 0 ? STORE_ROLE_AGENT : store_role_parse(cols[0]);
	str_copy(l->agent_id, 64, cols[1] ? cols[1] : "");
	return false;
}

int store_token_lookup(store_conn_t *c, const char *token_hash, store_role_t *role, char agent_id[64])
{
	lookup_t l = {role, agent_id, false};
	*role = STORE_ROLE_NONE;
	agent_id[0] = '\0';
	store_param_t p[2] = {store_text(token_hash), store_text(token_hash)};
	if (c->st->drv->exec(c,
			     "SELECT 'agent', agent_id FROM agents WHERE token_hash = ? "
			     "UNION ALL SELECT role, NULL FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL",
			     p, 2, row_lookup, &l) < 0)
		return -1;
	return l.found && *role != STORE_ROLE_NONE ? 0 : STORE_NOT_FOUND;
}

static const char *const role_names[] = {"", "agent", "viewer", "analyst", "admin"};

store_role_t store_role_parse(const char *s)
{
	for (int r = STORE_ROLE_VIEWER; r <= STORE_ROLE_ADMIN; r++)
		if (s && strcmp(s, role_names[r]) == 0)
			return (store_role_t)r;
	return STORE_ROLE_NONE;
}

const char *store_role_name(store_role_t r)
{
	return (unsigned)r <= STORE_ROLE_ADMIN ? role_names[r] : "";
}

int store_admin_token_add(store_conn_t *c, const char *token_hash, const char *now, store_role_t role,
			  const char *name)
{
	store_param_t p[4] = {store_text(token_hash), store_text(now), store_text(store_role_name(role)),
			      store_text(name)};
	return c->st->drv->exec(c, "INSERT INTO admin_tokens (token_hash, created_at, role, name) VALUES (?, ?, ?, ?)",
				p, 4, NULL, NULL) < 0
		       ? -1
		       : 0;
}

int store_enroll(store_conn_t *c, const char *agent_id, const char *hostname, const char *version,
		 const char *token_hash, const char *now, const char *labels_json)
{
	const store_driver_t *d = c->st->drv;
	if (!d->begin(c, true))
		return -1;
	char *before = NULL;
	store_param_t id = store_text(agent_id);
	store_param_t p[6] = {store_text(agent_id), store_text(hostname),  store_text(version),
			      store_text(token_hash), store_text(now), store_text(labels_json ? labels_json : "{}")};
	/* Re-enrolling keeps the agent's history and replaces its token; labels
	 * only when the agent sent some. */
	bool ok = d->exec(c, "SELECT labels FROM agents WHERE agent_id = ?", &id, 1, store_row_dup, &before) >= 0 &&
		  d->exec(c,
			  labels_json
				  ? "INSERT INTO agents (agent_id, hostname, version, token_hash, enrolled_at, last_seen, labels) "
				    "VALUES (?, ?, ?, ?, ?, NULL, ?) ON CONFLICT (agent_id) DO UPDATE SET "
				    "hostname = excluded.hostname, version = excluded.version, "
				    "token_hash = excluded.token_hash, enrolled_at = excluded.enrolled_at, labels = excluded.labels"
				  : "INSERT INTO agents (agent_id, hostname, version, token_hash, enrolled_at, last_seen) "
				    "VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (agent_id) DO UPDATE SET "
				    "hostname = excluded.hostname, version = excluded.version, "
				    "token_hash = excluded.token_hash, enrolled_at = excluded.enrolled_at",
			  p, labels_json ? 6 : 5, NULL, NULL) >= 0;
	/* A new agent's labels or changed ones may change what targets it. */
	if (ok && labels_json && (!before || strcmp(before, labels_json) != 0))
		ok = store_policy_bump(c);
	free(before);
	if (!ok) {
		d->rollback(c);
		return -1;
	}
	return d->commit(c) ? 0 : -1;
}

int store_agent_status(store_conn_t *c, const char *agent_id, const char *status_json, const char *now)
{
	const store_driver_t *d = c->st->drv;
	if (!d->begin(c, true))
		return -1;
	store_param_t p[3] = {store_text(status_json), store_text(now), store_text(agent_id)};
	int64_t n = d->exec(c, "UPDATE agents SET status = ?, last_seen = ? WHERE agent_id = ?", p, 3, NULL, NULL);
	if (n > 0 && !store_history_add(c, agent_id, status_json))
		n = -1;
	if (n <= 0) {
		d->rollback(c);
		return n < 0 ? -1 : STORE_NOT_FOUND;
	}
	return d->commit(c) ? 0 : -1;
}

/* ---- events ---- */

/*
 * A batch goes in with multi-row statements, a chunk of events per INSERT
 * and one more for their detectors, instead of a statement per row: on
 * PostgreSQL each statement is a round trip, and per-row round trips capped
 * ingest at about 12,000 events/s. Chunks have fixed sizes (64, 16, 4, 1)
 * so a connection prepares at most four texts of each statement. RETURNING
 * names the rows that were new; the others were duplicates.
 */
#define EVENT_COLS 14
static const size_t chunk_sizes[] = {64, 16, 4, 1};

static void values_sql(bytebuf_t *b, const char *head, size_t rows, int cols, const char *tail)
{
	bytebuf_append_str(b, head);
	for (size_t r = 0; r < rows; r++) {
		bytebuf_append_str(b, r ? ", (" : " VALUES (");
		for (int k = 0; k < cols; k++)
			bytebuf_append_str(b, k ? ", ?" : "?");
		bytebuf_append_str(b, ")");
	}
	bytebuf_append_str(b, tail);
	bytebuf_append(b, "", 1);
}

typedef struct {
	const store_event_t *ev;
	size_t n;
	int64_t *seq;       /* per event in the chunk; -1: a duplicate */
} returned_t;

/* A row of RETURNING seq, id: the first event of the chunk with that id
 * and no seq yet (an id twice in one batch is stored once). */
static bool row_returned(void *ud, int n, const char *const *cols)
{
	returned_t *r = ud;
	if (n < 2 || !cols[0] || !cols[1])
		return true;
	for (size_t i = 0; i < r->n; i++)
		if (r->seq[i] < 0 && !strcmp(r->ev[i].id, cols[1])) {
			r->seq[i] = strtoll(cols[0], NULL, 10);
			break;
		}
	return true;
}

/* rows rows of cols parameters each, in chunks of the fixed sizes. */
bool store_insert_rows(store_conn_t *c, const char *head, int cols, const store_param_t *p, size_t rows,
			const char *tail, store_row_fn fn, void *ud)
{
	bool ok = true;
	for (size_t done = 0, ci = 0; ok && done < rows; done += chunk_sizes[ci]) {
		while (rows - done < chunk_sizes[ci])
			ci++;
		bytebuf_t sql;
		bytebuf_init(&sql, 0);
		values_sql(&sql, head, chunk_sizes[ci], cols, tail);
		ok = sql.data && c->st->drv->exec(c, sql.data, &p[done * (size_t)cols], (int)(chunk_sizes[ci] * cols),
						  fn, ud) >= 0;
		bytebuf_free(&sql);
	}
	return ok;
}

/* Up to 64 events, then the detectors of those that were new. */
static bool insert_chunk(store_conn_t *c, const char *agent_id, const store_event_t *ev, size_t n, const char *now,
			 size_t *accepted, rollup_acc_t *roll)
{
	store_param_t p[64 * EVENT_COLS] = {{0}}; /* filled below; gcc -O1 cannot tell */
	int64_t seq[64];
	size_t n_det = 0;
	for (size_t i = 0; i < n; i++) {
		const store_event_t *e = &ev[i];
		store_param_t row[EVENT_COLS] = {store_text(agent_id), store_text(e->id),     store_text(e->kind),
						 store_int(e->ts_ms),  store_text(e->verdict), store_text(e->host),
						 store_text(e->app_path), store_text(e->app_signing_id), store_text(now),
						 store_text(e->json), store_text(e->policy_version), store_text(e->rule),
						 store_text(e->active_verdict),
						 e->monitor < 0 ? store_text(NULL) : store_int(e->monitor)};
		memcpy(&p[i * EVENT_COLS], row, sizeof row);
		seq[i] = -1;
		n_det += e->n_detectors;
	}
	returned_t r = {ev, n, seq};
	if (!store_insert_rows(c,
			 "INSERT INTO events (agent_id, id, kind, ts_ms, verdict, host, app_path, app_signing_id, "
			 "received_at, body, policy_version, rule, active_verdict, monitor)",
			 EVENT_COLS, p, n, " ON CONFLICT (agent_id, id) DO NOTHING RETURNING seq, id", row_returned, &r))
		return false;
	store_param_t *dp = n_det ? malloc(n_det * 4 * sizeof *dp) : NULL;
	if (n_det && !dp) {
		snprintf(c->error, sizeof c->error, "out of memory");
		return false;
	}
	size_t rows = 0, n_inc = 0;
	for (size_t i = 0; i < n; i++) {
		if (seq[i] < 0)
			continue;
		(*accepted)++;
		n_inc += store_event_is_incident(&ev[i]);
		if (!rollup_add_event(roll, &ev[i], agent_id)) {
			free(dp);
			snprintf(c->error, sizeof c->error, "out of memory");
			return false;
		}
		for (size_t k = 0; k < ev[i].n_detectors; k++)
			if (ev[i].det_counts[k] > 0) {
				dp[rows * 4] = store_int(seq[i]);
				dp[rows * 4 + 1] = store_text(ev[i].det_names[k]);
				dp[rows * 4 + 2] = store_int(ev[i].det_counts[k]);
				dp[rows * 4 + 3] = store_int(ev[i].ts_ms);
				rows++;
			}
	}
	bool ok = store_insert_rows(c, "INSERT INTO event_detectors (seq, detector, count, ts_ms)", 4, dp, rows, "", NULL,
			      NULL);
	free(dp);
	if (ok && n_inc)
		ok = store_incidents_insert(c, agent_id, ev, seq, n, n_inc);
	return ok;
}

int store_insert_events(store_conn_t *c, const char *agent_id, const store_event_t *ev, size_t n, const char *now,
			size_t *accepted, size_t *duplicates)
{
	const store_driver_t *d = c->st->drv;
	*accepted = *duplicates = 0;
	if (!d->begin(c, true))
		return -1;
	rollup_acc_t roll = {0};
	for (size_t done = 0; done < n; done += 64)
		if (!insert_chunk(c, agent_id, &ev[done], n - done < 64 ? n - done : 64, now, accepted, &roll))
			goto fail;
	/* last, so the rollup rows other batches also touch stay locked only
	 * until the commit just after */
	bool rolled = rollup_flush(c, &roll);
	rollup_free(&roll);
	if (!rolled)
		goto fail;
	*duplicates = n - *accepted;
	store_param_t lp[2] = {store_text(now), store_text(agent_id)};
	if (d->exec(c, "UPDATE agents SET last_seen = ? WHERE agent_id = ?", lp, 2, NULL, NULL) < 0)
		goto fail;
	if (!d->commit(c))
		return -1;
	return 0;
fail:
	rollup_free(&roll);
	d->rollback(c);
	*accepted = *duplicates = 0;
	return -1;
}

/* WHERE clause for the filters: fixed fragments, values as parameters. */
#define MAX_FILTER_PARAMS 16
typedef struct {
	bytebuf_t sql;
	store_param_t p[MAX_FILTER_PARAMS];
	int np;
	bool where;
} qb_t;

static void qb_and(qb_t *q, const char *frag, const store_param_t *p, int np)
{
	bytebuf_append_str(&q->sql, q->where ? " AND " : " WHERE ");
	q->where = true;
	bytebuf_append_str(&q->sql, frag);
	for (int i = 0; i < np && q->np < MAX_FILTER_PARAMS; i++)
		q->p[q->np++] = p[i];
}

/* by_detector: the query runs FROM event_detectors d JOIN events e, driven
 * by d's (detector, ts_ms, seq) index, so a rare detector costs its own
 * rows, not a walk over every event. */
static void qb_filters(qb_t *q, const store_filter_t *f, bool with_cursor, bool by_detector)
{
	const char *ts = by_detector ? "d.ts_ms" : "e.ts_ms";
	char frag[96];
	if (f->verdict)
		qb_and(q, "e.verdict = ?", (store_param_t[]){store_text(f->verdict)}, 1);
	if (f->kind)
		qb_and(q, "e.kind = ?", (store_param_t[]){store_text(f->kind)}, 1);
	if (f->host)
		qb_and(q, "e.host = ?", (store_param_t[]){store_text(f->host)}, 1);
	if (f->agent)
		qb_and(q, "e.agent_id = ?", (store_param_t[]){store_text(f->agent)}, 1);
	/* a path starts with '/', a signing id never: one index each */
	if (f->app)
		qb_and(q, f->app[0] == '/' ? "e.app_path = ?" : "e.app_signing_id = ?",
		       (store_param_t[]){store_text(f->app)}, 1);
	if (f->policy_version)
		qb_and(q, "e.policy_version = ?", (store_param_t[]){store_text(f->policy_version)}, 1);
	/* literal, so the partial index events_monitor serves monitor=true */
	if (f->monitor)
		qb_and(q, f->monitor == STORE_MONITOR_ONLY ? "e.monitor = 1" : "e.monitor = 0", NULL, 0);
	if (f->detector && by_detector)
		qb_and(q, "d.detector = ?", (store_param_t[]){store_text(f->detector)}, 1);
	else if (f->detector)
		qb_and(q, "EXISTS (SELECT 1 FROM event_detectors d WHERE d.seq = e.seq AND d.detector = ?)",
		       (store_param_t[]){store_text(f->detector)}, 1);
	if (f->has_since) {
		snprintf(frag, sizeof frag, "%s >= ?", ts);
		qb_and(q, frag, (store_param_t[]){store_int(f->since_ms)}, 1);
	}
	if (f->has_until) {
		snprintf(frag, sizeof frag, "%s < ?", ts);
		qb_and(q, frag, (store_param_t[]){store_int(f->until_ms)}, 1);
	}
	if (with_cursor && f->has_cursor) {
		snprintf(frag, sizeof frag, "(%s < ? OR (%s = ? AND %s < ?))", ts, ts, by_detector ? "d.seq" : "e.seq");
		qb_and(q, frag,
		       (store_param_t[]){store_int(f->cursor_ts), store_int(f->cursor_ts), store_int(f->cursor_seq)}, 3);
	}
}

/* SELECT ts, seq, body of the filtered events, newest first, limit rows. */
static void qb_events(qb_t *q, const store_filter_t *f, int64_t limit)
{
	bool by_det = f->detector != NULL;
	bytebuf_append_str(&q->sql, by_det ? "SELECT d.ts_ms, d.seq, e.body FROM event_detectors d "
					     "JOIN events e ON e.seq = d.seq"
					   : "SELECT e.ts_ms, e.seq, e.body FROM events e");
	qb_filters(q, f, true, by_det);
	bytebuf_append_str(&q->sql, by_det ? " ORDER BY d.ts_ms DESC, d.seq DESC LIMIT ?"
					   : " ORDER BY e.ts_ms DESC, e.seq DESC LIMIT ?");
	q->p[q->np++] = store_int(limit);
}

typedef struct {
	json_t *out;
	int limit, n;
	bool more, bad;
	int64_t last_ts, last_seq;
} page_t;

static bool row_event(void *ud, int n, const char *const *cols)
{
	page_t *pg = ud;
	if (n < 3 || !cols[0] || !cols[1] || !cols[2])
		return true;
	if (pg->n == pg->limit) {
		pg->more = true;
		return false;
	}
	json_t *ev = json_loads(cols[2], 0, NULL);
	if (!ev) {
		pg->bad = true;
		return false;
	}
	json_array_append_new(pg->out, ev);
	pg->last_ts = strtoll(cols[0], NULL, 10);
	pg->last_seq = strtoll(cols[1], NULL, 10);
	pg->n++;
	return true;
}

int store_query_events(store_conn_t *c, const store_filter_t *f, json_t *out, bool *more, int64_t *last_ts,
		       int64_t *last_seq)
{
	qb_t q = {.np = 0};
	bytebuf_init(&q.sql, 0);
	qb_events(&q, f, f->limit + 1);
	page_t pg = {.out = out, .limit = f->limit};
	int64_t r = bytebuf_cstr(&q.sql) ? c->st->drv->exec(c, q.sql.data, q.p, q.np, row_event, &pg) : -1;
	bytebuf_free(&q.sql);
	if (r < 0)
		return -1;
	if (pg.bad) {
		snprintf(c->error, sizeof c->error, "a stored event is not valid JSON");
		return -1;
	}
	*more = pg.more;
	*last_ts = pg.last_ts;
	*last_seq = pg.last_seq;
	return 0;
}

bool store_row_dup(void *ud, int n, const char *const *cols)
{
	if (n > 0 && cols[0])
		*(char **)ud = strdup(cols[0]);
	return false;
}

int store_get_event(store_conn_t *c, const char *id, char **json)
{
	*json = NULL;
	store_param_t p = store_text(id);
	if (c->st->drv->exec(c, "SELECT body FROM events WHERE id = ? ORDER BY ts_ms DESC, seq DESC LIMIT 1", &p, 1,
			     store_row_dup, json) < 0)
		return -1;
	return *json ? 0 : STORE_NOT_FOUND;
}

static bool row_agent(void *ud, int n, const char *const *cols)
{
	if (n < 6)
		return false;
	json_t *a = json_object();
	json_object_set_new(a, "agent_id", json_string(cols[0] ? cols[0] : ""));
	json_object_set_new(a, "hostname", json_string(cols[1] ? cols[1] : ""));
	json_object_set_new(a, "version", json_string(cols[2] ? cols[2] : ""));
	json_object_set_new(a, "enrolled_at", cols[3] ? json_string(cols[3]) : json_null());
	json_object_set_new(a, "last_seen", cols[4] ? json_string(cols[4]) : json_null());
	json_t *status = cols[5] ? json_loads(cols[5], 0, NULL) : NULL;
	json_object_set_new(a, "status", status ? status : json_null());
	json_t *labels = n > 6 && cols[6] ? json_loads(cols[6], 0, NULL) : NULL;
	json_object_set_new(a, "labels", labels ? labels : json_object());
	json_array_append_new(ud, a);
	return true;
}

int store_list_agents(store_conn_t *c, json_t *out)
{
	return c->st->drv->exec(c,
				"SELECT agent_id, hostname, version, enrolled_at, last_seen, status, labels FROM agents "
				"ORDER BY agent_id",
				NULL, 0, row_agent, out) < 0
		       ? -1
		       : 0;
}

typedef struct {
	json_t *out;
	bool time;
} stats_t;

static bool row_stat(void *ud, int n, const char *const *cols)
{
	stats_t *s = ud;
	if (n < 2 || !cols[1])
		return true;
	json_t *o = json_object();
	if (s->time) {
		char t[64];
		console_time_format(cols[0] ? strtoll(cols[0], NULL, 10) : 0, t);
		json_object_set_new(o, "key", json_string(t));
	} else {
		json_object_set_new(o, "key", cols[0] ? json_string(cols[0]) : json_null());
	}
	json_object_set_new(o, "count", json_integer(strtoll(cols[1], NULL, 10)));
	json_array_append_new(s->out, o);
	return true;
}

int store_stats(store_conn_t *c, const store_filter_t *f, const char *by, int64_t bucket_ms, json_t *out)
{
	qb_t q = {.np = 0};
	bytebuf_init(&q.sql, 0);
	bool time = strcmp(by, "time") == 0;
	if (time) {
		bytebuf_append_str(&q.sql, "SELECT (e.ts_ms / ?) * ? AS k, count(*) FROM events e");
		q.p[q.np++] = store_int(bucket_ms);
		q.p[q.np++] = store_int(bucket_ms);
	} else if (strcmp(by, "detector") == 0) {
		bytebuf_append_str(&q.sql, "SELECT d.detector AS k, count(*) FROM events e "
				       "JOIN event_detectors d ON d.seq = e.seq");
	} else if (strcmp(by, "verdict") == 0) {
		bytebuf_append_str(&q.sql, "SELECT e.verdict AS k, count(*) FROM events e");
	} else if (strcmp(by, "host") == 0) {
		bytebuf_append_str(&q.sql, "SELECT e.host AS k, count(*) FROM events e");
	} else {
		bytebuf_append_str(&q.sql, "SELECT COALESCE(e.app_path, e.app_signing_id) AS k, count(*) FROM events e");
	}
	qb_filters(&q, f, false, false);
	bytebuf_append_str(&q.sql, time ? " GROUP BY k ORDER BY k" : " GROUP BY k ORDER BY count(*) DESC, k");
	stats_t s = {out, time};
	int64_t r = bytebuf_cstr(&q.sql) ? c->st->drv->exec(c, q.sql.data, q.p, q.np, row_stat, &s) : -1;
	bytebuf_free(&q.sql);
	return r < 0 ? -1 : 0;
}

int store_count_events(store_conn_t *c, int64_t *n)
{
	*n = 0;
	return c->st->drv->exec(c, "SELECT count(*) FROM events", NULL, 0, store_row_int, n) < 0 ? -1 : 0;
}

typedef struct {
	bool (*fn)(void *ud, const char *json);
	void *ud;
	int limit, n;
	bool more, stopped;
} each_t;

static bool row_each(void *ud, int n, const char *const *cols)
{
	each_t *e = ud;
	if (n < 3 || !cols[2])
		return true;
	if (e->n == e->limit) {
		e->more = true;
		return false;
	}
	e->n++;
	if (!e->fn(e->ud, cols[2])) {
		e->stopped = true;
		return false;
	}
	return true;
}

int store_events_each(store_conn_t *c, const store_filter_t *f, int limit, bool (*fn)(void *ud, const char *json),
		      void *ud, bool *more)
{
	qb_t q = {.np = 0};
	bytebuf_init(&q.sql, 0);
	qb_events(&q, f, (int64_t)limit + 1);
	each_t e = {fn, ud, limit, 0, false, false};
	int64_t r = bytebuf_cstr(&q.sql) ? c->st->drv->exec(c, q.sql.data, q.p, q.np, row_each, &e) : -1;
	bytebuf_free(&q.sql);
	*more = e.more || e.stopped;
	return r < 0 ? -1 : 0;
}
