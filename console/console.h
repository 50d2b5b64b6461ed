/*
 * console: the fleet's server (build/dlpgate-console). Agents enroll, post
 * their events and status; admins query them. Contract:
 * schemas/console-api.md.
 *
 * Shape: one thread runs a libuv loop with every connection on it (TLS and
 * HTTP parsing through the engine's side_t and llhttp codec, server.c);
 * everything that may block or burn CPU for a while (gunzip, JSON, the
 * database) runs on the libuv thread pool (api.c), so a slow query or a big
 * batch never stalls the other clients. A connection has at most one
 * request in flight and reads nothing more until it is answered.
 *
 * This header holds what the modules share: the configuration, the server's
 * state, and the small helpers (time, auth, ingest, query parsing).
 */
#ifndef DLPGATE_CONSOLE_H
#define DLPGATE_CONSOLE_H

#include "core/bytebuf.h"
#include "net/side.h"
#include "net/worker.h"

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct store;

/* Limits of the protocol (console-api.md). */
#define CONSOLE_MAX_WIRE_BODY (8u * 1024 * 1024)
#define CONSOLE_MAX_INFLATED (64u * 1024 * 1024)
#define CONSOLE_MAX_EVENTS 10000
#define CONSOLE_MAX_SMALL_BODY (64u * 1024)
#define CONSOLE_MAX_HEAD 16384
#define CONSOLE_MAX_FIELDS 64
/* Requests being worked on (all connections); past it new ones get 503. */
#define CONSOLE_MAX_JOBS 256
/* Request bodies held in memory, all connections together (being read or
 * queued); past it a request gets 503 + Retry-After, so many connections
 * uploading at once cannot add up to more memory than this. */
#define CONSOLE_MAX_BUFFERED (256u * 1024 * 1024)

typedef struct {
	const char *listen;        /* ADDR:PORT */
	const char *state_dir;
	const char *db;            /* NULL: sqlite:STATE_DIR/console.db */
	const char *tls_cert, *tls_key;
	const char *enroll_secret; /* NULL: STATE_DIR/enroll-secret */
	uint32_t request_timeout_ms; /* a request's head and body must arrive within it */
	uint32_t idle_timeout_ms;    /* keep-alive connection with nothing to do */
	uint32_t max_connections;
	uint32_t max_held_polls;     /* long-polls held at once; past it 503 (longpoll.c) */
	uint32_t policy_check_ms;    /* the watcher reads the policy generation this often */
	const char *web_root;        /* the web UI's assets (web.c) */
	uint32_t session_idle_s, session_max_s; /* browser sessions' idle and absolute expiry */
} console_cfg_t;

typedef struct console_conn console_conn_t;

typedef struct console {
	console_cfg_t cfg;
	uv_loop_t *loop;
	worker_t w;                /* only its block free list is used (iobuf) */
	SSL_CTX *ssl_ctx;
	struct store *store;
	char enroll_secret[256];
	struct sockaddr_storage listen_addr;
	uv_tcp_t listener;
	uv_signal_t sig_term, sig_int, sig_usr1;
	console_conn_t *conns;
	unsigned n_conns;
	unsigned jobs;             /* requests on the thread pool */
	size_t buffered;           /* body bytes held by all requests */
	uint64_t refused;
	struct metrics_http *metrics; /* --metrics, NULL without; closed with the listener */
	struct console_policy *policy; /* longpoll.c: what targets whom, the held polls */
	unsigned held_polls;
	struct policy_ctx *policy_ctx; /* policy distribution: keys, halting (policy.h) */
	bool stopping;
} console_t;

/* ---- server.c ---- */
bool console_server_start(console_t *c, char *err, size_t errlen);

/* What api.c gets from a parsed request (copied out of the head). */
typedef struct {
	struct console *owner;
	size_t charged;            /* bytes of body counted in owner->buffered */
	char method[8];
	char *path;                /* malloc'ed, before '?' */
	char *query;               /* malloc'ed, after '?' (NULL if none) */
	char token[72];            /* the Bearer token ("" if none or malformed) */
	bool bad_auth;             /* an Authorization header that is not Bearer + 64 hex */
	char session[72];          /* the dlpgate_session cookie ("" if none or malformed) */
	char csrf[72];             /* X-CSRF-Token ("" if none, "?" if too long) */
	char peer[48];             /* the client's address */
	char content_type[64];
	char content_encoding[32];
	char *if_none_match;       /* malloc'ed, NULL if absent; "?" when over CONSOLE_MAX_INM */
	bytebuf_t body;
} console_req_t;

/* An If-None-Match a held poll keeps: a few entity tags ("12.0", "13.0"). */
#define CONSOLE_MAX_INM 512

/* Every answer carries these (schemas/console-api.md "Web UI API"). */
#define CONSOLE_CSP                                                                                              \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#define CONSOLE_SECURITY_HEADERS                                                                  \
	"Content-Security-Policy: " CONSOLE_CSP "\r\nX-Content-Type-Options: nosniff\r\n"         \
	"Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n"

/* Sends the answer to the request in flight; body may be NULL. The
 * connection may have gone meanwhile (then nothing is sent). */
void console_respond(console_conn_t *k, int status, const char *body, size_t len, const char *extra_headers);
/* An error body: {"error": code, "detail": detail}. */
void console_respond_error(console_conn_t *k, int status, const char *code, const char *detail);
console_t *console_conn_owner(console_conn_t *k);
/* false once the peer has gone (an answer would only free the connection). */
bool console_conn_open(const console_conn_t *k);

/* ---- longpoll.c: GET /api/v1/policy (schemas/console-api.md) ----
 *
 * A poll whose offer the agent already has is held: the connection parks
 * (server.c) with no job, no read buffer and no request kept, only a small
 * console_poll_t, until the offer changes (a new policy snapshot from
 * policy_watch.c), its wait ends (304), or the console stops (304). */
typedef struct console_poll console_poll_t;
/* The api.c hook: true when req was this endpoint (then it is answered). */
bool console_policy_route(console_conn_t *k, console_req_t *req);
/* Loads what targets whom and starts watching for changes. */
bool console_policy_start(console_t *c, char *err, size_t errlen);
/* Graceful stop: every held poll is answered 304 now; the watcher ends. */
void console_policy_stop(console_t *c);
/* Something this process changed may have changed offers: look now
 * instead of at the next tick. On the loop thread (e.g. when an admin job
 * with targeting_changed is answered). */
void console_policy_changed(console_t *c);
/* server.c -> longpoll.c */
void console_poll_expired(console_poll_t *p);     /* its wait ended: 304 */
void console_poll_interrupted(console_poll_t *p); /* the agent sent more: 304 now */
void console_poll_gone(console_poll_t *p);        /* the connection ended */
/* longpoll.c -> server.c: hold the connection for up to ms; it keeps no
 * buffers and has no other deadline. Unpark before console_respond. */
void console_conn_park(console_conn_t *k, console_poll_t *p, uint32_t ms);
void console_conn_unpark(console_conn_t *k);

/* ---- metrics.c ---- */
struct metrics_family;
extern struct metrics_family *console_m_requests, *console_m_ingested, *console_m_db_errors;
/* Registers the families (with --metrics only; until then counting is a no-op). */
void console_metrics_init(void);
bool console_metrics_render(void *console, bytebuf_t *out);

/* ---- api.c ---- */
/* Body limit for a request, decided from its head. */
size_t console_api_body_limit(const char *method, const char *path);
/* Takes ownership of req. Answers now, or queues work and answers later. */
void console_api_handle(console_conn_t *k, console_req_t *req);
void console_req_free(console_req_t *r);

/* ---- auth.c ---- */
void console_random_hex(char *out, size_t nbytes); /* out: 2*nbytes+1 */
void console_sha256_hex(const char *s, char out[65]);
bool console_secret_equal(const char *a, const char *b); /* constant time */
/* The enroll secret: given, or read from / generated into DIR/enroll-secret. */
bool console_enroll_secret(console_t *c, char *err, size_t errlen);
bool console_is_uuid(const char *s);

/* ---- session.c ---- */
#define CONSOLE_COOKIE "dlpgate_session"
/* The dlpgate_session value (64 lowercase hex) from a Cookie header, or "". */
void console_cookie_session(const char *cookie, size_t len, char out[72]);
/* Failed sign-ins per client address (in this process): may it try now?
 * *retry_s says when it may when not. */
bool console_signin_allowed(const char *peer, int64_t now_ms, int *retry_s);
void console_signin_failed(const char *peer, int64_t now_ms);
/* Constant time, for equal-length hex strings (CSRF tokens). */
bool console_token_equal(const char *a, const char *b);

/* ---- web.c: the web UI's files (console-api.md "Static assets") ---- */
#define CONSOLE_WEB_ROOT "/usr/share/dlpgate-console/web"
typedef struct {
	int status;                /* 200, 400, 404, 503 (not installed) */
	char *body;                /* malloc'ed */
	size_t len;
	const char *type;
	bool immutable;            /* a content-hashed name: cache for a year */
} console_web_answer_t;
void console_web_serve(const char *root, const char *path, console_web_answer_t *a);
const char *console_web_type(const char *name);
/* Only [A-Za-z0-9._~-] segments, none starting with '.', none empty. */
bool console_web_path_ok(const char *path);
bool console_web_hashed(const char *name);

/* ---- cert.c ---- */
/* SSL_CTX with --tls-cert/--tls-key, or DIR/console.pem + console.key
 * (generated, self-signed, on first run). */
SSL_CTX *console_tls_ctx(const console_cfg_t *cfg, char *err, size_t errlen);

/* ---- query.c ---- */
int64_t console_now_ms(void);
void console_time_format(int64_t ms, char out[64]);
/* RFC 3339 (Z or offset, optional fraction) to ms since the epoch. */
bool console_time_parse(const char *s, int64_t *ms);
/* The event schema's own form, exactly YYYY-MM-DDTHH:MM:SS.mmmZ. */
bool console_event_time_parse(const char *s, int64_t *ms);
void console_cursor_format(int64_t ts, int64_t seq, char out[40]);
bool console_cursor_parse(const char *s, int64_t *ts, int64_t *seq);

/* Decoded query string: name/value pairs (malloc'ed). */
typedef struct {
	char *names[32], *values[32];
	int n;
} console_params_t;
/* false with a message naming the parameter when it is malformed. */
bool console_params_parse(const char *query, console_params_t *p, char *err, size_t errlen);
void console_params_free(console_params_t *p);

#endif
