/*
 * WebSocket frames (http/ws.h): messages come out whole and unmasked
 * whatever the cut of the bytes and the fragmentation; control frames in
 * the middle of a fragmented message pass; each way a frame can break the
 * rules is refused with the close code RFC 6455 names; the reassembly
 * limit holds; what the writer frames the parser reads back.
 */
#include "suites.h"
#include "http/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char log[4096]; /* "T:hello|B:..|P:..|C:.." */
	size_t len;
	int stop_after;  /* stop the parser at the n-th callback (0: never) */
	int calls;
} sink_t;

static void note(sink_t *s, char tag, const uint8_t *data, size_t len)
{
	s->len += (size_t)snprintf(s->log + s->len, sizeof s->log - s->len, "%c:%.*s|", tag, (int)len, (const char *)data);
}

static bool got_message(void *ud, int op, uint8_t *data, size_t len)
{
	sink_t *s = ud;
	note(s, op == WS_OP_TEXT ? 'T' : 'B', data, len);
	return ++s->calls != s->stop_after;
}

static bool got_control(void *ud, int op, const uint8_t *data, size_t len)
{
	sink_t *s = ud;
	note(s, op == WS_OP_PING ? 'P' : op == WS_OP_PONG ? 'O' : 'C', data, len);
	return ++s->calls != s->stop_after;
}

static const ws_cbs_t cbs = {got_message, got_control};
static const uint8_t KEY[4] = {0x12, 0x34, 0x56, 0x78};

/* A frame as a client (masked) or server would send it. */
static void frame(bytebuf_t *b, bool fin, int op, const char *payload, bool masked)
{
	uint8_t h[WS_HEADER_MAX];
	size_t len = strlen(payload);
	size_t hl = ws_frame_header(h, fin, op, len, masked ? KEY : NULL);
	bytebuf_append(b, h, hl);
	size_t at = b->len;
	bytebuf_append(b, payload, len);
	if (masked)
		ws_mask((uint8_t *)b->data + at, len, KEY, 0);
}

static ws_status_t run(bool from_client, size_t max, const void *data, size_t len, size_t cut, sink_t *s,
		       ws_parser_t *p)
{
	ws_parser_init(p, from_client, max, &cbs, s);
	ws_status_t st = WS_OK;
	for (size_t at = 0; at < len && st == WS_OK; at += cut)
		st = ws_parser_feed(p, (const uint8_t *)data + at, len - at < cut ? len - at : cut);
	return st;
}

START_TEST(fragments_and_controls_any_cut)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
	frame(&b, false, WS_OP_TEXT, "card 4111 1111", true);
	frame(&b, false, WS_OP_CONT, " 1111 ", true);
	frame(&b, true, WS_OP_PING, "are you there", true); /* inside the message */
	frame(&b, true, WS_OP_CONT, "1111 end", true);
	frame(&b, true, WS_OP_BINARY, "", true);
	frame(&b, true, WS_OP_CLOSE, "\x03\xe8" "bye", true);
	const char *want = "P:are you there|T:card 4111 1111 1111 1111 end|B:|C:\x03\xe8" "bye|";
	for (size_t cut = 1; cut <= b.len; cut++) {
		sink_t s = {0};
		ws_parser_t p;
		ck_assert_int_eq(run(true, 1 << 20, b.data, b.len, cut, &s, &p), WS_OK);
		ck_assert_str_eq(s.log, want);
		ck_assert_uint_eq(p.messages, 2);
		ck_assert(p.closed);
		ws_parser_free(&p);
	}
	bytebuf_free(&b);
}
END_TEST

START_TEST(long_lengths_round_trip)
{
	/* 126-byte (16-bit length) and 70000-byte (64-bit length) frames */
	size_t sizes[] = {125, 126, 65535, 70000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		uint8_t *payload = malloc(n);
		for (size_t k = 0; k < n; k++)
			payload[k] = (uint8_t)('a' + k % 26);
		bytebuf_t b;
		bytebuf_init(&b, 0);
		ck_assert(ws_frame_append(&b, WS_OP_BINARY, payload, n, KEY));
		ck_assert_uint_eq(b.len, n + (n < 126 ? 2 : n <= 0xFFFF ? 4 : 10) + 4);
		sink_t s = {0};
		ws_parser_t p;
		ck_assert_int_eq(run(true, 1 << 20, b.data, b.len, 4096, &s, &p), WS_OK);
		ck_assert_uint_eq(p.messages, 1);
		ck_assert_int_eq(s.log[0], 'B');
		ck_assert(!memcmp(s.log + 2, payload, n < 100 ? n : 100));
		ws_parser_free(&p);
		bytebuf_free(&b);
		free(payload);
	}
}
END_TEST

static void refused(const void *data, size_t len, bool from_client, size_t max, uint16_t code, const char *why)
{
	for (size_t cut = 1; cut <= len; cut++) {
		sink_t s = {0};
		ws_parser_t p;
		ck_assert_int_eq(run(from_client, max, data, len, cut, &s, &p), WS_ERROR);
		ck_assert_uint_eq(p.error_code, code);
		ck_assert_msg(strstr(p.error, why), "%s: got \"%s\"", why, p.error);
		/* and stays refused */
		ck_assert_int_eq(ws_parser_feed(&p, (const uint8_t *)"\x81\x80", 2), WS_ERROR);
		ws_parser_free(&p);
	}
}

START_TEST(rule_breakers_are_refused)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
#define CASE(from_client, max, code, why, ...)                                                                    \
	do {                                                                                                       \
		b.len = 0;                                                                                         \
		__VA_ARGS__;                                                                                       \
		refused(b.data, b.len, from_client, max, code, why);                                              \
	} while (0)
	CASE(true, 100, WS_CLOSE_PROTOCOL, "reserved bits", bytebuf_append(&b, "\xc1\x80\0\0\0\0", 6));
	CASE(true, 100, WS_CLOSE_PROTOCOL, "unknown opcode", bytebuf_append(&b, "\x83\x80\0\0\0\0", 6));
	CASE(true, 100, WS_CLOSE_PROTOCOL, "without a mask", frame(&b, true, WS_OP_TEXT, "hi", false));
	CASE(false, 100, WS_CLOSE_PROTOCOL, "masked server", frame(&b, true, WS_OP_TEXT, "hi", true));
	CASE(true, 100, WS_CLOSE_PROTOCOL, "fragmented control", frame(&b, false, WS_OP_PING, "x", true));
	CASE(false, 1000, WS_CLOSE_PROTOCOL, "control frame over 125",
	     bytebuf_append(&b, "\x89\x7e\x00\x7e", 4));
	CASE(true, 100, WS_CLOSE_PROTOCOL, "one-byte", frame(&b, true, WS_OP_CLOSE, "x", true));
	CASE(true, 100, WS_CLOSE_PROTOCOL, "no message open", frame(&b, true, WS_OP_CONT, "x", true));
	CASE(true, 100, WS_CLOSE_PROTOCOL, "inside a fragmented",
	     frame(&b, false, WS_OP_TEXT, "a", true); frame(&b, true, WS_OP_BINARY, "b", true));
	CASE(false, 1000, WS_CLOSE_PROTOCOL, "shortest form", bytebuf_append(&b, "\x82\x7e\x00\x05", 4));
	CASE(false, 1 << 20, WS_CLOSE_PROTOCOL, "shortest form",
	     bytebuf_append(&b, "\x82\x7f\0\0\0\0\0\0\xff\xff", 10));
	CASE(false, 1000, WS_CLOSE_PROTOCOL, "2^63", bytebuf_append(&b, "\x82\x7f\x80\0\0\0\0\0\0\0", 10));
	CASE(true, 100, WS_CLOSE_PROTOCOL, "after the close",
	     frame(&b, true, WS_OP_CLOSE, "", true); frame(&b, true, WS_OP_TEXT, "x", true));
	/* the limit counts every fragment of a message */
	CASE(true, 10, WS_CLOSE_TOO_BIG, "inspection limit", frame(&b, true, WS_OP_TEXT, "eleven char", true));
	CASE(true, 10, WS_CLOSE_TOO_BIG, "inspection limit",
	     frame(&b, false, WS_OP_TEXT, "six ch", true); frame(&b, true, WS_OP_CONT, "five!", true));
	CASE(false, 1000, WS_CLOSE_TOO_BIG, "inspection limit", bytebuf_append(&b, "\x82\x7f\0\0\0\x01\0\0\0\0", 10));
#undef CASE
	bytebuf_free(&b);
}
END_TEST

START_TEST(exactly_the_limit_passes_and_a_stop_stops)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
	frame(&b, false, WS_OP_TEXT, "12345", false);
	frame(&b, true, WS_OP_CONT, "67890", false);
	frame(&b, true, WS_OP_TEXT, "next", false);
	sink_t s = {0};
	ws_parser_t p;
	ck_assert_int_eq(run(false, 10, b.data, b.len, b.len, &s, &p), WS_OK);
	ck_assert_str_eq(s.log, "T:1234567890|T:next|");
	ws_parser_free(&p);
	sink_t stop = {.stop_after = 1};
	ck_assert_int_eq(run(false, 10, b.data, b.len, b.len, &stop, &p), WS_STOPPED);
	ck_assert_str_eq(stop.log, "T:1234567890|");
	ws_parser_free(&p);
	bytebuf_free(&b);
}
END_TEST

Suite *ws_suite(void)
{
	Suite *s = suite_create("ws");
	TCase *t = tcase_create("ws");
	tcase_add_test(t, fragments_and_controls_any_cut);
	tcase_add_test(t, long_lengths_round_trip);
	tcase_add_test(t, rule_breakers_are_refused);
	tcase_add_test(t, exactly_the_limit_passes_and_a_stop_stops);
	suite_add_tcase(s, t);
	return s;
}
