/*
 * doc: the text inside documents and archives that travel in a message.
 *
 * An upload of a .docx, .xlsx, .pptx, .odt, .ods, .odp, .zip, .tar, .gz or
 * .pdf is compressed or structured: a detector reading its bytes sees
 * nothing. doc opens them and collects the text a person would read, one
 * segment per member ("report.zip!q3/report.docx!word/document.xml"), so
 * the policy's detectors can scan it and name where they found it.
 *
 *   zip    the central directory is read and checked against every local
 *          header (name, method, flags, bounds); members that overlap (the
 *          zip bomb that reuses one compressed stream for many members)
 *          are refused; encrypted members are reported, ZIP64 and
 *          multi-disk archives refused by name. Stored and deflated
 *          members are read; the CRC is checked.
 *   OOXML and OpenDocument are zips whose text is XML: every .xml member
 *          gives its character data (entities decoded, CDATA kept, tags,
 *          attributes, comments dropped; paragraphs, rows and cells end a
 *          line). xlsx shared strings, sheets, slides, notes, comments and
 *          document properties are all just such members.
 *   gzip   every member of the stream, then what it holds (a tar).
 *   tar    ustar, GNU long names and pax path records; regular files.
 *   PDF    our own reader (pdf.c): Flate and unfiltered content streams,
 *          text-showing operators (Tj TJ ' "), literal and hex strings.
 *          An encrypted PDF is reported.
 *   sealed Office's password-protected .docx/.xlsx/.pptx (an OLE file with
 *          an EncryptedPackage stream) is reported as encrypted; legacy
 *          OLE documents (.doc, .xls) are not read as documents.
 *
 * The type comes from the bytes (magic) first and from the name second, so
 * a renamed file is still opened. What a member holds that is none of the
 * above is text if it looks like text, else skipped (images, fonts).
 *
 * Limits bound everything that grows: inflated bytes in total and per
 * member, the expansion ratio (declared and actual), members, nesting
 * depth, XML depth, collected text, and time. Declared sizes are checked
 * before a byte is inflated, so a 1 GiB bomb is refused in microseconds;
 * output past what a member declared is corruption. Anything that stops the
 * reading (a limit, encryption, corruption, an unsupported format) sets
 * doc_set_t.status and .problem in words, and the caller hands it to the
 * policy: nothing is passed silently as if it had been read.
 */
#ifndef DLPGATE_DOC_H
#define DLPGATE_DOC_H

#include "core/bytebuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint64_t max_total;     /* inflated bytes, all documents of a message together */
	uint64_t max_member;    /* inflated bytes of one member (or one PDF stream) */
	uint32_t max_ratio;     /* inflated : compressed, past 64 KiB of a member */
	uint32_t max_members;   /* members (or PDF streams) in all */
	uint32_t max_depth;     /* archives inside archives */
	uint32_t max_xml_depth; /* element nesting in one XML member */
	uint64_t max_text;      /* text collected */
	uint32_t max_ms;        /* wall time spent opening one message's documents */
	uint64_t max_hold;      /* a body that holds a document is held whole up to this, past inspect.max_bytes */
} doc_limits_t;

/* 64 MiB total, 16 MiB a member, ratio 200, 4096 members, depth 4, XML
 * depth 256, 16 MiB of text, 2 s; bodies with a document held up to
 * 32 MiB. */
doc_limits_t doc_limits_default(void);

typedef enum {
	DOC_OK = 0,
	DOC_LIMIT,       /* a limit stopped the reading (bomb, too many members, ...) */
	DOC_ENCRYPTED,   /* a member or the document is encrypted */
	DOC_CORRUPT,     /* the structure does not hold together */
	DOC_UNSUPPORTED, /* ZIP64, multi-disk, a compression method we do not read */
} doc_status_t;

const char *doc_status_name(doc_status_t s);

/* DOC_SEALED: an OLE compound file holding an "EncryptedPackage", which is
 * what Office writes for a password-protected .docx/.xlsx/.pptx: nothing
 * in it can be read, and it is reported as encrypted. */
typedef enum { DOC_NONE = 0, DOC_ZIP, DOC_GZIP, DOC_TAR, DOC_PDF, DOC_SEALED } doc_kind_t;

/* What the bytes are (magic), else what the name says (.docx, .tar, ...).
 * name may be NULL. */
doc_kind_t doc_sniff(const uint8_t *data, size_t n, const char *name);
const char *doc_kind_name(doc_kind_t k);
/* Does the start of a body (its first bytes, or a multipart part in them)
 * look like it carries a document? A zip's central directory is at its
 * end and a PDF's cross-reference table too, so such a body is worth
 * holding whole (doc_limits_t.max_hold) rather than cutting at
 * inspect.max_bytes and reading nothing of it. */
bool doc_in_prefix(const uint8_t *data, size_t n);

#define DOC_NAME_MAX 256

typedef struct {
	char name[DOC_NAME_MAX]; /* "outer.zip!inner/member.xml" */
	uint32_t off, len;       /* in doc_set_t.text */
} doc_segment_t;

#define DOC_MAX_SEGMENTS 256 /* past it, text joins the last segment */

typedef struct {
	doc_limits_t lim;
	bytebuf_t text;          /* every segment, each ended by a newline */
	doc_segment_t *segs;
	uint32_t n_segs;
	size_t cap_segs;
	uint32_t n_documents;    /* top-level documents opened */
	doc_status_t status;     /* the first problem met, DOC_OK if none */
	char problem[200];       /* that problem in words, naming the member */
	/* budgets, spent across every document of the message */
	uint64_t inflated;
	uint32_t members;
	uint64_t deadline_ns;
} doc_set_t;

void doc_set_init(doc_set_t *s, const doc_limits_t *lim);
void doc_set_free(doc_set_t *s);
/* Opens data as a document named name (a file name, or NULL) if it is one
 * (doc_sniff); its text joins s. Returns the kind opened (DOC_NONE: not a
 * document, nothing done). A problem leaves what was read so far in s and
 * sets s->status; reading stops at the first one. */
doc_kind_t doc_set_open(doc_set_t *s, const char *name, const uint8_t *data, size_t n);
/* The same with the kind given, whatever the bytes say (fuzz targets,
 * and callers that know): DOC_NONE does nothing. */
void doc_set_open_as(doc_set_t *s, doc_kind_t kind, const char *name, const uint8_t *data, size_t n);
/* Finds a zip or a PDF that does not start the data (a multipart body the
 * view could not split, bytes before a document) and opens it as "body":
 * the last zip end record whose central directory and first local
 * header are where it says, else the first "%PDF-". For bodies where
 * doc_set_open found nothing at the start. Returns the kind opened. */
doc_kind_t doc_set_carve(doc_set_t *s, const uint8_t *data, size_t n);
/* The segment holding text offset off (NULL if none). */
const doc_segment_t *doc_set_segment_at(const doc_set_t *s, uint32_t off);

#endif
