/*
 * Documents and archives (engine/doc): zip read through its central
 * directory (stored and deflated members, CRC), OOXML and OpenDocument text
 * out of their XML (split runs, entities, shared strings, ODF spaces),
 * gzip and tar members, PDF text out of Flate content streams; and every
 * refusal: ratio and size bombs, overlapping members, encryption, ZIP64,
 * headers that disagree, sizes that lie, too many members, nesting, XML
 * depth, tar checksums, PDF filters. The archives are built here, byte by
 * byte, with zlib: the refusals need archives no well-behaved tool writes.
 */
#include "suites.h"
#include "doc/doc.h"
#include "http/body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
	const char *name;
	const void *data;
	size_t n;
	bool deflate;
	uint16_t flags;       /* general purpose flags (1: encrypted) */
	int64_t lie_usize;    /* >= 0: declare this uncompressed size instead */
} zmember_t;

static void put16(bytebuf_t *b, unsigned v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	bytebuf_append(b, x, 2);
}

static void put32(bytebuf_t *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	bytebuf_append(b, x, 4);
}

static size_t raw_deflate(const void *in, size_t n, uint8_t **out)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, (uLong)n) + 16;
	*out = malloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = *out;
	z.avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	size_t got = z.total_out;
	deflateEnd(&z);
	return got;
}

/* A zip of k members; extra_central > 0 repeats the first member's
 * central entry that many times more (the overlapping-member bomb). */
static void zip_build(bytebuf_t *out, const zmember_t *m, size_t k, unsigned extra_central)
{
	bytebuf_init(out, 0);
	uint32_t *offs = calloc(k, sizeof *offs), *csz = calloc(k, sizeof *csz), *crc = calloc(k, sizeof *crc);
	for (size_t i = 0; i < k; i++) {
		uint8_t *z = NULL;
		size_t cn = m[i].deflate ? raw_deflate(m[i].data, m[i].n, &z) : m[i].n;
		const void *cd = m[i].deflate ? (const void *)z : m[i].data;
		offs[i] = (uint32_t)out->len;
		csz[i] = (uint32_t)cn;
		crc[i] = (uint32_t)crc32(0, m[i].data, (uInt)m[i].n);
		uint32_t usize = m[i].lie_usize >= 0 ? (uint32_t)m[i].lie_usize : (uint32_t)m[i].n;
		put32(out, 0x04034b50);
		put16(out, 20);
		put16(out, m[i].flags);
		put16(out, m[i].deflate ? 8 : 0);
		put32(out, 0);
		put32(out, crc[i]);
		put32(out, (uint32_t)cn);
		put32(out, usize);
		put16(out, (unsigned)strlen(m[i].name));
		put16(out, 0);
		bytebuf_append_str(out, m[i].name);
		bytebuf_append(out, cd, cn);
		free(z);
	}
	uint32_t cd_off = (uint32_t)out->len;
	unsigned entries = 0;
	for (size_t j = 0; j < k + extra_central; j++) {
		size_t i = j < k ? j : 0;
		uint32_t usize = m[i].lie_usize >= 0 ? (uint32_t)m[i].lie_usize : (uint32_t)m[i].n;
		put32(out, 0x02014b50);
		put16(out, 20);
		put16(out, 20);
		put16(out, m[i].flags);
		put16(out, m[i].deflate ? 8 : 0);
		put32(out, 0);
		put32(out, crc[i]);
		put32(out, csz[i]);
		put32(out, usize);
		put16(out, (unsigned)strlen(m[i].name));
		put16(out, 0);
		put16(out, 0);
		put16(out, 0);
		put16(out, 0);
		put32(out, 0);
		put32(out, offs[i]);
		bytebuf_append_str(out, m[i].name);
		entries++;
	}
	uint32_t cd_size = (uint32_t)out->len - cd_off;
	put32(out, 0x06054b50);
	put16(out, 0);
	put16(out, 0);
	put16(out, entries);
	put16(out, entries);
	put32(out, cd_size);
	put32(out, cd_off);
	put16(out, 0);
	free(offs), free(csz), free(crc);
}

#define M(name_, text_, deflate_) {name_, text_, sizeof(text_) - 1, deflate_, 0, -1}

/* Opens data as name with limits lim (NULL: defaults); returns the set
 * (the caller frees it) with its text NUL-terminated. */
static doc_set_t open_doc(const char *name, const void *data, size_t n, const doc_limits_t *lim)
{
	doc_set_t s;
	doc_set_init(&s, lim);
	doc_set_open(&s, name, data, n);
	bytebuf_cstr(&s.text);
	return s;
}

static bool has_text(const doc_set_t *s, const char *needle)
{
	return s->text.data && strstr(s->text.data, needle);
}

/* Opening data as name must stop with status want, its problem naming words. */
static void expect_status(const char *name, const void *data, size_t n, const doc_limits_t *lim, doc_status_t want,
			  const char *words)
{
	doc_set_t s = open_doc(name, data, n, lim);
	ck_assert_msg(s.status == want, "status %s, want %s: %s", doc_status_name(s.status), doc_status_name(want),
		      s.problem);
	ck_assert_msg(strstr(s.problem, words), "%s", s.problem);
	doc_set_free(&s);
}

/* The same for a zip built from m. */
static void expect_refusal(const zmember_t *m, size_t k, unsigned extra, const doc_limits_t *lim, doc_status_t want,
			   const char *words)
{
	bytebuf_t z;
	zip_build(&z, m, k, extra);
	expect_status("up.zip", z.data, z.len, lim, want, words);
	bytebuf_free(&z);
}

START_TEST(zip_members_and_office_text)
{
	static const char docx[] =
		"<?xml version=\"1.0\"?><w:document xmlns:w=\"x\"><w:body><w:p><w:r><w:t>Card 4111 1111</w:t></w:r>"
		"<w:r><w:t xml:space=\"preserve\"> 1111 1111</w:t></w:r></w:p><w:p><w:r><w:t>Fish &amp; chips &#x41;&#66;"
		"</w:t></w:r><!-- 9999 --></w:p><w:p><w:r><w:t><![CDATA[a<b]]></w:t></w:r></w:p></w:body></w:document>";
	static const char shared[] = "<sst count=\"2\"><si><t>4539148803436467</t></si><si><t>Bob</t></si></sst>";
	static const char sheet[] = "<worksheet><sheetData><row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c></row></sheetData></worksheet>";
	static const char odt[] = "<office:document-content><office:body><office:text><text:p>SSN<text:s/>078-05-1120"
				  "<text:tab/>x</text:p></office:text></office:body></office:document-content>";
	zmember_t m[] = {M("[Content_Types].xml", "<Types/>", true), M("word/document.xml", docx, true),
			 M("xl/sharedStrings.xml", shared, false), M("xl/worksheets/sheet1.xml", sheet, true),
			 M("content.xml", odt, true), M("notes/", "", false), M("media/image1.png", "\x89PNG\r\n\x1a\n\0\0\0", false),
			 M("readme.txt", "plain 5555 5555 5555 4444\n", true)};
	bytebuf_t z;
	zip_build(&z, m, sizeof m / sizeof m[0], 0);
	doc_set_t s = open_doc("upload.docx", z.data, z.len, NULL);
	ck_assert_msg(s.status == DOC_OK, "%s", s.problem);
	ck_assert_msg(has_text(&s, "Card 4111 1111 1111 1111\n"), "%s", s.text.data);
	ck_assert_msg(has_text(&s, "Fish & chips AB\n"), "%s", s.text.data);
	ck_assert_msg(!has_text(&s, "9999") && has_text(&s, "a<b"), "%s", s.text.data);
	ck_assert_msg(has_text(&s, "4539148803436467\nBob\n"), "%s", s.text.data);
	ck_assert_msg(has_text(&s, "SSN 078-05-1120 x"), "%s", s.text.data);
	ck_assert_msg(has_text(&s, "plain 5555 5555 5555 4444"), "%s", s.text.data);
	ck_assert_msg(!has_text(&s, "PNG"), "binary members are skipped: %s", s.text.data);
	/* each member is a segment named after it */
	const char *at = strstr(s.text.data, "4111");
	const doc_segment_t *seg = doc_set_segment_at(&s, (uint32_t)(at - s.text.data));
	ck_assert_ptr_nonnull(seg);
	ck_assert_str_eq(seg->name, "upload.docx!word/document.xml");
	at = strstr(s.text.data, "078-05");
	ck_assert_str_eq(doc_set_segment_at(&s, (uint32_t)(at - s.text.data))->name, "upload.docx!content.xml");
	doc_set_free(&s);

	/* by content, whatever the name; and a text file named .zip is no zip */
	ck_assert_int_eq(doc_sniff((const uint8_t *)z.data, z.len, "photo.jpg"), DOC_ZIP);
	ck_assert_int_eq(doc_sniff((const uint8_t *)"hello", 5, "x.zip"), DOC_NONE);
	ck_assert_int_eq(doc_sniff((const uint8_t *)"%PDF-1.4\n", 9, NULL), DOC_PDF);

	/* a password-protected .xlsx is an OLE file with an EncryptedPackage */
	uint8_t ole[1024] = {0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1};
	static const char pkg[] = "E\0n\0c\0r\0y\0p\0t\0e\0d\0P\0a\0c\0k\0a\0g\0e\0";
	memcpy(ole + 600, pkg, sizeof pkg - 1);
	expect_status("budget.xlsx", ole, sizeof ole, NULL, DOC_ENCRYPTED, "budget.xlsx: a password-protected Office");
	ck_assert_int_eq(doc_sniff(ole, 512, NULL), DOC_NONE); /* a legacy .doc is no document we read */

	/* behind other bytes (a multipart body no view could split): carved */
	bytebuf_t wrapped;
	bytebuf_init(&wrapped, 0);
	bytebuf_append_str(&wrapped, "--x\r\nContent-Disposition: form-data; name=f\r\n\r\n");
	bytebuf_append(&wrapped, z.data, z.len);
	bytebuf_append_str(&wrapped, "\r\n--x--\r\n");
	doc_set_init(&s, NULL);
	ck_assert_int_eq(doc_set_open(&s, NULL, (const uint8_t *)wrapped.data, wrapped.len), DOC_NONE);
	ck_assert_int_eq(doc_set_carve(&s, (const uint8_t *)wrapped.data, wrapped.len), DOC_ZIP);
	ck_assert_msg(s.status == DOC_OK && s.n_segs && !strcmp(s.segs[0].name, "body!word/document.xml"), "%s %s",
		      s.problem, s.n_segs ? s.segs[0].name : "");
	doc_set_free(&s);
	ck_assert_int_eq(doc_set_carve(&s, (const uint8_t *)"PK\5\6 nothing", 13), DOC_NONE);
	/* end records that lead nowhere after the real one, a few or more than
	 * the carver keeps: the real one is still found */
	for (int decoys = 3; decoys <= 40; decoys += 37) {
		bytebuf_t b;
		bytebuf_init(&b, 0);
		bytebuf_append(&b, wrapped.data, wrapped.len);
		for (int k = 0; k < decoys; k++)
			bytebuf_append(&b, "PK\5\6\0\0\0\0\0\0\0\0\xff\xff\xff\0\xff\xff\xff\0\0\0 ", 23);
		doc_set_init(&s, NULL);
		ck_assert_msg(doc_set_carve(&s, (const uint8_t *)b.data, b.len) == DOC_ZIP, "%d decoys", decoys);
		doc_set_free(&s);
		bytebuf_free(&b);
	}
	/* a PDF behind text full of percent signs */
	static const char pdf_behind[] = "50% off, 100%% sure, %PD no, %PDF-1.4\n1 0 obj\n";
	doc_set_init(&s, NULL);
	ck_assert_int_eq(doc_set_carve(&s, (const uint8_t *)pdf_behind, sizeof pdf_behind - 1), DOC_PDF);
	doc_set_free(&s);
	ck_assert(doc_in_prefix((const uint8_t *)pdf_behind, sizeof pdf_behind - 1));
	ck_assert(!doc_in_prefix((const uint8_t *)"50% off, PK no", 14));
	bytebuf_free(&wrapped);

	/* a zip inside a zip: named by both */
	zmember_t outer[] = {{"inner.zip", z.data, z.len, true, 0, -1}};
	bytebuf_t z2;
	zip_build(&z2, outer, 1, 0);
	s = open_doc("outer.zip", z2.data, z2.len, NULL);
	ck_assert_msg(s.status == DOC_OK, "%s", s.problem);
	at = strstr(s.text.data, "4111");
	ck_assert_ptr_nonnull(at);
	ck_assert_str_eq(doc_set_segment_at(&s, (uint32_t)(at - s.text.data))->name,
			 "outer.zip!inner.zip!word/document.xml");
	doc_set_free(&s);
	/* ...but not deeper than max_depth */
	doc_limits_t lim = doc_limits_default();
	lim.max_depth = 1;
	expect_status("outer.zip", z2.data, z2.len, &lim, DOC_LIMIT, "nested more than 1 deep");
	bytebuf_free(&z2);
	bytebuf_free(&z);
}
END_TEST

START_TEST(zip_refusals)
{
	size_t big = 1 << 20;
	char *zeros = calloc(1, big);
	/* ratio: 1 MiB of zeros deflates to about 1 KiB */
	zmember_t bomb[] = {{"zeros.txt", zeros, big, true, 0, -1}};
	expect_refusal(bomb, 1, 0, NULL, DOC_LIMIT, "compression bomb");
	/* a member declaring more than it holds, past the total */
	doc_limits_t lim = doc_limits_default();
	lim.max_ratio = 100000;
	lim.max_total = 3 << 20;
	zmember_t many[] = {{"a", zeros, big, true, 0, -1}, {"b", zeros, big, true, 0, -1},
			    {"c", zeros, big, true, 0, -1}, {"d", zeros, big, true, 0, -1}};
	expect_refusal(many, 4, 0, &lim, DOC_LIMIT, "declares more than");
	lim = doc_limits_default();
	lim.max_member = 1000;
	expect_refusal(many, 1, 0, &lim, DOC_LIMIT, "one may inflate to");
	/* the overlapping-member bomb: one stream, many names */
	zmember_t one[] = {M("x.txt", "hello hello hello", true)};
	expect_refusal(one, 1, 5, NULL, DOC_LIMIT, "members overlap");
	/* encrypted */
	zmember_t enc[] = {{"secret.txt", "xxxxxxxx", 8, false, 1, -1}};
	expect_refusal(enc, 1, 0, NULL, DOC_ENCRYPTED, "secret.txt: encrypted");
	/* sizes that lie: inflates past what it declares */
	zmember_t liar[] = {{"l.txt", "0123456789abcdef", 16, true, 0, 8}};
	expect_refusal(liar, 1, 0, NULL, DOC_CORRUPT, "declares");
	/* too many members */
	lim = doc_limits_default();
	lim.max_members = 3;
	lim.max_ratio = 100000;
	expect_refusal(many, 4, 0, &lim, DOC_LIMIT, "more than 3 members");
	free(zeros);

	/* the local header disagrees with the central directory */
	bytebuf_t z;
	zip_build(&z, one, 1, 0);
	z.data[30] = 'y'; /* the local name */
	expect_status("up.zip", z.data, z.len, NULL, DOC_CORRUPT, "disagrees");
	z.data[30] = 'x';
	/* ZIP64 markers in the end record */
	memset(z.data + z.len - 22 + 16, 0xff, 4);
	expect_status("up.zip", z.data, z.len, NULL, DOC_UNSUPPORTED, "ZIP64");
	/* cut short: no end record */
	expect_status("up.zip", z.data, z.len / 2, NULL, DOC_CORRUPT, "not a complete zip");
	/* a damaged CRC */
	bytebuf_free(&z);
	zip_build(&z, (zmember_t[]){M("c.txt", "checked", false)}, 1, 0);
	z.data[z.len - 22 - 51 + 16] ^= 1; /* the central CRC */
	expect_status("up.zip", z.data, z.len, NULL, DOC_CORRUPT, "CRC");
	bytebuf_free(&z);

	/* XML nested past max_xml_depth */
	bytebuf_t x;
	bytebuf_init(&x, 0);
	for (int i = 0; i < 300; i++)
		bytebuf_append_str(&x, "<a>");
	zmember_t deep[] = {{"deep.xml", x.data, x.len, true, 0, -1}};
	expect_refusal(deep, 1, 0, NULL, DOC_LIMIT, "XML nested more than 256");
	bytebuf_free(&x);
}
END_TEST

/* A ustar header block for a file of n bytes. */
static void tar_header(bytebuf_t *b, const char *name, size_t n, char type)
{
	uint8_t h[512];
	memset(h, 0, sizeof h);
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "0000644");
	snprintf((char *)h + 124, 12, "%011o", (unsigned)(n & 0x3fffffff));
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	bytebuf_append(b, h, 512);
}

static void tar_file(bytebuf_t *b, const char *name, const char *data, char type)
{
	size_t n = strlen(data);
	tar_header(b, name, n, type);
	bytebuf_append(b, data, n);
	static const uint8_t pad[512];
	bytebuf_append(b, pad, (512 - n % 512) % 512);
}

START_TEST(tar_and_gzip)
{
	bytebuf_t t;
	bytebuf_init(&t, 0);
	tar_file(&t, "dir/", "", '5');
	tar_file(&t, "././@LongLink", "a/very/long/path/keys.txt", 'L');
	tar_file(&t, "short", "AKIAIOSFODNN7EXAMPLE\n", '0');
	tar_file(&t, "link", "", '2');
	tar_file(&t, "b.txt", "card 4111-1111-1111-1111\n", '0');
	static const uint8_t end[1024];
	bytebuf_append(&t, end, sizeof end);
	doc_set_t s = open_doc("backup.tar", t.data, t.len, NULL);
	ck_assert_msg(s.status == DOC_OK, "%s", s.problem);
	ck_assert_msg(has_text(&s, "AKIAIOSFODNN7EXAMPLE") && has_text(&s, "4111-1111"), "%s", s.text.data);
	ck_assert_str_eq(s.segs[0].name, "backup.tar!a/very/long/path/keys.txt");
	doc_set_free(&s);

	/* gzipped, in two gzip members: both are read */
	bytebuf_t gz;
	bytebuf_init(&gz, 0);
	ck_assert(body_gzip(t.data, 1536, &gz));
	ck_assert(body_gzip(t.data + 1536, t.len - 1536, &gz));
	s = open_doc("backup.tgz", gz.data, gz.len, NULL);
	ck_assert_msg(s.status == DOC_OK, "%s", s.problem);
	ck_assert_msg(has_text(&s, "AKIAIOSFODNN7EXAMPLE") && has_text(&s, "4111-1111"), "%s", s.text.data);
	ck_assert_str_eq(s.segs[1].name, "backup.tgz!backup.tar!b.txt");
	doc_set_free(&s);
	bytebuf_free(&gz);

	/* a broken checksum is corruption, not the end */
	t.data[512 * 5 + 1] ^= 1; /* the header of "link" */
	expect_status("backup.tar", t.data, t.len, NULL, DOC_CORRUPT, "checksum");
	bytebuf_free(&t);

	/* a gzip bomb */
	size_t big = 8 << 20;
	char *zeros = calloc(1, big);
	bytebuf_init(&gz, 0);
	ck_assert(body_gzip(zeros, big, &gz));
	expect_status("zeros.gz", gz.data, gz.len, NULL, DOC_LIMIT, "compression bomb");
	bytebuf_free(&gz);
	free(zeros);
}
END_TEST

/* A PDF with one content stream, Flate-compressed unless plain. */
static void pdf_build(bytebuf_t *b, const char *content, bool plain, const char *extra_dict)
{
	bytebuf_init(b, 0);
	bytebuf_append_str(b, "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n");
	bytebuf_append_str(b, "2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n");
	bytebuf_append_str(b, "3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n");
	uint8_t *z = NULL;
	size_t n = strlen(content);
	if (!plain) {
		uLongf cap = compressBound((uLong)n);
		z = malloc(cap);
		ck_assert_int_eq(compress(z, &cap, (const Bytef *)content, (uLong)n), Z_OK);
		n = cap;
	}
	bytebuf_appendf(b, "4 0 obj << /Length %zu%s%s >>\nstream\n", n, plain ? "" : " /Filter /FlateDecode",
			extra_dict);
	bytebuf_append(b, plain ? (const void *)content : z, n);
	bytebuf_append_str(b, "\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
	free(z);
}

START_TEST(pdf_text)
{
	bytebuf_t p;
	pdf_build(&p,
		  "BT /F1 12 Tf 72 700 Td (Card: 4111 1111 1111 1111) Tj 0 -14 Td [(Pay) -300 (to) 20 (day)] TJ T* "
		  "<416B6961> Tj (esc\\(aped\\) \\101\\102) ' ET",
		  false, "");
	doc_set_t s = open_doc("statement.pdf", p.data, p.len, NULL);
	ck_assert_msg(s.status == DOC_OK, "%s", s.problem);
	ck_assert_msg(has_text(&s, "Card: 4111 1111 1111 1111"), "%s", s.text.data);
	ck_assert_msg(has_text(&s, "Pay today"), "%s", s.text.data);
	ck_assert_msg(has_text(&s, "Akia\n") && has_text(&s, "esc(aped) AB"), "%s", s.text.data);
	ck_assert_str_eq(s.segs[0].name, "statement.pdf");
	doc_set_free(&s);
	bytebuf_free(&p);

	pdf_build(&p, "BT (plain 078-05-1120) Tj ET", true, "");
	s = open_doc(NULL, p.data, p.len, NULL);
	ck_assert_msg(s.status == DOC_OK && has_text(&s, "plain 078-05-1120"), "%s %s", s.problem, s.text.data);
	ck_assert_str_eq(s.segs[0].name, "body");
	doc_set_free(&s);
	bytebuf_free(&p);

	/* a filter we do not read: said, not skipped */
	pdf_build(&p, "BT (x) Tj ET", true, " /Filter /ASCII85Decode");
	expect_status("a.pdf", p.data, p.len, NULL, DOC_UNSUPPORTED, "filter");
	bytebuf_free(&p);
	/* encrypted */
	pdf_build(&p, "BT (x) Tj ET", false, " /Encrypt 9 0 R");
	expect_status("a.pdf", p.data, p.len, NULL, DOC_ENCRYPTED, "encrypted");
	bytebuf_free(&p);
	/* a Flate bomb in a content stream */
	char *zeros = calloc(1, 4 << 20);
	memset(zeros, ' ', 4 << 20);
	zeros[(4 << 20) - 1] = 0;
	pdf_build(&p, zeros, false, "");
	expect_status("a.pdf", p.data, p.len, NULL, DOC_LIMIT, "compression bomb");
	bytebuf_free(&p);
	free(zeros);
}
END_TEST

START_TEST(text_limit_and_garbage)
{
	/* more text than max_text is a limit, not a silent cut */
	doc_limits_t lim = doc_limits_default();
	lim.max_text = 100;
	zmember_t m[] = {M("a.txt", "0123456789012345678901234567890123456789012345678901234567890123456789"
				    "0123456789012345678901234567890123456789",
			   false)};
	expect_refusal(m, 1, 0, &lim, DOC_LIMIT, "bytes of text");
	/* random bytes behind each magic: no crash, some status */
	uint8_t buf[4096];
	uint32_t x = 12345;
	static const char *const magic[] = {"PK\3\4", "\x1f\x8b\x08", "%PDF-", ""};
	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
		const char *mg = magic[round % 4];
		memcpy(buf, mg, strlen(mg));
		doc_set_t s = open_doc(round % 4 == 3 ? "x.tar" : "x", buf, sizeof buf, NULL);
		doc_set_free(&s);
	}
}
END_TEST

Suite *doc_suite(void)
{
	Suite *s = suite_create("doc");
	TCase *t = tcase_create("doc");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, zip_members_and_office_text);
	tcase_add_test(t, zip_refusals);
	tcase_add_test(t, tar_and_gzip);
	tcase_add_test(t, pdf_text);
	tcase_add_test(t, text_limit_and_garbage);
	suite_add_tcase(s, t);
	return s;
}
