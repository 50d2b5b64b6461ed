/*
 * server: the console's connections. HTTPS only, HTTP/1.1 keep-alive, on
 * the engine's own pieces: side_t (libuv stream + TLS through our BIO, the
 * block free list of a worker_t) and the llhttp codec with its limits.
 *
 * A connection is in one of six states, and its one timer enforces the
 * deadline of that state, so nobody holds a connection for free:
 *   FIRST    accepted: TLS handshake and the first request must be complete
 *            within request_timeout (a Slowloris that never finishes its
 *            handshake or head is cut here)
 *   REQUEST  a request's first byte arrived: head and body must be
 *            complete within request_timeout, else 408 and close
 *   BUSY     the request is on the thread pool; nothing is read (no
 *            pipelining ahead of the answer), no deadline of ours
 *   PARKED   a long-poll held until its offer changes (longpoll.c): the
 *            timer is its wait, and the connection keeps nothing but the
 *            TLS session and a small console_poll_t (the request, the
 *            parsed head's arena and every I/O block are freed; OpenSSL
 *            releases its buffers with SSL_MODE_RELEASE_BUFFERS). It reads,
 *            so a peer that leaves is noticed; a byte it sends ends the hold
 *   IDLE     answered, keep-alive: closed after idle_timeout
 *   LINGER   answered with Connection: close; what the peer still sends is
 *            read and dropped (so it sees our answer, not a reset) until it
 *            closes or a short linger ends
 * Bytes are fed to the codec from one pending buffer by pump(), never from
 * inside a callback, so an answer given synchronously cannot re-enter the
 * parser. Connections past max_connections are accepted and closed at once.
 */
#include "net/metrics_http.h"
#include "console.h"

#include "core/log.h"
#include "http/codec.h"

#include <malloc.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINGER_MS 2000
#define PENDING_CAP (1024 * 1024)

typedef enum { K_FIRST, K_REQUEST, K_BUSY, K_PARKED, K_IDLE, K_LINGER } kstate_t;

struct console_conn {
	console_t *c;
	console_conn_t *prev, *next;
	side_t side;
	http_codec_t *codec;       /* NULL while PARKED (a held poll keeps no parser) */
	uv_timer_t timer;
	kstate_t state;
	console_req_t *req;        /* the request being read */
	console_req_t *ready;      /* complete, to dispatch after the feed */
	console_poll_t *held;      /* PARKED: the poll (longpoll.c owns it) */
	size_t body_limit;
	bytebuf_t pending;             /* read, not yet parsed */
	unsigned handles;          /* stream + timer until both are closed */
	bool closing;
	bool close_after;          /* the answer ends the connection */
	bool in_pump;
	bool keep_alive;           /* PARKED: the codec's verdict on the held request */
	char peer[48];             /* the client's address (sign-in rate limit) */
};

static void conn_close(console_conn_t *k);
static void pump(console_conn_t *k);

console_t *console_conn_owner(console_conn_t *k)
{
	return k->c;
}

bool console_conn_open(const console_conn_t *k)
{
	return !k->closing;
}

void console_req_free(console_req_t *r)
{
	if (!r)
		return;
	if (r->owner)
		r->owner->buffered -= r->charged;
	free(r->path);
	free(r->query);
	free(r->if_none_match);
	bytebuf_free(&r->body);
	OPENSSL_cleanse(r->token, sizeof r->token);
	free(r);
}

/* ---- lifetime ---- */

static void conn_free(console_conn_t *k)
{
	console_t *c = k->c;
	if (k->prev)
		k->prev->next = k->next;
	else
		c->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	c->n_conns--;
	SSL_free(k->side.ssl); /* a side closes its stream, its owner frees the session */
	if (k->codec)
		http_codec_free(k->codec);
	free(k->codec);
	bytebuf_free(&k->pending);
	console_req_free(k->req);
	console_req_free(k->ready);
	free(k);
}

static void handle_gone(console_conn_t *k)
{
	if (--k->handles == 0 && k->state != K_BUSY)
		conn_free(k);
}

static console_conn_t *of_side(side_t *s)
{
	return (console_conn_t *)((char *)s - offsetof(console_conn_t, side));
}

static void on_side_closed(side_t *s)
{
	handle_gone(of_side(s));
}

static void on_timer_closed(uv_handle_t *h)
{
	handle_gone(h->data);
}

static void conn_close(console_conn_t *k)
{
	if (k->closing)
		return;
	k->closing = true;
	if (k->held) {
		console_poll_gone(k->held);
		k->held = NULL;
	}
	side_close(&k->side);
	uv_timer_stop(&k->timer);
	uv_close((uv_handle_t *)&k->timer, on_timer_closed);
}

static void on_timer(uv_timer_t *t);

static void arm(console_conn_t *k, uint32_t ms)
{
	if (!k->closing)
		uv_timer_start(&k->timer, on_timer, ms, 0);
}

/* ---- answering ---- */

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return status >= 500 ? "Internal Server Error" : "Error";
	}
}

static void send_answer(console_conn_t *k, int status, const char *body, size_t len, const char *extra, bool close)
{
	bytebuf_t out;
	bytebuf_init(&out, 0);
	bool bodyless = status == 204 || status == 304;
	bytebuf_appendf(&out, "HTTP/1.1 %d %s\r\n", status, reason(status));
	/* JSON unless the extra headers name another type (a policy file, a diff) */
	bool typed = extra && !strncasecmp(extra, "Content-Type:", 13);
	if (!bodyless)
		bytebuf_appendf(&out, "%sContent-Length: %zu\r\n", typed ? "" : "Content-Type: application/json\r\n", len);
	/* on every answer (console-api.md "Headers on every answer"); static
	 * files name their own caching */
	bool cached = extra && strstr(extra, "Cache-Control:");
	bytebuf_appendf(&out, "%s" CONSOLE_SECURITY_HEADERS "%s%s\r\n", cached ? "" : "Cache-Control: no-store\r\n",
			extra ? extra : "", close ? "Connection: close\r\n" : "");
	if (!bodyless && len)
		bytebuf_append(&out, body, len);
	side_write(&k->side, out.data, out.len);
	bytebuf_free(&out);
}

static const http_codec_cbs_t codec_cbs;

/* A parser for the connection's next request; false when memory ran out. */
static bool codec_new(console_conn_t *k)
{
	k->codec = malloc(sizeof *k->codec);
	if (k->codec)
		http_codec_init(k->codec, true, CONSOLE_MAX_HEAD, CONSOLE_MAX_FIELDS, &codec_cbs, k);
	return k->codec != NULL;
}

static void finish(console_conn_t *k, bool close)
{
	if (close) {
		k->state = K_LINGER;
		side_shutdown(&k->side);
		side_read(&k->side, true);
		arm(k, LINGER_MS);
		return;
	}
	if (!k->codec && !codec_new(k)) { /* after a held poll: a parser for the next request */
		conn_close(k);
		return;
	}
	k->state = K_IDLE;
	arm(k, k->c->cfg.idle_timeout_ms);
	pump(k);
}

void console_respond(console_conn_t *k, int status, const char *body, size_t len, const char *extra)
{
	bool was_busy = k->state == K_BUSY;
	if (k->closing) {
		/* The peer left while we worked: the connection waited for us. */
		k->state = K_IDLE;
		if (was_busy && k->handles == 0)
			conn_free(k);
		return;
	}
	bool keep_alive = k->codec ? http_codec_keep_alive(k->codec) : k->keep_alive;
	bool close = k->close_after || k->c->stopping || !keep_alive || status == 408 ||
		     status == 413 || status == 431;
	/* The codec's keep-alive verdict is only known once a message ended;
	 * a refusal mid-request always closes (close_after). */
	send_answer(k, status, body, len, extra, close);
	finish(k, close);
}

void console_conn_park(console_conn_t *k, console_poll_t *p, uint32_t ms)
{
	k->state = K_PARKED;
	k->held = p;
	/* The request ended, so its parser holds nothing the next one needs
	 * but the keep-alive verdict: it is given back while the poll waits
	 * (with its head arena, about 1 KiB of a held poll's 16). */
	k->keep_alive = http_codec_keep_alive(k->codec);
	http_codec_free(k->codec);
	free(k->codec);
	k->codec = NULL;
	arm(k, ms);
	side_read(&k->side, true);
}

void console_conn_unpark(console_conn_t *k)
{
	k->held = NULL;
	k->state = K_BUSY; /* console_respond's view: a request being answered */
	uv_timer_stop(&k->timer);
}

void console_respond_error(console_conn_t *k, int status, const char *code, const char *detail)
{
	json_t *o = json_pack("{s:s, s:s}", "error", code, "detail", detail);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	console_respond(k, status, s ? s : "{}", s ? strlen(s) : 2, status == 503 ? "Retry-After: 1\r\n" : NULL);
	free(s);
}

/* An error found while reading a request: answer it and end the connection. */
static void refuse(console_conn_t *k, int status, const char *code, const char *detail)
{
	log_line_t l;
	log_begin(&l, LOG_INFO, "request");
	log_kv_u64(&l, "status", (uint64_t)status);
	log_kv_str(&l, "error", code);
	log_kv_str(&l, "detail", detail ? detail : "");
	log_end(&l);
	k->close_after = true;
	k->state = K_BUSY; /* console_respond's view: a request being answered */
	console_respond_error(k, status, code, detail);
}

/* ---- reading requests ---- */

static console_conn_t *of_codec(void *ud)
{
	return ud;
}

static int on_begin(void *ud)
{
	(void)ud;
	return HTTP_CB_GO;
}

static bool parse_bearer(const char *v, uint32_t n, char token[72])
{
	if (n != 7 + 64 || strncasecmp(v, "Bearer ", 7) != 0)
		return false;
	for (uint32_t i = 7; i < n; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return false;
	memcpy(token, v + 7, 64);
	token[64] = '\0';
	return true;
}

static void copy_field(const http_head_t *h, const char *name, char *out, size_t n)
{
	uint32_t len;
	const char *v = http_head_get(h, name, &len);
	if (!v || len >= n) {
		out[0] = '\0';
		if (v)
			memcpy(out, "?", 2); /* present but too long: never matches */
		return;
	}
	memcpy(out, v, len);
	out[len] = '\0';
}

static int on_head(void *ud, http_head_t *h)
{
	console_conn_t *k = of_codec(ud);
	console_req_t *r = calloc(1, sizeof *r);
	if (!r)
		return http_codec_fail(k->codec, 503, "out of memory");
	k->req = r;
	r->owner = k->c;
	const char *m = http_head_str(h, h->method_off), *t = http_head_str(h, h->target_off);
	if (h->method_len >= sizeof r->method || h->target_len == 0 || t[0] != '/') {
		refuse(k, h->method_len >= sizeof r->method ? 405 : 400, "bad_request", "unsupported request line");
		return HTTP_CB_PAUSE;
	}
	memcpy(r->method, m, h->method_len);
	const char *q = memchr(t, '?', h->target_len);
	size_t plen = q ? (size_t)(q - t) : h->target_len;
	r->path = strndup(t, plen);
	r->query = q ? strndup(q + 1, h->target_len - plen - 1) : NULL;
	uint32_t alen;
	const char *auth = http_head_get(h, "authorization", &alen);
	if (auth && (http_head_count(h, "authorization") != 1 || !parse_bearer(auth, alen, r->token)))
		r->bad_auth = true;
	copy_field(h, "content-type", r->content_type, sizeof r->content_type);
	copy_field(h, "x-csrf-token", r->csrf, sizeof r->csrf);
	uint32_t clen;
	for (const char *ck = http_head_get(h, "cookie", &clen); ck && !r->session[0] && http_head_count(h, "cookie") == 1;
	     ck = NULL)
		console_cookie_session(ck, clen, r->session);
	memcpy(r->peer, k->peer, sizeof r->peer);
	copy_field(h, "content-encoding", r->content_encoding, sizeof r->content_encoding);
	uint32_t inm_len;
	const char *inm = http_head_get(h, "if-none-match", &inm_len);
	if (inm)
		r->if_none_match = inm_len <= CONSOLE_MAX_INM ? strndup(inm, inm_len) : strdup("?");
	k->body_limit = console_api_body_limit(r->method, r->path);
	bytebuf_init(&r->body, k->body_limit);
	if (!r->path || (q && !r->query) || (inm && !r->if_none_match)) {
		refuse(k, 503, "overloaded", "out of memory");
		return HTTP_CB_PAUSE;
	}
	if (h->has_length && h->content_length > k->body_limit) {
		char detail[128];
		snprintf(detail, sizeof detail, "the body is %llu bytes; at most %zu are accepted here",
			 (unsigned long long)h->content_length, k->body_limit);
		refuse(k, 413, "too_large", detail);
		return HTTP_CB_PAUSE;
	}
	if (h->has_length && k->c->buffered + h->content_length > CONSOLE_MAX_BUFFERED) {
		refuse(k, 503, "overloaded", "too many uploads in progress");
		return HTTP_CB_PAUSE;
	}
	if (http_head_has_token(h, "expect", "100-continue"))
		side_write(&k->side, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return HTTP_CB_GO;
}

static int on_body(void *ud, const char *data, size_t len)
{
	console_conn_t *k = of_codec(ud);
	console_t *c = k->c;
	if (c->buffered + len > CONSOLE_MAX_BUFFERED) {
		refuse(k, 503, "overloaded", "too many uploads in progress");
		return HTTP_CB_PAUSE;
	}
	if (!bytebuf_append(&k->req->body, data, len)) {
		refuse(k, 413, "too_large", "the body is larger than accepted here");
		return HTTP_CB_PAUSE;
	}
	c->buffered += len;
	k->req->charged += len;
	return HTTP_CB_GO;
}

static int on_end(void *ud, http_head_t *trailers)
{
	(void)trailers;
	console_conn_t *k = of_codec(ud);
	k->ready = k->req;
	k->req = NULL;
	k->state = K_BUSY;
	uv_timer_stop(&k->timer);
	return HTTP_CB_PAUSE;
}

static const http_codec_cbs_t codec_cbs = {on_begin, on_head, on_body, on_end};

/* Feeds what is pending to the parser and dispatches complete requests,
 * until one is busy, the connection ends, or nothing is left. */
static void pump(console_conn_t *k)
{
	if (k->in_pump)
		return;
	k->in_pump = true;
	while (!k->closing && (k->state == K_FIRST || k->state == K_IDLE || k->state == K_REQUEST) &&
	       k->pending.len) {
		if (k->state == K_IDLE)
			arm(k, k->c->cfg.request_timeout_ms);
		k->state = K_REQUEST;
		bytebuf_t in = k->pending;
		bytebuf_init(&k->pending, PENDING_CAP);
		http_codec_resume(k->codec);
		size_t used = 0;
		http_feed_t r = http_codec_feed(k->codec, in.data, in.len, &used);
		if (used < in.len)
			bytebuf_append(&k->pending, in.data + used, in.len - used);
		bytebuf_free(&in);
		if (r == HTTP_FEED_ERROR && k->state != K_LINGER) {
			int st = http_codec_error_status(k->codec);
			refuse(k, st ? st : 400, "bad_request", http_codec_error_reason(k->codec));
			break;
		}
		if (r == HTTP_FEED_UPGRADE) {
			refuse(k, 400, "bad_request", "protocol upgrades are not served");
			break;
		}
		if (k->ready) {
			console_req_t *req = k->ready;
			k->ready = NULL;
			side_read(&k->side, false);
			console_api_handle(k, req);
		}
	}
	k->in_pump = false;
	if (!k->closing && k->state != K_BUSY)
		side_read(&k->side, true);
}

/* ---- side events ---- */

static void on_data(side_t *s, iobuf_t *b)
{
	console_conn_t *k = of_side(s);
	if (k->state == K_LINGER || k->closing) {
		iobuf_put(b);
		return;
	}
	bool ok = bytebuf_append(&k->pending, b->data, b->len);
	iobuf_put(b);
	if (!ok) {
		conn_close(k);
		return;
	}
	if (k->state == K_PARKED)
		console_poll_interrupted(k->held); /* answers; the bytes wait in pending */
	else if (k->state != K_BUSY)
		pump(k);
}

static void on_eof(side_t *s)
{
	console_conn_t *k = of_side(s);
	if (k->state == K_BUSY) {
		k->close_after = true; /* answer, then close */
		return;
	}
	conn_close(k);
}

static void on_error(side_t *s, const char *why)
{
	console_conn_t *k = of_side(s);
	if (log_enabled(LOG_DEBUG))
		log_msg(LOG_DEBUG, "conn_error", "%s", why);
	conn_close(k);
}

static void on_handshake(side_t *s)
{
	(void)s;
}

static const side_ops_t conn_ops = {on_data, on_eof, on_error, on_handshake};

static void on_timer(uv_timer_t *t)
{
	console_conn_t *k = t->data;
	switch (k->state) {
	case K_REQUEST:
	case K_FIRST:
		if (k->side.handshake_done && http_codec_mid_message(k->codec)) {
			refuse(k, 408, "timeout", "the request did not arrive within the time limit");
			return;
		}
		conn_close(k);
		return;
	case K_IDLE:
	case K_LINGER:
		conn_close(k);
		return;
	case K_PARKED:
		console_poll_expired(k->held);
		return;
	case K_BUSY:
		return;
	}
}

/* ---- accepting ---- */

static void free_handle(uv_handle_t *h)
{
	free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
	console_t *c = server->data;
	if (status < 0 || c->stopping)
		return;
	side_conn_t *sc = malloc(sizeof *sc);
	if (!sc)
		return;
	uv_tcp_init(c->loop, &sc->tcp);
	if (uv_accept(server, &sc->stream) != 0) {
		uv_close(&sc->handle, free_handle);
		return;
	}
	console_conn_t *k = c->n_conns < c->cfg.max_connections ? calloc(1, sizeof *k) : NULL;
	SSL *ssl = k && codec_new(k) ? SSL_new(c->ssl_ctx) : NULL;
	if (!ssl) {
		if (k && k->codec)
			http_codec_free(k->codec);
		if (k)
			free(k->codec);
		free(k);
		uv_close(&sc->handle, free_handle);
		if (c->refused++ % 1000 == 0)
			log_msg(LOG_WARN, "conn_refused", "at max connections (%u): --max-connections raises it",
				c->cfg.max_connections);
		return;
	}
	k->c = c;
	k->next = c->conns;
	if (c->conns)
		c->conns->prev = k;
	c->conns = k;
	c->n_conns++;
	k->handles = 2;
	k->state = K_FIRST;
	bytebuf_init(&k->pending, PENDING_CAP);
	uv_timer_init(c->loop, &k->timer);
	k->timer.data = k;
	side_init(&k->side, &c->w, k, NULL, "client", &conn_ops);
	k->side.on_closed = on_side_closed;
	struct sockaddr_storage peer;
	int plen = sizeof peer;
	if (uv_tcp_getpeername(&sc->tcp, (struct sockaddr *)&peer, &plen) == 0)
		uv_ip_name((struct sockaddr *)&peer, k->peer, sizeof k->peer);
	side_attach(&k->side, &sc->stream);
	arm(k, c->cfg.request_timeout_ms);
	SSL_set_accept_state(ssl);
	side_tls_start(&k->side, ssl, NULL, 0);
	if (!k->closing)
		side_read(&k->side, true);
}

/* ---- start and stop ---- */

/* SIGUSR1: one line with what the console holds now (for operators and
 * the load bench: RSS alone keeps the high-water mark of the heap). */
static void on_usr1(uv_signal_t *sig, int signum)
{
	(void)signum;
	console_t *c = sig->data;
	struct mallinfo2 mi = mallinfo2();
	log_line_t l;
	log_begin(&l, LOG_WARN, "stats");
	log_kv_u64(&l, "connections", c->n_conns);
	log_kv_u64(&l, "jobs", c->jobs);
	log_kv_u64(&l, "held_polls", c->held_polls);
	log_kv_u64(&l, "refused", c->refused);
	log_kv_u64(&l, "heap_in_use_kib", (uint64_t)mi.uordblks / 1024);
	log_end(&l);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	console_t *c = sig->data;
	if (c->stopping)
		return;
	log_msg(LOG_INFO, "stop", "signal %d: finishing requests in flight, then exiting", signum);
	c->stopping = true;
	console_policy_stop(c); /* held polls answered 304 (and closed: stopping) */
	uv_close((uv_handle_t *)&c->listener, NULL);
	metrics_http_stop(c->metrics); /* a scrape is not a request in flight */
	c->metrics = NULL;
	uv_close((uv_handle_t *)&c->sig_term, NULL);
	uv_close((uv_handle_t *)&c->sig_int, NULL);
	uv_close((uv_handle_t *)&c->sig_usr1, NULL);
	for (console_conn_t *k = c->conns, *next; k; k = next) {
		next = k->next;
		if (k->state == K_BUSY)
			k->close_after = true;
		else if (k->state != K_LINGER) /* an answer on its way out keeps its linger */
			conn_close(k);
	}
}

bool console_server_start(console_t *c, char *err, size_t errlen)
{
	if (!console_policy_start(c, err, errlen))
		return false;
	struct sockaddr_storage ss = c->listen_addr;
	uv_tcp_init(c->loop, &c->listener);
	c->listener.data = c;
	int r = uv_tcp_bind(&c->listener, (struct sockaddr *)&ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&c->listener, 1024, on_connection);
	if (r != 0) {
		snprintf(err, errlen, "--listen %s: %s", c->cfg.listen, uv_strerror(r));
		uv_close((uv_handle_t *)&c->listener, NULL);
		console_policy_stop(c);
		return false;
	}
	uv_signal_init(c->loop, &c->sig_term);
	uv_signal_init(c->loop, &c->sig_int);
	c->sig_term.data = c->sig_int.data = c;
	uv_signal_start(&c->sig_term, on_signal, SIGTERM);
	uv_signal_start(&c->sig_int, on_signal, SIGINT);
	uv_signal_init(c->loop, &c->sig_usr1);
	c->sig_usr1.data = c;
	uv_signal_start(&c->sig_usr1, on_usr1, SIGUSR1);
	return true;
}
