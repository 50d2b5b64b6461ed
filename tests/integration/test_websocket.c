/*
 * WebSockets through the explicit proxy with TLS interception: after the
 * 101, messages are judged by the policy. Real peers: Debian's
 * python3-websockets as the TLS server (it records every byte it gets and
 * every message it understands) and as the client (through CONNECT,
 * offering permessage-deflate as browsers do). With the shipped default
 * policy a card never reaches the server in clear, whether sent as text,
 * binary or split across fragments, and whether compression was offered;
 * a credential closes both ends with 1008 and is an event; a clean
 * message, ping/pong and close pass both ways. Any other protocol switch
 * (h2c) goes to on_uninspectable before the client hears of it.
 */
#include "dlp.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CARD_SPACED "4111 1111 1111 1111"
#define CARD_PLAIN "4111111111111111"

typedef struct {
	world_t w;
	th_proc server;
	int port;
	char *log;      /* what the server understood, JSON lines */
	char *raw;      /* every byte it received after TLS */
	dlp_t d;
	char policy[600];
} ws_fixture_t;

static const char *peer_script(void)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/tests/integration/ws_peer.py", getenv("DLPGATE_TOP"));
	return path;
}

static void start_peer(ws_fixture_t *fx, const char *mode, const char *name)
{
	fx->port = th_free_port();
	char port[16];
	snprintf(port, sizeof port, "%d", fx->port);
	fx->log = th_path(name);
	size_t n = strlen(fx->log) + 5;
	fx->raw = malloc(n);
	snprintf(fx->raw, n, "%s.raw", fx->log);
	char *argv[] = {"/usr/bin/python3", (char *)peer_script(), (char *)mode, port, fx->w.server.cert_path,
			fx->w.server.key_path, fx->log, NULL};
	char logname[64];
	snprintf(logname, sizeof logname, "%s.out", name);
	fx->server = th_spawn(argv, logname);
	if (!th_wait_port(fx->port, 15000))
		th_fail("ws_peer %s did not listen: %s", mode, th_log(&fx->server));
}

/* policy: NULL for rules/default.lua */
static void setup(ws_fixture_t *fx, const char *mode, const char *policy)
{
	memset(fx, 0, sizeof *fx);
	fx->w = world_new();
	static int n;
	char name[32];
	snprintf(name, sizeof name, "ws-%s-%d.log", mode, ++n);
	start_peer(fx, mode, name);
	if (policy)
		snprintf(fx->policy, sizeof fx->policy, "%s", policy);
	else
		snprintf(fx->policy, sizeof fx->policy, "%s/rules/default.lua", getenv("DLPGATE_TOP"));
	fx->d = dlp_start(fx->w.ca.cert_path, NULL, (const char *const[]){"--policy", fx->policy, NULL});
}

static void teardown(ws_fixture_t *fx)
{
	dlp_stop(&fx->d);
	th_stop(&fx->server);
	world_free(&fx->w);
	free(fx->log);
	free(fx->raw);
}

/* The python client through the proxy; its JSON lines. */
static char *client(ws_fixture_t *fx, const char *scenario)
{
	char proxy[16], port[16];
	snprintf(proxy, sizeof proxy, "%d", fx->d.port);
	snprintf(port, sizeof port, "%d", fx->port);
	char *argv[] = {"/usr/bin/python3", (char *)peer_script(), "client", proxy, port, fx->d.ca_path, (char *)scenario, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run(argv, NULL, 0, &out, NULL, &err, 30000);
	ck_assert_msg(rc == 0, "client %s: exit %d: %s\n%s", scenario, rc, err, out);
	free(err);
	return out;
}

static char *server_saw(ws_fixture_t *fx, const char *needle)
{
	/* the server logs asynchronously from the client's view: wait for it */
	for (int i = 0; i < 100; i++) {
		size_t len = 0;
		char *s = th_read_file(fx->log, &len);
		if (s && (!needle || strstr(s, needle)))
			return s;
		free(s);
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	size_t len = 0;
	char *s = th_read_file(fx->log, &len);
	ck_assert_msg(0, "the server never logged %s:\n%s", needle, s ? s : "(nothing)");
	return s;
}

static void assert_no_card(const char *where, const char *text)
{
	ck_assert_msg(!strstr(text, CARD_SPACED) && !strstr(text, CARD_PLAIN) && !strstr(text, "4111 11"),
		      "a card in clear in %s:\n%s", where, text);
}

START_TEST(default_policy_redacts_cards_in_every_kind_of_message)
{
	ws_fixture_t fx;
	setup(&fx, "server", NULL);
	char *out = client(&fx, "text,binary,fragments,clean,ping,close");
	/* compression was offered by the client and never agreed */
	ck_assert_msg(strstr(out, "{\"kind\": \"open\", \"extensions\": []}"), "%s", out);
	ck_assert_msg(strstr(out, "\"data\": \"my card is ") && strstr(out, ", thanks\""), "%s", out);
	ck_assert_msg(strstr(out, "\"type\": \"binary\", \"data\": \"\\u0000\\u0001card="), "%s", out);
	ck_assert_msg(strstr(out, "\"data\": \"pay with ") && strstr(out, " please\""), "%s", out);
	ck_assert_msg(strstr(out, "\"data\": \"hello, nothing to see\""), "clean message changed: %s", out);
	ck_assert_msg(strstr(out, "{\"kind\": \"pong\"}"), "no pong: %s", out);
	ck_assert_msg(strstr(out, "{\"kind\": \"closed\", \"code\": 1000}"), "close did not pass: %s", out);
	assert_no_card("what came back", out);

	char *log = server_saw(&fx, "\"kind\": \"close\"");
	ck_assert_msg(strstr(log, "\"data\": \"hello, nothing to see\""), "%s", log);
	ck_assert_msg(strstr(log, "\"code\": 1000"), "%s", log);
	ck_assert_msg(strstr(log, "\"extensions\": []"), "%s", log);
	ck_assert_msg(!strstr(log, "Sec-WebSocket-Extensions"), "the deflate offer reached the server: %s", log);
	assert_no_card("the server's messages", log);
	/* the same length as sent: masked in place */
	ck_assert_msg(strstr(log, "\"data\": \"my card is ") && strstr(log, ", thanks\""), "%s", log);
	size_t rawlen = 0;
	char *raw = th_read_file(fx.raw, &rawlen);
	ck_assert(raw && rawlen > 0);
	ck_assert_msg(!memmem(raw, rawlen, CARD_SPACED, strlen(CARD_SPACED)) && !memmem(raw, rawlen, CARD_PLAIN, 16),
		      "a card in the server's raw bytes");
	ck_assert_msg(memmem(raw, rawlen, "GET /chat?room=1 HTTP/1.1", 25), "no handshake in the raw bytes");

	/* each redaction is an event at the message stage, valid per the schema */
	ck_assert(dlp_log_wait(&fx.d, "\"stage\":\"message\"", 5000));
	char *dl = dlp_log(&fx.d);
	ck_assert_msg(strstr(dl, "\"verdict\":\"redact\"") && strstr(dl, "credit_card"), "%s", dl);
	assert_no_card("dlpgate's log", dl);
	ck_assert_msg(strstr(dl, "mode=websocket-tls"), "%s", dl);
	char lines[16384] = "";
	size_t n = 0;
	for (char *l = dl; l && *l;) {
		char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);
		if (memmem(l, len, "\"stage\":\"message\"", 17) && n + len + 2 < sizeof lines) {
			memcpy(lines + n, l, len);
			n += len;
			lines[n++] = '\n';
			lines[n] = '\0';
		}
		l = e ? e + 1 : NULL;
	}
	char *bad = ajv_check_with("verdict.schema.json", lines);
	ck_assert_msg(!bad, "%s", bad);
	free(dl), free(raw), free(log), free(out);
	teardown(&fx);
}
END_TEST

START_TEST(a_credential_closes_both_ends_with_1008)
{
	ws_fixture_t fx;
	setup(&fx, "server", NULL);
	char *out = client(&fx, "clean,credential,clean");
	ck_assert_msg(strstr(out, "\"data\": \"hello, nothing to see\""), "%s", out);
	ck_assert_msg(strstr(out, "{\"kind\": \"closed\", \"code\": 1008, \"reason\": \"dlpgate: blocked by policy (event "),
		      "%s", out);
	char *log = server_saw(&fx, "\"kind\": \"close\"");
	ck_assert_msg(strstr(log, "\"code\": 1008"), "the server was not told: %s", log);
	ck_assert_msg(!strstr(log, "AKIA"), "the credential reached the server: %s", log);
	size_t rawlen = 0;
	char *raw = th_read_file(fx.raw, &rawlen);
	ck_assert(!memmem(raw, rawlen, "AKIAIOSFODNN7EXAMPLE", 20));
	ck_assert(dlp_log_wait(&fx.d, "\"verdict\":\"block\"", 5000));
	char *dl = dlp_log(&fx.d);
	ck_assert_msg(strstr(dl, "\"stage\":\"message\"") && strstr(dl, "credential upload: aws_access_key_id"), "%s", dl);
	ck_assert_msg(!strstr(dl, "AKIAIOSFODNN7EXAMPLE"), "the secret in the log: %s", dl);
	free(dl), free(raw), free(log), free(out);
	teardown(&fx);
}
END_TEST

START_TEST(a_message_over_the_limit_closes_with_1009)
{
	ws_fixture_t fx;
	setup(&fx, "server", NULL);
	char *out = client(&fx, "clean,big");
	ck_assert_msg(strstr(out, "\"code\": 1009"), "%s", out);
	char *log = server_saw(&fx, "\"kind\": \"close\"");
	ck_assert_msg(strstr(log, "\"code\": 1009") && !strstr(log, "xxxxxxxx"), "%s", log);
	ck_assert(dlp_log_wait(&fx.d, "\"note\":\"oversize\"", 5000));
	free(log), free(out);
	teardown(&fx);
}
END_TEST

/* h2c over TLS: an Upgrade dlpgate cannot read. The request goes up (the
 * server must answer it), the client's bytes after it never do unless the
 * policy lets the switch through. */
static char *h2c_try(ws_fixture_t *fx, char **received)
{
	th_client *c = th_client_connect_via_proxy(fx->d.port, "localhost", fx->port, fx->d.ca_path, "localhost");
	const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
			  "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
			  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\ncard " CARD_SPACED;
	th_client_send(c, req, strlen(req));
	size_t len;
	char *r = th_client_recv_response(c, &len, 5000);
	ck_assert(r);
	if (th_client_status(r) == 101) {
		char *echo = th_client_recv_exact(c, strlen("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\ncard " CARD_SPACED), 5000);
		free(echo);
	}
	th_client_close(c);
	size_t rawlen = 0;
	for (int i = 0; i < 20; i++) {
		free(*received);
		*received = th_read_file(fx->raw, &rawlen);
		if (*received && strstr(*received, "\r\n\r\n"))
			break;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return r;
}

START_TEST(h2c_goes_to_on_uninspectable)
{
	ws_fixture_t fx;
	setup(&fx, "h2c", NULL);
	char *got = NULL;
	char *r = h2c_try(&fx, &got);
	ck_assert_msg(th_client_status(r) == 403 && strstr(r, "cannot (upgrade)"), "%s", r);
	ck_assert_msg(got && strstr(got, "Upgrade: h2c"), "the server never got the request: %s", got ? got : "");
	ck_assert_msg(!strstr(got, "PRI *") && !strstr(got, CARD_SPACED), "bytes after the Upgrade went up: %s", got);
	ck_assert(dlp_log_wait(&fx.d, "\"note\":\"uninspectable:upgrade\"", 5000));
	char *dl = dlp_log(&fx.d);
	ck_assert_msg(strstr(dl, "\"verdict\":\"block\"") && strstr(dl, "a switch to protocol \\\"h2c\\\""), "%s", dl);
	free(dl), free(r), free(got);
	teardown(&fx);

	/* a policy that lets the switch through: spliced, and said so */
	const char *src = "local dlp = require \"dlp\"\n"
			  "function on_request(req) return dlp.pass() end\n"
			  "function on_uninspectable(flow, why)\n"
			  "  if why.code == \"upgrade\" then return dlp.bypass(\"h2c allowed\") end\n"
			  "  return dlp.block(\"no\")\n"
			  "end\n";
	char *pol = th_path("h2c-bypass.lua");
	th_write_file(pol, src, strlen(src), 0644);
	setup(&fx, "h2c", pol);
	got = NULL;
	r = h2c_try(&fx, &got);
	ck_assert_msg(th_client_status(r) == 101, "%s", r);
	ck_assert(dlp_log_wait(&fx.d, "\"note\":\"uninspectable:upgrade\"", 5000));
	ck_assert(dlp_log_wait(&fx.d, "mode=upgrade-tls", 5000));
	free(r), free(got), free(pol);
	teardown(&fx);
}
END_TEST

/* A server that agrees to permessage-deflate nobody offered (dlpgate took
 * the offer out): the client gets a 502 instead of the 101, and what it
 * sent after its request never goes up. */
START_TEST(an_extension_nobody_offered_is_refused)
{
	ws_fixture_t fx;
	setup(&fx, "deflate", NULL);
	th_client *c = th_client_connect_via_proxy(fx.d.port, "localhost", fx.port, fx.d.ca_path, "localhost");
	const char *req = "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
			  "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
			  "\xc1\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
	th_client_send(c, req, strlen(req));
	size_t len;
	char *r = th_client_recv_response(c, &len, 5000);
	ck_assert_msg(r && th_client_status(r) == 502 && strstr(r, "extension nobody offered"), "%s", r ? r : "");
	th_client_close(c);
	size_t rawlen = 0;
	char *got = th_read_file(fx.raw, &rawlen);
	ck_assert_msg(got && strstr(got, "Upgrade: websocket"), "the request never went up");
	ck_assert_msg(!strstr(got, "Sec-WebSocket-Extensions"), "the offer went up: %s", got);
	const char *end = strstr(got, "\r\n\r\n");
	ck_assert_msg(end && (size_t)(end + 4 - got) == rawlen, "bytes after the request went up");
	free(r), free(got);
	teardown(&fx);
}
END_TEST

/* An ordinary browser WebSocket under the shipped policy: it opens
 * (Chromium's deflate offer taken out), a clean message comes back as
 * sent, a card comes back masked, close 1000 passes. */
START_TEST(chromium_websocket_works_and_is_inspected)
{
	ws_fixture_t fx;
	setup(&fx, "server", NULL);
	char script[600], wss[64];
	snprintf(script, sizeof script, "%s/tests/integration/ws_chromium.js", getenv("DLPGATE_TOP"));
	snprintf(wss, sizeof wss, "wss://localhost:%d/live", fx.port);
	char proxy[16];
	snprintf(proxy, sizeof proxy, "%d", fx.d.port);
	char *profile = th_path("chromium-profile");
	char *argv[] = {"node", script, proxy, wss, profile, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run(argv, NULL, 0, &out, NULL, &err, 60000);
	ck_assert_msg(rc == 0, "chromium: %d %s\n%s", rc, out, err);
	ck_assert_msg(strstr(out, "\"extensions\":\"\""), "%s", out);
	ck_assert_msg(strstr(out, "\"card 4111 **** **** 1111 from the page\""), "%s", out);
	ck_assert_msg(strstr(out, "\"hello from the page\""), "%s", out);
	ck_assert_msg(strstr(out, "\"binary:bin 4111********1111\""), "%s", out);
	ck_assert_msg(strstr(out, "\"close\":1000"), "%s", out);
	char *log = server_saw(&fx, "\"kind\": \"close\"");
	assert_no_card("what the server got from Chromium", log);
	ck_assert_msg(strstr(log, "\"data\": \"hello from the page\""), "%s", log);
	ck_assert_msg(strstr(log, "permessage-deflate") == NULL, "%s", log);
	free(log), free(out), free(err), free(profile);
	teardown(&fx);
}
END_TEST

/* A policy without on_message: the upload rules judge what the client
 * sends, the download rules what the server sends (dlpgate test, the
 * same code path the relay takes). */
START_TEST(without_on_message_request_and_response_rules_judge_messages)
{
	const char *policy = "local dlp = require \"dlp\"\n"
			     "function on_request(req)\n"
			     "  if req:body():find(\"secret\") then return dlp.block(\"up: \" .. req.path) end\n"
			     "  return dlp.pass()\n"
			     "end\n"
			     "function on_response(res, req)\n"
			     "  if res:body():find(\"secret\") then return dlp.block(\"down: \" .. res.status) end\n"
			     "  return dlp.pass()\n"
			     "end\n";
	const char *cases = "return {\n"
			    " { name = \"up\", request = { url = \"https://chat.example/live\" },\n"
			    "   websocket = { data = \"a secret\" }, expect = { verdict = \"block\", reason = \"up: /live\" } },\n"
			    " { name = \"down\", websocket = { from = \"server\", data = \"a secret\" },\n"
			    "   expect = { verdict = \"block\", reason = \"down: 101\" } },\n"
			    " { name = \"clean\", websocket = { data = \"hello\" }, expect = { verdict = \"pass\", body = \"hello\" } },\n"
			    "}\n";
	char *pol = th_path("no-on-message.lua"), *tests = th_path("no-on-message_test.lua");
	th_write_file(pol, policy, strlen(policy), 0644);
	th_write_file(tests, cases, strlen(cases), 0644);
	char *argv[] = {(char *)dlp_bin(), "test", pol, tests, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run(argv, NULL, 0, &out, NULL, &err, 15000);
	ck_assert_msg(rc == 0 && strstr(out, "3 passed, 0 failed"), "%d:\n%s%s", rc, out, err);
	free(out), free(err), free(pol), free(tests);
}
END_TEST

Suite *websocket_suite(void)
{
	Suite *s = suite_create("websocket");
	TCase *t = tcase_create("websocket");
	tcase_set_timeout(t, 90);
	tcase_add_test(t, default_policy_redacts_cards_in_every_kind_of_message);
	tcase_add_test(t, a_credential_closes_both_ends_with_1008);
	tcase_add_test(t, a_message_over_the_limit_closes_with_1009);
	tcase_add_test(t, h2c_goes_to_on_uninspectable);
	tcase_add_test(t, an_extension_nobody_offered_is_refused);
	tcase_add_test(t, without_on_message_request_and_response_rules_judge_messages);
	tcase_add_test(t, chromium_websocket_works_and_is_inspected);
	suite_add_tcase(s, t);
	return s;
}
