/*
 * inspect: one held message through decode -> view -> policy -> redaction.
 *
 * The relay holds a message whose body a policy wants to read (the head
 * and up to inspect.max_bytes of body) and hands it here when it is
 * complete or the limit is reached. What comes back says what to forward:
 * nothing (blocked), the original bytes, or the body with the selected
 * findings masked. A body whose Content-Encoding had to be undone to mask
 * it goes out as identity with its headers fixed: re-encoding would buy
 * nothing but CPU.
 *
 * Documents and archives in the body (the whole body, or each multipart
 * part) are opened (doc.h) and their text scanned beside the body's. One
 * that cannot be read (a limit, encryption, corruption) goes to the
 * policy's on_uninspectable with code "document": its block stands, its
 * bypass lets the stage run on what could be read (the event notes
 * uninspectable:document). A finding inside a document cannot be masked
 * without rewriting the document: redacting one blocks, and says so.
 */
#ifndef DLPGATE_INSPECT_H
#define DLPGATE_INSPECT_H

#include "core/bytebuf.h"
#include "http/body.h"
#include "http/shadow.h"
#include "policy/policy.h"

struct worker;

typedef struct {
	verdict_t verdict;
	policy_msg_t msg;        /* findings, for the event */
	shadow_result_t shadow;  /* what the shadow policy would have decided, if asked */
	const uint8_t *out;      /* the body to forward (valid until free) */
	size_t out_len;
	bool identity;           /* the body was decoded: drop Content-Encoding */
	const char *note;        /* why the body was not (all) inspected */
	bool streams;            /* the body goes on past max_bytes and the rest is to be scanned as it streams */
	size_t scanned;          /* decoded bytes the stage read */
	bytebuf_t decoded;
	body_view_t view;
	doc_set_t docs;          /* documents and archives in the body (doc.h) */
} inspect_result_t;

/* raw: the body as received (framing removed, coding kept), complete
 * unless over the limit. head is the message's (edits apply). */
void inspect_message(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, http_head_t *head,
		     const http_head_t *request, uint8_t *raw, size_t raw_len, bool complete, inspect_result_t *r);
/* A WebSocket message (http/wsrelay.c), whole and unmasked, to on_message:
 * upgrade is the request that opened the connection, switched its 101.
 * Redaction masks data in place (out == data). */
void inspect_ws_message(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, http_head_t *upgrade,
			const http_head_t *switched, const policy_ws_t *ws, uint8_t *data, size_t len, inspect_result_t *r);
/* One window of a body streamed past max_bytes (tailscan.h): text is the
 * window (identity: the body bytes themselves, masked in place when the
 * verdict redacts), fresh_from where its part not seen by the window
 * before starts, offset where it lies in the body. encoded: the text is
 * decoded, so a redaction becomes a block (a mask cannot be written back
 * into compressed bytes). The head is not scanned again. */
void inspect_window(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, http_head_t *head,
		    const http_head_t *request, uint8_t *text, size_t len, size_t fresh_from, uint64_t offset, bool encoded,
		    inspect_result_t *r);
void inspect_result_free(inspect_result_t *r);

#endif
