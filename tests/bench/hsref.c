/*
 * hsref: the Hyperscan reference for the scan benchmark (not part of
 * dlpgate, not a dependency; built only by tests/bench/scan.sh).
 *
 * It loads the same rule packs dlpgate does, with a stand-in `dlp` module
 * whose detector{} only records each regex, compiles every regex into one
 * Hyperscan block-mode database and scans a file in the same chunk size as
 * `dlpgate scan`, counting matches. Patterns Hyperscan cannot compile
 * exactly (look-behind, back-references) are compiled with
 * HS_FLAG_PREFILTER, Hyperscan's own over-approximation, which is what a
 * Hyperscan-based scanner would confirm afterwards with PCRE; a branch
 * reset group "(?|" (which Hyperscan cannot parse) becomes "(?:", which
 * matches the same text. No
 * validators, context or allowlists run here: this is the fastest the
 * matching alone can be, the number dlpgate is compared with.
 *
 * usage: hsref RULES_DIR FILE PACK...
 */
#include <hs/hs.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK (1u << 20)

static int record_detector(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "regex");
	if (lua_isstring(L, -1)) {
		lua_getfield(L, LUA_REGISTRYINDEX, "hsref_regexes");
		lua_pushvalue(L, -2);
		lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_settop(L, 1);
	return 1;
}

static int open_stub_dlp(lua_State *L)
{
	lua_newtable(L);
	lua_pushcfunction(L, record_detector);
	lua_setfield(L, -2, "detector");
	return 1;
}

static int count_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags, void *ctx)
{
	(void)id, (void)from, (void)to, (void)flags;
	++*(unsigned long long *)ctx;
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: hsref RULES_DIR FILE PACK...\n");
		return 2;
	}
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "hsref_regexes");
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	lua_pushcfunction(L, open_stub_dlp);
	lua_setfield(L, -2, "dlp");
	lua_pop(L, 1);
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/../?.lua", argv[1], argv[1]);
	lua_setfield(L, -2, "path");
	lua_pop(L, 1);
	for (int i = 3; i < argc; i++) {
		lua_getglobal(L, "require");
		lua_pushstring(L, argv[i]);
		if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
			fprintf(stderr, "hsref: %s\n", lua_tostring(L, -1));
			return 2;
		}
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "hsref_regexes");
	unsigned n = (unsigned)lua_rawlen(L, -1);
	const char **exprs = calloc(n, sizeof *exprs);
	unsigned *flags = calloc(n, sizeof *flags), *ids = calloc(n, sizeof *ids);
	unsigned prefilter = 0;
	for (unsigned i = 0; i < n; i++) {
		lua_rawgeti(L, -1, i + 1);
		char *re = strdup(lua_tostring(L, -1));
		lua_pop(L, 1);
		for (char *p = re; (p = strstr(p, "(?|")); p += 3)
			p[2] = ':';
		exprs[i] = re;
		ids[i] = i;
		flags[i] = 0;
		hs_database_t *one;
		hs_compile_error_t *ce;
		if (hs_compile(exprs[i], flags[i], HS_MODE_BLOCK, NULL, &one, &ce) == HS_SUCCESS) {
			hs_free_database(one);
			continue;
		}
		hs_free_compile_error(ce);
		flags[i] = HS_FLAG_PREFILTER;
		prefilter++;
	}
	hs_database_t *db;
	hs_compile_error_t *ce;
	if (hs_compile_multi(exprs, flags, ids, n, HS_MODE_BLOCK, NULL, &db, &ce) != HS_SUCCESS) {
		fprintf(stderr, "hsref: pattern %d: %s\n", ce->expression, ce->message);
		return 2;
	}
	hs_scratch_t *scratch = NULL;
	hs_alloc_scratch(db, &scratch);

	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 2;
	}
	unsigned char *buf = malloc(CHUNK);
	unsigned long long matches = 0, bytes = 0;
	double scan_time = 0;
	size_t got;
	while ((got = fread(buf, 1, CHUNK, f)) > 0) {
		double t0 = now();
		hs_scan(db, (const char *)buf, (unsigned)got, 0, scratch, count_match, &matches);
		scan_time += now() - t0;
		bytes += got;
	}
	fclose(f);
	printf("{\"patterns\": %u, \"prefilter_mode\": %u, \"bytes\": %llu, \"matches\": %llu, \"seconds\": %.3f, "
	       "\"mb_per_s\": %.1f}\n",
	       n, prefilter, bytes, matches, scan_time, bytes / 1e6 / scan_time);
	hs_free_scratch(scratch);
	hs_free_database(db);
	free(buf);
	for (unsigned i = 0; i < n; i++)
		free((char *)exprs[i]);
	free(exprs);
	free(flags);
	free(ids);
	lua_close(L);
	return 0;
}
