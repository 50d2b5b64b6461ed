/*
 * watchdog: the decisions of watchdog.h. Times are unsigned milliseconds
 * of one monotonic clock; "now - t" never goes negative because the
 * caller's clock never goes back.
 */
#include "watchdog.h"

#include <string.h>

void watchdog_init(watchdog_t *w, uint64_t now)
{
	memset(w, 0, sizeof *w);
	w->waiting_since = now;
}

static bool probe_allowed(const watchdog_t *w, uint64_t now)
{
	return !w->probed_ever || now - w->probe_sent >= WATCHDOG_PROBE_EVERY_MS;
}

/* Has the engine answered anything since t? Times are from one clock
 * that starts well above 0, so 0 means never. */
static bool answered_since(const watchdog_t *w, uint64_t t)
{
	return w->answered_at && w->answered_at >= t;
}

watchdog_tick_t watchdog_tick(watchdog_t *w, uint64_t now)
{
	watchdog_tick_t t = {.state = w->state, .was = w->state};
	if (w->asleep)
		return t;

	if (!w->heartbeat_pending) {
		w->heartbeat_pending = true;
		w->heartbeat_sent = now;
		t.send_heartbeat = true;
	}
	if (w->probing && now - w->probe_sent >= WATCHDOG_STALL_MS && !answered_since(w, w->probe_sent))
		w->stalled = true;

	/* a flow waiting with no reply from the engine at all meanwhile */
	bool suspect = w->outstanding && now - w->waiting_since >= WATCHDOG_PROBE_AFTER_MS;
	if (!w->probing && (w->probe_due || ((suspect || w->unreachable || w->stalled) && probe_allowed(w, now)))) {
		w->probing = true;
		w->probed_ever = true;
		w->probe_due = false;
		w->probe_sent = now;
		t.probe = true;
		t.probe_id = ++w->probe_id;
	}

	if (w->heartbeat_pending && now - w->heartbeat_sent >= WATCHDOG_STALL_MS)
		t.state = WATCHDOG_EXTENSION_STALLED;
	else if (w->unreachable)
		t.state = WATCHDOG_ENGINE_UNREACHABLE;
	else if (w->stalled)
		t.state = WATCHDOG_ENGINE_STALLED;
	else
		t.state = WATCHDOG_OK;
	t.changed = t.state != w->state;
	w->state = t.state;
	return t;
}

/* Any reply shows the engine is there and working. */
static void alive(watchdog_t *w, uint64_t now)
{
	w->unreachable = false;
	w->stalled = false;
	w->waiting_since = now;
	w->answered_at = now;
}

void watchdog_engine_asked(watchdog_t *w, uint64_t now)
{
	if (!w->outstanding)
		w->waiting_since = now;
	w->outstanding++;
	w->unreachable = false; /* it connected */
}

void watchdog_engine_answered(watchdog_t *w, uint64_t now)
{
	if (w->outstanding)
		w->outstanding--;
	alive(w, now);
}

void watchdog_engine_unanswered(watchdog_t *w)
{
	if (w->outstanding)
		w->outstanding--;
}

void watchdog_engine_unreachable(watchdog_t *w)
{
	w->unreachable = true;
}

void watchdog_probe_done(watchdog_t *w, uint64_t now, unsigned probe_id, watchdog_probe_t result)
{
	/* a probe from before a wake, or one already given up on */
	if (!w->probing || probe_id != w->probe_id)
		return;
	w->probing = false;
	switch (result) {
	case WATCHDOG_PROBE_ANSWERED:
		alive(w, now);
		break;
	case WATCHDOG_PROBE_UNREACHABLE:
		w->unreachable = true;
		break;
	case WATCHDOG_PROBE_NO_ANSWER:
		w->unreachable = false;
		if (!answered_since(w, w->probe_sent))
			w->stalled = true;
		break;
	}
}

void watchdog_heartbeat_ran(watchdog_t *w)
{
	w->heartbeat_pending = false;
}

void watchdog_sleep(watchdog_t *w)
{
	w->asleep = true;
}

void watchdog_wake(watchdog_t *w, uint64_t now)
{
	w->asleep = false;
	w->heartbeat_pending = false;
	w->probing = false; /* its late answer is ignored by id */
	w->probe_due = true;
	w->waiting_since = now;
}

watchdog_state_t watchdog_state(const watchdog_t *w)
{
	return w->state;
}

#define MS_TEXT(ms) #ms
#define STALL_TEXT(ms) MS_TEXT(ms) " ms"

const char *watchdog_state_name(watchdog_state_t s)
{
	switch (s) {
	case WATCHDOG_OK:
		return "ok";
	case WATCHDOG_ENGINE_STALLED:
		return "engine stalled (no reply to a probe within " STALL_TEXT(WATCHDOG_STALL_MS) ")";
	case WATCHDOG_ENGINE_UNREACHABLE:
		return "engine unreachable (its socket refused the connection)";
	case WATCHDOG_EXTENSION_STALLED:
		return "extension stalled (flow queue did not turn over within " STALL_TEXT(WATCHDOG_STALL_MS) ")";
	}
	return "?";
}
