/*
 * lua_internal: what the files of the Lua policy runtime share (ldlp.c:
 * the dlp module; lmsg.c: flows and messages; lua_policy.c: loading and
 * stage calls; ltest.c: check, test and scan). Not for the rest of the
 * engine, which sees only compiled_policy_t.
 */
#ifndef DLPGATE_LUA_INTERNAL_H
#define DLPGATE_LUA_INTERNAL_H

#include "detect/detector.h"
#include "policy/lua_policy.h"
#include "policy/sandbox.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdatomic.h>

typedef struct lua_policy lua_policy_t;

/* One sandboxed state and what its C functions need. */
typedef struct {
	sandbox_t sb;              /* first: sandbox_of() gives this struct */
	lua_State *L;
	lua_policy_t *lp;
	detect_scratch_t *scratch;
	det_result_t *results;     /* a scan's results, kept between calls */
	void *pieces;              /* lmsg.c: what each result was run on */
	size_t n_results;
	char *roots[2];
} lstate_t;

struct lua_policy {
	compiled_policy_t base;
	char *path;                /* absolute */
	const char *name;          /* its chunk name, in errors: the file name in path */
	detset_t *detectors;
	bool fail_closed;
	bool monitor;
	uint64_t instructions;     /* per stage call */
	size_t memory;             /* per state */
	bool has_flow, has_request, has_response, has_uninspectable, has_message;
	lstate_t *master;          /* load, check, test and scan run here */
	lstate_t **states;         /* per worker, made when the policy loads */
	sandbox_sources_t sources; /* the Lua files as read for the master */
	unsigned n_states;
	atomic_ulong calls, errors, instruction_limits, memory_limits;
};

static inline lstate_t *lstate_of(lua_State *L)
{
	return (lstate_t *)sandbox_of(L);
}

/* Loads a policy, or (need_stages false) a detector pack. */
lua_policy_t *lua_policy_open(const char *path, unsigned n_workers, bool need_stages, char *err, size_t errlen);
void lua_policy_close(lua_policy_t *lp);


/* ldlp.c */
void ldlp_open(lua_State *L);                     /* registers require "dlp" */
const detector_t *ldlp_check_detector(lua_State *L, int idx);
bool ldlp_is_detector(lua_State *L, int idx);
/* Compiles s (the Lua spec table at spec_idx stays reachable from the
 * detector: examples, description), adds it to the policy's set and
 * pushes the detector object; a Lua error naming who on failure. */
int ldlp_push_compiled(lua_State *L, const detector_spec_t *s, int spec_idx, const char *who);

/* ledm.c: dlp.edm{pack =, primary =, corroborate =, distance =, min_corroborate =} */
int ledm_detector(lua_State *L);
/* A whole number field key of table t, from 0 to max (def when absent); a
 * Lua error naming fn otherwise. */
uint32_t ldlp_opt_uint(lua_State *L, int t, const char *fn, const char *key, uint32_t def, uint32_t max);
/* Reads a verdict table at idx into v (and marks the findings selected by
 * a redact verdict); false with a message on the stack if it is not one. */
bool ldlp_read_verdict(lua_State *L, int idx, verdict_t *v, policy_msg_t *msg);

/* lmsg.c */
void lmsg_open(lua_State *L);                     /* metatables */
void lmsg_push_flow(lua_State *L, const flow_facts_t *f);
/* Pushes a message object valid until lmsg_invalidate(). */
void lmsg_push(lua_State *L, policy_msg_t *m, const flow_facts_t *f, bool request);
void lmsg_push_readonly(lua_State *L, policy_msg_t *m, const flow_facts_t *f);
void lmsg_invalidate(lua_State *L, int idx);

#endif
