/*
 * stop: how `dlpgate run` ends on SIGTERM or SIGINT, as a service manager
 * expects. The first signal starts a graceful stop: the listeners close at
 * once (a new connection is refused, so a load balancer or the redirect's
 * fail direction takes over), messages in flight get timeouts.drain_ms to
 * finish, then the loop returns; run then closes what is left and the
 * spool gets report.shutdown_flush_ms to reach the console. A second
 * signal means "now": the loop returns at once and nothing is flushed.
 * Both end with exit code 0: an admin asked for the stop.
 */
#ifndef DLPGATE_CLI_STOP_H
#define DLPGATE_CLI_STOP_H

#include "engine.h"

#include <stdbool.h>
#include <uv.h>

typedef struct {
	engine_t *e;
	uv_signal_t sint, sterm;
	uv_timer_t tick;
	uint64_t deadline;
	unsigned signals;
} cli_stop_t;

/* Installs the SIGINT and SIGTERM handlers on loop. */
void cli_stop_init(cli_stop_t *s, uv_loop_t *loop, engine_t *e);
/* After uv_run returned: whether the spool may still be flushed. */
bool cli_stop_graceful(const cli_stop_t *s);
void cli_stop_close(cli_stop_t *s);

#endif
