/*
 * policy: the flow decision hook.
 *
 * The flow code asks a policy these questions and does what it is told:
 *   on_flow      before any byte is decrypted: inspect, bypass (splice) or block
 *   on_request   at each request head: pass or block (redact comes with bodies)
 *   on_response  at each response head: pass or block
 *   on_uninspectable  a flow it chose to inspect cannot be: bypass or block
 *   on_message   each WebSocket message after a 101: pass, redact or block
 * Each answer is a verdict with a reason and the rule that gave it, so an
 * event can say why. The flow code never knows what kind of policy answered:
 * today the config's bypass_hosts (policy/static.c), later the Lua runtime,
 * which plugs in by providing another policy_ops_t.
 *
 * A policy is immutable once made and reference counted: the engine swaps
 * its current policy on reload and every flow keeps the one it started with
 * (flow_t holds a reference). `worker` lets an implementation keep
 * per-worker state (a Lua state per worker) without locks.
 */
#ifndef DLPGATE_POLICY_H
#define DLPGATE_POLICY_H

#include "core/config.h"
#include "detect/mask.h"
#include "doc/doc.h"
#include "http/body.h"
#include "http/head.h"
#include "http/headview.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct worker;

typedef enum { FLOW_SOURCE_EXPLICIT = 0, FLOW_SOURCE_TRANSPARENT, FLOW_SOURCE_SYSEXT } flow_source_t;

/* The program behind a flow, where the source can tell (the macOS system
 * extension from the audit token and code signature, the Linux transparent
 * source from the socket's owner); all empty otherwise. */
typedef struct {
	int64_t pid, uid;     /* pid 0: unknown (and uid with it) */
	const char *path;     /* executable */
	const char *cmdline;  /* arguments joined by spaces (Linux transparent only) */
	const char *signing_id, *team_id;
	const char *anchor;   /* "apple" (platform code), "system" (root-owned system binary), NULL */
} flow_app_t;

/* What is known about a flow before decryption. Strings are owned by the
 * flow and valid for the call. */
typedef struct {
	flow_source_t source;
	flow_app_t app;
	const char *client;   /* client identity: address today, app identity later */
	const char *host;     /* destination as the client named it (CONNECT, Host) */
	uint16_t port;
	const char *sni;      /* NULL when the client sent none */
	const char *dst_ip;   /* upstream address we connected to, NULL if none yet */
	bool tls;
	bool alpn_http11;     /* the client offers http/1.1 (or no ALPN at all) */
} flow_facts_t;

typedef enum {
	VERDICT_INSPECT = 0, /* flow stage: decrypt and look at each message */
	VERDICT_BYPASS,      /* flow stage: splice untouched */
	VERDICT_PASS,        /* message stage: forward as is */
	VERDICT_BLOCK,       /* either stage: refuse */
} verdict_kind_t;

typedef struct {
	verdict_kind_t kind;
	bool monitor;        /* report kind, do what pass/inspect would */
	bool redact;         /* with PASS: mask the selected findings first */
	bool error;          /* a policy error or limit decided (fail mode) */
	bool coach;          /* with BLOCK: dlp.coach, the user may proceed with a justification */
	uint32_t coach_ttl_s; /* how long a justified override lets the same app, host and rule pass */
	uint32_t coach_within_s; /* how long the page's forms can be sent */
	char reason[160];
	char rule[128];      /* who decided: "file:line", "config bypass_hosts[2]" */
} verdict_t;

/* What detectors found in a message: names, counts and masked samples for
 * the event, spans for redaction. Never the secrets themselves. A finding
 * exists only when its detector reached its min_count (or hit its match
 * limit, which the event must tell); a message holds at most FINDINGS_MAX
 * distinct ones (more than any shipped policy has detectors), taken in
 * name order so what is kept never depends on table iteration order. */
#define FINDINGS_MAX 1024
#define SAMPLES_MAX 3
#define LOCATIONS_MAX 4
#define LOCATION_MAX 64
#define FINDING_VIEWS_MAX 4

typedef struct {
	char name[64];
	char severity[12];
	char confidence[8];  /* the highest of its findings: "low" | "medium" | "high" */
	uint32_t count;
	bool timed_out;
	bool redact;         /* selected by dlp.redact */
	bool incomplete;     /* more matches than a result keeps: not all have spans */
	uint8_t keep_first, keep_last;
	uint8_t n_samples;
	char samples[SAMPLES_MAX][MASK_SAMPLE_MAX + 1];
	/* found in a document or archive the message carries (doc.h): it
	 * cannot be masked without rewriting the document, so redacting it
	 * blocks; document names the first member it was found in */
	bool in_document;
	char document[128];
	/* where the matches are: "url", "header:NAME", "cookie:NAME", "body",
	 * "file:NAME" (distinct, first LOCATIONS_MAX; names holding a match
	 * are masked) */
	uint8_t n_locations;
	char locations[LOCATIONS_MAX][LOCATION_MAX];
	/* the decoded views (detect/views.h) its matches were in: "url",
	 * "base64>json"; none when all were in the text as it is */
	uint8_t n_views;
	char views[FINDING_VIEWS_MAX][48];
} finding_t;

typedef enum { SPAN_BODY = 0, SPAN_HEAD } span_space_t;

typedef struct {
	uint32_t start, len;  /* in the body view, or in the head view (space) */
	uint16_t finding;     /* index into findings */
	uint8_t space;        /* span_space_t */
	uint16_t view;        /* 0: the space's own text; k: its decoded view k - 1 (policy_msg_t.views, .head_views) */
} finding_span_t;

/* A WebSocket message (http/wsrelay.c): head is the Upgrade request that
 * opened the connection, request the 101 that answered it; the body is
 * the message, reassembled and unmasked. */
typedef struct {
	bool from_server;             /* false: client to server */
	bool binary;                  /* false: text */
} policy_ws_t;

/* A message at a stage: what a policy may read and change. */
typedef struct {
	http_head_t *head;            /* edits here are what is forwarded */
	const http_head_t *request;   /* on_response: the request, if known */
	const body_view_t *view;      /* the body as text, NULL if not read */
	uint64_t body_size;           /* bytes of body seen */
	bool body_complete;           /* false: only a prefix was read */
	const char *body_note;        /* why it was not (all) read, or NULL */
	const doc_set_t *docs;        /* text of the documents inside the body, NULL if none */
	const policy_ws_t *websocket; /* a WebSocket message (on_message); NULL: HTTP */
	/* A window of a body streamed past inspect.max_bytes: the head was
	 * scanned with the prefix, and matches ending before fresh_from (view
	 * offset: the carry-over the previous window already reported) are
	 * not counted again. */
	bool stream_window;
	uint32_t fresh_from;
	uint64_t body_offset;         /* where the view starts in the decoded body */
	head_view_t *head_view;       /* requests: target and fields as scanned (built by the scan) */
	/* filled during the stage */
	finding_t *findings;
	uint32_t n_findings;
	size_t cap_findings;
	finding_span_t *spans;
	uint32_t n_spans;
	size_t cap_spans;
	struct dview_set *views;      /* the decoded views of the body view, built by the first scan */
	struct dview_set *head_views; /* and of the head view's text */
} policy_msg_t;

void policy_msg_clear(policy_msg_t *m);
/* The decoded views of a span space's text (NULL: none built). */
const struct dview_set *policy_views(const policy_msg_t *m, uint8_t space);
/* The span of its space's own text that sp came from (itself when it is
 * not in a decoded view). */
void policy_span_root(const policy_msg_t *m, const finding_span_t *sp, uint32_t *start, uint32_t *len);

typedef enum { OVERSIZE_PREFIX = 0, OVERSIZE_PASS, OVERSIZE_BLOCK } oversize_t;

/* Why a flow the policy chose to inspect cannot be: the policy decides
 * what happens to it (on_uninspectable), never the client's choice. */
typedef enum {
	UNINSPECTABLE_PINNED = 0, /* the client refused dlpgate's certificate (now, or earlier for this app and host) */
	UNINSPECTABLE_ALPN,       /* TLS whose ALPN offers no http/1.1 (only h2, http/1.0, ...) */
	UNINSPECTABLE_NOT_HTTP,   /* not HTTP/1.x where HTTP was expected */
	UNINSPECTABLE_ENCODING,   /* a body in a Content-Encoding dlpgate cannot decode */
	UNINSPECTABLE_UPGRADE,    /* a protocol switch (101) to something dlpgate cannot read */
	UNINSPECTABLE_DOCUMENT,   /* a document or archive in a body that cannot be read (limit, encrypted, corrupt) */
} uninspectable_t;

/* "pinned", "alpn", "not-http", "encoding", "upgrade", "document": what policies and
 * events call them. */
const char *uninspectable_name(uninspectable_t why);
/* The reverse; -1 for a name that is none of them. */
int uninspectable_by_name(const char *name);

/* Not "policy_t": Darwin's <mach/policy.h> has one, and with clang
 * modules on every Darwin header is visible. */
typedef struct policy compiled_policy_t;

typedef struct {
	const char *name;
	void (*on_flow)(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, verdict_t *v);
	void (*on_request)(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, policy_msg_t *req, verdict_t *v);
	void (*on_response)(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, policy_msg_t *res, verdict_t *v);
	/* A flow it chose to inspect cannot be (why, and detail in words):
	 * BYPASS (let it through as it is) or BLOCK. */
	void (*on_uninspectable)(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, uninspectable_t why,
				 const char *detail, verdict_t *v);
	void (*destroy)(compiled_policy_t *p);
	/* A WebSocket message (m->websocket set): pass, redact or block. */
	void (*on_message)(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, policy_msg_t *m, verdict_t *v);
} policy_ops_t;

struct policy {
	const policy_ops_t *ops;
	atomic_int refs;
	uint64_t version;
	char version_text[48];     /* what events name the policy by */
	char *static_bypass_json;  /* the system extension's table (sources/bypass.h); NULL: none */
	void *impl;
	/* what the relay must do for the stages to see bodies */
	bool read_request_bodies;
	bool read_response_bodies;
	body_limits_t body_limits; /* max_bytes = the inspection limit */
	doc_limits_t doc_limits;   /* documents inside bodies; all zero = doc_limits_default() */
	oversize_t oversize;
};

static inline compiled_policy_t *policy_ref(compiled_policy_t *p)
{
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

static inline void policy_unref(compiled_policy_t *p)
{
	if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		p->ops->destroy(p);
}

void verdict_set(verdict_t *v, verdict_kind_t kind, const char *rule, const char *reason_fmt, ...)
	__attribute__((format(printf, 4, 5)));
const char *verdict_name(verdict_kind_t k);
/* What events and tests call a verdict: verdict_name, or "redact" for a
 * masking pass and "coach" for a block the user may override. */
const char *verdict_label(const verdict_t *v);

/* The policy made from the config alone: bypass_hosts globs decide bypass,
 * everything else is inspected and passed. */
compiled_policy_t *policy_static_new(const config_t *cfg);

#endif
