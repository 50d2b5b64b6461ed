/*
 * Flow frames (sources/frame.h): what the extension encodes the engine
 * decodes to the same fields; a frame split anywhere asks for more and
 * never decodes early; each way a header can be wrong is named. The
 * static bypass table (sources/bypass.h): decoded strictly, matched as
 * the default policy's on_flow would decide.
 */
#include "suites.h"
#include "sources/bypass.h"
#include "sources/frame.h"
#include "core/strictjson.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static frame_request_t sample(void)
{
	frame_request_t r = {0};
	snprintf(r.extension_version, sizeof r.extension_version, "1.2.0");
	snprintf(r.flow_id, sizeof r.flow_id, "7F3A-11");
	snprintf(r.dst_ip, sizeof r.dst_ip, "2001:db8::1");
	r.dst_port = 443;
	snprintf(r.hostname, sizeof r.hostname, "upload.example.com");
	r.app.pid = 4242;
	r.app.uid = 501;
	snprintf(r.app.path, sizeof r.app.path, "/Applications/Résumé Uploader.app/Contents/MacOS/Uploader");
	snprintf(r.app.signing_id, sizeof r.app.signing_id, "com.acme.uploader");
	snprintf(r.app.team_id, sizeof r.app.team_id, "ABCDE12345");
	r.app.anchor = FRAME_ANCHOR_DEVELOPER_ID;
	memset(r.app.audit_token_sha256, 'e', 64);
	return r;
}

START_TEST(request_round_trip_and_split_anywhere)
{
	frame_request_t r = sample(), got;
	bytebuf_t b;
	bytebuf_init(&b, 0);
	char err[200];
	ck_assert(frame_request_encode(&r, &b, err, sizeof err));
	const char *tail = "\x16\x03\x01"; /* the flow's first bytes follow the frame */
	bytebuf_append(&b, tail, 3);
	size_t used = 0;
	for (size_t n = 0; n < b.len - 3; n++)
		ck_assert_int_eq(frame_request_decode((const uint8_t *)b.data, n, &got, &used, err, sizeof err),
				 FRAME_NEED_MORE);
	ck_assert_int_eq(frame_request_decode((const uint8_t *)b.data, b.len, &got, &used, err, sizeof err), FRAME_OK);
	ck_assert_uint_eq(used, b.len - 3);
	ck_assert(memcmp(&r, &got, sizeof r) == 0);
	bytebuf_free(&b);

	/* an unsigned tool: no signing id, team id or host name */
	frame_request_t u = sample();
	memset(u.app.signing_id, 0, sizeof u.app.signing_id);
	memset(u.app.team_id, 0, sizeof u.app.team_id);
	memset(u.hostname, 0, sizeof u.hostname);
	u.app.anchor = FRAME_ANCHOR_UNSIGNED;
	bytebuf_init(&b, 0);
	ck_assert(frame_request_encode(&u, &b, err, sizeof err));
	ck_assert(!memmem(b.data, b.len, "signing_id", 10) && !memmem(b.data, b.len, "hostname", 8));
	ck_assert_int_eq(frame_request_decode((const uint8_t *)b.data, b.len, &got, &used, err, sizeof err), FRAME_OK);
	ck_assert(memcmp(&u, &got, sizeof u) == 0);
	bytebuf_free(&b);
}
END_TEST

START_TEST(replies)
{
	frame_reply_t r = {.verdict = FRAME_BYPASS, .reason = "Apple platform code com.apple.nsurlsessiond"}, got;
	bytebuf_t b;
	bytebuf_init(&b, 0);
	ck_assert(frame_reply_encode(&r, &b));
	size_t used;
	char err[200];
	ck_assert_int_eq(frame_reply_decode((const uint8_t *)b.data, b.len, &got, &used, err, sizeof err), FRAME_OK);
	ck_assert_int_eq(got.verdict, FRAME_BYPASS);
	ck_assert_str_eq(got.reason, r.reason);
	bytebuf_free(&b);
}
END_TEST

static void bad(const char *json, const char *want)
{
	char frame[4096];
	size_t n = strlen(json);
	memcpy(frame, "DLPF\x00\x01", 6);
	for (int i = 0; i < 4; i++)
		frame[6 + i] = (char)(n >> (24 - 8 * i));
	memcpy(frame + FRAME_PREFIX, json, n);
	frame_request_t r;
	size_t used;
	char err[200] = "";
	ck_assert_int_eq(frame_request_decode((const uint8_t *)frame, FRAME_PREFIX + n, &r, &used, err, sizeof err),
			 FRAME_BAD);
	ck_assert_msg(strstr(err, want), "want \"%s\", got \"%s\" for %s", want, err, json);
}

#define APP "\"app\":{\"pid\":1,\"uid\":0,\"path\":\"/bin/sh\",\"anchor\":\"apple\",\"audit_token_sha256\":\"" \
	    "00000000000000000000000000000000000000000000000000000000000000ff\"}"
#define DST "\"dst\":{\"ip\":\"10.0.0.1\",\"port\":443}"
#define HEAD "{\"extension_version\":\"1\",\"flow_id\":\"a\","

START_TEST(bad_headers_are_named)
{
	bad(HEAD DST "," APP "}" "x", "header:");
	bad(HEAD DST "," APP ",\"x\":1}", "unknown field \"x\"");
	bad(HEAD DST "," APP ",\"hostname\":\"a b\"}", "\"hostname\" holds a character");
	bad(HEAD DST "}", "\"app\" must be an object");
	bad(HEAD "\"dst\":{\"ip\":\"10.0.0.1\"}," APP "}", "dst: missing \"port\"");
	bad(HEAD "\"dst\":{\"ip\":\"10.0.0.256\",\"port\":1}," APP "}", "not a numeric");
	bad(HEAD DST ",\"app\":{\"pid\":-1}}", "\"pid\" must be a whole number");
	bad(HEAD DST ",\"app\":{\"pid\":1,\"uid\":0,\"path\":\"bin/sh\",\"anchor\":\"apple\",\"audit_token_sha256\":\""
		     "00000000000000000000000000000000000000000000000000000000000000ff\"}}",
	    "must be absolute");
	bad(HEAD DST ",\"app\":{\"pid\":1,\"uid\":0,\"path\":\"/x\",\"anchor\":\"root\",\"audit_token_sha256\":\""
		     "00000000000000000000000000000000000000000000000000000000000000ff\"}}",
	    "\"anchor\" must be apple");
	bad(HEAD DST ",\"app\":{\"pid\":1,\"uid\":0,\"path\":\"/x\",\"anchor\":\"apple\",\"audit_token_sha256\":\"AB\"}}",
	    "\"audit_token_sha256\" is 2 bytes");
	bad(HEAD DST "," APP ",\"flow_id\":\"b\"}", "header:"); /* a key twice */
	bad("{\"extension_version\":\"1\\u0000\"}", "header:");
	bad("[1, 2]", "not a JSON object");
	frame_request_t r;
	size_t used;
	char err[200];
	ck_assert_int_eq(frame_request_decode((const uint8_t *)"DLPX", 4, &r, &used, err, sizeof err), FRAME_BAD);
	ck_assert_int_eq(frame_request_decode((const uint8_t *)"DL", 2, &r, &used, err, sizeof err), FRAME_NEED_MORE);
	ck_assert_int_eq(frame_request_decode((const uint8_t *)"DLPF\x00\x01\x00\x00\x40\x01", 10, &r, &used, err,
					      sizeof err),
			 FRAME_BAD);
	ck_assert(strstr(err, "16385 bytes"));
}
END_TEST

START_TEST(bypass_table)
{
	static const char json[] = "{\"policy_version\":\"sha256:ab\",\"apple_platform\":true,"
				   "\"except_signing_ids\":[\"com.apple.curl\",\"com.apple.Safari\"],"
				   "\"hosts\":[\"apple.com\",\"*.icloud.com\"]}";
	bypass_table_t t;
	char err[200], why[300];
	ck_assert(bypass_table_decode(json, strlen(json), &t, err, sizeof err));
	ck_assert_str_eq(t.policy_version, "sha256:ab");
	ck_assert(bypass_table_match(&t, FRAME_ANCHOR_APPLE, "com.apple.nsurlsessiond", NULL, why, sizeof why));
	ck_assert_str_eq(why, "Apple platform code com.apple.nsurlsessiond");
	ck_assert(!bypass_table_match(&t, FRAME_ANCHOR_APPLE, "com.apple.curl", "upload.example.com", why, sizeof why));
	ck_assert(!bypass_table_match(&t, FRAME_ANCHOR_DEVELOPER_ID, "com.apple.nsurlsessiond", NULL, why, sizeof why));
	ck_assert(bypass_table_match(&t, FRAME_ANCHOR_DEVELOPER_ID, "com.acme.x", "P34-Contacts.iCloud.com", why, sizeof why));
	ck_assert(!bypass_table_match(&t, FRAME_ANCHOR_UNSIGNED, "", "icloud.com", why, sizeof why));
	bypass_table_free(&t);
	static const char bad[] = "{\"hosts\":[\"bad host\"]}";
	ck_assert(!bypass_table_decode(bad, strlen(bad), &t, err, sizeof err));
	ck_assert_msg(strstr(err, "hosts[1]"), "%s", err);
	ck_assert(!bypass_table_decode("[]", 2, &t, err, sizeof err));
}
END_TEST

/* strictjson, the frame protocol's JSON: what RFC 8259 allows is read,
 * everything else is refused with the column where it went wrong. */
static void json_refused(const char *text, size_t n, const char *want)
{
	sjson_doc_t d;
	char err[200] = "";
	ck_assert_msg(!sjson_parse(&d, text, n, err, sizeof err), "accepted: %s", text);
	ck_assert_msg(strstr(err, want), "want \"%s\", got \"%s\" for %s", want, err, text);
}
#define REFUSED(lit, want) json_refused(lit, sizeof lit - 1, want)

START_TEST(strictjson_reads_what_json_allows)
{
	static const char text[] = " {\"a\" : [1, -9223372036854775808, 9223372036854775807, 2.5e-3, true, false, null],"
				   "\"s\":\"\\u00e9\\ud83d\\ude00\\n\\\"\\/\xc3\xa9\", \"o\":{}, \"e\":[]} ";
	sjson_doc_t d;
	char err[200];
	ck_assert_msg(sjson_parse(&d, text, sizeof text - 1, err, sizeof err), "%s", err);
	const sjson_node_t *root = sjson_root(&d);
	ck_assert_int_eq(root->type, SJSON_OBJECT);
	ck_assert_int_eq(root->len, 4);
	const sjson_node_t *a = sjson_get(&d, root, "a");
	ck_assert_int_eq(a->len, 7);
	const sjson_node_t *v = sjson_first(&d, a);
	ck_assert(v->type == SJSON_INT && v->integer == 1);
	v = sjson_next(&d, v);
	ck_assert(v->type == SJSON_INT && v->integer == INT64_MIN);
	v = sjson_next(&d, v);
	ck_assert(v->type == SJSON_INT && v->integer == INT64_MAX);
	v = sjson_next(&d, v);
	ck_assert_int_eq(v->type, SJSON_REAL);
	v = sjson_next(&d, v);
	ck_assert(v->type == SJSON_BOOL && v->boolean);
	v = sjson_next(&d, v);
	ck_assert(v->type == SJSON_BOOL && !v->boolean);
	v = sjson_next(&d, v);
	ck_assert_int_eq(v->type, SJSON_NULL);
	ck_assert_ptr_null(sjson_next(&d, v));
	const sjson_node_t *s = sjson_get(&d, root, "s");
	ck_assert_str_eq(s->str, "\xc3\xa9\xf0\x9f\x98\x80\n\"/\xc3\xa9");
	ck_assert_int_eq(s->len, strlen(s->str));
	ck_assert_int_eq(sjson_get(&d, root, "o")->type, SJSON_OBJECT);
	ck_assert_ptr_null(sjson_first(&d, sjson_get(&d, root, "e")));
	ck_assert_ptr_null(sjson_get(&d, root, "missing"));
	ck_assert_ptr_null(sjson_get(&d, a, "a")); /* not an object */
	sjson_free(&d);

	bytebuf_t out;
	bytebuf_init(&out, 0);
	ck_assert(sjson_put_string(&out, "a\"b\\c\n\x01\xc3\xa9"));
	ck_assert(bytebuf_cstr(&out));
	ck_assert_str_eq(out.data, "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\"");
	ck_assert(sjson_parse(&d, out.data, out.len, err, sizeof err));
	ck_assert_str_eq(sjson_root(&d)->str, "a\"b\\c\n\x01\xc3\xa9");
	sjson_free(&d);
	ck_assert(!sjson_put_string(&out, "\xc3")); /* not UTF-8: never written */
	bytebuf_free(&out);
}
END_TEST

START_TEST(strictjson_refuses_the_rest)
{
	REFUSED("", "unexpected end of input (column 1)");
	REFUSED("{\"a\":1,\"a\":2}", "duplicate object key \"a\" (column 8)");
	REFUSED("{\"a\":1} x", "end of input expected (column 9)");
	REFUSED("{\"a\":1,}", "string expected as an object key");
	REFUSED("[1,]", "unexpected character");
	REFUSED("[1 2]", "',' or ']' expected");
	REFUSED("{\"a\" 1}", "':' expected");
	REFUSED("\"\\u0000\"", "\\u0000 is not allowed");
	REFUSED("\"\\ud800\"", "high surrogate");
	REFUSED("\"\\udc00\"", "lone low surrogate");
	REFUSED("\"\\u12G4\"", "invalid \\u escape");
	REFUSED("\"\\x\"", "invalid escape \\x");
	REFUSED("\"a\tb\"", "control character");
	REFUSED("\"abc", "unterminated string");
	REFUSED("\"\xc0\xaf\"", "invalid UTF-8");          /* overlong '/' */
	REFUSED("\"\xed\xa0\x80\"", "invalid UTF-8");      /* a surrogate in UTF-8 */
	REFUSED("\"\xf4\x90\x80\x80\"", "invalid UTF-8"); /* past U+10FFFF */
	REFUSED("\"\xe2\x82\"", "invalid UTF-8");          /* cut short */
	REFUSED("01", "end of input expected");
	REFUSED("-", "invalid number");
	REFUSED("1.", "invalid number");
	REFUSED("1e", "invalid number");
	REFUSED("9223372036854775808", "whole number out of range (column 1)");
	REFUSED("-9223372036854775809", "whole number out of range");
	REFUSED("99999999999999999999999", "whole number out of range");
	REFUSED("tru", "invalid literal");
	REFUSED("nul", "invalid literal");
	REFUSED("\x00", "unexpected character");
	char deep[2 * SJSON_MAX_DEPTH + 3];
	memset(deep, '[', SJSON_MAX_DEPTH + 1);
	memset(deep + SJSON_MAX_DEPTH + 1, ']', SJSON_MAX_DEPTH + 1);
	json_refused(deep, 2 * SJSON_MAX_DEPTH + 2, "nested deeper than 32");
	sjson_doc_t d;
	char err[200];
	ck_assert(sjson_parse(&d, deep + 1, 2 * SJSON_MAX_DEPTH, err, sizeof err)); /* exactly the limit */
	sjson_free(&d);
	/* more values than allowed: a flat array of SJSON_MAX_NODES zeros */
	size_t n = 2 * SJSON_MAX_NODES + 1;
	char *many = malloc(n);
	many[0] = '[';
	for (size_t i = 0; i < SJSON_MAX_NODES; i++) {
		many[1 + 2 * i] = '0';
		many[2 + 2 * i] = i + 1 < SJSON_MAX_NODES ? ',' : ']';
	}
	json_refused(many, n, "more than 65536 values");
	free(many);
	bytebuf_t keys;
	bytebuf_init(&keys, 0);
	bytebuf_append_str(&keys, "{");
	for (int i = 0; i <= 256; i++)
		bytebuf_appendf(&keys, "%s\"k%d\":0", i ? "," : "", i);
	bytebuf_append_str(&keys, "}");
	json_refused(keys.data, keys.len, "more than 256 keys");
	bytebuf_free(&keys);
}
END_TEST

Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *t = tcase_create("frame");
	tcase_add_test(t, request_round_trip_and_split_anywhere);
	tcase_add_test(t, replies);
	tcase_add_test(t, bad_headers_are_named);
	tcase_add_test(t, bypass_table);
	tcase_add_test(t, strictjson_reads_what_json_allows);
	tcase_add_test(t, strictjson_refuses_the_rest);
	suite_add_tcase(s, t);
	return s;
}
