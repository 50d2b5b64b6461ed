/*
 * The Lua sandbox, adversarially: bombs, loops, recursion and escapes each
 * end as a counted policy error under the fail mode, and the state serves
 * the next call. Load errors name file:line, files by their chunk names
 * (relative to the policy's folder, never a path of the machine).
 */
#include "suites.h"
#include "policy/lua_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[300];

static void make_dir(void)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "%s/dlpgate-sbx-XXXXXX", unit_tmp_base());
		ck_assert_ptr_nonnull(mkdtemp(dir));
	}
}

static const char *write_policy(const char *name, const char *src)
{
	static char path[600];
	make_dir();
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(src, f);
	fclose(f);
	return path;
}

static compiled_policy_t *load(const char *src, char *err, size_t n)
{
	err[0] = '\0';
	return lua_policy_load(write_policy("p.lua", src), NULL, err, n);
}

static const flow_facts_t facts = {.source = FLOW_SOURCE_EXPLICIT, .client = "127.0.0.1", .host = "h.example", .port = 443, .tls = true};

static void flow_verdict(compiled_policy_t *p, verdict_t *v)
{
	p->ops->on_flow(p, NULL, &facts, v);
}

/* A policy whose on_flow runs `body` first and then bypasses; its fail
 * mode is `fail`. */
static char *stage_src(const char *fail, const char *body)
{
	static char src[2048];
	snprintf(src, sizeof src,
		 "local dlp = require 'dlp'\nfail = '%s'\nlimits = {memory = 8 * 1024 * 1024, instructions = 2000000}\n"
		 "function on_flow(flow)\n  if flow.host == 'h.example' then\n%s\n  end\n  return dlp.bypass('ok')\nend\n",
		 fail, body);
	return src;
}

START_TEST(limits_end_in_fail_mode)
{
	static const struct {
		const char *body, *want;
		int kind; /* 0 memory, 1 instructions, 2 error */
	} bombs[] = {
		{"local t = {} for i = 1, 1e9 do t[i] = i end", "not enough memory", 0},
		{"local s = string.rep('x', 1e9)", "not enough memory", 0},
		{"local t = {} for i = 1, 1e7 do t[#t + 1] = string.rep('y', 100) .. i end", "not enough memory", 0},
		{"while true do end", "instruction limit", 1},
		{"local function f(n) return f(n + 1) + 1 end return f(1)", "", 2},
		{"error('deliberate')", "deliberate", 2},
		{"local x = nil; return x.field", "attempt to index", 2},
	};
	char err[512];
	for (int closed = 0; closed < 2; closed++) {
		for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
			compiled_policy_t *p = load(stage_src(closed ? "closed" : "open", bombs[i].body), err, sizeof err);
			ck_assert_msg(p != NULL, "%s", err);
			verdict_t v;
			flow_verdict(p, &v);
			ck_assert_msg(v.error, "bomb %zu did not fail: %s", i, v.reason);
			ck_assert_int_eq(v.kind, closed ? VERDICT_BLOCK : VERDICT_INSPECT);
			ck_assert_msg(strstr(v.reason, bombs[i].want), "bomb %zu: %s", i, v.reason);
			lua_policy_stats_t st;
			lua_policy_stats(p, &st);
			ck_assert_uint_eq(st.errors, 1);
			if (bombs[i].kind == 0)
				ck_assert_uint_eq(st.memory_limits, 1);
			if (bombs[i].kind == 1)
				ck_assert_uint_eq(st.instruction_limits, 1);
			/* the state still serves: another flow goes through */
			flow_facts_t other = facts;
			other.host = "other.example";
			flow_verdict(p, &v);
			p->ops->on_flow(p, NULL, &other, &v);
			ck_assert_msg(!v.error && v.kind == VERDICT_BYPASS, "after bomb %zu: %s", i, v.reason);
			policy_unref(p);
		}
	}
}
END_TEST

START_TEST(no_way_out)
{
	static const char *const escapes[] = {
		"return io.open('/etc/passwd')",
		"return os.execute('id')",
		"return debug.getinfo(1)",
		"return loadfile('/etc/passwd')",
		"return dofile('/etc/passwd')",
		"return string.dump(print)",
		"return load('\\27Lua', 'x', 'b')",
		"return require('os')",
		"return require('../../etc/passwd')",
		"return package.loadlib('libc.so.6', 'system')",
		"return collectgarbage('stop')",
		"return string.find(string.rep('a', 100000), 'a.-b')",
	};
	char err[512];
	for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
		compiled_policy_t *p = load(stage_src("open", escapes[i]), err, sizeof err);
		ck_assert_msg(p != NULL, "%s", err);
		verdict_t v;
		flow_verdict(p, &v);
		ck_assert_msg(v.error, "escape %zu (%s) was not refused: %s", i, escapes[i], v.reason);
		policy_unref(p);
	}
	/* what is allowed works */
	compiled_policy_t *p = load(stage_src("open", "assert(load('return 1 + 1')() == 2)\n"
					     "assert(string.find(string.rep('a', 100000) .. 'b', 'ab', 1, true))\n"
					     "assert(math.floor(2.5) == 2 and utf8.char(65) == 'A' and table.concat({'a','b'}) == 'ab')\n"
					     "assert(io == nil and os == nil and debug == nil)"),
			   err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	verdict_t v;
	flow_verdict(p, &v);
	ck_assert_msg(!v.error && v.kind == VERDICT_BYPASS, "%s", v.reason);
	policy_unref(p);
}
END_TEST

START_TEST(load_errors_name_file_and_line)
{
	char err[512];
	ck_assert_ptr_null(load("local dlp = require 'dlp'\n\nfunction on_flow(\n", err, sizeof err));
	ck_assert_msg(!strncmp(err, "p.lua:4:", 8), "%s", err);
	ck_assert_ptr_null(load("local x = 1\nerror('broken at load')\n", err, sizeof err));
	ck_assert_msg(!strncmp(err, "p.lua:2:", 8) && strstr(err, "broken at load"), "%s", err);
	ck_assert_ptr_null(load("on_request = 5\n", err, sizeof err));
	ck_assert_msg(!strncmp(err, "p.lua: ", 7) && strstr(err, "on_request is a number"), "%s", err);
	ck_assert_ptr_null(load("function on_flow() end\nmode = 'loud'\n", err, sizeof err));
	ck_assert_msg(strstr(err, "mode must be"), "%s", err);
	ck_assert_ptr_null(load("x = 1\n", err, sizeof err));
	ck_assert_msg(strstr(err, "defines none of"), "%s", err);
	ck_assert_ptr_null(load("local dlp = require 'dlp'\nlocal d = dlp.detector{ regex = '(' }\nfunction on_flow() end\n", err,
				sizeof err));
	ck_assert_msg(strstr(err, "p.lua:2:") && strstr(err, "does not compile"), "%s", err);
	ck_assert_ptr_null(load("local dlp = require 'dlp'\nlocal d = dlp.detector{ regx = 'a' }\nfunction on_flow() end\n", err,
				sizeof err));
	ck_assert_msg(strstr(err, "unknown field 'regx'"), "%s", err);
	ck_assert_ptr_null(load("local m = require 'nothere'\nfunction on_flow() end\n", err, sizeof err));
	ck_assert_msg(!strncmp(err, "p.lua:1: module \"nothere\" not found: no nothere.lua beside the policy", 65) &&
			      !strstr(err, dir),
		      "%s", err);
}
END_TEST

START_TEST(verdicts_say_where_and_why)
{
	char err[512];
	write_policy("helpers.lua", "local M = {}\nfunction M.banks() return {'*.bank.example'} end\nreturn M\n");
	compiled_policy_t *p = load("local dlp = require 'dlp'\nlocal h = require 'helpers'\n"
			   "function on_flow(flow)\n"
			   "  if dlp.host_matches(flow.host, h.banks()) then\n"
			   "    return dlp.bypass('sensitive site')\n"
			   "  end\n"
			   "  return dlp.block('not allowed here', {monitor = true})\n"
			   "end\n",
			   err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	flow_facts_t f = facts;
	f.host = "www.bank.example";
	verdict_t v;
	p->ops->on_flow(p, NULL, &f, &v);
	ck_assert_int_eq(v.kind, VERDICT_BYPASS);
	ck_assert_str_eq(v.reason, "sensitive site");
	ck_assert_str_eq(v.rule, "p.lua:5");
	f.host = "elsewhere.example";
	p->ops->on_flow(p, NULL, &f, &v);
	ck_assert_int_eq(v.kind, VERDICT_BLOCK);
	ck_assert(v.monitor);
	ck_assert_str_eq(v.rule, "p.lua:7");
	policy_unref(p);
	/* a stage that returns something else is an error, not a pass */
	p = load("function on_flow() return 42 end\n", err, sizeof err);
	p->ops->on_flow(p, NULL, &facts, &v);
	ck_assert(v.error);
	ck_assert_msg(strstr(v.reason, "return a verdict"), "%s", v.reason);
	policy_unref(p);
}
END_TEST

START_TEST(messages_expire_with_their_stage)
{
	char err[512];
	compiled_policy_t *p = load("local dlp = require 'dlp'\nkept = nil\n"
			   "function on_request(req, flow)\n"
			   "  if kept then return dlp.block(kept.method) end\n"
			   "  kept = req\n"
			   "  req.headers:set('X-Seen', 'yes')\n"
			   "  return dlp.pass()\n"
			   "end\n",
			   err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	http_head_t h;
	http_head_init(&h, true, 4096, 32);
	h.major = h.minor = 1;
	h.method_off = 0;
	h.method_len = 3;
	bytebuf_append(&h.arena, "GET", 3);
	http_head_set_target(&h, "/x", 2);
	policy_msg_t m;
	memset(&m, 0, sizeof m);
	m.head = &h;
	verdict_t v;
	p->ops->on_request(p, NULL, &facts, &m, &v);
	ck_assert_int_eq(v.kind, VERDICT_PASS);
	uint32_t seen_len = 0;
	const char *seen = http_head_get(&h, "x-seen", &seen_len); /* not NUL-terminated */
	ck_assert_msg(seen && seen_len == 3 && !memcmp(seen, "yes", 3), "X-Seen: %.*s", (int)seen_len, seen ? seen : "");
	p->ops->on_request(p, NULL, &facts, &m, &v);
	ck_assert_msg(v.error && strstr(v.reason, "stage that has returned"), "%s", v.reason);
	policy_msg_clear(&m);
	http_head_free(&h);
	policy_unref(p);
	/* header edits cannot break framing or inject lines */
	p = load("function on_request(req) req.headers:set('X-A', 'a\\r\\nX-Evil: 1') end\n", err, sizeof err);
	http_head_init(&h, true, 4096, 32);
	memset(&m, 0, sizeof m);
	m.head = &h;
	p->ops->on_request(p, NULL, &facts, &m, &v);
	ck_assert_msg(v.error && strstr(v.reason, "control character"), "%s", v.reason);
	policy_unref(p);
	p = load("function on_request(req) req.headers:set('Content-Length', '0') end\n", err, sizeof err);
	p->ops->on_request(p, NULL, &facts, &m, &v);
	ck_assert_msg(v.error && strstr(v.reason, "framing"), "%s", v.reason);
	policy_unref(p);
	http_head_free(&h);
}
END_TEST

/* Chunks are named "@" and their path relative to the policy's folder, in
 * a folder deep enough that Lua would cut an absolute name to "...tail":
 * the rule of a verdict, a runtime error, a load error and Lua's own debug
 * info all name files the same way and never hold the folder. */
#define DEEP "a-folder-name-long-enough-that-lua-would-cut-an-absolute-chunk-name"

START_TEST(chunk_names_are_relative_to_the_policy_folder)
{
	char err[512];
	make_dir();
	static const char *const folders[] = {DEEP, DEEP "/policy", DEEP "/policy/lib"};
	for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) {
		char d[700];
		snprintf(d, sizeof d, "%s/%s", dir, folders[i]);
		ck_assert(mkdir(d, 0700) == 0);
	}
	write_policy(DEEP "/policy/lib/rules.lua",
		     "local dlp = require 'dlp'\nlocal M = {}\n"
		     "function M.decide(host)\n  if host == 'boom.example' then error('boom') end\n"
		     "  return dlp.block('lib decides')\nend\nreturn M\n");
	write_policy(DEEP "/up.lua",
		     "local dlp = require 'dlp'\nreturn function() return dlp.bypass('one up decides') end\n");
	char main[600]; /* write_policy's answer is overwritten by the next call */
	snprintf(main, sizeof main, "%s",
		 write_policy(DEEP "/policy/policy.lua",
		              "local dlp = require 'dlp'\nlocal lib = require 'lib.rules'\n"
		              "local up = require 'up'\n"
		              "function on_flow(flow)\n"
		              "  if flow.host == 'up.example' then return up() end\n"
		              "  if flow.host == 'main.example' then return dlp.pass('main decides') end\n"
		              "  return lib.decide(flow.host)\nend\n"));
	compiled_policy_t *p = lua_policy_load(main, NULL, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	static const struct {
		const char *host, *rule;
	} where[] = {{"main.example", "policy.lua:6"}, {"lib.example", "lib/rules.lua:5"}, {"up.example", "../up.lua:2"}};
	flow_facts_t f = facts;
	verdict_t v;
	for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
		f.host = where[i].host;
		p->ops->on_flow(p, NULL, &f, &v);
		ck_assert_msg(!v.error, "%s", v.reason);
		ck_assert_str_eq(v.rule, where[i].rule);
	}
	f.host = "boom.example";
	p->ops->on_flow(p, NULL, &f, &v);
	ck_assert_msg(v.error && strstr(v.reason, ": lib/rules.lua:4: boom") && !strstr(v.reason, "..."), "%s", v.reason);
	/* Lua's own debug info: "@name", the convention tracebacks follow */
	lua_policy_t *lp = p->impl;
	lua_State *L = lp->master->L;
	lua_getglobal(L, "on_flow");
	lua_Debug ar;
	ck_assert(lua_getinfo(L, ">S", &ar));
	ck_assert_str_eq(ar.source, "@policy.lua");
	/* a shipped pack by its name in the shipped folder, as a bundle carries it */
	const char *shipped = lua_policy_shipped_rules();
	ck_assert_ptr_nonnull(shipped);
	char path[PATH_MAX], name[300];
	snprintf(path, sizeof path, "%s/pii.lua", shipped);
	ck_assert(sandbox_chunk_name(&lp->master->sb, path, name, sizeof name));
	ck_assert_str_eq(name, "pii.lua");
	ck_assert(!sandbox_chunk_name(&lp->master->sb, "/elsewhere/x.lua", name, sizeof name) && !name[0]);
	policy_unref(p);
	/* a module that does not compile, and one not found: named, no folder */
	write_policy(DEEP "/policy/lib/rules.lua",
		     "local M = {}\nfunction M.decide(\nreturn M\n");
	ck_assert_ptr_null(lua_policy_load(main, NULL, err, sizeof err));
	ck_assert_msg(!strncmp(err, "lib/rules.lua:3:", 16) && !strstr(err, dir), "%s", err);
	write_policy(DEEP "/policy/policy.lua",
		     "local dlp = require 'dlp'\nlocal x = require 'sub.nothere'\n");
	ck_assert_ptr_null(lua_policy_load(main, NULL, err, sizeof err));
	ck_assert_msg(strstr(err, "policy.lua:2: module \"sub.nothere\" not found: no sub/nothere.lua beside the policy, "
				  "no ../sub/nothere.lua") &&
			      !strstr(err, dir),
		      "%s", err);
}
END_TEST

Suite *sandbox_suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *t = tcase_create("sandbox");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, limits_end_in_fail_mode);
	tcase_add_test(t, no_way_out);
	tcase_add_test(t, load_errors_name_file_and_line);
	tcase_add_test(t, verdicts_say_where_and_why);
	tcase_add_test(t, chunk_names_are_relative_to_the_policy_folder);
	tcase_add_test(t, messages_expire_with_their_stage);
	suite_add_tcase(s, t);
	return s;
}
