/* The agent's counter families; see stats.h. */
#include "core/stats.h"

metrics_family_t *stats_flows, *stats_messages, *stats_detector_hits, *stats_policy_errors, *stats_handshakes,
	*stats_uninspectable;

void stats_init(void)
{
	if (stats_flows)
		return;
	stats_flows = metrics_counter("dlpgate_flows_total",
				      "Client connections ended, by where they came from (source), what was done "
				      "with them (mode) and why they ended (end).",
				      "source,mode,end");
	stats_messages = metrics_counter("dlpgate_messages_inspected_total",
					 "HTTP and WebSocket messages a policy stage judged (stage request, response, message).",
					 "stage");
	stats_detector_hits = metrics_counter("dlpgate_detector_hits_total",
					      "Matches found by each detector in inspected messages.", "detector");
	stats_policy_errors = metrics_counter("dlpgate_policy_errors_total",
					      "Policy calls that failed (the fail mode decided): a Lua error, the "
					      "instruction budget or the memory cap.",
					      "stage,kind");
	stats_handshakes = metrics_counter("dlpgate_tls_handshakes_total",
					   "TLS handshakes with clients and upstreams, by result.", "side,result");
	stats_uninspectable = metrics_counter("dlpgate_uninspectable_total",
					      "Flows the policy chose to inspect that could not be, by why (pinned, "
					      "alpn, not-http, encoding, upgrade) and what the policy decided.",
					      "why,decision");
}
