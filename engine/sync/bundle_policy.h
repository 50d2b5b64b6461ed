/*
 * bundle_policy: a verified bundle made into a running policy, with the
 * engine's own code: the same compile and the same `dlpgate test` the
 * admin ran, so the console (at push) and the agent (at activation) judge
 * a bundle identically.
 *
 * The files are written under DIR/bundle (DIR is made, 0700, and must not
 * exist): the policy loader looks for modules beside the entry and one
 * level up, so nothing but the bundle itself is reachable there; the
 * shipped packs (rules/) remain the last place `require` looks.
 */
#ifndef DLPGATE_BUNDLE_POLICY_H
#define DLPGATE_BUNDLE_POLICY_H

#include "policy/policy.h"
#include "sync/bundle.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	int passed, failed;
	char *output;   /* the test run's report, paths relative to the bundle (malloc'd, "" if no tests) */
} bundle_tests_t;

/* Extracts, compiles the entry with n_workers worker states, runs the test
 * files. On success the policy (version_text "v<N>"); NULL with err
 * otherwise: extraction, compilation ("policy.lua:3: ..."), or failing
 * tests ("2 of 9 policy tests failed", the cases in tests->output). */
compiled_policy_t *bundle_policy_load(const bundle_t *b, const char *dir, unsigned n_workers,
				      bundle_tests_t *tests, char *err, size_t errlen);
void bundle_tests_free(bundle_tests_t *t);

/* Adds to b, as modules, the shipped packs (rules/) the compiled policy
 * required and b lacks, so the bundle runs the same on an agent whose
 * packs differ. Returns how many were added, -1 with err. */
int bundle_policy_include_shipped(bundle_t *b, compiled_policy_t *p, char *err, size_t errlen);

/* Removes DIR and everything under it (a bundle's extraction). */
void bundle_policy_remove_dir(const char *dir);

#endif
