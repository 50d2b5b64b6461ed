/*
 * ltest: the policy author's tools. `dlpgate check` (load + lint + the
 * detectors' own examples), `dlpgate test` (cases through the same
 * inspect path the proxy uses) and `dlpgate scan` (detectors over files).
 */
#include "policy/lua_internal.h"

#include "detect/views.h"
#include "http/inspect.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- finding the detectors a file defines ---- */

typedef struct {
	char name[128];
	const detector_t *d;
	int spec_ref; /* registry ref to the detector object (for its examples) */
} named_t;

typedef struct {
	named_t *v;
	size_t n, cap;
} named_list_t;

static void named_add(lua_State *L, named_list_t *l, const char *name, int udata_idx)
{
	const detector_t *d = ldlp_check_detector(L, udata_idx);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].d == d)
			return;
	if (!bytebuf_grow_array(&l->v, sizeof *l->v, l->n, &l->cap, 32))
		return;
	named_t *e = &l->v[l->n++];
	snprintf(e->name, sizeof e->name, "%s", name);
	e->d = d;
	lua_pushvalue(L, udata_idx);
	e->spec_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A detector's name: the one its spec gives, else where it was found (a
 * table key or a local's name). Read raw: the spec is the author's table
 * and may carry metamethods. */
static void detector_label(lua_State *L, int udata_idx, const char *where, char *out, size_t n)
{
	udata_idx = lua_absindex(L, udata_idx);
	const char *name = NULL;
	if (lua_getiuservalue(L, udata_idx, 1) == LUA_TTABLE) {
		lua_pushliteral(L, "name");
		if (lua_rawget(L, -2) == LUA_TSTRING)
			name = lua_tostring(L, -1);
		snprintf(out, n, "%s", name ? name : where);
		lua_pop(L, 2);
		return;
	}
	lua_pop(L, 1);
	snprintf(out, n, "%s", where);
}

#define COLLECT_DEPTH 8

typedef struct {
	named_list_t *out;
	int visited; /* absolute index of a table of the tables and functions seen */
} walk_t;

static bool first_visit(lua_State *L, walk_t *w, int idx)
{
	idx = lua_absindex(L, idx);
	lua_pushvalue(L, idx);
	bool seen = lua_rawget(L, w->visited) != LUA_TNIL;
	lua_pop(L, 1);
	if (!seen) {
		lua_pushvalue(L, idx);
		lua_pushboolean(L, 1);
		lua_rawset(L, w->visited);
	}
	return !seen;
}

static void walk_value(lua_State *L, walk_t *w, int idx, const char *where, int depth);

/* The standard libraries hold no detectors: not walked. */
static bool library_name(const char *k)
{
	static const char *const libs[] = {"_G", "string", "table", "math", "utf8", "coroutine", "os", "io", "dlp", NULL};
	for (const char *const *p = libs; *p; p++)
		if (!strcmp(k, *p))
			return true;
	return false;
}

static void walk_table(lua_State *L, walk_t *w, int t, int depth)
{
	t = lua_absindex(L, t);
	lua_pushnil(L);
	while (lua_next(L, t)) {
		if (lua_type(L, -2) == LUA_TSTRING && !library_name(lua_tostring(L, -2)))
			walk_value(L, w, -1, lua_tostring(L, -2), depth + 1);
		lua_pop(L, 1);
	}
}

/* Is the value at idx a module the policy required (a detector pack)? */
static bool is_module(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	bool found = false;
	if (lua_getfield(L, LUA_REGISTRYINDEX, "dlp.loaded") == LUA_TTABLE) {
		lua_pushnil(L);
		while (!found && lua_next(L, -2)) {
			found = lua_rawequal(L, -1, idx);
			lua_pop(L, 1);
		}
		if (found)
			lua_pop(L, 1); /* the key lua_next left */
	}
	lua_pop(L, 1);
	return found;
}

#define DUMP_MAX (1u << 20)

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	bytebuf_t *b = ud;
	if (b->len + n > DUMP_MAX)
		return 1; /* a function this large: its dump stops, the pack counts whole */
	bytebuf_append(b, p, n);
	return 0;
}

/* A pack a function captures: the detectors whose keys its code names
 * (pii.credit_card compiles to the constant "credit_card"), or, when it
 * names none (it passes the pack whole, req:scan(pii)), all of them. The
 * function's stripped bytecode holds its constants and its inner
 * functions', and no local names. */
static void walk_module(lua_State *L, walk_t *w, int f, int module, int depth)
{
	f = lua_absindex(L, f);
	module = lua_absindex(L, module);
	bytebuf_t code;
	bytebuf_init(&code, 0);
	lua_pushvalue(L, f);
	bool whole = lua_dump(L, dump_writer, &code, 1) != 0;
	lua_pop(L, 1);
	size_t named = 0;
	for (int pass = 0; pass < 2 && !named; pass++) {
		lua_pushnil(L);
		while (lua_next(L, module)) {
			const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
			if (k && (pass == 1 || (!whole && memmem(code.data, code.len, k, strlen(k))))) {
				named++;
				walk_value(L, w, -1, k, depth + 1);
			}
			lua_pop(L, 1);
		}
	}
	bytebuf_free(&code);
}

/* A Lua function's upvalues: the locals of the policy it uses (detectors,
 * tables of them, required packs, helper functions). Its _ENV is the
 * globals, walked once on their own. */
static void walk_function(lua_State *L, walk_t *w, int f, int depth)
{
	f = lua_absindex(L, f);
	if (lua_iscfunction(L, f))
		return;
	const char *up;
	for (int i = 1; (up = lua_getupvalue(L, f, i)); i++) {
		if (lua_istable(L, -1) && is_module(L, -1))
			walk_module(L, w, f, -1, depth);
		else if (strcmp(up, "_ENV"))
			walk_value(L, w, -1, up[0] ? up : "?", depth + 1);
		lua_pop(L, 1);
	}
}

static void walk_value(lua_State *L, walk_t *w, int idx, const char *where, int depth)
{
	idx = lua_absindex(L, idx);
	if (ldlp_is_detector(L, idx)) {
		char label[128];
		detector_label(L, idx, where, label, sizeof label);
		named_add(L, w->out, label, idx);
	} else if (depth < COLLECT_DEPTH && lua_istable(L, idx) && first_visit(L, w, idx)) {
		walk_table(L, w, idx, depth);
	} else if (depth < COLLECT_DEPTH && lua_isfunction(L, idx) && first_visit(L, w, idx)) {
		walk_function(L, w, idx, depth);
	}
}

/* The detectors a file stands for: those a pack returns (a pack, or a
 * selection from packs); else those its policy uses: reachable from its
 * globals (the stages among them) and through the locals its functions
 * capture, which reach into the packs it requires. A pack required and
 * never used is not counted. */
static void collect_all(lua_State *L, named_list_t *out)
{
	lua_newtable(L);
	walk_t w = {out, lua_gettop(L)};
	lua_getfield(L, LUA_REGISTRYINDEX, "dlp.chunk_result");
	if (lua_istable(L, -1))
		walk_table(L, &w, -1, 0);
	lua_pop(L, 1);
	if (!out->n) {
		lua_pushglobaltable(L);
		first_visit(L, &w, -1);
		walk_table(L, &w, -1, 0);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void named_free(lua_State *L, named_list_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		luaL_unref(L, LUA_REGISTRYINDEX, l->v[i].spec_ref);
	free(l->v);
}

static uint32_t count_in(lua_policy_t *lp, lstate_t *ls, const detector_t *d, const char *s, size_t n)
{
	det_result_t *r = malloc(sizeof *r);
	if (!r)
		return 0;
	detset_scan(lp->detectors, ls->scratch, (const uint8_t *)s, n, NULL, &d, 1, r);
	uint32_t c = r->count >= detector_min_count(d) ? r->count : 0;
	free(r);
	return c;
}

/* ---- check ---- */

static int check_examples(lua_policy_t *lp, named_t *e, FILE *out)
{
	lua_State *L = lp->master->L;
	int problems = 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, e->spec_ref);
	lua_getfield(L, -1, "examples");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 2);
		return 0;
	}
	static const char *const kinds[] = {"match", "nomatch"};
	for (int k = 0; k < 2; k++) {
		lua_getfield(L, -1, kinds[k]);
		size_t n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
		for (size_t i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i);
			size_t len;
			const char *s = lua_tolstring(L, -1, &len);
			if (s) {
				uint32_t c = count_in(lp, lp->master, e->d, s, len);
				if ((k == 0) != (c > 0)) {
					fprintf(out, "error: detector %s: example %s[%zu] \"%.60s\" %s\n", e->name, kinds[k], i, s,
						k == 0 ? "is not found" : "is found, and should not be");
					problems++;
				}
			}
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
	return problems;
}

int lua_policy_check(const char *path, FILE *out)
{
	char err[1024] = "";
	lua_policy_t *lp = lua_policy_open(path, 1, false, err, sizeof err);
	if (!lp) {
		fprintf(out, "error: %s\n", err);
		return 1;
	}
	named_list_t l = {0};
	collect_all(lp->master->L, &l);
	int problems = 0, unanchored = 0, with_examples = 0, text_gated = 0;
	for (size_t i = 0; i < l.n; i++) {
		text_gated += detector_gates_text(l.v[i].d);
		if (detector_has_regex(l.v[i].d) && !detector_is_anchored(l.v[i].d)) {
			fprintf(out,
				"warning: detector %s has no keywords or digits: its regex runs over every body (add "
				"keywords that occur with what it finds, or the digits every match holds)\n",
				l.v[i].name);
			unanchored++;
		}
		lua_rawgeti(lp->master->L, LUA_REGISTRYINDEX, l.v[i].spec_ref);
		lua_getfield(lp->master->L, -1, "examples");
		with_examples += lua_istable(lp->master->L, -1);
		lua_pop(lp->master->L, 2);
		problems += check_examples(lp, &l.v[i], out);
	}
	if (text_gated)
		fprintf(out,
			"note: %d detector%s with window = \"text\" run%s over every body that holds a keyword (no "
			"window around the keywords could be proven to find the same)\n",
			text_gated, text_gated == 1 ? "" : "s", text_gated == 1 ? "s" : "");
	bool policy = lp->has_flow || lp->has_request || lp->has_response || lp->has_message;
	fprintf(out, "%s: %s: %zu detectors (%d without keywords or digits, %d with examples), %s%s%s%s%s%s\n",
		problems ? "FAIL" : "ok", path, l.n, unanchored, with_examples, policy ? "stages:" : "a detector pack",
		lp->has_flow ? " on_flow" : "", lp->has_request ? " on_request" : "", lp->has_response ? " on_response" : "",
		lp->has_uninspectable ? " on_uninspectable" : "", lp->has_message ? " on_message" : "");
	named_free(lp->master->L, &l);
	lua_policy_close(lp);
	return problems;
}

/* ---- test ---- */

static const char *field_str(lua_State *L, int t, const char *k)
{
	lua_getfield(L, t, k);
	const char *s = lua_tostring(L, -1);
	lua_pop(L, 1); /* strings stay alive in the table */
	return s;
}

typedef struct {
	char host[256];
	char sni[256];
	char app[5][256]; /* path, signing_id, team_id, anchor, cmdline */
	flow_facts_t facts;
} test_flow_t;

/* flow.app = {pid=, uid=, path=, cmdline=, signing_id=, team_id=, anchor=} of a case */
static void read_test_app(lua_State *L, int ft, test_flow_t *tf)
{
	static const char *const keys[] = {"path", "signing_id", "team_id", "anchor", "cmdline"};
	lua_getfield(L, ft, "app");
	int at = lua_gettop(L);
	if (lua_istable(L, at)) {
		const char **dst[] = {&tf->facts.app.path, &tf->facts.app.signing_id, &tf->facts.app.team_id,
				      &tf->facts.app.anchor, &tf->facts.app.cmdline};
		for (int i = 0; i < 5; i++) {
			const char *s = field_str(L, at, keys[i]);
			if (s) {
				snprintf(tf->app[i], sizeof tf->app[i], "%s", s);
				*dst[i] = tf->app[i];
			}
		}
		lua_getfield(L, at, "pid");
		tf->facts.app.pid = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 4242;
		lua_getfield(L, at, "uid");
		tf->facts.app.uid = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 501;
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
}

/* Builds a head from {method=, url=, status=, headers=} at index t; the
 * body's raw bytes (gzip'd if encoding = "gzip") go to raw. */
static bool build_message(lua_State *L, int t, bool request, test_flow_t *tf, http_head_t *h, bytebuf_t *raw,
			  char *why, size_t wn)
{
	http_head_init(h, request, 1 << 20, 1000);
	h->major = 1;
	h->minor = 1;
	size_t blen = 0;
	lua_getfield(L, t, "body");
	const char *body = lua_tolstring(L, -1, &blen);
	lua_pop(L, 1);
	const char *enc = field_str(L, t, "encoding");
	if (body && enc && !strcmp(enc, "gzip")) {
		if (!body_gzip(body, blen, raw)) {
			snprintf(why, wn, "cannot gzip the test body");
			return false;
		}
		http_head_add(h, "Content-Encoding", "gzip");
	} else if (body) {
		bytebuf_append(raw, body, blen);
	}
	if (request) {
		const char *method = field_str(L, t, "method");
		const char *url = field_str(L, t, "url");
		if (!url)
			url = "https://example.test/";
		method = method ? method : (body ? "POST" : "GET");
		h->method_off = (uint32_t)h->arena.len;
		h->method_len = (uint32_t)strlen(method);
		bytebuf_append(&h->arena, method, h->method_len);
		const char *hs = strstr(url, "://");
		const char *auth = hs ? hs + 3 : url;
		const char *path = strchr(auth, '/');
		size_t alen = path ? (size_t)(path - auth) : strlen(auth);
		if (!tf->host[0]) {
			const char *colon = memchr(auth, ':', alen);
			snprintf(tf->host, sizeof tf->host, "%.*s", (int)(colon ? colon - auth : (long)alen), auth);
		}
		if (hs && !strncmp(url, "https", 5))
			tf->facts.tls = true;
		http_head_set_target(h, path ? path : "/", path ? strlen(path) : 1);
		char hostv[300];
		snprintf(hostv, sizeof hostv, "%.*s", (int)alen, auth);
		http_head_add(h, "Host", hostv);
	} else {
		lua_getfield(L, t, "status");
		h->status = (uint16_t)(lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 200);
		lua_pop(L, 1);
		h->reason_off = (uint32_t)h->arena.len;
		h->reason_len = 2;
		bytebuf_append(&h->arena, "OK", 2);
	}
	lua_getfield(L, t, "headers");
	if (lua_istable(L, -1)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
				const char *name = lua_tostring(L, -2);
				if (!strcasecmp(name, "host"))
					http_head_remove(h, "host");
				http_head_add(h, name, lua_tostring(L, -1));
			}
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	if (raw->len && !http_head_get(h, "content-length", NULL)) {
		char n[24];
		snprintf(n, sizeof n, "%zu", raw->len);
		http_head_add(h, "Content-Length", n);
		h->has_length = true;
		h->content_length = raw->len;
	}
	return true;
}

static const char *kind_name(const verdict_t *v)
{
	return verdict_label(v);
}

/* A policy that raised an error or hit a limit (instructions, memory, a
 * detector's match limit) decided by its fail mode, not by its code: the
 * case fails, whatever the verdict, unless it says it expects that with
 * expect.error = true. flow_error is the flow stage's, when the message
 * stages ran after it. */
static bool failure_expected(lua_State *L, int e, const verdict_t *v, const verdict_t *flow_error,
			     const policy_msg_t *m, char *why, size_t wn)
{
	lua_getfield(L, e, "error");
	bool expected = lua_toboolean(L, -1), said = !lua_isnil(L, -1);
	lua_pop(L, 1);
	const verdict_t *failed = flow_error ? flow_error : v->error ? v : NULL;
	const char *limited = NULL;
	for (uint32_t k = 0; m && k < m->n_findings && !limited; k++)
		if (m->findings[k].timed_out)
			limited = m->findings[k].name;
	if (!expected && (failed || limited)) {
		if (failed)
			snprintf(why, wn, "the policy failed (%s)%s", failed->reason,
				 said ? "" : "; a case that means to test that says expect = { error = true }");
		else
			snprintf(why, wn, "detector %s hit its match limit: the result is incomplete%s", limited,
				 said ? "" : "; a case that means to test that says expect = { error = true }");
		return false;
	}
	if (expected && !failed && !limited) {
		snprintf(why, wn, "expected a policy error or limit, got none");
		return false;
	}
	return true;
}

/* Compares what happened with case.expect (at index e); why gets the
 * first difference. */
static bool expect_ok(lua_State *L, int e, const verdict_t *v, const verdict_t *flow_error, const policy_msg_t *m,
		      const uint8_t *out, size_t out_len, char *why, size_t wn)
{
	if (!failure_expected(L, e, v, flow_error, m, why, wn))
		return false;
	const char *want = field_str(L, e, "verdict");
	if (want && strcmp(want, kind_name(v))) {
		snprintf(why, wn, "expected %s, got %s (rule %s: %s)", want, kind_name(v), v->rule, v->reason);
		return false;
	}
	lua_getfield(L, e, "monitor");
	if (!lua_isnil(L, -1) && lua_toboolean(L, -1) != v->monitor) {
		snprintf(why, wn, "expected monitor = %s", lua_toboolean(L, -1) ? "true" : "false");
		lua_pop(L, 1);
		return false;
	}
	lua_pop(L, 1);
	const char *rule = field_str(L, e, "rule");
	if (rule && !strstr(v->rule, rule)) {
		snprintf(why, wn, "expected rule containing \"%s\", got %s", rule, v->rule);
		return false;
	}
	const char *reason = field_str(L, e, "reason");
	if (reason && !strstr(v->reason, reason)) {
		snprintf(why, wn, "expected reason containing \"%s\", got \"%s\"", reason, v->reason);
		return false;
	}
	lua_getfield(L, e, "detectors");
	if (lua_istable(L, -1)) {
		size_t n = lua_rawlen(L, -1);
		for (size_t i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i);
			const char *name = lua_tostring(L, -1);
			bool found = false;
			for (uint32_t k = 0; m && name && k < m->n_findings; k++)
				found |= !strcmp(m->findings[k].name, name) && m->findings[k].count > 0;
			lua_pop(L, 1);
			if (!found) {
				snprintf(why, wn, "expected detector %s to find something; it did not", name ? name : "?");
				lua_pop(L, 1);
				return false;
			}
		}
	}
	lua_pop(L, 1);
	/* confidence = {detector = "high", ...}: the finding's confidence */
	lua_getfield(L, e, "confidence");
	if (lua_istable(L, -1)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
			const char *level = lua_tostring(L, -1);
			const char *got = NULL;
			for (uint32_t k = 0; m && name && k < m->n_findings; k++)
				if (!strcmp(m->findings[k].name, name) && m->findings[k].count > 0)
					got = m->findings[k].confidence;
			if (!name || !level || !got || strcmp(got, level)) {
				snprintf(why, wn, "expected detector %s to find something at confidence %s; %s%s",
					 name ? name : "?", level ? level : "?", got ? "it is " : "it found nothing",
					 got ? got : "");
				lua_pop(L, 3);
				return false;
			}
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	lua_getfield(L, e, "clean");
	if (lua_toboolean(L, -1)) {
		for (uint32_t k = 0; m && k < m->n_findings; k++)
			if (m->findings[k].count) {
				snprintf(why, wn, "expected no findings, detector %s found %u", m->findings[k].name,
					 m->findings[k].count);
				lua_pop(L, 1);
				return false;
			}
	}
	lua_pop(L, 1);
	size_t bl;
	lua_getfield(L, e, "body");
	const char *body = lua_tolstring(L, -1, &bl);
	if (body && (bl != out_len || memcmp(body, out, bl))) {
		snprintf(why, wn, "forwarded body differs: got \"%.*s\"", (int)(out_len > 80 ? 80 : out_len), (const char *)out);
		lua_pop(L, 1);
		return false;
	}
	lua_pop(L, 1);
	return true;
}

/* websocket = {data = "...", from = "client"|"server", type = "text"|"binary"}:
 * one message after the 101 that answered the case's request (a GET by
 * default), to on_message; expect.body is the message as forwarded. */
static bool run_websocket(lua_policy_t *lp, lua_State *L, int wsi, int ex, test_flow_t *tf, http_head_t *req,
			  const verdict_t *flow_error, char *why, size_t wn)
{
	size_t len = 0;
	lua_getfield(L, wsi, "data");
	const char *data = lua_tolstring(L, -1, &len);
	const char *from = field_str(L, wsi, "from"), *type = field_str(L, wsi, "type");
	if (!data || (from && strcmp(from, "client") && strcmp(from, "server")) ||
	    (type && strcmp(type, "text") && strcmp(type, "binary"))) {
		snprintf(why, wn, "websocket = {data = STRING, from = \"client\"|\"server\", type = \"text\"|\"binary\"}");
		lua_pop(L, 1);
		return false;
	}
	policy_ws_t info = {.from_server = from && !strcmp(from, "server"), .binary = type && !strcmp(type, "binary")};
	bytebuf_t msg;
	bytebuf_init(&msg, 0);
	http_head_t switched;
	http_head_init(&switched, false, 1 << 20, 1000);
	switched.major = switched.minor = 1;
	switched.status = 101;
	bool ok = bytebuf_reserve(&msg, len + 1) && bytebuf_append(&msg, data, len) && http_head_add(&switched, "Upgrade", "websocket") &&
		  http_head_add(&switched, "Connection", "Upgrade");
	lua_pop(L, 1);
	if (!ok) {
		snprintf(why, wn, "out of memory");
	} else {
		inspect_result_t r;
		inspect_ws_message(&lp->base, NULL, &tf->facts, req, &switched, &info, (uint8_t *)msg.data, msg.len, &r);
		ok = expect_ok(L, ex, &r.verdict, flow_error, &r.msg, r.out, r.out_len, why, wn);
		inspect_result_free(&r);
	}
	http_head_free(&switched);
	bytebuf_free(&msg);
	return ok;
}

static bool run_case(lua_policy_t *lp, lua_State *L, int c, char *why, size_t wn)
{
	test_flow_t tf;
	memset(&tf, 0, sizeof tf);
	tf.facts.source = FLOW_SOURCE_EXPLICIT;
	tf.facts.client = "127.0.0.1";
	tf.facts.port = 443;
	lua_getfield(L, c, "flow");
	int ft = lua_gettop(L);
	if (lua_istable(L, ft)) {
		const char *s;
		if ((s = field_str(L, ft, "host")))
			snprintf(tf.host, sizeof tf.host, "%s", s);
		if ((s = field_str(L, ft, "sni")))
			snprintf(tf.sni, sizeof tf.sni, "%s", s);
		lua_getfield(L, ft, "dst_port");
		if (lua_isinteger(L, -1))
			tf.facts.port = (uint16_t)lua_tointeger(L, -1);
		lua_pop(L, 1);
		lua_getfield(L, ft, "tls");
		tf.facts.tls = lua_isnil(L, -1) ? true : lua_toboolean(L, -1);
		lua_pop(L, 1);
		read_test_app(L, ft, &tf);
	}
	lua_getfield(L, c, "request");
	int rq = lua_gettop(L);
	lua_getfield(L, c, "response");
	int rs = lua_gettop(L);
	lua_getfield(L, c, "websocket");
	int wsi = lua_gettop(L);
	lua_getfield(L, c, "expect");
	int ex = lua_gettop(L);
	if (!lua_istable(L, ex)) {
		snprintf(why, wn, "the case has no expect table");
		return false;
	}
	http_head_t req, res;
	bool have_req = lua_istable(L, rq), have_res = lua_istable(L, rs), have_ws = lua_istable(L, wsi);
	bytebuf_t raw;
	bytebuf_init(&raw, 0);
	memset(&req, 0, sizeof req);
	memset(&res, 0, sizeof res);
	if (have_ws && !have_req) {
		lua_newtable(L); /* the Upgrade request: a GET to the default URL */
		rq = lua_gettop(L);
		have_req = true;
	}
	if (have_req && !build_message(L, rq, true, &tf, &req, &raw, why, wn))
		return false;
	tf.facts.host = tf.host[0] ? tf.host : "example.test";
	tf.facts.sni = tf.sni[0] ? tf.sni : (tf.facts.tls ? tf.facts.host : NULL);

	verdict_t v;
	bool ok;
	lp->base.ops->on_flow(&lp->base, NULL, &tf.facts, &v);
	verdict_t flow = v;
	const verdict_t *flow_error = v.error ? &flow : NULL;
	/* uninspectable = "alpn" (...): the flow the policy chose to inspect
	 * cannot be; expect.flow is then what on_uninspectable decided */
	const char *unins = field_str(L, c, "uninspectable");
	if (unins) {
		int code = uninspectable_by_name(unins);
		if (code < 0) {
			snprintf(why, wn, "uninspectable = \"%s\": use pinned, alpn, not-http, encoding, upgrade or document", unins);
			bytebuf_free(&raw);
			http_head_free(&req);
			return false;
		}
		if (v.kind == VERDICT_INSPECT)
			lp->base.ops->on_uninspectable(&lp->base, NULL, &tf.facts, (uninspectable_t)code,
						       "a test case says so", &v);
	}
	const char *want_flow = field_str(L, ex, "flow");
	if (want_flow && strcmp(want_flow, verdict_name(v.kind))) {
		snprintf(why, wn, "expected the flow to %s, got %s (rule %s: %s)", want_flow, verdict_name(v.kind), v.rule,
			 v.reason);
		ok = false;
	} else if ((!have_req && !have_res && !have_ws) || ((v.kind == VERDICT_BYPASS || v.kind == VERDICT_BLOCK) && !v.monitor)) {
		ok = expect_ok(L, ex, &v, flow_error, NULL, NULL, 0, why, wn);
	} else {
		inspect_result_t r;
		if (have_ws) {
			ok = run_websocket(lp, L, wsi, ex, &tf, &req, flow_error, why, wn);
		} else if (have_res) {
			bytebuf_t rraw;
			bytebuf_init(&rraw, 0);
			if (!build_message(L, rs, false, &tf, &res, &rraw, why, wn)) {
				bytebuf_free(&raw);
				http_head_free(&req);
				return false;
			}
			inspect_message(&lp->base, NULL, &tf.facts, &res, have_req ? &req : NULL, (uint8_t *)rraw.data,
					rraw.len, true, &r);
			ok = expect_ok(L, ex, &r.verdict, flow_error, &r.msg, r.out, r.out_len, why, wn);
			inspect_result_free(&r);
			bytebuf_free(&rraw);
			http_head_free(&res);
		} else {
			inspect_message(&lp->base, NULL, &tf.facts, &req, NULL, (uint8_t *)raw.data, raw.len, true, &r);
			ok = expect_ok(L, ex, &r.verdict, flow_error, &r.msg, r.out, r.out_len, why, wn);
			inspect_result_free(&r);
		}
	}
	bytebuf_free(&raw);
	http_head_free(&req);
	return ok;
}

typedef struct {
	lua_policy_t *lp;
	char *why;
	size_t why_len;
	bool ok;
	char name[160];
} case_call_t;

/* (lightuserdata case_call_t, case table): one case, protected. */
static int case_thunk(lua_State *L)
{
	case_call_t *cc = lua_touserdata(L, 1);
	const char *name = field_str(L, 2, "name");
	snprintf(cc->name, sizeof cc->name, "%s", name ? name : "");
	cc->ok = run_case(cc->lp, L, 2, cc->why, cc->why_len);
	return 0;
}

int lua_policy_test(const char *policy_path, char *const *files, int n_files, FILE *out, int *passed_out)
{
	char err[1024] = "";
	lua_policy_t *lp = lua_policy_open(policy_path, 1, true, err, sizeof err);
	if (!lp) {
		fprintf(out, "error: %s\n", err);
		return -1;
	}
	lua_State *L = lp->master->L;
	int passed = 0, failed = 0;
	for (int fi = 0; fi < n_files; fi++) {
		int top = lua_gettop(L);
		sandbox_reset(L);
		lp->master->sb.budget = 0; /* a test file is data, not a stage */
		if (luaL_loadfilex(L, files[fi], "t") != LUA_OK || sandbox_pcall(L, 0, 1) != LUA_OK) {
			fprintf(out, "FAIL  %s: %s\n", files[fi], lua_tostring(L, -1));
			failed++;
			lua_settop(L, top);
			lp->master->sb.budget = lp->instructions;
			continue;
		}
		lp->master->sb.budget = lp->instructions;
		if (!lua_istable(L, -1)) {
			fprintf(out, "FAIL  %s: a test file returns a list of cases\n", files[fi]);
			failed++;
			lua_settop(L, top);
			continue;
		}
		size_t n = lua_rawlen(L, -1);
		for (size_t i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i);
			int c = lua_gettop(L);
			char label[256], why[512] = "";
			case_call_t cc = {lp, why, sizeof why, false, ""};
			bool ok = false;
			if (!lua_istable(L, c)) {
				snprintf(why, sizeof why, "a case is a table");
			} else {
				/* test files are data from outside: their tables may have
				 * metamethods, so the case is read and run as a sandboxed call */
				lua_pushcfunction(L, case_thunk);
				lua_pushlightuserdata(L, &cc);
				lua_pushvalue(L, c);
				sandbox_reset(L);
				if (sandbox_pcall(L, 2, 0) != LUA_OK)
					snprintf(why, sizeof why, "reading the case: %s", lua_tostring(L, -1));
				ok = cc.ok;
			}
			snprintf(label, sizeof label, "%s #%zu%s%s", files[fi], i, cc.name[0] ? " " : "", cc.name);
			fprintf(out, "%s %s%s%s\n", ok ? "ok  " : "FAIL", label, ok ? "" : ": ", ok ? "" : why);
			ok ? passed++ : failed++;
			lua_settop(L, c - 1);
		}
		lua_settop(L, top);
	}
	fprintf(out, "%d passed, %d failed (%s)\n", passed, failed, policy_path);
	lua_policy_close(lp);
	if (passed_out)
		*passed_out = passed;
	return failed;
}

/* ---- scan ---- */

/* One line per finding; a span that several detectors found is one line
 * naming them all in "detectors" ("detector" is the first of them). */
static void emit_record(FILE *out, const char *file, const named_t *const *by, size_t n_by, uint64_t offset,
			uint32_t len, const char *sample, const char *view, const char *confidence)
{
	const named_t *e = by[0];
	json_t *o = json_object();
	json_t *fs = json_string(file); /* NULL for a name that is not UTF-8 */
	json_object_set_new(o, "file", fs ? fs : json_string("(name not UTF-8)"));
	json_object_set_new(o, "detector", json_string(e->name));
	if (n_by > 1) {
		json_t *all = json_array();
		for (size_t i = 0; i < n_by; i++)
			json_array_append_new(all, json_string(by[i]->name));
		json_object_set_new(o, "detectors", all);
	}
	json_object_set_new(o, "severity", json_string(detector_severity(e->d)));
	json_object_set_new(o, "offset", json_integer((json_int_t)offset));
	json_object_set_new(o, "length", json_integer(len));
	json_object_set_new(o, "sample", json_string(sample));
	if (view) /* found in a decoded view: offset and length are of the encoded bytes */
		json_object_set_new(o, "view", json_string(view));
	json_object_set_new(o, "confidence", json_string(confidence));
	char *s = json_dumps(o, JSON_COMPACT);
	if (s)
		fprintf(out, "%s\n", s);
	free(s);
	json_decref(o);
}

/* A finding of one chunk, before they are put in order: its span in the
 * chunk, and what the sample is made of (the decoded text, for a finding
 * in a decoded view). */
typedef struct {
	uint32_t start, len;
	const named_t *by;
	uint8_t confidence;
	const char *view;
	const uint8_t *text;
	uint32_t text_len;
} chunk_finding_t;

static int by_offset(const void *a, const void *b)
{
	const chunk_finding_t *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return strcmp(x->by->name, y->by->name);
}

/* The chunk's findings in offset order, one line per span (the detectors
 * that found the same span together); returns the lines written. The
 * sample is masked the way the first detector masks. */
static long emit_findings(FILE *out, const char *file, chunk_finding_t *v, size_t n, uint64_t offset)
{
	qsort(v, n, sizeof *v, by_offset);
	long lines = 0;
	const named_t *by[64];
	for (size_t i = 0; i < n;) {
		size_t j = i, n_by = 0;
		uint8_t top = CONF_LOW; /* the surest of the detectors that found it */
		for (; j < n && v[j].start == v[i].start && v[j].len == v[i].len; j++) {
			if (n_by < sizeof by / sizeof by[0] && (!n_by || by[n_by - 1] != v[j].by))
				by[n_by++] = v[j].by;
			if (v[j].confidence > top)
				top = v[j].confidence;
		}
		char sample[MASK_SAMPLE_MAX + 1];
		mask_sample(sample, (const char *)v[i].text, v[i].text_len, detector_keep_first(by[0]->d),
			    detector_keep_last(by[0]->d));
		emit_record(out, file, by, n_by, offset + v[i].start, v[i].len, sample, v[i].view, confidence_name(top));
		lines++;
		i = j;
	}
	return lines;
}

#define SCAN_CHUNK (1u << 20)
#define SCAN_OVERLAP (64u << 10)

/* A detector that stopped at its match limit, or found more than a result
 * holds, is named on stderr (once per file): the admin tuning it must know
 * the listing is incomplete there. */
static void warn_incomplete(const char *file, const named_t *e, const det_result_t *r, uint64_t offset, bool *warned)
{
	if (*warned || (!r->timed_out && r->count <= r->n_matches))
		return;
	*warned = true;
	if (r->timed_out)
		fprintf(stderr, "dlpgate: %s: detector %s hit its match limit in the MiB at offset %llu and may have "
				"missed findings there (simplify its regex or add keywords)\n",
			file, e->name, (unsigned long long)offset);
	else
		fprintf(stderr, "dlpgate: %s: detector %s matched %u times in the MiB at offset %llu; only the first %u "
				"are listed\n",
			file, e->name, r->count, (unsigned long long)offset, r->n_matches);
}

/* One file: the detectors that apply to its name, over its bytes in
 * chunks that overlap so a match across a chunk end is found once. */
static long scan_stream(lua_policy_t *lp, named_list_t *l, const detector_t **want, const named_t **wnamed,
			det_result_t *res, uint64_t *spent, FILE *in, const char *name, bool no_prefilter, FILE *out)
{
	detect_scratch_t *sc = lp->master->scratch;
	size_t n_want = 0;
	long found = 0;
	for (size_t i = 0; i < l->n; i++) {
		const detector_t *d = l->v[i].d;
		if (!detector_filename_matches(d, name, strlen(name), sc))
			continue;
		if (detector_filename_only(d)) {
			const named_t *by = &l->v[i];
			emit_record(out, name, &by, 1, 0, 0, "(the file name)", NULL,
				    detector_confidence(d) ? detector_confidence(d) : "medium");
			found++;
			continue;
		}
		wnamed[n_want] = &l->v[i];
		want[n_want++] = d;
	}
	if (!n_want)
		return found;
	uint8_t *buf = malloc(SCAN_CHUNK);
	bool *warned = calloc(n_want, sizeof *warned);
	/* at most DET_MAX_MATCHES stored per detector per chunk */
	size_t here_cap = n_want * DET_MAX_MATCHES;
	chunk_finding_t *found_here = malloc(here_cap * sizeof *found_here);
	if (!buf || !warned || !found_here) {
		free(buf);
		free(warned);
		free(found_here);
		return -1;
	}
	uint64_t base = 0; /* file offset of buf[0] */
	size_t have = 0;
	for (;;) {
		size_t got = fread(buf + have, 1, SCAN_CHUNK - have, in);
		have += got;
		bool last = got == 0 || feof(in) || ferror(in);
		if (have) {
			if (no_prefilter)
				detset_scan_all(lp->detectors, sc, buf, have, name, want, n_want, res);
			else
				detset_scan(lp->detectors, sc, buf, have, name, want, n_want, res);
			size_t n_here = 0;
			for (size_t i = 0; i < n_want; i++) {
				spent[wnamed[i] - l->v] += res[i].ns;
				warn_incomplete(name, wnamed[i], &res[i], base, &warned[i]);
				if (res[i].count < detector_min_count(want[i]))
					continue;
				for (uint32_t k = 0; k < res[i].n_matches; k++) {
					const det_match_t *m = &res[i].matches[k];
					if (!last && m->mstart >= have - SCAN_OVERLAP)
						continue; /* found again, whole, in the next chunk */
					found_here[n_here++] = (chunk_finding_t){
						m->start, m->len, wnamed[i], m->confidence, NULL, buf + m->start, m->len};
				}
			}
			/* and what the decoded views of the chunk show */
			dview_set_t views;
			if (dview_set_build(&views, buf, have, NULL, 0, NULL)) {
				for (uint32_t v = 0; v < views.n; v++) {
					const dview_t *dv = &views.v[v];
					(no_prefilter ? detset_scan_all : detset_scan)(lp->detectors, sc, dv->text, dv->len, name,
										       want, n_want, res);
					for (size_t i = 0; i < n_want; i++) {
						spent[wnamed[i] - l->v] += res[i].ns;
						for (uint32_t k = 0; k < res[i].n_matches; k++) {
							const det_match_t *m = &res[i].matches[k];
							uint32_t rs, rl;
							if (dview_verbatim(&views, (int)v, m->start, m->len))
								continue; /* the text itself showed it */
							dview_root_span(&views, (int)v, m->start, m->len, &rs, &rl);
							if (!last && rs >= have - SCAN_OVERLAP)
								continue;
							if (!bytebuf_grow_array(&found_here, sizeof *found_here, n_here, &here_cap, 1))
								break;
							found_here[n_here++] = (chunk_finding_t){
								rs, rl, wnamed[i], m->confidence, dv->name, dv->text + m->start, m->len};
						}
					}
				}
			}
			found += emit_findings(out, name, found_here, n_here, base);
			dview_set_free(&views);
		}
		if (last)
			break;
		memmove(buf, buf + have - SCAN_OVERLAP, SCAN_OVERLAP);
		base += have - SCAN_OVERLAP;
		have = SCAN_OVERLAP;
	}
	free(buf);
	free(warned);
	free(found_here);
	return ferror(in) ? -1 : found;
}

typedef struct {
	uint64_t ns;
	const char *name;
} spent_t;

static int by_spent(const void *a, const void *b)
{
	uint64_t x = ((const spent_t *)a)->ns, y = ((const spent_t *)b)->ns;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Where the time went, costliest first, so an author sees which detector
 * to give keywords, digits or a narrower window. */
static void print_profile(const named_list_t *l, const uint64_t *spent, uint64_t trigger_ns)
{
	spent_t *v = malloc(l->n * sizeof *v);
	if (!v)
		return;
	uint64_t total = trigger_ns;
	for (size_t i = 0; i < l->n; i++) {
		v[i] = (spent_t){spent[i], l->v[i].name};
		total += spent[i];
	}
	qsort(v, l->n, sizeof *v, by_spent);
	double pct = total ? 100.0 / (double)total : 0;
	fprintf(stderr, "profile: %10.1f ms  %5.1f%%  keyword prefilter and digit runs\n", trigger_ns / 1e6,
		trigger_ns * pct);
	for (size_t k = 0; k < l->n && v[k].ns * pct >= 0.1; k++)
		fprintf(stderr, "profile: %10.1f ms  %5.1f%%  %s\n", v[k].ns / 1e6, v[k].ns * pct, v[k].name);
	fprintf(stderr, "profile: %10.1f ms in all (detectors under 0.1%% not listed)\n", total / 1e6);
	free(v);
}

int lua_policy_scan(const char *path, char *const *files, int n_files, const lua_scan_opts_t *o, FILE *out)
{
	char err[1024] = "";
	lua_policy_t *lp = lua_policy_open(path, 1, false, err, sizeof err);
	if (!lp) {
		fprintf(stderr, "dlpgate: %s\n", err);
		return 2;
	}
	named_list_t l = {0};
	collect_all(lp->master->L, &l);
	if (!l.n) {
		fprintf(stderr, "dlpgate: %s defines no detectors\n", path);
		lua_policy_close(lp);
		return 2;
	}
	const detector_t **want = malloc(l.n * sizeof *want);
	const named_t **wnamed = malloc(l.n * sizeof *wnamed);
	det_result_t *res = malloc(l.n * sizeof *res);
	uint64_t *spent = calloc(l.n, sizeof *spent);
	detect_scratch_profile(lp->master->scratch, o->profile);
	int rc = 0;
	long total = 0, scanned = 0;
	for (int i = 0; want && wnamed && res && spent && i < n_files; i++) {
		bool in_stdin = !strcmp(files[i], "-");
		FILE *f = in_stdin ? stdin : fopen(files[i], "rb");
		if (!f) {
			fprintf(stderr, "dlpgate: %s: %s\n", files[i], strerror(errno));
			rc = 2;
			continue;
		}
		long n = scan_stream(lp, &l, want, wnamed, res, spent, f, in_stdin ? "-" : files[i], o->no_prefilter, out);
		if (n < 0) {
			fprintf(stderr, "dlpgate: %s: read error\n", files[i]);
			rc = 2;
		} else {
			total += n;
			scanned++;
		}
		if (!in_stdin)
			fclose(f);
	}
	fflush(out);
	fprintf(stderr, "dlpgate: %ld file%s scanned with %zu detectors, %ld finding%s\n", scanned, scanned == 1 ? "" : "s",
		l.n, total, total == 1 ? "" : "s");
	if (o->profile && spent)
		print_profile(&l, spent, detect_scratch_trigger_ns(lp->master->scratch));
	free(spent);
	free(want);
	free(wnamed);
	free(res);
	named_free(lp->master->L, &l);
	lua_policy_close(lp);
	return rc;
}
