/*
 * Harness internals shared by the harness .c files; tests include harness.h only.
 *
 * Allocation helpers abort() on exhaustion instead of calling th_fail because several
 * callers run on upstream threads, where a Check failure would be wrong. Per-process state
 * (see harness.h, "Per process") is set up by th_process_init(), which every public entry
 * point that creates something calls first.
 */
#ifndef DLPGATE_TESTS_HARNESS_INTERNAL_H
#define DLPGATE_TESTS_HARNESS_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Growable byte buffer; data is always NUL-terminated once anything was put. */
typedef struct {
	char *data;
	size_t len, cap;
} th_buf;

void th_buf_put(th_buf *b, const void *data, size_t len);
void th_buf_puts(th_buf *b, const char *s);
void th_buf_printf(th_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the (NUL-terminated, never NULL) data to the caller and resets b. */
char *th_buf_take(th_buf *b, size_t *len);
void th_buf_free(th_buf *b);
/* Appends the pending OpenSSL errors ("; "-separated) and clears the queue. */
void th_buf_ssl_errors(th_buf *b);

void *th_xmalloc(size_t n);
void *th_xcalloc(size_t n, size_t size);
void *th_xrealloc(void *p, size_t n);
char *th_xstrdup(const char *s);
char *th_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int64_t th_now_ms(void);            /* CLOCK_MONOTONIC */
void th_sleep_ms(int ms);           /* one polling step; never used as a fixed wait */

/* Per-process setup: SIGPIPE ignored, the exit handler registered, state inherited from
 * a parent process (after fork) set aside. Cheap when already done. */
void th_process_init(void);
bool th_keep_tmpdir(void);          /* TH_KEEP=1 */

/* One connect attempt to 127.0.0.1:port. */
bool th_port_accepts(int port);

/* proc.c: the guardian that cleans up after a test process that died without exit(). */
void th_guardian_ensure(void);
void th_guardian_watch_group(pid_t pgid);
void th_guardian_forget_group(pid_t pgid);
void th_guardian_watch_dir(const char *dir);
/* Exit-time cleanup, in the order core.c calls them. */
void th_upstream_stop_all(void);
void th_proc_stop_all(void);
void th_nginx_free_all(void);
void th_guardian_close(void);

/* Tail of a (possibly long) text, for failure messages that Check truncates. */
const char *th_tail(const char *text, size_t max);

#endif
