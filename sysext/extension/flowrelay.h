/*
 * flowrelay: the bytes of one intercepted flow, both ways, between the
 * NEAppProxyTCPFlow and a connected socket (the engine's unix socket after
 * an "accept", or the destination itself on a pass-through). The state
 * machine only; every I/O is an action the caller injects, so the same
 * code runs in the extension (DLPTransparentProxyProvider.m: the flow's
 * completion handlers and two dispatch sources on the socket) and under
 * Check on Linux (tests/unit/test_sysext_relay.c: actions recorded).
 *
 * It mirrors the epoll relay of tests/tools/flowclient.c, one flow at a
 * time, with the flow's completion handlers in place of readiness:
 *
 *   flow -> socket: one readDataWithCompletionHandler outstanding at a
 *     time. Its bytes are written to the (non-blocking) socket at once;
 *     what the socket refuses is kept, the socket's write source is armed,
 *     and the flow is not read again until all of it is written. The
 *     flow's EOF becomes shutdown(SHUT_WR) on the socket.
 *   socket -> flow: the socket's read source fires, up to FLOWRELAY_CHUNK
 *     bytes are read and given to writeData, and the read source stays
 *     suspended until writeData's completion handler says the app took
 *     them. The socket's EOF becomes closeWriteWithError:nil on the flow.
 *
 * Once both EOFs have been passed on, or on the first error either way,
 * the relay finishes: exactly one `finished` action, with the byte counts
 * and why. A flow side not yet closed is then closed with an error (the
 * app must see a reset, never a clean end of a truncated transfer).
 * Events after that (completion handlers still in flight) are ignored.
 *
 * Contract for the caller: all events of one relay are delivered on one
 * serial queue (never concurrently); actions run synchronously inside the
 * event calls; flowrelay_free is never called from inside an action.
 */
#ifndef DLPGATE_SYSEXT_FLOWRELAY_H
#define DLPGATE_SYSEXT_FLOWRELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What one socket read may take: one writeData of this size in flight per
 * flow, the chunk flowclient and the engine use. */
#define FLOWRELAY_CHUNK 65536

/* sock_read / sock_write results besides a byte count (>0) and, for a
 * read, 0 for the peer's EOF. The caller maps errno: EAGAIN/EWOULDBLOCK
 * to FLOWRELAY_IO_AGAIN, EINTR is retried before returning, anything else is
 * FLOWRELAY_IO_ERROR. A write returning 0 is treated as an error. */
#define FLOWRELAY_IO_AGAIN ((ssize_t)-1)
#define FLOWRELAY_IO_ERROR ((ssize_t)-2)

typedef enum {
	FLOWRELAY_END_DONE = 0,  /* both directions ended with an EOF */
	FLOWRELAY_END_FLOW_READ, /* readData failed */
	FLOWRELAY_END_FLOW_WRITE, /* writeData failed: the app is gone */
	FLOWRELAY_END_SOCK_READ, /* read(2) on the socket failed (reset) */
	FLOWRELAY_END_SOCK_WRITE, /* write(2) on the socket failed (EPIPE, reset) */
	FLOWRELAY_END_ABORTED,   /* flowrelay_abort: the provider stops, or a fail-closed */
	FLOWRELAY_END_NO_MEMORY, /* no room to hold what the socket refused */
} flowrelay_end_t;

typedef struct {
	uint64_t flow_to_sock; /* bytes the app sent that the socket took */
	uint64_t sock_to_flow; /* bytes read from the socket and given to the app */
} flowrelay_counts_t;

typedef struct {
	/* the flow (asynchronous: results come back as flowrelay_flow_* events) */
	void (*flow_read)(void *ctx);
	void (*flow_write)(void *ctx, const uint8_t *p, size_t n); /* must copy p before returning */
	void (*flow_close_read)(void *ctx, bool error);
	void (*flow_close_write)(void *ctx, bool error);
	/* the socket (non-blocking, synchronous) */
	ssize_t (*sock_read)(void *ctx, uint8_t *buf, size_t cap);
	ssize_t (*sock_write)(void *ctx, const uint8_t *p, size_t n);
	void (*sock_shutdown_write)(void *ctx);
	void (*sock_read_events)(void *ctx, bool on);  /* resume / suspend the read source */
	void (*sock_write_events)(void *ctx, bool on); /* arm / disarm the write source */
	/* once: cancel both sources (whatever their state) and close the socket */
	void (*finished)(void *ctx, flowrelay_end_t end, const flowrelay_counts_t *counts);
} flowrelay_io_t;

typedef struct flowrelay flowrelay_t;

/* NULL when out of memory. io is copied; ctx is passed to every action. */
flowrelay_t *flowrelay_new(const flowrelay_io_t *io, void *ctx);
void flowrelay_free(flowrelay_t *r);

/* Both sources start disarmed: start reads the flow and arms the read
 * source. Call once, after the flow is open. */
void flowrelay_start(flowrelay_t *r);

/* readData's completion: n > 0 bytes at p, or n == 0 for the flow's EOF;
 * error for a non-nil NSError. */
void flowrelay_flow_read_done(flowrelay_t *r, const uint8_t *p, size_t n, bool error);
/* writeData's completion. */
void flowrelay_flow_write_done(flowrelay_t *r, bool error);
/* The socket's read / write source fired. */
void flowrelay_sock_readable(flowrelay_t *r);
void flowrelay_sock_writable(flowrelay_t *r);
/* Ends the relay now (FLOWRELAY_END_ABORTED); nothing if already finished. */
void flowrelay_abort(flowrelay_t *r);

/* sock_read / sock_write for a non-blocking socket, the extension's and
 * the tests': EINTR retried, EAGAIN as FLOWRELAY_IO_AGAIN, any other
 * failure FLOWRELAY_IO_ERROR; a write to a closed peer is an error, never
 * a SIGPIPE (MSG_NOSIGNAL where the system has it; the extension also sets
 * SO_NOSIGPIPE). */
ssize_t flowrelay_fd_read(int fd, uint8_t *buf, size_t cap);
ssize_t flowrelay_fd_write(int fd, const uint8_t *p, size_t n);

bool flowrelay_is_finished(const flowrelay_t *r);
flowrelay_counts_t flowrelay_counts(const flowrelay_t *r);
const char *flowrelay_end_name(flowrelay_end_t end);

#endif
