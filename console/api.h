/*
 * api.h: what api.c (routing, authentication, the role table, jobs) shares
 * with the handlers of the web UI's endpoints (api_ui.c, api_export.c).
 * Internal to the console.
 */
#ifndef DLPGATE_CONSOLE_API_H
#define DLPGATE_CONSOLE_API_H

#include "console.h"
#include "policy.h"
#include "store.h"

typedef enum {
	R_NONE, R_ENROLL, R_EVENTS_POST, R_STATUS, R_EVENTS_LIST, R_EVENT_GET, R_AGENTS, R_STATS,
	R_POLICY, /* the admin side of policy distribution: policy_api.c */
	R_STATIC, /* the web UI's files: web.c */
	R_SESSION_NEW, R_SESSION_GET, R_SESSION_END, R_DASHBOARD, R_EXPORT, R_EVENT_DETAIL, R_AGENT_GET,
	R_INCIDENTS, R_INCIDENT_GET, R_INCIDENT_PATCH, R_INCIDENT_NOTE, R_FALSE_POSITIVES, R_PREVIEW, R_TOKENS,
	R_TOKEN_NEW, R_TOKEN_REVOKE
} route_t;

typedef struct {
	uv_work_t work;
	console_conn_t *k;
	console_t *c;
	console_req_t *req;
	route_t route;
	policy_route_t policy_route; /* R_POLICY's own route */
	const char *name;            /* the route's name for logs and metrics */
	uint64_t started;
	store_role_t need;           /* the route's (routes[] in api.c) */
	/* who asks (run_job) */
	store_role_t role;
	bool via_cookie;
	char token_hash[65];
	store_session_t session;     /* via_cookie */
	char session_hash[65];
	/* answer */
	int status;
	char *body;
	size_t body_len;           /* when the body is not a C string (a policy file) */
	const char *text_type;     /* the body's media type when it is not JSON (charset added) */
	const char *raw_type;      /* the full Content-Type (static files, exports) */
	char extra[1024];          /* more headers (Set-Cookie, Retry-After, caching...) */
	bool targeting_changed;    /* a rollout or labels changed (policy_answer_t) */
	const char *code;
	/* for the log line */
	char agent_id[64];
	size_t accepted, duplicates;
} job_t;

void api_answer_json(job_t *j, int status, json_t *o);
void api_answer_error(job_t *j, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* 200 {key: items, "next_cursor": cursor of (ts, id) when more, else null}. */
void api_answer_page(job_t *j, const char *key, json_t *items, bool more, int64_t ts, int64_t id);
/* The token id (12 hex) of who asks: the audit actor and note author. */
void api_actor(const job_t *j, char out[80]);
/* Removes the masked samples of a viewer's copy of an event (in place). */
void api_strip_samples(const job_t *j, json_t *event);
/* The request body as a JSON object, or answers 400 and returns NULL. */
json_t *api_body_object(job_t *j);

/* The event filters of the events list, stats and export. */
typedef enum { F_LIST, F_STATS, F_EXPORT } filter_use_t;
typedef struct {
	const char *by;           /* stats */
	int64_t bucket_ms;        /* stats */
	const char *format;       /* export */
} filter_extra_t;
bool api_read_filters(job_t *j, console_params_t *p, store_filter_t *f, filter_use_t use, filter_extra_t *x);

/* Handlers: false on a store failure (answered 503 by the caller). */
bool api_session_new(job_t *j, store_conn_t *sc);
bool api_session_get(job_t *j, store_conn_t *sc);
bool api_session_end(job_t *j, store_conn_t *sc);
bool api_dashboard(job_t *j, store_conn_t *sc);
bool api_export(job_t *j, store_conn_t *sc);
bool api_event_detail(job_t *j, store_conn_t *sc);
bool api_agent_get(job_t *j, store_conn_t *sc);
bool api_incidents(job_t *j, store_conn_t *sc);
bool api_incident_get(job_t *j, store_conn_t *sc);
bool api_incident_patch(job_t *j, store_conn_t *sc);
bool api_incident_note(job_t *j, store_conn_t *sc);
bool api_false_positives(job_t *j, store_conn_t *sc);
bool api_preview(job_t *j, store_conn_t *sc);
bool api_tokens(job_t *j, store_conn_t *sc);
bool api_token_new(job_t *j, store_conn_t *sc);
bool api_token_revoke(job_t *j, store_conn_t *sc);

#endif
