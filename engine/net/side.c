/*
 * side: see side.h. The order of operations in tls_input() matters: the
 * handshake is driven until it finishes or wants bytes, then application
 * data is drained until OpenSSL wants bytes, and only then are the records
 * OpenSSL produced on the way (handshake flights, tickets, alerts) flushed.
 */
#include "net/side.h"

#include "net/worker.h"

#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

static BIO_METHOD *side_bio_method;
static uv_once_t bio_once = UV_ONCE_INIT;

static void on_handle_closed(uv_handle_t *h)
{
	side_t *s = h->data;
	free(h);
	if (s->on_closed)
		s->on_closed(s);
}

void side_init(side_t *s, struct worker *w, void *owner, side_t *peer, const char *name, const side_ops_t *ops)
{
	memset(s, 0, sizeof *s);
	s->w = w;
	s->owner = owner;
	s->peer = peer;
	s->name = name;
	s->ops = ops;
}

void side_attach(side_t *s, uv_stream_t *stream)
{
	s->stream = stream;
	stream->data = s;
	if (stream->type == UV_TCP)
		uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

/* ---- writing ---- */

static void update_reading(side_t *s);

static void on_write_done(uv_write_t *req, int status)
{
	iobuf_t *b = (iobuf_t *)req;
	side_t *s = req->data;
	iobuf_put(b);
	if (s->closed)
		return;
	if (status < 0) {
		if (status != UV_ECANCELED)
			s->ops->on_error(s, uv_strerror(status));
		return;
	}
	side_t *p = s->peer;
	if (p && p->throttled && side_unsent(s) < SIDE_LOW_WATER) {
		p->throttled = false;
		update_reading(p);
	}
}

size_t side_unsent(const side_t *s)
{
	return s->stream ? uv_stream_get_write_queue_size(s->stream) : 0;
}

static bool submit(side_t *s, iobuf_t *b)
{
	if (!s->stream || s->closed || s->shut) {
		iobuf_put(b);
		return false;
	}
	/* Written at once when the socket takes it all, which on a healthy
	 * connection is nearly always: no request to complete, and none of the
	 * epoll_ctl calls libuv makes around one (two per request-response
	 * before this). uv_try_write refuses while writes are queued, so order
	 * is kept; a refusal or a short write queues what is left. */
	uv_buf_t ub = uv_buf_init(b->data, (unsigned)b->len);
	int sent = uv_try_write(s->stream, &ub, 1);
	if (sent == (int)b->len) {
		s->bytes_out += b->len;
		iobuf_put(b);
		return true;
	}
	if (sent > 0) {
		ub.base += sent;
		ub.len -= (size_t)sent;
	}
	b->req.data = s;
	int r = uv_write(&b->req, s->stream, &ub, 1, on_write_done);
	if (r < 0) {
		iobuf_put(b);
		return false;
	}
	s->bytes_out += b->len;
	side_t *p = s->peer;
	if (p && !p->throttled && side_unsent(s) > SIDE_HIGH_WATER) {
		p->throttled = true;
		update_reading(p);
	}
	return true;
}

static bool flush_out(side_t *s)
{
	iobuf_t *b = s->out;
	s->out = NULL;
	return !b || b->len == 0 ? (iobuf_put(b), true) : submit(s, b);
}

bool side_write(side_t *s, const void *data, size_t len)
{
	if (!s->stream || s->closed || s->shut)
		return false;
	if (s->ssl) {
		/* One call: OpenSSL cuts full-size records itself, and our BIO
		 * never refuses, so the whole buffer is taken at once. */
		size_t written;
		ERR_clear_error();
		if (len && (SSL_write_ex(s->ssl, data, len, &written) != 1 || written != len)) {
			ERR_clear_error();
			iobuf_put(s->out);
			s->out = NULL;
			return false;
		}
		return flush_out(s);
	}
	while (len) {
		iobuf_t *b = iobuf_get(s->w);
		if (!b)
			return false;
		size_t n = len > IOBUF_CAP ? IOBUF_CAP : len;
		memcpy(b->data, data, n);
		b->len = n;
		if (!submit(s, b))
			return false;
		data = (const char *)data + n;
		len -= n;
	}
	return true;
}

bool side_write_block(side_t *s, iobuf_t *b)
{
	if (s->ssl) {
		bool ok = side_write(s, b->data, b->len);
		iobuf_put(b);
		return ok;
	}
	return submit(s, b);
}

/* ---- the BIO ---- */

static int bio_write(BIO *bio, const char *data, int len)
{
	side_t *s = BIO_get_data(bio);
	size_t left = (size_t)len;
	while (left) {
		if (!s->out) {
			s->out = iobuf_get(s->w);
			if (!s->out)
				return -1;
		}
		size_t room = IOBUF_CAP - s->out->len;
		size_t n = left < room ? left : room;
		memcpy(s->out->data + s->out->len, data, n);
		s->out->len += n;
		data += n;
		left -= n;
		if (s->out->len == IOBUF_CAP && !flush_out(s))
			return -1;
	}
	return len;
}

static int bio_read(BIO *bio, char *buf, int len)
{
	side_t *s = BIO_get_data(bio);
	BIO_clear_retry_flags(bio);
	if (s->in_len == 0) {
		BIO_set_retry_read(bio);
		return -1;
	}
	size_t n = s->in_len < (size_t)len ? s->in_len : (size_t)len;
	memcpy(buf, s->in, n);
	s->in += n;
	s->in_len -= n;
	return (int)n;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	(void)bio, (void)num, (void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *bio)
{
	BIO_set_init(bio, 1);
	return 1;
}

static void make_bio_method(void)
{
	side_bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dlpgate-side");
	BIO_meth_set_write(side_bio_method, bio_write);
	BIO_meth_set_read(side_bio_method, bio_read);
	BIO_meth_set_ctrl(side_bio_method, bio_ctrl);
	BIO_meth_set_create(side_bio_method, bio_create);
}

/* ---- reading ---- */

static void fail(side_t *s, const char *why)
{
	if (s->ssl) {
		s->tls_error = ERR_peek_last_error();
		ERR_clear_error();
	}
	s->ops->on_error(s, why);
}

static void got_eof(side_t *s)
{
	s->eof = true;
	update_reading(s);
	s->ops->on_eof(s);
}

/* Reads all the application data OpenSSL can give from what it was fed. */
static void tls_drain(side_t *s)
{
	for (;;) {
		iobuf_t *p = iobuf_get(s->w);
		if (!p) {
			fail(s, "out of memory");
			return;
		}
		int err = SSL_ERROR_NONE;
		while (p->len < IOBUF_CAP) {
			size_t got;
			if (SSL_read_ex(s->ssl, p->data + p->len, IOBUF_CAP - p->len, &got) == 1) {
				p->len += got;
				continue;
			}
			err = SSL_get_error(s->ssl, 0);
			break;
		}
		if (p->len) {
			s->ops->on_data(s, p);
			if (s->closed)
				return;
		} else {
			iobuf_put(p);
		}
		if (err == SSL_ERROR_NONE)
			continue;
		if (err == SSL_ERROR_WANT_READ)
			return;
		if (err == SSL_ERROR_ZERO_RETURN) {
			flush_out(s);
			got_eof(s);
			return;
		}
		flush_out(s); /* the fatal alert OpenSSL wrote (bad MAC, bad record...) */
		fail(s, err == SSL_ERROR_SYSCALL ? "connection cut inside a TLS record" : "TLS error");
		return;
	}
}

static void tls_input(side_t *s, const char *data, size_t len)
{
	s->in = data;
	s->in_len = len;
	ERR_clear_error();
	if (!s->handshake_done) {
		int r = SSL_do_handshake(s->ssl);
		if (r != 1) {
			int err = SSL_get_error(s->ssl, r);
			flush_out(s); /* our alert, if any, must still reach the peer */
			if (err == SSL_ERROR_WANT_READ)
				return;
			fail(s, "TLS handshake failed");
			return;
		}
		s->handshake_done = true;
		flush_out(s);
		s->ops->on_handshake(s);
		if (s->closed)
			return;
	}
	tls_drain(s);
	if (!s->closed)
		flush_out(s);
	s->in = NULL;
	s->in_len = 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	side_t *s = h->data;
	iobuf_t *b = iobuf_get(s->w);
	*buf = b ? uv_buf_init(b->data, IOBUF_CAP) : uv_buf_init(NULL, 0);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	side_t *s = st->data;
	iobuf_t *b = buf->base ? iobuf_of(buf->base) : NULL;
	if (n <= 0) {
		iobuf_put(b);
		if (n == 0)
			return;
		if (n == UV_EOF)
			got_eof(s);
		else
			fail(s, uv_strerror((int)n));
		return;
	}
	s->bytes_in += (uint64_t)n;
	if (s->on_activity)
		s->on_activity(s);
	if (!s->ssl) {
		b->len = (size_t)n;
		s->ops->on_data(s, b);
		return;
	}
	tls_input(s, b->data, (size_t)n);
	iobuf_put(b);
}

static void update_reading(side_t *s)
{
	bool want = s->want_read && !s->throttled && !s->eof && !s->closed && s->stream;
	if (want == s->reading)
		return;
	if (want)
		s->reading = uv_read_start(s->stream, on_alloc, on_read) == 0;
	else {
		uv_read_stop(s->stream);
		s->reading = false;
	}
}

void side_read(side_t *s, bool want)
{
	s->want_read = want;
	update_reading(s);
}

/* ---- TLS setup, shutdown, close ---- */

void side_tls_start(side_t *s, SSL *ssl, const char *early, size_t early_len)
{
	uv_once(&bio_once, make_bio_method);
	BIO *bio = BIO_new(side_bio_method);
	if (!bio) {
		SSL_free(ssl);
		fail(s, "out of memory");
		return;
	}
	BIO_set_data(bio, s);
	SSL_set_bio(ssl, bio, bio);
	s->ssl = ssl;
	s->handshake_done = false;
	/* A connecting side sends its ClientHello now; an accepting side
	 * processes the hello it was handed. */
	tls_input(s, early, early_len);
}

const char *side_tls_version(const side_t *s)
{
	return s->ssl && s->handshake_done ? SSL_get_version(s->ssl) : NULL;
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
	(void)req, (void)status;
}

void side_shutdown(side_t *s)
{
	if (s->shut || s->closed || !s->stream)
		return;
	if (s->ssl && s->handshake_done) {
		ERR_clear_error();
		SSL_shutdown(s->ssl);
		ERR_clear_error();
		flush_out(s);
	}
	s->shut = true;
	uv_shutdown(&s->shutdown_req, s->stream, on_shutdown_done);
}

/* Closes with a TCP reset where the stream is TCP: the peer learns the
 * message it was reading will never end (a request cut short on purpose
 * must not look like a clean close). */
void side_reset(side_t *s)
{
	if (s->closed || !s->stream || s->stream->type != UV_TCP) {
		side_close(s);
		return;
	}
	s->closed = true;
	iobuf_put(s->out);
	s->out = NULL;
	if (uv_tcp_close_reset((uv_tcp_t *)s->stream, on_handle_closed) != 0)
		uv_close((uv_handle_t *)s->stream, on_handle_closed);
	s->stream = NULL;
	s->reading = false;
}

void side_close(side_t *s)
{
	if (s->closed)
		return;
	s->closed = true;
	iobuf_put(s->out);
	s->out = NULL;
	if (s->stream) {
		uv_close((uv_handle_t *)s->stream, on_handle_closed);
		s->stream = NULL;
		s->reading = false;
	}
}

bool side_peer_ip(const side_t *s, char *buf, size_t n, uint16_t *port)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (!s->stream || s->stream->type != UV_TCP ||
	    uv_tcp_getpeername((uv_tcp_t *)s->stream, (struct sockaddr *)&ss, &len) != 0)
		return false;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		uv_ip4_name(a, buf, n);
		if (port)
			*port = ntohs(a->sin_port);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		uv_ip6_name(a, buf, n);
		if (port)
			*port = ntohs(a->sin6_port);
	}
	return true;
}
