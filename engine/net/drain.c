/*
 * drain: the worker's half of a graceful stop. Its listeners are closed
 * (worker.c); from then on, every DRAIN_TICK_MS, each connection that
 * rests between messages is ended (the worker's hooks decide what "at
 * rest" means: the flow layer asks http/relay.c), so a keep-alive
 * connection goes as soon as its last response is out and
 * a message in flight is never cut. Tunnels that are spliced, not parsed,
 * have no message boundary to wait for: they run until the main thread's
 * drain time is up and worker_stop_all closes what is left.
 *
 * A timer, not a hook in the relay: the relay stays unaware of shutdown,
 * and 50 ms is nothing next to a drain time measured in seconds.
 */
#include "net/worker.h"

#define DRAIN_TICK_MS 50

static void on_drain_tick(uv_timer_t *t)
{
	worker_t *w = t->data;
	w->hooks->end_at_rest(w);
}

void drain_begin(worker_t *w)
{
	if (w->draining)
		return;
	w->draining = true;
	uv_timer_init(&w->loop, &w->drain_timer);
	w->drain_timer.data = w;
	uv_timer_start(&w->drain_timer, on_drain_tick, 0, DRAIN_TICK_MS);
}

void drain_end(worker_t *w)
{
	if (!w->draining)
		return;
	w->draining = false;
	uv_close((uv_handle_t *)&w->drain_timer, NULL);
}
