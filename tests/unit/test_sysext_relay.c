/*
 * The system extension's relay state machine (sysext/extension/flowrelay.h),
 * with its I/O played by a recording fake: the socket takes or refuses
 * bytes as each test scripts, the flow's reads and writes are completed by
 * the test as the OS would. What is checked is what the Objective-C would
 * be told to do: backpressure both ways, half-close either way first, one
 * finish with the right reason and counts, and nothing after it. Run under
 * ASan (`make asan`) for the bytes the relay holds.
 */
#include "suites.h"
#include "../sysext/extension/flowrelay.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum {
	A_FLOW_READ,
	A_FLOW_WRITE,
	A_FLOW_CLOSE_READ,
	A_FLOW_CLOSE_WRITE,
	A_SOCK_READ,
	A_SOCK_WRITE,
	A_SHUTDOWN,
	A_READ_EVENTS,
	A_WRITE_EVENTS,
	A_FINISHED,
} act_t;

typedef struct {
	act_t a;
	size_t n;  /* bytes offered (writes, flow_write) or capacity (reads) */
	bool flag; /* on / error */
} rec_t;

#define SCRIPT_TAKE_ALL ((ssize_t)-100) /* a write script entry: take everything offered */

typedef struct {
	rec_t log[512];
	int nlog;
	ssize_t wscript[32]; /* sock_write results in order; then SCRIPT_TAKE_ALL */
	int nw, iw;
	ssize_t rscript[32]; /* sock_read results in order; then FLOWRELAY_IO_AGAIN */
	int nr, ir;
	uint8_t sock_got[4096]; /* what the socket took, in order */
	size_t sock_got_len;
	uint8_t flow_got[FLOWRELAY_CHUNK]; /* what writeData was given, in order */
	size_t flow_got_len;
	int finished;
	flowrelay_end_t end;
	flowrelay_counts_t counts;
} fake_t;

static void rec(fake_t *f, act_t a, size_t n, bool flag)
{
	ck_assert_int_lt(f->nlog, (int)(sizeof f->log / sizeof f->log[0]));
	f->log[f->nlog++] = (rec_t){a, n, flag};
}

static void fk_flow_read(void *c)
{
	rec(c, A_FLOW_READ, 0, false);
}

static void fk_flow_write(void *c, const uint8_t *p, size_t n)
{
	fake_t *f = c;
	rec(f, A_FLOW_WRITE, n, false);
	ck_assert_uint_le(f->flow_got_len + n, sizeof f->flow_got);
	memcpy(f->flow_got + f->flow_got_len, p, n);
	f->flow_got_len += n;
}

static void fk_close_read(void *c, bool error)
{
	rec(c, A_FLOW_CLOSE_READ, 0, error);
}

static void fk_close_write(void *c, bool error)
{
	rec(c, A_FLOW_CLOSE_WRITE, 0, error);
}

static ssize_t fk_sock_read(void *c, uint8_t *buf, size_t cap)
{
	fake_t *f = c;
	rec(f, A_SOCK_READ, cap, false);
	ssize_t n = f->ir < f->nr ? f->rscript[f->ir++] : FLOWRELAY_IO_AGAIN;
	for (ssize_t i = 0; i < n; i++)
		buf[i] = (uint8_t)('a' + i % 26);
	return n;
}

static ssize_t fk_sock_write(void *c, const uint8_t *p, size_t n)
{
	fake_t *f = c;
	rec(f, A_SOCK_WRITE, n, false);
	ssize_t w = f->iw < f->nw ? f->wscript[f->iw++] : SCRIPT_TAKE_ALL;
	if (w == SCRIPT_TAKE_ALL)
		w = (ssize_t)n;
	size_t took = w > 0 ? ((size_t)w < n ? (size_t)w : n) : 0; /* a lying socket may claim more */
	ck_assert_uint_le(f->sock_got_len + took, sizeof f->sock_got);
	memcpy(f->sock_got + f->sock_got_len, p, took);
	f->sock_got_len += took;
	return w;
}

static void fk_shutdown(void *c)
{
	rec(c, A_SHUTDOWN, 0, false);
}

static void fk_read_events(void *c, bool on)
{
	rec(c, A_READ_EVENTS, 0, on);
}

static void fk_write_events(void *c, bool on)
{
	rec(c, A_WRITE_EVENTS, 0, on);
}

static void fk_finished(void *c, flowrelay_end_t end, const flowrelay_counts_t *counts)
{
	fake_t *f = c;
	rec(f, A_FINISHED, 0, end != FLOWRELAY_END_DONE);
	f->finished++;
	f->end = end;
	f->counts = *counts;
}

static const flowrelay_io_t fake_io = {
	.flow_read = fk_flow_read,
	.flow_write = fk_flow_write,
	.flow_close_read = fk_close_read,
	.flow_close_write = fk_close_write,
	.sock_read = fk_sock_read,
	.sock_write = fk_sock_write,
	.sock_shutdown_write = fk_shutdown,
	.sock_read_events = fk_read_events,
	.sock_write_events = fk_write_events,
	.finished = fk_finished,
};

static fake_t fk;

static flowrelay_t *started(void)
{
	memset(&fk, 0, sizeof fk);
	flowrelay_t *r = flowrelay_new(&fake_io, &fk);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(fk.nlog, 0); /* nothing happens before start */
	flowrelay_start(r);
	return r;
}

static int count(act_t a)
{
	int n = 0;
	for (int i = 0; i < fk.nlog; i++)
		n += fk.log[i].a == a;
	return n;
}

static int count_flag(act_t a, bool flag)
{
	int n = 0;
	for (int i = 0; i < fk.nlog; i++)
		n += fk.log[i].a == a && fk.log[i].flag == flag;
	return n;
}

static const rec_t *last(act_t a)
{
	for (int i = fk.nlog - 1; i >= 0; i--)
		if (fk.log[i].a == a)
			return &fk.log[i];
	return NULL;
}

static void script_writes(int n, const ssize_t *w)
{
	memcpy(fk.wscript + fk.nw, w, (size_t)n * sizeof *w);
	fk.nw += n;
}

static void script_reads(int n, const ssize_t *r)
{
	memcpy(fk.rscript + fk.nr, r, (size_t)n * sizeof *r);
	fk.nr += n;
}

START_TEST(start_reads_flow_and_arms_read_source)
{
	flowrelay_t *r = started();
	ck_assert_int_eq(fk.nlog, 2);
	ck_assert_int_eq(count(A_FLOW_READ), 1);
	ck_assert_int_eq(count_flag(A_READ_EVENTS, true), 1);
	flowrelay_start(r); /* a second start is nothing */
	ck_assert_int_eq(fk.nlog, 2);
	flowrelay_free(r);
}
END_TEST

/* The socket refuses bytes: the flow is not read again until all of them
 * are written, in order, with the write source armed only meanwhile. */
START_TEST(socket_refuses_bytes_flow_waits_until_drained)
{
	flowrelay_t *r = started();
	uint8_t data[100];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)i;
	script_writes(2, (ssize_t[]){30, FLOWRELAY_IO_AGAIN});
	flowrelay_flow_read_done(r, data, sizeof data, false);
	ck_assert_int_eq(count(A_FLOW_READ), 1); /* not read again */
	ck_assert_int_eq(count_flag(A_WRITE_EVENTS, true), 1);
	ck_assert_uint_eq(fk.sock_got_len, 30);
	ck_assert_uint_eq(flowrelay_counts(r).flow_to_sock, 30);

	/* the caller's buffer is gone after the completion handler: the relay
	 * must have kept its own copy of the rest */
	memset(data, 0xEE, sizeof data);
	script_writes(2, (ssize_t[]){50, FLOWRELAY_IO_AGAIN});
	flowrelay_sock_writable(r);
	ck_assert_int_eq(count(A_FLOW_READ), 1);
	ck_assert_int_eq(count(A_WRITE_EVENTS), 1); /* still armed, no churn */
	ck_assert_uint_eq(fk.sock_got_len, 80);
	/* offered the 70 held, took 50, then refused the last 20 */
	ck_assert_int_eq(fk.log[fk.nlog - 2].a, A_SOCK_WRITE);
	ck_assert_uint_eq(fk.log[fk.nlog - 2].n, 70);
	ck_assert_uint_eq(last(A_SOCK_WRITE)->n, 20);

	flowrelay_sock_writable(r); /* takes the last 20 */
	ck_assert_uint_eq(last(A_SOCK_WRITE)->n, 20);
	ck_assert_uint_eq(fk.sock_got_len, 100);
	for (size_t i = 0; i < 100; i++)
		ck_assert_uint_eq(fk.sock_got[i], i);
	ck_assert_int_eq(count_flag(A_WRITE_EVENTS, false), 1);
	ck_assert_int_eq(count(A_FLOW_READ), 2); /* now the flow is read again */
	ck_assert_int_eq(fk.log[fk.nlog - 1].a, A_FLOW_READ); /* after disarming */
	ck_assert_uint_eq(flowrelay_counts(r).flow_to_sock, 100);

	flowrelay_sock_writable(r); /* a stale event: nothing to write */
	ck_assert_int_eq(count(A_SOCK_WRITE), 5);
	ck_assert_int_eq(fk.finished, 0);
	flowrelay_free(r);
}
END_TEST

/* A socket that takes bytes a few at a time in one go: written in a loop,
 * no write source needed. */
START_TEST(partial_writes_in_one_go)
{
	flowrelay_t *r = started();
	uint8_t data[10] = "0123456789";
	script_writes(3, (ssize_t[]){3, 3, 3});
	flowrelay_flow_read_done(r, data, sizeof data, false);
	ck_assert_int_eq(count(A_SOCK_WRITE), 4);
	ck_assert_uint_eq(fk.sock_got_len, 10);
	ck_assert(memcmp(fk.sock_got, data, 10) == 0);
	ck_assert_int_eq(count(A_WRITE_EVENTS), 0);
	ck_assert_int_eq(count(A_FLOW_READ), 2);
	flowrelay_free(r);
}
END_TEST

/* writeData pending: the socket's read source is suspended, and a stale
 * readable event does not read the socket. */
START_TEST(flow_write_pending_suspends_socket_reads)
{
	flowrelay_t *r = started();
	script_reads(1, (ssize_t[]){500});
	flowrelay_sock_readable(r);
	ck_assert_int_eq(count(A_SOCK_READ), 1);
	ck_assert_uint_eq(last(A_SOCK_READ)->n, FLOWRELAY_CHUNK);
	ck_assert_int_eq(count_flag(A_READ_EVENTS, false), 1);
	ck_assert_int_eq(count(A_FLOW_WRITE), 1);
	ck_assert_uint_eq(last(A_FLOW_WRITE)->n, 500);
	ck_assert_uint_eq(fk.flow_got[25], 'z');

	script_reads(1, (ssize_t[]){400});
	flowrelay_sock_readable(r); /* already queued before the suspension */
	ck_assert_int_eq(count(A_SOCK_READ), 1);
	ck_assert_int_eq(count(A_FLOW_WRITE), 1);

	flowrelay_flow_write_done(r, false);
	ck_assert_int_eq(count_flag(A_READ_EVENTS, true), 2);
	flowrelay_sock_readable(r);
	ck_assert_int_eq(count(A_FLOW_WRITE), 2);
	ck_assert_uint_eq(flowrelay_counts(r).sock_to_flow, 900);
	ck_assert_uint_eq(fk.flow_got_len, 900);

	flowrelay_flow_write_done(r, false);
	flowrelay_sock_readable(r); /* nothing there: EAGAIN changes nothing */
	ck_assert_int_eq(count(A_SOCK_READ), 3);
	ck_assert_int_eq(count(A_FLOW_WRITE), 2);
	ck_assert_int_eq(count_flag(A_READ_EVENTS, false), 2);
	ck_assert_int_eq(count_flag(A_READ_EVENTS, true), 3);
	ck_assert_int_eq(fk.finished, 0);
	flowrelay_flow_write_done(r, false); /* a completion that was never asked for */
	ck_assert_int_eq(count_flag(A_READ_EVENTS, true), 3);
	flowrelay_free(r);
}
END_TEST

/* The app ends first (a request sent, the response still to come). */
START_TEST(half_close_flow_first)
{
	flowrelay_t *r = started();
	uint8_t q[5] = "hello";
	flowrelay_flow_read_done(r, q, sizeof q, false);
	flowrelay_flow_read_done(r, NULL, 0, false);
	ck_assert_int_eq(count(A_SHUTDOWN), 1);
	ck_assert_int_eq(count_flag(A_FLOW_CLOSE_READ, false), 1);
	ck_assert_int_eq(count(A_FLOW_READ), 2); /* never again after the EOF */
	ck_assert_int_eq(fk.finished, 0);

	script_reads(2, (ssize_t[]){1000, 0});
	flowrelay_sock_readable(r);
	ck_assert_int_eq(count(A_FLOW_WRITE), 1);
	flowrelay_flow_write_done(r, false);
	ck_assert_int_eq(fk.finished, 0);
	flowrelay_sock_readable(r); /* the engine's EOF */
	ck_assert_int_eq(count_flag(A_FLOW_CLOSE_WRITE, false), 1);
	ck_assert_int_eq(fk.finished, 1);
	ck_assert_int_eq(fk.end, FLOWRELAY_END_DONE);
	ck_assert_uint_eq(fk.counts.flow_to_sock, 5);
	ck_assert_uint_eq(fk.counts.sock_to_flow, 1000);
	ck_assert_int_eq(fk.log[fk.nlog - 1].a, A_FINISHED);
	/* each flow side was closed once, cleanly */
	ck_assert_int_eq(count(A_FLOW_CLOSE_READ), 1);
	ck_assert_int_eq(count(A_FLOW_CLOSE_WRITE), 1);
	flowrelay_free(r);
}
END_TEST

/* The server ends first (a download the app keeps sending into). */
START_TEST(half_close_socket_first)
{
	flowrelay_t *r = started();
	script_reads(1, (ssize_t[]){0});
	flowrelay_sock_readable(r);
	ck_assert_int_eq(count_flag(A_FLOW_CLOSE_WRITE, false), 1);
	ck_assert_int_eq(count_flag(A_READ_EVENTS, false), 1); /* an EOF'd source would fire forever */
	ck_assert_int_eq(count(A_SHUTDOWN), 0);
	ck_assert_int_eq(fk.finished, 0);
	flowrelay_sock_readable(r);
	ck_assert_int_eq(count(A_SOCK_READ), 1);

	uint8_t d[7] = "payload";
	script_writes(1, (ssize_t[]){FLOWRELAY_IO_AGAIN});
	flowrelay_flow_read_done(r, d, sizeof d, false);
	flowrelay_sock_writable(r);
	ck_assert_uint_eq(fk.sock_got_len, 7);
	ck_assert_int_eq(fk.finished, 0);
	flowrelay_flow_read_done(r, NULL, 0, false);
	ck_assert_int_eq(count(A_SHUTDOWN), 1);
	ck_assert_int_eq(fk.finished, 1);
	ck_assert_int_eq(fk.end, FLOWRELAY_END_DONE);
	ck_assert_uint_eq(fk.counts.flow_to_sock, 7);
	ck_assert_int_eq(count(A_FLOW_CLOSE_READ), 1);
	ck_assert_int_eq(count(A_FLOW_CLOSE_WRITE), 1);
	flowrelay_free(r);
}
END_TEST

/* Both EOFs: closed once, and nothing at all happens after that. */
START_TEST(both_eofs_close_once_then_nothing)
{
	flowrelay_t *r = started();
	flowrelay_flow_read_done(r, NULL, 0, false);
	script_reads(1, (ssize_t[]){0});
	flowrelay_sock_readable(r);
	ck_assert_int_eq(fk.finished, 1);
	ck_assert(flowrelay_is_finished(r));
	int n = fk.nlog;
	uint8_t x = 1;
	flowrelay_flow_read_done(r, &x, 1, false);
	flowrelay_flow_read_done(r, NULL, 0, true);
	flowrelay_flow_write_done(r, true);
	flowrelay_sock_readable(r);
	flowrelay_sock_writable(r);
	flowrelay_abort(r);
	flowrelay_start(r);
	ck_assert_int_eq(fk.nlog, n);
	ck_assert_int_eq(fk.finished, 1);
	flowrelay_free(r);
}
END_TEST

static void expect_error_close(flowrelay_end_t end)
{
	ck_assert_int_eq(fk.finished, 1);
	ck_assert_int_eq(fk.end, end);
	ck_assert_int_eq(count_flag(A_FLOW_CLOSE_READ, true), 1);
	ck_assert_int_eq(count_flag(A_FLOW_CLOSE_WRITE, true), 1);
	ck_assert_int_eq(fk.log[fk.nlog - 1].a, A_FINISHED);
}

START_TEST(flow_read_error_closes_everything)
{
	flowrelay_t *r = started();
	flowrelay_flow_read_done(r, NULL, 0, true);
	expect_error_close(FLOWRELAY_END_FLOW_READ);
	ck_assert_int_eq(count(A_SHUTDOWN), 0); /* an error is no EOF: the engine must not see a clean end */
	flowrelay_free(r);
}
END_TEST

START_TEST(flow_write_error_closes_everything)
{
	flowrelay_t *r = started();
	script_reads(1, (ssize_t[]){10});
	flowrelay_sock_readable(r);
	flowrelay_flow_write_done(r, true);
	expect_error_close(FLOWRELAY_END_FLOW_WRITE);
	ck_assert_uint_eq(fk.counts.sock_to_flow, 10);
	flowrelay_free(r);
}
END_TEST

START_TEST(socket_read_error_closes_everything)
{
	flowrelay_t *r = started();
	script_reads(1, (ssize_t[]){FLOWRELAY_IO_ERROR});
	flowrelay_sock_readable(r);
	expect_error_close(FLOWRELAY_END_SOCK_READ);
	flowrelay_free(r);
}
END_TEST

START_TEST(socket_write_error_closes_everything)
{
	flowrelay_t *r = started();
	uint8_t d[4] = "data";
	script_writes(2, (ssize_t[]){2, FLOWRELAY_IO_ERROR});
	flowrelay_flow_read_done(r, d, sizeof d, false);
	expect_error_close(FLOWRELAY_END_SOCK_WRITE);
	ck_assert_uint_eq(fk.counts.flow_to_sock, 2);
	ck_assert_int_eq(count(A_FLOW_READ), 1);
	flowrelay_free(r);
}
END_TEST

/* A socket write error while draining what was held: the held bytes are
 * freed (ASan would see a leak otherwise). */
START_TEST(socket_write_error_while_draining)
{
	flowrelay_t *r = started();
	uint8_t d[64] = {0};
	script_writes(2, (ssize_t[]){FLOWRELAY_IO_AGAIN, FLOWRELAY_IO_ERROR});
	flowrelay_flow_read_done(r, d, sizeof d, false);
	flowrelay_sock_writable(r);
	expect_error_close(FLOWRELAY_END_SOCK_WRITE);
	flowrelay_free(r);
}
END_TEST

/* write(2) cannot return 0 for a non-empty buffer or more than it was
 * given: either is a broken socket, not a reason to spin. */
START_TEST(impossible_write_results_are_errors)
{
	static const ssize_t bad[] = {0, 5, -7};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		flowrelay_t *r = started();
		uint8_t d[4] = "data";
		script_writes(1, &bad[i]);
		flowrelay_flow_read_done(r, d, sizeof d, false);
		expect_error_close(FLOWRELAY_END_SOCK_WRITE);
		ck_assert_int_eq(count(A_SOCK_WRITE), 1);
		flowrelay_free(r);
	}
}
END_TEST

/* One side ended cleanly, then an error on the other: only the side still
 * open is closed, and with an error. */
START_TEST(error_after_half_close_closes_only_the_open_side)
{
	flowrelay_t *r = started();
	flowrelay_flow_read_done(r, NULL, 0, false);
	script_reads(1, (ssize_t[]){FLOWRELAY_IO_ERROR});
	flowrelay_sock_readable(r);
	ck_assert_int_eq(fk.finished, 1);
	ck_assert_int_eq(fk.end, FLOWRELAY_END_SOCK_READ);
	ck_assert_int_eq(count(A_FLOW_CLOSE_READ), 1);
	ck_assert_int_eq(count_flag(A_FLOW_CLOSE_READ, false), 1);
	ck_assert_int_eq(count_flag(A_FLOW_CLOSE_WRITE, true), 1);
	flowrelay_free(r);
}
END_TEST

/* An abort (provider stopping, fail-closed) with bytes held and reads in
 * flight: finished once; the late completions change nothing. */
START_TEST(abort_with_bytes_held_and_completions_in_flight)
{
	flowrelay_t *r = started();
	uint8_t d[32] = {0};
	script_writes(1, (ssize_t[]){FLOWRELAY_IO_AGAIN});
	flowrelay_flow_read_done(r, d, sizeof d, false);
	script_reads(1, (ssize_t[]){8});
	flowrelay_sock_readable(r);
	flowrelay_abort(r);
	expect_error_close(FLOWRELAY_END_ABORTED);
	int n = fk.nlog;
	flowrelay_flow_write_done(r, false);
	flowrelay_sock_writable(r);
	ck_assert_int_eq(fk.nlog, n);
	ck_assert_str_eq(flowrelay_end_name(FLOWRELAY_END_ABORTED), "aborted");
	flowrelay_free(r);
}
END_TEST

/* ---- the same machine on a real non-blocking socket ----
 * The socket side is a socketpair and the extension's own
 * flowrelay_fd_read/_write: what "refuses bytes", EAGAIN, a half-close
 * and a closed peer are, is the kernel's word here, not the fake's. */

static int real_fd = -1; /* the relay's end; the test plays the engine on the other */

static ssize_t rs_sock_read(void *c, uint8_t *buf, size_t cap)
{
	rec(c, A_SOCK_READ, cap, false);
	return flowrelay_fd_read(real_fd, buf, cap);
}

static ssize_t rs_sock_write(void *c, const uint8_t *p, size_t n)
{
	rec(c, A_SOCK_WRITE, n, false);
	return flowrelay_fd_write(real_fd, p, n);
}

static void rs_shutdown(void *c)
{
	rec(c, A_SHUTDOWN, 0, false);
	ck_assert_int_eq(shutdown(real_fd, SHUT_WR), 0);
}

static flowrelay_t *real_started(int *peer)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
	real_fd = sv[0];
	*peer = sv[1];
	memset(&fk, 0, sizeof fk);
	static flowrelay_io_t io;
	io = fake_io;
	io.sock_read = rs_sock_read;
	io.sock_write = rs_sock_write;
	io.sock_shutdown_write = rs_shutdown;
	flowrelay_t *r = flowrelay_new(&io, &fk);
	ck_assert_ptr_nonnull(r);
	flowrelay_start(r);
	return r;
}

static bool writable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

/* 4 MiB from the app in one read: more than any socket buffer. The
 * kernel refuses the rest, the flow is not read again while the engine
 * side reads slowly, and every byte arrives in order before it is. */
START_TEST(real_socket_backpressure_and_order)
{
	int peer;
	flowrelay_t *r = real_started(&peer);
	size_t total = 4u << 20;
	uint8_t *big = malloc(total), *got = malloc(total);
	ck_assert(big && got);
	for (size_t i = 0; i < total; i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	flowrelay_flow_read_done(r, big, total, false);
	free(big); /* the completion's NSData is gone: the relay holds its own copy */
	ck_assert_int_eq(count_flag(A_WRITE_EVENTS, true), 1);
	ck_assert_uint_lt(flowrelay_counts(r).flow_to_sock, total);
	size_t have = 0;
	int rounds = 0;
	while (have < total) {
		/* the flow is read again exactly when the socket has taken it all */
		ck_assert_int_eq(count(A_FLOW_READ), flowrelay_counts(r).flow_to_sock == total ? 2 : 1);
		ck_assert_int_eq(count_flag(A_WRITE_EVENTS, false), flowrelay_counts(r).flow_to_sock == total);
		ssize_t n = read(peer, got + have, 32768);
		ck_assert_int_gt(n, 0);
		have += (size_t)n;
		if (writable(real_fd)) /* what the write source would say */
			flowrelay_sock_writable(r);
		rounds++;
	}
	ck_assert_int_gt(rounds, 4);
	ck_assert_uint_eq(flowrelay_counts(r).flow_to_sock, total);
	ck_assert_int_eq(count(A_FLOW_READ), 2);
	ck_assert_int_eq(count_flag(A_WRITE_EVENTS, false), 1);
	for (size_t i = 0; i < total; i++)
		if (got[i] != (uint8_t)(i * 7 + i / 251))
			ck_abort_msg("byte %zu differs", i);
	free(got);
	flowrelay_abort(r);
	flowrelay_free(r);
	close(real_fd);
	close(peer);
}
END_TEST

/* The app's EOF reaches the engine as an EOF (shutdown), the engine still
 * answers, then its EOF closes the flow's write side: done. */
START_TEST(real_socket_half_close_both_ways)
{
	int peer;
	flowrelay_t *r = real_started(&peer);
	flowrelay_flow_read_done(r, (const uint8_t *)"GET /", 5, false);
	flowrelay_flow_read_done(r, NULL, 0, false);
	char buf[16];
	ck_assert_int_eq(read(peer, buf, sizeof buf), 5);
	ck_assert_int_eq(read(peer, buf, sizeof buf), 0); /* the engine sees the EOF */
	ck_assert_int_eq(write(peer, "200 OK", 6), 6);
	ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
	flowrelay_sock_readable(r);
	ck_assert_uint_eq(fk.flow_got_len, 6);
	ck_assert(memcmp(fk.flow_got, "200 OK", 6) == 0);
	ck_assert_int_eq(fk.finished, 0);
	flowrelay_flow_write_done(r, false);
	flowrelay_sock_readable(r);
	ck_assert_int_eq(fk.finished, 1);
	ck_assert_int_eq(fk.end, FLOWRELAY_END_DONE);
	ck_assert_int_eq(count_flag(A_FLOW_CLOSE_WRITE, false), 1);
	flowrelay_free(r);
	close(real_fd);
	close(peer);
}
END_TEST

/* The engine goes away with bytes still to write: an error (and no
 * SIGPIPE killing the process), the flow closed with an error. */
START_TEST(real_socket_peer_gone_is_an_error_not_a_signal)
{
	int peer;
	flowrelay_t *r = real_started(&peer);
	close(peer);
	flowrelay_flow_read_done(r, (const uint8_t *)"data", 4, false);
	expect_error_close(FLOWRELAY_END_SOCK_WRITE);
	flowrelay_free(r);
	close(real_fd);
}
END_TEST

Suite *sysext_relay_suite(void)
{
	Suite *s = suite_create("sysext_relay");
	TCase *t = tcase_create("relay");
	tcase_add_test(t, start_reads_flow_and_arms_read_source);
	tcase_add_test(t, socket_refuses_bytes_flow_waits_until_drained);
	tcase_add_test(t, partial_writes_in_one_go);
	tcase_add_test(t, flow_write_pending_suspends_socket_reads);
	tcase_add_test(t, half_close_flow_first);
	tcase_add_test(t, half_close_socket_first);
	tcase_add_test(t, both_eofs_close_once_then_nothing);
	tcase_add_test(t, flow_read_error_closes_everything);
	tcase_add_test(t, flow_write_error_closes_everything);
	tcase_add_test(t, socket_read_error_closes_everything);
	tcase_add_test(t, socket_write_error_closes_everything);
	tcase_add_test(t, socket_write_error_while_draining);
	tcase_add_test(t, impossible_write_results_are_errors);
	tcase_add_test(t, error_after_half_close_closes_only_the_open_side);
	tcase_add_test(t, abort_with_bytes_held_and_completions_in_flight);
	suite_add_tcase(s, t);
	TCase *k = tcase_create("real socket");
	tcase_add_test(k, real_socket_backpressure_and_order);
	tcase_add_test(k, real_socket_half_close_both_ways);
	tcase_add_test(k, real_socket_peer_gone_is_an_error_not_a_signal);
	suite_add_tcase(s, k);
	return s;
}
