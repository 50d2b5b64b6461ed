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

/* 0, or -1 when the statement failed */
static int q0(store_conn_t *c, const char *sql, const store_param_t *p, int np, store_row_fn fn, void *ud)
{
	return q(c, sql, p, np, fn, ud) < 0 ? -1 : 0;
}

/* Counts are gathered into acc (key -> n): for the series the key is
 * "BUCKET\x1fVERDICT", for a top list the value. Whole hours inside the
 * range come from event_rollup, the partial hours at its ends from the
 * events themselves (at most two hours of rows). */
static bool row_acc(void *ud, int n, const char *const *cols)
{
	if (n < 3 || !cols[0] || !cols[1] || !cols[2])
		return true;
	char key[2200];
	if (cols[1][0])
		snprintf(key, sizeof key, "%s\x1f%s", cols[0], cols[1]);
	else
		snprintf(key, sizeof key, "%s", cols[0]);
	json_t *v = json_object_get(ud, key);
	json_object_set_new(ud, key, json_integer(json_integer_value(v) + strtoll(cols[2], NULL, 10)));
	return true;
}

typedef struct {
	const char *dim, *daily;
	const char *raw; /* over events e in [?, ?): key, '' or verdict, count */
} dim_sql_t;

static const dim_sql_t dims[] = {
	{"host", "host.d", "SELECT e.host, '', count(*) FROM events e WHERE e.kind = 'verdict' AND e.ts_ms >= ? AND e.ts_ms < ? "
		 "AND e.host IS NOT NULL GROUP BY e.host"},
	{"app", "app.d", "SELECT COALESCE(e.app_path, e.app_signing_id) AS a, '', count(*) FROM events e WHERE e.kind = 'verdict' "
		"AND e.ts_ms >= ? AND e.ts_ms < ? AND COALESCE(e.app_path, e.app_signing_id) IS NOT NULL GROUP BY a"},
	{"agent", "agent.d", "SELECT e.agent_id, '', count(*) FROM events e WHERE e.kind = 'verdict' AND e.ts_ms >= ? "
		  "AND e.ts_ms < ? GROUP BY e.agent_id"},
	/* the detectors of those days (their daily rows) each walk their own
	 * (detector, ts_ms) range: no scan of every detector row */
	{"det", "det.d", "SELECT d.detector, '', count(*) FROM event_detectors d JOIN events e ON e.seq = d.seq "
		"WHERE d.detector IN (SELECT k FROM event_rollup WHERE dim = 'det.d' AND hour_ms >= ? AND hour_ms < ?) "
		"AND d.ts_ms >= ? AND d.ts_ms < ? AND e.kind = 'verdict' GROUP BY d.detector"},
};

/* acc += counts of [since, until) for dim (NULL: the series), whole
 * hours from the hourly rows. */
static int gather_hours(store_conn_t *c, const dim_sql_t *dim, int64_t since, int64_t until, int64_t bucket,
			json_t *acc)
{
	int64_t hs = (since + 3599999) / 3600000 * 3600000, hu = until / 3600000 * 3600000;
	bool rolled = bucket >= 3600000 && hs < hu;
	int64_t edges[2][2] = {{since, rolled ? hs : until}, {rolled ? hu : until, until}};
	for (int i = 0; i < 2; i++) {
		if (edges[i][0] >= edges[i][1])
			continue;
		if (!dim) {
			store_param_t p[4] = {store_int(bucket), store_int(bucket), store_int(edges[i][0]),
					      store_int(edges[i][1])};
			if (q(c,
			      "SELECT (ts_ms / ?) * ? AS t, verdict, count(*) FROM events WHERE kind = 'verdict' "
			      "AND ts_ms >= ? AND ts_ms < ? AND verdict IS NOT NULL GROUP BY t, verdict",
			      p, 4, row_acc, acc) < 0)
				return -1;
		} else {
			bool keyed = !strcmp(dim->dim, "det");
			store_param_t p[4] = {store_int(edges[i][0] / 86400000 * 86400000), store_int(edges[i][1]),
					      store_int(edges[i][0]), store_int(edges[i][1])};
			if (q(c, dim->raw, keyed ? p : p + 2, 2 + 2 * keyed, row_acc, acc) < 0)
				return -1;
		}
	}
	if (!rolled)
		return 0;
	if (!dim) {
		store_param_t p[4] = {store_int(bucket), store_int(bucket), store_int(hs), store_int(hu)};
		return q0(c,
			 "SELECT (hour_ms / ?) * ? AS t, k, sum(n) FROM event_rollup WHERE dim = 'v' AND hour_ms >= ? "
			 "AND hour_ms < ? GROUP BY t, k",
			 p, 4, row_acc, acc);
	}
	store_param_t p[3] = {store_text(dim->dim), store_int(hs), store_int(hu)};
	return q0(c,
		 "SELECT k, '', sum(n) FROM event_rollup WHERE dim = ? AND hour_ms >= ? AND hour_ms < ? GROUP BY k", p,
		 3, row_acc, acc);
}

/* The same, whole days of a top list from the daily rows. */
static int gather(store_conn_t *c, const dim_sql_t *dim, int64_t since, int64_t until, int64_t bucket, json_t *acc)
{
	int64_t ds = (since + 86399999) / 86400000 * 86400000, du = until / 86400000 * 86400000;
	if (!dim || bucket < 3600000 || ds >= du)
		return gather_hours(c, dim, since, until, bucket, acc);
	if (gather_hours(c, dim, since, ds, bucket, acc) || gather_hours(c, dim, du, until, bucket, acc))
		return -1;
	store_param_t p[3] = {store_text(dim->daily), store_int(ds), store_int(du)};
	return q0(c,
		  "SELECT k, '', sum(n) FROM event_rollup WHERE dim = ? AND hour_ms >= ? AND hour_ms < ? GROUP BY k", p,
		  3, row_acc, acc);
}

static int by_count(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t m = json_integer_value(json_object_get(x, "count")), n = json_integer_value(json_object_get(y, "count"));
	if (m != n)
		return m < n ? 1 : -1;
	return strcmp(json_string_value(json_object_get(x, "key")), json_string_value(json_object_get(y, "key")));
}

/* The TOP_N keys of acc, most first. */
static json_t *top_of(json_t *acc)
{
	size_t n = json_object_size(acc), i = 0;
	json_t **v = calloc(n + 1, sizeof *v), *out = json_array(), *val;
	const char *k;
	json_object_foreach(acc, k, val) v[i++] = json_pack("{s:s, s:I}", "key", k, "count", json_integer_value(val));
	qsort(v, n, sizeof *v, by_count);
	for (i = 0; i < n; i++)
		if (i < TOP_N)
			json_array_append_new(out, v[i]);
		else
			json_decref(v[i]);
	free(v);
	return out;
}

static int by_time(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* acc "T\x1fverdict" -> n into the series (time order) and totals. */
static void series_of(json_t *acc, json_t *series, json_t *totals)
{
	size_t n = json_object_size(acc), m = 0;
	int64_t *ts = calloc(n + 1, sizeof *ts);
	json_t *by = json_object(), *val;
	const char *k;
	json_object_foreach(acc, k, val)
	{
		const char *sep = strchr(k, '\x1f');
		if (!sep)
			continue;
		char t[32];
		snprintf(t, sizeof t, "%.*s", (int)(sep - k), k);
		json_t *counts = json_object_get(by, t);
		if (!counts) {
			counts = json_object();
			json_object_set_new(by, t, counts);
			ts[m++] = strtoll(t, NULL, 10);
		}
		json_int_t x = json_integer_value(val);
		json_object_set_new(counts, sep + 1, json_integer(x));
		json_object_set_new(totals, sep + 1, json_integer(json_integer_value(json_object_get(totals, sep + 1)) + x));
	}
	qsort(ts, m, sizeof *ts, by_time);
	for (size_t i = 0; i < m; i++) {
		char t[32], when[64];
		snprintf(t, sizeof t, "%lld", (long long)ts[i]);
		console_time_format(ts[i], when);
		json_array_append_new(series, json_pack("{s:s, s:O}", "t", when, "counts", json_object_get(by, t)));
	}
	json_decref(by);
	free(ts);
}

/* A latest block as the contract has it: who, where, which rule and why,
 * the detectors' names; never the event's masked samples (a viewer's
 * dashboard must not carry them, and no dashboard needs them). */
static bool row_block(void *ud, int n, const char *const *cols)
{
	if (n < 1 || !cols[0])
		return true;
	json_t *ev = json_loads(cols[0], 0, NULL);
	if (!ev)
		return true;
	json_t *flow = json_object_get(ev, "flow"), *app = json_object_get(ev, "app");
	json_t *app_name = json_object_get(app, "path") ? json_object_get(app, "path") : json_object_get(app, "signing_id");
	json_t *names = json_array(), *b = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(ev, "detectors"), k, v)
		json_array_append_new(names, json_string(k));
	const char *const copy[] = {"id", "time", "agent_id", "rule", "reason"};
	for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++)
		json_object_set(b, copy[i], json_object_get(ev, copy[i]) ? json_object_get(ev, copy[i]) : json_null());
	json_object_set(b, "host", json_object_get(flow, "host") ? json_object_get(flow, "host") : json_null());
	json_object_set(b, "app", app_name ? app_name : json_null());
	json_object_set_new(b, "detectors", names);
	json_array_append_new(ud, b);
	json_decref(ev);
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

int store_dashboard(store_conn_t *c, int64_t since_ms, int64_t until_ms, int64_t bucket_ms, int64_t now_ms,
		    json_t *out)
{
	json_t *series = json_array(), *totals = json_object(), *acc = json_object();
	json_object_set_new(out, "series", series);
	json_object_set_new(out, "totals", totals);
	int r = gather(c, NULL, since_ms, until_ms, bucket_ms, acc);
	series_of(acc, series, totals);
	json_decref(acc);
	if (r)
		return -1;
	json_t *topo = json_object();
	json_object_set_new(out, "top", topo);
	static const char *const names[] = {"hosts", "apps", "agents", "detectors"};
	for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
		acc = json_object();
		r = gather(c, &dims[i], since_ms, until_ms, bucket_ms, acc);
		json_object_set_new(topo, names[i], top_of(acc));
		json_decref(acc);
		if (r)
			return -1;
	}
	fleet_t f = {.fleet = json_object(), .silent = json_array(), .versions = json_object(), .now = now_ms};
	json_object_set_new(out, "fleet", f.fleet);
	r = (int)q(c, "SELECT agent_id, hostname, last_seen, status, failed_version FROM agents ORDER BY agent_id", NULL,
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
	return q0(c,
		 "SELECT body FROM events WHERE kind = 'verdict' AND verdict = 'block' AND ts_ms >= ? AND ts_ms < ? "
		 "ORDER BY ts_ms DESC, seq DESC LIMIT ?",
		 b, 3, row_block, blocks);
}
