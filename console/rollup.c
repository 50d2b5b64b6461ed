/*
 * rollup: hourly counts of verdict events, kept at ingest, so the
 * dashboard's week is a few hundred thousand small rows summed instead of a
 * million events grouped (console-api.md "Dashboard"; numbers in
 * tests/bench/ui_query.sh).
 *
 * event_rollup (dim, hour_ms, k, shard) -> n, for dim "v" (k the verdict),
 * "host", "app" (path, else signing id), "agent" and "det" (events in which
 * that detector found something); the last four also per day ("host.d"...,
 * hour_ms the day's start). A batch is folded in C (sorted, equal
 * keys merged), then upserted with multi-row INSERT ... ON CONFLICT DO
 * UPDATE as the last statements of the ingest transaction: the counts
 * commit with their events or not at all. The rows are always upserted in
 * key order, so two transactions never lock them in opposite orders (no
 * deadlock on PostgreSQL). `shard` (from the agent id, ROLLUP_SHARDS of
 * them) spreads the rows every batch touches (this hour's "pass", the
 * busiest host) over several rows, so concurrent agents' transactions on
 * PostgreSQL wait on each other's row locks less; readers sum the shards.
 */
#include "store.h"

#include "core/bytebuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define ROLLUP_COLS 5

static int shard_of(const char *agent_id)
{
	unsigned h = 0;
	for (const char *p = agent_id; *p; p++)
		h = h * 31 + (unsigned char)*p;
	return (int)(h % ROLLUP_SHARDS);
}

static bool add(rollup_acc_t *a, const char *dim, int64_t hour, const char *k, int shard)
{
	if (!k)
		return true;
	if (!bytebuf_grow_array(&a->rows, sizeof *a->rows, a->n, &a->cap, 256))
		return false;
	a->rows[a->n++] = (rollup_row_t){dim, hour, k, shard, 1};
	return true;
}

/* The hour's row and the day's ("DIM.d"): a week's top list reads six
 * days' rows and the hours of the two partial days, not 168 hours'. */
static bool add2(rollup_acc_t *a, const char *dim, const char *daily, int64_t ts, const char *k, int shard)
{
	return add(a, dim, ts / HOUR_MS * HOUR_MS, k, shard) && add(a, daily, ts / DAY_MS * DAY_MS, k, shard);
}

bool rollup_add_event(rollup_acc_t *a, const store_event_t *e, const char *agent_id)
{
	if (!e->kind || strcmp(e->kind, "verdict") || !e->verdict)
		return true;
	int shard = shard_of(agent_id);
	bool ok = add(a, "v", e->ts_ms / HOUR_MS * HOUR_MS, e->verdict, shard) &&
		  add2(a, "host", "host.d", e->ts_ms, e->host, shard) &&
		  add2(a, "app", "app.d", e->ts_ms, e->app_path ? e->app_path : e->app_signing_id, shard) &&
		  add2(a, "agent", "agent.d", e->ts_ms, agent_id, shard);
	for (size_t i = 0; ok && i < e->n_detectors; i++)
		if (e->det_counts[i] > 0)
			ok = add2(a, "det", "det.d", e->ts_ms, e->det_names[i], shard);
	return ok;
}

static int cmp_row(const void *x, const void *y)
{
	const rollup_row_t *a = x, *b = y;
	int c = strcmp(a->dim, b->dim);
	if (c)
		return c;
	if (a->hour != b->hour)
		return a->hour < b->hour ? -1 : 1;
	if ((c = strcmp(a->k, b->k)))
		return c;
	return a->shard - b->shard;
}

bool rollup_flush(store_conn_t *c, rollup_acc_t *a)
{
	if (!a->n)
		return true;
	qsort(a->rows, a->n, sizeof *a->rows, cmp_row);
	size_t m = 0;
	for (size_t i = 0; i < a->n; i++) {
		if (m && !cmp_row(&a->rows[m - 1], &a->rows[i]))
			a->rows[m - 1].n += a->rows[i].n;
		else
			a->rows[m++] = a->rows[i];
	}
	store_param_t *p = malloc(m * ROLLUP_COLS * sizeof *p);
	if (!p) {
		snprintf(c->error, sizeof c->error, "out of memory");
		return false;
	}
	for (size_t i = 0; i < m; i++) {
		const rollup_row_t *r = &a->rows[i];
		store_param_t row[ROLLUP_COLS] = {store_text(r->dim), store_int(r->hour), store_text(r->k),
						  store_int(r->shard), store_int(r->n)};
		memcpy(&p[i * ROLLUP_COLS], row, sizeof row);
	}
	bool ok = store_insert_rows(c, "INSERT INTO event_rollup (dim, hour_ms, k, shard, n)", ROLLUP_COLS, p, m,
				    " ON CONFLICT (dim, hour_ms, k, shard) DO UPDATE SET n = event_rollup.n + excluded.n",
				    NULL, NULL);
	free(p);
	return ok;
}

void rollup_free(rollup_acc_t *a)
{
	free(a->rows);
	memset(a, 0, sizeof *a);
}
