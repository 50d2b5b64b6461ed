/* Prometheus counters and their text format; see metrics.h. */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char *values[METRICS_MAX_LABELS]; /* written before the series is published, never after */
	_Atomic uint64_t n;
} series_t;

struct metrics_family {
	metrics_family_t *next;
	const char *name, *help;
	char *label_names[METRICS_MAX_LABELS];
	unsigned n_labels;
	pthread_mutex_t lock; /* only to append a series */
	series_t series[METRICS_MAX_SERIES];
	atomic_uint n_series; /* published: series below it are complete */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static metrics_family_t *families, **families_tail = &families;

metrics_family_t *metrics_counter(const char *name, const char *help, const char *labels)
{
	metrics_family_t *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->name = name;
	f->help = help;
	pthread_mutex_init(&f->lock, NULL);
	for (const char *p = labels; p && *p && f->n_labels < METRICS_MAX_LABELS;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		f->label_names[f->n_labels++] = strndup(p, n);
		p += n + (comma ? 1 : 0);
	}
	pthread_mutex_lock(&registry_lock);
	*families_tail = f;
	families_tail = &f->next;
	pthread_mutex_unlock(&registry_lock);
	return f;
}

static bool same(const series_t *s, unsigned n, const char *const v[])
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(s->values[i], v[i] ? v[i] : ""))
			return false;
	return true;
}

/* A published series for v, or NULL; no lock. */
static series_t *find(metrics_family_t *f, const char *const v[])
{
	unsigned n = atomic_load_explicit(&f->n_series, memory_order_acquire);
	for (unsigned i = 0; i < n; i++)
		if (same(&f->series[i], f->n_labels, v))
			return &f->series[i];
	return NULL;
}

/* The series for v, appended if new; the "other" series once the family
 * is full. */
static series_t *find_or_add(metrics_family_t *f, const char *const v[])
{
	series_t *s = find(f, v);
	if (s)
		return s;
	pthread_mutex_lock(&f->lock);
	s = find(f, v); /* another worker may have added it meanwhile */
	unsigned n = atomic_load_explicit(&f->n_series, memory_order_relaxed);
	/* The last slot is the "other" series: made by the first value that
	 * finds only it free, then everything new lands there. */
	static const char *const other[METRICS_MAX_LABELS] = {"other", "other", "other"};
	if (!s && n == METRICS_MAX_SERIES)
		s = &f->series[METRICS_MAX_SERIES - 1];
	if (!s) {
		if (n == METRICS_MAX_SERIES - 1)
			v = other;
		s = &f->series[n];
		for (unsigned i = 0; i < f->n_labels && s; i++) {
			s->values[i] = strdup(v[i] ? v[i] : "");
			if (!s->values[i]) {
				while (i--)
					free(s->values[i]);
				s = NULL;
			}
		}
		if (s)
			atomic_store_explicit(&f->n_series, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&f->lock);
	return s;
}

void metrics_add(metrics_family_t *f, uint64_t n, const char *v1, const char *v2, const char *v3)
{
	if (!f)
		return;
	const char *const v[METRICS_MAX_LABELS] = {v1, v2, v3};
	series_t *s = find_or_add(f, v);
	if (s)
		atomic_fetch_add_explicit(&s->n, n, memory_order_relaxed);
}

uint64_t metrics_value(metrics_family_t *f, const char *v1, const char *v2, const char *v3)
{
	if (!f)
		return 0;
	const char *const v[METRICS_MAX_LABELS] = {v1, v2, v3};
	series_t *s = find(f, v);
	return s ? atomic_load_explicit(&s->n, memory_order_relaxed) : 0;
}

/* A label value: backslash, double quote and newline escaped, as the
 * format says. */
static bool append_value(bytebuf_t *out, const char *v)
{
	bool ok = bytebuf_append(out, "\"", 1);
	for (; *v && ok; v++) {
		if (*v == '\\' || *v == '"')
			ok = bytebuf_appendf(out, "\\%c", *v);
		else if (*v == '\n')
			ok = bytebuf_append(out, "\\n", 2);
		else
			ok = bytebuf_append(out, v, 1);
	}
	return ok && bytebuf_append(out, "\"", 1);
}

static bool append_number(bytebuf_t *out, double value)
{
	if (isnan(value))
		return bytebuf_append_str(out, "NaN\n");
	if (value == floor(value) && fabs(value) < 9e15)
		return bytebuf_appendf(out, "%.0f\n", value);
	return bytebuf_appendf(out, "%.3f\n", value); /* timestamps and ages: ms is enough */
}

bool metrics_header(bytebuf_t *out, const char *name, const char *help, const char *type)
{
	return bytebuf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* labels: "k=v,k2=v2" (values without commas or '='), or NULL. */
bool metrics_sample(bytebuf_t *out, const char *name, const char *labels, double value)
{
	bool ok = bytebuf_append_str(out, name);
	if (labels && *labels) {
		ok = ok && bytebuf_append(out, "{", 1);
		for (const char *p = labels; *p && ok;) {
			const char *eq = strchr(p, '='), *comma = strchr(p, ',');
			if (!eq)
				break;
			size_t vn = comma ? (size_t)(comma - eq - 1) : strlen(eq + 1);
			char v[256];
			snprintf(v, sizeof v, "%.*s", (int)vn, eq + 1);
			ok = ok && bytebuf_append(out, p, (size_t)(eq - p) + 1) && append_value(out, v);
			p = comma ? comma + 1 : eq + 1 + vn;
			if (comma)
				ok = ok && bytebuf_append(out, ",", 1);
		}
		ok = ok && bytebuf_append(out, "}", 1);
	}
	return ok && bytebuf_append(out, " ", 1) && append_number(out, value);
}

bool metrics_gauge(bytebuf_t *out, const char *name, const char *help, const char *labels, double value)
{
	return metrics_header(out, name, help, "gauge") && metrics_sample(out, name, labels, value);
}

static bool render_family(bytebuf_t *out, metrics_family_t *f)
{
	bool ok = metrics_header(out, f->name, f->help, "counter");
	unsigned n = atomic_load_explicit(&f->n_series, memory_order_acquire);
	for (unsigned i = 0; i < n && ok; i++) {
		series_t *s = &f->series[i];
		ok = bytebuf_append_str(out, f->name);
		if (f->n_labels) {
			ok = ok && bytebuf_append(out, "{", 1);
			for (unsigned k = 0; k < f->n_labels && ok; k++)
				ok = bytebuf_appendf(out, "%s%s=", k ? "," : "", f->label_names[k]) &&
				     append_value(out, s->values[k]);
			ok = ok && bytebuf_append(out, "}", 1);
		}
		ok = ok && bytebuf_appendf(out, " %llu\n",
					   (unsigned long long)atomic_load_explicit(&s->n, memory_order_relaxed));
	}
	/* A family nobody counted yet still shows, at 0 when it has no labels,
	 * so a dashboard sees the metric exists. */
	if (ok && !n && !f->n_labels)
		ok = bytebuf_appendf(out, "%s 0\n", f->name);
	return ok;
}

bool metrics_render(bytebuf_t *out)
{
	bool ok = true;
	pthread_mutex_lock(&registry_lock); /* metrics_add never takes it */
	for (metrics_family_t *f = families; f && ok; f = f->next)
		ok = render_family(out, f);
	pthread_mutex_unlock(&registry_lock);
	return ok;
}
