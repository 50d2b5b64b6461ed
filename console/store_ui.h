/*
 * store_ui: what the web UI's API keeps and asks (schemas/console-api.md
 * "Web UI API"): admin tokens with roles, browser sessions, incidents,
 * agent status history, and the dashboard's aggregates. Included by
 * store.h; the same conventions (0, STORE_NOT_FOUND, -1 with the message
 * in store_conn_error).
 */
#ifndef DLPGATE_CONSOLE_STORE_UI_H
#define DLPGATE_CONSOLE_STORE_UI_H

/* ---- tokens ---- */

/* {"token_id", "role", "name", "created_at", "revoked_at"} objects,
 * oldest first. */
int store_tokens_list(store_conn_t *c, json_t *out);
/* By the id (first 12 hex of the hash): revoked now, with its sessions;
 * writes a (NULL: no audit). STORE_NOT_FOUND if no live token has it. */
int store_token_revoke(store_conn_t *c, const char *token_id, const char *now, const store_audit_t *a);
/* A token and its audit entry in one transaction. */
int store_admin_token_add_audited(store_conn_t *c, const char *token_hash, const char *now, store_role_t role,
				  const char *name, const store_audit_t *a);

/* ---- sessions ---- */

typedef struct {
	char token_hash[65];
	char csrf[65];
	store_role_t role;
	int64_t created_ms, expires_ms;
} store_session_t;

/* id_hash: SHA-256 hex of the cookie value. */
int store_session_create(store_conn_t *c, const char *id_hash, const char *token_hash, const char *csrf,
			 int64_t now_ms, int64_t expires_ms);
/* A live session (not past its absolute expiry, used within idle_ms, its
 * token not revoked); refreshes its last use (at most once a minute).
 * STORE_NOT_FOUND otherwise (an expired one is deleted). */
int store_session_lookup(store_conn_t *c, const char *id_hash, int64_t now_ms, int64_t idle_ms, store_session_t *s);
int store_session_delete(store_conn_t *c, const char *id_hash);

/* ---- incidents ---- */

typedef struct {
	const char *status, *assignee, *detector, *host;
	bool has_since, has_until, has_cursor;
	int64_t since_ms, until_ms, cursor_ts, cursor_id;
	int limit;
} store_incident_filter_t;

int store_incidents_list(store_conn_t *c, const store_incident_filter_t *f, json_t *out, bool *more, int64_t *last_ts,
			 int64_t *last_id);
/* The incident object; with_notes adds "notes" and "event_seq" is kept
 * out. STORE_NOT_FOUND. */
int store_incident_get(store_conn_t *c, int64_t id, json_t **out, bool with_notes);
/* The incident of an event (by event id), or STORE_NOT_FOUND. */
int store_incident_of_event(store_conn_t *c, const char *event_id, int64_t *id, char status[32]);
/* status/assignee NULL: unchanged; clear_assignee sets it to NULL. */
int store_incident_update(store_conn_t *c, int64_t id, const char *status, const char *assignee, bool clear_assignee,
			  const char *actor, int64_t now_ms, const store_audit_t *a);
int store_incident_note(store_conn_t *c, int64_t id, const char *author, const char *text, int64_t now_ms,
			const store_audit_t *a, int64_t *note_id);
int store_false_positives(store_conn_t *c, const store_incident_filter_t *f, json_t *groups);

/* ---- agents ---- */

/* Kept per agent: STORE_HISTORY_DAYS days and at most STORE_HISTORY_ROWS
 * rows, pruned at insert. */
#define STORE_HISTORY_DAYS 7
#define STORE_HISTORY_ROWS 2000
/* Every agent with the UI's summary members (console-api.md "Agents"). */
int store_list_agents_ui(store_conn_t *c, json_t *out);
/* One agent as GET /api/v1/agents shows it, or STORE_NOT_FOUND. */
int store_agent_get(store_conn_t *c, const char *agent_id, json_t **out);
/* {"time", "status"} rows of [since, until), oldest first. */
int store_agent_history(store_conn_t *c, const char *agent_id, int64_t since_ms, int64_t until_ms, json_t *out);

/* ---- dashboard ---- */

/* Fills the dashboard object's members of console-api.md for [since, until). */
int store_dashboard(store_conn_t *c, int64_t since_ms, int64_t until_ms, int64_t bucket_ms, int64_t now_ms,
		    json_t *out);

/* Events as the export streams them: fn per event (its stored JSON text),
 * newest first, at most limit; *more when more matched. */
int store_events_each(store_conn_t *c, const store_filter_t *f, int limit, bool (*fn)(void *ud, const char *json),
		      void *ud, bool *more);

/* ---- inside store.c's transactions (store_ui.c) ---- */

/* rows rows of cols parameters each, as multi-row INSERTs (store.c). */
bool store_insert_rows(store_conn_t *c, const char *head, int cols, const store_param_t *p, size_t rows,
		       const char *tail, store_row_fn fn, void *ud);
/* A verdict event, enforced, block or redact. */
bool store_event_is_incident(const store_event_t *e);
/* The incidents of the new events (seq[i] >= 0) among ev; n_inc of them. */
bool store_incidents_insert(store_conn_t *c, const char *agent_id, const store_event_t *ev, const int64_t *seq,
			    size_t n, size_t n_inc);
/* Hourly counts of verdict events (rollup.c): folded per batch, upserted
 * at the end of the ingest transaction. */
#define ROLLUP_SHARDS 4
typedef struct {
	const char *dim;
	int64_t hour;
	const char *k;
	int shard;
	int64_t n;
} rollup_row_t;
typedef struct {
	rollup_row_t *rows;
	size_t n, cap;
} rollup_acc_t;
bool rollup_add_event(rollup_acc_t *a, const store_event_t *e, const char *agent_id);
bool rollup_flush(store_conn_t *c, rollup_acc_t *a);
void rollup_free(rollup_acc_t *a);
/* Appends a status post to the agent's history and prunes it. */
bool store_history_add(store_conn_t *c, const char *agent_id, const char *status_json);

#endif
