/*
 * Documents through the proxy: real .docx, .xlsx, .pptx, .odt, .pdf and
 * .zip files (tests/integration/docs_make.py writes them with Python's
 * zipfile and zlib) uploaded by curl over intercepted TLS, as multipart
 * parts and as whole bodies. The policy sees the card inside each one,
 * with in_document and the member's name; the upstream never gets the
 * upload (its request count is the proof). Bombs, overlapping members and
 * encryption reach on_uninspectable as code "document"; redacting a
 * finding inside a document blocks and says why.
 */
#include "dlp.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CARD "4539 1488 0343 6467"

static const char *find_policy =
	"local dlp = require 'dlp'\n"
	"local card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' }\n"
	"function on_request(req, flow)\n"
	"  local found = req:scan({card = card})\n"
	"  if found.card and found.card.in_document then\n"
	"    return dlp.block('card in document ' .. found.card.document, found)\n"
	"  elseif found.card then return dlp.block('card in body', found) end\n"
	"  return dlp.pass()\n"
	"end\n"
	"function on_uninspectable(flow, why)\n"
	"  return dlp.block('unreadable ' .. why.code .. ': ' .. why.detail)\n"
	"end\n";

static const char *redact_policy =
	"local dlp = require 'dlp'\n"
	"local card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' }\n"
	"function on_request(req, flow)\n"
	"  local found = req:scan({card = card})\n"
	"  if found.card then return dlp.redact(found) end\n"
	"  return dlp.pass()\n"
	"end\n";

typedef struct {
	dlp_world_t x;
	char *dir; /* the documents docs_make.py wrote */
} fixture_t;

static void setup(fixture_t *fx, const char *src)
{
	dlp_world_start(&fx->x, "docs-policy.lua", src, NULL);
	fx->dir = th_path("docs");
	char script[1024];
	snprintf(script, sizeof script, "%s/tests/integration/docs_make.py", getenv("DLPGATE_TOP"));
	char *mk[] = {"mkdir", "-p", fx->dir, NULL};
	ck_assert_int_eq(th_run(mk, NULL, 0, NULL, NULL, NULL, 5000), 0);
	char *err = NULL;
	char *gen[] = {"python3", script, fx->dir, CARD, NULL};
	ck_assert_msg(th_run(gen, NULL, 0, NULL, NULL, &err, 30000) == 0, "docs_make.py: %s", err);
	free(err);
}

static void teardown(fixture_t *fx)
{
	dlp_world_stop(&fx->x);
	free(fx->dir);
}

/* Uploads DIR/file as a multipart part (or the whole body); returns curl's
 * output with "status=NNN" appended. */
static char *upload(fixture_t *fx, const char *file, bool whole_body)
{
	char arg[1200];
	if (whole_body)
		snprintf(arg, sizeof arg, "@%s/%s", fx->dir, file);
	else
		snprintf(arg, sizeof arg, "file=@%s/%s", fx->dir, file);
	const char *multipart[] = {"-H", "Accept: application/json", "-F", arg, "-w", "\nstatus=%{http_code}", NULL};
	const char *body[] = {"-H",     "Accept: application/json", "-H", "Content-Type: application/octet-stream",
			      "--data-binary", arg, "-w", "\nstatus=%{http_code}", NULL};
	char *out = dlp_world_curl(&fx->x, "/echo", whole_body ? body : multipart, NULL);
	ck_assert_msg(out != NULL, "curl printed nothing");
	return out;
}

START_TEST(cards_inside_documents_are_found)
{
	fixture_t fx;
	setup(&fx, find_policy);
	static const struct {
		const char *file, *member;
	} docs[] = {
		{"card.docx", "card.docx!word/document.xml"}, {"card.xlsx", "card.xlsx!xl/sharedStrings.xml"},
		{"card.pptx", "card.pptx!ppt/slides/slide1.xml"}, {"card.odt", "card.odt!content.xml"},
		{"card.pdf", "card.pdf"}, {"card.zip", "card.zip!notes/customer.txt"},
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		char *out = upload(&fx, docs[i].file, false);
		char want[256];
		snprintf(want, sizeof want, "card in document %s", docs[i].member);
		ck_assert_msg(strstr(out, "status=403") && strstr(out, want), "%s: %s", docs[i].file, out);
		free(out);
	}
	/* a whole body, named by nothing but its bytes */
	char *out = upload(&fx, "card.docx", true);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "card in document body!word/document.xml"), "%s", out);
	free(out);
	/* declared multipart, but no part the view can find: carved */
	char at[1200];
	snprintf(at, sizeof at, "@%s/card.docx", fx.dir);
	char *u = url("127.0.0.1", th_upstream_port(fx.x.up), "/echo", true);
	const char *odd[] = {"-H", "Accept: application/json", "-H", "Content-Type: multipart/form-data; boundary=absent",
			     "--data-binary", at, "-w", "\nstatus=%{http_code}", u, NULL};
	char *err = NULL;
	dlp_curl(&fx.x.d, odd, &out, &err);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "card in document body!word/document.xml"), "%s", out);
	free(out), free(err), free(u);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 0);

	/* the same document without a card goes through */
	out = upload(&fx, "clean.docx", false);
	ck_assert_msg(strstr(out, "status=200"), "%s", out);
	free(out);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 1);

	/* what cannot be read is the policy's call, with the reason */
	static const struct {
		const char *file, *why;
	} bad[] = {
		{"ratio-bomb.zip", "compression bomb"},
		{"overlap-bomb.zip", "members overlap"},
		{"encrypted.zip", "secret.txt: encrypted"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		out = upload(&fx, bad[i].file, false);
		ck_assert_msg(strstr(out, "status=403") && strstr(out, "unreadable document: ") && strstr(out, bad[i].why),
			      "%s: %s", bad[i].file, out);
		free(out);
	}
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 1);
	/* the events name the member and hold masked samples only */
	ck_assert(dlp_log_wait(&fx.x.d, "\"document\":\"card.xlsx!xl/sharedStrings.xml\"", 5000));
	ck_assert(dlp_log_wait(&fx.x.d, "uninspectable:document", 5000));
	char *log = dlp_log(&fx.x.d);
	ck_assert_msg(!th_has_group(log, "0343"), "a card digit group reached the log");
	/* the events with a document hold to the schema */
	char *events = calloc(1, strlen(log) + 1);
	int n = 0;
	for (const char *p = log; (p = strstr(p, "{\"event\":\""));) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (memmem(p, len, "\"document\":", 11)) {
			strncat(events, p, len);
			strcat(events, "\n");
			n++;
		}
		p += len;
	}
	ck_assert_int_ge(n, 7);
	char *complaint = ajv_check_with("verdict.schema.json", events);
	ck_assert_msg(!complaint, "%s", complaint);
	free(events);
	free(log);
	teardown(&fx);
}
END_TEST

START_TEST(redacting_inside_a_document_blocks)
{
	fixture_t fx;
	setup(&fx, redact_policy);
	char *out = upload(&fx, "card.docx", false);
	ck_assert_msg(strstr(out, "status=403") &&
			      strstr(out, "cannot redact card inside the document card.docx!word/document.xml"),
		      "%s", out);
	free(out);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 0);
	teardown(&fx);
}
END_TEST

/* A body that holds a document is held whole past inspect.max_bytes, up
 * to documents.max_hold: a zip's directory is at its end. */
START_TEST(a_document_past_max_bytes_is_held_whole)
{
	fixture_t fx;
	char *src = NULL;
	if (asprintf(&src, "inspect = {max_bytes = 4096}\n%s", find_policy) < 0)
		ck_abort();
	setup(&fx, src);
	free(src);
	/* 58 KB, read whole: the overlap is seen, not a cut zip */
	char *out = upload(&fx, "overlap-bomb.zip", false);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "members overlap") && !strstr(out, "cut at"), "%s",
		      out);
	free(out);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 0);
	teardown(&fx);
}
END_TEST

START_TEST(a_document_cut_at_the_limit_is_the_policys_call)
{
	fixture_t fx;
	char *src = NULL;
	if (asprintf(&src, "inspect = {max_bytes = 4096, documents = {max_hold = 8192}}\n%s", find_policy) < 0)
		ck_abort();
	setup(&fx, src);
	free(src);
	/* 58 KB past an 8 KiB hold: the prefix holds no end of central directory */
	char *out = upload(&fx, "overlap-bomb.zip", false);
	ck_assert_msg(strstr(out, "status=403") && strstr(out, "not a complete zip") &&
			      strstr(out, "the body was cut at its hold limit"),
		      "%s", out);
	free(out);
	ck_assert_uint_eq(th_upstream_request_count(fx.x.up), 0);
	teardown(&fx);
}
END_TEST

Suite *docs_suite(void)
{
	Suite *s = suite_create("docs");
	TCase *t = tcase_create("docs");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, cards_inside_documents_are_found);
	tcase_add_test(t, redacting_inside_a_document_blocks);
	tcase_add_test(t, a_document_past_max_bytes_is_held_whole);
	tcase_add_test(t, a_document_cut_at_the_limit_is_the_policys_call);
	suite_add_tcase(s, t);
	return s;
}
