/*
 * console_proc: helpers the console suites share. A console process on a
 * free port with a fresh state dir (SQLite there, or the given --db), and
 * requests to it with real curl over HTTPS, trusting its certificate.
 */
#ifndef DLPGATE_TEST_CONSOLE_PROC_H
#define DLPGATE_TEST_CONSOLE_PROC_H

#include "dlp.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SECRET "test-enroll-secret-0123456789"

typedef struct {
	th_proc proc;
	int port;
	char *dir;
	char *pem;
	const char *db; /* NULL: the SQLite default */
} cons_t;

/* Starts `dlpgate-console run` (with --enroll-secret SECRET when secret)
 * and extra args (NULL-terminated, may be NULL); fails the test unless it
 * listens. */
cons_t cons_start_args(const char *db, bool secret, const char *const extra[]);
cons_t cons_start(const char *db);
/* SIGTERM; asserts exit 0 and that no token or secret reached the log. */
void cons_stop(cons_t *c);
/* dlpgate-console ARGS (NULL-terminated), plus --state-dir and --db of c
 * when c is not NULL; the exit code. out and err may be NULL. */
int cons_cli(cons_t *c, char **out, char **err, const char *const args[]);
/* `admin token create` on its state dir and database. */
char *admin_token(cons_t *c);
/* One request with curl; the status, *out the body (may be NULL). */
int req(cons_t *c, const char *method, const char *path, const char *token, const char *ctype, const char *cenc,
	const void *body, size_t len, char **out);
char *gz(const char *data, size_t len, size_t *out_len);
int post_events(cons_t *c, const char *token, const char *ndjson, char **out);
/* Enrolls agent (labels_json: an object's text, or NULL); its token. With
 * answer, the enrollment's JSON answer too (the caller decrefs). */
char *enroll_labels(cons_t *c, const char *agent, const char *labels_json, json_t **answer);
char *enroll(cons_t *c, const char *agent);
/* GET path as admin, asserting the status; the JSON answer. */
json_t *get_json(cons_t *c, const char *admin, const char *path, int want_status);

#endif
