/*
 * store: everything the console keeps (agents, tokens, events, status)
 * behind one interface, with SQLite (default, embedded) and PostgreSQL
 * (several consoles, one database) as drivers.
 *
 * Two layers, so the SQL that matters is written once:
 *   - store_driver_t, the vtable a driver implements: connect, run one
 *     statement with bound parameters (rows come back as text), and
 *     transactions. SQL reaches a driver only as text with `?` placeholders
 *     and a separate parameter array; values are never spliced into SQL
 *     (SQLite: sqlite3_prepare_v2 + bind, statements cached per
 *     connection; PostgreSQL: PQexecParams with `$n`, rewritten from `?`).
 *   - store.c: the operations the API needs (enroll, ingest a batch, query
 *     with filters and keyset pagination, stats), and the versioned schema
 *     (schema_version table, migrations applied at start).
 *
 * Threads. The event loop never calls a store function: the API runs them
 * on the libuv thread pool (uv_queue_work). A store_conn_t is used by one
 * thread at a time; store_acquire() hands a thread an idle connection from
 * the pool or opens one, so there are at most as many connections as pool
 * threads, and each thread effectively has its own. PostgreSQL serialises
 * concurrent writers itself (row locks, ON CONFLICT). SQLite runs in WAL
 * mode (readers never wait for the writer) and the driver serialises write
 * transactions with a process-wide mutex taken at BEGIN IMMEDIATE, with
 * busy_timeout as the backstop against other processes (the CLI).
 */
#ifndef DLPGATE_CONSOLE_STORE_H
#define DLPGATE_CONSOLE_STORE_H

#include "rollout.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { STORE_P_TEXT, STORE_P_INT, STORE_P_NULL } store_ptype_t;

typedef struct {
	store_ptype_t type;
	const char *s;   /* TEXT: NUL-terminated */
	int64_t i;       /* INT */
} store_param_t;

static inline store_param_t store_text(const char *s)
{
	return (store_param_t){s ? STORE_P_TEXT : STORE_P_NULL, s, 0};
}
static inline store_param_t store_int(int64_t i) { return (store_param_t){STORE_P_INT, NULL, i}; }

/* Called once per result row; cols[i] is NULL for SQL NULL. Return false
 * to stop early. */
typedef bool (*store_row_fn)(void *ud, int ncols, const char *const *cols);

typedef struct store_conn store_conn_t;
typedef struct store store_t;

typedef struct {
	const char *name;      /* "sqlite", "postgresql" */
	const char *seq_ddl;   /* the events row key column type */
	store_conn_t *(*connect)(store_t *st, char *err, size_t errlen);
	void (*disconnect)(store_conn_t *c);
	/* One statement. Returns the number of rows affected (DML) or >= 0,
	 * -1 on error with the message in store_conn_error(). */
	int64_t (*exec)(store_conn_t *c, const char *sql, const store_param_t *p, int np, store_row_fn fn,
			void *ud);
	/* Statement without parameters (DDL, several statements for SQLite). */
	bool (*exec_script)(store_conn_t *c, const char *sql);
	bool (*begin)(store_conn_t *c, bool write);
	bool (*commit)(store_conn_t *c);
	void (*rollback)(store_conn_t *c);
	/* Serialises schema migrations across processes (PostgreSQL: an
	 * advisory lock inside the transaction); may be NULL. */
	bool (*migrate_lock)(store_conn_t *c);
} store_driver_t;

/* The part of every connection the common layer uses. */
struct store_conn {
	store_t *st;
	store_conn_t *next_idle;
	char error[512];
};

struct store {
	const store_driver_t *drv;
	char target[4096];        /* file path (SQLite) or conninfo URL */
	pthread_mutex_t lock;     /* the idle list */
	store_conn_t *idle;
	pthread_mutex_t write_lock; /* SQLite: one writer at a time */
};

extern const store_driver_t store_sqlite_driver;
extern const store_driver_t store_pg_driver;

static inline const char *store_conn_error(const store_conn_t *c) { return c->error; }

/* "sqlite:PATH", "postgresql://..." / "postgres://..."; default_sqlite is
 * used when spec is NULL. Opens one connection and migrates the schema. */
store_t *store_open(const char *spec, const char *default_sqlite, char *err, size_t errlen);
/* The console's store: db, or sqlite:STATE_DIR/console.db. */
store_t *store_open_state(const char *state_dir, const char *db, char *err, size_t errlen);
void store_close(store_t *st);
/* Is this a --db value store_open understands (syntax only)? */
bool store_spec_valid(const char *spec);
/* A connection for this thread (from the pool, or new); NULL with err. */
store_conn_t *store_acquire(store_t *st, char *err, size_t errlen);
/* Back to the pool; broken=true closes it instead (after an error that
 * may have left it unusable). */
void store_release(store_conn_t *c, bool broken);

/* ---- operations (store.c). 0 = done, STORE_NOT_FOUND, -1 = error (message
 * in store_conn_error). ---- */
#define STORE_NOT_FOUND 1
#define STORE_CONFLICT 2

/* Row callbacks the modules share: the first column as an int64_t
 * (*(int64_t *)ud), or strdup'ed into *(char **)ud. */
bool store_row_int(void *ud, int n, const char *const *cols);
bool store_row_dup(void *ud, int n, const char *const *cols);

/* The people's roles are ordered: each may what the one before may, and
 * more (schemas/console-api.md "Roles"). */
typedef enum {
	STORE_ROLE_NONE = 0,
	STORE_ROLE_AGENT,
	STORE_ROLE_VIEWER,
	STORE_ROLE_ANALYST,
	STORE_ROLE_ADMIN
} store_role_t;

/* "viewer" -> STORE_ROLE_VIEWER...; STORE_ROLE_NONE for anything else. */
store_role_t store_role_parse(const char *s);
const char *store_role_name(store_role_t r);

/* Agent or admin token; a revoked admin token is STORE_NOT_FOUND. */
int store_token_lookup(store_conn_t *c, const char *token_hash, store_role_t *role, char agent_id[64]);
/* name may be NULL. */
int store_admin_token_add(store_conn_t *c, const char *token_hash, const char *now, store_role_t role,
			  const char *name);
/* labels_json: the agent's labels as it sent them (NULL keeps the stored
 * ones); a change bumps the policy generation. */
int store_enroll(store_conn_t *c, const char *agent_id, const char *hostname, const char *version,
		 const char *token_hash, const char *now, const char *labels_json);
int store_agent_status(store_conn_t *c, const char *agent_id, const char *status_json, const char *now);

typedef struct {
	const char *id, *kind, *verdict, *host, *app_path, *app_signing_id;
	int64_t ts_ms;
	const char *json;        /* the event as sent (one NDJSON line) */
	const char *policy_version, *rule; /* NULL when the event has none */
	const char *active_verdict;        /* shadow events: what the active policy decided */
	int monitor;             /* verdict events: 1 reported, not enforced; 0 enforced; -1 none */
	size_t n_detectors;
	const char **det_names;
	int64_t *det_counts;
} store_event_t;

/* One transaction: all or nothing. Duplicates ((agent_id, id) already
 * stored) are counted, not stored. */
int store_insert_events(store_conn_t *c, const char *agent_id, const store_event_t *ev, size_t n, const char *now,
			size_t *accepted, size_t *duplicates);

enum { STORE_ENFORCED = 1, STORE_MONITOR_ONLY = 2 };
typedef struct {
	const char *verdict, *detector, *host, *app, *agent, *kind, *policy_version;
	int monitor;             /* 0: either; STORE_ENFORCED or STORE_MONITOR_ONLY */
	bool has_since, has_until, has_cursor;
	int64_t since_ms, until_ms;
	int64_t cursor_ts, cursor_seq;
	int limit;
} store_filter_t;

/* Appends the events (parsed JSON) to out, newest first; *more tells
 * whether another page exists; last_ts and last_seq key the last one. */
int store_query_events(store_conn_t *c, const store_filter_t *f, json_t *out, bool *more, int64_t *last_ts,
		       int64_t *last_seq);
/* The newest event with this id; *json is malloc'ed. */
int store_get_event(store_conn_t *c, const char *id, char **json);
int store_list_agents(store_conn_t *c, json_t *out);
/* by: verdict|detector|app|host|time; bucket_ms for time. Appends
 * {"key","count"} objects to out. */
int store_stats(store_conn_t *c, const store_filter_t *f, const char *by, int64_t bucket_ms, json_t *out);
int store_count_events(store_conn_t *c, int64_t *n);

/* ---- policy distribution (policy_store.c) ----
 *
 * Tables of migration 2: policy_versions (immutable signed bundles),
 * rollouts, audit, policy_generation, and the agents' policy columns.
 * Every function that changes what targets an agent (a rollout added,
 * superseded or halted, labels changed) bumps the generation in the same
 * transaction and, on PostgreSQL, runs pg_notify('dlpgate_policy', '')
 * there too: other consoles LISTEN and wake their held polls on commit.
 * Admin changes take the audit entry to write in their transaction, so
 * there is no change without its audit line. */

#define STORE_POLICY_CHANNEL "dlpgate_policy"
/* Lists of versions and rollouts answer at most this many, newest first. */
#define STORE_MAX_LISTED 1000
/* Running rollouts at once (every held poll is matched against them all). */
#define STORE_MAX_RUNNING_ROLLOUTS 256

typedef struct {
	const char *actor;   /* "3f1c0b9a2d4e" (admin token) | "cli:USER" | "console" */
	const char *action;  /* "policy.push", "rollout.activate", ... */
	const char *detail;  /* JSON object text */
} store_audit_t;

typedef struct {
	int64_t version;
	char sha256[65];
	char created_at[64];
	char author[80];
	char message[512];
	char key_id[24];
	int64_t tests_passed, tests_failed;
	int64_t content_of;     /* 0: its own content; else the version it copies (rollback) */
	const char *next_keys;  /* insert only: the keys it introduces (key list text), NULL: none */
	const char *retire_keys; /* insert only: key ids it withdraws, space-separated, NULL: none */
} store_policy_t;

/* The highest stored version (0: none). */
int store_policy_max_version(store_conn_t *c, int64_t *max);
/* Stores a version and its audit entry. STORE_CONFLICT when the version
 * exists (nothing is ever replaced). */
int store_policy_insert(store_conn_t *c, const store_policy_t *p, const char *doc, const store_audit_t *a);
/* Rows newest first as JSON objects (console-api.md GET /api/v1/policies),
 * at most STORE_MAX_LISTED. */
int store_policy_list(store_conn_t *c, json_t *out);
int store_policy_get(store_conn_t *c, int64_t version, store_policy_t *p);
/* The key rotations of the stored versions, oldest first: fn(ud,
 * next_keys, retire_keys) for each version that has one (either may be NULL). */
int store_policy_key_changes(store_conn_t *c, void (*fn)(void *ud, const char *next, const char *retire), void *ud);
/* The signed document as stored (*doc malloc'ed, NUL-terminated). */
int store_policy_bundle(store_conn_t *c, int64_t version, char **doc, size_t *len);
json_t *store_policy_json(const store_policy_t *p);

/* Every running rollout, labels parsed (for rollout_offer). */
int store_rollouts_running(store_conn_t *c, rollout_t **out, size_t *n);
void store_rollouts_free(rollout_t *rs, size_t n);
/* Rollouts, newest first (at most STORE_MAX_LISTED), as console-api.md GET
 * /api/v1/rollouts shows them; version > 0 keeps that version's only. */
int store_rollouts_list(store_conn_t *c, int64_t version, json_t *out);
/* A new running rollout (r->id is ignored; *id gets the new one). One with
 * no labels and percent 100 supersedes every older running rollout of its
 * kind. Bumps the generation; writes a. */
int store_rollout_add(store_conn_t *c, const rollout_t *r, const char *now, const char *created_by,
		      const store_audit_t *a, int64_t *id);
/* The active rollouts that covered the whole fleet (no labels, 100%), in
 * any state (a halted one was still what the fleet was told to run),
 * newest first: their versions, at most max. */
int store_rollouts_fleet_history(store_conn_t *c, int64_t *versions, size_t max, size_t *n);
/* Running -> halted with reason (STORE_NOT_FOUND if it was not running). */
int store_rollout_halt(store_conn_t *c, int64_t id, const char *reason, const store_audit_t *a);

/* A cheap counter that changes whenever what targets an agent may have. */
int store_policy_generation(store_conn_t *c, int64_t *gen);
/* Inside the caller's write transaction: generation + 1 and, on
 * PostgreSQL, NOTIFY dlpgate_policy (delivered at commit). */
bool store_policy_bump(store_conn_t *c);

/* The agent's labels (an object; {} when none). STORE_NOT_FOUND if unknown. */
int store_agent_labels(store_conn_t *c, const char *agent_id, json_t **labels);
/* Replaces them (labels_json is a valid labels object); bumps; writes a. */
int store_agent_set_labels(store_conn_t *c, const char *agent_id, const char *labels_json, const store_audit_t *a);

/* The `policy` object of an agent's status post, as columns (0 / NULL for
 * absent). *prev_failed gets the failed_version stored before. */
typedef struct {
	int64_t version, failed_version, shadow_version, shadow_evaluated;
	const char *source, *activated_at, *last_error;
} store_agent_policy_t;
int store_agent_policy_status(store_conn_t *c, const char *agent_id, const store_agent_policy_t *p,
			      int64_t *prev_failed);

/* What the policy views need of every agent. */
typedef struct {
	const char *agent_id;
	json_t *labels;
	int64_t policy_version, failed_version, shadow_version, shadow_evaluated;
	const char *policy_error;
	const char *last_seen;  /* NULL: never */
	bool reported;          /* has it ever posted a policy status */
} store_agent_row_t;
typedef bool (*store_agent_fn)(void *ud, const store_agent_row_t *a);
int store_agents_each(store_conn_t *c, store_agent_fn fn, void *ud);

/* Shadow events of version (policy_version "v<N>") grouped into
 * the console-api.md shadow report's changed/transitions/by_* members. */
int store_shadow_report(store_conn_t *c, int64_t version, const store_filter_t *f, json_t *report);

int store_audit_add(store_conn_t *c, const store_audit_t *a);
/* Newest first; f: since/until/cursor (cursor_seq is the id)/limit. */
int store_audit_list(store_conn_t *c, const store_filter_t *f, json_t *out, bool *more, int64_t *last_id);

#include "store_ui.h"

#endif
