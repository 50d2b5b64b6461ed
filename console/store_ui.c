/*
 * store_ui: the web UI's tables and queries (store_ui.h), written once for
 * SQLite and PostgreSQL like the rest of the store: portable SQL only,
 * values as parameters.
 *
 * Sessions: the row is keyed by the SHA-256 of the cookie value, so the
 * database alone signs nobody in, and every console on one PostgreSQL sees
 * the same sessions (sign-out anywhere ends it everywhere). The last use is
 * written at most once a minute, so browsing is not a write per request.
 *
 * Incidents are made in the ingest transaction (store.c calls in here), so
 * every stored block or redact has its incident and none is made twice.
 */
#include "store.h"

#include "console.h"
#include "core/bytebuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOUCH_EVERY_MS 60000
#define HISTORY_MS ((int64_t)STORE_HISTORY_DAYS * 86400000)
#define HISTORY_PRUNE_EVERY 16

static int64_t run(store_conn_t *c, const char *sql, const store_param_t *p, int np, store_row_fn fn, void *ud)
{
	return c->st->drv->exec(c, sql, p, np, fn, ud);
}

/* 0, or -1 when the statement failed */
static int run0(store_conn_t *c, const char *sql, const store_param_t *p, int np, store_row_fn fn, void *ud)
{
	return run(c, sql, p, np, fn, ud) < 0 ? -1 : 0;
}

/* One write transaction around fn's statements and an optional audit line. */
static int in_tx(store_conn_t *c, int (*fn)(store_conn_t *c, void *ud), void *ud, const store_audit_t *a)
{
	const store_driver_t *d = c->st->drv;
	if (!d->begin(c, true))
		return -1;
	int r = fn(c, ud);
	if (r == 0 && a && store_audit_add(c, a) != 0)
		r = -1;
	if (r != 0) {
		d->rollback(c);
		return r;
	}
	return d->commit(c) ? 0 : -1;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *time_json(const char *ms)
{
	if (!ms)
		return json_null();
	char t[64];
	console_time_format(strtoll(ms, NULL, 10), t);
	return json_string(t);
}

/* ---- tokens ---- */

static bool row_token(void *ud, int n, const char *const *cols)
{
	if (n < 5 || !cols[0])
		return true;
	char id[13];
	snprintf(id, sizeof id, "%.12s", cols[0]);
	json_array_append_new(ud, json_pack("{s:s, s:s, s:o, s:o, s:o}", "token_id", id, "role", cols[1] ? cols[1] : "",
					    "name", str_or_null(cols[2]), "created_at", str_or_null(cols[3]),
					    "revoked_at", str_or_null(cols[4])));
	return true;
}

int store_tokens_list(store_conn_t *c, json_t *out)
{
	return run0(c, "SELECT token_hash, role, name, created_at, revoked_at FROM admin_tokens ORDER BY created_at, token_hash",
		   NULL, 0, row_token, out);
}

typedef struct {
	const char *id, *now;
} revoke_t;

static int do_revoke(store_conn_t *c, void *ud)
{
	revoke_t *r = ud;
	char pattern[16];
	snprintf(pattern, sizeof pattern, "%.12s%%", r->id);
	store_param_t p[2] = {store_text(r->now), store_text(pattern)};
	int64_t n = run(c, "UPDATE admin_tokens SET revoked_at = ? WHERE token_hash LIKE ? AND revoked_at IS NULL", p,
			2, NULL, NULL);
	if (n < 0)
		return -1;
	if (n == 0)
		return STORE_NOT_FOUND;
	store_param_t q = store_text(pattern);
	return run0(c, "DELETE FROM sessions WHERE token_hash LIKE ?", &q, 1, NULL, NULL);
}

int store_token_revoke(store_conn_t *c, const char *token_id, const char *now, const store_audit_t *a)
{
	/* the id is 12 lowercase hex digits: nothing in it is a LIKE wildcard */
	if (strlen(token_id) != 12 || strspn(token_id, "0123456789abcdef") != 12)
		return STORE_NOT_FOUND;
	revoke_t r = {token_id, now};
	return in_tx(c, do_revoke, &r, a);
}

typedef struct {
	const char *hash, *now, *name;
	store_role_t role;
} token_add_t;

static int do_token_add(store_conn_t *c, void *ud)
{
	token_add_t *t = ud;
	return store_admin_token_add(c, t->hash, t->now, t->role, t->name);
}

int store_admin_token_add_audited(store_conn_t *c, const char *token_hash, const char *now, store_role_t role,
				  const char *name, const store_audit_t *a)
{
	token_add_t t = {token_hash, now, name, role};
	return in_tx(c, do_token_add, &t, a);
}

/* ---- sessions ---- */

int store_session_create(store_conn_t *c, const char *id_hash, const char *token_hash, const char *csrf,
			 int64_t now_ms, int64_t expires_ms)
{
	store_param_t p[6] = {store_text(id_hash), store_text(token_hash), store_text(csrf),
			      store_int(now_ms),   store_int(now_ms),	store_int(expires_ms)};
	/* expired rows of anyone go with each sign-in: the table stays small */
	store_param_t now = store_int(now_ms);
	if (run(c, "DELETE FROM sessions WHERE expires_ms <= ?", &now, 1, NULL, NULL) < 0)
		return -1;
	return run0(c,
		   "INSERT INTO sessions (id_hash, token_hash, csrf, created_ms, last_ms, expires_ms) "
		   "VALUES (?, ?, ?, ?, ?, ?)",
		   p, 6, NULL, NULL);
}

typedef struct {
	store_session_t *s;
	int64_t last_ms;
	bool found, revoked;
} session_row_t;

static bool row_session(void *ud, int n, const char *const *cols)
{
	session_row_t *r = ud;
	if (n < 7 || !cols[0] || !cols[1])
		return false;
	r->found = true;
	snprintf(r->s->token_hash, sizeof r->s->token_hash, "%s", cols[0]);
	snprintf(r->s->csrf, sizeof r->s->csrf, "%s", cols[1]);
	r->s->created_ms = strtoll(cols[2] ? cols[2] : "0", NULL, 10);
	r->last_ms = strtoll(cols[3] ? cols[3] : "0", NULL, 10);
	r->s->expires_ms = strtoll(cols[4] ? cols[4] : "0", NULL, 10);
	r->s->role = store_role_parse(cols[5]);
	r->revoked = cols[6] != NULL || !cols[5];
	return false;
}

int store_session_lookup(store_conn_t *c, const char *id_hash, int64_t now_ms, int64_t idle_ms, store_session_t *s)
{
	memset(s, 0, sizeof *s);
	session_row_t r = {.s = s};
	store_param_t id = store_text(id_hash);
	if (run(c,
		"SELECT s.token_hash, s.csrf, s.created_ms, s.last_ms, s.expires_ms, t.role, t.revoked_at "
		"FROM sessions s LEFT JOIN admin_tokens t ON t.token_hash = s.token_hash WHERE s.id_hash = ?",
		&id, 1, row_session, &r) < 0)
		return -1;
	if (!r.found)
		return STORE_NOT_FOUND;
	if (r.revoked || s->role == STORE_ROLE_NONE || now_ms >= s->expires_ms || now_ms - r.last_ms >= idle_ms) {
		memset(s, 0, sizeof *s);
		return run0(c, "DELETE FROM sessions WHERE id_hash = ?", &id, 1, NULL, NULL) < 0 ? -1 : STORE_NOT_FOUND;
	}
	/* a short idle limit (tests, strict sites) is refreshed often enough
	 * that a session in use never lapses */
	int64_t touch = idle_ms / 4 < TOUCH_EVERY_MS ? idle_ms / 4 : TOUCH_EVERY_MS;
	if (now_ms - r.last_ms >= touch) {
		store_param_t p[2] = {store_int(now_ms), store_text(id_hash)};
		if (run(c, "UPDATE sessions SET last_ms = ? WHERE id_hash = ?", p, 2, NULL, NULL) < 0)
			return -1;
	}
	return 0;
}

int store_session_delete(store_conn_t *c, const char *id_hash)
{
	store_param_t id = store_text(id_hash);
	return run0(c, "DELETE FROM sessions WHERE id_hash = ?", &id, 1, NULL, NULL);
}

/* ---- incidents ---- */

bool store_event_is_incident(const store_event_t *e)
{
	return e->kind && !strcmp(e->kind, "verdict") && e->monitor == 0 && e->verdict &&
	       (!strcmp(e->verdict, "block") || !strcmp(e->verdict, "redact"));
}

#define INCIDENT_COLS 11

bool store_incidents_insert(store_conn_t *c, const char *agent_id, const store_event_t *ev, const int64_t *seq,
			    size_t n, size_t n_inc)
{
	store_param_t *p = calloc(n_inc * INCIDENT_COLS, sizeof *p);
	char **dets = calloc(n_inc, sizeof *dets);
	bool ok = p && dets;
	size_t k = 0;
	for (size_t i = 0; ok && i < n; i++) {
		if (seq[i] < 0 || !store_event_is_incident(&ev[i]))
			continue;
		bytebuf_t d;
		bytebuf_init(&d, 0);
		bytebuf_append_str(&d, ",");
		for (size_t x = 0; x < ev[i].n_detectors; x++)
			if (ev[i].det_counts[x] > 0)
				bytebuf_appendf(&d, "%s,", ev[i].det_names[x]);
		ok = bytebuf_cstr(&d);
		dets[k] = d.data;
		const char *app = ev[i].app_path ? ev[i].app_path : ev[i].app_signing_id;
		store_param_t row[INCIDENT_COLS] = {store_int(seq[i]),	    store_text(ev[i].id),   store_text(agent_id),
						    store_int(ev[i].ts_ms), store_text(ev[i].verdict), store_text(ev[i].host),
						    store_text(app),	    store_text(ev[i].rule), store_text(dets[k]),
						    store_text("new"),	    store_int(ev[i].ts_ms)};
		memcpy(&p[k * INCIDENT_COLS], row, sizeof row);
		k++;
	}
	ok = ok && k == n_inc &&
	     store_insert_rows(c,
			       "INSERT INTO incidents (event_seq, event_id, agent_id, ts_ms, verdict, host, app, rule, "
			       "detectors, status, updated_ms)",
			       INCIDENT_COLS, p, k, "", NULL, NULL);
	for (size_t i = 0; dets && i < n_inc; i++)
		free(dets[i]);
	free(dets);
	free(p);
	if (!ok && !c->error[0])
		snprintf(c->error, sizeof c->error, "out of memory");
	return ok;
}

#define INCIDENT_SELECT                                                                                             \
	"SELECT i.id, i.event_id, i.agent_id, i.ts_ms, i.verdict, i.host, i.app, i.rule, i.detectors, i.status, " \
	"i.assignee, i.updated_ms, i.updated_by FROM incidents i"

static json_t *incident_json(int n, const char *const *cols)
{
	if (n < 13 || !cols[0])
		return NULL;
	json_t *dets = json_array();
	const char *d = cols[8] ? cols[8] : "";
	while (*d) {
		d += *d == ',';
		size_t len = strcspn(d, ",");
		if (len)
			json_array_append_new(dets, json_stringn(d, len));
		d += len;
	}
	return json_pack("{s:I, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o}", "id",
			 (json_int_t)strtoll(cols[0], NULL, 10), "event_id", cols[1] ? cols[1] : "", "agent_id",
			 cols[2] ? cols[2] : "", "time", time_json(cols[3]), "verdict", cols[4] ? cols[4] : "", "host",
			 str_or_null(cols[5]), "app", str_or_null(cols[6]), "rule", str_or_null(cols[7]), "detectors",
			 dets, "status", cols[9] ? cols[9] : "", "assignee", str_or_null(cols[10]), "updated_at",
			 time_json(cols[11]), "updated_by", str_or_null(cols[12]));
}

typedef struct {
	json_t *out;
	int limit, n;
	bool more;
	int64_t last_ts, last_id;
} ipage_t;

static bool row_incident(void *ud, int n, const char *const *cols)
{
	ipage_t *pg = ud;
	if (pg->n == pg->limit) {
		pg->more = true;
		return false;
	}
	json_t *o = incident_json(n, cols);
	if (!o)
		return true;
	json_array_append_new(pg->out, o);
	pg->last_id = strtoll(cols[0], NULL, 10);
	pg->last_ts = strtoll(cols[3] ? cols[3] : "0", NULL, 10);
	pg->n++;
	return true;
}

/* "%,NAME,%" with LIKE's own characters escaped (ESCAPE '!') */
static char *like_member(const char *name)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
	bytebuf_append_str(&b, "%,");
	for (const char *s = name; *s; s++) {
		if (*s == '%' || *s == '_' || *s == '!')
			bytebuf_append(&b, "!", 1);
		bytebuf_append(&b, s, 1);
	}
	bytebuf_append_str(&b, ",%");
	return bytebuf_cstr(&b) ? b.data : NULL;
}

typedef struct {
	bytebuf_t sql;
	store_param_t p[16];
	int np;
	bool where;
	char *like;
} iq_t;

static void iq_and(iq_t *q, const char *frag, store_param_t a, store_param_t b, int np)
{
	bytebuf_append_str(&q->sql, q->where ? " AND " : " WHERE ");
	q->where = true;
	bytebuf_append_str(&q->sql, frag);
	if (np > 0)
		q->p[q->np++] = a;
	if (np > 1)
		q->p[q->np++] = b;
}

static void iq_filters(iq_t *q, const store_incident_filter_t *f, bool cursor)
{
	store_param_t none = store_int(0);
	if (f->status)
		iq_and(q, "i.status = ?", store_text(f->status), none, 1);
	if (f->assignee)
		iq_and(q, "i.assignee = ?", store_text(f->assignee), none, 1);
	if (f->host)
		iq_and(q, "i.host = ?", store_text(f->host), none, 1);
	if (f->detector) {
		q->like = like_member(f->detector);
		iq_and(q, "i.detectors LIKE ? ESCAPE '!'", store_text(q->like ? q->like : ""), none, 1);
	}
	if (f->has_since)
		iq_and(q, "i.ts_ms >= ?", store_int(f->since_ms), none, 1);
	if (f->has_until)
		iq_and(q, "i.ts_ms < ?", store_int(f->until_ms), none, 1);
	if (cursor && f->has_cursor) {
		iq_and(q, "(i.ts_ms < ? OR (i.ts_ms = ? AND i.id < ?))", store_int(f->cursor_ts),
		       store_int(f->cursor_ts), 2);
		q->p[q->np++] = store_int(f->cursor_id);
	}
}

int store_incidents_list(store_conn_t *c, const store_incident_filter_t *f, json_t *out, bool *more, int64_t *last_ts,
			 int64_t *last_id)
{
	iq_t q = {.np = 0};
	bytebuf_init(&q.sql, 0);
	bytebuf_append_str(&q.sql, INCIDENT_SELECT);
	iq_filters(&q, f, true);
	bytebuf_append_str(&q.sql, " ORDER BY i.ts_ms DESC, i.id DESC LIMIT ?");
	q.p[q.np++] = store_int(f->limit + 1);
	ipage_t pg = {.out = out, .limit = f->limit};
	int64_t r = bytebuf_cstr(&q.sql) ? run(c, q.sql.data, q.p, q.np, row_incident, &pg) : -1;
	bytebuf_free(&q.sql);
	free(q.like);
	*more = pg.more;
	*last_ts = pg.last_ts;
	*last_id = pg.last_id;
	return r < 0 ? -1 : 0;
}

static bool row_one_incident(void *ud, int n, const char *const *cols)
{
	*(json_t **)ud = incident_json(n, cols);
	return false;
}

static bool row_note(void *ud, int n, const char *const *cols)
{
	if (n < 4 || !cols[0])
		return true;
	json_array_append_new(ud, json_pack("{s:I, s:o, s:s, s:s}", "id", (json_int_t)strtoll(cols[0], NULL, 10), "time",
					    time_json(cols[1]), "author", cols[2] ? cols[2] : "", "text",
					    cols[3] ? cols[3] : ""));
	return true;
}

int store_incident_get(store_conn_t *c, int64_t id, json_t **out, bool with_notes)
{
	*out = NULL;
	store_param_t p = store_int(id);
	if (run(c, INCIDENT_SELECT " WHERE i.id = ?", &p, 1, row_one_incident, out) < 0)
		return -1;
	if (!*out)
		return STORE_NOT_FOUND;
	if (with_notes) {
		json_t *notes = json_array();
		json_object_set_new(*out, "notes", notes);
		if (run(c, "SELECT id, ts_ms, author, text FROM incident_notes WHERE incident_id = ? ORDER BY id", &p, 1,
			row_note, notes) < 0) {
			json_decref(*out);
			*out = NULL;
			return -1;
		}
	}
	return 0;
}

typedef struct {
	int64_t *id;
	char *status;
	bool found;
} of_event_t;

static bool row_of_event(void *ud, int n, const char *const *cols)
{
	of_event_t *o = ud;
	if (n < 2 || !cols[0])
		return false;
	o->found = true;
	*o->id = strtoll(cols[0], NULL, 10);
	snprintf(o->status, 32, "%s", cols[1] ? cols[1] : "");
	return false;
}

int store_incident_of_event(store_conn_t *c, const char *event_id, int64_t *id, char status[32])
{
	of_event_t o = {id, status, false};
	store_param_t p = store_text(event_id);
	if (run(c, "SELECT id, status FROM incidents WHERE event_id = ? ORDER BY id DESC LIMIT 1", &p, 1, row_of_event,
		&o) < 0)
		return -1;
	return o.found ? 0 : STORE_NOT_FOUND;
}

typedef struct {
	int64_t id, now_ms, note_id;
	const char *status, *assignee, *actor, *text;
	bool clear_assignee;
} change_t;

static int do_update(store_conn_t *c, void *ud)
{
	change_t *ch = ud;
	store_param_t p[6] = {store_text(ch->status),		store_int(ch->clear_assignee), store_text(ch->assignee),
			      store_int(ch->now_ms),		store_text(ch->actor),	       store_int(ch->id)};
	int64_t n = run(c,
			"UPDATE incidents SET status = COALESCE(?, status), "
			"assignee = CASE WHEN ? = 1 THEN NULL ELSE COALESCE(?, assignee) END, "
			"updated_ms = ?, updated_by = ? WHERE id = ?",
			p, 6, NULL, NULL);
	return n < 0 ? -1 : n == 0 ? STORE_NOT_FOUND : 0;
}

int store_incident_update(store_conn_t *c, int64_t id, const char *status, const char *assignee, bool clear_assignee,
			  const char *actor, int64_t now_ms, const store_audit_t *a)
{
	change_t ch = {.id = id, .now_ms = now_ms, .status = status, .assignee = assignee, .actor = actor,
		       .clear_assignee = clear_assignee};
	return in_tx(c, do_update, &ch, a);
}

static int do_note(store_conn_t *c, void *ud)
{
	change_t *ch = ud;
	store_param_t id = store_int(ch->id);
	int64_t exists = 0;
	if (run(c, "SELECT count(*) FROM incidents WHERE id = ?", &id, 1, store_row_int, &exists) < 0)
		return -1;
	if (!exists)
		return STORE_NOT_FOUND;
	store_param_t p[4] = {store_int(ch->id), store_int(ch->now_ms), store_text(ch->actor), store_text(ch->text)};
	return run0(c, "INSERT INTO incident_notes (incident_id, ts_ms, author, text) VALUES (?, ?, ?, ?) RETURNING id",
		   p, 4, store_row_int, &ch->note_id);
}

int store_incident_note(store_conn_t *c, int64_t id, const char *author, const char *text, int64_t now_ms,
			const store_audit_t *a, int64_t *note_id)
{
	change_t ch = {.id = id, .now_ms = now_ms, .actor = author, .text = text};
	int r = in_tx(c, do_note, &ch, a);
	*note_id = ch.note_id;
	return r;
}

/* false positives: grouped in C over the marked incidents' rows (a list an
 * admin opens while tuning: thousands at most, and no portable SQL splits
 * the detector list) */
typedef struct {
	json_t *groups; /* "detector\x1frule" -> group object */
} fp_t;

static bool row_fp(void *ud, int n, const char *const *cols)
{
	fp_t *fp = ud;
	if (n < 4 || !cols[0])
		return true;
	const char *d = cols[1] ? cols[1] : "", *rule = cols[2];
	bool any = false;
	for (;;) {
		d += *d == ',';
		size_t len = strcspn(d, ",");
		if (!len && any)
			break;
		char key[2200];
		snprintf(key, sizeof key, "%.*s\x1f%s", (int)(len > 1024 ? 1024 : len), d, rule ? rule : "");
		json_t *g = json_object_get(fp->groups, key);
		if (!g) {
			g = json_pack("{s:o, s:o, s:I, s:o, s:[]}", "detector", len ? json_stringn(d, len) : json_null(),
				      "rule", str_or_null(rule), "count", (json_int_t)0, "last_time", time_json(cols[3]),
				      "incident_ids");
			json_object_set_new(fp->groups, key, g);
		}
		json_object_set_new(g, "count", json_integer(json_integer_value(json_object_get(g, "count")) + 1));
		json_t *ids = json_object_get(g, "incident_ids");
		if (json_array_size(ids) < 10)
			json_array_append_new(ids, json_integer(strtoll(cols[0], NULL, 10)));
		any = true;
		if (!len)
			break;
		d += len;
		if (!*d || !d[1])
			break;
	}
	return true;
}

static int by_count_desc(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "count"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "count"));
	return x < y ? 1 : x > y ? -1 : 0;
}

int store_false_positives(store_conn_t *c, const store_incident_filter_t *f, json_t *groups)
{
	store_incident_filter_t g = *f;
	g.status = "false_positive";
	g.has_cursor = false;
	iq_t q = {.np = 0};
	bytebuf_init(&q.sql, 0);
	bytebuf_append_str(&q.sql, "SELECT i.id, i.detectors, i.rule, i.ts_ms FROM incidents i");
	iq_filters(&q, &g, false);
	bytebuf_append_str(&q.sql, " ORDER BY i.ts_ms DESC, i.id DESC LIMIT 100000");
	fp_t fp = {json_object()};
	int64_t r = bytebuf_cstr(&q.sql) ? run(c, q.sql.data, q.p, q.np, row_fp, &fp) : -1;
	bytebuf_free(&q.sql);
	free(q.like);
	size_t n = json_object_size(fp.groups), i = 0;
	json_t **v = calloc(n + 1, sizeof *v);
	const char *k;
	json_t *val;
	json_object_foreach(fp.groups, k, val) v[i++] = val;
	qsort(v, n, sizeof *v, by_count_desc);
	for (i = 0; i < n; i++)
		json_array_append(groups, v[i]);
	free(v);
	json_decref(fp.groups);
	return r < 0 ? -1 : 0;
}

/* ---- agents ---- */

bool store_history_add(store_conn_t *c, const char *agent_id, const char *status_json)
{
	int64_t now = console_now_ms();
	store_param_t p[3] = {store_text(agent_id), store_int(now), store_text(status_json)};
	if (run(c, "INSERT INTO agent_status_history (agent_id, ts_ms, status) VALUES (?, ?, ?)", p, 3, NULL, NULL) < 0)
		return false;
	/* older than the retention, or past the row cap: the row cap's
	 * boundary is the STORE_HISTORY_ROWS-th newest row's time. Pruned on
	 * one post in HISTORY_PRUNE_EVERY (by the clock's milliseconds), so a
	 * status post is usually two statements, and the cap is exceeded by
	 * a few rows at most between prunes. */
	if (now % HISTORY_PRUNE_EVERY)
		return true;
	int64_t cut = now - HISTORY_MS, nth = 0;
	store_param_t q[2] = {store_text(agent_id), store_int(STORE_HISTORY_ROWS)};
	if (run(c, "SELECT ts_ms FROM agent_status_history WHERE agent_id = ? ORDER BY ts_ms DESC LIMIT 1 OFFSET ?", q,
		2, store_row_int, &nth) < 0)
		return false;
	if (nth > cut)
		cut = nth + 1;
	store_param_t d[2] = {store_text(agent_id), store_int(cut)};
	return run0(c, "DELETE FROM agent_status_history WHERE agent_id = ? AND ts_ms < ?", d, 2, NULL, NULL) == 0;
}

static json_int_t counter(json_t *counters, const char *name)
{
	return json_integer_value(json_object_get(counters, name));
}

/* The UI's summary members, computed from the latest status post. */
static void agent_summary(json_t *a, int64_t now_ms)
{
	json_t *st = json_object_get(a, "status"), *cnt = json_object_get(st, "counters");
	const char *seen = json_string_value(json_object_get(a, "last_seen"));
	int64_t seen_ms = 0;
	bool silent = !seen || !console_time_parse(seen, &seen_ms) || now_ms - seen_ms > 10 * 60000;
	json_t *pv = json_object_get(json_object_get(st, "policy"), "version");
	json_object_set_new(a, "silent", json_boolean(silent));
	json_object_set(a, "engine_version", json_object_get(a, "version"));
	json_object_set_new(a, "policy_version", json_is_integer(pv) ? json_incref(pv) : json_null());
	json_object_set_new(a, "spool_depth", json_integer(counter(cnt, "spool_depth")));
	json_object_set_new(a, "drops", json_integer(counter(cnt, "dropped_spool_full") + counter(cnt, "dropped_corrupt") +
						     counter(cnt, "dropped_rejected") +
						     counter(cnt, "dropped_write_error")));
	json_object_set_new(a, "policy_errors", json_integer(counter(cnt, "policy_errors")));
	json_t *errs = json_object_get(st, "last_errors");
	json_object_set_new(a, "recent_errors", json_is_array(errs) ? json_incref(errs) : json_array());
}

int store_list_agents_ui(store_conn_t *c, json_t *out)
{
	if (store_list_agents(c, out) != 0)
		return -1;
	int64_t now = console_now_ms();
	size_t i;
	json_t *a;
	json_array_foreach(out, i, a) agent_summary(a, now);
	return 0;
}

int store_agent_get(store_conn_t *c, const char *agent_id, json_t **out)
{
	*out = NULL;
	json_t *all = json_array();
	if (store_list_agents_ui(c, all) != 0) {
		json_decref(all);
		return -1;
	}
	size_t i;
	json_t *a;
	json_array_foreach(all, i, a) if (!strcmp(json_string_value(json_object_get(a, "agent_id")), agent_id))
	{
		*out = json_incref(a);
		break;
	}
	json_decref(all);
	return *out ? 0 : STORE_NOT_FOUND;
}

static bool row_history(void *ud, int n, const char *const *cols)
{
	if (n < 2 || !cols[0] || !cols[1])
		return true;
	json_t *st = json_loads(cols[1], 0, NULL), *cnt = json_object_get(st, "counters");
	json_t *pv = json_object_get(json_object_get(st, "policy"), "version");
	json_t *h = json_pack("{s:o, s:I, s:I, s:I, s:o, s:I, s:I, s:I}", "time", time_json(cols[0]), "spool_depth",
			      counter(cnt, "spool_depth"), "drops",
			      counter(cnt, "dropped_spool_full") + counter(cnt, "dropped_corrupt") +
				      counter(cnt, "dropped_rejected") + counter(cnt, "dropped_write_error"),
			      "policy_errors", counter(cnt, "policy_errors"), "policy_version",
			      json_is_integer(pv) ? json_incref(pv) : json_null(), "uploaded", counter(cnt, "uploaded"),
			      "upload_failures", counter(cnt, "upload_failures"), "errors",
			      (json_int_t)json_array_size(json_object_get(st, "last_errors")));
	json_decref(st);
	if (h)
		json_array_append_new(ud, h);
	return true;
}

int store_agent_history(store_conn_t *c, const char *agent_id, int64_t since_ms, int64_t until_ms, json_t *out)
{
	store_param_t p[3] = {store_text(agent_id), store_int(since_ms), store_int(until_ms)};
	return run0(c,
		   "SELECT ts_ms, status FROM agent_status_history WHERE agent_id = ? AND ts_ms >= ? AND ts_ms < ? "
		   "ORDER BY ts_ms",
		   p, 3, row_history, out);
}
