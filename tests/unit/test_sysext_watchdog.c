/*
 * The system extension's watchdog (sysext/extension/watchdog.h) on a clock
 * the tests move: each stall is noticed at its 1 s threshold and not a
 * tick before, recovery comes with the first sign of life, the caller is
 * told once per change (one log line), a slow upstream never passes for a
 * stalled engine, and a sleep is no stall.
 */
#include "suites.h"
#include "../sysext/extension/watchdog.h"

static watchdog_t w;
static uint64_t now;
static int changes;     /* ticks that reported a change: the log lines */
static int heartbeats;  /* heartbeat blocks posted */
static int probes;      /* probes asked for */
static unsigned last_probe;

/* One tick at now; the flow queue runs the heartbeat at once if alive. */
static watchdog_tick_t tick(bool queue_alive)
{
	watchdog_tick_t t = watchdog_tick(&w, now);
	changes += t.changed;
	heartbeats += t.send_heartbeat;
	if (t.probe) {
		probes++;
		last_probe = t.probe_id;
	}
	ck_assert_int_eq(t.changed, t.state != t.was);
	ck_assert_int_eq(watchdog_state(&w), t.state);
	if (queue_alive)
		watchdog_heartbeat_ran(&w);
	return t;
}

/* Ticks every WATCHDOG_TICK_MS up to and including `until`. */
static watchdog_tick_t run_until(uint64_t until, bool queue_alive)
{
	watchdog_tick_t t = {0};
	while (now + WATCHDOG_TICK_MS <= until) {
		now += WATCHDOG_TICK_MS;
		t = tick(queue_alive);
	}
	return t;
}

static void fresh(void)
{
	now = 10000;
	changes = heartbeats = probes = 0;
	last_probe = 0;
	watchdog_init(&w, now);
}

START_TEST(healthy_stays_ok_without_probes)
{
	fresh();
	watchdog_tick_t t = tick(true);
	ck_assert_int_eq(t.state, WATCHDOG_OK);
	ck_assert(t.send_heartbeat);
	/* a minute of traffic: each request answered within a tick */
	for (int i = 0; i < 240; i++) {
		watchdog_engine_asked(&w, now);
		now += 100;
		watchdog_engine_answered(&w, now);
		now += 150;
		ck_assert_int_eq(tick(true).state, WATCHDOG_OK);
	}
	ck_assert_int_eq(changes, 0);
	ck_assert_int_eq(probes, 0);
	ck_assert_int_eq(heartbeats, 241); /* one per tick while the queue turns over */
}
END_TEST

/* The bound: whenever the engine or the flow queue stops, at any
 * phase of the ticks, the fail mode applies within a second. */
START_TEST(fail_mode_within_a_second)
{
	for (uint64_t phase = 0; phase < WATCHDOG_TICK_MS; phase += 7) {
		for (int engine = 0; engine < 2; engine++) {
			fresh();
			tick(true);
			uint64_t next = now + WATCHDOG_TICK_MS;
			now += phase; /* the engine (or the queue) stops here, between ticks */
			uint64_t stopped = now;
			if (engine)
				watchdog_engine_asked(&w, now); /* a flow waits; probes go unanswered */
			watchdog_tick_t t = {0};
			while (t.state == WATCHDOG_OK) {
				now = next;
				next += WATCHDOG_TICK_MS;
				t = tick(engine); /* the queue runs only in the engine case */
				ck_assert_msg(now - stopped <= 1000, "%s stall noticed after %llu ms (phase %llu)",
					      engine ? "engine" : "extension", (unsigned long long)(now - stopped),
					      (unsigned long long)phase);
			}
			ck_assert_int_eq(t.state, engine ? WATCHDOG_ENGINE_STALLED : WATCHDOG_EXTENSION_STALLED);
		}
	}
}
END_TEST

START_TEST(extension_stall_at_one_second_then_recovery)
{
	fresh();
	tick(false); /* heartbeat posted at 10000, never run */
	uint64_t posted = now;
	run_until(posted + WATCHDOG_STALL_MS - WATCHDOG_TICK_MS, false);
	now = posted + WATCHDOG_STALL_MS - 1;
	ck_assert_int_eq(tick(false).state, WATCHDOG_OK); /* a millisecond short: not yet */
	ck_assert_int_eq(heartbeats, 1);                  /* no pile of heartbeats behind a stuck queue */
	now = posted + WATCHDOG_STALL_MS;
	watchdog_tick_t t = tick(false);
	ck_assert_int_eq(t.state, WATCHDOG_EXTENSION_STALLED);
	ck_assert(t.changed);
	ck_assert_int_eq(t.was, WATCHDOG_OK);
	run_until(now + 5000, false);
	ck_assert_int_eq(changes, 1); /* one line, however long it lasts */
	ck_assert_int_eq(heartbeats, 1);

	watchdog_heartbeat_ran(&w); /* the queue turned over */
	now += WATCHDOG_TICK_MS;
	t = tick(true);
	ck_assert_int_eq(t.state, WATCHDOG_OK);
	ck_assert(t.changed);
	ck_assert_int_eq(t.was, WATCHDOG_EXTENSION_STALLED);
	ck_assert_int_eq(changes, 2);
	ck_assert_int_eq(heartbeats, 2);
}
END_TEST

START_TEST(engine_stall_needs_an_unanswered_probe)
{
	fresh();
	watchdog_engine_asked(&w, now);
	uint64_t asked = now;
	now += WATCHDOG_PROBE_AFTER_MS - 1;
	ck_assert(!tick(true).probe);
	now = asked + WATCHDOG_PROBE_AFTER_MS;
	watchdog_tick_t t = tick(true);
	ck_assert(t.probe);
	uint64_t probed = now;
	ck_assert_int_eq(t.state, WATCHDOG_OK);
	now = probed + WATCHDOG_STALL_MS - 1;
	t = tick(true);
	ck_assert_int_eq(t.state, WATCHDOG_OK);
	ck_assert(!t.probe); /* one probe at a time */
	now = probed + WATCHDOG_STALL_MS;
	t = tick(true);
	ck_assert_int_eq(t.state, WATCHDOG_ENGINE_STALLED);
	ck_assert(t.changed);
	run_until(now + 3000, true);
	ck_assert_int_eq(changes, 1);
	ck_assert_int_eq(probes, 1); /* the first probe still hangs */

	/* it times out; the next comes at once (a second has passed) */
	watchdog_probe_done(&w, now, last_probe, WATCHDOG_PROBE_NO_ANSWER);
	now += WATCHDOG_TICK_MS;
	t = tick(true);
	ck_assert(t.probe);
	ck_assert_int_eq(t.state, WATCHDOG_ENGINE_STALLED);
	watchdog_engine_unanswered(&w); /* the pending flow failed over */
	watchdog_probe_done(&w, now + 10, last_probe, WATCHDOG_PROBE_ANSWERED);
	now += WATCHDOG_TICK_MS;
	t = tick(true);
	ck_assert_int_eq(t.state, WATCHDOG_OK);
	ck_assert_int_eq(t.was, WATCHDOG_ENGINE_STALLED);
	ck_assert_int_eq(changes, 2);
	run_until(now + 5000, true);
	ck_assert_int_eq(changes, 2);
	ck_assert_int_eq(probes, 2); /* nothing outstanding: no more probes */
}
END_TEST

/* A destination that takes 5 s to answer the engine's connect: the flow's
 * reply is late, but the engine answers its probes, so no fail mode. */
START_TEST(slow_upstream_is_not_an_engine_stall)
{
	fresh();
	watchdog_engine_asked(&w, now);
	uint64_t asked = now;
	for (int i = 0; i < 5000 / WATCHDOG_TICK_MS; i++) {
		now += WATCHDOG_TICK_MS;
		watchdog_tick_t t = tick(true);
		ck_assert_int_eq(t.state, WATCHDOG_OK);
		if (t.probe)
			watchdog_probe_done(&w, now + 5, t.probe_id, WATCHDOG_PROBE_ANSWERED);
	}
	/* probes while it waits: at most one a second */
	ck_assert_int_ge(probes, 4);
	ck_assert_int_le(probes, 5);
	watchdog_engine_answered(&w, asked + 5000);
	ck_assert_int_eq(changes, 0);
}
END_TEST

START_TEST(unreachable_then_back)
{
	fresh();
	watchdog_engine_unreachable(&w); /* a flow's connect() failed */
	watchdog_tick_t t = tick(true);
	ck_assert_int_eq(t.state, WATCHDOG_ENGINE_UNREACHABLE);
	ck_assert(t.changed);
	ck_assert(t.probe); /* looking for it to come back */
	watchdog_probe_done(&w, now, t.probe_id, WATCHDOG_PROBE_UNREACHABLE);
	uint64_t first = now;
	int p = probes;
	run_until(first + WATCHDOG_PROBE_EVERY_MS - 1, true);
	ck_assert_int_eq(probes, p); /* not before a second */
	now = first + WATCHDOG_PROBE_EVERY_MS;
	t = tick(true);
	ck_assert(t.probe);
	ck_assert_int_eq(t.state, WATCHDOG_ENGINE_UNREACHABLE);
	ck_assert_int_eq(changes, 1);
	watchdog_probe_done(&w, now, t.probe_id + 7, WATCHDOG_PROBE_ANSWERED); /* not this probe's */
	now += WATCHDOG_TICK_MS;
	ck_assert_int_eq(tick(true).state, WATCHDOG_ENGINE_UNREACHABLE);
	watchdog_probe_done(&w, now, t.probe_id, WATCHDOG_PROBE_ANSWERED);
	now += WATCHDOG_TICK_MS;
	t = tick(true);
	ck_assert_int_eq(t.state, WATCHDOG_OK);
	ck_assert(t.changed);
	ck_assert_int_eq(changes, 2);
}
END_TEST

/* The probe hangs (the engine's control path is slow) but flows are being
 * answered: the engine is alive, no stall and no flapping. */
START_TEST(a_reply_during_a_hanging_probe_is_proof_of_life)
{
	fresh();
	watchdog_engine_asked(&w, now);
	now += WATCHDOG_PROBE_AFTER_MS;
	watchdog_tick_t t = tick(true);
	ck_assert(t.probe);
	now += 500;
	watchdog_engine_answered(&w, now);
	run_until(now + 3000, true);
	ck_assert_int_eq(watchdog_state(&w), WATCHDOG_OK);
	watchdog_probe_done(&w, now, t.probe_id, WATCHDOG_PROBE_NO_ANSWER);
	run_until(now + 3000, true);
	ck_assert_int_eq(watchdog_state(&w), WATCHDOG_OK);
	ck_assert_int_eq(changes, 0);
}
END_TEST

/* With fail_mode closed a new flow may still reach the engine (a probe
 * or a flow racing the tick): a connection that works is reachability. */
START_TEST(a_flow_that_connects_ends_unreachable)
{
	fresh();
	watchdog_engine_unreachable(&w);
	ck_assert_int_eq(tick(true).state, WATCHDOG_ENGINE_UNREACHABLE);
	watchdog_engine_asked(&w, now);
	now += WATCHDOG_TICK_MS;
	ck_assert_int_eq(tick(true).state, WATCHDOG_OK);
	ck_assert_int_eq(changes, 2);
}
END_TEST

/* Both at once: the stuck queue is named (the engine cannot be helped
 * from a queue that does not run); then the engine once the queue runs. */
START_TEST(extension_stall_outranks_engine)
{
	fresh();
	watchdog_engine_unreachable(&w);
	tick(false);
	run_until(now + WATCHDOG_STALL_MS, false);
	ck_assert_int_eq(watchdog_state(&w), WATCHDOG_EXTENSION_STALLED);
	watchdog_heartbeat_ran(&w);
	now += WATCHDOG_TICK_MS;
	ck_assert_int_eq(tick(true).state, WATCHDOG_ENGINE_UNREACHABLE);
	ck_assert_int_eq(changes, 3); /* ok->unreachable->extension->unreachable */
}
END_TEST

START_TEST(sleep_is_no_stall_and_wake_probes)
{
	fresh();
	tick(false); /* a heartbeat in flight as the Mac sleeps */
	watchdog_engine_asked(&w, now);
	watchdog_sleep(&w);
	/* a dark wake may still fire the timer: nothing changes */
	now += 60000;
	watchdog_tick_t t = tick(false);
	ck_assert(!t.changed && !t.probe && !t.send_heartbeat);
	ck_assert_int_eq(t.state, WATCHDOG_OK);
	now += 3600 * 1000;
	watchdog_wake(&w, now);
	now += WATCHDOG_TICK_MS;
	t = tick(true);
	ck_assert_int_eq(t.state, WATCHDOG_OK);
	ck_assert(t.probe); /* re-check the engine at once */
	ck_assert(t.send_heartbeat);
	watchdog_probe_done(&w, now, t.probe_id, WATCHDOG_PROBE_ANSWERED);
	watchdog_engine_answered(&w, now);
	run_until(now + 5000, true);
	ck_assert_int_eq(changes, 0);
	ck_assert_int_eq(probes, 1);
}
END_TEST

/* A probe that was in flight across the sleep answers late, after the
 * new one was lost: the old id does not count. */
START_TEST(probe_from_before_sleep_is_ignored)
{
	fresh();
	watchdog_engine_unreachable(&w);
	watchdog_tick_t t = tick(true);
	unsigned old = t.probe_id;
	watchdog_sleep(&w);
	watchdog_wake(&w, now);
	now += WATCHDOG_TICK_MS;
	t = tick(true);
	ck_assert(t.probe);
	ck_assert_uint_ne(t.probe_id, old);
	watchdog_probe_done(&w, now, old, WATCHDOG_PROBE_ANSWERED);
	now += WATCHDOG_TICK_MS;
	ck_assert_int_eq(tick(true).state, WATCHDOG_ENGINE_UNREACHABLE);
	now += WATCHDOG_STALL_MS;
	/* the new probe never answered: the engine is there but stuck */
	ck_assert_int_eq(tick(true).state, WATCHDOG_ENGINE_UNREACHABLE);
	watchdog_probe_done(&w, now, t.probe_id, WATCHDOG_PROBE_NO_ANSWER);
	now += WATCHDOG_TICK_MS;
	ck_assert_int_eq(tick(true).state, WATCHDOG_ENGINE_STALLED);
}
END_TEST

START_TEST(state_names)
{
	const char *seen[4];
	for (int s = 0; s < 4; s++) {
		seen[s] = watchdog_state_name((watchdog_state_t)s);
		ck_assert(seen[s][0] && seen[s][0] != '?');
		for (int k = 0; k < s; k++)
			ck_assert_str_ne(seen[s], seen[k]);
	}
}
END_TEST

Suite *sysext_watchdog_suite(void)
{
	Suite *s = suite_create("sysext_watchdog");
	TCase *t = tcase_create("watchdog");
	tcase_add_test(t, healthy_stays_ok_without_probes);
	tcase_add_test(t, extension_stall_at_one_second_then_recovery);
	tcase_add_test(t, fail_mode_within_a_second);
	tcase_add_test(t, engine_stall_needs_an_unanswered_probe);
	tcase_add_test(t, slow_upstream_is_not_an_engine_stall);
	tcase_add_test(t, unreachable_then_back);
	tcase_add_test(t, a_reply_during_a_hanging_probe_is_proof_of_life);
	tcase_add_test(t, a_flow_that_connects_ends_unreachable);
	tcase_add_test(t, extension_stall_outranks_engine);
	tcase_add_test(t, sleep_is_no_stall_and_wake_probes);
	tcase_add_test(t, probe_from_before_sleep_is_ignored);
	tcase_add_test(t, state_names);
	suite_add_tcase(s, t);
	return s;
}
