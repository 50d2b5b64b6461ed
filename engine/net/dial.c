#include "net/dial.h"

#include "flow.h"
#include "net/worker.h"

#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

typedef struct dial {
	flow_t *flow;              /* NULL once the flow no longer waits */
	dial_cb cb;
	uv_getaddrinfo_t gai;
	uv_connect_t conn;
	uv_tcp_t *attempt;         /* the handle of the attempt in progress */
	struct addrinfo *res, *next;
	struct sockaddr_storage literal;
	unsigned pending;          /* getaddrinfo + connect requests outstanding */
	bool resolving;
	int last_error;
	char host[256];
} dial_t;

static void maybe_free(dial_t *d)
{
	if (d->pending == 0 && !d->flow) {
		if (d->res)
			uv_freeaddrinfo(d->res);
		free(d);
	}
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

static void finish(dial_t *d, int status, const char *why)
{
	flow_t *f = d->flow;
	d->flow = NULL;
	if (f) {
		f->dial = NULL;
		d->cb(f, status, why);
	}
}

static void try_next(dial_t *d);

static void on_connect(uv_connect_t *req, int status)
{
	dial_t *d = req->data;
	d->pending--;
	uv_tcp_t *tcp = d->attempt;
	d->attempt = NULL;
	if (!d->flow) {
		/* aborted: the handle was already closed */
		maybe_free(d);
		return;
	}
	if (status == 0) {
		flow_t *f = d->flow;
		side_attach(&f->upstream, (uv_stream_t *)tcp);
		f->handles++;
		uint16_t port;
		side_peer_ip(&f->upstream, f->dst_ip, sizeof f->dst_ip, &port);
		finish(d, 0, NULL);
		maybe_free(d);
		return;
	}
	uv_close((uv_handle_t *)tcp, free_handle);
	d->last_error = status;
	try_next(d);
}

static bool start_attempt(dial_t *d, const struct sockaddr *sa)
{
	flow_t *f = d->flow;
	uv_tcp_t *tcp = malloc(sizeof *tcp);
	if (!tcp) {
		d->last_error = UV_ENOMEM;
		return false;
	}
	int r = uv_tcp_init_ex(&f->w->loop, tcp, sa->sa_family);
	if (r < 0) {
		free(tcp);
		d->last_error = r;
		return false;
	}
	tcp->data = &f->upstream;
#ifdef SO_MARK
	if (f->eng->mark_upstream) {
		uv_os_fd_t fd;
		unsigned mark = ENGINE_SOCKET_MARK;
		if (uv_fileno((uv_handle_t *)tcp, &fd) != 0 || setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
			/* unmarked, it would be redirected back to us: a loop */
			uv_close((uv_handle_t *)tcp, free_handle);
			d->last_error = UV_EPERM;
			return false;
		}
	}
#endif
	d->conn.data = d;
	r = uv_tcp_connect(&d->conn, tcp, sa, on_connect);
	if (r < 0) {
		uv_close((uv_handle_t *)tcp, free_handle);
		d->last_error = r;
		return false;
	}
	d->attempt = tcp;
	d->pending++;
	return true;
}

static void try_next(dial_t *d)
{
	while (d->next) {
		struct addrinfo *ai = d->next;
		d->next = ai->ai_next;
		if (start_attempt(d, ai->ai_addr))
			return;
	}
	char why[400];
	snprintf(why, sizeof why, "cannot connect to %s: %s", d->host, uv_strerror(d->last_error));
	finish(d, d->last_error ? d->last_error : UV_ECONNREFUSED, why);
	maybe_free(d);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	dial_t *d = req->data;
	d->pending--;
	d->resolving = false;
	d->res = res;
	if (!d->flow) {
		maybe_free(d);
		return;
	}
	if (status < 0 || !res) {
		char why[400];
		snprintf(why, sizeof why, "cannot resolve %s: %s", d->host, uv_strerror(status));
		finish(d, status ? status : UV_EAI_NONAME, why);
		maybe_free(d);
		return;
	}
	d->next = res;
	try_next(d);
}

int dial_start(flow_t *f, const char *host, uint16_t port, dial_cb cb)
{
	dial_t *d = calloc(1, sizeof *d);
	if (!d)
		return UV_ENOMEM;
	d->flow = f;
	d->cb = cb;
	snprintf(d->host, sizeof d->host, "%s", host);
	f->dial = d;

	struct sockaddr_in *v4 = (struct sockaddr_in *)&d->literal;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&d->literal;
	if (uv_ip4_addr(host, port, v4) == 0 || uv_ip6_addr(host, port, v6) == 0) {
		if (!start_attempt(d, (struct sockaddr *)&d->literal)) {
			try_next(d); /* no more addresses: reports the error */
		}
		return 0;
	}
	char service[8];
	snprintf(service, sizeof service, "%u", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
	d->gai.data = d;
	int r = uv_getaddrinfo(&f->w->loop, &d->gai, on_resolved, host, service, &hints);
	if (r < 0) {
		f->dial = NULL;
		free(d);
		return r;
	}
	d->pending++;
	d->resolving = true;
	return 0;
}

void dial_abort(flow_t *f, bool timed_out)
{
	dial_t *d = f->dial;
	if (!d)
		return;
	if (d->attempt) {
		uv_close((uv_handle_t *)d->attempt, free_handle); /* cancels the connect */
		d->attempt = NULL;
	}
	if (d->resolving)
		uv_cancel((uv_req_t *)&d->gai); /* best effort: a running lookup finishes */
	if (timed_out) {
		char why[400];
		snprintf(why, sizeof why, "connecting to %s timed out", d->host);
		finish(d, UV_ETIMEDOUT, why);
	} else {
		d->flow = NULL;
		f->dial = NULL;
	}
	maybe_free(d);
}
