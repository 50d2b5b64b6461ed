#include "http/inspect.h"

#include "detect/detector.h"
#include "detect/views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ask(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, inspect_result_t *r)
{
	if (r->msg.websocket)
		p->ops->on_message(p, w, f, &r->msg, &r->verdict);
	else if (r->msg.head->is_request)
		p->ops->on_request(p, w, f, &r->msg, &r->verdict);
	else
		p->ops->on_response(p, w, f, &r->msg, &r->verdict);
}

/* Opens what the body carries: each multipart part, or the whole body. A
 * document that cannot be read is the policy's call; true when that call
 * blocked (the verdict is set). */
static bool open_documents(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, inspect_result_t *r,
			   const uint8_t *plain, size_t plain_len, bool cut)
{
	doc_set_init(&r->docs, p->doc_limits.max_total ? &p->doc_limits : NULL);
	const body_view_t *v = &r->view;
	if (v->kind == VIEW_MULTIPART) {
		for (uint32_t i = 0; i < v->n_parts; i++) {
			const body_part_t *part = &v->parts[i];
			doc_set_open(&r->docs, part->filename[0] ? part->filename : part->name, plain + part->off,
				     part->len);
		}
	} else {
		doc_set_open(&r->docs, NULL, plain, plain_len);
	}
	/* none where the view says: a document may still be inside (a
	 * multipart body the view cannot split, bytes before it) */
	if (!r->docs.n_documents)
		doc_set_carve(&r->docs, plain, plain_len);
	if (r->docs.n_documents)
		r->msg.docs = &r->docs;
	if (r->docs.status == DOC_OK)
		return false;
	char detail[320];
	snprintf(detail, sizeof detail, "%s (%s%s)", r->docs.problem, doc_status_name(r->docs.status),
		 cut ? "; the body was cut at its hold limit, inspect.max_bytes or documents.max_hold" : "");
	verdict_t v_doc;
	memset(&v_doc, 0, sizeof v_doc);
	p->ops->on_uninspectable(p, w, f, UNINSPECTABLE_DOCUMENT, detail, &v_doc);
	r->note = "uninspectable:document";
	if (v_doc.kind != VERDICT_BLOCK)
		return false;
	r->verdict = v_doc;
	return true;
}

static int span_cmp(const void *a, const void *b)
{
	const finding_span_t *x = a, *y = b;
	if (x->space != y->space)
		return x->space < y->space ? -1 : 1;
	if (x->view != y->view)
		return x->view < y->view ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Writes through the body view into the body: the root writer of the
 * body's decoded views. */
typedef struct {
	const body_view_t *view;
	uint8_t *body;
} view_writer_t;

static bool write_body(void *ctx, uint32_t off, uint8_t c, bool dry)
{
	view_writer_t *w = ctx;
	return body_view_write(w->view, w->body, off, c, dry);
}

/* Masks [start, start+len) of a span space's text or of one of its
 * decoded views (dry: only says whether it can). In the body a decoded
 * view's bytes are rewritten in their own encoding through the maps
 * (%2A, \u002a), so the body keeps its length and still decodes; in the
 * head the encoded bytes the match came from are masked whole ('*' is a
 * legal byte of a target and a field). False: it cannot be (base64). */
static bool redact_span(policy_msg_t *m, const body_view_t *view, uint8_t *plain, const finding_span_t *sp,
			uint32_t end, uint8_t keep_first, uint8_t keep_last, bool dry)
{
	finding_span_t whole = *sp;
	whole.len = end - sp->start;
	if (sp->space == SPAN_HEAD) {
		uint32_t start, len;
		policy_span_root(m, &whole, &start, &len);
		if (!dry && m->head_view)
			head_view_redact(m->head_view, m->head, start, len, sp->view ? 0 : keep_first,
					 sp->view ? 0 : keep_last);
		return true;
	}
	if (!sp->view) {
		if (!dry)
			body_view_redact(view, plain, sp->start, whole.len, keep_first, keep_last);
		return true;
	}
	view_writer_t w = {view, plain};
	return dview_redact(m->views, sp->view - 1, sp->start, whole.len, keep_first, keep_last, write_body, &w, dry);
}

/* Masks the selected findings where their views came from: the body
 * (plain), its decoded views, the request head and its decoded views.
 * Spans that overlap (two detectors on one number) are masked once, as
 * their union, showing no more than the stricter of them would. Two
 * passes: first whether every span can be masked where it came from (a
 * finding decoded from base64 cannot: its bytes are bits of others), then
 * the masking, so a message is masked whole or refused (false, the
 * verdict a block that says why). masked: the body spans masked. */
static bool mask_spans(policy_msg_t *m, const body_view_t *view, uint8_t *plain, verdict_t *v, uint32_t *masked)
{
	finding_span_t *sp = m->spans;
	uint32_t n = m->n_spans;
	if (n > 1)
		qsort(sp, n, sizeof *sp, span_cmp);
	*masked = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < n;) {
			const finding_t *fd = &m->findings[sp[i].finding];
			if (!fd->redact) {
				i++;
				continue;
			}
			const finding_span_t *first = &sp[i];
			uint32_t end = sp[i].start + sp[i].len;
			uint8_t keep_first = fd->keep_first, keep_last = fd->keep_last;
			for (i++; i < n && sp[i].space == first->space && sp[i].view == first->view && sp[i].start < end;
			     i++) {
				const finding_t *g = &m->findings[sp[i].finding];
				if (!g->redact)
					continue;
				if (sp[i].start + sp[i].len > end)
					end = sp[i].start + sp[i].len;
				keep_first = keep_first < g->keep_first ? keep_first : g->keep_first;
				keep_last = keep_last < g->keep_last ? keep_last : g->keep_last;
			}
			if (!redact_span(m, view, plain, first, end, keep_first, keep_last, pass == 0)) {
				verdict_set(v, VERDICT_BLOCK, v->rule,
					    "cannot redact: %s was found in the decoded %s view of the body, which cannot be "
					    "masked in place",
					    fd->name, m->views->v[first->view - 1].name);
				return false;
			}
			*masked += pass && first->space == SPAN_BODY;
		}
	}
	return true;
}

/* Can every selected finding be masked? If not, the verdict becomes a
 * block that says why: a secret forwarded because its mask would break
 * the message is a secret forwarded. */
static bool redactable(policy_msg_t *m, verdict_t *v)
{
	for (uint32_t i = 0; i < m->n_findings; i++) {
		const finding_t *fd = &m->findings[i];
		if (fd->redact && fd->incomplete) {
			/* More matches than a scan keeps spans for: masking some
			 * would forward the others. Refuse instead. */
			verdict_set(v, VERDICT_BLOCK, v->rule, "cannot redact: %s matched %u times, more than the %u a scan keeps spans for",
				    fd->name, fd->count, DET_MAX_MATCHES);
			return false;
		}
		if (fd->redact && fd->in_document) {
			/* Masking inside a compressed document would mean
			 * rewriting it: refuse rather than forward it whole. */
			verdict_set(v, VERDICT_BLOCK, v->rule, "cannot redact %s inside the document %s: blocked instead",
				    fd->name, fd->document);
			return false;
		}
	}
	for (uint32_t i = 0; i < m->n_spans; i++) {
		const finding_span_t *sp = &m->spans[i];
		const finding_t *fd = &m->findings[sp->finding];
		const char *field;
		uint32_t start, len;
		policy_span_root(m, sp, &start, &len);
		if (sp->space == SPAN_HEAD && fd->redact && m->head_view &&
		    (field = head_view_unmaskable(m->head_view, m->head, start, len))) {
			verdict_set(v, VERDICT_BLOCK, v->rule,
				    "cannot redact: %s matched in %s, which the request cannot do without", fd->name,
				    field);
			return false;
		}
	}
	return true;
}

static void inspect_run(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, http_head_t *head,
			const http_head_t *request, const policy_ws_t *ws, uint8_t *raw, size_t raw_len, bool complete,
			inspect_result_t *r)
{
	memset(r, 0, sizeof *r);
	bytebuf_init(&r->decoded, 0);
	r->msg.head = head;
	r->msg.request = request;
	r->msg.websocket = ws;
	r->msg.body_size = raw_len;
	r->out = raw;
	r->out_len = raw_len;

	uint32_t ce_len = 0, ct_len = 0;
	/* A WebSocket message has no coding or type of its own: the Upgrade
	 * request's headers say nothing about it (and a client must not be
	 * able to make a message undecodable by naming one there). */
	const char *ce = ws ? NULL : http_head_get(head, "content-encoding", &ce_len);
	const char *ct = ws ? NULL : http_head_get(head, "content-type", &ct_len);
	bool encoded = (raw_len || !complete) && body_is_encoded(ce, ce_len); /* no body: nothing to decode */
	const char *why = NULL;
	/* An identity body is read where it lies; only a coded one is copied
	 * out, decoded. */
	uint8_t *plain = raw;
	/* a complete body past max_bytes was held whole on purpose (a document) */
	size_t plain_len = raw_len > p->body_limits.max_bytes && !complete ? (size_t)p->body_limits.max_bytes : raw_len;
	body_status_t st = BODY_OK;
	if (encoded) {
		st = body_decode(ce, ce_len, raw, raw_len, &p->body_limits, &r->decoded, &why);
		if (!complete && st == BODY_CORRUPT && why && strstr(why, "cut short"))
			st = BODY_TRUNCATED; /* the limit cut the compressed bytes: the rest follows */
		plain = (uint8_t *)r->decoded.data;
		plain_len = r->decoded.len;
	} else if (plain_len < raw_len) {
		st = BODY_TRUNCATED;
	}
	bool readable = st == BODY_OK || st == BODY_TRUNCATED;
	if (!complete && st == BODY_OK)
		st = BODY_TRUNCATED; /* the limit cut the raw bytes themselves */
	if (st != BODY_OK)
		r->note = body_status_name(st);

	if (st == BODY_UNSUPPORTED || st == BODY_CORRUPT) {
		/* A coding we cannot undo hides the body from every detector:
		 * the policy decides (on_uninspectable), never the sender. */
		char detail[160];
		snprintf(detail, sizeof detail, "Content-Encoding %.*s: %s", (int)(ce_len > 64 ? 64 : ce_len), ce,
			 why ? why : body_status_name(st));
		p->ops->on_uninspectable(p, w, f, UNINSPECTABLE_ENCODING, detail, &r->verdict);
		if (r->verdict.kind != VERDICT_BLOCK)
			r->verdict.kind = VERDICT_PASS;
		return;
	}
	if (!readable || (st == BODY_TRUNCATED && p->oversize != OVERSIZE_PREFIX)) {
		/* Nothing (or not all) can be read and the policy said what
		 * that means: no stage call for a body it cannot see. A bomb
		 * is refused unless the policy passes what it cannot read. */
		bool block = p->oversize == OVERSIZE_BLOCK || (st == BODY_BOMB && p->oversize != OVERSIZE_PASS);
		static const char *const names[] = {"prefix", "pass", "block"};
		verdict_set(&r->verdict, block ? VERDICT_BLOCK : VERDICT_PASS, "inspect.oversize",
			    "body not inspected (%s%s%s); inspect.oversize = %s", body_status_name(st), why ? ": " : "",
			    why ? why : "", names[p->oversize]);
		return;
	}
	if (!body_view_build(&r->view, ct, ct_len, plain, plain_len)) {
		verdict_set(&r->verdict, VERDICT_BLOCK, "inspect", "out of memory building the body's view");
		return;
	}
	r->msg.view = &r->view;
	if (open_documents(p, w, f, r, plain, plain_len, st != BODY_OK))
		return;
	r->msg.body_complete = st == BODY_OK;
	r->scanned = plain_len;
	r->streams = st == BODY_TRUNCATED && p->oversize == OVERSIZE_PREFIX;
	r->msg.body_note = r->note;
	shadow_ask(w, f, &r->msg, &r->shadow); /* before the active stage and its redaction touch anything */
	ask(p, w, f, r);
	if (!r->verdict.redact || r->verdict.monitor || r->verdict.kind != VERDICT_PASS)
		return;

	if (!redactable(&r->msg, &r->verdict))
		return;
	uint32_t masked;
	if (!mask_spans(&r->msg, &r->view, plain, &r->verdict, &masked))
		return;
	if (!masked || !encoded)
		return; /* identity: raw itself was masked, same length */
	if (st != BODY_OK) {
		/* A compressed body cut at the limit cannot be re-cut where
		 * the mask ends: refuse rather than forward the secret. */
		verdict_set(&r->verdict, VERDICT_BLOCK, r->verdict.rule,
			    "cannot redact a compressed body larger than inspect.max_bytes");
		return;
	}
	r->out = plain;
	r->out_len = plain_len;
	r->identity = true;
}

void inspect_message(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, http_head_t *head,
		     const http_head_t *request, uint8_t *raw, size_t raw_len, bool complete, inspect_result_t *r)
{
	inspect_run(p, w, f, head, request, NULL, raw, raw_len, complete, r);
}

void inspect_ws_message(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, http_head_t *upgrade,
			const http_head_t *switched, const policy_ws_t *ws, uint8_t *data, size_t len, inspect_result_t *r)
{
	inspect_run(p, w, f, upgrade, switched, ws, data, len, true, r);
}

/* The first view byte that comes from body offset at or past raw_off. */
static uint32_t view_offset(const body_view_t *v, size_t raw_off)
{
	if (!v->map)
		return (uint32_t)raw_off;
	uint32_t lo = 0, hi = (uint32_t)v->len;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (v->map[mid] < raw_off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void inspect_window(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, http_head_t *head,
		    const http_head_t *request, uint8_t *text, size_t len, size_t fresh_from, uint64_t offset, bool encoded,
		    inspect_result_t *r)
{
	memset(r, 0, sizeof *r);
	bytebuf_init(&r->decoded, 0);
	r->msg.head = head;
	r->msg.request = request;
	r->msg.body_size = offset + len;
	r->msg.stream_window = true;
	r->msg.body_offset = offset;
	r->out = text;
	r->out_len = len;
	r->note = "streamed past inspect.max_bytes";
	uint32_t ct_len = 0;
	const char *ct = http_head_get(head, "content-type", &ct_len);
	if (!body_view_build(&r->view, ct, ct_len, text, len)) {
		verdict_set(&r->verdict, VERDICT_BLOCK, "inspect", "out of memory building the body's view");
		return;
	}
	r->msg.view = &r->view;
	r->msg.fresh_from = view_offset(&r->view, fresh_from);
	r->msg.body_note = r->note;
	shadow_ask(w, f, &r->msg, &r->shadow);
	ask(p, w, f, r);
	if (!r->verdict.redact || r->verdict.monitor || r->verdict.kind != VERDICT_PASS)
		return;
	if (!redactable(&r->msg, &r->verdict))
		return;
	bool any = false;
	for (uint32_t i = 0; i < r->msg.n_spans && !any; i++)
		any = r->msg.findings[r->msg.spans[i].finding].redact;
	if (any && encoded) {
		verdict_set(&r->verdict, VERDICT_BLOCK, r->verdict.rule,
			    "cannot redact a compressed body past inspect.max_bytes: the message is cut off");
		return;
	}
	uint32_t masked;
	mask_spans(&r->msg, &r->view, text, &r->verdict, &masked);
}

void inspect_result_free(inspect_result_t *r)
{
	shadow_result_free(&r->shadow);
	body_view_free(&r->view);
	doc_set_free(&r->docs);
	bytebuf_free(&r->decoded);
	policy_msg_clear(&r->msg);
}
