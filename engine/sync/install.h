/*
 * sync/install: a bundle document made into a policy the engine can run,
 * or refused with the step and the reason. The checks run in the order of
 * schemas/bundle.md ("What an agent checks"): shape and hashes, signature,
 * version / expiry / engine version, then the files are written to
 * STATE/policy/v<N> (a temporary folder renamed into place, so a half
 * written bundle is never loaded), the entry is compiled for every worker
 * (require finds the bundle's own modules first: the entry's folder is the
 * first root), and the bundle's tests run with their output captured. The
 * compiled policy is named "v<N>" (events carry it as policy_version).
 *
 * Nothing here touches the engine: the caller swaps the result in.
 */
#ifndef DLPGATE_SYNC_INSTALL_H
#define DLPGATE_SYNC_INSTALL_H

#include "policy/policy.h"
#include "sync/bundle.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	const char *state_dir;
	unsigned n_workers;
	const bundle_keyset_t *keys;   /* trusted */
	int64_t running_version;       /* the offer must be above it (0: any) */
	bool check_runnable;           /* version, expiry, engine version (not for a last known good) */
} install_opts_t;

typedef struct {
	bundle_t *bundle;
	compiled_policy_t *policy;
	int tests_passed;
} install_result_t;

/* On failure err holds "STEP: reason" (e.g. "signature: unknown key
 * 3f1c..."), and *version the bundle's version when it could be read. */
bool install_bundle(const install_opts_t *o, const void *doc, size_t len, install_result_t *r, int64_t *version,
		    char *err, size_t errlen);
void install_result_free(install_result_t *r);

/* Removes STATE/policy/v* folders other than the versions named (bounded
 * disk: old versions are compiled in memory, never read again). */
void install_prune(const char *state_dir, int64_t keep_a, int64_t keep_b);

#endif
