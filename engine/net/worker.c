/*
 * worker: threads, loops and listening sockets. The sockets are opened by
 * the main thread before any worker starts, so "port in use" is an error at
 * startup with exit code 2, never a worker that silently has no listener.
 */
#include "net/worker.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

uint64_t worker_now(worker_t *w)
{
	return uv_now(&w->loop);
}

/* A non-blocking, close-on-exec stream socket (in one call where the
 * system has the flags; macOS does not). */
static int stream_socket(int family)
{
#ifdef SOCK_NONBLOCK
	return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
	int fd = socket(family, SOCK_STREAM, 0);
	if (fd >= 0 && (fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)) {
		close(fd);
		return -1;
	}
	return fd;
#endif
}

static int open_socket(const listen_spec_t *l, bool reuseport, char *err, size_t n)
{
	int fd = stream_socket(l->addr.ss_family);
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

/* The system extension's socket: a unix socket only root (and the one
 * uid configured) may use. Created with umask 0177 so it is never, even
 * for an instant, open to others; a stale socket left by a crash is
 * replaced, anything else at the path is an error. One socket for all
 * workers (unix sockets have no SO_REUSEPORT): each gets a duplicate and
 * the kernel wakes one to accept. */
static int open_unix(const listen_spec_t *l, char *err, size_t n)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&l->addr;
	struct stat st;
	/* The folder may be gone: macOS empties /var/run at every boot, and
	 * launchd starts the engine with /var/run/dlpgate/sysext.sock. Only
	 * the last component is made, so a mistyped path is still an error. */
	char dir[sizeof sun->sun_path];
	snprintf(dir, sizeof dir, "%s", sun->sun_path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			snprintf(err, n, "--sysext-socket %s: cannot create %s: %s", l->text, dir, strerror(errno));
			return -1;
		}
	}
	if (lstat(sun->sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, n, "--sysext-socket %s: exists and is not a socket (move it away)", l->text);
			return -1;
		}
		unlink(sun->sun_path);
	}
	int fd = stream_socket(AF_UNIX);
	if (fd < 0) {
		snprintf(err, n, "--sysext-socket %s: %s", l->text, strerror(errno));
		return -1;
	}
	mode_t old = umask(0177);
	int r = bind(fd, (const struct sockaddr *)sun, sizeof *sun);
	int e = errno;
	umask(old);
	if (r != 0 || listen(fd, 1024) != 0) {
		snprintf(err, n, "--sysext-socket %s: %s", l->text, strerror(r != 0 ? e : errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* One listening socket for every worker: each gets a duplicate. */
static bool share_listener(engine_t *e, const listen_spec_t *l, int fd, char *err, size_t n)
{
	for (unsigned k = 0; k < e->n_workers; k++) {
		worker_t *w = &e->workers[k];
		w->listen_fds[w->n_listeners++] = k ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : fd;
		if (w->listen_fds[w->n_listeners - 1] < 0) {
			snprintf(err, n, "cannot listen on %s: %s", l->text, strerror(errno));
			return false;
		}
	}
	return true;
}

bool worker_open_listeners(engine_t *e, char *err, size_t n)
{
	for (size_t i = 0; i < e->n_listens; i++) {
		if (e->listens[i].kind == LISTEN_SYSEXT) {
			int fd = open_unix(&e->listens[i], err, n);
			if (fd < 0 || !share_listener(e, &e->listens[i], fd, err, n))
				return false;
			continue;
		}
		/* A probe without SO_REUSEPORT: with it, a second dlpgate (or
		 * anything else that set it) could share the port unnoticed.
		 * Balanced by the engine, the probe is the one socket. */
		int probe = open_socket(&e->listens[i], false, err, n);
		if (probe < 0)
			return false;
		if (e->balance_in_engine) {
			if (listen(probe, 1024) != 0) {
				snprintf(err, n, "cannot listen on %s: %s", e->listens[i].text, strerror(errno));
				close(probe);
				return false;
			}
			if (!share_listener(e, &e->listens[i], probe, err, n))
				return false;
			continue;
		}
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

/* ---- shared listening sockets: the system extension's, and TCP on macOS ----
 *
 * The kernel wakes whichever worker it likes for a connection on a
 * socket they share, and one worker ended up carrying most flows (71
 * against 177 cpu ticks in tests/bench/framing.sh). The worker that
 * accepts hands the connection to the worker with the fewest flows: the
 * socket is duplicated out of its loop and adopted into the other's. */

static worker_t *least_loaded(engine_t *e)
{
	worker_t *best = NULL;
	unsigned best_load = 0;
	for (unsigned k = 0; k < e->n_workers; k++) {
		worker_t *w = &e->workers[k];
		unsigned load = atomic_load(&w->n_conns) + atomic_load(&w->n_incoming);
		if (!best || load < best_load) {
			best = w;
			best_load = load;
		}
	}
	return best;
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

/* Accepts the connection waiting on server out of w's loop; returns its
 * socket (-1: lost). */
static int accept_fd(worker_t *w, uv_stream_t *server)
{
	side_conn_t *tmp = malloc(sizeof *tmp);
	if (!tmp)
		return -1;
	if (server->type == UV_NAMED_PIPE)
		uv_pipe_init(&w->loop, &tmp->pipe, 0);
	else
		uv_tcp_init(&w->loop, &tmp->tcp);
	uv_os_fd_t fd;
	int dup = -1;
	if (uv_accept(server, &tmp->stream) == 0 && uv_fileno(&tmp->handle, &fd) == 0)
		dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	uv_close(&tmp->handle, free_handle);
	return dup;
}

static void hand_over(worker_t *w, uv_stream_t *server, worker_t *to, listen_kind_t kind)
{
	int fd = accept_fd(w, server);
	if (fd < 0) {
		log_msg(LOG_WARN, "accept_error", "cannot hand a connection over: %s", strerror(errno));
		return;
	}
	/* sent under the lock: a stopping worker closes inbox_wake under it */
	uv_mutex_lock(&to->inbox_lock);
	bool queued = to->n_inbox < WORKER_INBOX && !to->stopping;
	if (queued) {
		to->inbox[to->n_inbox].fd = fd;
		to->inbox[to->n_inbox++].kind = kind;
		atomic_fetch_add(&to->n_incoming, 1);
		uv_async_send(&to->inbox_wake);
	}
	uv_mutex_unlock(&to->inbox_lock);
	if (!queued)
		w->hooks->adopt(w, fd, kind);
}

static void on_inbox(uv_async_t *a)
{
	worker_t *w = a->data;
	worker_handoff_t taken[WORKER_INBOX];
	uv_mutex_lock(&w->inbox_lock);
	size_t n = w->n_inbox;
	memcpy(taken, w->inbox, n * sizeof *taken);
	w->n_inbox = 0;
	uv_mutex_unlock(&w->inbox_lock);
	for (size_t i = 0; i < n; i++) {
		w->hooks->adopt(w, taken[i].fd, taken[i].kind);
		atomic_fetch_sub(&w->n_incoming, 1);
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	worker_t *w = server->loop->data;
	if (status < 0) {
		log_msg(LOG_WARN, "accept_error", "%s", uv_strerror(status));
		return;
	}
	size_t idx = (size_t)((side_conn_t *)server - w->listeners);
	engine_t *e = w->eng;
	listen_kind_t kind = e->listens[idx].kind;
	/* over the connection limit the accepting worker answers (refuse()) */
	bool spread = kind == LISTEN_SYSEXT || e->balance_in_engine;
	worker_t *to = spread && !w->stopping && atomic_load(&e->connections) < e->cfg.max_connections
			       ? least_loaded(e)
			       : w;
	if (to != w)
		hand_over(w, server, to, kind);
	else
		w->hooks->accept(w, server, kind);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void close_listeners(worker_t *w)
{
	uv_mutex_lock(&w->inbox_lock);
	w->stopping = true; /* under the lock: nothing more is handed over */
	for (size_t i = 0; i < w->n_inbox; i++)
		close(w->inbox[i].fd);
	w->n_inbox = 0;
	uv_mutex_unlock(&w->inbox_lock);
	uv_close((uv_handle_t *)&w->inbox_wake, NULL);
	for (size_t i = 0; i < w->n_listeners; i++)
		uv_close(&w->listeners[i].handle, NULL);
}

static void on_wake(uv_async_t *a)
{
	worker_t *w = a->data;
	if (!w->stopping)
		close_listeners(w);
	if (atomic_load(&w->drain)) {
		drain_begin(w);
		return;
	}
	drain_end(w);
	w->hooks->close_all(w);
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
	bytebuf_free(&w->scratch);
}

bool worker_start_all(engine_t *e, const worker_hooks_t *hooks, char *err, size_t n)
{
	for (unsigned k = 0; k < e->n_workers; k++) {
		worker_t *w = &e->workers[k];
		w->eng = e;
		w->hooks = hooks;
		w->index = k;
		uv_loop_init(&w->loop);
		w->loop.data = w;
		uv_async_init(&w->loop, &w->wake, on_wake);
		w->wake.data = w;
		uv_mutex_init(&w->inbox_lock);
		uv_async_init(&w->loop, &w->inbox_wake, on_inbox);
		w->inbox_wake.data = w;
		bytebuf_init(&w->scratch, 0);
		for (size_t i = 0; i < w->n_listeners; i++) {
			int r;
			if (e->listens[i].kind == LISTEN_SYSEXT) {
				uv_pipe_init(&w->loop, &w->listeners[i].pipe, 0);
				r = uv_pipe_open(&w->listeners[i].pipe, w->listen_fds[i]);
			} else {
				uv_tcp_init(&w->loop, &w->listeners[i].tcp);
				r = uv_tcp_open(&w->listeners[i].tcp, w->listen_fds[i]);
			}
			if (r == 0)
				r = uv_listen(&w->listeners[i].stream, 1024, on_connection);
			if (r != 0) {
				snprintf(err, n, "cannot listen on %s: %s", e->listens[i].text, uv_strerror(r));
				return false;
			}
		}
	}
	/* Every worker is ready before any runs: a running worker may hand a
	 * connection to any other's inbox at once. */
	for (unsigned k = 0; k < e->n_workers; k++)
		if (uv_thread_create(&e->workers[k].thread, worker_main, &e->workers[k]) != 0) {
			snprintf(err, n, "cannot start worker thread %u", k);
			return false;
		}
	return true;
}

void worker_drain_all(engine_t *e)
{
	for (unsigned k = 0; k < e->n_workers; k++) {
		atomic_store(&e->workers[k].drain, true);
		uv_async_send(&e->workers[k].wake);
	}
}

void worker_stop_all(engine_t *e)
{
	for (unsigned k = 0; k < e->n_workers; k++) {
		atomic_store(&e->workers[k].drain, false);
		uv_async_send(&e->workers[k].wake);
	}
	for (unsigned k = 0; k < e->n_workers; k++)
		uv_thread_join(&e->workers[k].thread);
	/* only now: a worker still running may hand a connection to one that
	 * has stopped (and refuses it under this lock) */
	for (unsigned k = 0; k < e->n_workers; k++)
		uv_mutex_destroy(&e->workers[k].inbox_lock);
}
