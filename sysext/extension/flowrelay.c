/*
 * flowrelay: the per-flow state machine of flowrelay.h. Every action is called
 * after the state it depends on is updated, so an action that delivers an
 * event synchronously (a test double may) sees a consistent relay.
 *
 * Each direction has at most one thing in flight, which is the whole of
 * the backpressure: flow -> socket is either reading the flow, holding
 * bytes the socket refused (write source armed), or ended; socket -> flow
 * is either waiting for the socket (read source armed), waiting for
 * writeData (read source suspended), or ended.
 */
#include "flowrelay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct flowrelay {
	flowrelay_io_t io;
	void *ctx;
	/* flow -> socket */
	bool flow_reading; /* a readData is outstanding */
	bool flow_eof;     /* the flow ended; shutdown(SHUT_WR) was passed on */
	uint8_t *held;     /* what the socket refused, held_len bytes from held_off */
	size_t held_off, held_len;
	/* socket -> flow */
	bool flow_writing; /* a writeData is outstanding */
	bool sock_eof;     /* the socket ended; closeWrite was passed on */
	/* the sources, as last set (actions only on a change) */
	bool read_armed, write_armed;
	bool started, finished;
	flowrelay_counts_t counts;
	uint8_t chunk[FLOWRELAY_CHUNK];
};

flowrelay_t *flowrelay_new(const flowrelay_io_t *io, void *ctx)
{
	flowrelay_t *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->io = *io;
	r->ctx = ctx;
	return r;
}

void flowrelay_free(flowrelay_t *r)
{
	if (!r)
		return;
	free(r->held);
	free(r);
}

static void set_read(flowrelay_t *r, bool on)
{
	if (r->read_armed == on)
		return;
	r->read_armed = on;
	r->io.sock_read_events(r->ctx, on);
}

static void set_write(flowrelay_t *r, bool on)
{
	if (r->write_armed == on)
		return;
	r->write_armed = on;
	r->io.sock_write_events(r->ctx, on);
}

static void finish(flowrelay_t *r, flowrelay_end_t end)
{
	if (r->finished)
		return;
	r->finished = true;
	free(r->held);
	r->held = NULL;
	r->held_len = 0;
	bool error = end != FLOWRELAY_END_DONE;
	/* a side already ended with an EOF was closed cleanly then */
	if (!r->flow_eof)
		r->io.flow_close_read(r->ctx, error);
	if (!r->sock_eof)
		r->io.flow_close_write(r->ctx, error);
	flowrelay_counts_t c = r->counts;
	r->io.finished(r->ctx, end, &c);
}

static void finish_if_done(flowrelay_t *r)
{
	if (r->flow_eof && !r->held && r->sock_eof)
		finish(r, FLOWRELAY_END_DONE);
}

static void read_flow(flowrelay_t *r)
{
	r->flow_reading = true;
	r->io.flow_read(r->ctx);
}

/* Writes p[0..n) to the socket until it refuses more: *sent is how much
 * it took. False if the socket failed (the relay has finished). */
static bool write_sock(flowrelay_t *r, const uint8_t *p, size_t n, size_t *sent)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = r->io.sock_write(r->ctx, p + off, n - off);
		if (w == FLOWRELAY_IO_AGAIN)
			break;
		if (w <= 0 || (size_t)w > n - off) {
			finish(r, FLOWRELAY_END_SOCK_WRITE);
			return false;
		}
		off += (size_t)w;
		r->counts.flow_to_sock += (uint64_t)w;
	}
	*sent = off;
	return true;
}

void flowrelay_start(flowrelay_t *r)
{
	if (r->started || r->finished)
		return;
	r->started = true;
	set_read(r, true);
	read_flow(r);
}

void flowrelay_flow_read_done(flowrelay_t *r, const uint8_t *p, size_t n, bool error)
{
	if (r->finished || !r->flow_reading)
		return;
	r->flow_reading = false;
	if (error) {
		finish(r, FLOWRELAY_END_FLOW_READ);
		return;
	}
	if (n == 0) {
		r->flow_eof = true;
		r->io.flow_close_read(r->ctx, false);
		r->io.sock_shutdown_write(r->ctx);
		finish_if_done(r);
		return;
	}
	size_t sent;
	if (!write_sock(r, p, n, &sent))
		return;
	if (sent == n) {
		read_flow(r);
		return;
	}
	/* the flow waits until the socket has taken the rest */
	r->held = malloc(n - sent);
	if (!r->held) {
		finish(r, FLOWRELAY_END_NO_MEMORY);
		return;
	}
	memcpy(r->held, p + sent, n - sent);
	r->held_off = 0;
	r->held_len = n - sent;
	set_write(r, true);
}

void flowrelay_sock_writable(flowrelay_t *r)
{
	if (r->finished)
		return;
	if (!r->held) { /* nothing to write: a stale event */
		set_write(r, false);
		return;
	}
	size_t sent;
	if (!write_sock(r, r->held + r->held_off, r->held_len, &sent))
		return;
	r->held_off += sent;
	r->held_len -= sent;
	if (r->held_len)
		return; /* still refused: the write source stays armed */
	free(r->held);
	r->held = NULL;
	r->held_off = r->held_len = 0;
	set_write(r, false);
	read_flow(r);
}

void flowrelay_sock_readable(flowrelay_t *r)
{
	/* a suspended source can still deliver one event already in flight */
	if (r->finished || r->flow_writing || r->sock_eof || !r->started)
		return;
	ssize_t n = r->io.sock_read(r->ctx, r->chunk, sizeof r->chunk);
	if (n == FLOWRELAY_IO_AGAIN)
		return;
	if (n < 0 || (size_t)n > sizeof r->chunk) {
		finish(r, FLOWRELAY_END_SOCK_READ);
		return;
	}
	set_read(r, false);
	if (n == 0) {
		r->sock_eof = true;
		r->io.flow_close_write(r->ctx, false);
		finish_if_done(r);
		return;
	}
	r->counts.sock_to_flow += (uint64_t)n;
	r->flow_writing = true;
	r->io.flow_write(r->ctx, r->chunk, (size_t)n);
}

void flowrelay_flow_write_done(flowrelay_t *r, bool error)
{
	if (r->finished || !r->flow_writing)
		return;
	r->flow_writing = false;
	if (error) {
		finish(r, FLOWRELAY_END_FLOW_WRITE);
		return;
	}
	set_read(r, true);
}

void flowrelay_abort(flowrelay_t *r)
{
	finish(r, FLOWRELAY_END_ABORTED);
}

static ssize_t io_result(ssize_t n)
{
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK ? FLOWRELAY_IO_AGAIN : FLOWRELAY_IO_ERROR;
}

ssize_t flowrelay_fd_read(int fd, uint8_t *buf, size_t cap)
{
	ssize_t n;
	do
		n = read(fd, buf, cap);
	while (n < 0 && errno == EINTR);
	return io_result(n);
}

ssize_t flowrelay_fd_write(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;
	do
#ifdef MSG_NOSIGNAL
		w = send(fd, p, n, MSG_NOSIGNAL);
#else
		w = write(fd, p, n);
#endif
	while (w < 0 && errno == EINTR);
	return io_result(w);
}

bool flowrelay_is_finished(const flowrelay_t *r)
{
	return r->finished;
}

flowrelay_counts_t flowrelay_counts(const flowrelay_t *r)
{
	return r->counts;
}

const char *flowrelay_end_name(flowrelay_end_t end)
{
	switch (end) {
	case FLOWRELAY_END_DONE:
		return "done";
	case FLOWRELAY_END_FLOW_READ:
		return "flow read failed";
	case FLOWRELAY_END_FLOW_WRITE:
		return "flow write failed";
	case FLOWRELAY_END_SOCK_READ:
		return "socket read failed";
	case FLOWRELAY_END_SOCK_WRITE:
		return "socket write failed";
	case FLOWRELAY_END_ABORTED:
		return "aborted";
	case FLOWRELAY_END_NO_MEMORY:
		return "out of memory";
	}
	return "?";
}
