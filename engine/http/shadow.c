/*
 * shadow: see shadow.h. The sample is drawn from a per-thread generator
 * (xorshift seeded from the OpenSSL RNG): a draw per message must cost
 * nothing next to a policy call, and it needs no secrecy.
 */
#include "http/shadow.h"

#include "engine.h"
#include "net/worker.h"
#include "report/report.h"

#include <openssl/rand.h>
#include <string.h>

static _Thread_local uint64_t sample_state;

static unsigned sample_draw(void)
{
	if (!sample_state) {
		RAND_bytes((unsigned char *)&sample_state, sizeof sample_state);
		sample_state |= 1;
	}
	uint64_t x = sample_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	sample_state = x;
	return (unsigned)(x % 100);
}

void shadow_ask(struct worker *w, const flow_facts_t *f, const policy_msg_t *m, shadow_result_t *s)
{
	memset(s, 0, sizeof *s);
	if (!w)
		return;
	unsigned pct = 0;
	compiled_policy_t *p = engine_shadow_acquire(w->eng, &pct);
	if (!p)
		return;
	if (pct < 100 && sample_draw() >= pct) {
		policy_unref(p);
		return;
	}
	if (!http_head_copy(&s->head, m->head, NULL)) {
		http_head_free(&s->head);
		policy_unref(p);
		return; /* out of memory: the shadow is best effort, traffic is not */
	}
	s->policy = p;
	s->msg.head = &s->head;
	s->msg.request = m->request;
	s->msg.view = m->view;
	s->msg.body_size = m->body_size;
	s->msg.body_complete = m->body_complete;
	s->msg.body_note = m->body_note;
	s->msg.websocket = m->websocket;
	if (m->websocket)
		p->ops->on_message(p, w, f, &s->msg, &s->verdict);
	else if (m->head->is_request)
		p->ops->on_request(p, w, f, &s->msg, &s->verdict);
	else
		p->ops->on_response(p, w, f, &s->msg, &s->verdict);
}

const char *shadow_verdict_name(const verdict_t *v)
{
	return v->redact && v->kind == VERDICT_PASS ? "redact" : verdict_name(v->kind);
}

bool shadow_differs(const shadow_result_t *s, const verdict_t *active)
{
	if (!s->policy)
		return false;
	return strcmp(shadow_verdict_name(&s->verdict), shadow_verdict_name(active)) != 0;
}

void shadow_result_free(shadow_result_t *s)
{
	if (!s->policy)
		return;
	policy_msg_clear(&s->msg);
	http_head_free(&s->head);
	policy_unref(s->policy);
	s->policy = NULL;
}
