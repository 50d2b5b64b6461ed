/*
 * The extension's reading of the engine's reply (sysext/extension/
 * engine_reply.h) on a real non-blocking socketpair: the reply is decoded
 * however the bytes arrive, the flow's bytes behind it stay in the socket
 * for the relay, and an engine that closes early or speaks something
 * else is a named failure.
 */
#include "suites.h"
#include "../sysext/extension/engine_reply.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int ext = -1, eng = -1; /* the extension's end (non-blocking), the engine's */

static void pair(void)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
	ext = sv[0];
	eng = sv[1];
}

static void unpair(void)
{
	close(ext);
	if (eng >= 0)
		close(eng);
	ext = eng = -1;
}

static bytebuf_t reply_frame(frame_verdict_t v, const char *reason)
{
	frame_reply_t r = {.verdict = v};
	snprintf(r.reason, sizeof r.reason, "%s", reason);
	snprintf(r.policy_version, sizeof r.policy_version, "p-42");
	bytebuf_t b;
	bytebuf_init(&b, 0);
	ck_assert(frame_reply_encode(&r, &b));
	return b;
}

static void send_all(const void *p, size_t n)
{
	ck_assert_int_eq(write(eng, p, n), (ssize_t)n);
}

START_TEST(reply_then_flow_bytes_stay_for_the_relay)
{
	pair();
	bytebuf_t b = reply_frame(FRAME_ACCEPT, "");
	bytebuf_append(&b, "\x16\x03\x01SERVER", 9); /* the server spoke first */
	send_all(b.data, b.len);
	engine_reply_t rr;
	engine_reply_init(&rr);
	frame_reply_t r;
	char err[200];
	ck_assert_int_eq(engine_reply_read(&rr, ext, &r, err, sizeof err), FRAME_OK);
	ck_assert_int_eq(r.verdict, FRAME_ACCEPT);
	ck_assert_str_eq(r.policy_version, "p-42");
	char rest[32];
	ck_assert_int_eq(read(ext, rest, sizeof rest), 9);
	ck_assert(memcmp(rest, "\x16\x03\x01SERVER", 9) == 0);
	bytebuf_free(&b);
	unpair();
}
END_TEST

/* Every split of the frame: nothing decoded early, nothing read past. */
START_TEST(split_anywhere)
{
	bytebuf_t b = reply_frame(FRAME_BYPASS, "static site list: bank");
	for (size_t k = 1; k < b.len; k++) {
		pair();
		engine_reply_t rr;
		engine_reply_init(&rr);
		frame_reply_t r;
		char err[200];
		send_all(b.data, k);
		ck_assert_int_eq(engine_reply_read(&rr, ext, &r, err, sizeof err), FRAME_NEED_MORE);
		ck_assert_int_eq(engine_reply_read(&rr, ext, &r, err, sizeof err), FRAME_NEED_MORE); /* a spurious event */
		send_all(b.data + k, b.len - k);
		send_all("X", 1);
		ck_assert_int_eq(engine_reply_read(&rr, ext, &r, err, sizeof err), FRAME_OK);
		ck_assert_int_eq(r.verdict, FRAME_BYPASS);
		ck_assert_str_eq(r.reason, "static site list: bank");
		char x;
		ck_assert_int_eq(read(ext, &x, 1), 1);
		ck_assert_int_eq(x, 'X');
		unpair();
	}
	bytebuf_free(&b);
}
END_TEST

START_TEST(engine_closes_before_its_reply)
{
	bytebuf_t b = reply_frame(FRAME_REJECT, "blocked");
	size_t cuts[] = {0, 3, FRAME_PREFIX, b.len - 1};
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		pair();
		send_all(b.data, cuts[i]);
		close(eng);
		eng = -1;
		engine_reply_t rr;
		engine_reply_init(&rr);
		frame_reply_t r;
		char err[200] = "";
		ck_assert_int_eq(engine_reply_read(&rr, ext, &r, err, sizeof err), FRAME_BAD);
		ck_assert_str_eq(err, "the engine closed before its reply");
		unpair();
	}
	bytebuf_free(&b);
}
END_TEST

START_TEST(not_a_reply_frame)
{
	pair();
	send_all("HTTP/1.1 200 OK\r\n\r\n", 19);
	engine_reply_t rr;
	engine_reply_init(&rr);
	frame_reply_t r;
	char err[200] = "";
	ck_assert_int_eq(engine_reply_read(&rr, ext, &r, err, sizeof err), FRAME_BAD);
	ck_assert_ptr_nonnull(strstr(err, "not a dlpgate"));
	unpair();

	/* a prefix announcing more than a frame may hold: refused at the prefix,
	 * with nothing read past it */
	pair();
	uint8_t big[FRAME_PREFIX + 1] = {'D', 'L', 'P', 'F', 0, 1, 0, 0x01, 0, 0, 'Z'};
	send_all(big, sizeof big);
	engine_reply_init(&rr);
	ck_assert_int_eq(engine_reply_read(&rr, ext, &r, err, sizeof err), FRAME_BAD);
	ck_assert_ptr_nonnull(strstr(err, "allowed"));
	ck_assert_uint_eq(rr.have, FRAME_PREFIX);
	unpair();
}
END_TEST

Suite *sysext_engine_reply_suite(void)
{
	Suite *s = suite_create("sysext_engine_reply");
	TCase *t = tcase_create("engine_reply");
	tcase_add_test(t, reply_then_flow_bytes_stay_for_the_relay);
	tcase_add_test(t, split_anywhere);
	tcase_add_test(t, engine_closes_before_its_reply);
	tcase_add_test(t, not_a_reply_frame);
	suite_add_tcase(s, t);
	return s;
}
