/*
 * dlpgate integration-test harness: real peers on loopback for Check tests.
 *
 * Integration tests drive the proxy with real programs (curl, openssl, nginx) and with
 * small in-process peers written here (an HTTP/1.1 upstream with its own parser, a raw
 * client that can send what curl never would). This header is the whole public surface.
 *
 * Ground rules every function follows:
 *   - Failure is loud. A harness function that cannot do its job calls th_fail(), which
 *     prints the reason and aborts the current Check test; tests never carry on with a
 *     broken peer. Functions whose "failure" is a legitimate test outcome (a peer closing
 *     the connection, a program exiting non-zero) return it instead; each says so.
 *   - Per process. Check forks a child per test; every piece of state here (temp dir,
 *     spawned processes) belongs to the process that created it. A forked test child gets
 *     its own temp dir and never stops or deletes what its parent made.
 *   - Nothing leaks. Spawned processes are stopped at exit() and, because Check ends a
 *     failing test with _exit() (no atexit), also by a small guardian process that kills
 *     their process groups and removes the temp dir when the test process dies by any means.
 *   - Waiting polls with a deadline in 10 ms steps; there are no fixed sleeps.
 *   - Call these from the test's thread only; th_fail in particular aborts the Check test
 *     and must never run on a helper thread.
 *   - Using the harness sets SIGPIPE to SIG_IGN in the test process (sockets to peers that
 *     went away must give EPIPE, not kill the test); spawned programs get SIG_DFL back.
 *
 * Memory: functions returning char * return malloc'd memory the caller frees, unless the
 * comment says the harness owns it.
 */
#ifndef DLPGATE_TESTS_HARNESS_H
#define DLPGATE_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* ---- Failure ------------------------------------------------------------------------ */

/* Print "harness: MESSAGE" to stderr and fail the current Check test with MESSAGE
 * (ck_abort_msg; Check keeps the first 8 KiB). Never returns. */
void th_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* For testing the harness itself: when a hook is set, th_fail calls it with the message
 * instead of ck_abort_msg. The hook must not return (e.g. it _exit()s a forked child);
 * if it does, th_fail calls abort(). NULL restores the default. */
typedef void (*th_fail_hook)(const char *message);
void th_set_fail_hook(th_fail_hook hook);

/* ---- Files and ports ---------------------------------------------------------------- */

/* This process's temp dir (mode 0755 so nginx workers can read it), created on first use
 * under $TMPDIR or /tmp, removed recursively at exit unless TH_KEEP=1 (then its path is
 * printed when it is created and at exit). Harness-owned string. */
const char *th_tmpdir(void);
char *th_path(const char *name);                    /* malloc'd "TMPDIR/name" */
void th_write_file(const char *path, const void *data, size_t len, int mode);
/* Whole file, NUL-terminated, malloc'd; NULL if the file does not exist. */
char *th_read_file(const char *path, size_t *len);
/* Does digits (a group of a secret number, "1488") stand in s as a group
 * of its own, or inside a run of digits as long as a card's? Not inside
 * a short run: logs and heads hold ports, ids and times whose digits
 * would match a bare strstr by chance. */
bool th_has_group(const char *s, const char *digits);
/* A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close). */
int th_free_port(void);
/* Poll-connect 127.0.0.1:port until something accepts; false on timeout (no th_fail:
 * "nothing listens" can be the expected outcome). */
bool th_wait_port(int port, int timeout_ms);

/* ---- Deterministic content ---------------------------------------------------------- */

/* The test pattern used by nginx files and upstream /bytes: byte i = (i*31+7) & 0xff.
 * Fills buf with the bytes at stream offsets [offset, offset+len). */
void th_pattern_fill(void *buf, size_t len, uint64_t offset);
/* Lowercase hex SHA-256 (64 chars + NUL) of data, and of the first n pattern bytes. */
void th_sha256_hex(const void *data, size_t len, char out[65]);
void th_pattern_sha256_hex(uint64_t n, char out[65]);

/* ---- Certificates (OpenSSL 3 API; PEM files in th_tmpdir()) -------------------------- */

typedef struct {
	X509 *cert;
	EVP_PKEY *key;
	char *cert_path;   /* NAME.pem: this certificate alone */
	char *key_path;    /* NAME.key: PKCS#8 private key, mode 0600 */
	char *chain_path;  /* NAME-chain.pem: this cert then its issuer (servers load this);
	                    * for a CA or a self-signed leaf, the cert alone */
} th_cert;

/* ECDSA P-256 self-signed CA "CN=name": basicConstraints critical CA:TRUE, keyUsage
 * keyCertSign+cRLSign, SKI, valid from yesterday for 10 years. */
th_cert th_make_ca(const char *name);

typedef struct {
	const char *cn;          /* subject CN; NULL = the file name */
	const char *dns[8];      /* subjectAltName DNS entries, NULL-terminated or full */
	const char *ip[4];       /* subjectAltName IP entries (v4 or v6 text) */
	long not_before_days;    /* relative to now; both 0 means -1 and +30 */
	long not_after_days;
	bool self_signed;        /* ignore issuer, sign with its own key */
	bool rsa;                /* RSA-2048 key instead of ECDSA P-256 */
} th_leaf_opts;

/* Server leaf signed by issuer: SAN from dns/ip (none if both empty), EKU serverAuth,
 * keyUsage digitalSignature (+keyEncipherment for RSA), basicConstraints CA:FALSE,
 * AKI/SKI. Writes NAME.pem, NAME.key, NAME-chain.pem. o may be NULL (CN=name). */
th_cert th_make_leaf(const th_cert *issuer, const char *name, const th_leaf_opts *o);
void th_cert_free(th_cert *c);                      /* zeroes *c; files are kept */

/* ---- Processes ---------------------------------------------------------------------- */

typedef struct {
	pid_t pid;          /* 0 once th_stop ran (th_wait keeps it: the code stays readable) */
	char *log_path;     /* stdout+stderr of the process; harness-owned until exit */
} th_proc;

/* fork+exec argv (PATH lookup), stdout+stderr appended to th_path(log_name) (the log
 * file is truncated first; log_name may contain '/' into an existing subdir), stdin from
 * /dev/null, in its own process group. th_fail naming argv[0] if exec fails. */
th_proc th_spawn(char *const argv[], const char *log_name);
/* Same with extra environment entries "NAME=value" (override inherited ones) or "NAME"
 * (remove it from the environment); extra_env is NULL-terminated, may be NULL. */
th_proc th_spawn_env(char *const argv[], char *const extra_env[], const char *log_name);
/* Exit code (128+signal if killed), or -1 if still running after timeout_ms (then the
 * process is left running). A process already reaped returns its recorded code. */
int th_wait(th_proc *p, int timeout_ms);
/* SIGTERM to its process group, up to 5 s to exit, then SIGKILL; reaps. Idempotent. */
void th_stop(th_proc *p);
bool th_alive(const th_proc *p);
/* Log contents (malloc'd; "" if nothing was written), for failure messages. */
char *th_log(const th_proc *p);
/* Run argv to completion: stdin_data (NULL = /dev/null) written to its stdin while
 * stdout and stderr are read concurrently (no deadlock on large output); out/out_len/err
 * may each be NULL (output then discarded). Kills it and th_fails on timeout. Returns the
 * exit code (128+signal). Its process group is killed if the test dies meanwhile. */
int th_run(char *const argv[], const void *stdin_data, size_t stdin_len,
           char **out, size_t *out_len, char **err, int timeout_ms);
/* VmHWM (peak) and VmRSS of a live process, KiB; th_fail if it cannot be read. */
long th_rss_peak_kib(pid_t pid);
long th_rss_kib(pid_t pid);

/* `curl -q -sS ARGS...` (no ~/.curlrc, proxy environment variables removed so only an
 * explicit --proxy applies), 30 s limit. args is NULL-terminated. Returns curl's exit
 * code; out/out_len/err as th_run. */
int th_curl(const char *const args[], char **out, size_t *out_len, char **err);

/* ---- PostgreSQL ---------------------------------------------------------------------- */

typedef struct {
	th_proc proc;
	int port;
	char url[128];  /* postgresql://postgres@127.0.0.1:PORT/postgres */
	char *dir;      /* data dir and unix socket (harness-owned) */
} th_postgres;

/* A private PostgreSQL 15 (Debian's binaries) on a free port of 127.0.0.1, run as the
 * postgres user, trust auth, fsync off; ready when this returns. th_fail naming the fix
 * when the binaries or the user are missing. */
th_postgres th_postgres_start(void);
void th_postgres_stop(th_postgres *pg);

/* ---- nginx as an HTTPS upstream ----------------------------------------------------- */

typedef struct {
	th_proc proc;
	int port;
	char *root;   /* document root DIR/www (harness-owned) */
	char *dir;    /* DIR: nginx.conf, error.log, temp dirs (harness-owned) */
} th_nginx;

/* nginx (master + 1 worker) on 127.0.0.1:port with server's chain and key, TLS 1.2/1.3,
 * keepalive_requests 100000, client_max_body_size 0, access_log off. server NULL = plain
 * HTTP. extra_server_conf (may be NULL) is pasted inside server { }. The root holds
 * /hello.txt ("hello from nginx\n"), /1k and /64k (pattern bytes). Waits until the port
 * accepts; th_fail with error.log if nginx dies or does not listen within 10 s. */
th_nginx th_nginx_start(const th_cert *server, const char *extra_server_conf);
/* ROOT/name with size pattern bytes; from 64 MiB up the file is sparse zeros instead
 * (ftruncate), so a 1 GiB file costs no disk. */
void th_nginx_add_file(th_nginx *n, const char *name, size_t size);
void th_nginx_stop(th_nginx *n);                    /* stops and frees; idempotent */

/* ---- In-process test upstream (threads, blocking OpenSSL) ---------------------------- */

/*
 * HTTP/1.1 server with its own parser (independent of the proxy's llhttp). Request
 * bodies by Content-Length or chunked (trailers kept); "Expect: 100-continue" is answered
 * with "100 Continue" before any body is read, as nginx does. Strict where leniency
 * would hide proxy bugs: CRLF only, no obs-fold, no Content-Length together with
 * Transfer-Encoding, no differing Content-Lengths; such a request gets 400 (a head over
 * 64 KiB 431) and "Connection: close". Whenever the upstream closes, it sends
 * close_notify/FIN and keeps reading (and recording) until the peer closes, at most 2 s.
 * Routes (path before '?'; an absolute-form target is routed by its path):
 *   /echo               200 JSON {"method","path"(raw request-target),"body_len",
 *                       "body_sha256","headers":{lowercase name: last value}
 *                       [,"trailers":{...}]}; bytes >= 0x80 escaped as \u00XX.
 *   /sink               body discarded (counted, not recorded): {"body_len","body_sha256"}
 *   /bytes?n=N[&chunked=1]  N pattern bytes (N < 2^63), Content-Length or chunked with
 *                       chunk sizes 1..8192 from a PRNG seeded by N; streamed.
 *   /status?code=NNN    that status (200..599); 204 and 304 without body.
 *   /head               Content-Length: 1234; HEAD gets no body, GET gets 1234 pattern bytes.
 *   /close              200 "Connection: close", short body, then close.
 *   /eof                200 without Content-Length, chunked or Connection header; body
 *                       "until-eof-body"; then close (close-delimited).
 *   /continue           like /echo (the 100 Continue comes from the generic rule above).
 *   /ws                 Upgrade: websocket + Connection: upgrade token + Sec-WebSocket-Key
 *                       -> 101 with Sec-WebSocket-Accept, then every byte is echoed until
 *                       EOF (bad upgrade -> 400).
 *   /slow?ms=N          200 "slow\n" after N ms (at most an hour; th_upstream_stop
 *                       ends the wait and the connection).
 *   /pipeline           200 {"seq":K}, K = 1-based request number on this connection.
 *   anything else       404.
 * HEAD requests never get a body. Answers to HTTP/1.0 requests close the connection.
 * Counters are updated before the response is written, so a test that has seen the
 * response can read them without racing.
 */
typedef struct th_upstream th_upstream;

th_upstream *th_upstream_start(const th_cert *server /* NULL = plain TCP */);
/* Raw mode for server-speaks-first protocols: sends banner right after accept (after the
 * TLS handshake if server is set), then echoes every byte back until EOF. */
th_upstream *th_upstream_start_banner(const th_cert *server, const char *banner);
int th_upstream_port(th_upstream *u);
/* Closes listener and connections, joins every thread, frees. NULL is ignored. */
void th_upstream_stop(th_upstream *u);

/* Every byte received (decrypted, for TLS), connection by connection in accept order,
 * each in arrival order (NUL-terminated, malloc'd). Stored bytes are capped at 64 MiB in
 * all; bytes past the cap and /sink body bytes are only counted
 * (th_upstream_bytes_received). */
char *th_upstream_received(th_upstream *u, size_t *len);
uint64_t th_upstream_bytes_received(th_upstream *u);  /* all bytes, stored or not */
size_t th_upstream_request_count(th_upstream *u);     /* request heads parsed */
size_t th_upstream_connection_count(th_upstream *u);  /* TCP connections accepted */
int th_upstream_tls_handshakes(th_upstream *u);       /* successful handshakes */
int th_upstream_resumed_handshakes(th_upstream *u);   /* of which SSL_session_reused */
/* SNI of the most recent successful handshake (malloc'd), NULL if none was sent. */
char *th_upstream_last_sni(th_upstream *u);

/* ---- Raw client --------------------------------------------------------------------- */

typedef struct th_client th_client;

/* CONNECT host:port through the explicit proxy on 127.0.0.1:proxy_port; th_fail with
 * the proxy's answer unless 2xx. Then, if ca_file, a TLS handshake inside the tunnel
 * verifying the chain against ca_file and host (DNS name or IP literal), SNI = sni
 * (NULL = none), ALPN http/1.1; th_fail with the verify error if it fails. */
th_client *th_client_connect_via_proxy(int proxy_port, const char *host, int port,
                                       const char *ca_file, const char *sni);
/* Same, but a refused CONNECT or failed handshake returns NULL and sets *why (malloc'd;
 * why may be NULL) instead of failing: for tests where refusal is the expected outcome.
 * Not reaching the proxy port at all is still a th_fail. */
th_client *th_client_try_via_proxy(int proxy_port, const char *host, int port,
                                   const char *ca_file, const char *sni, char **why);
/* Plain TCP to 127.0.0.1:port (the proxy itself, or an upstream directly). */
th_client *th_client_connect_plain(int port);
/* TLS handshake on a connected client (e.g. transparent mode or a direct upstream),
 * verifying against ca_file (NULL = no verification, to look at whatever certificate is
 * presented) and verify_host (NULL = no name check); th_fail if it fails. */
void th_client_start_tls(th_client *c, const char *ca_file, const char *verify_host,
                         const char *sni);

/* Sends all of data. Returns 0, or -1 if the peer closed or reset the connection (a
 * possible outcome in hostile-input tests, so no th_fail); th_fail if the peer reads
 * nothing for 30 s. */
int th_client_send(th_client *c, const void *data, size_t len);
/* Everything until EOF (close_notify, FIN or reset) or timeout (then what arrived so far;
 * th_client_eof tells which). Never NULL. */
char *th_client_recv_until_close(th_client *c, size_t *len, int timeout_ms);
/* Exactly one HTTP response, raw bytes: head, then body by Content-Length / chunked
 * (with trailers) / until close; no body for 1xx, 204, 304 (a 1xx is returned alone;
 * call again for the final response). NULL if the connection closed before any byte
 * arrived; th_fail on timeout or a truncated or malformed response. */
char *th_client_recv_response(th_client *c, size_t *len, int timeout_ms);
/* Same for the answer to a HEAD request: the head only, whatever Content-Length says. */
char *th_client_recv_head_response(th_client *c, size_t *len, int timeout_ms);
/* Exactly n bytes (NUL-terminated), for raw protocols (websocket, banner echo); th_fail
 * if the connection closes or timeout_ms passes first. */
char *th_client_recv_exact(th_client *c, size_t n, int timeout_ms);
bool th_client_eof(const th_client *c);             /* the peer has closed */
/* Status code of a raw response ("HTTP/1.x NNN ..."); -1 if it is not one. */
int th_client_status(const char *raw_response);
/* Issuer CN of the certificate the client saw (client-owned string), and the
 * certificate itself (client-owned: X509_up_ref to keep it past th_client_close). */
const char *th_client_peer_cert_issuer(th_client *c);
X509 *th_client_peer_cert(th_client *c);
void th_client_close(th_client *c);                 /* NULL is ignored */

/* ---- Raw HTTP helpers (for responses from th_client or th_curl -i) ------------------- */

/* Value of the first header called name (case-insensitive) in the head of raw, trimmed,
 * malloc'd; NULL if absent. */
char *th_http_header(const char *raw, const char *name);
/* The byte after the head's blank line, or NULL if raw has no complete head. */
const char *th_http_body(const char *raw);

#endif
