/*
 * spoolfill: puts N events into an agent's spool, as an outage would have
 * left them (the backlog benchmark, tests/bench/backlog.sh). The events
 * are the shape the engine emits for a redacted upload, each with its own
 * UUIDv7 and the agent's id from STATE/agent.json.
 *
 *   build/spoolfill STATE_DIR N
 */
#include "report/event.h"
#include "report/spool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: spoolfill STATE_DIR N\n");
		return 2;
	}
	char path[600], err[600];
	snprintf(path, sizeof path, "%s/agent.json", argv[1]);
	json_t *ident = json_load_file(path, 0, NULL);
	const char *agent = json_string_value(json_object_get(ident, "agent_id"));
	if (!agent) {
		fprintf(stderr, "spoolfill: %s: no agent_id (run the agent once first)\n", path);
		return 1;
	}
	snprintf(path, sizeof path, "%s/spool", argv[1]);
	spool_opts_t o = {.max_bytes = 1ull << 40, .segment_bytes = 4u << 20, .fsync = FSYNC_NEVER};
	spool_t *s = spool_open(path, &o, err, sizeof err);
	if (!s) {
		fprintf(stderr, "spoolfill: %s\n", err);
		return 1;
	}
	long n = atol(argv[2]);
	for (long i = 0; i < n; i++) {
		char id[EVENT_ID_LEN], rec[1024];
		event_new_id(id);
		int len = snprintf(
			rec, sizeof rec,
			"{\"event\":\"verdict\",\"id\":\"%s\",\"agent_id\":\"%s\",\"time\":\"2026-11-22T04:00:00.000Z\","
			"\"policy_version\":\"default.lua@1\",\"stage\":\"request\",\"verdict\":\"redact\",\"monitor\":false,"
			"\"rule\":\"default.lua:120\",\"reason\":\"card numbers masked in upload\",\"latency_us\":180,"
			"\"detectors\":{\"credit_card\":{\"count\":1,\"severity\":\"high\",\"redacted\":true,"
			"\"samples\":[\"4111********1111\"]}},\"app\":{\"pid\":%ld,\"uid\":1000,\"path\":\"/usr/bin/curl\","
			"\"anchor\":\"user\"},\"flow\":{\"id\":%ld,\"source\":\"transparent\",\"host\":\"upload.example.com\","
			"\"sni\":\"upload.example.com\",\"dst_ip\":\"203.0.113.7\",\"dst_port\":443,\"method\":\"POST\","
			"\"path\":\"/api/files\",\"body_bytes\":65536,\"tls\":\"TLSv1.3\",\"upstream_tls\":\"TLSv1.3\"}}",
			id, agent, 1000 + i % 50, i);
		if (!spool_append(s, rec, (size_t)len))
			return 1;
	}
	spool_close(s);
	json_decref(ident);
	return 0;
}
