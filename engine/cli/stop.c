/* The graceful stop of `dlpgate run`; see stop.h. */
#include "cli/stop.h"

#include "core/log.h"
#include "net/worker.h"

#include <signal.h>
#include <stdatomic.h>

#define STOP_TICK_MS 20

static void on_tick(uv_timer_t *t)
{
	cli_stop_t *s = t->data;
	unsigned open = atomic_load(&s->e->connections);
	if (open && uv_now(t->loop) < s->deadline)
		return;
	if (open)
		log_msg(LOG_WARN, "drain_timeout", "%u connections still busy after timeouts.drain_ms (%u ms): closing them",
			open, s->e->cfg.drain_timeout_ms);
	uv_stop(t->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
	cli_stop_t *s = h->data;
	if (++s->signals > 1) {
		log_msg(LOG_WARN, "stop", "signal %d again: stopping at once (spool kept for the next start)", signum);
		uv_stop(h->loop);
		return;
	}
	log_line_t l;
	log_begin(&l, LOG_INFO, "stop");
	log_kv_u64(&l, "signal", (uint64_t)signum);
	log_kv_u64(&l, "connections", atomic_load(&s->e->connections));
	log_kv_u64(&l, "drain_ms", s->e->cfg.drain_timeout_ms);
	log_end(&l);
	worker_drain_all(s->e);
	s->deadline = uv_now(h->loop) + s->e->cfg.drain_timeout_ms;
	uv_timer_start(&s->tick, on_tick, 0, STOP_TICK_MS);
}

void cli_stop_init(cli_stop_t *s, uv_loop_t *loop, engine_t *e)
{
	s->e = e;
	s->signals = 0;
	uv_timer_init(loop, &s->tick);
	s->tick.data = s;
	uv_signal_init(loop, &s->sint);
	uv_signal_init(loop, &s->sterm);
	s->sint.data = s->sterm.data = s;
	uv_signal_start(&s->sint, on_signal, SIGINT);
	uv_signal_start(&s->sterm, on_signal, SIGTERM);
}

bool cli_stop_graceful(const cli_stop_t *s)
{
	return s->signals < 2;
}

void cli_stop_close(cli_stop_t *s)
{
	uv_close((uv_handle_t *)&s->tick, NULL);
	uv_close((uv_handle_t *)&s->sint, NULL);
	uv_close((uv_handle_t *)&s->sterm, NULL);
}
