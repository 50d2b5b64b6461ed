/*
 * lua_policy: policies written in Lua (the rule language of DESIGN.md).
 *
 * A policy file is run once at load, in a sandbox on the main thread:
 * that compiles its detectors (PCRE2 JIT, into one set shared by all
 * workers), reads its settings (fail, mode, inspect, limits) and checks
 * its stage functions. A load error is "file:line: message" and the
 * policy is refused. Each worker then runs the same file in its own
 * sandboxed state the first time it needs it; identical detector specs
 * resolve to the compiled ones, so nothing is compiled twice.
 *
 * Stage calls (on_flow, on_request, on_response) run with a fresh
 * instruction budget; an error or a limit hit applies the policy's fail
 * mode, is counted, and the verdict says so.
 */
#ifndef DLPGATE_LUA_POLICY_H
#define DLPGATE_LUA_POLICY_H

#include "policy/policy.h"

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>

typedef struct {
	unsigned n_workers;
} lua_policy_opts_t;

/* Loads and compiles the policy at path; NULL with "file:line: message". */
compiled_policy_t *lua_policy_load(const char *path, const lua_policy_opts_t *opts, char *err, size_t errlen);

/* Counters since load (errors are runtime errors and limit hits). */
typedef struct {
	unsigned long calls, errors, instruction_limits, memory_limits;
} lua_policy_stats_t;
void lua_policy_stats(compiled_policy_t *p, lua_policy_stats_t *out);

/* `dlpgate check`: load, then lint (detectors without keywords or digits, examples
 * that do not behave). Prints findings to out; returns the number of
 * problems (warnings are not problems). */
int lua_policy_check(const char *path, FILE *out);

/* `dlpgate test POLICY TESTFILE...`: one line per case, a summary;
 * returns the number of failed cases (or -1 if nothing could run) and,
 * when passed is not NULL, the number that passed. */
int lua_policy_test(const char *policy_path, char *const *test_files, int n_files, FILE *out, int *passed);

/* The Lua files a loaded policy read, the entry first, then each module in
 * the order it was required, with the bytes it ran. */
typedef void (*lua_policy_source_fn)(void *ud, const char *path, const char *data, size_t len);
void lua_policy_sources(compiled_policy_t *p, lua_policy_source_fn fn, void *ud);
/* Where `require` finds the shipped packs (rules/), or NULL. */
const char *lua_policy_shipped_rules(void);

typedef struct {
	bool no_prefilter; /* every regex over every byte (the benchmark's baseline) */
	bool profile;      /* time per detector on stderr, costliest first */
} lua_scan_opts_t;

/* `dlpgate scan POLICY_OR_PACK FILE...`: one JSON object per finding. */
int lua_policy_scan(const char *path, char *const *files, int n_files, const lua_scan_opts_t *o, FILE *out);

#endif
