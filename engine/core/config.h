/*
 * config: every tunable of the engine, with safe defaults, loaded from a JSON
 * file (`dlpgate run --config FILE`, schema in schemas/config.schema.json).
 *
 * The defaults are the product's "embedded defaults": a config file only
 * overrides. Loading is strict: an unknown key, a wrong type or a value out
 * of range is an error naming the key, because a typo in a limit that is
 * silently ignored is a limit that does not exist.
 */
#ifndef DLPGATE_CONFIG_H
#define DLPGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { TLS_MIN_1_2 = 0, TLS_MIN_1_3 } tls_min_t;
typedef enum { FSYNC_NEVER = 0, FSYNC_INTERVAL, FSYNC_ALWAYS } fsync_mode_t;
typedef enum { FLOW_EVENTS_OFF = 0, FLOW_EVENTS_UNINSPECTED, FLOW_EVENTS_ALL } flow_events_t;

typedef struct {
	/* limits */
	uint32_t max_connections;      /* client connections open at once, whole process */
	uint32_t header_bytes;         /* request or response head (line + headers) */
	uint32_t header_count;         /* header fields in one head */
	uint32_t pipeline_depth;       /* requests sent upstream and not yet answered */
	uint32_t clienthello_bytes;    /* TLS ClientHello reassembly */

	/* timeouts, milliseconds */
	uint32_t connect_timeout_ms;   /* DNS + TCP connect upstream */
	uint32_t handshake_timeout_ms; /* each TLS handshake */
	uint32_t header_timeout_ms;    /* a whole request head must arrive within this */
	uint32_t keepalive_timeout_ms; /* idle client connection between requests */
	uint32_t idle_timeout_ms;      /* no byte either way mid-message or in a tunnel */
	uint32_t drain_timeout_ms;     /* a graceful stop waits this long for messages in flight */

	/* TLS */
	uint32_t leaf_cache_size;
	uint32_t upstream_session_cache_size;
	uint32_t pinned_ttl_s;         /* how long a client that rejected our cert is spliced */
	uint32_t pinned_max;
	tls_min_t tls_min_version;

	/* decisions */
	char **bypass_hosts;           /* host globs spliced untouched */
	size_t n_bypass_hosts;

	/* reporting: the spool and the uploader (report/) */
	uint32_t spool_max_kb;
	uint32_t spool_segment_kb;
	fsync_mode_t spool_fsync;
	uint32_t fsync_interval_ms;
	uint32_t batch_max_events;
	uint32_t batch_max_kb;
	uint32_t batch_wait_ms;        /* an event waits at most this long for a batch */
	uint32_t drain_events_per_s;   /* upload rate cap: a backlog never floods the console */
	uint32_t retry_max_s;          /* backoff ceiling */
	uint32_t status_interval_s;
	uint32_t shutdown_flush_ms;    /* how long a graceful stop keeps uploading */
	flow_events_t flow_events;
	uint32_t flow_sample_percent;

	/* process */
	uint32_t workers;              /* 0 = one per core */
} config_t;

void config_defaults(config_t *c);
/* Loads FILE over the defaults already in c. On error returns false and
 * writes one line naming the file, the key and the problem into err. */
bool config_load_file(config_t *c, const char *path, char *err, size_t errlen);
void config_free(config_t *c);

#endif
