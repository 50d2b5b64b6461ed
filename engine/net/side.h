/*
 * side: one end of a flow. A libuv stream (TCP, or the unix socket a system
 * extension flow arrives on), an optional TLS session, and the plumbing
 * between them.
 *
 * TLS runs through a BIO of our own instead of a socket or memory BIOs:
 * reading, it serves OpenSSL straight from the block libuv just filled;
 * writing, it packs records into blocks that go to uv_write as they are.
 * No ciphertext is copied twice and nothing is kept between events, which is
 * what keeps an idle intercepted connection small.
 *
 * Events go to the owner through side_ops_t. Plaintext arrives as blocks
 * the callee owns. Backpressure is handled here, once: when a side's unsent
 * bytes pass SIDE_HIGH_WATER its peer stops reading, and reading resumes
 * when they drain below SIDE_LOW_WATER. So memory per flow is bounded by
 * the watermarks plus one block, whatever the two ends do.
 */
#ifndef DLPGATE_SIDE_H
#define DLPGATE_SIDE_H

#include "net/iobuf.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SIDE_HIGH_WATER (256 * 1024)
#define SIDE_LOW_WATER (64 * 1024)

typedef struct side side_t;

typedef struct {
	void (*on_data)(side_t *s, iobuf_t *b); /* plaintext; the callee owns b */
	void (*on_eof)(side_t *s);               /* peer will send no more */
	void (*on_error)(side_t *s, const char *why);
	void (*on_handshake)(side_t *s);         /* TLS is up */
} side_ops_t;

struct side {
	uv_stream_t *stream;      /* NULL until accepted / connected */
	struct worker *w;         /* blocks come from here */
	void *owner;              /* whoever side_init gave it; never read here */
	/* The owner's hooks, whatever stage (ops) drives the side: its handle
	 * is gone (the owner may free the side now), and bytes arrived (the
	 * owner's idle clock). Either may be NULL. */
	void (*on_closed)(side_t *s);
	void (*on_activity)(side_t *s);
	side_t *peer;
	const side_ops_t *ops;
	const char *name;         /* "client" / "upstream", for logs */
	SSL *ssl;
	const char *in;           /* ciphertext OpenSSL may read now */
	size_t in_len;
	iobuf_t *out;             /* ciphertext being packed */
	uv_shutdown_t shutdown_req;
	unsigned long tls_error;  /* first OpenSSL error of a failure */
	uint64_t bytes_in, bytes_out; /* on the wire */
	bool want_read;           /* the owner wants data */
	bool reading;             /* uv_read_start is in effect */
	bool throttled;           /* the peer's unsent bytes are too many */
	bool handshake_done;
	bool eof;
	bool shut;                /* our write side is closed */
	bool closed;
};

void side_init(side_t *s, struct worker *w, void *owner, side_t *peer, const char *name, const side_ops_t *ops);
/* A connection's handle, whichever kind of stream it is. */
typedef union {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
} side_conn_t;

/* Takes ownership of a connected/accepted handle (malloc'ed; freed when
 * closed). */
void side_attach(side_t *s, uv_stream_t *stream);

void side_read(side_t *s, bool want);
/* Queues bytes (encrypting when TLS is on); false when the side is gone. */
bool side_write(side_t *s, const void *data, size_t len);
/* Queues a block without copying on a plain side; takes ownership. */
bool side_write_block(side_t *s, iobuf_t *b);
size_t side_unsent(const side_t *s);
/* Sends close_notify (TLS) and FIN once queued bytes are out. */
void side_shutdown(side_t *s);
void side_close(side_t *s);
/* side_close with a TCP reset (RST) where the stream is TCP. */
void side_reset(side_t *s);

/* TLS: take ssl (ownership), then feed bytes already read (a peeked
 * ClientHello) or, for the connecting role, start the handshake. */
void side_tls_start(side_t *s, SSL *ssl, const char *early, size_t early_len);
const char *side_tls_version(const side_t *s);
/* The peer address as text ("1.2.3.4", "::1") into buf; false when the
 * side is not TCP. */
bool side_peer_ip(const side_t *s, char *buf, size_t n, uint16_t *port);

#endif
