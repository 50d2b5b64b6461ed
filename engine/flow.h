/*
 * flow: one client connection and everything done for it, as an explicit
 * state machine:
 *
 *   REQUEST   explicit proxy: reading CONNECT or an absolute-form request;
 *             system extension: reading the flow's header frame
 *   DIAL      connecting upstream (DNS, TCP)
 *   PEEK      tunnel open: reading the client's first bytes (ClientHello?)
 *   TLS_UP    TLS handshake with the upstream (verify, learn its names)
 *   TLS_DOWN  TLS handshake with the client (with a minted leaf)
 *   HTTP      messages relayed, parsed both ways
 *   SPLICE    bytes copied untouched both ways
 *   CLOSING
 *
 * Each state's code lives in the module of its stage (the sources,
 * tunnel.c, intercept.c, http/relay.c, http/wsrelay.c, splice.c, and
 * uninspectable.c for the policy's say on what cannot be inspected); this
 * file owns what every state shares: creation, the one timer, the decision
 * call into the policy, dialling, closing, and the one log line per flow.
 *
 * The calls form a tree: the flow and its stages sit on top and call down
 * into net/ (workers, sides, dial), tls/ (ClientHello, CA, minting,
 * contexts, pinned memory), http/ codecs, detect/ and policy/. Those lower
 * layers never name the flow: they report through the callbacks they were
 * given (side_t's on_closed/on_activity and ops, dial's callback, the
 * worker's hooks, flow_worker_hooks here).
 *
 * Timeouts are one uv_timer per flow armed at the earliest of a hard
 * deadline (the stage must finish by then: dial, handshake, request head)
 * and an idle limit (no byte either way). Reads only stamp last_activity;
 * the timer re-arms itself when it fires early, so traffic costs no timer
 * work.
 */
#ifndef DLPGATE_FLOW_H
#define DLPGATE_FLOW_H

#include "core/bytebuf.h"
#include "engine.h"
#include "net/side.h"
#include "net/worker.h"
#include "policy/policy.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef enum {
	FLOW_REQUEST = 0,
	FLOW_DIAL,
	FLOW_PEEK,
	FLOW_TLS_UP,
	FLOW_TLS_DOWN,
	FLOW_HTTP,
	FLOW_SPLICE,
	FLOW_CLOSING,
} flow_state_t;

struct relay;
struct dial;

typedef struct flow {
	struct worker *w;
	engine_t *eng;
	uint64_t id;
	flow_state_t state;
	struct flow *prev, *next;   /* worker's list */

	side_t client, upstream;
	uv_timer_t timer;
	unsigned handles;           /* libuv handles and requests still open */
	compiled_policy_t *policy;           /* the policy this flow started with */

	/* who and where */
	flow_facts_t facts;         /* points into the fields below */
	char client_ip[64];
	uint16_t client_port;
	char host[256];
	uint16_t port;
	char sni[256];
	char dst_ip[64];
	char session_key[560];      /* upstream TLS session cache key */
	bool tunnel;                /* reached through CONNECT */
	struct frame_request *sysext; /* the system extension's header: facts.app points into it */
	struct appid *appid;        /* transparent mode: the local app; facts.app points into it */

	/* what was decided */
	verdict_t verdict;
	char event_id[37];          /* the event that records a flow-stage block, for its page */
	const char *mode;           /* inspect, bypass, pinned, not-http, ... (static strings) */
	struct {                    /* a refusal the client is told about over HTTP */
		int status;         /* 0 = none */
		const char *code, *title;
		char detail[256];
	} report;

	bytebuf_t peek;                 /* client bytes before the decision */
	bytebuf_t early;                /* upstream bytes before HTTP began */
	uint64_t client_bytes_at_hello; /* the client's bytes on the wire when our TLS began */
	struct relay *relay;
	struct dial *dial;
	void (*dial_done)(struct flow *f, int status, const char *why); /* flow_dial's callback */

	/* time, ms on the worker's loop clock */
	uint64_t started;
	uint64_t last_activity;
	uint64_t deadline;          /* hard deadline of the current stage, 0 = none */
	const char *deadline_what;  /* for the log: "connect", "tls-handshake", ... */
	uint32_t idle_ms;           /* idle limit now, 0 = none */

	uint32_t requests;
	const char *end;            /* why it ended (static string) */
	char end_detail[200];
	bool lingering;
	bool closing;
} flow_t;

/* What the workers (net/worker.c) hand their connections to: each becomes
 * a flow; drain and shutdown end them. */
extern const worker_hooks_t flow_worker_hooks;

/* Records the reason and closes both sides; the flow is freed once every
 * handle is closed. Idempotent: the first reason wins. */
void flow_close(flow_t *f, const char *end, const char *detail_fmt, ...) __attribute__((format(printf, 3, 4)));
/* Ends the flow gracefully: what is queued is sent, both ends get FIN, and
 * the flow closes once the peers close or after a short linger. */
void flow_finish(flow_t *f, const char *end, const char *detail_fmt, ...) __attribute__((format(printf, 3, 4)));
void flow_handle_released(flow_t *f);
static inline void flow_touch(flow_t *f);
/* Makes s one of f's sides (side_init), owned by f: its handle counts
 * among f's, and bytes on it keep f from idling out. */
void flow_side_init(flow_t *f, side_t *s, side_t *peer, const char *name);
/* The flow a side belongs to (the owner flow_side_init gave it). */
static inline flow_t *side_flow(const side_t *s) { return s->owner; }

/* Connects f's upstream side to host:port (net/dial.c); done gets status
 * 0 once f->upstream is connected (f->dst_ip set), else a libuv error and a
 * sentence for the client. The flow's deadline calls flow_dial_abort(f,
 * true), which reports UV_ETIMEDOUT through done. */
int flow_dial(flow_t *f, const char *host, uint16_t port, void (*done)(flow_t *f, int status, const char *why));
/* Stops f's dial (if any); done is called with UV_ETIMEDOUT when timed_out,
 * else never. */
void flow_dial_abort(flow_t *f, bool timed_out);

void flow_set_state(flow_t *f, flow_state_t s);
/* Arms the hard deadline of a stage (0 clears it). */
void flow_deadline(flow_t *f, uint32_t ms, const char *what);
void flow_idle(flow_t *f, uint32_t ms);

/* Asks the flow's policy about this flow (on_flow). */
void flow_decide(flow_t *f);
/* Reports f->verdict as a flow-stage verdict event (note may be NULL) and
 * keeps its id in f->event_id, so a block page can name it. */
void flow_report_decision(flow_t *f, const char *note);
/* The flow was to be inspected but cannot be: asks the policy
 * (on_uninspectable), reports the decision as a verdict event, and says
 * what to do: true to let it through uninspected (bypass, or a block the
 * policy only monitors), false to refuse it. f->verdict holds the answer. */
bool flow_uninspectable(flow_t *f, uninspectable_t why, const char *detail_fmt, ...)
	__attribute__((format(printf, 3, 4)));
void flow_set_destination(flow_t *f, const char *host, uint16_t port);
/* What every verdict event on f says of it (who, where, TLS, policy
 * version) with a new id; request (may be NULL) gives the method and the
 * path without its query, whose values can be secrets. */
struct event;
void flow_event_init(flow_t *f, struct event *e, const char *stage, const verdict_t *v, const http_head_t *request);

/* Sends the bytes held in f->peek upstream and f->early to the client,
 * then copies both ways untouched until both directions end. mode is the
 * log's name for why (static string). Lives in splice.c. */
void flow_splice(flow_t *f, const char *mode);

/* The tunnel is up (CONNECT answered or a transparent flow connected):
 * look at the first bytes (those already read are in f->peek) and decide.
 * Lives in tunnel.c. */
void flow_tunnel_start(flow_t *f);

const char *flow_state_name(flow_state_t s);
uint64_t flow_now(const flow_t *f);

static inline void flow_touch(flow_t *f)
{
	f->last_activity = uv_now(f->timer.loop);
}

#endif
