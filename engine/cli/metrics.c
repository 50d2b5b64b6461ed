/*
 * The agent's /metrics (`dlpgate run --metrics ADDR:PORT`): the counter
 * families of core/stats.h, then what the agent knows at scrape time as
 * gauges and counters: verdicts by kind and upload totals (report.c's
 * counters), connections open, pinned entries, the spool, the console
 * link, the running policy version as a label. Names follow Prometheus'
 * conventions: dlpgate_ prefix, _total for counters, units in the name.
 */
#include "cli/status.h"

#include "core/metrics.h"
#include "report/report.h"
#include "tls/pinned.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

bool agent_metrics_render(void *source, bytebuf_t *out)
{
	const status_source_t *s = source;
	const engine_t *e = s->e;
	report_snapshot_t r;
	report_snapshot(&r);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	double now_s = (double)now.tv_sec + now.tv_nsec / 1e9;

	bool ok = metrics_render(out);

	static const struct {
		report_counter_t c;
		const char *kind;
	} verdicts[] = {{REPORT_INSPECT, "inspect"}, {REPORT_BYPASS, "bypass"}, {REPORT_PASS, "pass"},
			{REPORT_REDACT, "redact"},   {REPORT_BLOCK, "block"}};
	ok = ok && metrics_header(out, "dlpgate_verdicts_total", "Message verdicts by kind (monitor ones included).",
				  "counter");
	for (size_t i = 0; ok && i < sizeof verdicts / sizeof *verdicts; i++) {
		char label[32];
		snprintf(label, sizeof label, "verdict=%s", verdicts[i].kind);
		ok = metrics_sample(out, "dlpgate_verdicts_total", label, (double)r.counters[verdicts[i].c]);
	}
	ok = ok && metrics_header(out, "dlpgate_verdicts_monitor_total",
				  "Of those, verdicts only reported (monitor mode).", "counter") &&
	     metrics_sample(out, "dlpgate_verdicts_monitor_total", NULL, (double)r.counters[REPORT_MONITOR]);
	ok = ok && metrics_header(out, "dlpgate_events_uploaded_total", "Events the console acknowledged.", "counter") &&
	     metrics_sample(out, "dlpgate_events_uploaded_total", NULL, (double)r.counters[REPORT_UPLOADED]);
	ok = ok && metrics_header(out, "dlpgate_upload_failures_total",
				  "Exchanges with the console that failed (enroll, status, batches).", "counter") &&
	     metrics_sample(out, "dlpgate_upload_failures_total", NULL, (double)r.counters[REPORT_UPLOAD_FAILURES]);

	ok = ok && metrics_gauge(out, "dlpgate_connections_open", "Client connections open now.", NULL,
				 (double)atomic_load(&e->connections));
	ok = ok && metrics_header(out, "dlpgate_connections_refused_total",
				  "Connections refused at limits.max_connections.", "counter") &&
	     metrics_sample(out, "dlpgate_connections_refused_total", NULL, (double)atomic_load(&e->flows_refused));
	ok = ok && metrics_gauge(out, "dlpgate_pinned_entries",
				 "Client and server pairs spliced because the client rejected our certificate.", NULL,
				 (double)pinned_count(e->pinned));
	ok = ok && metrics_gauge(out, "dlpgate_spool_events", "Events spooled and not yet acknowledged by the console.",
				 NULL, (double)r.spool.depth);
	ok = ok && metrics_gauge(out, "dlpgate_spool_bytes", "Bytes the spool holds on disk.", NULL,
				 (double)r.spool.bytes);
	ok = ok && metrics_gauge(out, "dlpgate_console_up",
				 "1 when the last exchange with the console succeeded (0 without a console).", NULL,
				 r.link == REPORT_LINK_UP);
	if (r.last_ok_unix_ms)
		ok = ok && metrics_gauge(out, "dlpgate_console_last_success_timestamp_seconds",
					 "When the console last acknowledged an exchange (Unix time).", NULL,
					 (double)r.last_ok_unix_ms / 1000);
	/* How far behind the console is: nothing waits, 0; else the time since
	 * the console last took anything (since the start if it never did). */
	double since = r.last_ok_unix_ms ? (double)r.last_ok_unix_ms / 1000 : (double)s->started_unix_ms / 1000;
	ok = ok && metrics_gauge(out, "dlpgate_upload_lag_seconds",
				 "0 when the spool is empty, else seconds since the console last acknowledged anything.",
				 NULL, r.spool.depth ? now_s - since : 0);
	char label[96];
	snprintf(label, sizeof label, "version=%s", r.policy_version);
	ok = ok && metrics_gauge(out, "dlpgate_policy_info", "The policy version running (label), always 1.", label, 1);
	snprintf(label, sizeof label, "version=%s", DLPGATE_VERSION);
	ok = ok && metrics_gauge(out, "dlpgate_build_info", "This dlpgate's version (label), always 1.", label, 1);
	ok = ok && metrics_gauge(out, "dlpgate_start_time_seconds", "When this agent started (Unix time).", NULL,
				 (double)s->started_unix_ms / 1000);
	return ok;
}
