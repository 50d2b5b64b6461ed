/*
 * The console's pure parsers, fed what the network can send: query
 * strings, RFC 3339 times, cursors, gzip (truncated, a bomb) and event
 * lines the schema refuses. The integration suite covers the same paths
 * through HTTP; these pin the edge cases one call at a time.
 */
#include "../../console/console.h"
#include "../../console/ingest.h"
#include "suites.h"
#include "http/body.h"

#include <stdlib.h>
#include <string.h>

START_TEST(params)
{
	console_params_t p;
	char err[256];
	ck_assert(console_params_parse("a=1&b=x%20y+z&&c=&d", &p, err, sizeof err));
	ck_assert_int_eq(p.n, 4);
	ck_assert_str_eq(p.names[1], "b");
	ck_assert_str_eq(p.values[1], "x y z");
	ck_assert_str_eq(p.values[2], "");
	ck_assert_str_eq(p.names[3], "d");
	console_params_free(&p);
	/* malformed escapes and NUL are refused, naming the parameter */
	const char *bad[] = {"a=%", "a=%4", "a=%zz", "a=%00", "%=1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(!console_params_parse(bad[i], &p, err, sizeof err), "%s", bad[i]);
		ck_assert(strstr(err, "percent-encoded"));
	}
}
END_TEST

START_TEST(times)
{
	int64_t ms;
	ck_assert(console_time_parse("1970-01-01T00:00:00Z", &ms) && ms == 0);
	ck_assert(console_time_parse("2026-11-18T11:06:40.5Z", &ms) && ms == 1795000000500);
	ck_assert(console_time_parse("2026-11-18T13:06:40+02:00", &ms) && ms == 1795000000000);
	const char *bad[] = {"", "2026-11-18", "2026-11-18T11:06:40", "2026-13-01T00:00:00Z", "2026-11-18T11:06:40.Z",
			     "2026-11-18T11:06:40Zjunk", "' OR 1=1 --"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!console_time_parse(bad[i], &ms), "%s", bad[i]);
	/* the event schema's form is stricter: exactly milliseconds and Z */
	ck_assert(console_event_time_parse("2026-11-18T11:06:40.123Z", &ms) && ms == 1795000000123);
	ck_assert(!console_event_time_parse("2026-11-18T11:06:40Z", &ms));
	ck_assert(!console_event_time_parse("2026-11-18T11:06:40.123+00:00", &ms));
	char out[64];
	console_time_format(1795000000123, out);
	ck_assert_str_eq(out, "2026-11-18T11:06:40.123Z");
}
END_TEST

START_TEST(cursors)
{
	char c[40];
	int64_t ts, seq;
	console_cursor_format(1795000000123, 42, c);
	ck_assert(console_cursor_parse(c, &ts, &seq) && ts == 1795000000123 && seq == 42);
	ck_assert(!console_cursor_parse("", &ts, &seq));
	ck_assert(!console_cursor_parse("000001a2016a1860000000000000000G", &ts, &seq));
	ck_assert(!console_cursor_parse("000001a2016a18600000000000000002X", &ts, &seq));
	ck_assert(!console_cursor_parse("0000000000000000ffffffffffffffff", &ts, &seq)); /* negative seq */
}
END_TEST

static char *gzip_of(const char *data, size_t len, size_t *zlen)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
	ck_assert(body_gzip(data, len, &b));
	*zlen = b.len;
	return b.data;
}

START_TEST(gunzip_caps)
{
	size_t n = 1 << 20, zlen, outlen;
	char *zeros = calloc(1, n), *out = NULL;
	char *z = gzip_of(zeros, n, &zlen);
	ck_assert_int_eq(ingest_gunzip(z, zlen, n, &out, &outlen), 0);
	ck_assert_uint_eq(outlen, n);
	free(out);
	/* one byte over the cap is refused, not allocated */
	ck_assert_int_eq(ingest_gunzip(z, zlen, n - 1, &out, &outlen), 413);
	/* truncated, and not gzip at all */
	ck_assert_int_eq(ingest_gunzip(z, zlen / 2, n, &out, &outlen), 400);
	ck_assert_int_eq(ingest_gunzip("{\"a\":1}\n", 8, n, &out, &outlen), 400);
	free(z);
	free(zeros);
}
END_TEST

#define AG "aaaaaaaa-0000-4000-8000-000000000001"
#define DROP(extra) "{\"event\":\"spool_drop\",\"id\":\"01900000-0000-7000-8000-000000000001\",\"agent_id\":\"" AG \
		    "\",\"time\":\"2026-11-18T11:06:40.000Z\",\"reason\":\"spool_full\",\"dropped\":1" extra "}\n"

#define VERDICT(conf)                                                                                                  \
	"{\"event\":\"verdict\",\"id\":\"01900000-0000-7000-8000-000000000001\",\"agent_id\":\"" AG                    \
	"\",\"time\":\"2026-11-18T10:00:00.000Z\",\"policy_version\":\"v3\",\"stage\":\"request\",\"verdict\":"           \
	"\"block\",\"monitor\":false,\"rule\":\"p.lua:4\",\"reason\":\"r\",\"detectors\":{\"de_steuer_id\":{\"count\":1,"  \
	"\"severity\":\"high\"" conf ",\"samples\":[\"********719\"]}},\"flow\":{\"id\":1,\"source\":\"explicit\","   \
	"\"host\":\"h\",\"dst_port\":443}}\n"

/* Events carry each detector's confidence (issue 16): the console takes
 * the three levels and nothing else. */
START_TEST(detector_confidence)
{
	ingest_batch_t b;
	char err[512];
	static const char *const ok[] = {VERDICT(""), VERDICT(",\"confidence\":\"high\""),
					 VERDICT(",\"confidence\":\"low\"")};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ck_assert_msg(ingest_parse(ok[i], strlen(ok[i]), false, AG, &b, err, sizeof err) == 0, "%zu: %s", i, err);
		ingest_free(&b);
	}
	static const char *const bad[] = {VERDICT(",\"confidence\":\"certain\""), VERDICT(",\"confidence\":2")};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(ingest_parse(bad[i], strlen(bad[i]), false, AG, &b, err, sizeof err), 400);
		ck_assert_msg(strstr(err, "confidence"), "%s", err);
		ingest_free(&b);
	}
}
END_TEST

START_TEST(event_lines)
{
	ingest_batch_t b;
	char err[512];
	const char *ok = DROP("");
	ck_assert_int_eq(ingest_parse(ok, strlen(ok), false, AG, &b, err, sizeof err), 0);
	ck_assert_uint_eq(b.n, 1);
	ck_assert_str_eq(b.ev[0].kind, "spool_drop");
	ck_assert(b.ev[0].ts_ms == 1795000000000);
	ingest_free(&b);
	/* refused: extra field, wrong enum, missing field, bad id, a blank line */
	const char *bad[] = {DROP(",\"x\":1"), "{\"event\":\"spool_drop\",\"id\":\"01900000-0000-7000-8000-000000000001\","
					       "\"agent_id\":\"" AG "\",\"time\":\"2026-11-18T11:06:40.000Z\",\"reason\":\"lost\",\"dropped\":1}\n",
			     "{\"event\":\"verdict\",\"id\":\"01900000-0000-7000-8000-000000000001\",\"agent_id\":\"" AG
			     "\",\"time\":\"2026-11-18T11:06:40.000Z\"}\n",
			     "{\"event\":\"flow\",\"id\":\"01900000-0000-7000-8000-00000000000Z\",\"agent_id\":\"" AG "\"}\n",
			     "\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(ingest_parse(bad[i], strlen(bad[i]), false, AG, &b, err, sizeof err), 400);
		ck_assert_msg(strncmp(err, "line 1", 6) == 0, "%zu: %s", i, err);
		ingest_free(&b);
	}
	/* another agent's event */
	ck_assert_int_eq(ingest_parse(ok, strlen(ok), false, "bbbbbbbb-0000-4000-8000-000000000002", &b, err, sizeof err),
			 403);
	ingest_free(&b);
}
END_TEST

START_TEST(web_paths)
{
	const char *ok[] = {"/", "/index.html", "/assets/app-Bx91kQ2z.js", "/events/0190-ab_c~", "/incidents/"};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		ck_assert_msg(console_web_path_ok(ok[i]), "%s", ok[i]);
	const char *bad[] = {"", "x", "/..", "/../x", "/a/../b", "/.env", "/a/.git/config", "//x", "/a//b",
			     "/%2e%2e/x", "/a\\b", "/a b", "/a?b", "/\x01"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!console_web_path_ok(bad[i]), "%s", bad[i]);
	ck_assert(console_web_hashed("/assets/app-Bx91kQ2z.js"));
	ck_assert(console_web_hashed("/assets/app.3f9a8b7c.css"));
	ck_assert(!console_web_hashed("/assets/app-dashboard.js"));
	ck_assert(!console_web_hashed("/index.html"));
	ck_assert(!console_web_hashed("/assets/a-1234567.js")); /* 7: too short */
	ck_assert_str_eq(console_web_type("/a.js"), "text/javascript; charset=utf-8");
	ck_assert_str_eq(console_web_type("/a.svg"), "image/svg+xml");
	ck_assert_str_eq(console_web_type("/a.exe"), "application/octet-stream");
	ck_assert_str_eq(console_web_type("/a.d/b"), "application/octet-stream");
}
END_TEST

START_TEST(cookies)
{
	const char *v = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char out[72], in[256];
	snprintf(in, sizeof in, "theme=dark; dlpgate_session=%s; x=1", v);
	console_cookie_session(in, strlen(in), out);
	ck_assert_str_eq(out, v);
	snprintf(in, sizeof in, "dlpgate_session=%s", v);
	console_cookie_session(in, strlen(in), out);
	ck_assert_str_eq(out, v);
	/* two of them, a short or upper-case value, a prefix of the name: none */
	const char *bad[] = {"dlpgate_session=%s; dlpgate_session=%s", "dlpgate_session=ABC", "xdlpgate_session=%s",
			     "dlpgate_session=%sff"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(in, sizeof in, bad[i], v, v);
		console_cookie_session(in, strlen(in), out);
		ck_assert_msg(!out[0], "%s", in);
	}
	ck_assert(console_token_equal(v, v));
	ck_assert(!console_token_equal(v, "0123"));
	ck_assert(!console_token_equal("", ""));
}
END_TEST

Suite *console_parse_suite(void)
{
	Suite *s = suite_create("console_parse");
	TCase *t = tcase_create("parse");
	tcase_add_test(t, params);
	tcase_add_test(t, times);
	tcase_add_test(t, cursors);
	tcase_add_test(t, gunzip_caps);
	tcase_add_test(t, event_lines);
	tcase_add_test(t, detector_confidence);
	tcase_add_test(t, web_paths);
	tcase_add_test(t, cookies);
	suite_add_tcase(s, t);
	return s;
}
