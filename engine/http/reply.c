#include "http/reply.h"

#include "http/coach.h"

#define COACH_FORM_PREFIX COACH_PATH_PREFIX

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *reply_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

typedef enum { FORM_TEXT, FORM_HTML, FORM_JSON } form_t;

static form_t negotiate(const http_head_t *req)
{
	uint32_t n = 0;
	const char *accept = req ? http_head_get(req, "accept", &n) : NULL;
	if (!accept)
		return FORM_TEXT;
	/* The first of the types we make that the client lists wins; good
	 * enough without weighing q-values for an error page. */
	const char *end = accept + n;
	for (const char *p = accept; p < end; p++) {
		if ((size_t)(end - p) >= 16 && !strncasecmp(p, "application/json", 16))
			return FORM_JSON;
		if ((size_t)(end - p) >= 9 && !strncasecmp(p, "text/html", 9))
			return FORM_HTML;
	}
	return FORM_TEXT;
}

static void append_escaped(bytebuf_t *b, const char *s, form_t form)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (form == FORM_HTML && (c == '<' || c == '>' || c == '&' || c == '"' || c == '\'')) {
			bytebuf_appendf(b, "&#%u;", c);
		} else if (form == FORM_JSON && (c == '"' || c == '\\')) {
			char e[2] = {'\\', (char)c};
			bytebuf_append(b, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			if (form == FORM_JSON)
				bytebuf_appendf(b, "\\u%04x", c);
			else
				bytebuf_append(b, "?", 1);
		} else {
			bytebuf_append(b, s, 1);
		}
	}
}

/* A path starts a word (or follows '(', '"', '=', ...); Lua cuts long source
 * names to "...tail/of/path.lua". */
static bool path_start(const char *s, const char *p)
{
	if (p > s && !strchr(" \t(\"'=,[", p[-1]))
		return false;
	return *p == '/' || !strncmp(p, "...", 3);
}

void reply_strip_paths(const char *s, char *out, size_t n)
{
	size_t o = 0;
	for (const char *p = s ? s : ""; *p && o + 1 < n;) {
		if (path_start(s, p)) {
			const char *e = p;
			unsigned slashes = 0;
			const char *last = NULL;
			for (; *e && !strchr(" \t)\"',]", *e); e++)
				if (*e == '/') {
					slashes++;
					last = e;
				}
			/* "/upload" may be a URL path; "/etc/x" and ".../x" name
			 * where a file lives: keep only its name */
			if (last && (slashes >= 2 || *p == '.'))
				p = last + 1;
			while (p < e && o + 1 < n)
				out[o++] = *p++;
			continue;
		}
		out[o++] = *p++;
	}
	if (n)
		out[o] = '\0';
}

static void append_clean(bytebuf_t *b, const char *s, form_t form)
{
	char clean[1024];
	reply_strip_paths(s, clean, sizeof clean);
	append_escaped(b, clean, form);
}

/* What the detectors found, as the page shows it: names, counts, severity
 * and masked samples, never more. */
static void append_findings(bytebuf_t *b, const policy_msg_t *m, form_t form)
{
	if (form == FORM_JSON) {
		bytebuf_append_str(b, "[");
		for (uint32_t i = 0; m && i < m->n_findings; i++) {
			const finding_t *fd = &m->findings[i];
			bytebuf_append_str(b, i ? ",{\"detector\":\"" : "{\"detector\":\"");
			append_escaped(b, fd->name, form);
			bytebuf_appendf(b, "\",\"count\":%u,\"severity\":\"", fd->count);
			append_escaped(b, fd->severity, form);
			bytebuf_append_str(b, "\",\"samples\":[");
			for (int k = 0; k < fd->n_samples; k++) {
				bytebuf_append_str(b, k ? ",\"" : "\"");
				append_escaped(b, fd->samples[k], form);
				bytebuf_append_str(b, "\"");
			}
			bytebuf_append_str(b, "]}");
		}
		bytebuf_append_str(b, "]");
		return;
	}
	if (!m || !m->n_findings)
		return;
	bytebuf_append_str(b, form == FORM_HTML ? "<h2>What was found</h2>\n<ul>\n" : " Found:");
	for (uint32_t i = 0; i < m->n_findings; i++) {
		const finding_t *fd = &m->findings[i];
		bytebuf_append_str(b, form == FORM_HTML ? "<li><b>" : " ");
		append_escaped(b, fd->name, form);
		bytebuf_appendf(b, form == FORM_HTML ? "</b> &times; %u (%s)" : " x%u (%s)", fd->count, fd->severity);
		for (int k = 0; k < fd->n_samples; k++) {
			bytebuf_append_str(b, form == FORM_HTML ? (k ? ", <code>" : ": <code>") : (k ? ", " : ": "));
			append_escaped(b, fd->samples[k], form);
			if (form == FORM_HTML)
				bytebuf_append_str(b, "</code>");
		}
		bytebuf_append_str(b, form == FORM_HTML ? "</li>\n" : ";");
	}
	if (form == FORM_HTML)
		bytebuf_append_str(b, "</ul>\n");
}

static void append_ttl(bytebuf_t *b, uint32_t ttl)
{
	if (ttl >= 120)
		bytebuf_appendf(b, "%u minutes", ttl / 60);
	else
		bytebuf_appendf(b, "%u seconds", ttl);
}

/* What the coach page says about why the finding matters (HTML and JSON). */
#define COACH_WHY                                                                                          \
	"Data like this can be used to take money, accounts or identities once it leaves your organisation, " \
	"and it cannot be called back. If sending it is part of your work, say why: your answer is recorded " \
	"with the event above and reviewed."

/* The coach page's two forms: proceed with a justification, or report a
 * false positive. Both post to the reserved path of the same host. */
static void append_coach_forms(bytebuf_t *b, const reply_t *r)
{
	bytebuf_append_str(b, "<h2>Why this matters</h2>\n<p>" COACH_WHY "</p>\n"
			      "<form method=\"post\" action=\"" COACH_FORM_PREFIX "override\">\n"
			      "<input type=\"hidden\" name=\"token\" value=\"");
	append_escaped(b, r->token, FORM_HTML);
	bytebuf_append_str(b, "\">\n<p><label for=\"justification\">Why must this go to this site?</label><br>\n"
			      "<textarea id=\"justification\" name=\"justification\" rows=\"4\" cols=\"60\" maxlength=\"1000\" "
			      "required></textarea></p>\n<p><button type=\"submit\" id=\"proceed\">Proceed and record my reason</button> "
			      "(then send it again; this lasts ");
	append_ttl(b, r->ttl_s);
	bytebuf_append_str(b, ")</p>\n</form>\n<form method=\"post\" action=\"" COACH_FORM_PREFIX "false-positive\">\n"
			      "<input type=\"hidden\" name=\"token\" value=\"");
	append_escaped(b, r->token, FORM_HTML);
	bytebuf_append_str(b, "\">\n<p>Not what it looks like? <button type=\"submit\" id=\"false-positive\">Report a "
			      "false positive</button> (nothing is sent)</p>\n</form>\n");
}

static void append_coach_json(bytebuf_t *b, const reply_t *r)
{
	bytebuf_appendf(b, ",\"coach\":{\"why\":\"" COACH_WHY "\",\"ttl_s\":%u,\"override\":{\"method\":\"POST\",\"path\":\"" COACH_FORM_PREFIX
			   "override\",\"content_type\":\"application/x-www-form-urlencoded\",\"fields\":[\"token\","
			   "\"justification\"]},\"false_positive\":{\"method\":\"POST\",\"path\":\"" COACH_FORM_PREFIX
			   "false-positive\",\"content_type\":\"application/x-www-form-urlencoded\",\"fields\":[\"token\"]},"
			   "\"token\":\"",
			r->ttl_s);
	append_escaped(b, r->token, FORM_JSON);
	bytebuf_append_str(b, "\"}");
}

bool reply_build(bytebuf_t *out, const reply_t *r, const http_head_t *req)
{
	form_t form = negotiate(req);
	bytebuf_t body;
	bytebuf_init(&body, 0);
	switch (form) {
	case FORM_JSON:
		bytebuf_appendf(&body, "{\"error\":{\"status\":%d,\"code\":\"", r->status);
		append_escaped(&body, r->code, form);
		bytebuf_append_str(&body, "\",\"title\":\"");
		append_escaped(&body, r->title, form);
		bytebuf_append_str(&body, "\",\"detail\":\"");
		append_clean(&body, r->detail, form);
		bytebuf_append_str(&body, "\"");
		if (r->rule) {
			bytebuf_append_str(&body, ",\"rule\":\"");
			append_clean(&body, r->rule, form);
			bytebuf_append_str(&body, "\"");
		}
		if (r->event_id)
			bytebuf_appendf(&body, ",\"event\":\"%s\"", r->event_id);
		if (r->found) {
			bytebuf_append_str(&body, ",\"found\":");
			append_findings(&body, r->found, form);
		}
		if (r->token)
			append_coach_json(&body, r);
		bytebuf_appendf(&body, ",\"flow\":%" PRIu64 ",\"by\":\"dlpgate\"}}\n", r->flow_id);
		break;
	case FORM_HTML:
		bytebuf_append_str(&body, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>");
		append_escaped(&body, r->title, form);
		bytebuf_append_str(&body, "</title></head>\n<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\n<h1>");
		append_escaped(&body, r->title, form);
		bytebuf_append_str(&body, "</h1>\n<p>");
		append_clean(&body, r->detail, form);
		bytebuf_append_str(&body, "</p>\n");
		if (r->rule) {
			bytebuf_append_str(&body, "<p>Rule: <code>");
			append_clean(&body, r->rule, form);
			bytebuf_append_str(&body, "</code></p>\n");
		}
		if (r->event_id)
			bytebuf_appendf(&body, "<p>Event: <code id=\"event\">%s</code> &middot; give this to your administrator.</p>\n",
				    r->event_id);
		append_findings(&body, r->found, form);
		if (r->token)
			append_coach_forms(&body, r);
		bytebuf_appendf(&body, "<p><small>dlpgate &middot; %d %s &middot; flow %" PRIu64 "</small></p>\n</body></html>\n",
			    r->status, reply_status_text(r->status), r->flow_id);
		break;
	case FORM_TEXT:
		bytebuf_append_str(&body, "dlpgate: ");
		append_escaped(&body, r->title, form);
		bytebuf_append_str(&body, ": ");
		append_clean(&body, r->detail, form);
		if (r->rule) {
			bytebuf_append_str(&body, " (rule ");
			append_clean(&body, r->rule, form);
			bytebuf_append_str(&body, ")");
		}
		if (r->event_id)
			bytebuf_appendf(&body, " (event %s)", r->event_id);
		append_findings(&body, r->found, form);
		if (r->token) {
			bytebuf_append_str(&body, " To proceed, POST token=");
			append_escaped(&body, r->token, form);
			bytebuf_append_str(&body, "&justification=YOUR+REASON to " COACH_FORM_PREFIX "override on this host, then send again.");
		}
		bytebuf_appendf(&body, " (flow %" PRIu64 ")\n", r->flow_id);
		break;
	}
	static const char *const types[] = {"text/plain; charset=utf-8", "text/html; charset=utf-8",
					    "application/json"};
	bool ok = body.data && bytebuf_appendf(out,
				"HTTP/1.1 %d %s\r\n"
				"Content-Type: %s\r\n"
				"Content-Length: %zu\r\n"
				"Cache-Control: no-store\r\n"
				"Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
				"frame-ancestors 'none'\r\n"
				"X-Frame-Options: DENY\r\n"
				"X-Content-Type-Options: nosniff\r\n"
				"Referrer-Policy: no-referrer\r\n"
				"%s: %s\r\n"
				"Connection: close\r\n\r\n",
				r->status, reply_status_text(r->status), types[form], body.len,
				r->status < 400 ? "X-Dlpgate-Result" : "X-Dlpgate-Error", r->code);
	if (ok && !r->head_only)
		ok = bytebuf_append(out, body.data, body.len);
	bytebuf_free(&body);
	return ok;
}
