/*
 * metrics: counters and gauges for Prometheus' text exposition format
 * (version 0.0.4), the one scraping contract every monitoring stack reads.
 *
 * A counter family has a name (`dlpgate_..._total`, the unit in the name),
 * a help text and up to METRICS_MAX_LABELS label names; each distinct set
 * of label values is a series. Label values must come from small fixed
 * sets (a flow's mode, why it ended, a detector of the loaded policy),
 * never from the network: past METRICS_MAX_SERIES a family folds new
 * values into one series labelled "other" rather than grow.
 *
 * metrics_add runs on the workers per flow end, per message and per
 * handshake, so it takes no lock: series are only ever appended, each
 * published by a release store of the family's count, found by a scan of
 * what is published, and counted with an atomic add. Only a label value
 * the family has not seen takes the family's mutex, once. Gauges are not stored here: the exposing program
 * writes them at scrape time (metrics_gauge) from what it already knows.
 */
#ifndef DLPGATE_METRICS_H
#define DLPGATE_METRICS_H

#include "core/bytebuf.h"

#include <stdint.h>

#define METRICS_MAX_LABELS 3
#define METRICS_MAX_SERIES 256

typedef struct metrics_family metrics_family_t;

/* A counter family, registered once (process lifetime); labels is a
 * comma-separated list of names ("" for none). NULL when out of memory,
 * and metrics_add(NULL, ...) does nothing. */
metrics_family_t *metrics_counter(const char *name, const char *help, const char *labels);
/* Adds n to the series with these values (as many as the family has
 * labels; NULL counts as ""). */
void metrics_add(metrics_family_t *f, uint64_t n, const char *v1, const char *v2, const char *v3);
/* The current value of a series (tests, status). */
uint64_t metrics_value(metrics_family_t *f, const char *v1, const char *v2, const char *v3);

/* Every registered counter family, in registration order. */
bool metrics_render(bytebuf_t *out);
/* One gauge family with one series (labels "k=v,k2=v2" or NULL). */
bool metrics_gauge(bytebuf_t *out, const char *name, const char *help, const char *labels, double value);
/* The HELP and TYPE lines, then each series by metrics_sample. */
bool metrics_header(bytebuf_t *out, const char *name, const char *help, const char *type);
bool metrics_sample(bytebuf_t *out, const char *name, const char *labels, double value);

#endif
