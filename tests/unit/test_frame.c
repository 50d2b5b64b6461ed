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

#include <stdio.h>
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

Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *t = tcase_create("frame");
	tcase_add_test(t, request_round_trip_and_split_anywhere);
	tcase_add_test(t, replies);
	tcase_add_test(t, bad_headers_are_named);
	tcase_add_test(t, bypass_table);
	suite_add_tcase(s, t);
	return s;
}
