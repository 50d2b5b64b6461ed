/*
 * status: what a running agent says about itself, and `dlpgate status`,
 * which asks it through STATE/control.sock (net/control.h). The answer is
 * one JSON object; `status` prints it as is with --json, as aligned
 * "key: value" lines otherwise. Exit 0 when an agent answered, 3 when none
 * runs with that state dir (the LSB code for "not running"), 2 for a usage
 * error.
 *
 * `dlpgate pinned list|clear` asks the same socket for the apps that
 * refused dlpgate's certificate (tls/pinned.h) or forgets them.
 */
#ifndef DLPGATE_CLI_STATUS_H
#define DLPGATE_CLI_STATUS_H

#include "cli/stop.h"
#include "core/bytebuf.h"
#include "engine.h"

#include <stdbool.h>
#include <stdint.h>

#define STATUS_SOCKET "control.sock"
#define STATUS_NOT_RUNNING 3

typedef struct {
	const engine_t *e;
	uint64_t started_unix_ms;
	const cli_stop_t *stop; /* has the stop begun? */
} status_source_t;

/* The answer of a running agent to a control command (malloc'd JSON):
 * "status", "pinned list", "pinned clear"; for control_start. */
char *status_answer(void *source, const char *command);
/* The agent's /metrics exposition (cli/metrics.c); for metrics_http_start. */
bool agent_metrics_render(void *source, bytebuf_t *out);

#endif
