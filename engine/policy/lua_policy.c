/*
 * lua_policy: loading a policy file and calling its stages. See
 * lua_policy.h for the model (one compile on the main thread, one state
 * per worker, shared detectors).
 */
#include "policy/lua_internal.h"

#include "core/hostglob.h"
#include "core/log.h"
#include "core/stats.h"
#include "net/worker.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __APPLE__
#include <mach-o/dyld.h>
#endif

#define LOAD_MEMORY (64u << 20)         /* while the file itself runs */
#define LOAD_INSTRUCTIONS 200000000ull
#define DEFAULT_MEMORY (32u << 20)
#define DEFAULT_INSTRUCTIONS 5000000ull
#define DEFAULT_INSPECT (2u << 20)

/* ---- states ---- */

/* The shipped packs, so a policy kept anywhere (/etc/dlpgate/...) can
 * require "pii": rules/ beside the binary's folder (a build tree), else
 * the installed copy. Found once; NULL when neither exists. */
#define INSTALLED_RULES "/usr/share/dlpgate/rules"

static char shipped_dir[PATH_MAX];
static pthread_once_t shipped_once = PTHREAD_ONCE_INIT;

/* This program's path, or false. */
static bool own_path(char *exe, size_t size)
{
#ifdef __APPLE__
	uint32_t n = (uint32_t)size;
	return _NSGetExecutablePath(exe, &n) == 0;
#else
	ssize_t k = readlink("/proc/self/exe", exe, size - 1);
	if (k <= 0)
		return false;
	exe[k] = '\0';
	return true;
#endif
}

static void find_shipped_rules(void)
{
	char exe[PATH_MAX], cand[PATH_MAX + 16];
	struct stat st;
	if (own_path(exe, sizeof exe)) {
		char *bin_dir = dirname(exe);
		snprintf(cand, sizeof cand, "%s/../rules", bin_dir);
		if (realpath(cand, shipped_dir) && stat(shipped_dir, &st) == 0 && S_ISDIR(st.st_mode))
			return;
	}
	if (stat(INSTALLED_RULES, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(shipped_dir, sizeof shipped_dir, "%s", INSTALLED_RULES);
	else
		shipped_dir[0] = '\0';
}

static const char *shipped_rules_dir(void)
{
	pthread_once(&shipped_once, find_shipped_rules);
	return shipped_dir[0] ? shipped_dir : NULL;
}

const char *lua_policy_shipped_rules(void)
{
	return shipped_rules_dir();
}

static void lstate_free(lstate_t *ls);

/* A state for lp running its file (detectors resolve to lp's set). */
static lstate_t *lstate_new(lua_policy_t *lp, char *err, size_t n)
{
	lstate_t *ls = calloc(1, sizeof *ls);
	if (!ls) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	ls->lp = lp;
	char a[PATH_MAX], b[PATH_MAX];
	snprintf(a, sizeof a, "%s", lp->path);
	snprintf(b, sizeof b, "%s", dirname(a));
	ls->roots[0] = strdup(b);
	ls->roots[1] = strdup(dirname(b));
	ls->sb.roots[0] = ls->roots[0];
	ls->sb.roots[1] = ls->roots[1];
	ls->sb.n_roots = 2;
	const char *shipped = shipped_rules_dir();
	if (shipped && strcmp(shipped, ls->roots[0]) && strcmp(shipped, ls->roots[1]))
		ls->sb.roots[ls->sb.n_roots++] = shipped;
	ls->sb.sources = &lp->sources;
	bool loading = lp->master == NULL;
	ls->L = sandbox_new(&ls->sb, loading ? LOAD_MEMORY : lp->memory,
			    loading ? LOAD_INSTRUCTIONS : lp->instructions);
	ls->scratch = detect_scratch_new(0);
	if (!ls->L || !ls->scratch || !ls->roots[0] || !ls->roots[1]) {
		snprintf(err, n, "out of memory");
		lstate_free(ls);
		return NULL;
	}
	ldlp_open(ls->L);
	lmsg_open(ls->L);
	/* A worker's state runs the file with the policy's own limits; the
	 * file defines the same functions and finds its detectors compiled. */
	ls->sb.budget = LOAD_INSTRUCTIONS;
	if (!sandbox_run_file(ls->L, lp->path, err, n)) {
		lstate_free(ls);
		return NULL;
	}
	ls->sb.budget = loading ? 0 : lp->instructions;
	return ls;
}

static void lstate_free(lstate_t *ls)
{
	if (!ls)
		return;
	if (ls->L)
		lua_close(ls->L);
	detect_scratch_free(ls->scratch);
	free(ls->results);
	free(ls->pieces);
	free(ls->roots[0]);
	free(ls->roots[1]);
	free(ls);
}

/* ---- settings the policy file declares ---- */

static bool setting_choice(lua_State *L, const char *path, const char *name, const char *a, const char *b,
			   bool *is_b, char *err, size_t n)
{
	lua_getglobal(L, name);
	bool ok = true;
	if (!lua_isnil(L, -1)) {
		const char *s = lua_tostring(L, -1);
		if (s && !strcmp(s, a))
			*is_b = false;
		else if (s && !strcmp(s, b))
			*is_b = true;
		else {
			snprintf(err, n, "%s: %s must be \"%s\" or \"%s\"", path, name, a, b);
			ok = false;
		}
	}
	lua_pop(L, 1);
	return ok;
}

static bool setting_int(lua_State *L, const char *path, const char *table, const char *key, uint64_t lo,
			uint64_t hi, uint64_t *out, char *err, size_t n)
{
	lua_getfield(L, -1, key);
	bool ok = true;
	if (!lua_isnil(L, -1)) {
		int isint;
		lua_Integer v = lua_tointegerx(L, -1, &isint);
		if (!isint || v < (lua_Integer)lo || (uint64_t)v > hi) {
			snprintf(err, n, "%s: %s.%s must be a whole number from %llu to %llu", path, table, key,
				 (unsigned long long)lo, (unsigned long long)hi);
			ok = false;
		} else {
			*out = (uint64_t)v;
		}
	}
	lua_pop(L, 1);
	return ok;
}

/* inspect.documents = {max_total = BYTES, ...}: the limits of doc.h, each
 * optional (doc_limits_default() otherwise). The inspect table is on top. */
static bool read_doc_limits(lua_State *L, const char *path, doc_limits_t *dl, char *err, size_t n)
{
	*dl = doc_limits_default();
	lua_getfield(L, -1, "documents");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return true;
	}
	if (!lua_istable(L, -1)) {
		snprintf(err, n, "%s: inspect.documents must be a table {max_total = BYTES, max_member = BYTES, ...}", path);
		return false;
	}
	uint64_t v[9] = {dl->max_total, dl->max_member, dl->max_ratio, dl->max_members, dl->max_depth,
			 dl->max_xml_depth, dl->max_text, dl->max_ms, dl->max_hold};
	static const char *const keys[9] = {"max_total", "max_member", "max_ratio", "max_members", "max_depth",
					    "max_xml_depth", "max_text", "max_ms", "max_hold"};
	static const uint64_t hi[9] = {1ull << 32, 1ull << 30, 100000, 1000000, 16, 4096, 1ull << 30, 60000, 1ull << 30};
	for (int i = 0; i < 9; i++)
		if (!setting_int(L, path, "inspect.documents", keys[i], 1, hi[i], &v[i], err, n))
			return false;
	lua_pop(L, 1);
	*dl = (doc_limits_t){v[0], v[1], (uint32_t)v[2], (uint32_t)v[3], (uint32_t)v[4], (uint32_t)v[5], v[6], (uint32_t)v[7],
			     v[8]};
	return true;
}

static bool read_settings(lua_policy_t *lp, lua_State *L, bool need_stages, char *err, size_t n)
{
	const char *path = lp->name; /* errors name the file as Lua does: sandbox.h */
	bool monitor = false;
	if (!setting_choice(L, path, "fail", "open", "closed", &lp->fail_closed, err, n) ||
	    !setting_choice(L, path, "mode", "enforce", "monitor", &monitor, err, n))
		return false;
	lp->monitor = monitor;
	uint64_t instr = DEFAULT_INSTRUCTIONS, mem = DEFAULT_MEMORY;
	lua_getglobal(L, "limits");
	if (!lua_isnil(L, -1)) {
		if (!lua_istable(L, -1)) {
			snprintf(err, n, "%s: limits must be a table {instructions = N, memory = BYTES}", path);
			return false;
		}
		if (!setting_int(L, path, "limits", "instructions", 10000, 1000000000, &instr, err, n) ||
		    !setting_int(L, path, "limits", "memory", 1 << 20, 1ull << 32, &mem, err, n))
			return false;
	}
	lua_pop(L, 1);
	lp->instructions = instr;
	lp->memory = (size_t)mem;

	body_limits_t *bl = &lp->base.body_limits;
	lp->base.doc_limits = doc_limits_default();
	uint64_t max_bytes = DEFAULT_INSPECT, ratio = 200, layers = 2, carry = 4096;
	lp->base.oversize = OVERSIZE_PREFIX;
	lua_getglobal(L, "inspect");
	if (!lua_isnil(L, -1)) {
		if (!lua_istable(L, -1)) {
			snprintf(err, n, "%s: inspect must be a table {max_bytes = N, oversize = \"prefix\"|\"pass\"|\"block\"}",
				 path);
			return false;
		}
		if (!setting_int(L, path, "inspect", "max_bytes", 1024, 256u << 20, &max_bytes, err, n) ||
		    !setting_int(L, path, "inspect", "max_ratio", 2, 100000, &ratio, err, n) ||
		    !setting_int(L, path, "inspect", "max_layers", 1, 8, &layers, err, n) ||
		    !setting_int(L, path, "inspect", "carry", 64, 1u << 20, &carry, err, n))
			return false;
		if (!read_doc_limits(L, path, &lp->base.doc_limits, err, n))
			return false;
		lua_getfield(L, -1, "oversize");
		const char *o = lua_tostring(L, -1);
		if (o && !strcmp(o, "stream"))
			lp->base.oversize = OVERSIZE_PREFIX;
		else if (o && !strcmp(o, "pass"))
			lp->base.oversize = OVERSIZE_PASS;
		else if (o && !strcmp(o, "block"))
			lp->base.oversize = OVERSIZE_BLOCK;
		else if (o && strcmp(o, "prefix")) {
			snprintf(err, n, "%s: inspect.oversize must be \"stream\" (or \"prefix\"), \"pass\" or \"block\"", path);
			return false;
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	bl->max_bytes = max_bytes;
	bl->max_ratio = (uint32_t)ratio;
	bl->max_layers = (uint32_t)layers;
	bl->carry = (uint32_t)carry;

	static const char *const stages[] = {"on_flow", "on_request", "on_response", "on_uninspectable", "on_message"};
	bool *has[] = {&lp->has_flow, &lp->has_request, &lp->has_response, &lp->has_uninspectable, &lp->has_message};
	for (int i = 0; i < 5; i++) {
		lua_getglobal(L, stages[i]);
		if (!lua_isnil(L, -1) && !lua_isfunction(L, -1)) {
			snprintf(err, n, "%s: %s is a %s, not a function", path, stages[i], luaL_typename(L, -1));
			return false;
		}
		*has[i] = lua_isfunction(L, -1);
		lua_pop(L, 1);
	}
	if (need_stages && !lp->has_flow && !lp->has_request && !lp->has_response && !lp->has_message) {
		snprintf(err, n, "%s: defines none of on_flow, on_request, on_response: it would decide nothing", path);
		return false;
	}
	return true;
}

#define STATIC_BYPASS_MAX 4096 /* what the extension accepts (BYPASS_MAX_ENTRIES in sources/bypass.h) */

/* static_bypass = {apple_platform = BOOL, except_signing_ids = {...},
 * hosts = {...}}: checked here, once, and kept as the JSON the system
 * extension fetches (sources/bypass.h). Read with raw access only: this
 * runs outside any protected call, so no metamethod may run (or raise). */
static void raw_field(lua_State *L, int t, const char *key)
{
	lua_pushstring(L, key);
	lua_rawget(L, t < 0 ? t - 1 : t);
}

static bool bypass_list(lua_State *L, const char *path, const char *key, bool hosts, json_t *o, char *err, size_t n)
{
	raw_field(L, -1, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return true;
	}
	size_t len = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
	if (!lua_istable(L, -1) || len > STATIC_BYPASS_MAX) {
		snprintf(err, n, "%s: static_bypass.%s must be a list of at most %d strings", path, key, STATIC_BYPASS_MAX);
		return false;
	}
	json_t *a = json_array();
	json_object_set_new(o, key, a);
	for (size_t i = 1; i <= len; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i);
		const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		const char *bad = !s ? "not a string" : hosts ? hostglob_check(s) : NULL;
		json_t *v = s ? json_string(s) : NULL;
		if (!bad && !v)
			bad = "not valid UTF-8";
		lua_pop(L, 1);
		if (bad) {
			json_decref(v);
			snprintf(err, n, "%s: static_bypass.%s[%zu]: %s", path, key, i, bad);
			return false;
		}
		json_array_append_new(a, v);
	}
	lua_pop(L, 1);
	return true;
}

static bool read_static_bypass(lua_policy_t *lp, lua_State *L, char *err, size_t n)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	raw_field(L, -1, "static_bypass");
	lua_remove(L, -2);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return true;
	}
	if (!lua_istable(L, -1)) {
		snprintf(err, n, "%s: static_bypass must be a table {apple_platform=, except_signing_ids=, hosts=}",
			 lp->name);
		return false;
	}
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
		lua_pop(L, 1);
		if (strcmp(k, "apple_platform") && strcmp(k, "except_signing_ids") && strcmp(k, "hosts")) {
			snprintf(err, n, "%s: static_bypass: unknown field \"%s\" (apple_platform, except_signing_ids, hosts)",
				 lp->name, k);
			lua_pop(L, 2);
			return false;
		}
	}
	raw_field(L, -1, "apple_platform");
	bool apple = lua_toboolean(L, -1);
	lua_pop(L, 1);
	json_t *o = json_pack("{s:s, s:b}", "policy_version", lp->base.version_text, "apple_platform", apple);
	bool ok = o && bypass_list(L, lp->name, "except_signing_ids", false, o, err, n) &&
		  bypass_list(L, lp->name, "hosts", true, o, err, n);
	lua_settop(L, 0);
	if (!o)
		snprintf(err, n, "out of memory");
	if (ok) {
		lp->base.static_bypass_json = json_dumps(o, JSON_COMPACT);
		ok = lp->base.static_bypass_json != NULL;
	}
	json_decref(o);
	return ok;
}

/* Reading the settings touches policy tables (limits, inspect, ...) that
 * a policy may have given metatables; an error raised there must become
 * a refused policy, never Lua's panic (which would end the process: on a
 * reload, the running gateway), and a metamethod that loops must meet
 * the instruction limit. So the reading runs as a sandboxed call. */
typedef struct {
	lua_policy_t *lp;
	bool need_stages, ok;
	char *err;
	size_t n;
} settings_call_t;

static int settings_thunk(lua_State *L)
{
	settings_call_t *c = lua_touserdata(L, 1);
	lua_settop(L, 0);
	c->ok = read_settings(c->lp, L, c->need_stages, c->err, c->n);
	return 0;
}

static bool settings_protected(lua_policy_t *lp, bool need_stages, char *err, size_t n)
{
	lua_State *L = lp->master->L;
	settings_call_t c = {lp, need_stages, false, err, n};
	uint64_t budget = lp->master->sb.budget;
	lp->master->sb.budget = LOAD_INSTRUCTIONS;
	sandbox_reset(L);
	lua_pushcfunction(L, settings_thunk);
	lua_pushlightuserdata(L, &c);
	int rc = sandbox_pcall(L, 1, 0);
	if (rc != LUA_OK)
		snprintf(err, n, "%s: reading the policy settings: %s", lp->name,
			 lua_isstring(L, -1) ? lua_tostring(L, -1) : "an error");
	lua_settop(L, 0);
	lp->master->sb.budget = budget;
	return rc == LUA_OK && c.ok;
}

/* ---- stage calls ---- */

static lstate_t *state_for(lua_policy_t *lp, struct worker *w)
{
	if (!w)
		return lp->master;
	return w->index < lp->n_states ? lp->states[w->index] : NULL;
}

static void fail_verdict(lua_policy_t *lp, const char *stage, const char *msg, verdict_kind_t open_kind, verdict_t *v)
{
	v->error = true;
	v->monitor = false;
	v->redact = false;
	v->coach = false;
	v->kind = lp->fail_closed ? VERDICT_BLOCK : open_kind;
	/* "file:line: message" names where; keep that as the rule. */
	const char *p = msg;
	const char *colon = p ? strchr(p, ':') : NULL;
	const char *colon2 = colon ? strchr(colon + 1, ':') : NULL;
	if (colon2 && colon2 - p < (long)sizeof v->rule)
		snprintf(v->rule, sizeof v->rule, "%.*s", (int)(colon2 - p), p);
	else
		snprintf(v->rule, sizeof v->rule, "%s", stage);
	snprintf(v->reason, sizeof v->reason, "policy error, failing %s: %s", lp->fail_closed ? "closed" : "open",
		 msg ? msg : "?");
	log_line_t l;
	/* the kind from the runtime's own messages (sandbox.c words them) */
	const char *kind = !msg ? "error" : strstr(msg, "instruction limit") ? "instruction_limit"
					    : strstr(msg, "not enough memory") ? "memory_limit"
									       : "error";
	metrics_add(stats_policy_errors, 1, stage, kind, NULL);
	log_begin(&l, LOG_WARN, "policy_error");
	log_kv_str(&l, "stage", stage);
	log_kv_str(&l, "fail", lp->fail_closed ? "closed" : "open");
	log_kv_str(&l, "error", msg);
	log_end(&l);
}

/* Why a flow cannot be inspected, for on_uninspectable(flow, why). */
typedef struct {
	uninspectable_t code;
	const char *detail;
} unins_arg_t;

static void call_stage(lua_policy_t *lp, struct worker *w, const char *stage, const flow_facts_t *f,
		       policy_msg_t *m, const unins_arg_t *why, verdict_kind_t default_kind, verdict_t *v)
{
	memset(v, 0, sizeof *v);
	lstate_t *ls = state_for(lp, w);
	if (!ls) {
		fail_verdict(lp, stage, "the policy could not be loaded in this worker", default_kind, v);
		atomic_fetch_add(&lp->errors, 1);
		return;
	}
	lua_State *L = ls->L;
	int top = lua_gettop(L);
	/* The message objects first, kept below the call so they can be
	 * invalidated after it: they point at the relay's buffers. */
	int nargs = 1;
	bool response = m && !m->head->is_request;
	policy_msg_t reqmsg;
	if (m) {
		lmsg_push(L, m, f, !response);
		nargs++;
	}
	if (response) {
		memset(&reqmsg, 0, sizeof reqmsg);
		reqmsg.head = (http_head_t *)m->request;
		if (reqmsg.head)
			lmsg_push_readonly(L, &reqmsg, f);
		else
			lua_pushnil(L);
		nargs++;
	}
	/* raw: this is outside the protected call, where a metamethod on _G
	 * (say, after a stage removed itself) could raise into Lua's panic */
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_pushstring(L, stage);
	lua_rawget(L, -2);
	lua_remove(L, -2);
	for (int i = 1; i < nargs; i++)
		lua_pushvalue(L, top + i);
	lmsg_push_flow(L, f);
	if (why) {
		lua_createtable(L, 0, 2);
		lua_pushstring(L, uninspectable_name(why->code));
		lua_setfield(L, -2, "code");
		lua_pushstring(L, why->detail ? why->detail : "");
		lua_setfield(L, -2, "detail");
		nargs++;
	}
	atomic_fetch_add(&lp->calls, 1);
	sandbox_reset(L);
	int rc = sandbox_pcall(L, nargs, 1);
	if (rc != LUA_OK) {
		if (ls->sb.budget_exceeded)
			atomic_fetch_add(&lp->instruction_limits, 1);
		else if (rc == LUA_ERRMEM || ls->sb.mem_exceeded)
			atomic_fetch_add(&lp->memory_limits, 1);
		atomic_fetch_add(&lp->errors, 1);
		fail_verdict(lp, stage, lua_tostring(L, -1), default_kind, v);
	} else if (lua_isnil(L, -1)) {
		v->kind = default_kind;
		snprintf(v->rule, sizeof v->rule, "%s", stage);
		snprintf(v->reason, sizeof v->reason, "%s returned no verdict", stage);
	} else if (!ldlp_read_verdict(L, -1, v, m)) {
		atomic_fetch_add(&lp->errors, 1);
		fail_verdict(lp, stage, lua_tostring(L, -1), default_kind, v);
	}
	if (lp->monitor && !v->error)
		v->monitor = true;
	for (int i = 1; i < nargs; i++)
		lmsg_invalidate(L, top + i);
	lua_settop(L, top);
	if (response)
		policy_msg_clear(&reqmsg);
}


static void on_flow(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, verdict_t *v)
{
	lua_policy_t *lp = p->impl;
	if (!lp->has_flow) {
		verdict_set(v, VERDICT_INSPECT, "default", "the policy has no on_flow");
		return;
	}
	call_stage(lp, w, "on_flow", f, NULL, NULL, VERDICT_INSPECT, v);
	if (v->kind == VERDICT_PASS && !v->redact)
		v->kind = VERDICT_INSPECT; /* at the flow stage, pass means go on */
	v->coach = false; /* nothing to justify before a message: a coach here is a block */
}

/* A message stage: pass when the policy has none; inspect means pass here. */
static void message_stage(lua_policy_t *lp, bool defined, const char *stage, struct worker *w, const flow_facts_t *f,
			  policy_msg_t *m, verdict_t *v)
{
	if (!defined) {
		verdict_set(v, VERDICT_PASS, "default", "the policy has no %s", stage);
		return;
	}
	call_stage(lp, w, stage, f, m, NULL, VERDICT_PASS, v);
	if (v->kind == VERDICT_INSPECT)
		v->kind = VERDICT_PASS;
}

static void on_request(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, policy_msg_t *m, verdict_t *v)
{
	lua_policy_t *lp = p->impl;
	message_stage(lp, lp->has_request, "on_request", w, f, m, v);
}

static void on_response(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, policy_msg_t *m, verdict_t *v)
{
	lua_policy_t *lp = p->impl;
	message_stage(lp, lp->has_response, "on_response", w, f, m, v);
}

static void destroy(compiled_policy_t *p)
{
	lua_policy_t *lp = p->impl;
	for (unsigned i = 0; i < lp->n_states; i++)
		lstate_free(lp->states[i]);
	free(lp->states);
	lstate_free(lp->master);
	detset_free(lp->detectors);
	free(lp->base.static_bypass_json);
	sandbox_sources_free(&lp->sources);
	free(lp->path);
	free(lp);
}

/* Without the stage, fail decides: a policy that fails closed lets
 * nothing through uninspected, one that fails open lets it pass as before.
 * An answer other than bypass or block (pass, inspect) means bypass: the
 * flow cannot be inspected whatever the policy wishes. */
static void on_uninspectable(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, uninspectable_t why,
			     const char *detail, verdict_t *v)
{
	lua_policy_t *lp = p->impl;
	const char *code = uninspectable_name(why);
	if (!lp->has_uninspectable) {
		verdict_set(v, lp->fail_closed ? VERDICT_BLOCK : VERDICT_BYPASS, "default",
			    "not inspectable (%s): %s; no on_uninspectable, so fail = \"%s\" decides", code, detail,
			    lp->fail_closed ? "closed" : "open");
		if (lp->monitor)
			v->monitor = true;
		return;
	}
	unins_arg_t arg = {why, detail};
	call_stage(lp, w, "on_uninspectable", f, NULL, &arg, VERDICT_BYPASS, v);
	if (v->kind != VERDICT_BLOCK)
		v->kind = VERDICT_BYPASS;
	v->redact = false;
	v->coach = false;
}

/* A WebSocket message: on_message(msg, flow) when the policy has it.
 * Without it, a client's message is judged by on_request and a server's by
 * on_response, as the body of the Upgrade request or of the 101: a policy
 * that scans uploads scans what a page sends over a WebSocket too, and
 * nothing the policy chose to inspect becomes a free channel. */
static void on_message(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, policy_msg_t *m, verdict_t *v)
{
	lua_policy_t *lp = p->impl;
	if (lp->has_message) {
		message_stage(lp, true, "on_message", w, f, m, v);
		return;
	}
	if (!m->websocket->from_server || !m->request) {
		message_stage(lp, lp->has_request, "on_request", w, f, m, v);
		return;
	}
	http_head_t *upgrade = m->head;
	const http_head_t *switched = m->request;
	m->head = (http_head_t *)switched;
	m->request = upgrade;
	message_stage(lp, lp->has_response, "on_response", w, f, m, v);
	m->head = upgrade;
	m->request = switched;
}

static const policy_ops_t lua_ops = {"lua", on_flow, on_request, on_response, on_uninspectable, destroy, on_message};

/* The version names what runs: the policy file and every module it
 * required, as loaded (the snapshot), in load order. */
static void version_of(const sandbox_sources_t *src, char *out, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
		for (size_t i = 0; i < src->n; i++)
			EVP_DigestUpdate(c, src->v[i].data, src->v[i].len);
		EVP_DigestFinal_ex(c, md, &mdlen);
	}
	EVP_MD_CTX_free(c);
	size_t o = (size_t)snprintf(out, n, "sha256:");
	for (unsigned i = 0; i < 8 && i < mdlen && o + 2 < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%02x", md[i]);
}

lua_policy_t *lua_policy_open(const char *path, unsigned n_workers, bool need_stages, char *err, size_t n)
{
	char real[PATH_MAX];
	if (!realpath(path, real)) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return NULL;
	}
	lua_policy_t *lp = calloc(1, sizeof *lp);
	if (!lp) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	lp->path = strdup(real);
	lp->name = lp->path ? strrchr(lp->path, '/') + 1 : NULL;
	lp->detectors = detset_new();
	lp->n_states = n_workers ? n_workers : 1;
	lp->states = calloc(lp->n_states, sizeof *lp->states);
	lp->base.ops = &lua_ops;
	lp->base.impl = lp;
	atomic_init(&lp->base.refs, 1);
	if (!lp->path || !lp->detectors || !lp->states) {
		snprintf(err, n, "out of memory");
		destroy(&lp->base);
		return NULL;
	}
	lp->master = lstate_new(lp, err, n);
	if (!lp->master || !settings_protected(lp, need_stages, err, n)) {
		if (lp->master && !err[0])
			snprintf(err, n, "%s: cannot read the policy settings", lp->name);
		destroy(&lp->base);
		return NULL;
	}
	/* From now on the master calls with the policy's own limits too. */
	lp->master->sb.limit = lp->memory > lp->master->sb.used ? lp->memory : lp->master->sb.used + (1 << 20);
	lp->master->sb.budget = lp->instructions;
	lp->base.read_request_bodies = lp->has_request;
	lp->base.read_response_bodies = lp->has_response;
	version_of(&lp->sources, lp->base.version_text, sizeof lp->base.version_text);
	if (!read_static_bypass(lp, lp->master->L, err, n)) {
		destroy(&lp->base);
		return NULL;
	}
	return lp;
}

compiled_policy_t *lua_policy_load(const char *path, const lua_policy_opts_t *opts, char *err, size_t n)
{
	lua_policy_t *lp = lua_policy_open(path, opts ? opts->n_workers : 1, true, err, n);
	if (!lp)
		return NULL;
	/* Every worker's state now, from the master's snapshot of the files:
	 * a policy that loads is a policy every worker runs. */
	for (unsigned i = 0; i < lp->n_states; i++) {
		lp->states[i] = lstate_new(lp, err, n);
		if (!lp->states[i]) {
			destroy(&lp->base);
			return NULL;
		}
	}
	return &lp->base;
}

void lua_policy_close(lua_policy_t *lp)
{
	destroy(&lp->base);
}

void lua_policy_sources(compiled_policy_t *p, lua_policy_source_fn fn, void *ud)
{
	if (p->ops != &lua_ops)
		return;
	const lua_policy_t *lp = p->impl;
	for (size_t i = 0; i < lp->sources.n; i++)
		fn(ud, lp->sources.v[i].path, lp->sources.v[i].data, lp->sources.v[i].len);
}

void lua_policy_stats(compiled_policy_t *p, lua_policy_stats_t *out)
{
	memset(out, 0, sizeof *out);
	if (p->ops != &lua_ops)
		return;
	lua_policy_t *lp = p->impl;
	out->calls = atomic_load(&lp->calls);
	out->errors = atomic_load(&lp->errors);
	out->instruction_limits = atomic_load(&lp->instruction_limits);
	out->memory_limits = atomic_load(&lp->memory_limits);
}
