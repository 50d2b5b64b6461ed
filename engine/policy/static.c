/*
 * static: the policy a config file alone describes. Kept deliberately tiny:
 * it is the stand-in every other policy must be able to replace.
 */
#include "policy/policy.h"

#include "detect/views.h"

#include "core/hostglob.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char **hosts;
	size_t n;
} static_policy_t;

void verdict_set(verdict_t *v, verdict_kind_t kind, const char *rule, const char *fmt, ...)
{
	/* A whole new verdict (no flag left over from an earlier one); rule
	 * may be v->rule itself. */
	char who[sizeof v->rule];
	snprintf(who, sizeof who, "%s", rule ? rule : "");
	memset(v, 0, sizeof *v);
	v->kind = kind;
	memcpy(v->rule, who, sizeof who);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof v->reason, fmt, ap);
	va_end(ap);
}

const char *verdict_name(verdict_kind_t k)
{
	switch (k) {
	case VERDICT_INSPECT: return "inspect";
	case VERDICT_BYPASS: return "bypass";
	case VERDICT_PASS: return "pass";
	case VERDICT_BLOCK: return "block";
	}
	return "?";
}

const char *verdict_label(const verdict_t *v)
{
	if (v->redact && v->kind == VERDICT_PASS)
		return "redact";
	if (v->coach && v->kind == VERDICT_BLOCK)
		return "coach";
	return verdict_name(v->kind);
}

static void on_flow(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, verdict_t *v)
{
	(void)w;
	static_policy_t *s = p->impl;
	for (size_t i = 0; i < s->n; i++) {
		const char *name = NULL;
		if (f->sni && hostglob_match(s->hosts[i], f->sni))
			name = f->sni;
		else if (f->host && hostglob_match(s->hosts[i], f->host))
			name = f->host;
		if (name) {
			char rule[64];
			snprintf(rule, sizeof rule, "config bypass_hosts[%zu]", i);
			verdict_set(v, VERDICT_BYPASS, rule, "%s matches bypass_hosts \"%s\"", name, s->hosts[i]);
			return;
		}
	}
	verdict_set(v, VERDICT_INSPECT, "default", "inspected by default");
}

const dview_set_t *policy_views(const policy_msg_t *m, uint8_t space)
{
	return space == SPAN_HEAD ? m->head_views : m->views;
}

void policy_span_root(const policy_msg_t *m, const finding_span_t *sp, uint32_t *start, uint32_t *len)
{
	*start = sp->start, *len = sp->len;
	if (sp->view)
		dview_root_span(policy_views(m, sp->space), sp->view - 1, sp->start, sp->len, start, len);
}

void policy_msg_clear(policy_msg_t *m)
{
	for (int i = 0; i < 2; i++) {
		dview_set_t *views = i ? m->head_views : m->views;
		if (views)
			dview_set_free(views);
		free(views);
	}
	free(m->spans);
	free(m->findings);
	if (m->head_view) {
		head_view_free(m->head_view);
		free(m->head_view);
	}
	memset(m, 0, sizeof *m);
}

static void on_request(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, policy_msg_t *req, verdict_t *v)
{
	(void)p, (void)w, (void)f, (void)req;
	verdict_set(v, VERDICT_PASS, "default", "passed by default");
}

static void on_response(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, policy_msg_t *res, verdict_t *v)
{
	(void)p, (void)w, (void)f, (void)res;
	verdict_set(v, VERDICT_PASS, "default", "passed by default");
}

static const char *const uninspectable_names[] = {"pinned",   "alpn",    "not-http",
								     "encoding", "upgrade", "document"};

const char *uninspectable_name(uninspectable_t why)
{
	return why <= UNINSPECTABLE_DOCUMENT ? uninspectable_names[why] : "?";
}

int uninspectable_by_name(const char *name)
{
	for (int i = 0; i <= UNINSPECTABLE_DOCUMENT; i++)
		if (!strcmp(name, uninspectable_names[i]))
			return i;
	return -1;
}

/* A config has no fail setting: what it cannot inspect goes through, as it
 * always did; a Lua policy is where an admin decides otherwise. */
static void on_uninspectable(compiled_policy_t *p, struct worker *w, const flow_facts_t *f, uninspectable_t why,
			     const char *detail, verdict_t *v)
{
	(void)p, (void)w, (void)f;
	verdict_set(v, VERDICT_BYPASS, uninspectable_name(why), "not inspectable: %s", detail);
}

static void destroy(compiled_policy_t *p)
{
	static_policy_t *s = p->impl;
	for (size_t i = 0; i < s->n; i++)
		free(s->hosts[i]);
	free(s->hosts);
	free(s);
	free(p);
}

static const policy_ops_t static_ops = {"config", on_flow, on_request, on_response, on_uninspectable, destroy,
					 on_request /* a WebSocket message passes like a request */};

compiled_policy_t *policy_static_new(const config_t *cfg)
{
	compiled_policy_t *p = calloc(1, sizeof *p);
	static_policy_t *s = calloc(1, sizeof *s);
	if (!p || !s) {
		free(p);
		free(s);
		return NULL;
	}
	s->hosts = calloc(cfg->n_bypass_hosts ? cfg->n_bypass_hosts : 1, sizeof *s->hosts);
	for (size_t i = 0; s->hosts && i < cfg->n_bypass_hosts; i++) {
		s->hosts[i] = strdup(cfg->bypass_hosts[i]);
		if (s->hosts[i])
			s->n++;
	}
	p->ops = &static_ops;
	p->impl = s;
	atomic_init(&p->refs, 1);
	snprintf(p->version_text, sizeof p->version_text, "config");
	return p;
}
