/*
 * libFuzzer: the gitleaks importer over outside configurations (the JSON
 * python's tomllib makes of a TOML file). Whatever the configuration, the
 * pack written must be Lua that does nothing but build its detectors: run
 * with a stub `require "dlp"` and nothing else in reach, it must return a
 * table of exactly the detectors the importer counted, having called
 * dlp.detector once for each. Text of the configuration that escaped its
 * string or its comment (a title with a line break, an id with a quote)
 * would show up as code that fails this. Each detector's name and regex
 * must also be, byte for byte, its rule's id and regex (the last rule of
 * that id): a string the pack wrote wrongly would change what it finds.
 */
#include "policy/gitleaks.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int detector_calls;
static const json_t *config;

/* The regex of the last rule with this id, or NULL. */
static const char *rule_regex(const char *id)
{
	const char *regex = NULL;
	size_t i;
	const json_t *r;
	json_array_foreach(json_object_get(config, "rules"), i, r) {
		const char *rid = json_string_value(json_object_get(r, "id"));
		if (rid && !strcmp(rid, id))
			regex = json_string_value(json_object_get(r, "regex"));
	}
	return regex;
}

static int stub_detector(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	detector_calls++;
	lua_getfield(L, 1, "name");
	lua_getfield(L, 1, "regex");
	const char *name = lua_tostring(L, -2), *regex = lua_tostring(L, -1);
	const char *want = name ? rule_regex(name) : NULL;
	if (!name || (want ? !regex || strcmp(regex, want) : regex != NULL)) {
		fprintf(stderr, "detector %s: regex written as %s, the rule has %s\n", name ? name : "(no name)",
			regex ? regex : "none", want ? want : "none");
		abort();
	}
	lua_pop(L, 2);
	lua_pushvalue(L, 1);
	return 1;
}

static int stub_require(lua_State *L)
{
	if (strcmp(luaL_checkstring(L, 1), "dlp"))
		return luaL_error(L, "the pack requires something else");
	lua_newtable(L);
	lua_pushcfunction(L, stub_detector);
	lua_setfield(L, -2, "detector");
	return 1;
}

static void too_long(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	luaL_error(L, "the pack runs too long");
}

static void check_pack(const char *pack, size_t len, int written)
{
	lua_State *L = luaL_newstate();
	if (!L)
		return;
	detector_calls = 0;
	if (luaL_loadbufferx(L, pack, len, "=pack", "t") != LUA_OK) {
		fprintf(stderr, "pack does not load: %s\n", lua_tostring(L, -1));
		abort();
	}
	lua_newtable(L); /* the only environment: require */
	lua_pushcfunction(L, stub_require);
	lua_setfield(L, -2, "require");
	lua_setupvalue(L, -2, 1);
	lua_sethook(L, too_long, LUA_MASKCOUNT, 10000000);
	if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
		fprintf(stderr, "pack fails: %s\n", lua_tostring(L, -1));
		abort();
	}
	int entries = 0;
	if (lua_istable(L, -1)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			entries++;
			lua_pop(L, 1);
		}
	}
	if (!lua_istable(L, -1) || entries != written || detector_calls != written) {
		fprintf(stderr, "pack has %d entries and %d detector calls for %d written\n", entries, detector_calls,
			written);
		abort();
	}
	lua_close(L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *cfg = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (!cfg)
		return 0;
	char *pack = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&pack, &len);
	FILE *notes = fopen("/dev/null", "w");
	config = cfg;
	if (out && notes) {
		gitleaks_stats_t st;
		char err[256];
		int rc = gitleaks_to_lua(cfg, "fuzz.toml", out, notes, &st, err, sizeof err);
		fclose(out);
		out = NULL;
		if (rc == 0)
			check_pack(pack, len, st.written);
	}
	if (out)
		fclose(out);
	if (notes)
		fclose(notes);
	free(pack);
	json_decref(cfg);
	return 0;
}
