/*
 * A raw client for what curl will not do: send exactly the bytes a test wrote (hostile
 * heads, smuggling attempts, pipelines, half requests), through an explicit proxy's
 * CONNECT tunnel or straight to a port, with or without TLS, and read back raw responses.
 *
 * The socket is non-blocking and every wait is a poll() bounded by the caller's deadline,
 * so a silent proxy makes a test fail with a message instead of hanging it. Bytes read
 * beyond one response stay buffered for the next call, which is what keep-alive and
 * pipelining tests need. The response framing code here is deliberately separate from the
 * upstream's request parser: each peer reads HTTP on its own.
 *
 * TLS verification is real (chain against the given CA file, host name or IP), so a test
 * that connects through the proxy proves the minted certificate would satisfy a browser.
 */
#include "harness/harness.h"
#include "harness/harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define CONNECT_TIMEOUT_MS 10000
#define HANDSHAKE_TIMEOUT_MS 10000
#define SEND_STALL_MS 30000

struct th_client {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	X509 *peer;
	char issuer_cn[256];
	th_buf in;      /* received but not returned yet */
	bool eof;
};

/* ---- Connection --------------------------------------------------------------------- */

static th_client *connect_port(int port)
{
	th_process_init(); /* SIGPIPE */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) th_fail("th_client: socket: %s", strerror(errno));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		int e = errno;
		close(fd);
		th_fail("th_client: connect to 127.0.0.1:%d: %s", port, strerror(e));
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	th_client *c = th_xcalloc(1, sizeof *c);
	c->fd = fd;
	return c;
}

th_client *th_client_connect_plain(int port) { return connect_port(port); }

/* Wait for the socket; false once the deadline has passed. */
static bool wait_fd(th_client *c, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - th_now_ms();
		if (left <= 0) return false;
		struct pollfd p = {.fd = c->fd, .events = events};
		int r = poll(&p, 1, (int)left);
		if (r > 0) return true;
		if (r < 0 && errno != EINTR) th_fail("th_client: poll: %s", strerror(errno));
	}
}

/* One read into c->in: 1 = data, 0 = EOF (or the connection broke), -1 = deadline. */
static int read_more(th_client *c, int64_t deadline)
{
	if (c->eof) return 0;
	char chunk[65536];
	for (;;) {
		short want = POLLIN;
		if (c->ssl) {
			ERR_clear_error();
			int n = SSL_read(c->ssl, chunk, sizeof chunk);
			if (n > 0) {
				th_buf_put(&c->in, chunk, (size_t)n);
				return 1;
			}
			int err = SSL_get_error(c->ssl, n);
			if (err == SSL_ERROR_WANT_WRITE) want = POLLOUT;
			else if (err != SSL_ERROR_WANT_READ) { /* close_notify, FIN, reset, alert */
				ERR_clear_error();
				c->eof = true;
				return 0;
			}
		} else {
			ssize_t n = recv(c->fd, chunk, sizeof chunk, 0);
			if (n > 0) {
				th_buf_put(&c->in, chunk, (size_t)n);
				return 1;
			}
			if (n < 0 && errno == EINTR) continue;
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
				c->eof = true;
				return 0;
			}
		}
		if (!wait_fd(c, want, deadline)) return -1;
	}
}

int th_client_send(th_client *c, const void *data, size_t len)
{
	if (!c) th_fail("th_client_send: client is NULL");
	const char *p = data;
	size_t off = 0;
	int64_t stall_deadline = th_now_ms() + SEND_STALL_MS;
	while (off < len) {
		size_t piece = len - off < (size_t)1 << 30 ? len - off : (size_t)1 << 30;
		short want = POLLOUT;
		if (c->ssl) {
			ERR_clear_error();
			int n = SSL_write(c->ssl, p + off, (int)piece);
			if (n > 0) {
				off += (size_t)n;
				stall_deadline = th_now_ms() + SEND_STALL_MS;
				continue;
			}
			int err = SSL_get_error(c->ssl, n);
			if (err == SSL_ERROR_WANT_READ) want = POLLIN;
			else if (err != SSL_ERROR_WANT_WRITE) {
				ERR_clear_error();
				return -1;
			}
		} else {
			ssize_t n = send(c->fd, p + off, piece, MSG_NOSIGNAL);
			if (n > 0) {
				off += (size_t)n;
				stall_deadline = th_now_ms() + SEND_STALL_MS;
				continue;
			}
			if (n < 0 && errno == EINTR) continue;
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
		}
		if (!wait_fd(c, want, stall_deadline))
			th_fail("th_client_send: the peer read nothing for %d s (%zu of %zu bytes sent)",
			        SEND_STALL_MS / 1000, off, len);
	}
	return 0;
}

static bool is_ip_literal(const char *host)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/* The handshake; NULL on success, else why (malloc'd). */
static char *try_tls(th_client *c, const char *ca_file, const char *verify_host, const char *sni)
{
	ERR_clear_error();
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx) th_fail("th_client: SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (ca_file) {
		if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
			th_buf why = {0};
			th_buf_ssl_errors(&why);
			char *msg = th_xasprintf("th_client: cannot load CA file %s: %s", ca_file, why.data);
			th_buf_free(&why);
			th_fail("%s", msg);
		}
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	}
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(c->ctx, alpn, sizeof alpn - 1);
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) th_fail("th_client: SSL_new failed");
	if (sni && SSL_set_tlsext_host_name(c->ssl, sni) != 1) th_fail("th_client: bad SNI '%s'", sni);
	if (ca_file && verify_host) {
		int ok = is_ip_literal(verify_host)
					 ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), verify_host)
					 : SSL_set1_host(c->ssl, verify_host);
		if (ok != 1) th_fail("th_client: cannot set verification host '%s'", verify_host);
	}

	int64_t deadline = th_now_ms() + HANDSHAKE_TIMEOUT_MS;
	for (;;) {
		int r = SSL_connect(c->ssl);
		if (r == 1) break;
		int err = SSL_get_error(c->ssl, r);
		short want = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
		if (want && wait_fd(c, want, deadline)) continue;
		th_buf why = {0};
		if (!want) {
			long verify = SSL_get_verify_result(c->ssl);
			th_buf_printf(&why, "TLS handshake failed (verify host %s, SNI %s): ",
			              verify_host ? verify_host : "-", sni ? sni : "-");
			if (verify != X509_V_OK)
				th_buf_printf(&why, "certificate verify error %ld: %s; ", verify,
				              X509_verify_cert_error_string(verify));
			th_buf_ssl_errors(&why);
		} else {
			th_buf_printf(&why, "TLS handshake timed out after %d ms", HANDSHAKE_TIMEOUT_MS);
		}
		return th_buf_take(&why, NULL);
	}
	c->peer = SSL_get1_peer_certificate(c->ssl);
	if (c->peer)
		X509_NAME_get_text_by_NID(X509_get_issuer_name(c->peer), NID_commonName, c->issuer_cn,
		                          sizeof c->issuer_cn);
	return NULL;
}

void th_client_start_tls(th_client *c, const char *ca_file, const char *verify_host, const char *sni)
{
	if (!c) th_fail("th_client_start_tls: client is NULL");
	if (c->ssl) th_fail("th_client_start_tls: TLS already started");
	char *why = try_tls(c, ca_file, verify_host, sni);
	if (why) th_fail("th_client: %s", why);
}

/* Read the proxy's answer head one byte at a time: bytes after it belong to the tunnel. */
static char *read_connect_answer(th_client *c, int64_t deadline, bool *complete)
{
	th_buf head = {0};
	*complete = false;
	while (head.len < 16384) {
		char ch;
		ssize_t n = recv(c->fd, &ch, 1, 0);
		if (n == 1) {
			th_buf_put(&head, &ch, 1);
			if (head.len >= 4 && memcmp(head.data + head.len - 4, "\r\n\r\n", 4) == 0) {
				*complete = true;
				break;
			}
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			c->eof = true;
			break;
		}
		if (!wait_fd(c, POLLIN, deadline)) break;
	}
	return th_buf_take(&head, NULL);
}

th_client *th_client_try_via_proxy(int proxy_port, const char *host, int port, const char *ca_file,
                                   const char *sni, char **why)
{
	if (why) *why = NULL;
	if (!host) th_fail("th_client_connect_via_proxy: host is NULL");
	th_client *c = connect_port(proxy_port);
	bool v6 = strchr(host, ':') != NULL;
	char *authority = th_xasprintf(v6 ? "[%s]:%d" : "%s:%d", host, port);
	char *request = th_xasprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority);
	if (th_client_send(c, request, strlen(request)) != 0) {
		free(request);
		free(authority);
		th_client_close(c);
		th_fail("th_client: proxy on port %d closed the connection before CONNECT was sent", proxy_port);
	}
	free(request);

	bool complete;
	char *answer = read_connect_answer(c, th_now_ms() + CONNECT_TIMEOUT_MS, &complete);
	int status = th_client_status(answer);
	if (!complete || status < 200 || status > 299) {
		th_buf msg = {0};
		if (!complete && !*answer && th_client_eof(c))
			th_buf_printf(&msg, "proxy on port %d closed the connection without answering CONNECT %s",
			              proxy_port, authority);
		else if (!complete)
			th_buf_printf(&msg, "proxy on port %d %s CONNECT %s: %s", proxy_port,
			              th_client_eof(c) ? "closed the connection inside its answer to"
			                               : "gave no complete answer within 10 s to",
			              authority, answer);
		else
			th_buf_printf(&msg, "proxy on port %d refused CONNECT %s: %s", proxy_port, authority,
			              answer);
		/* Include a short body if the proxy explained itself. */
		char *cl = complete ? th_http_header(answer, "content-length") : NULL;
		if (cl) {
			size_t want = strtoul(cl, NULL, 10);
			int64_t deadline = th_now_ms() + 2000;
			while (c->in.len < want && c->in.len < 4096 && read_more(c, deadline) == 1) {}
			if (c->in.len) th_buf_put(&msg, c->in.data, c->in.len < 4096 ? c->in.len : 4096);
			free(cl);
		}
		free(answer);
		free(authority);
		th_client_close(c);
		if (why) *why = th_buf_take(&msg, NULL);
		else th_buf_free(&msg);
		return NULL;
	}
	free(answer);
	free(authority);
	if (ca_file) {
		char *fail = try_tls(c, ca_file, host, sni);
		if (fail) {
			th_client_close(c);
			if (why) *why = fail;
			else free(fail);
			return NULL;
		}
	}
	return c;
}

th_client *th_client_connect_via_proxy(int proxy_port, const char *host, int port,
                                       const char *ca_file, const char *sni)
{
	char *why = NULL;
	th_client *c = th_client_try_via_proxy(proxy_port, host, port, ca_file, sni, &why);
	if (!c) {
		/* copy into th_fail's static buffer so nothing allocated outlives the failure */
		char message[4096];
		snprintf(message, sizeof message, "%s", why ? why : "unknown error");
		free(why);
		th_fail("th_client_connect_via_proxy %s:%d: %s", host, port, message);
	}
	return c;
}

/* ---- Receiving ---------------------------------------------------------------------- */

/* Hand out the first n buffered bytes. */
static char *take_front(th_client *c, size_t n, size_t *len)
{
	char *out = th_xmalloc(n + 1);
	out[n] = '\0';
	if (n) {
		memcpy(out, c->in.data, n);
		memmove(c->in.data, c->in.data + n, c->in.len - n);
		c->in.len -= n;
		c->in.data[c->in.len] = '\0';
	}
	if (len) *len = n;
	return out;
}

char *th_client_recv_until_close(th_client *c, size_t *len, int timeout_ms)
{
	if (!c) th_fail("th_client_recv_until_close: client is NULL");
	int64_t deadline = th_now_ms() + timeout_ms;
	while (read_more(c, deadline) == 1) {}
	return take_front(c, c->in.len, len);
}

/* Advance *pos over complete chunks; 1 = body complete (pos at its end), 0 = need more,
 * -1 = malformed. */
static int chunked_progress(const char *data, size_t len, size_t *pos)
{
	for (;;) {
		const char *line = data + *pos;
		const char *eol = memmem(line, len - *pos, "\r\n", 2);
		if (!eol) return len - *pos > 4096 ? -1 : 0;
		char *end;
		if (!((*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f') ||
		      (*line >= 'A' && *line <= 'F')))
			return -1;
		unsigned long long size = strtoull(line, &end, 16);
		if (end > eol || (end < eol && *end != ';' && *end != ' ' && *end != '\t')) return -1;
		size_t after_line = (size_t)(eol - data) + 2;
		if (size == 0) { /* trailers, then the blank line */
			size_t p = after_line;
			for (;;) {
				const char *t_eol = memmem(data + p, len - p, "\r\n", 2);
				if (!t_eol) return 0;
				size_t t_len = (size_t)(t_eol - (data + p));
				p += t_len + 2;
				if (t_len == 0) {
					*pos = p;
					return 1;
				}
			}
		}
		if (size > len || after_line + size + 2 > len) return 0;
		if (memcmp(data + after_line + size, "\r\n", 2) != 0) return -1;
		*pos = after_line + size + 2;
	}
}

static char *recv_response(th_client *c, size_t *len, int timeout_ms, bool head_only, const char *fn)
{
	if (!c) th_fail("%s: client is NULL", fn);
	int64_t deadline = th_now_ms() + timeout_ms;
	size_t head_len;
	for (;;) {
		const char *hit = c->in.len >= 4 ? memmem(c->in.data, c->in.len, "\r\n\r\n", 4) : NULL;
		if (hit) {
			head_len = (size_t)(hit - c->in.data) + 4;
			break;
		}
		int r = read_more(c, deadline);
		if (r == 0 && c->in.len == 0) {
			if (len) *len = 0;
			return NULL;
		}
		if (r == 0) th_fail("%s: connection closed inside a response head after %zu bytes: %.2000s", fn,
		                    c->in.len, c->in.data);
		if (r < 0) th_fail("%s: no complete response head within %d ms (%zu bytes so far: %.2000s)", fn,
		                   timeout_ms, c->in.len, c->in.len ? c->in.data : "");
	}
	char *head = strndup(c->in.data, head_len);
	if (!head) th_fail("%s: out of memory", fn);
	int status = th_client_status(head);
	if (status < 0) {
		char shown[2048];
		snprintf(shown, sizeof shown, "%s", head);
		free(head);
		th_fail("%s: not an HTTP/1.x status line: %s", fn, shown);
	}
	char *te = th_http_header(head, "transfer-encoding");
	char *cl = th_http_header(head, "content-length");
	free(head);
	size_t total = head_len;
	const char *framing = "head only";
	bool complete = true;

	if (head_only || status < 200 || status == 204 || status == 304) {
		/* no body */
	} else if (te && strcasestr(te, "chunked")) {
		framing = "chunked";
		size_t pos = head_len;
		int r;
		while ((r = chunked_progress(c->in.data, c->in.len, &pos)) == 0)
			if (read_more(c, deadline) != 1) break;
		if (r < 0) {
			free(te);
			free(cl);
			th_fail("%s: malformed chunked body near byte %zu of the response", fn, pos);
		}
		complete = r == 1;
		total = pos;
	} else if (cl) {
		framing = "Content-Length";
		char *end;
		unsigned long long n = strtoull(cl, &end, 10);
		if (end == cl || *end) {
			free(te);
			free(cl);
			th_fail("%s: bad Content-Length in response", fn);
		}
		total = head_len + (size_t)n;
		while (c->in.len < total)
			if (read_more(c, deadline) != 1) break;
		complete = c->in.len >= total;
	} else {
		framing = "close-delimited";
		while (read_more(c, deadline) == 1) {}
		complete = c->eof;
		total = c->in.len;
	}
	free(te);
	free(cl);
	if (!complete)
		th_fail("%s: %s response (status %d) incomplete: %s after %zu bytes", fn, framing, status,
		        c->eof ? "connection closed" : "timed out", c->in.len);
	return take_front(c, total, len);
}

char *th_client_recv_response(th_client *c, size_t *len, int timeout_ms)
{
	return recv_response(c, len, timeout_ms, false, "th_client_recv_response");
}

char *th_client_recv_head_response(th_client *c, size_t *len, int timeout_ms)
{
	return recv_response(c, len, timeout_ms, true, "th_client_recv_head_response");
}

char *th_client_recv_exact(th_client *c, size_t n, int timeout_ms)
{
	if (!c) th_fail("th_client_recv_exact: client is NULL");
	int64_t deadline = th_now_ms() + timeout_ms;
	while (c->in.len < n) {
		int r = read_more(c, deadline);
		if (r == 1) continue;
		th_fail("th_client_recv_exact: %s after %zu of %zu bytes: %.1000s",
		        r == 0 ? "connection closed" : "timed out", c->in.len, n, c->in.len ? c->in.data : "");
	}
	return take_front(c, n, NULL);
}

bool th_client_eof(const th_client *c) { return c && c->eof; }

int th_client_status(const char *raw)
{
	if (!raw || strncmp(raw, "HTTP/1.", 7) != 0) return -1;
	if (raw[7] < '0' || raw[7] > '9' || raw[8] != ' ') return -1;
	const char *s = raw + 9;
	for (int i = 0; i < 3; i++)
		if (s[i] < '0' || s[i] > '9') return -1;
	if (s[3] != ' ' && s[3] != '\r') return -1;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

const char *th_client_peer_cert_issuer(th_client *c)
{
	if (!c || !c->peer) th_fail("th_client_peer_cert_issuer: no TLS peer certificate on this client");
	return c->issuer_cn;
}

X509 *th_client_peer_cert(th_client *c)
{
	if (!c || !c->peer) th_fail("th_client_peer_cert: no TLS peer certificate on this client");
	return c->peer;
}

void th_client_close(th_client *c)
{
	if (!c) return;
	if (c->ssl) {
		if (!c->eof) SSL_shutdown(c->ssl); /* one non-blocking try to send close_notify */
		ERR_clear_error();
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	X509_free(c->peer);
	close(c->fd);
	th_buf_free(&c->in);
	free(c);
}

/* ---- Raw HTTP helpers --------------------------------------------------------------- */

char *th_http_header(const char *raw, const char *name)
{
	if (!raw) return NULL;
	const char *head_end = strstr(raw, "\r\n\r\n");
	if (!head_end) return NULL;
	size_t nlen = strlen(name);
	const char *line = strstr(raw, "\r\n");
	while (line && line < head_end) {
		line += 2;
		const char *eol = strstr(line, "\r\n");
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t')) v++;
			const char *e = eol;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
			char *value = strndup(v, (size_t)(e - v));
			if (!value) th_fail("th_http_header: out of memory");
			return value;
		}
		line = eol;
	}
	return NULL;
}

const char *th_http_body(const char *raw)
{
	const char *end = raw ? strstr(raw, "\r\n\r\n") : NULL;
	return end ? end + 4 : NULL;
}
