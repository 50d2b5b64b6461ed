/*
 * The in-process test upstream: an HTTP/1.1 (or raw echo) server on 127.0.0.1 for the
 * behaviours nginx cannot be told to show, and a recorder of every byte the proxy sent it.
 *
 * Threads: one accepts, one per connection, all with blocking I/O and blocking OpenSSL,
 * because per-connection code that reads top to bottom is the easiest to trust in a test
 * tool. th_upstream_stop sets `stopping`, shuts the listener down (which wakes accept()
 * with EINVAL on Linux), shuts every connection socket down (which wakes blocked reads and
 * writes), wakes /slow sleepers through the condition variable, and joins everything.
 * Socket descriptors are closed only by whoever joins the connection's thread, never by
 * the thread itself: otherwise stop could shutdown() a number the kernel had already
 * given to another socket. The accept thread joins finished connections as it goes, so a
 * long benchmark does not pile up threads.
 *
 * The HTTP parser is our own on purpose (the proxy uses llhttp; a second, independent
 * reading of the protocol is the point). It is strict where leniency would hide proxy
 * bugs: CRLF line ends only, no obs-fold, no Content-Length together with
 * Transfer-Encoding, no differing Content-Lengths.
 *
 * Recording: bytes are recorded when the parser consumes them, not when read() returns
 * them, so a request's bytes are recorded in order and /sink bodies can be counted without
 * being stored (a 1 GiB upload must not fill memory). Each connection appends to its own
 * record; records are kept in accept order and concatenated on demand. A request is fully
 * recorded and counted before its response is written, so a test that saw the response
 * can read the record without racing.
 *
 * Ownership across fork: the threads exist only in the process that started the upstream
 * (a forked child gets a copy of the struct and of the mutex, possibly locked), so every
 * entry point checks the owner pid first and refuses with an explanation.
 */
#include "harness/harness.h"
#include "harness/harness_internal.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define RECORD_CAP ((size_t)64 << 20)   /* bytes stored over all connections */
#define HEAD_MAX (64 * 1024)             /* request head limit, then 431 */
#define IN_START (16 * 1024)             /* input buffer; grows up to HEAD_MAX + 1 KiB */
#define IN_MAX (HEAD_MAX + 1024)
#define OUT_SIZE (16 * 1024)
#define MAX_HEADERS 128
#define MAX_TRAILERS 32
#define LINGER_MS 2000                   /* read after our close, like nginx lingering_close */

typedef struct record {
	struct record *next;
	char *data;
	size_t len, cap;
} record;

typedef struct conn conn;

struct th_upstream {
	pid_t owner;
	int listen_fd;
	int port;
	SSL_CTX *ctx;        /* NULL: plain TCP */
	char *banner;        /* NULL: HTTP mode */
	pthread_t accept_thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* broadcast on stop, for /slow */
	bool stopping;
	conn *conns;         /* threads not joined yet */
	record *records, *records_tail;
	size_t stored;
	uint64_t received;
	size_t requests, connections;
	int handshakes, resumed;
	char *last_sni;
	th_upstream *next_live;
};

struct conn {
	conn *next;
	th_upstream *u;
	int fd;
	SSL *ssl;
	pthread_t thread;
	bool done;           /* under u->mu: the thread has finished */
	record *rec;
	char *in;            /* unconsumed input is in[rd, wr) */
	size_t in_cap, rd, wr;
	bool eof;            /* no more input: peer closed, error, or stop */
	char out[OUT_SIZE];
	size_t out_len;
	bool write_failed;
	size_t requests;     /* on this connection, for /pipeline */
};

/* Live upstreams of this process, stopped at exit if a test forgot. Test thread only. */
static th_upstream *live;

/* ---- Recording and low-level I/O ---------------------------------------------------- */

static void record_bytes(conn *c, const char *data, size_t n, bool store)
{
	th_upstream *u = c->u;
	pthread_mutex_lock(&u->mu);
	u->received += n;
	if (store && u->stored < RECORD_CAP) {
		size_t take = n < RECORD_CAP - u->stored ? n : RECORD_CAP - u->stored;
		record *r = c->rec;
		if (r->len + take > r->cap) {
			size_t cap = r->cap ? r->cap : 4096;
			while (cap < r->len + take) cap *= 2;
			r->data = th_xrealloc(r->data, cap);
			r->cap = cap;
		}
		memcpy(r->data + r->len, data, take);
		r->len += take;
		u->stored += take;
	}
	pthread_mutex_unlock(&u->mu);
}

/* Read more input (compacting or growing the buffer); false at EOF or error. */
static bool fill(conn *c)
{
	if (c->eof) return false;
	if (c->rd > 0 && c->rd == c->wr) c->rd = c->wr = 0;
	if (c->wr == c->in_cap) {
		if (c->rd > 0) {
			memmove(c->in, c->in + c->rd, c->wr - c->rd);
			c->wr -= c->rd;
			c->rd = 0;
		} else if (c->in_cap < IN_MAX) {
			c->in_cap = c->in_cap * 2 < IN_MAX ? c->in_cap * 2 : IN_MAX;
			c->in = th_xrealloc(c->in, c->in_cap);
		} else {
			return false; /* full: callers check limits before asking for more */
		}
	}
	size_t room = c->in_cap - c->wr;
	int n;
	if (c->ssl) {
		n = SSL_read(c->ssl, c->in + c->wr, room > INT32_MAX ? INT32_MAX : (int)room);
		if (n <= 0) ERR_clear_error(); /* close_notify, reset, or stop: all end the input */
	} else {
		ssize_t r;
		do r = recv(c->fd, c->in + c->wr, room, 0);
		while (r < 0 && errno == EINTR);
		n = r > 0 ? (int)r : 0;
	}
	if (n <= 0) {
		c->eof = true;
		return false;
	}
	c->wr += (size_t)n;
	return true;
}

static size_t avail(const conn *c) { return c->wr - c->rd; }

static void consume(conn *c, size_t n, bool store)
{
	record_bytes(c, c->in + c->rd, n, store);
	c->rd += n;
}

static bool write_raw(conn *c, const char *data, size_t n)
{
	while (n > 0 && !c->write_failed) {
		if (c->ssl) {
			int w = SSL_write(c->ssl, data, n > INT32_MAX ? INT32_MAX : (int)n);
			if (w <= 0) {
				ERR_clear_error();
				c->write_failed = true;
				break;
			}
			data += w;
			n -= (size_t)w;
		} else {
			ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR) continue;
			if (w <= 0) {
				c->write_failed = true;
				break;
			}
			data += w;
			n -= (size_t)w;
		}
	}
	return !c->write_failed;
}

static bool flush_out(conn *c)
{
	bool ok = write_raw(c, c->out, c->out_len);
	c->out_len = 0;
	return ok;
}

/* Buffered write: small pieces (chunk headers, response heads) share TLS records. */
static bool put(conn *c, const void *data, size_t n)
{
	const char *p = data;
	if (c->out_len + n > OUT_SIZE) {
		if (!flush_out(c)) return false;
		if (n >= OUT_SIZE) return write_raw(c, p, n);
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return true;
}

static bool putf(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool putf(conn *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line) return false;
	return put(c, line, (size_t)n);
}

/* ---- Request parsing ---------------------------------------------------------------- */

typedef struct {
	char *name;   /* lowercased */
	char *value;
} header;

typedef struct {
	char *head;              /* private copy of the head, split in place */
	char *method, *target;
	int minor;               /* HTTP/1.x */
	header hdr[MAX_HEADERS];
	size_t n_hdr;
	header trailer[MAX_TRAILERS];   /* strings malloc'd */
	size_t n_trailer;
	bool chunked;
	bool has_length;
	uint64_t length;
	bool expect_continue;
	bool close;              /* Connection: close, or HTTP/1.0 */
	bool is_head;
	char path[2048];         /* route: target without scheme/authority and query */
	const char *query;       /* into target, after '?', or "" */
} request;

static void free_request(request *rq)
{
	free(rq->head);
	for (size_t i = 0; i < rq->n_trailer; i++) {
		free(rq->trailer[i].name);
		free(rq->trailer[i].value);
	}
}

static bool is_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *find_header(const request *rq, const char *lower_name)
{
	const char *v = NULL;
	for (size_t i = 0; i < rq->n_hdr; i++)
		if (strcmp(rq->hdr[i].name, lower_name) == 0) v = rq->hdr[i].value;
	return v;
}

/* Does the comma-separated list contain token (case-insensitive)? */
static bool has_token(const char *list, const char *token)
{
	size_t tlen = strlen(token);
	for (const char *p = list; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',') p++;
		const char *end = p;
		while (*end && *end != ',') end++;
		const char *last = end;
		while (last > p && (last[-1] == ' ' || last[-1] == '\t')) last--;
		if ((size_t)(last - p) == tlen && strncasecmp(p, token, tlen) == 0) return true;
		p = end;
	}
	return false;
}

/* Last token of a comma-separated list equals token? (Transfer-Encoding: chunked last) */
static bool last_token_is(const char *list, const char *token)
{
	const char *end = list + strlen(list);
	while (end > list && (end[-1] == ' ' || end[-1] == '\t')) end--;
	const char *start = end;
	while (start > list && start[-1] != ',') start--;
	while (start < end && (*start == ' ' || *start == '\t')) start++;
	return (size_t)(end - start) == strlen(token) && strncasecmp(start, token, strlen(token)) == 0;
}

/* Parse "name: value" in place; line has no CRLF. Returns false if malformed. */
static bool parse_field(char *line, char **name, char **value)
{
	char *colon = strchr(line, ':');
	if (!colon || colon == line) return false;
	for (char *p = line; p < colon; p++) {
		if (!is_tchar((unsigned char)*p)) return false; /* includes space before the colon */
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	}
	*colon = '\0';
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t') v++;
	char *end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
	*end = '\0';
	for (char *p = v; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
	}
	*name = line;
	*value = v;
	return true;
}

/* Parse a head of head_len bytes (ending with CRLFCRLF). Returns 0, or the status to
 * answer with (400, 431). */
static int parse_head(const char *data, size_t head_len, request *rq)
{
	rq->head = th_xmalloc(head_len + 1);
	memcpy(rq->head, data, head_len);
	rq->head[head_len] = '\0';
	if (memchr(rq->head, '\0', head_len)) return 400;
	/* read_head also stops at LF LF; only CRLF CRLF is a head (the loop below needs it) */
	if (head_len < 4 || memcmp(rq->head + head_len - 4, "\r\n\r\n", 4) != 0) return 400;

	char *line = rq->head;
	char *eol = strstr(line, "\r\n");
	*eol = '\0';
	if (strchr(line, '\r') || strchr(line, '\n')) return 400;
	char *sp1 = strchr(line, ' ');
	if (!sp1) return 400;
	char *sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || strchr(sp2 + 1, ' ')) return 400;
	*sp1 = *sp2 = '\0';
	rq->method = line;
	rq->target = sp1 + 1;
	const char *version = sp2 + 1;
	if (!*rq->method || !*rq->target) return 400;
	for (const char *p = rq->method; *p; p++)
		if (!is_tchar((unsigned char)*p)) return 400;
	for (const char *p = rq->target; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) return 400;
	if (strcmp(version, "HTTP/1.1") == 0) rq->minor = 1;
	else if (strcmp(version, "HTTP/1.0") == 0) rq->minor = 0;
	else return 400;
	rq->is_head = strcmp(rq->method, "HEAD") == 0;

	for (line = eol + 2; *line; line = eol + 2) {
		eol = strstr(line, "\r\n");
		*eol = '\0';
		if (!*line) break; /* the blank line */
		if (strchr(line, '\r') || strchr(line, '\n')) return 400; /* bare CR or LF */
		if (*line == ' ' || *line == '\t') return 400;            /* obs-fold */
		if (rq->n_hdr == MAX_HEADERS) return 431;
		header *h = &rq->hdr[rq->n_hdr];
		if (!parse_field(line, &h->name, &h->value)) return 400;
		rq->n_hdr++;
	}

	/* Framing. Several Content-Length headers must agree; with Transfer-Encoding too it
	 * is a smuggling attempt a proxy must never forward. */
	bool have_te = false;
	const char *te = NULL;
	for (size_t i = 0; i < rq->n_hdr; i++) {
		header *h = &rq->hdr[i];
		if (strcmp(h->name, "content-length") == 0) {
			char *end;
			if (!*h->value || strspn(h->value, "0123456789") != strlen(h->value)) return 400;
			errno = 0;
			unsigned long long v = strtoull(h->value, &end, 10);
			if (errno) return 400;
			if (rq->has_length && rq->length != v) return 400;
			rq->has_length = true;
			rq->length = v;
		} else if (strcmp(h->name, "transfer-encoding") == 0) {
			have_te = true;
			te = h->value;
		}
	}
	if (have_te) {
		if (rq->has_length || !last_token_is(te, "chunked")) return 400;
		rq->chunked = true;
	}
	const char *connection = find_header(rq, "connection");
	rq->close = rq->minor == 0 || (connection && has_token(connection, "close"));
	const char *expect = find_header(rq, "expect");
	rq->expect_continue = expect && strcasecmp(expect, "100-continue") == 0;

	/* Route: drop "scheme://authority" of an absolute-form target, and the query. */
	const char *t = rq->target;
	const char *scheme_end = strstr(t, "://");
	if (*t != '/' && scheme_end) {
		const char *slash = strchr(scheme_end + 3, '/');
		t = slash ? slash : "/";
	}
	const char *q = strchr(t, '?');
	size_t plen = q ? (size_t)(q - t) : strlen(t);
	if (plen >= sizeof rq->path) plen = sizeof rq->path - 1;
	memcpy(rq->path, t, plen);
	rq->path[plen] = '\0';
	rq->query = q ? q + 1 : "";
	return 0;
}

/* Value of a query parameter as a number; def if absent. */
static uint64_t query_number(const char *query, const char *name, uint64_t def)
{
	size_t nlen = strlen(name);
	for (const char *p = query; p && *p;) {
		if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') return strtoull(p + nlen + 1, NULL, 10);
		p = strchr(p, '&');
		if (p) p++;
	}
	return def;
}

/* Find the end of a head in the input, reading more as needed. Returns the head length, 0
 * at a clean EOF before any byte, -1 at EOF inside a head, -2 if the head is too large.
 * A bare LF LF also ends a head, so that a head with LF-only lines gets its 400 at once
 * instead of waiting for a CRLF CRLF that will never come. */
static long read_head(conn *c)
{
	size_t scanned = 0;
	for (;;) {
		const char *start = c->in + c->rd;
		size_t n = avail(c);
		size_t from = scanned > 3 ? scanned - 3 : 0;
		const char *crlf = n >= 4 ? memmem(start + from, n - from, "\r\n\r\n", 4) : NULL;
		const char *lf = n >= 2 ? memmem(start + from, n - from, "\n\n", 2) : NULL;
		if (lf && (!crlf || lf < crlf + 2)) return (long)(lf - start) + 2;
		if (crlf) return (long)(crlf - start) + 4;
		scanned = n;
		if (n >= HEAD_MAX) return -2;
		if (!fill(c)) return n == 0 ? 0 : -1;
	}
}

/* Read one CRLF-terminated line (chunk size, trailer) of at most 4 KiB; returns its length
 * without CRLF, or -1. The line stays in the input (at c->rd) until consumed. */
static long read_line(conn *c)
{
	for (;;) {
		const char *start = c->in + c->rd;
		const char *hit = avail(c) >= 2 ? memmem(start, avail(c), "\r\n", 2) : NULL;
		if (hit) return (long)(hit - start);
		if (avail(c) > 4096 || !fill(c)) return -1;
	}
}

typedef struct {
	EVP_MD_CTX *md;
	uint64_t len;
} body_digest;

static bool body_bytes(conn *c, uint64_t n, bool store, body_digest *d)
{
	while (n > 0) {
		if (avail(c) == 0 && !fill(c)) return false;
		size_t take = avail(c) < n ? avail(c) : (size_t)n;
		EVP_DigestUpdate(d->md, c->in + c->rd, take);
		d->len += take;
		consume(c, take, store);
		n -= take;
	}
	return true;
}

/* Read the request body (Content-Length or chunked with trailers) into the digest. */
static bool read_body(conn *c, request *rq, bool store, body_digest *d)
{
	if (!rq->chunked) return body_bytes(c, rq->has_length ? rq->length : 0, store, d);
	for (;;) {
		long len = read_line(c);
		if (len <= 0) return false;
		char *line = c->in + c->rd;
		char *end;
		if (!isxdigit((unsigned char)*line)) return false; /* strtoull would take " -1" */
		errno = 0;
		unsigned long long size = strtoull(line, &end, 16);
		if (end == line || errno || (*end != ';' && *end != '\r' && *end != ' ' && *end != '\t'))
			return false;
		consume(c, (size_t)len + 2, true);
		if (size == 0) break;
		if (!body_bytes(c, size, store, d)) return false;
		while (avail(c) < 2)
			if (!fill(c)) return false;
		if (memcmp(c->in + c->rd, "\r\n", 2) != 0) return false;
		consume(c, 2, true);
	}
	for (;;) { /* trailers until the blank line */
		long len = read_line(c);
		if (len < 0) return false;
		if (len == 0) {
			consume(c, 2, true);
			return true;
		}
		char *copy = th_xmalloc((size_t)len + 1);
		memcpy(copy, c->in + c->rd, (size_t)len);
		copy[len] = '\0';
		consume(c, (size_t)len + 2, true);
		char *name, *value;
		if (!parse_field(copy, &name, &value) || rq->n_trailer == MAX_TRAILERS) {
			free(copy);
			return false;
		}
		rq->trailer[rq->n_trailer].name = th_xstrdup(name);
		rq->trailer[rq->n_trailer].value = th_xstrdup(value);
		rq->n_trailer++;
		free(copy);
	}
}

/* ---- Responses ---------------------------------------------------------------------- */

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

/* A complete response with a Content-Length body (none for 1xx/204/304 or HEAD). */
static bool respond(conn *c, const request *rq, int status, const char *content_type,
                    const char *body, size_t body_len, bool close)
{
	bool bodiless = status == 204 || status == 304 || status < 200;
	putf(c, "HTTP/1.1 %d %s\r\nServer: th-upstream\r\n", status, reason(status));
	if (!bodiless) {
		if (content_type) putf(c, "Content-Type: %s\r\n", content_type);
		putf(c, "Content-Length: %zu\r\n", body_len);
	}
	if (close) put(c, "Connection: close\r\n", 19);
	put(c, "\r\n", 2);
	if (!bodiless && !(rq && rq->is_head)) put(c, body, body_len);
	return flush_out(c);
}

static void json_string(th_buf *b, const char *s)
{
	th_buf_puts(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') th_buf_printf(b, "\\%c", *p);
		else if (*p == '\n') th_buf_puts(b, "\\n");
		else if (*p == '\r') th_buf_puts(b, "\\r");
		else if (*p == '\t') th_buf_puts(b, "\\t");
		/* control bytes, DEL, and bytes >= 0x80 (read as Latin-1: header bytes are not
		 * necessarily UTF-8, and the JSON must stay valid) */
		else if (*p < 0x20 || *p >= 0x7f) th_buf_printf(b, "\\u%04x", *p);
		else th_buf_put(b, p, 1);
	}
	th_buf_puts(b, "\"");
}

/* {"name":"last value",...} in order of first appearance */
static void json_fields(th_buf *b, const header *h, size_t n)
{
	th_buf_puts(b, "{");
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++) seen = strcmp(h[j].name, h[i].name) == 0;
		if (seen) continue;
		const char *value = h[i].value;
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(h[j].name, h[i].name) == 0) value = h[j].value;
		if (!first) th_buf_puts(b, ",");
		first = false;
		json_string(b, h[i].name);
		th_buf_puts(b, ":");
		json_string(b, value);
	}
	th_buf_puts(b, "}");
}

static void digest_hex(EVP_MD_CTX *md, char out[65])
{
	unsigned char d[32];
	static const char hex[] = "0123456789abcdef";
	EVP_DigestFinal_ex(md, d, NULL);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}

/* The pattern repeats every 256 bytes: slices of this block at (offset % 256) serve any
 * offset. Written once, before any thread reads it. */
static unsigned char pattern_block[OUT_SIZE + 256];
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;
static void pattern_init(void) { th_pattern_fill(pattern_block, sizeof pattern_block, 0); }

static bool send_pattern(conn *c, uint64_t offset, uint64_t n)
{
	while (n > 0) {
		size_t take = n < OUT_SIZE ? (size_t)n : OUT_SIZE;
		if (!put(c, pattern_block + offset % 256, take)) return false;
		offset += take;
		n -= take;
	}
	return true;
}

static bool route_bytes(conn *c, const request *rq)
{
	uint64_t n = query_number(rq->query, "n", 0);
	bool chunked = query_number(rq->query, "chunked", 0) != 0;
	putf(c, "HTTP/1.1 200 OK\r\nServer: th-upstream\r\nContent-Type: application/octet-stream\r\n");
	if (chunked) put(c, "Transfer-Encoding: chunked\r\n", 28);
	else putf(c, "Content-Length: %llu\r\n", (unsigned long long)n);
	if (rq->close) put(c, "Connection: close\r\n", 19);
	put(c, "\r\n", 2);
	if (rq->is_head) return flush_out(c);
	if (!chunked) {
		send_pattern(c, 0, n);
		return flush_out(c);
	}
	uint64_t rng = n ^ 0x9e3779b97f4a7c15ULL; /* seeded by n: same sizes for the same n */
	uint64_t sent = 0;
	while (sent < n && !c->write_failed) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; /* xorshift64 */
		uint64_t size = 1 + rng % 8192;
		if (size > n - sent) size = n - sent;
		putf(c, "%llx\r\n", (unsigned long long)size);
		send_pattern(c, sent, size);
		put(c, "\r\n", 2);
		sent += size;
	}
	put(c, "0\r\n\r\n", 5);
	return flush_out(c);
}

static bool route_echo(conn *c, const request *rq, const char *sha, uint64_t body_len)
{
	th_buf j = {0};
	th_buf_puts(&j, "{\"method\":");
	json_string(&j, rq->method);
	th_buf_puts(&j, ",\"path\":");
	json_string(&j, rq->target);
	th_buf_printf(&j, ",\"body_len\":%llu,\"body_sha256\":\"%s\",\"headers\":",
	              (unsigned long long)body_len, sha);
	json_fields(&j, rq->hdr, rq->n_hdr);
	if (rq->n_trailer) {
		th_buf_puts(&j, ",\"trailers\":");
		json_fields(&j, rq->trailer, rq->n_trailer);
	}
	th_buf_puts(&j, "}");
	bool ok = respond(c, rq, 200, "application/json", j.data, j.len, rq->close);
	th_buf_free(&j);
	return ok;
}

static bool ws_upgrade_ok(const request *rq, const char **key)
{
	const char *upgrade = find_header(rq, "upgrade");
	const char *connection = find_header(rq, "connection");
	*key = find_header(rq, "sec-websocket-key");
	return upgrade && has_token(upgrade, "websocket") && connection &&
	       has_token(connection, "upgrade") && *key && **key;
}

/* Echo every byte until EOF (websocket after 101, banner mode). */
static void echo_until_eof(conn *c)
{
	for (;;) {
		if (avail(c) == 0 && !fill(c)) return;
		size_t n = avail(c);
		const char *data = c->in + c->rd;
		record_bytes(c, data, n, true);
		if (!write_raw(c, data, n)) return;
		c->rd = c->wr = 0;
	}
}

static bool route_ws(conn *c, const request *rq)
{
	const char *key;
	if (!ws_upgrade_ok(rq, &key))
		return respond(c, rq, 400, "text/plain", "bad websocket upgrade\n", 22, rq->close);
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char *joined = th_xasprintf("%s%s", key, guid);
	unsigned char sha1[20];
	EVP_Digest(joined, strlen(joined), sha1, NULL, EVP_sha1(), NULL);
	free(joined);
	unsigned char accept[32];
	EVP_EncodeBlock(accept, sha1, sizeof sha1);
	putf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
	if (!flush_out(c)) return false;
	echo_until_eof(c);
	return false; /* the connection is no longer HTTP */
}

static bool sleep_unless_stopping(th_upstream *u, uint64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&u->mu);
	int r = 0;
	while (!u->stopping && r != ETIMEDOUT) r = pthread_cond_timedwait(&u->wake, &u->mu, &until);
	bool stopping = u->stopping;
	pthread_mutex_unlock(&u->mu);
	return !stopping;
}

/* One request; returns true to keep the connection for another. */
static bool serve_request(conn *c, request *rq)
{
	th_upstream *u = c->u;
	const char *path = rq->path;
	bool sink = strcmp(path, "/sink") == 0;
	bool has_body = rq->chunked || (rq->has_length && rq->length > 0);

	if (strcmp(path, "/ws") == 0 && !has_body) return route_ws(c, rq);

	/* Like nginx: confirm the body is wanted before reading it, on every route. */
	if (rq->expect_continue && has_body && rq->minor == 1) {
		put(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		if (!flush_out(c)) return false;
	}
	body_digest d = {.md = EVP_MD_CTX_new()};
	EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);
	bool body_ok = read_body(c, rq, !sink, &d);
	char sha[65];
	digest_hex(d.md, sha);
	EVP_MD_CTX_free(d.md);
	if (!body_ok) {
		respond(c, rq, 400, "text/plain", "bad request body\n", 17, true);
		return false;
	}

	if (strcmp(path, "/ws") == 0) {
		respond(c, rq, 400, "text/plain", "websocket upgrade with a body\n", 30, true);
		return false;
	}
	if (strcmp(path, "/echo") == 0 || strcmp(path, "/continue") == 0)
		return route_echo(c, rq, sha, d.len) && !rq->close;
	if (sink) {
		char *body = th_xasprintf("{\"body_len\":%llu,\"body_sha256\":\"%s\"}",
		                          (unsigned long long)d.len, sha);
		bool ok = respond(c, rq, 200, "application/json", body, strlen(body), rq->close);
		free(body);
		return ok && !rq->close;
	}
	if (strcmp(path, "/bytes") == 0) {
		pthread_once(&pattern_once, pattern_init);
		return route_bytes(c, rq) && !rq->close;
	}
	if (strcmp(path, "/status") == 0) {
		uint64_t code = query_number(rq->query, "code", 0);
		if (code < 200 || code > 599)
			return respond(c, rq, 400, "text/plain", "code must be 200..599\n", 22, rq->close) &&
			       !rq->close;
		char body[64];
		int n = snprintf(body, sizeof body, "status %d\n", (int)code);
		return respond(c, rq, (int)code, "text/plain", body, (size_t)n, rq->close) && !rq->close;
	}
	if (strcmp(path, "/head") == 0) {
		pthread_once(&pattern_once, pattern_init);
		putf(c, "HTTP/1.1 200 OK\r\nServer: th-upstream\r\nContent-Type: application/octet-stream\r\n"
		        "Content-Length: 1234\r\n%s\r\n", rq->close ? "Connection: close\r\n" : "");
		if (!rq->is_head) send_pattern(c, 0, 1234);
		return flush_out(c) && !rq->close;
	}
	if (strcmp(path, "/close") == 0) {
		respond(c, rq, 200, "text/plain", "closing\n", 8, true);
		return false;
	}
	if (strcmp(path, "/eof") == 0) {
		/* Close-delimited on purpose: no Content-Length, chunked or Connection header, so
		 * only the close tells where the body ends. */
		putf(c, "HTTP/1.1 200 OK\r\nServer: th-upstream\r\nContent-Type: text/plain\r\n\r\n%s",
		     rq->is_head ? "" : "until-eof-body");
		flush_out(c);
		return false;
	}
	if (strcmp(path, "/slow") == 0) {
		uint64_t ms = query_number(rq->query, "ms", 0);
		if (ms > 3600000) ms = 3600000; /* an hour is forever for a test; no time_t overflow */
		if (!sleep_unless_stopping(u, ms)) return false;
		return respond(c, rq, 200, "text/plain", "slow\n", 5, rq->close) && !rq->close;
	}
	if (strcmp(path, "/pipeline") == 0) {
		char body[64];
		int n = snprintf(body, sizeof body, "{\"seq\":%zu}", c->requests);
		return respond(c, rq, 200, "application/json", body, (size_t)n, rq->close) && !rq->close;
	}
	return respond(c, rq, 404, "text/plain", "not found\n", 10, rq->close) && !rq->close;
}

static void serve_http(conn *c)
{
	for (;;) {
		long head_len = read_head(c);
		if (head_len == 0) return; /* closed between requests */
		if (head_len < 0) {
			consume(c, avail(c), true); /* keep what was sent, even a broken head */
			if (head_len == -2)
				respond(c, NULL, 431, "text/plain", "request head too large\n", 23, true);
			return;
		}
		request rq = {0};
		int bad = parse_head(c->in + c->rd, (size_t)head_len, &rq);
		consume(c, (size_t)head_len, true);
		pthread_mutex_lock(&c->u->mu);
		c->u->requests++;
		pthread_mutex_unlock(&c->u->mu);
		c->requests++;
		bool keep = false;
		if (bad) {
			consume(c, avail(c), true);
			respond(c, NULL, bad, "text/plain", "bad request\n", 12, true);
		} else {
			keep = serve_request(c, &rq);
		}
		free_request(&rq);
		if (!keep) return;
	}
}

/* After our last byte: close_notify and FIN, then read (and record) what the peer still
 * sends for a while, so a pipelined request it already sent does not turn our close into
 * a reset that could destroy the response in flight. */
static void finish_connection(conn *c)
{
	if (c->ssl && !c->write_failed) {
		SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	shutdown(c->fd, SHUT_WR);
	struct timeval tv = {.tv_sec = LINGER_MS / 1000, .tv_usec = (LINGER_MS % 1000) * 1000};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (avail(c) > 0 || fill(c)) consume(c, avail(c), true);
}

static void *conn_main(void *arg)
{
	conn *c = arg;
	th_upstream *u = c->u;
	bool handshake_ok = true;
	if (u->ctx) {
		c->ssl = SSL_new(u->ctx);
		if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) || SSL_accept(c->ssl) != 1) {
			handshake_ok = false;
			ERR_clear_error();
			shutdown(c->fd, SHUT_RDWR); /* the peer sees the close now, not at our join */
		} else {
			const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
			pthread_mutex_lock(&u->mu);
			u->handshakes++;
			if (SSL_session_reused(c->ssl)) u->resumed++;
			free(u->last_sni);
			u->last_sni = sni ? th_xstrdup(sni) : NULL;
			pthread_mutex_unlock(&u->mu);
		}
	}
	if (handshake_ok) {
		if (u->banner) {
			write_raw(c, u->banner, strlen(u->banner));
			echo_until_eof(c);
		} else {
			serve_http(c);
		}
		finish_connection(c);
	}
	pthread_mutex_lock(&u->mu);
	c->done = true;
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

static void free_conn(conn *c)
{
	pthread_join(c->thread, NULL);
	SSL_free(c->ssl);
	close(c->fd);
	free(c->in);
	free(c);
}

static void *accept_main(void *arg)
{
	th_upstream *u = arg;
	for (;;) {
		int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				th_sleep_ms(10); /* wait for connections to finish */
				continue;
			}
			return NULL; /* EINVAL after shutdown(): we are stopping */
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		conn *c = th_xcalloc(1, sizeof *c);
		c->u = u;
		c->fd = fd;
		c->in_cap = IN_START;
		c->in = th_xmalloc(c->in_cap);
		c->rec = th_xcalloc(1, sizeof *c->rec);

		conn *finished = NULL;
		pthread_mutex_lock(&u->mu);
		if (u->stopping) {
			pthread_mutex_unlock(&u->mu);
			free(c->in);
			free(c->rec);
			free(c);
			close(fd);
			return NULL;
		}
		if (u->records_tail) u->records_tail->next = c->rec;
		else u->records = c->rec;
		u->records_tail = c->rec;
		u->connections++;
		/* Created under the lock so stop never sees a conn without a thread. */
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			pthread_mutex_unlock(&u->mu);
			fprintf(stderr, "harness: upstream: pthread_create failed, dropping a connection\n");
			free(c->in);
			free(c);
			close(fd);
			continue;
		}
		c->next = u->conns;
		u->conns = c;
		for (conn **pp = &u->conns; *pp;) {
			if ((*pp)->done) {
				conn *d = *pp;
				*pp = d->next;
				d->next = finished;
				finished = d;
			} else {
				pp = &(*pp)->next;
			}
		}
		pthread_mutex_unlock(&u->mu);
		while (finished) {
			conn *next = finished->next;
			free_conn(finished);
			finished = next;
		}
	}
}

/* ---- Public API --------------------------------------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl, (void)arg;
	static const unsigned char http11[] = "\x08http/1.1";
	unsigned char *selected;
	if (SSL_select_next_proto(&selected, outlen, http11, sizeof http11 - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED) {
		*out = selected;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK; /* no http/1.1 offered: carry on without ALPN */
}

static SSL_CTX *server_ctx(const th_cert *server)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	th_buf why = {0};
	if (!ctx) goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, server->chain_path) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, server->key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	/* Needed for TLS 1.2 session-id resumption, which tests count. */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"th-upstream", 11);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	/* A peer that closes without close_notify ends the input like a clean close. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	return ctx;
fail:
	th_buf_ssl_errors(&why);
	SSL_CTX_free(ctx);
	char *msg = th_xasprintf("th_upstream_start: TLS setup with %s: %s", server->chain_path, why.data);
	th_buf_free(&why);
	th_fail("%s", msg);
}

static th_upstream *start(const th_cert *server, const char *banner)
{
	th_process_init();
	th_upstream *u = th_xcalloc(1, sizeof *u);
	u->owner = getpid();
	u->ctx = server ? server_ctx(server) : NULL;
	u->banner = banner ? th_xstrdup(banner) : NULL;
	pthread_mutex_init(&u->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->wake, &ca);
	pthread_condattr_destroy(&ca);

	u->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	if (u->listen_fd < 0 || bind(u->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(u->listen_fd, 1024) != 0 || getsockname(u->listen_fd, (struct sockaddr *)&a, &alen) != 0)
		th_fail("th_upstream_start: listen on 127.0.0.1: %s", strerror(errno));
	u->port = ntohs(a.sin_port);
	int err = pthread_create(&u->accept_thread, NULL, accept_main, u);
	if (err) th_fail("th_upstream_start: pthread_create: %s", strerror(err));
	u->next_live = live;
	live = u;
	return u;
}

th_upstream *th_upstream_start(const th_cert *server) { return start(server, NULL); }

th_upstream *th_upstream_start_banner(const th_cert *server, const char *banner)
{
	if (!banner) th_fail("th_upstream_start_banner: banner is NULL");
	return start(server, banner);
}

static void check_owner(th_upstream *u, const char *what)
{
	if (!u) th_fail("%s: upstream is NULL", what);
	if (u->owner != getpid())
		th_fail("%s: the upstream on port %d belongs to process %ld, and its threads do not "
		        "exist in this forked process (%ld); start it inside the test or a checked "
		        "fixture", what, u->port, (long)u->owner, (long)getpid());
}

int th_upstream_port(th_upstream *u)
{
	if (!u) th_fail("th_upstream_port: upstream is NULL");
	return u->port; /* valid in forked children too: the number does not change */
}

static void stop(th_upstream *u)
{
	pthread_mutex_lock(&u->mu);
	u->stopping = true;
	pthread_cond_broadcast(&u->wake);
	pthread_mutex_unlock(&u->mu);
	shutdown(u->listen_fd, SHUT_RDWR);
	pthread_join(u->accept_thread, NULL);
	/* The accept thread is gone, so the list only shrinks here; no fd in it is closed. */
	pthread_mutex_lock(&u->mu);
	for (conn *c = u->conns; c; c = c->next) shutdown(c->fd, SHUT_RDWR);
	conn *list = u->conns;
	u->conns = NULL;
	pthread_mutex_unlock(&u->mu);
	while (list) {
		conn *next = list->next;
		free_conn(list);
		list = next;
	}
	close(u->listen_fd);
	SSL_CTX_free(u->ctx);
	for (record *r = u->records; r;) {
		record *next = r->next;
		free(r->data);
		free(r);
		r = next;
	}
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->wake);
	free(u->banner);
	free(u->last_sni);
	free(u);
}

void th_upstream_stop(th_upstream *u)
{
	if (!u) return;
	check_owner(u, "th_upstream_stop");
	for (th_upstream **pp = &live; *pp; pp = &(*pp)->next_live)
		if (*pp == u) {
			*pp = u->next_live;
			break;
		}
	stop(u);
}

void th_upstream_stop_all(void)
{
	pid_t me = getpid();
	th_upstream *keep = NULL;
	while (live) {
		th_upstream *u = live;
		live = u->next_live;
		if (u->owner == me) {
			stop(u);
		} else { /* an ancestor's copy: its threads are not ours to join */
			u->next_live = keep;
			keep = u;
		}
	}
	live = keep;
}

char *th_upstream_received(th_upstream *u, size_t *len)
{
	check_owner(u, "th_upstream_received");
	th_buf all = {0};
	pthread_mutex_lock(&u->mu);
	for (record *r = u->records; r; r = r->next) th_buf_put(&all, r->data, r->len);
	pthread_mutex_unlock(&u->mu);
	return th_buf_take(&all, len);
}

#define COUNTER(fn, type, field)              \
	type fn(th_upstream *u)               \
	{                                     \
		check_owner(u, #fn);          \
		pthread_mutex_lock(&u->mu);   \
		type v = u->field;            \
		pthread_mutex_unlock(&u->mu); \
		return v;                     \
	}
COUNTER(th_upstream_bytes_received, uint64_t, received)
COUNTER(th_upstream_request_count, size_t, requests)
COUNTER(th_upstream_connection_count, size_t, connections)
COUNTER(th_upstream_tls_handshakes, int, handshakes)
COUNTER(th_upstream_resumed_handshakes, int, resumed)

char *th_upstream_last_sni(th_upstream *u)
{
	check_owner(u, "th_upstream_last_sni");
	pthread_mutex_lock(&u->mu);
	char *sni = u->last_sni ? th_xstrdup(u->last_sni) : NULL;
	pthread_mutex_unlock(&u->mu);
	return sni;
}
