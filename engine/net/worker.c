/*
 * worker: threads, loops and listening sockets. The sockets are opened by
 * the main thread before any worker starts, so "port in use" is an error at
 * startup with exit code 2, never a worker that silently has no listener.
 */
#include "net/worker.h"

#include "core/log.h"
#include "flow.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

uint64_t worker_now(worker_t *w)
{
	return uv_now(&w->loop);
}

static int open_socket(const listen_spec_t *l, bool reuseport, char *err, size_t n)
{
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, n, "cannot listen on %s: %s", l->text, strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
		snprintf(err, n, "cannot listen on %s: SO_REUSEPORT: %s", l->text, strerror(errno));
		close(fd);
		return -1;
	}
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	socklen_t alen = l->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (bind(fd, (const struct sockaddr *)&l->addr, alen) != 0) {
		int e = errno;
		snprintf(err, n, "cannot listen on %s: %s%s", l->text, strerror(e),
			 e == EADDRINUSE ? " (another process holds this port)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

bool worker_open_listeners(engine_t *e, char *err, size_t n)
{
	for (size_t i = 0; i < e->n_listens; i++) {
		/* A probe without SO_REUSEPORT: with it, a second dlpgate (or
		 * anything else that set it) could share the port unnoticed. */
		int probe = open_socket(&e->listens[i], false, err, n);
		if (probe < 0)
			return false;
		close(probe);
		for (unsigned k = 0; k < e->n_workers; k++) {
			int fd = open_socket(&e->listens[i], true, err, n);
			if (fd < 0)
				return false;
			if (listen(fd, 1024) != 0) {
				snprintf(err, n, "cannot listen on %s: %s", e->listens[i].text, strerror(errno));
				close(fd);
				return false;
			}
			worker_t *w = &e->workers[k];
			w->listen_fds[w->n_listeners++] = fd;
		}
	}
	return true;
}

static void on_connection(uv_stream_t *server, int status)
{
	worker_t *w = server->loop->data;
	if (status < 0) {
		log_msg(LOG_WARN, "accept_error", "%s", uv_strerror(status));
		return;
	}
	size_t idx = (size_t)((uv_tcp_t *)server - w->listeners);
	flow_accept(w, server, w->eng->listens[idx].kind);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void on_wake(uv_async_t *a)
{
	worker_t *w = a->data;
	w->stopping = true;
	for (size_t i = 0; i < w->n_listeners; i++)
		uv_close((uv_handle_t *)&w->listeners[i], NULL);
	for (flow_t *f = w->flows, *next; f; f = next) {
		next = f->next;
		flow_close(f, "shutdown", NULL);
	}
	uv_close((uv_handle_t *)&w->wake, NULL);
}

static void worker_main(void *arg)
{
	worker_t *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	/* Anything left (it should not be) is closed so the loop can go. */
	uv_walk(&w->loop, close_walk, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
	while (w->free_blocks) {
		iobuf_t *b = w->free_blocks;
		w->free_blocks = b->next;
		free(b);
	}
	buf_free(&w->scratch);
}

bool worker_start_all(engine_t *e, char *err, size_t n)
{
	for (unsigned k = 0; k < e->n_workers; k++) {
		worker_t *w = &e->workers[k];
		w->eng = e;
		w->index = k;
		uv_loop_init(&w->loop);
		w->loop.data = w;
		uv_async_init(&w->loop, &w->wake, on_wake);
		w->wake.data = w;
		buf_init(&w->scratch, 0);
		for (size_t i = 0; i < w->n_listeners; i++) {
			uv_tcp_init(&w->loop, &w->listeners[i]);
			int r = uv_tcp_open(&w->listeners[i], w->listen_fds[i]);
			if (r == 0)
				r = uv_listen((uv_stream_t *)&w->listeners[i], 1024, on_connection);
			if (r != 0) {
				snprintf(err, n, "cannot listen on %s: %s", e->listens[i].text, uv_strerror(r));
				return false;
			}
		}
		if (uv_thread_create(&w->thread, worker_main, w) != 0) {
			snprintf(err, n, "cannot start worker thread %u", k);
			return false;
		}
	}
	return true;
}

void worker_stop_all(engine_t *e)
{
	for (unsigned k = 0; k < e->n_workers; k++)
		uv_async_send(&e->workers[k].wake);
	for (unsigned k = 0; k < e->n_workers; k++)
		uv_thread_join(&e->workers[k].thread);
}
