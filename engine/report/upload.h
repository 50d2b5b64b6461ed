/*
 * upload: the agent's HTTPS client for the console (schemas/console-api.md),
 * with libcurl. One easy handle, reused, so batches ride one kept-alive TLS
 * connection. The console is verified against --console-ca (and only it:
 * the system store is not consulted, so a public CA cannot vouch for a
 * console). Used by the uploader thread only; not thread-safe.
 */
#ifndef DLPGATE_UPLOAD_H
#define DLPGATE_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct upload upload_t;

typedef struct {
	long status;          /* HTTP status; 0 when no answer came */
	long retry_after_s;   /* Retry-After, when the console sent one */
	char detail[256];     /* what went wrong, for logs and status */
	char *body;           /* the answer's body (malloc'd, NUL-terminated), for the caller to free */
} upload_result_t;

/* socket_mark != 0: set SO_MARK on the console connection, so transparent
 * mode's redirect (which skips marked packets) never loops it back into
 * this engine. */
upload_t *upload_new(const char *console_url, const char *ca_file, unsigned socket_mark, char *err, size_t errlen);
void upload_free(upload_t *u);

/* POST path with a JSON body; token may be NULL (enrollment). */
void upload_json(upload_t *u, const char *path, const char *token, const char *json, upload_result_t *r);
/* POST /api/v1/events: ndjson gzipped on the way. */
void upload_events(upload_t *u, const char *token, const char *ndjson, size_t len, upload_result_t *r);
void upload_result_free(upload_result_t *r);

/* What every request to the console is made with (policy sync's poller
 * too): https only, never through a proxy, verified against ca_file alone,
 * connect timeout, the socket mark when *mark is not 0. mark must live as
 * long as the handle makes requests. */
typedef void CURL;
void upload_curl_setup(CURL *c, const char *ca_file, const unsigned *mark);

#endif
