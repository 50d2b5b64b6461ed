/*
 * ledm: dlp.edm{...}, an exact data match detector (detect/edm.h).
 *
 *   dlp.edm{ pack = "edm.pack", primary = "account", corroborate = {"email", "name"},
 *            distance = 300, min_corroborate = 1, name =, severity =, confidence =, mask =,
 *            examples =, description = }
 *
 * The pack is a file in the policy's folder (a relative path without
 * ".."): a policy reads no other file. It is read once per process and
 * shared by every worker's state. Everything from Lua is read before the
 * pack is opened, so a Lua error cannot leak the pack or the query.
 */
#include "policy/lua_internal.h"

#include "detect/edm.h"

#include <stdio.h>
#include <string.h>

static const char *const fields[] = {"pack", "primary", "corroborate", "distance", "min_corroborate", "name",
				     "severity", "confidence", "mask", "examples", "description", NULL};

static const char *opt_str(lua_State *L, const char *key, bool required)
{
	lua_getfield(L, 1, key);
	const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	if ((required && !s) || (!s && !lua_isnil(L, -1)))
		luaL_error(L, "dlp.edm: %s must be a string", key);
	lua_pop(L, 1); /* the string stays referenced by the spec table */
	return s;
}

int ledm_detector(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
		bool known = false;
		for (const char *const *f = fields; *f; f++)
			known |= !strcmp(k, *f);
		if (!known)
			return luaL_error(L, "dlp.edm: unknown field '%s' (fields: pack, primary, corroborate, distance, "
					     "min_corroborate, name, severity, confidence, mask, examples, description)", k);
		lua_pop(L, 1);
	}
	const char *pack = opt_str(L, "pack", true);
	const char *primary = opt_str(L, "primary", true);
	const char *corr[EDM_MAX_COLUMNS];
	size_t n_corr = 0;
	lua_getfield(L, 1, "corroborate");
	if (lua_type(L, -1) == LUA_TSTRING) {
		corr[n_corr++] = lua_tostring(L, -1);
	} else if (lua_istable(L, -1)) {
		size_t n = lua_rawlen(L, -1);
		if (n > EDM_MAX_COLUMNS)
			return luaL_error(L, "dlp.edm: at most %d corroborating columns", EDM_MAX_COLUMNS);
		for (size_t i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i);
			if (lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, "dlp.edm: corroborate[%d] is not a column name", (int)i);
			corr[n_corr++] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
	} else if (!lua_isnil(L, -1)) {
		return luaL_error(L, "dlp.edm: corroborate must be a column name or a list of them");
	}
	lua_pop(L, 1);
	uint32_t distance = ldlp_opt_uint(L, 1, "dlp.edm", "distance", 300, EDM_MAX_DISTANCE);
	uint32_t min_corr = ldlp_opt_uint(L, 1, "dlp.edm", "min_corroborate", n_corr ? 1 : 0, EDM_MAX_COLUMNS);
	if (min_corr > n_corr)
		return luaL_error(L, "dlp.edm: min_corroborate = %u but only %d corroborating columns", min_corr,
				  (int)n_corr);
	detector_spec_t s = {0};
	s.name = opt_str(L, "name", false);
	if (!s.name)
		s.name = "edm";
	s.severity = opt_str(L, "severity", false);
	s.confidence = opt_str(L, "confidence", false);
	if (s.severity && strcmp(s.severity, "low") && strcmp(s.severity, "medium") && strcmp(s.severity, "high") &&
	    strcmp(s.severity, "critical"))
		return luaL_error(L, "dlp.edm: severity must be low, medium, high or critical");
	s.keep_first = 0;
	s.keep_last = 2;
	lua_getfield(L, 1, "mask");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "keep_first");
		lua_getfield(L, -2, "keep_last");
		lua_Integer kf = lua_tointeger(L, -2), kl = lua_tointeger(L, -1);
		if (kf < 0 || kf > 16 || kl < 0 || kl > 16)
			return luaL_error(L, "dlp.edm: mask keeps 0 to 16 characters at each end");
		s.keep_first = (uint8_t)kf;
		s.keep_last = (uint8_t)kl;
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	if (pack[0] == '/' || strstr(pack, "..") || strlen(pack) > 255)
		return luaL_error(L, "dlp.edm: pack must be a file in the policy's folder (a relative path without ..)");

	/* From here on no Lua error until the detector owns the query. */
	lstate_t *ls = lstate_of(L);
	char path[4096], err[300];
	snprintf(path, sizeof path, "%s/%s", ls->roots[0], pack);
	edm_pack_t *p = edm_pack_open(path, err, sizeof err);
	if (!p)
		return luaL_error(L, "dlp.edm: %s", err);
	edm_query_t *q = edm_query_new(p, primary, corr, n_corr, distance, min_corr, err, sizeof err);
	edm_pack_unref(p); /* the query holds its own reference */
	if (!q)
		return luaL_error(L, "dlp.edm: %s: %s", pack, err);
	det_matcher_t m = edm_matcher(q);
	s.matcher = &m;
	return ldlp_push_compiled(L, &s, 1, "dlp.edm");
}
