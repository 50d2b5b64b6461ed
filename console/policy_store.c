/*
 * policy_store: the policy distribution tables (store.h, "policy
 * distribution"), on the same driver layer as the events: SQL with `?`
 * and values as parameters only.
 *
 * Writes that change targeting run in one transaction with the generation
 * bump, the NOTIFY (PostgreSQL) and their audit entry: a console that sees
 * the new generation sees the rollout, and there is no admin change without
 * its audit line. policy_versions has an INSERT and no UPDATE anywhere: a
 * stored bundle never changes, a rollback is a new version.
 */
#include "store.h"

#include "console.h"
#include "core/bytebuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t num(const char *s)
{
	return s ? strtoll(s, NULL, 10) : 0;
}

/* One write transaction around fn; rolled back when fn fails. */
static int in_tx(store_conn_t *c, int (*fn)(store_conn_t *c, void *ud), void *ud)
{
	const store_driver_t *d = c->st->drv;
	if (!d->begin(c, true))
		return -1;
	int r = fn(c, ud);
	if (r != 0) {
		d->rollback(c);
		return r;
	}
	return d->commit(c) ? 0 : -1;
}

bool store_policy_bump(store_conn_t *c)
{
	const store_driver_t *d = c->st->drv;
	if (d->exec(c, "UPDATE policy_generation SET gen = gen + 1 WHERE id = 1", NULL, 0, NULL, NULL) < 0)
		return false;
	if (d != &store_pg_driver)
		return true;
	return d->exec(c, "SELECT pg_notify('" STORE_POLICY_CHANNEL "', '')", NULL, 0, NULL, NULL) >= 0;
}

int store_policy_generation(store_conn_t *c, int64_t *gen)
{
	*gen = 0;
	return c->st->drv->exec(c, "SELECT gen FROM policy_generation WHERE id = 1", NULL, 0, store_row_int, gen) < 0
		       ? -1
		       : 0;
}

int store_audit_add(store_conn_t *c, const store_audit_t *a)
{
	store_param_t p[4] = {store_int(console_now_ms()), store_text(a->actor), store_text(a->action),
			      store_text(a->detail ? a->detail : "{}")};
	return c->st->drv->exec(c, "INSERT INTO audit (ts_ms, actor, action, detail) VALUES (?, ?, ?, ?)", p, 4, NULL,
				NULL) < 0
		       ? -1
		       : 0;
}

/* ---- versions ---- */

int store_policy_max_version(store_conn_t *c, int64_t *max)
{
	*max = 0;
	return c->st->drv->exec(c, "SELECT max(version) FROM policy_versions", NULL, 0, store_row_int, max) < 0 ? -1 : 0;
}

typedef struct {
	const store_policy_t *p;
	const char *doc;
	const store_audit_t *a;
} insert_t;

static int insert_tx(store_conn_t *c, void *ud)
{
	insert_t *in = ud;
	const store_policy_t *p = in->p;
	int64_t exists = 0;
	store_param_t v = store_int(p->version);
	if (c->st->drv->exec(c, "SELECT count(*) FROM policy_versions WHERE version = ?", &v, 1, store_row_int, &exists) <
	    0)
		return -1;
	if (exists)
		return STORE_CONFLICT;
	store_param_t row[10] = {store_int(p->version),	    store_text(p->sha256),	 store_text(p->created_at),
				 store_text(p->author),	    store_text(p->message),	 store_text(p->key_id),
				 store_int(p->tests_passed), store_int(p->tests_failed),
				 p->content_of ? store_int(p->content_of) : store_text(NULL), store_text(in->doc)};
	if (c->st->drv->exec(c,
			     "INSERT INTO policy_versions (version, sha256, created_at, author, message, key_id, "
			     "tests_passed, tests_failed, content_of, bundle) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			     row, 10, NULL, NULL) < 0)
		/* two pushes racing for one number: the loser is told, nothing replaced */
		return STORE_CONFLICT;
	return in->a && store_audit_add(c, in->a) != 0 ? -1 : 0;
}

int store_policy_insert(store_conn_t *c, const store_policy_t *p, const char *doc, const store_audit_t *a)
{
	insert_t in = {p, doc, a};
	return in_tx(c, insert_tx, &in);
}

#define POLICY_COLS "version, sha256, created_at, author, message, key_id, tests_passed, tests_failed, content_of"

static void policy_from_row(const char *const *cols, store_policy_t *p)
{
	memset(p, 0, sizeof *p);
	p->version = num(cols[0]);
	str_copy(p->sha256, sizeof p->sha256, cols[1] ? cols[1] : "");
	str_copy(p->created_at, sizeof p->created_at, cols[2] ? cols[2] : "");
	str_copy(p->author, sizeof p->author, cols[3] ? cols[3] : "");
	str_copy(p->message, sizeof p->message, cols[4] ? cols[4] : "");
	str_copy(p->key_id, sizeof p->key_id, cols[5] ? cols[5] : "");
	p->tests_passed = num(cols[6]);
	p->tests_failed = num(cols[7]);
	p->content_of = num(cols[8]);
}

json_t *store_policy_json(const store_policy_t *p)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:{s:I, s:I}}", "version", (json_int_t)p->version,
			      "sha256", p->sha256, "created_at", p->created_at, "author", p->author, "message",
			      p->message, "key_id", p->key_id, "tests", "passed", (json_int_t)p->tests_passed, "failed",
			      (json_int_t)p->tests_failed);
	if (o)
		json_object_set_new(o, "content_of", p->content_of ? json_integer(p->content_of) : json_null());
	return o;
}

static bool row_policy_json(void *ud, int n, const char *const *cols)
{
	if (n < 9)
		return false;
	store_policy_t p;
	policy_from_row(cols, &p);
	json_array_append_new(ud, store_policy_json(&p));
	return true;
}

int store_policy_list(store_conn_t *c, json_t *out)
{
	return c->st->drv->exec(c, "SELECT " POLICY_COLS " FROM policy_versions ORDER BY version DESC", NULL, 0,
				row_policy_json, out) < 0
		       ? -1
		       : 0;
}

typedef struct {
	store_policy_t *p;
	bool found;
} get_t;

static bool row_policy(void *ud, int n, const char *const *cols)
{
	get_t *g = ud;
	if (n < 9)
		return false;
	policy_from_row(cols, g->p);
	g->found = true;
	return false;
}

int store_policy_get(store_conn_t *c, int64_t version, store_policy_t *p)
{
	get_t g = {p, false};
	store_param_t v = store_int(version);
	if (c->st->drv->exec(c, "SELECT " POLICY_COLS " FROM policy_versions WHERE version = ?", &v, 1, row_policy, &g) <
	    0)
		return -1;
	return g.found ? 0 : STORE_NOT_FOUND;
}

int store_policy_bundle(store_conn_t *c, int64_t version, char **doc, size_t *len)
{
	*doc = NULL;
	*len = 0;
	store_param_t v = store_int(version);
	if (c->st->drv->exec(c, "SELECT bundle FROM policy_versions WHERE version = ?", &v, 1, store_row_dup, doc) < 0)
		return -1;
	if (!*doc)
		return STORE_NOT_FOUND;
	*len = strlen(*doc);
	return 0;
}

/* ---- rollouts ---- */

#define ROLLOUT_COLS \
	"id, version, kind, labels, percent, sample_percent, state, halt_reason, created_at, created_by"

typedef struct {
	rollout_t *v;
	size_t n, cap;
	bool oom;
} rollouts_t;

static bool row_rollout(void *ud, int n, const char *const *cols)
{
	rollouts_t *rs = ud;
	if (n < 7)
		return false;
	if (!bytebuf_grow_array(&rs->v, sizeof *rs->v, rs->n, &rs->cap, 16)) {
		rs->oom = true;
		return false;
	}
	rollout_t *r = &rs->v[rs->n];
	memset(r, 0, sizeof *r);
	r->id = num(cols[0]);
	r->version = num(cols[1]);
	r->kind = cols[2] && strcmp(cols[2], "shadow") == 0 ? ROLLOUT_SHADOW : ROLLOUT_ACTIVE;
	r->labels = json_loads(cols[3] ? cols[3] : "{}", 0, NULL);
	if (!json_is_object(r->labels)) { /* written only by this file, checked: never, but fail closed */
		json_decref(r->labels);
		r->labels = json_pack("{s:s}", "invalid-labels", "never-matches");
	}
	r->percent = (int)num(cols[4]);
	r->sample_percent = (int)num(cols[5]);
	r->running = cols[6] && strcmp(cols[6], "running") == 0;
	rs->n++;
	return true;
}

int store_rollouts_running(store_conn_t *c, rollout_t **out, size_t *n)
{
	rollouts_t rs = {0};
	int64_t r = c->st->drv->exec(c, "SELECT " ROLLOUT_COLS " FROM rollouts WHERE state = 'running' ORDER BY id",
				     NULL, 0, row_rollout, &rs);
	if (r < 0 || rs.oom) {
		if (rs.oom)
			snprintf(c->error, sizeof c->error, "out of memory");
		store_rollouts_free(rs.v, rs.n);
		*out = NULL;
		*n = 0;
		return -1;
	}
	*out = rs.v;
	*n = rs.n;
	return 0;
}

void store_rollouts_free(rollout_t *rs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(rs[i].labels);
	free(rs);
}

static bool row_rollout_json(void *ud, int n, const char *const *cols)
{
	if (n < 10)
		return false;
	json_t *labels = json_loads(cols[3] ? cols[3] : "{}", 0, NULL);
	json_t *o = json_pack("{s:I, s:I, s:s, s:o, s:I, s:I, s:s, s:o, s:s, s:s}", "id", (json_int_t)num(cols[0]),
			      "version", (json_int_t)num(cols[1]), "kind", cols[2] ? cols[2] : "", "labels",
			      labels ? labels : json_object(), "percent", (json_int_t)num(cols[4]), "sample_percent",
			      (json_int_t)num(cols[5]), "state", cols[6] ? cols[6] : "", "halt_reason",
			      cols[7] ? json_string(cols[7]) : json_null(), "created_at", cols[8] ? cols[8] : "",
			      "created_by", cols[9] ? cols[9] : "");
	json_array_append_new(ud, o);
	return true;
}

int store_rollouts_list(store_conn_t *c, int64_t version, json_t *out)
{
	store_param_t v = store_int(version);
	return c->st->drv->exec(c,
				version > 0 ? "SELECT " ROLLOUT_COLS " FROM rollouts WHERE version = ? ORDER BY id DESC"
					    : "SELECT " ROLLOUT_COLS " FROM rollouts ORDER BY id DESC",
				&v, version > 0 ? 1 : 0, row_rollout_json, out) < 0
		       ? -1
		       : 0;
}

typedef struct {
	const rollout_t *r;
	const char *now, *created_by;
	const store_audit_t *a;
	int64_t id;
} add_t;

static int rollout_add_tx(store_conn_t *c, void *ud)
{
	add_t *x = ud;
	const rollout_t *r = x->r;
	const store_driver_t *d = c->st->drv;
	const char *kind = r->kind == ROLLOUT_SHADOW ? "shadow" : "active";
	char *labels = json_dumps(r->labels ? r->labels : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
	if (!labels) {
		snprintf(c->error, sizeof c->error, "out of memory");
		return -1;
	}
	/* The whole fleet at 100%: what ran before of this kind is over. */
	bool whole_fleet = json_object_size(r->labels) == 0 && r->percent >= 100;
	store_param_t k = store_text(kind);
	store_param_t p[8] = {store_int(r->version), store_text(kind),	       store_text(labels),
			      store_int(r->percent), store_int(r->sample_percent), store_text(x->now),
			      store_text(x->created_by)};
	x->id = 0;
	bool ok = (!whole_fleet || d->exec(c, "UPDATE rollouts SET state = 'superseded' WHERE state = 'running' AND kind = ?",
					   &k, 1, NULL, NULL) >= 0) &&
		  d->exec(c,
			  "INSERT INTO rollouts (version, kind, labels, percent, sample_percent, state, created_at, "
			  "created_by) VALUES (?, ?, ?, ?, ?, 'running', ?, ?) RETURNING id",
			  p, 7, store_row_int, &x->id) >= 0 &&
		  x->id > 0 && store_policy_bump(c) && (!x->a || store_audit_add(c, x->a) == 0);
	free(labels);
	return ok ? 0 : -1;
}

int store_rollout_add(store_conn_t *c, const rollout_t *r, const char *now, const char *created_by,
		      const store_audit_t *a, int64_t *id)
{
	add_t x = {r, now, created_by, a, 0};
	int rc = in_tx(c, rollout_add_tx, &x);
	*id = x.id;
	return rc;
}

typedef struct {
	int64_t *v;
	size_t max, n;
} versions_t;

static bool row_version(void *ud, int n, const char *const *cols)
{
	versions_t *vs = ud;
	if (n < 1 || vs->n == vs->max)
		return false;
	vs->v[vs->n++] = num(cols[0]);
	return true;
}

int store_rollouts_fleet_history(store_conn_t *c, int64_t *versions, size_t max, size_t *n)
{
	versions_t vs = {versions, max, 0};
	store_param_t lim = store_int((int64_t)max);
	int64_t r = c->st->drv->exec(c,
				     "SELECT version FROM rollouts WHERE kind = 'active' AND labels = '{}' AND percent = 100 "
				     "AND state <> 'halted' ORDER BY id DESC LIMIT ?",
				     &lim, 1, row_version, &vs);
	*n = vs.n;
	return r < 0 ? -1 : 0;
}

typedef struct {
	int64_t id;
	const char *reason;
	const store_audit_t *a;
} halt_t;

static int halt_tx(store_conn_t *c, void *ud)
{
	halt_t *h = ud;
	store_param_t p[2] = {store_text(h->reason), store_int(h->id)};
	int64_t n = c->st->drv->exec(c, "UPDATE rollouts SET state = 'halted', halt_reason = ? WHERE id = ? AND state = 'running'",
				     p, 2, NULL, NULL);
	if (n < 0)
		return -1;
	if (n == 0)
		return STORE_NOT_FOUND;
	return store_policy_bump(c) && (!h->a || store_audit_add(c, h->a) == 0) ? 0 : -1;
}

int store_rollout_halt(store_conn_t *c, int64_t id, const char *reason, const store_audit_t *a)
{
	halt_t h = {id, reason, a};
	return in_tx(c, halt_tx, &h);
}

/* ---- agents ---- */

int store_agent_labels(store_conn_t *c, const char *agent_id, json_t **labels)
{
	char *text = NULL;
	store_param_t id = store_text(agent_id);
	*labels = NULL;
	if (c->st->drv->exec(c, "SELECT labels FROM agents WHERE agent_id = ?", &id, 1, store_row_dup, &text) < 0)
		return -1;
	if (!text)
		return STORE_NOT_FOUND;
	*labels = json_loads(text, 0, NULL);
	free(text);
	if (!json_is_object(*labels)) {
		json_decref(*labels);
		*labels = json_object();
	}
	return 0;
}

typedef struct {
	const char *agent_id, *labels;
	const store_audit_t *a;
} labels_t;

static int labels_tx(store_conn_t *c, void *ud)
{
	labels_t *l = ud;
	store_param_t p[2] = {store_text(l->labels), store_text(l->agent_id)};
	int64_t n = c->st->drv->exec(c, "UPDATE agents SET labels = ? WHERE agent_id = ?", p, 2, NULL, NULL);
	if (n < 0)
		return -1;
	if (n == 0)
		return STORE_NOT_FOUND;
	return store_policy_bump(c) && (!l->a || store_audit_add(c, l->a) == 0) ? 0 : -1;
}

int store_agent_set_labels(store_conn_t *c, const char *agent_id, const char *labels_json, const store_audit_t *a)
{
	labels_t l = {agent_id, labels_json, a};
	return in_tx(c, labels_tx, &l);
}

int store_agent_policy_status(store_conn_t *c, const char *agent_id, const store_agent_policy_t *p,
			      int64_t *prev_failed)
{
	const store_driver_t *d = c->st->drv;
	*prev_failed = 0;
	store_param_t id = store_text(agent_id);
	/* 0 stands for "none" in the struct and NULL in the table */
#define OPT_INT(x) ((x) > 0 ? store_int(x) : store_text(NULL))
	store_param_t q[8] = {OPT_INT(p->version),	   store_text(p->source),     OPT_INT(p->failed_version),
			      store_text(p->last_error),   OPT_INT(p->shadow_version), store_text(p->activated_at),
			      store_int(p->shadow_evaluated), store_text(agent_id)};
#undef OPT_INT
	if (!d->begin(c, true))
		return -1;
	bool ok = d->exec(c, "SELECT failed_version FROM agents WHERE agent_id = ?", &id, 1, store_row_int, prev_failed) >= 0 &&
		  d->exec(c,
			  "UPDATE agents SET policy_version = ?, policy_source = ?, failed_version = ?, policy_error = ?, "
			  "shadow_version = ?, policy_at = ?, shadow_evaluated = ? WHERE agent_id = ?",
			  q, 8, NULL, NULL) >= 0;
	if (!ok) {
		d->rollback(c);
		return -1;
	}
	return d->commit(c) ? 0 : -1;
}

typedef struct {
	store_agent_fn fn;
	void *ud;
} each_t;

static bool row_agent_policy(void *ud, int n, const char *const *cols)
{
	each_t *e = ud;
	if (n < 8 || !cols[0])
		return true;
	store_agent_row_t a = {.agent_id = cols[0],
			       .policy_version = num(cols[2]),
			       .failed_version = num(cols[3]),
			       .shadow_version = num(cols[4]),
			       .shadow_evaluated = num(cols[5]),
			       .policy_error = cols[6],
			       .reported = cols[7] != NULL};
	a.labels = json_loads(cols[1] ? cols[1] : "{}", 0, NULL);
	if (!json_is_object(a.labels)) {
		json_decref(a.labels);
		a.labels = json_object();
	}
	bool more = e->fn(e->ud, &a);
	json_decref(a.labels);
	return more;
}

int store_agents_each(store_conn_t *c, store_agent_fn fn, void *ud)
{
	each_t e = {fn, ud};
	return c->st->drv->exec(c,
				"SELECT agent_id, labels, policy_version, failed_version, shadow_version, shadow_evaluated, "
				"policy_error, policy_source FROM agents ORDER BY agent_id",
				NULL, 0, row_agent_policy, &e) < 0
		       ? -1
		       : 0;
}

/* ---- shadow report ---- */

typedef struct {
	json_t *obj;
	bool transition;
	int64_t total;
} group_t;

static bool row_group(void *ud, int n, const char *const *cols)
{
	group_t *g = ud;
	if (n < 2)
		return false;
	char key[300];
	if (g->transition)
		snprintf(key, sizeof key, "%s->%s", cols[0] ? cols[0] : "?", n > 2 && cols[2] ? cols[2] : "?");
	else
		snprintf(key, sizeof key, "%s", cols[0] ? cols[0] : "(none)");
	int64_t count = num(cols[1]);
	json_object_set_new(g->obj, key, json_integer(count));
	g->total += count;
	return true;
}

int store_shadow_report(store_conn_t *c, int64_t version, const store_filter_t *f, json_t *report)
{
	char vtext[24];
	snprintf(vtext, sizeof vtext, "%lld", (long long)version);
	/* the same WHERE for every grouping: kind, version, time window */
	static const char *const groupings[][2] = {
		{"transitions", "SELECT e.active_verdict, count(*), e.verdict FROM events e %s GROUP BY e.active_verdict, e.verdict"},
		{"by_detector", "SELECT d.detector, count(*) FROM events e JOIN event_detectors d ON d.seq = e.seq %s "
				"GROUP BY d.detector"},
		{"by_rule", "SELECT e.rule, count(*) FROM events e %s GROUP BY e.rule"},
		{"by_host", "SELECT e.host, count(*) FROM events e %s GROUP BY e.host"},
		{"by_app", "SELECT COALESCE(e.app_path, e.app_signing_id), count(*) FROM events e %s "
			   "GROUP BY COALESCE(e.app_path, e.app_signing_id)"},
	};
	const char *where = "WHERE e.kind = 'shadow' AND e.policy_version = ? AND e.ts_ms >= ? AND e.ts_ms < ?";
	store_param_t p[3] = {store_text(vtext), store_int(f->has_since ? f->since_ms : INT64_MIN),
			      store_int(f->has_until ? f->until_ms : INT64_MAX)};
	for (size_t i = 0; i < sizeof groupings / sizeof groupings[0]; i++) {
		char sql[512];
		snprintf(sql, sizeof sql, groupings[i][1], where);
		group_t g = {json_object(), i == 0, 0};
		if (c->st->drv->exec(c, sql, p, 3, row_group, &g) < 0) {
			json_decref(g.obj);
			return -1;
		}
		if (i == 0)
			json_object_set_new(report, "changed", json_integer(g.total));
		json_object_set_new(report, groupings[i][0], g.obj);
	}
	return 0;
}

/* ---- audit ---- */

typedef struct {
	json_t *out;
	int limit, n;
	bool more;
	int64_t last_id;
} audit_page_t;

static bool row_audit(void *ud, int n, const char *const *cols)
{
	audit_page_t *pg = ud;
	if (n < 5)
		return false;
	if (pg->n == pg->limit) {
		pg->more = true;
		return false;
	}
	char t[64];
	console_time_format(num(cols[1]), t);
	json_t *detail = json_loads(cols[4] ? cols[4] : "{}", 0, NULL);
	json_array_append_new(pg->out, json_pack("{s:I, s:s, s:s, s:s, s:o}", "id", (json_int_t)num(cols[0]), "time", t,
						 "actor", cols[2] ? cols[2] : "", "action", cols[3] ? cols[3] : "",
						 "detail", detail ? detail : json_object()));
	pg->last_id = num(cols[0]);
	pg->n++;
	return true;
}

int store_audit_list(store_conn_t *c, const store_filter_t *f, json_t *out, bool *more, int64_t *last_id)
{
	/* keyset on id, newest first; absent bounds are the widest ones */
	store_param_t p[4] = {store_int(f->has_since ? f->since_ms : INT64_MIN),
			      store_int(f->has_until ? f->until_ms : INT64_MAX),
			      store_int(f->has_cursor ? f->cursor_seq : INT64_MAX), store_int(f->limit + 1)};
	audit_page_t pg = {out, f->limit, 0, false, 0};
	if (c->st->drv->exec(c,
			     "SELECT id, ts_ms, actor, action, detail FROM audit WHERE ts_ms >= ? AND ts_ms < ? AND id < ? "
			     "ORDER BY id DESC LIMIT ?",
			     p, 4, row_audit, &pg) < 0)
		return -1;
	*more = pg.more;
	*last_id = pg.last_id;
	return 0;
}
