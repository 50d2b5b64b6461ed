#include "net/dial.h"

#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

struct dial {
	dial_cb cb;                /* NULL once nobody waits */
	void *ud;
	uv_loop_t *loop;
	unsigned socket_mark;
	uv_getaddrinfo_t gai;
	uv_connect_t conn;
	uv_tcp_t *attempt;         /* the handle of the attempt in progress */
	struct addrinfo *res, *next;
	struct sockaddr_storage literal;
	unsigned pending;          /* getaddrinfo + connect requests outstanding */
	bool resolving;
	int last_error;
	char host[256];
};

static void maybe_free(dial_t *d)
{
	if (d->pending == 0 && !d->cb) {
		if (d->res)
			uv_freeaddrinfo(d->res);
		free(d);
	}
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

static void finish(dial_t *d, uv_tcp_t *tcp, int status, const char *why)
{
	dial_cb cb = d->cb;
	d->cb = NULL;
	if (cb)
		cb(d->ud, tcp, status, why);
}

static void try_next(dial_t *d);

static void on_connect(uv_connect_t *req, int status)
{
	dial_t *d = req->data;
	d->pending--;
	uv_tcp_t *tcp = d->attempt;
	d->attempt = NULL;
	if (!d->cb) {
		/* aborted: the handle was already closed */
		maybe_free(d);
		return;
	}
	if (status == 0) {
		finish(d, tcp, 0, NULL);
		maybe_free(d);
		return;
	}
	uv_close((uv_handle_t *)tcp, free_handle);
	d->last_error = status;
	try_next(d);
}

static bool start_attempt(dial_t *d, const struct sockaddr *sa)
{
	uv_tcp_t *tcp = malloc(sizeof *tcp);
	if (!tcp) {
		d->last_error = UV_ENOMEM;
		return false;
	}
	int r = uv_tcp_init_ex(d->loop, tcp, sa->sa_family);
	if (r < 0) {
		free(tcp);
		d->last_error = r;
		return false;
	}
#ifdef SO_MARK
	if (d->socket_mark) {
		uv_os_fd_t fd;
		unsigned mark = d->socket_mark;
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
	finish(d, NULL, d->last_error ? d->last_error : UV_ECONNREFUSED, why);
	maybe_free(d);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	dial_t *d = req->data;
	d->pending--;
	d->resolving = false;
	d->res = res;
	if (!d->cb) {
		maybe_free(d);
		return;
	}
	if (status < 0 || !res) {
		char why[400];
		snprintf(why, sizeof why, "cannot resolve %s: %s", d->host, uv_strerror(status));
		finish(d, NULL, status ? status : UV_EAI_NONAME, why);
		maybe_free(d);
		return;
	}
	d->next = res;
	try_next(d);
}

int dial_start(uv_loop_t *loop, const char *host, uint16_t port, unsigned socket_mark, dial_cb cb, void *ud,
	       dial_t **out)
{
	dial_t *d = calloc(1, sizeof *d);
	if (!d)
		return UV_ENOMEM;
	d->cb = cb;
	d->ud = ud;
	d->loop = loop;
	d->socket_mark = socket_mark;
	snprintf(d->host, sizeof d->host, "%s", host);
	*out = d;

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
	int r = uv_getaddrinfo(loop, &d->gai, on_resolved, host, service, &hints);
	if (r < 0) {
		*out = NULL;
		free(d);
		return r;
	}
	d->pending++;
	d->resolving = true;
	return 0;
}

void dial_abort(dial_t *d, bool timed_out)
{
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
		finish(d, NULL, UV_ETIMEDOUT, why);
	} else {
		d->cb = NULL;
	}
	maybe_free(d);
}
