/*
 * ldlp: the `dlp` module policies require: verdict constructors that
 * remember the file:line that called them, the detector constructor, host
 * matching and the validators. The Lua half (lua/dlp.lua, embedded at
 * build time) adds helpers on top.
 */
#include "policy/lua_internal.h"

#include "core/hostglob.h"
#include "detect/validate.h"

#include <stdio.h>
#include <string.h>

#define DETECTOR_MT "dlp.detector"
#define VERDICT_MT "dlp.verdict"

extern unsigned char lua_dlp_lua[];
extern unsigned int lua_dlp_lua_len;

/* ---- verdicts ---- */

/* "file:line" of the Lua code that called the current C function: the
 * file by its whole chunk name ("policy.lua", "lib/rules.lua"; see
 * sandbox.h), not short_src, which cuts one over 59 bytes to "...tail",
 * as long as it fits out (v->rule: policy.h) with its line. */
static void caller_position(lua_State *L, char *out, size_t n)
{
	lua_Debug ar;
	if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
		bool whole = ar.source[0] == '@' && strlen(ar.source) + 12 < n; /* the line number fits too */
		snprintf(out, n, "%s:%d", whole ? ar.source + 1 : ar.short_src, ar.currentline);
	} else {
		snprintf(out, n, "?");
	}
}

/* An options table is the last argument when it has monitor/reason keys
 * and is not a detector result table. */
static bool is_opts(lua_State *L, int idx)
{
	if (!lua_istable(L, idx))
		return false;
	lua_getfield(L, idx, "monitor");
	bool m = !lua_isnil(L, -1);
	lua_pop(L, 1);
	return m;
}

static int make_verdict(lua_State *L, const char *kind, int reason_idx, int found_idx, int opts_idx)
{
	char rule[160];
	caller_position(L, rule, sizeof rule);
	lua_createtable(L, 0, 5);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, rule);
	lua_setfield(L, -2, "rule");
	if (reason_idx && !lua_isnoneornil(L, reason_idx)) {
		luaL_checktype(L, reason_idx, LUA_TSTRING);
		lua_pushvalue(L, reason_idx);
		lua_setfield(L, -2, "reason");
	}
	if (found_idx && !lua_isnoneornil(L, found_idx)) {
		luaL_checktype(L, found_idx, LUA_TTABLE);
		lua_pushvalue(L, found_idx);
		lua_setfield(L, -2, "found");
	}
	if (opts_idx && is_opts(L, opts_idx)) {
		lua_getfield(L, opts_idx, "monitor");
		lua_setfield(L, -2, "monitor");
		lua_getfield(L, opts_idx, "reason");
		if (!lua_isnil(L, -1))
			lua_setfield(L, -2, "reason");
		else
			lua_pop(L, 1);
	}
	luaL_setmetatable(L, VERDICT_MT);
	return 1;
}

static int l_pass(lua_State *L) { return make_verdict(L, "pass", 0, 0, 1); }
static int l_inspect(lua_State *L) { return make_verdict(L, "inspect", 0, 0, 1); }

static int l_bypass(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TSTRING);
	return make_verdict(L, "bypass", 1, 0, 2);
}

static int l_block(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TSTRING);
	int found = lua_istable(L, 2) && !is_opts(L, 2) ? 2 : 0;
	return make_verdict(L, "block", 1, found, found ? 3 : 2);
}

static int l_redact(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	return make_verdict(L, "redact", 0, 1, 2);
}

/* dlp.coach(reason, found, {ttl = seconds, within = seconds}): a block the
 * user may get past by giving a justification (http/coach.h) within
 * `within` seconds of seeing the page; the override lasts ttl seconds for
 * the same app, host and rule. */
#define COACH_TTL_DEFAULT 3600
#define COACH_TTL_MAX (7 * 24 * 3600)
#define COACH_WITHIN_DEFAULT 900 /* how long the page's forms can be sent */
#define COACH_WITHIN_MAX 3600

static int l_coach(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TSTRING);
	bool second_is_opts = false;
	if (lua_istable(L, 2)) {
		/* dlp.coach(reason, {ttl = N}): options without a found table */
		lua_getfield(L, 2, "ttl");
		lua_getfield(L, 2, "within");
		second_is_opts = is_opts(L, 2) || !lua_isnil(L, -1) || !lua_isnil(L, -2);
		lua_pop(L, 2);
	}
	int found = lua_istable(L, 2) && !second_is_opts ? 2 : 0;
	int opts = found ? 3 : 2;
	lua_Integer ttl = COACH_TTL_DEFAULT, within = COACH_WITHIN_DEFAULT;
	if (lua_istable(L, opts)) {
		lua_getfield(L, opts, "within");
		if (!lua_isnil(L, -1)) {
			int ok;
			within = lua_tointegerx(L, -1, &ok);
			if (!ok || within < 1 || within > COACH_WITHIN_MAX)
				return luaL_error(L, "dlp.coach: within must be a whole number of seconds from 1 to %d",
						  COACH_WITHIN_MAX);
		}
		lua_pop(L, 1);
		lua_getfield(L, opts, "ttl");
		if (!lua_isnil(L, -1)) {
			int ok;
			ttl = lua_tointegerx(L, -1, &ok);
			if (!ok || ttl < 1 || ttl > COACH_TTL_MAX)
				return luaL_error(L, "dlp.coach: ttl must be a whole number of seconds from 1 to %d",
						  COACH_TTL_MAX);
		}
		lua_pop(L, 1);
	} else if (!lua_isnoneornil(L, opts)) {
		return luaL_error(L, "dlp.coach(reason, found, {ttl = seconds}): the options must be a table");
	}
	make_verdict(L, "coach", 1, found, lua_istable(L, opts) && is_opts(L, opts) ? opts : 0);
	lua_pushinteger(L, ttl);
	lua_setfield(L, -2, "ttl");
	lua_pushinteger(L, within);
	lua_setfield(L, -2, "within");
	return 1;
}

static void set_reason(verdict_t *v, const char *s)
{
	snprintf(v->reason, sizeof v->reason, "%s", s ? s : "");
}

bool ldlp_read_verdict(lua_State *L, int idx, verdict_t *v, policy_msg_t *msg)
{
	idx = lua_absindex(L, idx);
	bool is_verdict = false;
	if (lua_istable(L, idx) && lua_getmetatable(L, idx)) {
		luaL_getmetatable(L, VERDICT_MT);
		is_verdict = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	if (!is_verdict) {
		lua_pushfstring(L, "a stage returned a %s; return a verdict made by dlp.pass/inspect/bypass/block/redact/coach",
				luaL_typename(L, idx));
		return false;
	}
	lua_getfield(L, idx, "kind");
	const char *kind = lua_tostring(L, -1);
	lua_getfield(L, idx, "rule");
	snprintf(v->rule, sizeof v->rule, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
	lua_getfield(L, idx, "reason");
	set_reason(v, lua_tostring(L, -1));
	lua_getfield(L, idx, "monitor");
	v->monitor = lua_toboolean(L, -1);
	v->redact = false;
	v->coach = false;
	if (!strcmp(kind, "pass"))
		v->kind = VERDICT_PASS;
	else if (!strcmp(kind, "inspect"))
		v->kind = VERDICT_INSPECT;
	else if (!strcmp(kind, "bypass"))
		v->kind = VERDICT_BYPASS;
	else if (!strcmp(kind, "block"))
		v->kind = VERDICT_BLOCK;
	else if (!strcmp(kind, "coach")) {
		v->kind = VERDICT_BLOCK;
		v->coach = true;
		lua_getfield(L, idx, "ttl");
		v->coach_ttl_s = (uint32_t)lua_tointeger(L, -1);
		lua_getfield(L, idx, "within");
		v->coach_within_s = (uint32_t)lua_tointeger(L, -1);
		lua_pop(L, 2);
	} else {
		/* redact: pass, masking the findings named in the found table */
		v->kind = VERDICT_PASS;
		v->redact = true;
		lua_getfield(L, idx, "found");
		if (msg && lua_istable(L, -1)) {
			for (uint32_t i = 0; i < msg->n_findings; i++) {
				lua_getfield(L, -1, msg->findings[i].name);
				if (!lua_isnil(L, -1))
					msg->findings[i].redact = true;
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 1);
		if (!v->reason[0])
			set_reason(v, "redacted what the detectors found");
	}
	lua_pop(L, 4);
	return true;
}

/* ---- detectors ---- */

typedef struct {
	const detector_t *d;
} ldetector_t;

const detector_t *ldlp_check_detector(lua_State *L, int idx)
{
	ldetector_t *u = luaL_checkudata(L, idx, DETECTOR_MT);
	return u->d;
}

bool ldlp_is_detector(lua_State *L, int idx)
{
	return luaL_testudata(L, idx, DETECTOR_MT) != NULL;
}

/* Strings of the list at t[key] (NULL-terminated in a userdata the
 * caller keeps on the stack). */
static const char **string_list(lua_State *L, int t, const char *key, size_t *n)
{
	*n = 0;
	lua_getfield(L, t, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	if (lua_isstring(L, -1)) { /* a single string is a list of one */
		const char **v = lua_newuserdatauv(L, sizeof *v, 0);
		v[0] = lua_tostring(L, -2);
		lua_insert(L, -2); /* keep the string alive under the list */
		*n = 1;
		return v;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "dlp.detector: %s must be a string or a list of strings", key);
	size_t len = lua_rawlen(L, -1);
	const char **v = lua_newuserdatauv(L, (len ? len : 1) * sizeof *v, 0);
	for (size_t i = 0; i < len; i++) {
		lua_rawgeti(L, -2, (lua_Integer)i + 1);
		if (!lua_isstring(L, -1))
			luaL_error(L, "dlp.detector: %s[%d] is not a string", key, (int)i + 1);
		v[i] = lua_tostring(L, -1);
		lua_pop(L, 1); /* still referenced by the table */
	}
	*n = len;
	return v;
}

static const char *const spec_fields[] = {"regex", "name", "keywords", "group", "validate", "entropy", "context",
					  "min_count", "allow", "filename", "severity", "confidence", "window",
					  "digits", "mask", "examples", "description", "boundary", "generic", NULL};

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

uint32_t ldlp_opt_uint(lua_State *L, int t, const char *fn, const char *key, uint32_t def, uint32_t max)
{
	lua_getfield(L, t, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return def;
	}
	int ok;
	lua_Integer v = lua_tointegerx(L, -1, &ok);
	if (!ok || v < 0 || (uint64_t)v > max)
		luaL_error(L, "%s: %s must be a whole number from 0 to %u", fn, key, max);
	lua_pop(L, 1);
	return (uint32_t)v;
}

static uint32_t opt_uint(lua_State *L, int t, const char *key, uint32_t def, uint32_t max)
{
	return ldlp_opt_uint(L, t, "dlp.detector", key, def, max);
}

static const char *opt_choice(lua_State *L, int t, const char *key, const char *const *choices, const char *def)
{
	lua_getfield(L, t, key);
	const char *s = lua_isnil(L, -1) ? def : lua_tostring(L, -1);
	if (!s || (choices && !in_list(s, choices)))
		luaL_error(L, "dlp.detector: %s must be one of %s%s%s%s", key, choices[0], choices[1] ? ", " : "",
			   choices[1] ? choices[1] : "", choices[2] ? ", ..." : "");
	lua_pop(L, 1); /* the string stays referenced by the spec table */
	return s;
}

/* window = N (N bytes either side), {before = N, after = M}, or "text"
 * (the keywords gate the whole text, as in gitleaks). */
static void window_field(lua_State *L, detector_spec_t *s)
{
	lua_getfield(L, 1, "window");
	int t = lua_gettop(L);
	if (lua_type(L, t) == LUA_TSTRING) {
		if (strcmp(lua_tostring(L, t), "text"))
			luaL_error(L, "dlp.detector: window must be a number of bytes, {before = N, after = M} or \"text\"");
		s->gate_text = true;
	} else if (lua_istable(L, t)) {
		lua_pushnil(L);
		while (lua_next(L, t)) {
			const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
			if (strcmp(k, "before") && strcmp(k, "after"))
				luaL_error(L, "dlp.detector: window takes before and after (bytes)");
			lua_pop(L, 1);
		}
		s->window_before = opt_uint(L, t, "before", 256, 1 << 20);
		s->window_after = opt_uint(L, t, "after", 256, 1 << 20);
		s->window_set = true;
	} else if (!lua_isnil(L, t)) {
		s->window_before = s->window_after = opt_uint(L, 1, "window", 0, 1 << 20);
		s->window_set = true;
	}
	lua_pop(L, 1);
}

/* One level of a confidence table: {validated = true, context = true,
 * count = N}, or a list of such tables (any one holding is enough), or an
 * empty list (never). */
static void confidence_level(lua_State *L, int t, const char *key, conf_cond_t *out, size_t *n, bool *set)
{
	lua_getfield(L, t, key);
	int lt = lua_gettop(L);
	if (lua_isnil(L, lt)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, lt))
		luaL_error(L, "dlp.detector: confidence.%s must be {validated = true, context = true, count = N} "
			      "or a list of those", key);
	*set = true;
	size_t alts = lua_rawlen(L, lt);
	bool list = alts > 0;
	lua_pushnil(L);
	bool empty = !lua_next(L, lt);
	if (!empty)
		lua_pop(L, 2);
	if (!list && !empty)
		alts = 1;
	if (alts > CONF_MAX_ALT)
		luaL_error(L, "dlp.detector: confidence.%s: at most %d alternatives", key, CONF_MAX_ALT);
	for (size_t a = 0; a < alts; a++) {
		int ct = lt;
		if (list) {
			lua_rawgeti(L, lt, (lua_Integer)a + 1);
			ct = lua_gettop(L);
			if (!lua_istable(L, ct))
				luaL_error(L, "dlp.detector: confidence.%s[%d] is not a table", key, (int)a + 1);
		}
		lua_pushnil(L);
		while (lua_next(L, ct)) {
			const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
			if (strcmp(k, "validated") && strcmp(k, "context") && strcmp(k, "count"))
				luaL_error(L, "dlp.detector: confidence.%s takes validated, context and count", key);
			lua_pop(L, 1);
		}
		lua_getfield(L, ct, "validated");
		out[a].validated = lua_toboolean(L, -1);
		lua_getfield(L, ct, "context");
		out[a].context = lua_toboolean(L, -1);
		lua_pop(L, 2);
		out[a].count = opt_uint(L, ct, "count", 0, 1000000);
		if (list)
			lua_pop(L, 1);
	}
	*n = alts;
	lua_pop(L, 1);
}

/* confidence = "low" | "medium" | "high" (every finding), or a table
 * grading each finding from its evidence (detect/confidence.h). */
static void confidence_field(lua_State *L, detector_spec_t *s)
{
	lua_getfield(L, 1, "confidence");
	int t = lua_gettop(L);
	if (lua_type(L, t) == LUA_TSTRING) {
		s->confidence = lua_tostring(L, t);
		if (confidence_by_name(s->confidence) < 0)
			luaL_error(L, "dlp.detector: confidence must be low, medium, high or a table "
				      "{words = {...}, distance = N, high = {...}, medium = {...}}");
	} else if (lua_istable(L, t)) {
		lua_pushnil(L);
		while (lua_next(L, t)) {
			const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
			if (strcmp(k, "words") && strcmp(k, "distance") && strcmp(k, "high") && strcmp(k, "medium"))
				luaL_error(L, "dlp.detector: confidence takes words, distance, high and medium");
			lua_pop(L, 1);
		}
		/* the list stays on the stack (alive) until the detector is compiled */
		s->conf.words = string_list(L, t, "words", &s->conf.n_words);
		s->conf.distance = opt_uint(L, t, "distance", CONF_DEFAULT_DISTANCE, 100000);
		confidence_level(L, t, "high", s->conf.high, &s->conf.n_high, &s->conf.high_set);
		confidence_level(L, t, "medium", s->conf.medium, &s->conf.n_medium, &s->conf.medium_set);
		if (s->conf.words)
			return;
	} else if (!lua_isnil(L, t)) {
		luaL_error(L, "dlp.detector: confidence must be low, medium, high or a table");
	}
	lua_pop(L, 1);
}

static int l_detector(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	/* Unknown fields are typos until proven otherwise. */
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) == LUA_TSTRING && !in_list(lua_tostring(L, -2), spec_fields))
			return luaL_error(L, "dlp.detector: unknown field '%s' (fields: regex, keywords, group, "
					     "validate, entropy, context, min_count, allow, filename, severity, "
					     "confidence, window, digits, boundary, generic, mask, name, examples, description)",
					  lua_tostring(L, -2));
		lua_pop(L, 1);
	}
	detector_spec_t s = {0};
	lua_rawgeti(L, 1, 1);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_getfield(L, 1, "regex");
	}
	s.regex = lua_tostring(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, 1, "name");
	s.name = lua_tostring(L, -1);
	lua_pop(L, 1);
	s.keywords = string_list(L, 1, "keywords", &s.n_keywords);
	lua_getfield(L, 1, "group");
	if (lua_type(L, -1) == LUA_TSTRING) {
		/* the first capture group that matched something (gitleaks' rules) */
		if (strcmp(lua_tostring(L, -1), "first"))
			return luaL_error(L, "dlp.detector: group must be a group number or \"first\"");
		s.group_first = true;
		lua_pop(L, 1);
	} else {
		lua_pop(L, 1);
		s.group = opt_uint(L, 1, "group", 0, DET_MAX_GROUPS - 1);
	}
	lua_getfield(L, 1, "validate");
	if (!lua_isnil(L, -1)) {
		int v = lua_isstring(L, -1) ? validate_by_name(lua_tostring(L, -1)) : -1;
		if (v < 0)
			return luaL_error(L, "dlp.detector: validate must be one of %s", validate_names());
		s.validate = (validator_t)v;
	}
	lua_pop(L, 1);
	lua_getfield(L, 1, "entropy");
	if (!lua_isnil(L, -1)) {
		int ok;
		s.min_entropy = lua_tonumberx(L, -1, &ok);
		if (!ok || s.min_entropy < 0 || s.min_entropy > 8)
			return luaL_error(L, "dlp.detector: entropy must be a number of bits per byte, 0 to 8");
	}
	lua_pop(L, 1);
	lua_getfield(L, 1, "context");
	if (!lua_isnil(L, -1)) {
		int ct = lua_gettop(L);
		if (!lua_istable(L, ct))
			return luaL_error(L, "dlp.detector: context must be {words = {...}, distance = N}");
		s.context_words = string_list(L, ct, "words", &s.n_context);
		if (!s.n_context)
			return luaL_error(L, "dlp.detector: context needs words");
		s.context_distance = opt_uint(L, ct, "distance", 100, 100000);
	}
	s.min_count = opt_uint(L, 1, "min_count", 1, 1000000);
	lua_getfield(L, 1, "boundary");
	if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
		return luaL_error(L, "dlp.detector: boundary must be true or false");
	s.boundary = lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, 1, "generic");
	if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
		return luaL_error(L, "dlp.detector: generic must be true or false");
	s.generic = lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, 1, "allow");
	if (!lua_isnil(L, -1)) {
		int at = lua_gettop(L);
		if (!lua_istable(L, at))
			return luaL_error(L, "dlp.detector: allow must be {regexes = {...}, stopwords = {...}, "
					     "filenames = {...}, target = \"secret\"|\"match\"|\"line\", condition = "
					     "\"or\"|\"and\"} or a list of those");
		/* one allowlist, or a list of them */
		size_t groups = lua_rawlen(L, at);
		bool list = groups > 0;
		if (!list)
			groups = 1;
		if (groups > DETECTOR_MAX_ALLOW)
			return luaL_error(L, "dlp.detector: at most %d allowlists", DETECTOR_MAX_ALLOW);
		for (size_t g = 0; g < groups; g++) {
			int gt = at;
			if (list) {
				lua_rawgeti(L, at, (lua_Integer)g + 1);
				gt = lua_gettop(L);
				if (!lua_istable(L, gt))
					return luaL_error(L, "dlp.detector: allow[%d] is not a table", (int)g + 1);
			}
			allow_spec_t *a = &s.allow[s.n_allow++];
			a->regexes = string_list(L, gt, "regexes", &a->n_regexes);
			a->stopwords = string_list(L, gt, "stopwords", &a->n_stopwords);
			a->filenames = string_list(L, gt, "filenames", &a->n_filenames);
			static const char *const targets[] = {"secret", "match", "line", NULL};
			const char *tg = opt_choice(L, gt, "target", targets, "secret");
			a->target = !strcmp(tg, "match") ? ALLOW_MATCH : !strcmp(tg, "line") ? ALLOW_LINE : ALLOW_SECRET;
			static const char *const conds[] = {"or", "and", NULL};
			a->all = !strcmp(opt_choice(L, gt, "condition", conds, "or"), "and");
		}
	}
	lua_getfield(L, 1, "filename");
	s.filename = lua_tostring(L, -1);
	lua_pop(L, 1);
	static const char *const sev[] = {"low", "medium", "high", "critical", NULL};
	s.severity = opt_choice(L, 1, "severity", sev, "medium");
	confidence_field(L, &s);
	window_field(L, &s);
	s.digits = opt_uint(L, 1, "digits", 0, 64);
	s.keep_first = 4;
	s.keep_last = 4;
	lua_getfield(L, 1, "mask");
	if (lua_istable(L, -1)) {
		s.keep_first = (uint8_t)opt_uint(L, lua_gettop(L), "keep_first", 4, 16);
		s.keep_last = (uint8_t)opt_uint(L, lua_gettop(L), "keep_last", 4, 16);
	}
	return ldlp_push_compiled(L, &s, 1, "dlp.detector");
}

int ldlp_push_compiled(lua_State *L, const detector_spec_t *s, int spec_idx, const char *who)
{
	spec_idx = lua_absindex(L, spec_idx);
	char err[300];
	detector_t *d = detector_compile(s, err, sizeof err);
	if (!d)
		return luaL_error(L, "%s: %s", who, err);
	lstate_t *ls = lstate_of(L);
	const detector_t *shared = detset_add(ls->lp->detectors, d);
	if (!shared)
		return luaL_error(L, "%s: out of memory", who);
	ldetector_t *u = lua_newuserdatauv(L, sizeof *u, 1);
	u->d = shared;
	lua_pushvalue(L, spec_idx); /* the spec: its examples and description stay reachable */
	lua_setiuservalue(L, -2, 1);
	luaL_setmetatable(L, DETECTOR_MT);
	return 1;
}

static int detector_index(lua_State *L)
{
	ldetector_t *u = luaL_checkudata(L, 1, DETECTOR_MT);
	const char *k = luaL_checkstring(L, 2);
	if (!strcmp(k, "name"))
		lua_pushstring(L, detector_name(u->d));
	else if (!strcmp(k, "severity"))
		lua_pushstring(L, detector_severity(u->d));
	else if (!strcmp(k, "has_keywords"))
		lua_pushboolean(L, detector_has_keywords(u->d));
	else {
		lua_getiuservalue(L, 1, 1);
		lua_getfield(L, -1, k); /* examples, description, regex... */
	}
	return 1;
}

static int detector_tostring(lua_State *L)
{
	ldetector_t *u = luaL_checkudata(L, 1, DETECTOR_MT);
	lua_pushfstring(L, "dlp.detector(%s)", detector_name(u->d));
	return 1;
}

/* ---- helpers ---- */

static int l_host_matches(lua_State *L)
{
	const char *host = luaL_optstring(L, 1, NULL);
	if (!host) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (lua_isstring(L, 2)) {
		lua_pushboolean(L, hostglob_match(lua_tostring(L, 2), host));
		return 1;
	}
	luaL_checktype(L, 2, LUA_TTABLE);
	size_t n = lua_rawlen(L, 2);
	for (size_t i = 1; i <= n; i++) {
		lua_rawgeti(L, 2, (lua_Integer)i);
		const char *pat = lua_tostring(L, -1);
		bool hit = pat && hostglob_match(pat, host);
		lua_pop(L, 1);
		if (hit) {
			lua_pushboolean(L, 1);
			return 1;
		}
	}
	lua_pushboolean(L, 0);
	return 1;
}

static int l_validate(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	validator_t v = (validator_t)lua_tointeger(L, lua_upvalueindex(1));
	lua_pushboolean(L, validate_run(v, s, n));
	return 1;
}

static int l_entropy(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	lua_pushnumber(L, validate_entropy(s, n));
	return 1;
}

static int open_dlp(lua_State *L)
{
	static const luaL_Reg fns[] = {{"pass", l_pass},         {"inspect", l_inspect},
				       {"bypass", l_bypass},     {"block", l_block},
				       {"redact", l_redact},     {"coach", l_coach},
				       {"detector", l_detector}, {"edm", ledm_detector},
				       {"host_matches", l_host_matches}, {"entropy", l_entropy},
				       {NULL, NULL}};
	luaL_newlib(L, fns);
	static const struct {
		const char *name;
		validator_t v;
	} vals[] = {{"luhn", VALIDATE_LUHN}, {"iban", VALIDATE_IBAN}, {"us_ssn", VALIDATE_US_SSN}, {"aba", VALIDATE_ABA}};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		lua_pushinteger(L, vals[i].v);
		lua_pushcclosure(L, l_validate, 1);
		lua_setfield(L, -2, vals[i].name);
	}
	/* dlp.validate.NAME(s) for every validator, the identity numbers too */
	lua_createtable(L, 0, VALIDATE_COUNT);
	for (int v = 1; v < VALIDATE_COUNT; v++) {
		lua_pushinteger(L, v);
		lua_pushcclosure(L, l_validate, 1);
		lua_setfield(L, -2, validate_name((validator_t)v));
	}
	lua_setfield(L, -2, "validate");
	/* The Lua half takes the C table and returns the module. */
	if (luaL_loadbufferx(L, (const char *)lua_dlp_lua, lua_dlp_lua_len, "=dlp.lua", "t") != LUA_OK)
		return lua_error(L);
	lua_insert(L, -2);
	lua_call(L, 1, 1);
	return 1;
}

void ldlp_open(lua_State *L)
{
	luaL_newmetatable(L, DETECTOR_MT);
	lua_pushcfunction(L, detector_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, detector_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "dlp.detector");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	luaL_newmetatable(L, VERDICT_MT);
	lua_pushliteral(L, "dlp.verdict");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	/* require "dlp" finds it already loaded */
	lua_getfield(L, LUA_REGISTRYINDEX, "dlp.loaded");
	lua_pushcfunction(L, open_dlp);
	lua_call(L, 0, 1);
	lua_setfield(L, -2, "dlp");
	lua_pop(L, 1);
}
