/*
 * dashboard: the aggregates of GET /api/v1/dashboard (console-api.md
 * "Dashboard") in a handful of grouped queries over the range, each on an
 * index that starts with the time (events_time, events_kind) or the
 * detector (event_detectors_time); fleet health from the agents' latest
 * status, folded in C (a fleet is thousands of rows, not millions).
 */
#include "store.h"

#include "console.h"
#include "core/bytebuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP_N 10
#define SILENT_MS (10 * 60000)
#define MAX_SILENT_LISTED 50

static int64_t q(store_conn_t *c, const char *sql, const store_param_t *p, int np, store_row_fn fn, void *ud)
{
	return c->st->drv->exec(c, sql, p, np, fn, ud);
}

typedef struct {
	json_t *series, *totals;
	int64_t last_t;
	json_t *cur;
} series_t;

static bool row_series(void *ud, int n, const char *const *cols)
{
	series_t *s = ud;
	if (n < 3 || !cols[0] || !cols[1] || !cols[2])
		return true;
	int64_t t = strtoll(cols[0], NULL, 10), cnt = strtoll(cols[2], NULL, 10);
	if (!s->cur || t != s->last_t) {
		char ts[64];
		console_time_format(t, ts);
		s->cur = json_object();
		json_array_append_new(s->series, json_pack("{s:s, s:o}", "t", ts, "counts", s->cur));
		s->last_t = t;
	}
	json_object_set_new(s->cur, cols[1], json_integer(cnt));
	json_object_set_new(s->totals, cols[1],
			    json_integer(json_integer_value(json_object_get(s->totals, cols[1])) + cnt));
	return true;
}

static bool row_top(void *ud, int n, const char *const *cols)
{
	if (n < 2 || !cols[0] || !cols[1])
		return true;
	json_array_append_new(ud, json_pack("{s:s, s:I}", "key", cols[0], "count", (json_int_t)strtoll(cols[1], NULL, 10)));
	return true;
}

static bool row_block(void *ud, int n, const char *const *cols)
{
	if (n < 1 || !cols[0])
		return true;
	json_t *ev = json_loads(cols[0], 0, NULL);
	if (ev)
		json_array_append_new(ud, ev);
	return true;
}

typedef struct {
	json_t *fleet, *silent, *versions;
	int64_t now, agents, reporting, backlog, drops, policy_errors, failed;
} fleet_t;

static int64_t cnt(json_t *c, const char *k)
{
	return json_integer_value(json_object_get(c, k));
}

static bool row_agent_health(void *ud, int n, const char *const *cols)
{
	fleet_t *f = ud;
	if (n < 5 || !cols[0])
		return true;
	f->agents++;
	int64_t seen = 0;
	bool silent = !cols[2] || !console_time_parse(cols[2], &seen) || f->now - seen > SILENT_MS;
	if (silent && json_array_size(f->silent) < MAX_SILENT_LISTED)
		json_array_append_new(f->silent, json_pack("{s:s, s:s, s:o}", "agent_id", cols[0], "hostname",
							   cols[1] ? cols[1] : "", "last_seen",
							   cols[2] ? json_string(cols[2]) : json_null()));
	f->reporting += !silent;
	json_t *st = cols[3] ? json_loads(cols[3], 0, NULL) : NULL, *c = json_object_get(st, "counters");
	f->backlog += cnt(c, "spool_depth");
	f->drops += cnt(c, "dropped_spool_full") + cnt(c, "dropped_corrupt") + cnt(c, "dropped_rejected") +
		    cnt(c, "dropped_write_error");
	f->policy_errors += cnt(c, "policy_errors");
	f->failed += cols[4] != NULL;
	json_t *pol = json_object_get(st, "policy"), *v = json_object_get(pol, "version");
	const char *src = json_string_value(json_object_get(pol, "source"));
	char key[96];
	snprintf(key, sizeof key, "%lld/%s", json_is_integer(v) ? (long long)json_integer_value(v) : -1LL,
		 src ? src : "");
	json_t *g = json_object_get(f->versions, key);
	if (!g) {
		g = json_pack("{s:O, s:o, s:I}", "version", json_is_integer(v) ? v : json_null(), "source",
			      src ? json_string(src) : json_null(), "agents", (json_int_t)0);
		json_object_set_new(f->versions, key, g);
	}
	json_object_set_new(g, "agents", json_integer(json_integer_value(json_object_get(g, "agents")) + 1));
	json_decref(st);
	return true;
}

static int top(store_conn_t *c, const char *sql, int64_t since, int64_t until, json_t *out)
{
	store_param_t p[3] = {store_int(since), store_int(until), store_int(TOP_N)};
	return q(c, sql, p, 3, row_top, out) < 0 ? -1 : 0;
}

int store_dashboard(store_conn_t *c, int64_t since_ms, int64_t until_ms, int64_t bucket_ms, int64_t now_ms,
		    json_t *out)
{
	series_t s = {json_array(), json_object(), 0, NULL};
	json_object_set_new(out, "series", s.series);
	json_object_set_new(out, "totals", s.totals);
	store_param_t p[4] = {store_int(bucket_ms), store_int(bucket_ms), store_int(since_ms), store_int(until_ms)};
	if (q(c,
	      "SELECT (ts_ms / ?) * ? AS t, verdict, count(*) FROM events WHERE kind = 'verdict' AND ts_ms >= ? "
	      "AND ts_ms < ? GROUP BY t, verdict ORDER BY t",
	      p, 4, row_series, &s) < 0)
		return -1;
	json_t *topo = json_pack("{s:[], s:[], s:[], s:[]}", "detectors", "hosts", "apps", "agents");
	json_object_set_new(out, "top", topo);
	if (top(c,
		"SELECT detector, sum(count) AS n FROM event_detectors WHERE ts_ms >= ? AND ts_ms < ? "
		"GROUP BY detector ORDER BY n DESC, detector LIMIT ?",
		since_ms, until_ms, json_object_get(topo, "detectors")) ||
	    top(c,
		"SELECT host, count(*) AS n FROM events WHERE kind = 'verdict' AND ts_ms >= ? AND ts_ms < ? "
		"AND host IS NOT NULL GROUP BY host ORDER BY n DESC, host LIMIT ?",
		since_ms, until_ms, json_object_get(topo, "hosts")) ||
	    top(c,
		"SELECT COALESCE(app_path, app_signing_id) AS a, count(*) AS n FROM events WHERE kind = 'verdict' "
		"AND ts_ms >= ? AND ts_ms < ? AND COALESCE(app_path, app_signing_id) IS NOT NULL "
		"GROUP BY a ORDER BY n DESC, a LIMIT ?",
		since_ms, until_ms, json_object_get(topo, "apps")) ||
	    top(c,
		"SELECT agent_id, count(*) AS n FROM events WHERE kind = 'verdict' AND ts_ms >= ? AND ts_ms < ? "
		"GROUP BY agent_id ORDER BY n DESC, agent_id LIMIT ?",
		since_ms, until_ms, json_object_get(topo, "agents")))
		return -1;
	fleet_t f = {.fleet = json_object(), .silent = json_array(), .versions = json_object(), .now = now_ms};
	json_object_set_new(out, "fleet", f.fleet);
	int64_t r = q(c, "SELECT agent_id, hostname, last_seen, status, failed_version FROM agents ORDER BY agent_id", NULL,
		      0, row_agent_health, &f);
	json_t *versions = json_array(), *g;
	const char *k;
	json_object_foreach(f.versions, k, g) json_array_append(versions, g);
	json_decref(f.versions);
	json_object_set_new(f.fleet, "agents", json_integer(f.agents));
	json_object_set_new(f.fleet, "reporting", json_integer(f.reporting));
	json_object_set_new(f.fleet, "silent", json_integer(f.agents - f.reporting));
	json_object_set_new(f.fleet, "silent_agents", f.silent);
	json_object_set_new(f.fleet, "spool_backlog", json_integer(f.backlog));
	json_object_set_new(f.fleet, "drops", json_integer(f.drops));
	json_object_set_new(f.fleet, "policy_errors", json_integer(f.policy_errors));
	json_object_set_new(f.fleet, "failed_activations", json_integer(f.failed));
	json_object_set_new(f.fleet, "policy_versions", versions);
	if (r < 0)
		return -1;
	/* hostnames for the top agents */
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(topo, "agents"), i, a)
	{
		char *host = NULL;
		store_param_t id = store_text(json_string_value(json_object_get(a, "key")));
		if (q(c, "SELECT hostname FROM agents WHERE agent_id = ?", &id, 1, store_row_dup, &host) < 0)
			return -1;
		json_object_set_new(a, "hostname", host ? json_string(host) : json_null());
		free(host);
	}
	json_t *blocks = json_array();
	json_object_set_new(out, "latest_blocks", blocks);
	store_param_t b[3] = {store_int(since_ms), store_int(until_ms), store_int(TOP_N)};
	return q(c,
		 "SELECT body FROM events WHERE kind = 'verdict' AND verdict = 'block' AND ts_ms >= ? AND ts_ms < ? "
		 "ORDER BY ts_ms DESC, seq DESC LIMIT ?",
		 b, 3, row_block, blocks) < 0
		       ? -1
		       : 0;
}
