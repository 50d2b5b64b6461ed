/*
 * uninspectable: the one place a flow the policy chose to inspect, but
 * that cannot be (the client refused our certificate earlier, ALPN without
 * http/1.1, not HTTP inside TLS, a protocol switch we cannot read), goes
 * back to the policy. The stages that find such a flow (intercept.c,
 * http/relay.c) only say why; the policy's on_uninspectable answers bypass
 * or block, and every answer is an event and a metric, because each is a
 * blind spot an admin must be able to see. A body the relay cannot decode
 * is the same question at the message level, asked by the relay itself.
 */
#include "flow.h"

#include "core/stats.h"
#include "report/report.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool flow_uninspectable(flow_t *f, uninspectable_t why, const char *fmt, ...)
{
	char detail[160], note[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	memset(&f->verdict, 0, sizeof f->verdict);
	f->policy->ops->on_uninspectable(f->policy, f->w, &f->facts, why, detail, &f->verdict);
	const verdict_t *v = &f->verdict;
	/* every such decision is an event: a blind spot an admin must see */
	snprintf(note, sizeof note, "uninspectable:%s", uninspectable_name(why));
	flow_report_decision(f, note);
	report_count(v->kind == VERDICT_BLOCK ? REPORT_BLOCK : REPORT_BYPASS);
	if (v->monitor)
		report_count(REPORT_MONITOR);
	if (v->error)
		report_count(REPORT_POLICY_ERRORS);
	metrics_add(stats_uninspectable, 1, uninspectable_name(why), v->kind == VERDICT_BLOCK ? "block" : "bypass",
		    NULL);
	return v->kind != VERDICT_BLOCK || v->monitor;
}
