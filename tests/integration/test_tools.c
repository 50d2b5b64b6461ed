/*
 * The policy author's tools as commands: check, test, scan (thousands of
 * files in one run) and import gitleaks (a sample configuration with every
 * feature the importer carries). The shipped rules pass their own tests.
 */
#include "dlp.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int dlpgate(const char *const args[], char **out, char **err)
{
	const char *argv[64];
	int a = 0;
	argv[a++] = dlp_bin();
	for (int i = 0; args[i]; i++)
		argv[a++] = args[i];
	argv[a] = NULL;
	return th_run((char *const *)argv, NULL, 0, out, NULL, err, 120000);
}

static const char *top(void)
{
	const char *t = getenv("DLPGATE_TOP");
	return t ? t : ".";
}

static char *in_top(const char *rel)
{
	char *p;
	if (asprintf(&p, "%s/%s", top(), rel) < 0)
		th_fail("oom");
	return p;
}

static int count_of(const char *out, const char *needle)
{
	int n = 0;
	for (const char *p = out; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

START_TEST(check_and_test_commands)
{
	char *pol = th_path("p.lua");
	const char *src = "local dlp = require 'dlp'\n"
			  "detectors = { card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn',\n"
			  "  examples = { match = {'4539 1488 0343 6467'}, nomatch = {'4539 1488 0343 6468'} } },\n"
			  "  tok = dlp.detector{ [[tok_[a-z]{8}]], keywords = {'tok_'},\n"
			  "  examples = { match = {'tok_abcdefgh'}, nomatch = {'tok_abc'} } } }\n"
			  "function on_request(req) local f = req:scan(detectors)\n"
			  "  if f.card then return dlp.redact(f) end return dlp.pass() end\n";
	th_write_file(pol, src, strlen(src), 0644);
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(dlpgate((const char *const[]){"check", pol, NULL}, &out, &err), 0);
	ck_assert_msg(strstr(out, "ok: ") && strstr(out, "2 detectors (1 without keywords or digits, 2 with examples)") &&
			      strstr(out, "warning: detector card has no keywords"),
		      "%s", out);
	free(out), free(err);
	/* an example that does not behave is a failure */
	char *bad = th_path("bad.lua");
	const char *bsrc = "local dlp = require 'dlp'\nreturn { d = dlp.detector{ [[abc]], keywords = {'abc'},\n"
			   "  examples = { match = {'xyz'} } } }\n";
	th_write_file(bad, bsrc, strlen(bsrc), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"check", bad, NULL}, &out, &err), 1);
	ck_assert_msg(strstr(out, "example match[1] \"xyz\" is not found"), "%s", out);
	free(out), free(err);

	char *t = th_path("p_test.lua");
	const char *tsrc = "return {\n"
			   " { name = 'redacts', request = { body = 'x 4539 1488 0343 6467 y' },\n"
			   "   expect = { verdict = 'redact', detectors = {'card'}, body = 'x 4539 **** **** 6467 y' } },\n"
			   " { name = 'gzip too', request = { body = '4539 1488 0343 6467', encoding = 'gzip' },\n"
			   "   expect = { verdict = 'redact' } },\n"
			   " { name = 'wrong on purpose', request = { body = 'clean' }, expect = { verdict = 'block' } },\n"
			   "}\n";
	th_write_file(t, tsrc, strlen(tsrc), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"test", pol, t, NULL}, &out, &err), 1);
	ck_assert_msg(strstr(out, "ok   ") && strstr(out, "#1 redacts") && strstr(out, "FAIL ") &&
			      strstr(out, "#3 wrong on purpose: expected block, got pass") && strstr(out, "2 passed, 1 failed"),
		      "%s", out);
	free(out), free(err), free(pol), free(bad), free(t);

	/* a policy kept outside the tree finds the shipped packs; a module
	 * that does not exist is named with the require's file:line */
	char *outside = th_path("outside.lua");
	const char *osrc = "local dlp = require 'dlp'\nlocal pii = require 'pii'\n"
			   "function on_request(req) local f = req:scan({card = pii.credit_card})\n"
			   "  if f.card then return dlp.block('card', f) end return dlp.pass() end\n";
	th_write_file(outside, osrc, strlen(osrc), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"check", outside, NULL}, &out, &err), 0);
	free(out), free(err);
	const char *msrc = "local dlp = require 'dlp'\nlocal x = require 'no_such_pack'\n";
	th_write_file(outside, msrc, strlen(msrc), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"check", outside, NULL}, &out, &err), 1);
	ck_assert_msg(strstr(out, "outside.lua:2: module \"no_such_pack\" not found"), "%s%s", out, err);
	free(out), free(err), free(outside);
}
END_TEST

/* What a stage's scan reports: every detector that found something (20
 * here, in name order whatever the table order), nothing below a
 * detector's min_count, and a long token masked whole when redacted. */
START_TEST(findings_are_complete_and_honest)
{
	char *pol = th_path("many.lua");
	const char *src = "local dlp = require 'dlp'\n"
			  "local d = {}\n"
			  "for c in ('abcdefghijklmnopqrst'):gmatch('.') do\n"
			  "  d['det_' .. c] = dlp.detector{ regex = '<' .. c .. '>', keywords = { '<' .. c .. '>' } }\n"
			  "end\n"
			  "d.bulk = dlp.detector{ [[[a-z]+@acme\\.io]], keywords = {'@acme.io'}, min_count = 3 }\n"
			  "d.tok = dlp.detector{ [[tok_[a-z]+(?![a-z])]], keywords = {'tok_'} }\n"
			  "function on_request(req)\n"
			  "  local found = req:scan(d)\n"
			  "  if found.tok then return dlp.redact(found) end\n"
			  "  local names = {}\n"
			  "  for k in pairs(found) do names[#names + 1] = k end\n"
			  "  if #names == 0 then return dlp.pass() end\n"
			  "  table.sort(names)\n"
			  "  return dlp.block(#names .. ' ' .. table.concat(names, ','), found)\n"
			  "end\n";
	th_write_file(pol, src, strlen(src), 0644);
	char *t = th_path("many_test.lua");
	const char *tsrc =
		"local all = ''\n"
		"for c in ('tsrqponmlkjihgfedcba'):gmatch('.') do all = all .. '<' .. c .. '>' end\n"
		"local want = {}\n"
		"for c in ('abcdefghijklmnopqrst'):gmatch('.') do want[#want + 1] = 'det_' .. c end\n"
		"local long = 'x tok_' .. string.rep('a', 600)\n"
		"return {\n"
		" { name = 'twenty', request = { body = all }, expect = { verdict = 'block', detectors = want,\n"
		"   reason = '20 ' .. table.concat(want, ',') } },\n"
		" { name = 'below min_count', request = { body = 'bob@acme.io and amy@acme.io' },\n"
		"   expect = { verdict = 'pass', clean = true } },\n"
		" { name = 'at min_count', request = { body = 'bob@acme.io amy@acme.io joe@acme.io' },\n"
		"   expect = { verdict = 'block', detectors = {'bulk'} } },\n"
		" { name = 'long token', request = { body = long },\n"
		"   expect = { verdict = 'redact', body = 'x tok_a' .. string.rep('*', 595) .. 'aaaa' } },\n"
		"}\n";
	th_write_file(t, tsrc, strlen(tsrc), 0644);
	char *out = NULL, *err = NULL;
	for (int run = 0; run < 3; run++) { /* Lua's table order differs per state */
		int rc = dlpgate((const char *const[]){"test", pol, t, NULL}, &out, &err);
		ck_assert_msg(rc == 0 && strstr(out, "4 passed, 0 failed"), "%s%s", out, err);
		free(out), free(err);
	}
	free(pol), free(t);
}
END_TEST

START_TEST(scan_thousands_of_files)
{
	char *pol = th_path("scan.lua");
	const char *src = "local dlp = require 'dlp'\nreturn {\n"
			  " aws = dlp.detector{ [[\\b(AKIA[A-Z0-9]{16})\\b]], keywords = {'AKIA'}, group = 1 },\n"
			  " card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' } }\n";
	th_write_file(pol, src, strlen(src), 0644);
	char *dir = th_path("corpus");
	mkdir(dir, 0755);
	const int files = 3000;
	const char **argv = calloc((size_t)files + 8, sizeof *argv);
	int a = 0;
	argv[a++] = dlp_bin();
	argv[a++] = "scan";
	argv[a++] = pol;
	for (int i = 0; i < files; i++) {
		char name[256], body[256];
		snprintf(name, sizeof name, "%s/f%04d.txt", dir, i);
		int n = i % 100 == 0 ? snprintf(body, sizeof body, "file %d AKIAIOSFODNN7EXAMPLE end\n", i)
				     : snprintf(body, sizeof body, "file %d nothing here 4539 1488 0343 6468\n", i);
		th_write_file(name, body, (size_t)n, 0644);
		argv[a++] = strdup(name);
	}
	argv[a] = NULL;
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 120000), 0);
	int lines = 0;
	for (char *p = out; (p = strchr(p, '\n')); p++)
		lines++;
	ck_assert_int_eq(lines, files / 100);
	ck_assert_msg(strstr(out, "\"detector\":\"aws\"") && strstr(out, "\"offset\":") &&
			      strstr(out, "\"sample\":\"AKIA************MPLE\"") && !strstr(out, "AKIAIOSFODNN7EXAMPLE"),
		      "%.400s", out);
	ck_assert_msg(strstr(err, "3000 files scanned"), "%s", err);
	/* stdin */
	free(out), free(err);
	const char *in = "4539 1488 0343 6467";
	char *const sargv[] = {(char *)dlp_bin(), "scan", pol, "-", NULL};
	ck_assert_int_eq(th_run(sargv, in, strlen(in), &out, NULL, &err, 10000), 0);
	ck_assert_msg(strstr(out, "\"file\":\"-\",\"detector\":\"card\""), "%s", out);
	for (int i = 3; i < a; i++)
		free((char *)argv[i]);
	free(argv), free(out), free(err), free(pol), free(dir);
}
END_TEST

START_TEST(import_gitleaks_config)
{
	char *cfg = in_top("tests/data/gitleaks-sample.toml");
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(dlpgate((const char *const[]){"import", "gitleaks", cfg, NULL}, &out, &err), 0);
	ck_assert_msg(strstr(out, "M[\"github-pat\"] = dlp.detector{") && strstr(out, "group = 1") &&
			      strstr(out, "entropy = 3.5") && strstr(out, "condition = \"and\"") &&
			      strstr(out, "target = \"line\"") && strstr(out, "filename = [[\\.pem$]]") &&
			      strstr(out, "-- rule broken-rule skipped") && strstr(out, "-- global allowlist"),
		      "%s", out);
	ck_assert_msg(strstr(err, "1 of 4 rules skipped"), "%s", err);
	char *pack = th_path("pack.lua");
	th_write_file(pack, out, strlen(out), 0644);
	free(out), free(err);
	ck_assert_int_eq(dlpgate((const char *const[]){"check", pack, NULL}, &out, &err), 0);
	free(out), free(err);
	/* the rules behave as gitleaks would on these lines */
	char *txt = th_path("secrets.txt");
	const char *lines = "api_key = \"Zq8vR2mW5nK9xL3bT7yH1cF6\"\n"          /* found */
			    "apikey: \"abcdefghijklmnop1234XYZW\"\n"            /* global stopword */
			    "api_key = \"example_key_example_key_1\"\n"         /* rule stopword */
			    "see docs.example.com apikey=Zq8vR2mW5nK9xL3bT7yH1cF6\n" /* global allowlist, line */
			    "api_key = \"aaaaaaaaaaaaaaaaaaaaaaaa\"\n"          /* entropy too low */
			    "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789\n";       /* found */
	th_write_file(txt, lines, strlen(lines), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"scan", pack, txt, NULL}, &out, &err), 0);
	ck_assert_msg(count_of(out, "\"detector\"") == 2 && strstr(out, "generic-api-key") && strstr(out, "github-pat"), "%s", out);
	free(out), free(err);
	/* the same findings with --profile, and the time per detector after them */
	ck_assert_int_eq(dlpgate((const char *const[]){"scan", "--profile", pack, txt, NULL}, &out, &err), 0);
	ck_assert_msg(strstr(out, "generic-api-key") && strstr(out, "github-pat"), "%s", out);
	ck_assert_msg(strstr(err, "profile:") && strstr(err, "keyword prefilter") && strstr(err, " ms in all"), "%s", err);
	free(out), free(err);
	ck_assert_int_eq(dlpgate((const char *const[]){"scan", "--fast", pack, txt, NULL}, &out, &err), 2);
	ck_assert_msg(strstr(err, "unknown option --fast"), "%s", err);
	free(out), free(err);
	/* the file-name rule: by the name of the file scanned */
	char *pem = th_path("server.pem");
	th_write_file(pem, "x", 1, 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"scan", pack, pem, NULL}, &out, &err), 0);
	ck_assert_msg(strstr(out, "\"detector\":\"pem-file\""), "%s", out);
	free(out), free(err), free(pem), free(txt), free(pack), free(cfg);
	/* not TOML, not gitleaks */
	char *junk = th_path("junk.toml");
	th_write_file(junk, "[[[", 3, 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"import", "gitleaks", junk, NULL}, &out, &err), 2);
	ck_assert_msg(strstr(err, "not readable as TOML"), "%s", err);
	free(out), free(err), free(junk);
}
END_TEST

/* `dlpgate test` fails a case whose policy raised an error or hit a limit
 * (it decided by its fail mode, not by its code) unless the case expects
 * it; `check` runs the examples of the detectors a policy keeps in locals
 * and takes from packs, by their names, counting only those it uses;
 * `scan` lists a file's findings in offset order, a span found by two
 * detectors once. */
START_TEST(policy_tools_tell_the_truth)
{
	char *pol = th_path("typo.lua");
	const char *src = "local dlp = require 'dlp'\n"
			  "local tok = dlp.detector{ [[tok_[a-z]{8}]], keywords = {'tok_'} }\n"
			  "function on_request(req)\n"
			  "  local f = req:scan({tok = tok})\n"
			  "  if f.tok then return dlp.blok('token', f) end\n"
			  "  if req.host == 'loop.example' then while true do end end\n"
			  "  return dlp.pass()\n"
			  "end\n";
	th_write_file(pol, src, strlen(src), 0644);
	char *t = th_path("typo_test.lua");
	const char *tsrc = "return {\n"
			   " { name = 'typo', request = { body = 'x tok_abcdefgh' }, expect = { verdict = 'pass' } },\n"
			   " { name = 'typo expected', request = { body = 'x tok_abcdefgh' }, expect = { error = true } },\n"
			   " { name = 'looping', request = { url = 'https://loop.example/', body = 'x' }, expect = { verdict = 'pass' } },\n"
			   " { name = 'clean', request = { body = 'nothing' }, expect = { verdict = 'pass' } },\n"
			   " { name = 'error wanted, none', request = { body = 'nothing' }, expect = { error = true } },\n"
			   "}\n";
	th_write_file(t, tsrc, strlen(tsrc), 0644);
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(dlpgate((const char *const[]){"test", pol, t, NULL}, &out, &err), 1);
	ck_assert_msg(strstr(out, "FAIL ") && strstr(out, "#1 typo: the policy failed (") && strstr(out, "blok") &&
			      strstr(out, "ok   ") && strstr(out, "#2 typo expected") &&
			      strstr(out, "#3 looping: the policy failed (") && strstr(out, "instruction limit") &&
			      strstr(out, "#4 clean") && strstr(out, "#5 error wanted, none: expected a policy error") &&
			      strstr(out, "2 passed, 3 failed"),
		      "%s", out);
	free(out), free(err), free(pol), free(t);

	/* check: a local detector's own nomatch example, named by its name;
	 * a pack's detector the policy takes, and nothing else of the pack */
	char *loc = th_path("locals.lua");
	const char *lsrc = "local dlp = require 'dlp'\n"
			   "local pii = require 'pii'\n"
			   "local unused = require 'finance'\n"
			   "local tok = dlp.detector{ [[tok_[a-z]{8}]], keywords = {'tok_'}, name = 'vendor-token',\n"
			   "  examples = { match = {'tok_abcdefgh'}, nomatch = {'tok_zzzzzzzz'} } }\n"
			   "function on_request(req)\n"
			   "  local f = req:scan({t = tok, card = pii.credit_card})\n"
			   "  if f.t then return dlp.block('tok', f) end\n"
			   "  return dlp.pass()\n"
			   "end\n";
	th_write_file(loc, lsrc, strlen(lsrc), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"check", loc, NULL}, &out, &err), 1);
	ck_assert_msg(strstr(out, "error: detector vendor-token: example nomatch[1] \"tok_zzzzzzzz\" is found") &&
			      strstr(out, "FAIL: ") && strstr(out, "2 detectors (0 without keywords or digits, 2 with examples)"),
		      "%s%s", out, err);
	free(out), free(err), free(loc);

	/* scan: offset order across detectors; one span, two detectors, one line */
	char *two = th_path("two.lua");
	const char *psrc = "local dlp = require 'dlp'\nreturn {\n"
			   "  zeta = dlp.detector{ [[AKIA[A-Z0-9]{16}]], keywords = {'AKIA'} },\n"
			   "  alpha = dlp.detector{ [[\\bAKIA[A-Z0-9]{16}\\b]], keywords = {'AKIA'} },\n"
			   "  card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' } }\n";
	th_write_file(two, psrc, strlen(psrc), 0644);
	char *txt = th_path("two.txt");
	const char *body = "4539 1488 0343 6467 then AKIAIOSFODNN7EXAMPLE and 4539148803436467\n";
	th_write_file(txt, body, strlen(body), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"scan", two, txt, NULL}, &out, &err), 0);
	const char *first = strstr(out, "\"offset\":0,"), *second = strstr(out, "\"offset\":25,"),
		   *third = strstr(out, "\"offset\":50,");
	ck_assert_msg(first && second && third && first < second && second < third && count_of(out, "\n") == 3 &&
			      strstr(out, "\"detector\":\"alpha\",\"detectors\":[\"alpha\",\"zeta\"]"),
		      "%s", out);
	free(out), free(err), free(two), free(txt);
}
END_TEST

/* gitleaks' semantics, rule by rule (tests/data/gitleaks-semantics.toml):
 * each scan below decides as gitleaks does, and differently from a
 * whole-match, window-gated, at-least-the-threshold reading. */
START_TEST(import_gitleaks_semantics)
{
	char *cfg = in_top("tests/data/gitleaks-semantics.toml");
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(dlpgate((const char *const[]){"import", "gitleaks", cfg, NULL}, &out, &err), 0);
	/* what it cannot express is named, and counted */
	ck_assert_msg(strstr(err, "rule composite: not imported: [[rules.required]]") &&
			      strstr(err, "rule composite: not imported: allowlist commits") &&
			      strstr(err, "field \"frobnicate\"") && strstr(err, "rule helper-only skipped: skipReport") &&
			      strstr(err, "rule composite: not imported: allowlist regex 1 does not compile in PCRE2") &&
			      strstr(err, "4 constructs not imported") && strstr(err, "1 of 8 rules skipped"),
		      "%s", err);
	ck_assert_msg(strstr(out, "-- not imported: [[rules.required]]") && strstr(out, "-- tags: orders internal") &&
			      strstr(out, "group = \"first\"") && strstr(out, "window = \"text\"") &&
			      strstr(out, "generic = true"),
		      "%s", out);
	char *pack = th_path("semantics.lua");
	th_write_file(pack, out, strlen(out), 0644);
	free(out), free(err);
	char *txt = th_path("semantics.txt");
	char filler[600];
	memset(filler, '.', sizeof filler - 2);
	filler[sizeof filler - 2] = '\n';
	filler[sizeof filler - 1] = '\0';
	char *lines;
	ck_assert_int_ge(asprintf(&lines,
				  "example_token = \"q8v2m5n9x3b7y1c6\"\n"  /* found: the stopword is in the name, not the secret */
				  "vendor_token = 'exampleq8v2m5n9x'\n"       /* not found: the stopword is in the secret (group 2) */
				  "tok_abcdabcd\n"                            /* not found: entropy exactly 2 */
				  "tok_abcdeabc\n"                            /* found: entropy above 2 */
				  "vendor_token = \"z7k4q1w8e5r2t9y6\" # gitleaks:allow\n" /* not found: the inline marker */
				  "session_token: \"Zq8vR2mW5nK9xL3b\"\n"       /* found by the generic rule alone */
				  "orderkey ledger\n%sABC-123456-XYZ\n",      /* found: the keyword is far, but in the text */
				  filler),
			 0);
	th_write_file(txt, lines, strlen(lines), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"scan", pack, txt, NULL}, &out, &err), 0);
	ck_assert_msg(count_of(out, "\"detector\":\"vendor-token\"") == 1 && strstr(out, "\"sample\":\"q8v2********y1c6\"") &&
			      count_of(out, "\"detector\":\"entropy-edge\"") == 1 && strstr(out, "\"sample\":\"abcdeabc\"") == NULL &&
			      count_of(out, "\"detector\":\"far-keyword\"") == 1 && count_of(out, "generic-token") == 1 &&
			      strstr(out, "\"detector\":\"generic-token\",\"severity\":\"high\",\"offset\":") &&
			      count_of(out, "\"detector\"") == 4,
		      "%s%s", out, err);
	free(out), free(err);
	/* path rules: by the name of the file scanned; a path allowlist drops a file */
	char *dir = th_path("tree");
	char *testdata = th_path("tree/testdata");
	mkdir(dir, 0755);
	mkdir(testdata, 0755);
	char *pem = th_path("tree/server.pem"), *pem2 = th_path("tree/testdata/fixture.pem");
	char *php = th_path("tree/config.php"), *notphp = th_path("tree/config.txt");
	const char *secret = "<?php $secret = \"Q8v2M5n9X3b7\"; ?>\n";
	th_write_file(pem, "x", 1, 0644);
	th_write_file(pem2, "x", 1, 0644);
	th_write_file(php, secret, strlen(secret), 0644);
	th_write_file(notphp, secret, strlen(secret), 0644);
	ck_assert_int_eq(dlpgate((const char *const[]){"scan", pack, pem, pem2, php, notphp, NULL}, &out, &err), 0);
	ck_assert_msg(count_of(out, "\"detector\":\"key-file\"") == 1 && strstr(out, "server.pem\",\"detector\":\"key-file\"") &&
			      count_of(out, "\"detector\":\"php-secret\"") == 1 &&
			      strstr(out, "config.php\",\"detector\":\"php-secret\"") && !strstr(out, "Q8v2M5n9X3b7"),
		      "%s%s", out, err);
	free(out), free(err);
	free(lines), free(txt), free(pack), free(cfg), free(dir), free(testdata), free(pem), free(pem2), free(php),
		free(notphp);
}
END_TEST

/* static_bypass is checked when the policy loads, never by running
 * policy code (a metatable on it is simply not consulted); settings
 * tables whose metamethods raise or loop refuse the policy instead of
 * ending the process (on a reload, the gateway). */
START_TEST(static_bypass_is_checked_at_load)
{
	static const struct {
		const char *src, *want;
	} hostile[] = {
		{"limits = setmetatable({}, {__index = function() error('boom') end})", "reading the policy settings:"},
		{"inspect = setmetatable({}, {__index = function() while true do end end})", "instruction limit exceeded"},
		{"setmetatable(_G, {__index = function(t, k) error('no ' .. k) end})", "reading the policy settings:"},
	};
	for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
		char src[512];
		snprintf(src, sizeof src, "local dlp = require 'dlp'\n%s\nfunction on_flow(flow) return dlp.inspect() end\n",
			 hostile[i].src);
		char *pol = th_path("hostile.lua");
		th_write_file(pol, src, strlen(src), 0644);
		char *out = NULL, *err = NULL;
		int rc = dlpgate((const char *const[]){"check", pol, NULL}, &out, &err);
		ck_assert_msg(rc == 1 && strstr(out, hostile[i].want), "hostile %zu: rc %d: %s%s", i, rc, out, err);
		free(out), free(err), free(pol);
	}
	/* a stage that removes itself behind a raising _G: the next call fails open, nothing aborts */
	static const char gone[] = "local dlp = require 'dlp'\nlocal n = 0\nfunction on_flow(flow)\n  n = n + 1\n"
				   "  if n == 1 then on_flow = nil; setmetatable(_G, {__index = function(t, k) error('no ' .. k) "
				   "end}) end\n  return dlp.inspect()\nend\n";
	static const char gone_cases[] = "return { { name = 'one', flow = { host = 'a.example' }, expect = { flow = 'inspect' } },"
				    " { name = 'two', flow = { host = 'b.example' }, expect = { flow = 'inspect', error = true } } }\n";
	char *gp = th_path("gone.lua"), *gt = th_path("gone_test.lua");
	th_write_file(gp, gone, strlen(gone), 0644);
	th_write_file(gt, gone_cases, strlen(gone_cases), 0644);
	char *gout = NULL, *gerr = NULL;
	int grc = dlpgate((const char *const[]){"test", gp, gt, NULL}, &gout, &gerr);
	ck_assert_msg(grc == 0 && strstr(gout, "2 passed") && strstr(gerr, "attempt to call a nil value"), "rc %d: %s%s",
		      grc, gout, gerr);
	free(gout), free(gerr), free(gp), free(gt);
	/* a test file's case with a raising metatable fails that case, by name */
	static const char evil[] = "return { setmetatable({ name = 'evil' }, { __index = function(t, k) error('no ' .. k) "
				   "end }), { name = 'fine', flow = { host = 'a.example' }, expect = { flow = 'inspect' } } }\n";
	char *et = th_path("evil_test.lua");
	th_write_file(et, evil, strlen(evil), 0644);
	gout = gerr = NULL;
	grc = dlpgate((const char *const[]){"test", "rules/default.lua", et, NULL}, &gout, &gerr);
	ck_assert_msg(grc == 1 && strstr(gout, "FAIL") && strstr(gout, "evil: reading the case:") &&
			      strstr(gout, "ok   ") && strstr(gout, "1 passed, 1 failed"),
		      "rc %d: %s%s", grc, gout, gerr);
	free(gout), free(gerr), free(et);
	static const struct {
		const char *table, *want;
	} cases[] = {
		{"{ apple_platform = true, hosts = { 'ok.example', 'bad host' } }", "static_bypass.hosts[2]: host pattern"},
		{"{ apple = true }", "static_bypass: unknown field \"apple\""},
		{"{ except_signing_ids = 'com.apple.curl' }", "static_bypass.except_signing_ids must be a list"},
		{"'everything'", "static_bypass must be a table"},
		{"setmetatable({}, {__index = function() error('boom') end})", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char src[512];
		snprintf(src, sizeof src,
			 "local dlp = require 'dlp'\nstatic_bypass = %s\nfunction on_flow(flow) return dlp.inspect() end\n",
			 cases[i].table);
		char *pol = th_path("sb.lua");
		th_write_file(pol, src, strlen(src), 0644);
		char *out = NULL, *err = NULL;
		int rc = dlpgate((const char *const[]){"check", pol, NULL}, &out, &err);
		if (cases[i].want)
			ck_assert_msg(rc == 1 && strstr(out, cases[i].want), "case %zu: rc %d: %s%s", i, rc, out, err);
		else
			ck_assert_msg(rc == 0, "case %zu: rc %d: %s%s", i, rc, out, err);
		free(out), free(err), free(pol);
	}
}
END_TEST

START_TEST(shipped_rules_pass_their_tests)
{
	char *rules = in_top("rules");
	struct stat st;
	if (stat(rules, &st) != 0) {
		free(rules);
		ck_abort_msg("no rules/ folder under %s", top());
	}
	static const char *const packs[] = {"default.lua", "pii.lua", "secrets.lua", "finance.lua"};
	for (size_t i = 0; i < sizeof packs / sizeof packs[0]; i++) {
		char *p;
		if (asprintf(&p, "%s/%s", rules, packs[i]) < 0)
			th_fail("oom");
		char *out = NULL, *err = NULL;
		int rc = dlpgate((const char *const[]){"check", p, NULL}, &out, &err);
		ck_assert_msg(rc == 0, "dlpgate check %s:\n%s%s", p, out, err);
		free(out), free(err), free(p);
	}
	static const char *const tests[][2] = {
		{"default.lua", "tests/default_test.lua"},
		{"tests/pack_policy.lua", "tests/pii_test.lua"},
		{"tests/pack_policy.lua", "tests/secrets_test.lua"},
		{"tests/pack_policy.lua", "tests/finance_test.lua"},
		{"tests/redact_policy.lua", "tests/redact_test.lua"},
		{"tests/coach_policy.lua", "tests/coach_test.lua"},
		{"tests/ident_policy.lua", "tests/ident_test.lua"},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		char *pol, *file;
		if (asprintf(&pol, "%s/%s", rules, tests[i][0]) < 0 || asprintf(&file, "%s/%s", rules, tests[i][1]) < 0)
			th_fail("oom");
		char *out = NULL, *err = NULL;
		int rc = dlpgate((const char *const[]){"test", pol, file, NULL}, &out, &err);
		ck_assert_msg(rc == 0, "dlpgate test %s %s:\n%s%s", pol, file, out, err);
		free(out), free(err), free(pol), free(file);
	}
	free(rules);
}
END_TEST

Suite *tools_suite(void)
{
	Suite *s = suite_create("tools");
	TCase *t = tcase_create("tools");
	tcase_set_timeout(t, 180);
	tcase_add_test(t, check_and_test_commands);
	tcase_add_test(t, findings_are_complete_and_honest);
	tcase_add_test(t, scan_thousands_of_files);
	tcase_add_test(t, import_gitleaks_config);
	tcase_add_test(t, import_gitleaks_semantics);
	tcase_add_test(t, policy_tools_tell_the_truth);
	tcase_add_test(t, shipped_rules_pass_their_tests);
	tcase_add_test(t, static_bypass_is_checked_at_load);
	suite_add_tcase(s, t);
	return s;
}
