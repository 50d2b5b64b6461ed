/*
 * watchdog: is the engine answering, and is the extension's own flow
 * queue turning over? The decisions only, with the clock passed in (ms of
 * a monotonic clock that stops during sleep, CLOCK_UPTIME_RAW in the
 * extension), so tests/unit/test_sysext_watchdog.c drives it on Linux.
 *
 * The extension calls watchdog_tick every WATCHDOG_TICK_MS from a dispatch
 * timer on a queue of its own, and reports what happens on the flow queue.
 * The state is the first of:
 *
 *   EXTENSION_STALLED  a heartbeat block posted to the flow queue has not
 *                      run within WATCHDOG_STALL_MS (the queue is stuck:
 *                      flows accepted now would wait behind it).
 *   ENGINE_UNREACHABLE the last connection to the engine's socket failed
 *                      (no socket, refused: engine stopped or restarting).
 *   ENGINE_STALLED     a probe of the engine has had no reply within
 *                      WATCHDOG_STALL_MS.
 *   OK
 *
 * A flow's own reply is not the stall signal: the engine answers a flow
 * only once its upstream connection is up, so a slow or tarpitting
 * destination would otherwise look like a stalled engine, and with
 * fail_mode open anyone could buy an uninspected flow with a slow server.
 * A flow request with no reply for WATCHDOG_PROBE_AFTER_MS (and no other
 * reply meanwhile) only makes the watchdog probe the engine: the control
 * request (the bypass table), which the engine answers itself. The
 * probe's reply is the liveness proof. While unreachable or stalled the
 * engine is probed once per WATCHDOG_PROBE_EVERY_MS, and the first reply
 * (probe or flow) ends the stall; a reply of any kind after a probe was
 * sent also clears that probe's failure (the engine is alive, whatever
 * kept the probe). wake() probes at once.
 *
 * Whoever calls these serialises them (one lock in the extension).
 * watchdog_tick says when the state changed, so the caller logs one line
 * per change and never one per flow.
 */
#ifndef DLPGATE_SYSEXT_WATCHDOG_H
#define DLPGATE_SYSEXT_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

#define WATCHDOG_TICK_MS 100
#define WATCHDOG_STALL_MS 700
#define WATCHDOG_PROBE_AFTER_MS 100
#define WATCHDOG_PROBE_EVERY_MS 1000

typedef enum {
	WATCHDOG_OK = 0,
	WATCHDOG_ENGINE_STALLED,
	WATCHDOG_ENGINE_UNREACHABLE,
	WATCHDOG_EXTENSION_STALLED,
} watchdog_state_t;

typedef enum {
	WATCHDOG_PROBE_ANSWERED,    /* the engine sent its table */
	WATCHDOG_PROBE_UNREACHABLE, /* connect() failed */
	WATCHDOG_PROBE_NO_ANSWER,   /* connected, but closed or timed out without a table */
} watchdog_probe_t;

typedef struct {
	/* the engine */
	unsigned outstanding; /* flow requests sent and not yet answered or given up */
	uint64_t waiting_since; /* last reply, or when outstanding became non-zero */
	uint64_t answered_at;   /* the last reply of any kind (0: none yet) */
	bool unreachable, stalled;
	bool probing, probe_due, probed_ever;
	uint64_t probe_sent;
	unsigned probe_id;
	/* the flow queue */
	bool heartbeat_pending;
	uint64_t heartbeat_sent;
	bool asleep;
	watchdog_state_t state; /* as the last tick reported it */
} watchdog_t;

typedef struct {
	watchdog_state_t state, was;
	bool changed;        /* state != was: log one line, apply the fail mode to pending flows */
	bool send_heartbeat; /* post a block to the flow queue that calls watchdog_heartbeat_ran */
	bool probe;          /* ask the engine for its table, then watchdog_probe_done(probe_id) */
	unsigned probe_id;
} watchdog_tick_t;

void watchdog_init(watchdog_t *w, uint64_t now);
watchdog_tick_t watchdog_tick(watchdog_t *w, uint64_t now);

/* A flow's request frame was sent (the socket connected: the engine is
 * reachable), its reply decoded (any verdict), or it ended otherwise
 * (closed, bad frame, failed over by the watchdog). Every asked is
 * followed by exactly one answered or unanswered. */
void watchdog_engine_asked(watchdog_t *w, uint64_t now);
void watchdog_engine_answered(watchdog_t *w, uint64_t now);
void watchdog_engine_unanswered(watchdog_t *w);
/* connect() to the engine's socket failed. */
void watchdog_engine_unreachable(watchdog_t *w);

void watchdog_probe_done(watchdog_t *w, uint64_t now, unsigned probe_id, watchdog_probe_t result);
void watchdog_heartbeat_ran(watchdog_t *w);

/* The system sleeps: ticks change nothing until wake, which forgets the
 * heartbeat and probe in flight (the sleep is no stall) and probes the
 * engine at the next tick. */
void watchdog_sleep(watchdog_t *w);
void watchdog_wake(watchdog_t *w, uint64_t now);

/* The last tick's state; not OK means the fail mode applies. */
watchdog_state_t watchdog_state(const watchdog_t *w);
const char *watchdog_state_name(watchdog_state_t s);

#endif
