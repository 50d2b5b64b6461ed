/*
 * sync: the agent's side of policy distribution (DESIGN.md "Policy
 * distribution", schemas/bundle.md, schemas/console-api.md).
 *
 * With --console and without --policy, what the engine enforces comes
 * from the console as signed bundles:
 *
 *   start:  STATE/policy/lkg.dlpbundle, verified again with the trusted
 *           keys, runs at once ("last-known-good"), whether or not the
 *           console answers; without one the shipped rules/default.lua
 *           runs ("built-in") and the log says so.
 *   then:   a thread long-polls GET /api/v1/policy with If-None-Match of
 *           the offer it runs (and of the one it last refused). An offer's
 *           active bundle goes through parse, signature, version/expiry/
 *           engine checks, extraction, compilation for every worker and the
 *           bundle's own tests; only then is it swapped in on every worker
 *           at once (flows keep theirs), kept as last known good, its key
 *           rotation applied, and reported. Any step that fails keeps the
 *           running policy and says why (policy_error log line, status).
 *           The offer's shadow bundle is checked and compiled the same way
 *           and installed in the engine's shadow slot (http/shadow.h).
 *
 * What runs and why is one record (sync_status_t), written atomically to
 * STATE/policy/status.json (`dlpgate policy status` reads it, whether or
 * not the agent runs) and pushed into report for the status posts. Data
 * flows one way: sync tells report; report never calls sync.
 *
 * Trust: --bundle-keys FILE is authoritative (rotation by a bundle applies
 * for the rest of the run and the log asks the admin to update FILE).
 * Without it the keys pinned at enrollment, STATE/bundle-keys, are trusted
 * and rotation rewrites that file.
 */
#ifndef DLPGATE_SYNC_H
#define DLPGATE_SYNC_H

#include "engine.h"
#include "report/report.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYNC_WAIT_DEFAULT 30
#define SYNC_WAIT_MAX 300

typedef struct {
	engine_t *e;
	const char *state_dir;
	const char *console, *console_ca;
	unsigned socket_mark;          /* transparent mode (report/upload.h) */
	const char *bundle_keys;       /* --bundle-keys FILE, or NULL: STATE/bundle-keys (pinned) */
	unsigned wait_s;               /* the hold asked of the console (--policy-wait) */
} sync_opts_t;

/* The policy to start with: the last known good bundle if STATE holds a
 * valid one, else the shipped default. NULL only when neither loads (err
 * says why). Records the status. Call before the workers start. */
compiled_policy_t *sync_boot(const sync_opts_t *o, char *err, size_t errlen);
/* The poller thread; call after report_start. */
bool sync_start(const sync_opts_t *o, char *err, size_t errlen);
/* Ends the thread (an in-flight poll is cut short). */
void sync_stop(void);

/* ---- the status record (sync/status.c) ---- */

/* The record is report's report_policy_t: one shape for the file, the
 * CLI and the status posts. */
typedef report_policy_t sync_status_t;

/* Remembers dir for sync_status_publish (call once, before threads). */
void sync_status_init(const char *state_dir);
/* Writes STATE/policy/status.json (atomic rename) and hands s to report. */
void sync_status_publish(const sync_status_t *s);
/* now as RFC 3339 UTC with milliseconds */
void sync_now_rfc3339(char out[32]);
/* `dlpgate policy status`: the record STATE holds, or false with err. */
bool sync_status_read(const char *state_dir, sync_status_t *s, char *err, size_t errlen);

#endif
