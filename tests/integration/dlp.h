/*
 * dlp: the gateway under test, as a real process, and the world around it.
 *
 * A world is a test CA, an upstream certificate for 127.0.0.1/localhost
 * signed by it, and dlpgate trusting that CA for upstreams (--upstream-ca),
 * with its own CA in a fresh state dir. Tests then talk to dlpgate with real
 * curl / openssl / the harness client, and to upstreams from the harness.
 */
#ifndef DLPGATE_TEST_DLP_H
#define DLPGATE_TEST_DLP_H

#include "harness/harness.h"

#include <check.h>
#include <stdbool.h>

typedef struct {
	th_cert ca;        /* the upstreams' CA */
	th_cert server;    /* 127.0.0.1 + localhost, signed by ca */
} world_t;

typedef struct {
	th_proc proc;
	int port;
	char *state_dir;
	char *ca_path;     /* dlpgate's CA: what clients must trust */
	char *config_path; /* the --config file, NULL if none */
	char proxy[64];    /* "http://127.0.0.1:PORT" for curl -x */
	char **argv;       /* as started, for dlp_restart */
	char *log_name;
} dlp_t;

world_t world_new(void);
void world_free(world_t *w);

/* Starts dlpgate trusting upstream_ca (may be NULL) with config_json (may be
 * NULL) and extra NULL-terminated args; fails the test if it does not serve. */
dlp_t dlp_start(const char *upstream_ca, const char *config_json, const char *const extra[]);
/* SIGTERM; asserts a clean exit (0). */
void dlp_stop(dlp_t *d);
/* Stops d as dlp_stop does and starts it again with the same arguments,
 * state dir and port (d is left stopped and emptied). */
dlp_t dlp_restart(dlp_t *d);
char *dlp_log(dlp_t *d);
/* Polls the log until it holds needle; false after timeout_ms. */
bool dlp_log_wait(dlp_t *d, const char *needle, int timeout_ms);
const char *dlp_bin(void);
/* build/dlpgate-console, beside dlp_bin(). */
const char *dlp_console_bin(void);

/* curl through the proxy trusting dlpgate's CA: returns the exit code;
 * out gets the body (or what -w prints), err stderr. args NULL-terminated. */
int dlp_curl(dlp_t *d, const char *const args[], char **out, char **err);

/* A socket (the caller closes it) that CONNECTed through d to
 * 127.0.0.1:target_port and read the 200's head, nothing more: for tests
 * that speak TLS themselves, byte by byte. */
int dlp_tunnel_fd(dlp_t *d, int target_port);

/* A URL on 127.0.0.1 or localhost. */
char *url(const char *host, int port, const char *path, bool tls);

/* The set-up most suites share: a world, the harness's upstream serving its
 * certificate (th_upstream_start), and dlpgate trusting it, run on a policy
 * written from src into the test's temp dir as file `name`, with extra
 * NULL-terminated arguments (may be NULL). */
typedef struct {
	world_t w;
	th_upstream *up;
	dlp_t d;
	char *policy; /* the policy file */
} dlp_world_t;
void dlp_world_start(dlp_world_t *x, const char *name, const char *src, const char *const extra[]);
void dlp_world_stop(dlp_world_t *x);
/* curl through x's dlpgate with args, then https://127.0.0.1:UPSTREAM
 * followed by path; returns what curl printed (the body, what -w adds) and
 * its exit code in *rc (rc may be NULL). */
char *dlp_world_curl(dlp_world_t *x, const char *path, const char *const args[], int *rc);

/* ajv (strict, JSON Schema 2020-12) on each line of ndjson against
 * schemas/SCHEMA (test_report.c): NULL when all are valid, else ajv's
 * complaint (malloc'd). */
char *ajv_check_with(const char *schema_name, const char *ndjson);

/* True when this test binary was built with ASan (the limits are looser). */
bool dlp_sanitized(void);

#endif
