#include "http/inspect.h"

#include "detect/detector.h"
#include "detect/views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ask(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, inspect_result_t *r)
{
	if (r->msg.head->is_request)
		p->ops->on_request(p, w, f, &r->msg, &r->verdict);
	else
		p->ops->on_response(p, w, f, &r->msg, &r->verdict);
}

static int span_cmp(const void *a, const void *b)
{
	const finding_span_t *x = a, *y = b;
	if (x->view != y->view)
		return x->view < y->view ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Writes through the body view into the body: the root writer of the
 * decoded views. */
typedef struct {
	const body_view_t *view;
	uint8_t *body;
} view_writer_t;

static bool write_body(void *ctx, uint32_t off, uint8_t c, bool dry)
{
	view_writer_t *w = ctx;
	return body_view_write(w->view, w->body, off, c, dry);
}

/* Masks a span: in the body view, or in a decoded view through its maps
 * (dry: only whether it can be). */
static bool redact_span(inspect_result_t *r, uint8_t *plain, uint16_t view, uint32_t start, uint32_t len,
			uint8_t keep_first, uint8_t keep_last, bool dry)
{
	if (!view) {
		if (!dry)
			body_view_redact(&r->view, plain, start, len, keep_first, keep_last);
		return true;
	}
	view_writer_t w = {&r->view, plain};
	return dview_redact(r->msg.views, view - 1, start, len, keep_first, keep_last, write_body, &w, dry);
}

void inspect_message(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, http_head_t *head,
		     const http_head_t *request, uint8_t *raw, size_t raw_len, bool complete, inspect_result_t *r)
{
	memset(r, 0, sizeof *r);
	bytebuf_init(&r->decoded, 0);
	r->msg.head = head;
	r->msg.request = request;
	r->msg.body_size = raw_len;
	r->out = raw;
	r->out_len = raw_len;

	uint32_t ce_len = 0, ct_len = 0;
	const char *ce = http_head_get(head, "content-encoding", &ce_len);
	const char *ct = http_head_get(head, "content-type", &ct_len);
	bool encoded = body_is_encoded(ce, ce_len);
	const char *why = NULL;
	/* An identity body is read where it lies; only a coded one is copied
	 * out, decoded. */
	uint8_t *plain = raw;
	size_t plain_len = raw_len > p->body_limits.max_bytes ? (size_t)p->body_limits.max_bytes : raw_len;
	body_status_t st = BODY_OK;
	if (encoded) {
		st = body_decode(ce, ce_len, raw, raw_len, &p->body_limits, &r->decoded, &why);
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
	r->msg.body_complete = st == BODY_OK;
	r->msg.body_note = r->note;
	shadow_ask(w, f, &r->msg, &r->shadow); /* before the active stage and its redaction touch anything */
	ask(p, w, f, r);
	if (!r->verdict.redact || r->verdict.monitor || r->verdict.kind != VERDICT_PASS)
		return;

	/* Redact: mask the selected findings where the view came from. Spans
	 * that overlap (two detectors on one number) are masked once, as their
	 * union, showing no more than the stricter of them would. */
	for (uint32_t i = 0; i < r->msg.n_findings; i++) {
		const finding_t *fd = &r->msg.findings[i];
		if (fd->redact && fd->incomplete) {
			/* More matches than a scan keeps spans for: masking some
			 * would forward the others. Refuse instead. */
			verdict_set(&r->verdict, VERDICT_BLOCK, r->verdict.rule,
				    "cannot redact: %s matched %u times, more than the %u a scan keeps spans for", fd->name, fd->count,
				    DET_MAX_MATCHES);
			return;
		}
	}
	uint32_t masked = 0;
	finding_span_t *sp = r->msg.spans;
	uint32_t n = r->msg.n_spans;
	if (n > 1)
		qsort(sp, n, sizeof *sp, span_cmp);
	/* Two passes: first whether every span can be masked where it came
	 * from (a finding decoded from base64 cannot: its bytes are bits of
	 * others), then the masking, so a message is masked whole or refused. */
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < n;) {
			const finding_t *fd = &r->msg.findings[sp[i].finding];
			if (!fd->redact) {
				i++;
				continue;
			}
			uint16_t view = sp[i].view;
			uint32_t start = sp[i].start, end = sp[i].start + sp[i].len;
			uint8_t keep_first = fd->keep_first, keep_last = fd->keep_last;
			for (i++; i < n && sp[i].view == view && sp[i].start < end; i++) {
				const finding_t *g = &r->msg.findings[sp[i].finding];
				if (!g->redact)
					continue;
				if (sp[i].start + sp[i].len > end)
					end = sp[i].start + sp[i].len;
				keep_first = keep_first < g->keep_first ? keep_first : g->keep_first;
				keep_last = keep_last < g->keep_last ? keep_last : g->keep_last;
			}
			if (!redact_span(r, plain, view, start, end - start, keep_first, keep_last, pass == 0)) {
				verdict_set(&r->verdict, VERDICT_BLOCK, r->verdict.rule,
					    "cannot redact: %s was found in the decoded %s view of the body, which cannot be "
					    "masked in place", fd->name, r->msg.views->v[view - 1].name);
				return;
			}
			masked += pass;
		}
	}
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

void inspect_result_free(inspect_result_t *r)
{
	shadow_result_free(&r->shadow);
	body_view_free(&r->view);
	bytebuf_free(&r->decoded);
	policy_msg_clear(&r->msg);
}
