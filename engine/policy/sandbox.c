/*
 * sandbox: see sandbox.h. lua_getextraspace() holds a pointer to the
 * sandbox_t, so every C function reaches its limits without a registry
 * lookup.
 */
#include "policy/sandbox.h"

#include "core/bytebuf.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

sandbox_t *sandbox_of(lua_State *L)
{
	return *(sandbox_t **)lua_getextraspace(L);
}

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	sandbox_t *sb = ud;
	size_t old = ptr ? osize : 0;
	if (nsize == 0) {
		free(ptr);
		sb->used -= old;
		return NULL;
	}
	if (nsize > old && sb->used - old + nsize > sb->limit) {
		sb->mem_exceeded = true;
		return NULL;
	}
	void *p = realloc(ptr, nsize);
	if (p)
		sb->used = sb->used - old + nsize;
	return p;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	sandbox_t *sb = sandbox_of(L);
	sb->instructions += 1000;
	if (sb->budget && sb->instructions > sb->budget) {
		sb->budget_exceeded = true;
		char msg[96];
		snprintf(msg, sizeof msg, "instruction limit exceeded (%llu instructions; limits.instructions)",
			 (unsigned long long)sb->budget);
		luaL_error(L, "%s", msg);
	}
}

void sandbox_reset(lua_State *L)
{
	sandbox_t *sb = sandbox_of(L);
	sb->instructions = 0;
	sb->budget_exceeded = false;
	sb->mem_exceeded = false;
}

/* ---- base library, trimmed ---- */

static int safe_load(lua_State *L)
{
	/* load(chunk [, chunkname [, mode [, env]]]): text only, whatever mode says. */
	int n = lua_gettop(L);
	if (n >= 3 && !lua_isnil(L, 3)) {
		const char *mode = luaL_checkstring(L, 3);
		if (strchr(mode, 'b'))
			return luaL_error(L, "load: binary chunks are not allowed in a policy");
	}
	if (n < 3)
		lua_settop(L, 3);
	lua_pushliteral(L, "t");
	lua_replace(L, 3);
	if (n == 4 && lua_isnil(L, 4))
		lua_settop(L, 3); /* load(..., nil) would mean "no environment" */
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static int safe_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");
	if (strcmp(opt, "collect") && strcmp(opt, "count") && strcmp(opt, "step"))
		return luaL_error(L, "collectgarbage(\"%s\") is not allowed in a policy", opt);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static int safe_print(lua_State *L)
{
	/* Policies print while being written; the gateway's log keeps it at
	 * debug level so a chatty policy cannot flood it. */
	if (!log_enabled(LOG_DEBUG))
		return 0;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	int n = lua_gettop(L);
	for (int i = 1; i <= n; i++) {
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
		if (i < n)
			luaL_addchar(&b, '\t');
	}
	luaL_pushresult(&b);
	log_msg(LOG_DEBUG, "policy_print", "%s", lua_tostring(L, -1));
	return 0;
}

/* ---- string patterns with a subject limit ---- */

static bool plain_find(lua_State *L)
{
	/* string.find(s, p, init, plain): plain searches are linear */
	return lua_toboolean(L, 4);
}

static bool pattern_is_literal(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strchr("^$*+?.([%-", p[i]))
			return false;
	return true;
}

static int guarded(lua_State *L, const char *fn, bool check_plain)
{
	size_t sl = 0, pl = 0;
	luaL_checklstring(L, 1, &sl);
	const char *p = luaL_checklstring(L, 2, &pl);
	if (sl > SANDBOX_PATTERN_MAX && !(check_plain && plain_find(L)) && !pattern_is_literal(p, pl))
		return luaL_error(L,
				  "string.%s with a pattern on %d bytes (over %d) could backtrack for a very long "
				  "time; use a detector (req:scan) or plain find for large texts",
				  fn, (int)sl, SANDBOX_PATTERN_MAX);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static int g_find(lua_State *L) { return guarded(L, "find", true); }
static int g_match(lua_State *L) { return guarded(L, "match", false); }
static int g_gmatch(lua_State *L) { return guarded(L, "gmatch", false); }
static int g_gsub(lua_State *L) { return guarded(L, "gsub", false); }

static void wrap_string(lua_State *L)
{
	static const struct {
		const char *name;
		lua_CFunction fn;
	} w[] = {{"find", g_find}, {"match", g_match}, {"gmatch", g_gmatch}, {"gsub", g_gsub}};
	lua_getglobal(L, "string");
	for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
		lua_getfield(L, -1, w[i].name);
		lua_pushcclosure(L, w[i].fn, 1);
		lua_setfield(L, -2, w[i].name);
	}
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
}

/* ---- require ---- */

static bool module_name_ok(const char *s)
{
	if (!*s || *s == '.')
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-') || (p[0] == '.' && p[1] == '.'))
			return false;
	return true;
}

void sandbox_sources_free(sandbox_sources_t *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].path);
		free(s->v[i].data);
	}
	free(s->v);
	memset(s, 0, sizeof *s);
}

/* path's part after root and a '/', or NULL if path is not under root. */
static const char *under_root(const char *root, const char *path)
{
	size_t n = strlen(root);
	while (n && root[n - 1] == '/')
		n--; /* "/" is the root of everything */
	if (strncmp(path, root, n) || path[n] != '/' || !path[n + 1])
		return NULL;
	return path + n + 1;
}

bool sandbox_chunk_name(const sandbox_t *sb, const char *path, char *out, size_t n)
{
	for (size_t i = 0; i < sb->n_roots; i++) {
		const char *rel = under_root(sb->roots[i], path);
		if (!rel)
			continue;
		int k = snprintf(out, n, "%s%s", i == 1 ? "../" : "", rel);
		if (k > 0 && (size_t)k < n)
			return true;
		break;
	}
	if (n)
		out[0] = '\0';
	return false;
}

static const sandbox_source_t *source_read(sandbox_sources_t *s, const char *path, const char *name, lua_State *L)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].path, path))
			return &s->v[i];
	FILE *f = fopen(path, "rb");
	if (!f) {
		lua_pushfstring(L, "cannot open %s: %s", name, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)SANDBOX_SOURCE_MAX) {
		fclose(f);
		lua_pushfstring(L, "%s: not a regular file of at most %d MiB", name, SANDBOX_SOURCE_MAX >> 20);
		return NULL;
	}
	char *data = malloc((size_t)st.st_size + 1);
	size_t len = data ? fread(data, 1, (size_t)st.st_size, f) : 0;
	bool bad = !data || ferror(f);
	fclose(f);
	if (bad) {
		free(data);
		lua_pushfstring(L, "cannot read %s", name);
		return NULL;
	}
	if (!bytebuf_grow_array(&s->v, sizeof *s->v, s->n, &s->cap, 8)) {
		free(data);
		lua_pushliteral(L, "out of memory");
		return NULL;
	}
	s->v[s->n] = (sandbox_source_t){strdup(path), data, len};
	if (!s->v[s->n].path) {
		free(s->v[s->n].data);
		lua_pushliteral(L, "out of memory");
		return NULL;
	}
	return &s->v[s->n++];
}

static bool source_known(const sandbox_t *sb, const char *path)
{
	for (size_t i = 0; i < sb->sources->n; i++)
		if (!strcmp(sb->sources->v[i].path, path))
			return true;
	return false;
}

/* A file of the policy as a text chunk named "@" and its chunk name, from
 * the policy's snapshot. A first line starting with '#' is skipped as
 * loadfile does (its newline kept, so line numbers stay right). */
static int load_source(lua_State *L, const char *path)
{
	sandbox_t *sb = sandbox_of(L);
	char name[1024];
	if (!sandbox_chunk_name(sb, path, name, sizeof name)) {
		/* not under a root (callers give only paths that are): its file
		 * name alone, still no path of the machine */
		const char *slash = strrchr(path, '/');
		snprintf(name, sizeof name, "%s", slash ? slash + 1 : path);
	}
	const sandbox_source_t *src = source_read(sb->sources, path, name, L);
	if (!src)
		return LUA_ERRFILE;
	const char *data = src->data;
	size_t len = src->len;
	if (len && data[0] == '#') {
		const char *nl = memchr(data, '\n', len);
		len -= nl ? (size_t)(nl - data) : len;
		data = nl ? nl : data + src->len;
	}
	lua_pushfstring(L, "@%s", name);
	int rc = luaL_loadbufferx(L, data, len, lua_tostring(L, -1), "t");
	lua_remove(L, -2);
	return rc;
}

static int sandbox_require(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, "dlp.loaded");
	lua_getfield(L, -1, name);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 1);
	if (!module_name_ok(name))
		return luaL_error(L, "require \"%s\": module names are letters, digits, '_', '-' and dots", name);
	sandbox_t *sb = sandbox_of(L);
	char rel[512], path[4096];
	snprintf(rel, sizeof rel, "%s", name);
	for (char *p = rel; *p; p++)
		if (*p == '.')
			*p = '/';
	for (size_t i = 0; i < sb->n_roots; i++) {
		snprintf(path, sizeof path, "%s/%s.lua", sb->roots[i], rel);
		struct stat st;
		if (!source_known(sb, path) && (stat(path, &st) != 0 || !S_ISREG(st.st_mode)))
			continue;
		if (load_source(L, path) != LUA_OK)
			return lua_error(L);
		lua_pushstring(L, name);
		lua_call(L, 1, 1);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			lua_pushboolean(L, 1);
		}
		lua_pushvalue(L, -1);
		lua_setfield(L, -3, name); /* dlp.loaded[name] */
		return 1;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	luaL_where(L, 1); /* the require's file:line */
	luaL_addvalue(&b);
	/* where it looked, by chunk names: no path of the machine */
	lua_pushfstring(L, "module \"%s\" not found: no %s.lua beside the policy, no ../%s.lua", name, rel, rel);
	luaL_addvalue(&b);
	if (sb->n_roots > 2) {
		lua_pushfstring(L, ", no %s.lua among the packs shipped with dlpgate", rel);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	return lua_error(L);
}

lua_State *sandbox_new(sandbox_t *sb, size_t mem_limit, uint64_t instr_budget)
{
	sb->used = 0;
	sb->limit = mem_limit;
	sb->budget = instr_budget;
	sb->instructions = 0;
	lua_State *L = lua_newstate(limited_alloc, sb);
	if (!L)
		return NULL;
	*(sandbox_t **)lua_getextraspace(L) = sb;
	static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
					{LUA_STRLIBNAME, luaopen_string},
					{LUA_TABLIBNAME, luaopen_table},
					{LUA_MATHLIBNAME, luaopen_math},
					{LUA_UTF8LIBNAME, luaopen_utf8},
					{NULL, NULL}};
	for (const luaL_Reg *l = libs; l->func; l++) {
		luaL_requiref(L, l->name, l->func, 1);
		lua_pop(L, 1);
	}
	/* The originals the safe versions call, kept out of reach by name
	 * only: removing them from _G below. */
	lua_getglobal(L, "load");
	lua_setfield(L, LUA_REGISTRYINDEX, "dlp.load");
	lua_getglobal(L, "collectgarbage");
	lua_setfield(L, LUA_REGISTRYINDEX, "dlp.collectgarbage");
	static const char *const removed[] = {"dofile", "loadfile", "load", "collectgarbage", "print"};
	for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++) {
		lua_pushnil(L);
		lua_setglobal(L, removed[i]);
	}
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "dlp.loaded");
	wrap_string(L);
	lua_register(L, "require", sandbox_require);
	lua_register(L, "print", safe_print);
	/* safe_load and safe_collectgarbage call the originals through the
	 * registry (see below): re-registered as closures over them. */
	lua_getfield(L, LUA_REGISTRYINDEX, "dlp.load");
	lua_pushcclosure(L, safe_load, 1);
	lua_setglobal(L, "load");
	lua_getfield(L, LUA_REGISTRYINDEX, "dlp.collectgarbage");
	lua_pushcclosure(L, safe_collectgarbage, 1);
	lua_setglobal(L, "collectgarbage");
	lua_sethook(L, count_hook, LUA_MASKCOUNT, 1000);
	return L;
}

static int msgh(lua_State *L)
{
	/* Keep the message (it has file:line); add nothing that could hold a
	 * body's content. */
	if (!lua_isstring(L, 1)) {
		const char *tn = luaL_typename(L, 1);
		lua_pushfstring(L, "error object is a %s value", tn);
	}
	return 1;
}

int sandbox_pcall(lua_State *L, int nargs, int nresults)
{
	int base = lua_gettop(L) - nargs;
	lua_pushcfunction(L, msgh);
	lua_insert(L, base);
	int rc = lua_pcall(L, nargs, nresults, base);
	lua_remove(L, base);
	if (rc == LUA_ERRMEM || sandbox_of(L)->mem_exceeded)
		lua_gc(L, LUA_GCCOLLECT); /* give the next call its memory back */
	return rc;
}

bool sandbox_run_file(lua_State *L, const char *path, char *err, size_t n)
{
	sandbox_reset(L);
	if (load_source(L, path) != LUA_OK) {
		snprintf(err, n, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return false;
	}
	if (sandbox_pcall(L, 0, 1) != LUA_OK) {
		snprintf(err, n, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return false;
	}
	/* What the file returns (a pack returns its detectors) is kept. */
	lua_setfield(L, LUA_REGISTRYINDEX, "dlp.chunk_result");
	return true;
}
