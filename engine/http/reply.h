/*
 * reply: responses dlpgate writes itself (errors, refusals, blocks).
 *
 * The body is negotiated from the request's Accept header: JSON for API
 * clients, HTML for browsers, plain text otherwise, so the person or program
 * on the other end can read why. Every reply names the problem, carries the
 * flow id so an admin can find the log line, and closes the connection:
 * after an error we do not guess where the next request starts.
 */
#ifndef DLPGATE_REPLY_H
#define DLPGATE_REPLY_H

#include "core/bytebuf.h"
#include "http/head.h"
#include "policy/policy.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
	int status;
	const char *code;     /* short token, also sent as X-Dlpgate-Error */
	const char *title;    /* one line */
	const char *detail;   /* a sentence naming the problem */
	uint64_t flow_id;
	bool head_only;       /* the request was HEAD: no body */
	const char *rule;     /* blocks: the policy file:line that decided, or NULL */
	const char *event_id; /* blocks: the event that records it, or NULL */
	/* coach pages (http/coach.h): what was found, and the forms */
	const policy_msg_t *found; /* findings: names, counts, masked samples */
	const char *token;    /* the one-time token; NULL: no forms */
	uint32_t ttl_s;       /* how long an override would last */
} reply_t;

/* Appends the whole response; req may be NULL (no Accept known). Text from
 * the policy (rule, reason) is shown without directories: a page never
 * reveals a path of the machine ("/etc/dlpgate/policy.lua:12" is shown as
 * "policy.lua:12"). Rules already name files relative to the policy's
 * folder ("lib/x.lua:3", kept as it is); the cut is for what the policy
 * writes itself (a reason, an error's text, a chunk it loads under a name
 * of its own) and for anything that would name a file absolutely. */
bool reply_build(bytebuf_t *out, const reply_t *r, const http_head_t *req);
const char *reply_status_text(int status);
/* Copies s to out with every absolute path cut to its last component. */
void reply_strip_paths(const char *s, char *out, size_t n);

#endif
