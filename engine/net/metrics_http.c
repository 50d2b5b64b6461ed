/* The metrics listener; see metrics_http.h. */
#include "net/metrics_http.h"

#include "net/addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAPE_MAX 16
#define SCRAPE_HEAD_MAX 8192
#define SCRAPE_TIMEOUT_MS 5000

typedef struct scrape scrape_t;

struct metrics_http {
	uv_tcp_t listener;
	metrics_render_fn fn;
	void *ud;
	scrape_t *scrapes;
	unsigned n_scrapes;
	unsigned handles; /* the listener and each scrape's two handles */
	bool stopping;
};

struct scrape {
	metrics_http_t *m;
	scrape_t *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	char head[SCRAPE_HEAD_MAX];
	size_t len;
	bytebuf_t out;
	unsigned open_handles;
};

static void maybe_free(metrics_http_t *m)
{
	if (m->stopping && m->handles == 0)
		free(m);
}

static void scrape_handle_closed(uv_handle_t *h)
{
	scrape_t *s = h->data;
	metrics_http_t *m = s->m;
	m->handles--;
	if (--s->open_handles == 0) {
		bytebuf_free(&s->out);
		free(s);
	}
	maybe_free(m);
}

static void scrape_close(scrape_t *s)
{
	if (uv_is_closing((uv_handle_t *)&s->tcp))
		return;
	metrics_http_t *m = s->m;
	if (s->prev)
		s->prev->next = s->next;
	else
		m->scrapes = s->next;
	if (s->next)
		s->next->prev = s->prev;
	m->n_scrapes--;
	uv_close((uv_handle_t *)&s->tcp, scrape_handle_closed);
	uv_close((uv_handle_t *)&s->timer, scrape_handle_closed);
}

static void on_written(uv_write_t *wr, int status)
{
	(void)status;
	scrape_close(wr->data);
}

static void answer(scrape_t *s, int status, const char *reason, const char *type, const char *body, size_t n)
{
	uv_read_stop((uv_stream_t *)&s->tcp);
	bytebuf_t resp;
	bytebuf_init(&resp, 0);
	bool ok = bytebuf_appendf(&resp,
				  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
				  status, reason, type, n) &&
		  bytebuf_append(&resp, body, n);
	bytebuf_free(&s->out);
	s->out = resp;
	if (!ok) {
		scrape_close(s);
		return;
	}
	uv_buf_t b = uv_buf_init(s->out.data, (unsigned)s->out.len);
	s->wr.data = s;
	if (uv_write(&s->wr, (uv_stream_t *)&s->tcp, &b, 1, on_written) != 0)
		scrape_close(s);
}

static void respond(scrape_t *s)
{
	const char *sp = memchr(s->head, ' ', s->len);
	bool get = s->len > 4 && !strncmp(s->head, "GET ", 4);
	const char *path = sp ? sp + 1 : "";
	bool metrics = !strncmp(path, "/metrics ", 9) || !strncmp(path, "/metrics?", 9);
	if (!get || !metrics) {
		static const char nf[] = "only GET /metrics is served here\n";
		answer(s, get ? 404 : 405, get ? "Not Found" : "Method Not Allowed", "text/plain", nf, sizeof nf - 1);
		return;
	}
	bytebuf_t body;
	bytebuf_init(&body, 0);
	if (!s->m->fn(s->m->ud, &body)) {
		bytebuf_free(&body);
		static const char oom[] = "out of memory\n";
		answer(s, 500, "Internal Server Error", "text/plain", oom, sizeof oom - 1);
		return;
	}
	answer(s, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body.data ? body.data : "", body.len);
	bytebuf_free(&body);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	scrape_t *s = h->data;
	*buf = uv_buf_init(s->head + s->len, (unsigned)(sizeof s->head - 1 - s->len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	scrape_t *s = st->data;
	if (n < 0) {
		scrape_close(s);
		return;
	}
	s->len += (size_t)n;
	s->head[s->len] = '\0';
	if (strstr(s->head, "\r\n\r\n") || strstr(s->head, "\n\n")) {
		respond(s);
		return;
	}
	if (s->len >= sizeof s->head - 1) {
		static const char big[] = "request head too large\n";
		answer(s, 431, "Request Header Fields Too Large", "text/plain", big, sizeof big - 1);
	}
}

static void on_timeout(uv_timer_t *t)
{
	scrape_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
	metrics_http_t *m = server->data;
	if (status < 0)
		return;
	scrape_t *s = calloc(1, sizeof *s);
	if (!s)
		return;
	s->m = m;
	bytebuf_init(&s->out, 0);
	uv_tcp_init(server->loop, &s->tcp);
	uv_timer_init(server->loop, &s->timer);
	s->tcp.data = s->timer.data = s;
	s->open_handles = 2;
	m->handles += 2;
	s->next = m->scrapes;
	if (m->scrapes)
		m->scrapes->prev = s;
	m->scrapes = s;
	m->n_scrapes++;
	if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0 || m->n_scrapes > SCRAPE_MAX) {
		scrape_close(s); /* past the limit: the connection is just closed */
		return;
	}
	uv_timer_start(&s->timer, on_timeout, SCRAPE_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

static void listener_closed(uv_handle_t *h)
{
	metrics_http_t *m = h->data;
	m->handles--;
	maybe_free(m);
}

metrics_http_t *metrics_http_start(uv_loop_t *loop, const char *addr, bool public_ok, metrics_render_fn fn, void *ud,
				   char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	if (!addr_parse("--metrics", addr, &ss, err, errlen))
		return NULL;
	if (!addr_is_loopback(&ss) && !public_ok) {
		snprintf(err, errlen,
			 "--metrics %s: not a loopback address; metrics name hosts and policy versions, so serving "
			 "them beyond this machine needs --metrics-public too",
			 addr);
		return NULL;
	}
	metrics_http_t *m = calloc(1, sizeof *m);
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->fn = fn;
	m->ud = ud;
	uv_tcp_init(loop, &m->listener);
	m->listener.data = m;
	m->handles = 1;
	int r = uv_tcp_bind(&m->listener, (const struct sockaddr *)&ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&m->listener, 16, on_connection);
	if (r != 0) {
		snprintf(err, errlen, "--metrics %s: %s", addr,
			 r == UV_EADDRINUSE ? "address already in use" : uv_strerror(r));
		m->stopping = true;
		uv_close((uv_handle_t *)&m->listener, listener_closed);
		return NULL;
	}
	return m;
}

void metrics_http_stop(metrics_http_t *m)
{
	if (!m)
		return;
	m->stopping = true;
	while (m->scrapes)
		scrape_close(m->scrapes);
	uv_close((uv_handle_t *)&m->listener, listener_closed);
}
