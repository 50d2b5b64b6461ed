#include "http/reply.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *reply_status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
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
		append_escaped(&body, r->detail, form);
		bytebuf_append_str(&body, "\"");
		if (r->rule) {
			bytebuf_append_str(&body, ",\"rule\":\"");
			append_escaped(&body, r->rule, form);
			bytebuf_append_str(&body, "\"");
		}
		if (r->event_id)
			bytebuf_appendf(&body, ",\"event\":\"%s\"", r->event_id);
		bytebuf_appendf(&body, ",\"flow\":%" PRIu64 ",\"by\":\"dlpgate\"}}\n", r->flow_id);
		break;
	case FORM_HTML:
		bytebuf_append_str(&body, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>");
		append_escaped(&body, r->title, form);
		bytebuf_append_str(&body, "</title></head>\n<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\n<h1>");
		append_escaped(&body, r->title, form);
		bytebuf_append_str(&body, "</h1>\n<p>");
		append_escaped(&body, r->detail, form);
		bytebuf_append_str(&body, "</p>\n");
		if (r->rule) {
			bytebuf_append_str(&body, "<p>Rule: <code>");
			append_escaped(&body, r->rule, form);
			bytebuf_append_str(&body, "</code></p>\n");
		}
		if (r->event_id)
			bytebuf_appendf(&body, "<p>Event: <code>%s</code> &middot; give this to your administrator.</p>\n",
				    r->event_id);
		bytebuf_appendf(&body, "<p><small>dlpgate &middot; %d %s &middot; flow %" PRIu64 "</small></p>\n</body></html>\n",
			    r->status, reply_status_text(r->status), r->flow_id);
		break;
	case FORM_TEXT:
		bytebuf_append_str(&body, "dlpgate: ");
		append_escaped(&body, r->title, form);
		bytebuf_append_str(&body, ": ");
		append_escaped(&body, r->detail, form);
		if (r->rule) {
			bytebuf_append_str(&body, " (rule ");
			append_escaped(&body, r->rule, form);
			bytebuf_append_str(&body, ")");
		}
		if (r->event_id)
			bytebuf_appendf(&body, " (event %s)", r->event_id);
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
				"X-Dlpgate-Error: %s\r\n"
				"Connection: close\r\n\r\n",
				r->status, reply_status_text(r->status), types[form], body.len, r->code);
	if (ok && !r->head_only)
		ok = bytebuf_append(out, body.data, body.len);
	bytebuf_free(&body);
	return ok;
}
