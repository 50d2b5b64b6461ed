/*
 * sandbox: a Lua 5.4 state a policy cannot hurt the machine with.
 *
 *   libraries  base (no dofile, loadfile, string.dump; load takes text
 *              only), string, table, math, utf8. No io, os, debug,
 *              package, coroutine.
 *   require    modules from the policy's own folder and its parent (so
 *              `require "rules.pii"` finds rules/pii.lua), then the packs
 *              shipped with dlpgate, and the built-in "dlp"; names are
 *              checked, text chunks only.
 *   names      every chunk is named "@" and its path relative to the
 *              policy's folder: "policy.lua", "lib/util.lua", a module one
 *              level up "../rules/pii.lua"; a shipped pack by its path in
 *              the shipped folder ("pii.lua": the name it has in a console
 *              bundle, which carries it beside the entry; a file of that
 *              name beside the policy would have been found first, so no
 *              two chunks of a policy share a name). A rule's location
 *              (an event's "rule"), an error message and a traceback thus
 *              read the same on every machine and never hold its paths.
 *   memory     a custom allocator refuses allocations past the cap: a
 *              table or string.rep bomb ends in a Lua error, not an OOM.
 *   time       a count hook charges every 1000 VM instructions against a
 *              per-call budget reset before each stage call; Lua string
 *              patterns (which run in C, out of the hook's reach) are
 *              refused on large subjects, where backtracking could stall.
 *
 * A limit hit is an ordinary Lua error with a recognisable message, so
 * the caller applies the policy's fail mode and counts it.
 */
#ifndef DLPGATE_SANDBOX_H
#define DLPGATE_SANDBOX_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SANDBOX_PATTERN_MAX (32 * 1024) /* subject bytes a Lua pattern may scan */

/* The bytes of every Lua file a policy loaded (its own file and the
 * modules it requires), read once: every state of the policy is built
 * from the same snapshot, so a file edited while a policy loads (an
 * editor truncating and rewriting it) cannot give workers different or
 * broken code. Filled while the policy is opened, read-only afterwards. */
#define SANDBOX_SOURCE_MAX (8u << 20)

typedef struct {
	char *path, *data;
	size_t len;
} sandbox_source_t;

typedef struct {
	sandbox_source_t *v;
	size_t n, cap;
} sandbox_sources_t;

void sandbox_sources_free(sandbox_sources_t *s);

typedef struct {
	size_t used, limit;           /* bytes */
	uint64_t instructions, budget;
	bool mem_exceeded, budget_exceeded;
	/* require's folders, absolute: [0] the policy's, [1] its parent,
	 * [2] the shipped packs (absent when one of the others) */
	const char *roots[3];
	size_t n_roots;
	sandbox_sources_t *sources;   /* where the files are read into (see above) */
} sandbox_t;

/* A new sandboxed state (its extra space points at sb). The dlp module is
 * registered by the caller (ldlp.c). NULL on out of memory. */
lua_State *sandbox_new(sandbox_t *sb, size_t mem_limit, uint64_t instr_budget);
sandbox_t *sandbox_of(lua_State *L);
/* Before each stage call: a fresh instruction budget. */
void sandbox_reset(lua_State *L);
/* The chunk name (without its '@') of path, an absolute path under one of
 * sb's roots (the first that holds it): see "names" above. False (out
 * empty) if under none or too long for out. */
bool sandbox_chunk_name(const sandbox_t *sb, const char *path, char *out, size_t n);
/* Loads and runs file (an absolute path in roots[0]) as the policy chunk;
 * false with "name:line: message" in err. Its return value is kept in the registry under
 * "dlp.chunk_result" (a detector pack returns its detectors). */
bool sandbox_run_file(lua_State *L, const char *path, char *err, size_t errlen);
/* lua_pcall with a message handler that keeps "file:line:" positions. */
int sandbox_pcall(lua_State *L, int nargs, int nresults);

#endif
