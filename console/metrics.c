/*
 * The console's /metrics (`dlpgate-console run --metrics ADDR:PORT`):
 * requests by route and status, events ingested (accepted, duplicate),
 * database errors, and at scrape time the connections, requests in
 * flight, buffered body bytes and connections refused. Counting happens on
 * the thread pool (api.c's jobs) and on the loop; core/metrics.h is safe
 * from both. The ingest rate is rate(dlpgate_console_events_ingested_total).
 */
#include "console.h"

#include "core/metrics.h"

#include <stdio.h>

metrics_family_t *console_m_requests, *console_m_ingested, *console_m_db_errors;

void console_metrics_init(void)
{
	if (console_m_requests)
		return;
	console_m_requests = metrics_counter("dlpgate_console_requests_total",
					     "API requests answered, by route and HTTP status.", "route,status");
	console_m_ingested = metrics_counter("dlpgate_console_events_ingested_total",
					     "Events received from agents: accepted (stored) or duplicate (already "
					     "stored, acknowledged again).",
					     "result");
	console_m_db_errors = metrics_counter("dlpgate_console_db_errors_total",
					      "Database operations that failed (the request got 503).", "route");
}

bool console_metrics_render(void *console, bytebuf_t *out)
{
	const console_t *c = console;
	bool ok = metrics_render(out);
	ok = ok && metrics_gauge(out, "dlpgate_console_connections_open", "Client connections open now.", NULL,
				 c->n_conns);
	ok = ok && metrics_gauge(out, "dlpgate_console_requests_in_flight",
				 "Requests being worked on (the database's thread pool).", NULL, c->jobs);
	ok = ok && metrics_gauge(out, "dlpgate_console_buffered_bytes", "Request body bytes held in memory.", NULL,
				 (double)c->buffered);
	ok = ok && metrics_header(out, "dlpgate_console_connections_refused_total",
				  "Connections refused at --max-connections.", "counter") &&
	     metrics_sample(out, "dlpgate_console_connections_refused_total", NULL, (double)c->refused);
	char label[64];
	snprintf(label, sizeof label, "version=%s", DLPGATE_VERSION);
	ok = ok && metrics_gauge(out, "dlpgate_console_build_info", "This console's version (label), always 1.", label, 1);
	return ok;
}
