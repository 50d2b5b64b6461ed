/*
 * lmsg: flows and messages as Lua sees them.
 *
 * A message object lives for one stage call: the relay's buffers behind
 * it are gone afterwards, so lmsg_invalidate() marks it and any later use
 * is an error, not a read of freed memory. Header edits go straight into
 * the head that is forwarded; names and values are checked so a policy
 * cannot inject a line break, and framing fields stay dlpgate's.
 */
#include "policy/lua_internal.h"

#include "core/hex.h"
#include "detect/mask.h"
#include "detect/views.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MESSAGE_MT "dlp.message"
#define HEADERS_MT "dlp.headers"

typedef struct {
	policy_msg_t *m;
	const flow_facts_t *f;
	bool request;
	bool read_only;
	bool valid;
} lmsg_t;

static lmsg_t *check_msg(lua_State *L, int idx)
{
	lmsg_t *u = luaL_checkudata(L, idx, MESSAGE_MT);
	if (!u->valid)
		luaL_error(L, "this message belongs to a stage that has returned; use it only inside its stage");
	return u;
}

/* ---- flow ---- */

static void set_str(lua_State *L, const char *k, const char *v)
{
	if (v && *v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, k);
	}
}

void lmsg_push_flow(lua_State *L, const flow_facts_t *f)
{
	static const char *const sources[] = {"explicit", "transparent", "sysext"};
	lua_createtable(L, 0, 10);
	set_str(L, "host", f->host);
	set_str(L, "sni", f->sni);
	set_str(L, "dst_ip", f->dst_ip);
	set_str(L, "client", f->client);
	lua_pushinteger(L, f->port);
	lua_setfield(L, -2, "dst_port");
	lua_pushstring(L, sources[f->source < 3 ? f->source : 0]);
	lua_setfield(L, -2, "source");
	lua_pushboolean(L, f->tls);
	lua_setfield(L, -2, "tls");
	/* app identity: empty where the source cannot know it (explicit proxy) */
	const flow_app_t *a = &f->app;
	lua_createtable(L, 0, 7);
	if (a->pid > 0 || a->uid > 0) {
		lua_pushinteger(L, a->pid);
		lua_setfield(L, -2, "pid");
		lua_pushinteger(L, a->uid);
		lua_setfield(L, -2, "uid");
	}
	set_str(L, "path", a->path);
	set_str(L, "cmdline", a->cmdline);
	set_str(L, "signing_id", a->signing_id);
	set_str(L, "team_id", a->team_id);
	set_str(L, "anchor", a->anchor);
	lua_setfield(L, -2, "app");
}

/* ---- headers ---- */

static bool token_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || strchr("!#$%&'*+-.^_`|~", s[i])))
			return false;
	return true;
}

static bool value_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return false;
	return !memchr(s, 0x7f, n);
}

static bool framing_field(const char *name)
{
	static const char *const f[] = {"content-length", "transfer-encoding", "connection", "upgrade", "te", NULL};
	for (int i = 0; f[i]; i++)
		if (!strcasecmp(name, f[i]))
			return true;
	return false;
}

static lmsg_t *headers_msg(lua_State *L)
{
	luaL_checkudata(L, 1, HEADERS_MT);
	lua_getiuservalue(L, 1, 1);
	lmsg_t *u = check_msg(L, -1);
	lua_pop(L, 1);
	return u;
}

static int h_get(lua_State *L)
{
	lmsg_t *u = headers_msg(L);
	uint32_t n;
	const char *v = http_head_get(u->m->head, luaL_checkstring(L, 2), &n);
	if (v)
		lua_pushlstring(L, v, n);
	else
		lua_pushnil(L);
	return 1;
}

static int h_all(lua_State *L)
{
	lmsg_t *u = headers_msg(L);
	const http_head_t *h = u->m->head;
	lua_createtable(L, (int)h->n_fields, 0);
	int k = 0;
	for (uint32_t i = 0; i < h->n_fields; i++) {
		const http_field_t *f = &h->fields[i];
		if (f->dead)
			continue;
		lua_createtable(L, 0, 2);
		lua_pushlstring(L, h->arena.data + f->name_off, f->name_len);
		lua_setfield(L, -2, "name");
		lua_pushlstring(L, h->arena.data + f->value_off, f->value_len);
		lua_setfield(L, -2, "value");
		lua_rawseti(L, -2, ++k);
	}
	return 1;
}

static lmsg_t *writable(lua_State *L, const char *name)
{
	lmsg_t *u = headers_msg(L);
	if (u->read_only)
		luaL_error(L, "headers of the request cannot be changed in on_response");
	size_t n = strlen(name);
	if (!token_ok(name, n))
		luaL_error(L, "\"%s\" is not a header name", name);
	if (framing_field(name))
		luaL_error(L, "%s describes the message's framing, which dlpgate keeps right itself", name);
	return u;
}

static int h_set(lua_State *L)
{
	const char *name = luaL_checkstring(L, 2);
	size_t vn;
	const char *value = luaL_checklstring(L, 3, &vn);
	lmsg_t *u = writable(L, name);
	if (!value_ok(value, vn) || strlen(value) != vn)
		return luaL_error(L, "the value for %s holds a control character", name);
	if (!http_head_set(u->m->head, name, value))
		return luaL_error(L, "the head is full (limits.header_bytes / header_count)");
	return 0;
}

static int h_remove(lua_State *L)
{
	const char *name = luaL_checkstring(L, 2);
	lmsg_t *u = writable(L, name);
	http_head_remove(u->m->head, name);
	return 0;
}

/* ---- query ---- */


static void push_decoded(lua_State *L, const char *s, size_t n)
{
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+')
			luaL_addchar(&b, ' ');
		else if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
			luaL_addchar(&b, (char)(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2])));
			i += 2;
		} else
			luaL_addchar(&b, s[i]);
	}
	luaL_pushresult(&b);
}

/* The query of target as a table: name -> value (the last one wins). */
static void push_query(lua_State *L, const char *t, size_t n)
{
	lua_newtable(L);
	const char *q = memchr(t, '?', n);
	if (!q)
		return;
	const char *end = t + n, *p = q + 1;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(e - p));
		if (e > p) {
			push_decoded(L, p, (size_t)((eq ? eq : e) - p));
			if (eq)
				push_decoded(L, eq + 1, (size_t)(e - eq - 1));
			else
				lua_pushliteral(L, "");
			lua_settable(L, -3);
		}
		p = e + 1;
	}
}

/* ---- scan ---- */

static finding_t *finding_for(policy_msg_t *m, const char *name)
{
	for (uint32_t i = 0; i < m->n_findings; i++)
		if (!strcmp(m->findings[i].name, name))
			return &m->findings[i];
	if (m->n_findings == FINDINGS_MAX ||
	    !bytebuf_grow_array(&m->findings, sizeof *m->findings, m->n_findings, &m->cap_findings, 8))
		return NULL;
	finding_t *f = &m->findings[m->n_findings++];
	memset(f, 0, sizeof *f);
	snprintf(f->name, sizeof f->name, "%s", name);
	return f;
}

static bool add_span(policy_msg_t *m, uint32_t start, uint32_t len, uint16_t finding, uint8_t space, uint16_t view)
{
	if (!bytebuf_grow_array(&m->spans, sizeof *m->spans, m->n_spans, &m->cap_spans, 32))
		return false;
	m->spans[m->n_spans++] = (finding_span_t){start, len, finding, space, view};
	return true;
}

/* One detector's results over the message, a piece each: the body view
 * (or each multipart part it ran on), each decoded view of the body, the
 * request's target and fields (the head view) and its decoded views, and
 * the text of the documents the body carries. */
typedef struct {
	det_result_t *r;
	uint32_t off;   /* where r's text starts in its space's text (a part's offset) */
	uint8_t space;  /* span_space_t */
	uint16_t view;  /* 0: the space's own text; k: its decoded view k - 1 */
	bool doc;       /* in m->docs' text: samples and the member's name, no span */
} piece_t;

typedef struct {
	piece_t *p;
	size_t n;
	uint32_t count;
	bool timed_out;
} outcome_t;

static void note_view(finding_t *f, const char *name)
{
	for (uint8_t i = 0; i < f->n_views; i++)
		if (!strcmp(f->views[i], name))
			return;
	if (f->n_views < FINDING_VIEWS_MAX)
		snprintf(f->views[f->n_views++], sizeof f->views[0], "%s", name);
}

/* Was this match reported already: in the carry-over of a streamed
 * window (the window before had it), or a repeat of the head view (a
 * field repeated under one name is also read joined)? Decided on the
 * span of the space's own text it came from. */
static bool seen_before(const policy_msg_t *m, const piece_t *pc, uint32_t start, uint32_t len)
{
	uint32_t s = pc->off + start, l = len;
	if (pc->view)
		dview_root_span(policy_views(m, pc->space), pc->view - 1, start, len, &s, &l);
	if (pc->space == SPAN_HEAD)
		return head_view_repeat(m->head_view, s, l);
	return m->stream_window && s + l <= m->fresh_from;
}

/* The text a piece's match offsets are in. */
static const uint8_t *piece_text(const policy_msg_t *m, const piece_t *pc, const uint8_t *text,
				 const uint8_t *head_text)
{
	if (pc->doc)
		return (const uint8_t *)m->docs->text.data + pc->off;
	if (pc->view)
		return policy_views(m, pc->space)->v[pc->view - 1].text;
	return (pc->space == SPAN_HEAD ? head_text : text) + pc->off;
}

/* Records what d found, if it found enough: a finding below the
 * detector's min_count is no finding (not in found, not in the event,
 * nothing redacted), unless the detector timed out, which is reported.
 * Out of memory is a Lua error (the fail mode decides): a finding or a
 * span silently lost would be a secret forwarded unmasked. */
static void record(lua_State *L, policy_msg_t *m, const char *name, const detector_t *d, const outcome_t *o,
		   const uint8_t *text, const uint8_t *head_text)
{
	uint32_t count = o->count;
	for (size_t p = 0; p < o->n; p++)
		for (uint32_t i = 0; !o->p[p].doc && i < o->p[p].r->n_matches; i++)
			count -= seen_before(m, &o->p[p], o->p[p].r->matches[i].start, o->p[p].r->matches[i].len);
	bool enough = count > 0 && count >= detector_min_count(d);
	if (!enough && !o->timed_out)
		return;
	finding_t *f = finding_for(m, name);
	if (!f)
		luaL_error(L, "scan: out of memory (or more than %d detectors with findings)", FINDINGS_MAX);
	/* A second scan in the same stage replaces the first one's spans. */
	uint16_t idx = (uint16_t)(f - m->findings);
	uint32_t kept = 0;
	for (uint32_t i = 0; i < m->n_spans; i++)
		if (m->spans[i].finding != idx)
			m->spans[kept++] = m->spans[i];
	m->n_spans = kept;
	f->count = enough ? count : 0;
	f->n_samples = 0;
	f->n_locations = 0;
	f->n_views = 0;
	f->timed_out = o->timed_out;
	f->incomplete = false;
	f->in_document = false;
	f->document[0] = '\0';
	snprintf(f->severity, sizeof f->severity, "%s", detector_severity(d));
	confidence_t top = CONF_LOW;
	for (size_t p = 0; p < o->n; p++)
		if (det_result_top(o->p[p].r) > top)
			top = det_result_top(o->p[p].r);
	snprintf(f->confidence, sizeof f->confidence, "%s", confidence_name(top));
	f->keep_first = detector_keep_first(d);
	f->keep_last = detector_keep_last(d);
	for (size_t p = 0; enough && p < o->n; p++) {
		const piece_t *pc = &o->p[p];
		const det_result_t *r = pc->r;
		const uint8_t *base = piece_text(m, pc, text, head_text);
		f->incomplete |= r->count > r->n_matches;
		for (uint32_t i = 0; i < r->n_matches; i++) {
			const det_match_t *mt = &r->matches[i];
			if (!pc->doc && seen_before(m, pc, mt->start, mt->len))
				continue;
			if (f->n_samples < SAMPLES_MAX)
				mask_sample(f->samples[f->n_samples++], (const char *)base + mt->start, mt->len,
					    f->keep_first, f->keep_last);
			if (pc->doc) {
				/* in a document: nothing in the body to mask */
				if (!f->in_document) {
					const doc_segment_t *seg = doc_set_segment_at(m->docs, pc->off + mt->start);
					str_copy(f->document, sizeof f->document, seg ? seg->name : "?");
				}
				f->in_document = true;
				continue;
			}
			if (pc->view)
				note_view(f, policy_views(m, pc->space)->v[pc->view - 1].name);
			uint32_t at = pc->view ? mt->start : pc->off + mt->start;
			if (!add_span(m, at, mt->len, idx, pc->space, pc->view))
				luaL_error(L, "scan: out of memory");
		}
	}
}

static void add_location(finding_t *f, const char *where)
{
	for (uint8_t i = 0; i < f->n_locations; i++)
		if (!strcmp(f->locations[i], where))
			return;
	if (f->n_locations < LOCATIONS_MAX)
		snprintf(f->locations[f->n_locations++], LOCATION_MAX, "%s", where);
}

/* Does any span of space cover part of its text [start, start+len)? */
static bool covered(const policy_msg_t *m, uint8_t space, uint32_t start, uint32_t len)
{
	for (uint32_t i = 0; i < m->n_spans; i++) {
		uint32_t s, l;
		policy_span_root(m, &m->spans[i], &s, &l);
		if (m->spans[i].space == space && s < start + len && start < s + l)
			return true;
	}
	return false;
}

/* Where a body span is: the multipart file it lies in, else "body". A
 * file name that holds a matched text is masked: a location never
 * carries what a sample masks. */
static void body_location(const policy_msg_t *m, const uint8_t *text, uint32_t start, char *out, size_t cap)
{
	const body_view_t *v = m->view;
	for (uint32_t p = 0; v && p < v->n_parts; p++) {
		const body_part_t *part = &v->parts[p];
		if (start < part->off || start >= part->off + part->len || !part->filename[0])
			continue;
		char name[49];
		size_t nl = strnlen(part->filename, sizeof name - 1);
		memcpy(name, part->filename, nl);
		name[nl] = '\0';
		bool hide = false;
		for (uint32_t i = 0; i < m->n_spans && !hide; i++) {
			uint32_t s, l;
			policy_span_root(m, &m->spans[i], &s, &l);
			hide = m->spans[i].space == SPAN_BODY && l <= strlen(part->filename) &&
			       memmem(part->filename, strlen(part->filename), text + s, l);
		}
		for (size_t i = 0; i < nl; i++)
			if (hide && isalnum((unsigned char)name[i]))
				name[i] = '*';
			else if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
				name[i] = '?';
		snprintf(out, cap, "file:%s", name);
		return;
	}
	snprintf(out, cap, "body");
}

/* Each finding with spans gets the distinct places its matches are. */
static void locate(policy_msg_t *m, const uint8_t *text)
{
	for (uint32_t k = 0; k < m->n_findings; k++) {
		bool any = false;
		for (uint32_t i = 0; i < m->n_spans && !any; i++)
			any = m->spans[i].finding == k;
		if (any)
			m->findings[k].n_locations = 0;
	}
	for (uint32_t i = 0; i < m->n_spans; i++) {
		const finding_span_t *sp = &m->spans[i];
		char where[LOCATION_MAX];
		uint32_t start, len;
		policy_span_root(m, sp, &start, &len);
		if (sp->space == SPAN_HEAD && m->head_view) {
			uint32_t ns, nl;
			head_view_name_of(m->head_view, start, &ns, &nl);
			head_view_location(m->head_view, start, where, sizeof where, nl && covered(m, SPAN_HEAD, ns, nl));
		} else {
			body_location(m, text, start, where, sizeof where);
		}
		add_location(&m->findings[sp->finding], where);
	}
}

/* Room for n results in the state (about 4 KiB each: kept, not allocated
 * and zeroed per message; a scan fills what it reports). A Lua error when
 * memory runs out. */
static void results_fit(lua_State *L, lstate_t *ls, size_t n)
{
	if (n <= ls->n_results)
		return;
	det_result_t *r = realloc(ls->results, n * sizeof *r);
	if (r)
		ls->results = r;
	piece_t *o = r ? realloc(ls->pieces, n * sizeof *o) : NULL;
	if (!o)
		luaL_error(L, "scan: out of memory");
	ls->pieces = o;
	ls->n_results = n;
}

typedef struct {
	const char *name;
	const detector_t *d;
} wanted_t;

static int wanted_cmp(const void *a, const void *b)
{
	return strcmp(((const wanted_t *)a)->name, ((const wanted_t *)b)->name);
}

/* A detector scoped to file names runs on the multipart parts whose file
 * name matches; a filename-only one counts those parts. */
static void scan_parts(lua_State *L, lstate_t *ls, policy_msg_t *m, const wanted_t *w, const uint8_t *text,
		       confidence_t min)
{
	const body_view_t *v = m->view;
	size_t n_parts = v ? v->n_parts : 0;
	const doc_set_t *docs = m->docs;
	size_t n_segs = docs ? docs->n_segs : 0;
	results_fit(L, ls, n_parts + n_segs);
	outcome_t o = {.p = ls->pieces};
	char sample[SAMPLES_MAX][MASK_SAMPLE_MAX + 1];
	uint32_t n_named = 0;
	for (size_t p = 0; p < n_parts; p++) {
		const body_part_t *part = &v->parts[p];
		if (!part->filename[0] ||
		    !detector_filename_matches(w->d, part->filename, strlen(part->filename), ls->scratch))
			continue;
		if (detector_filename_only(w->d)) {
			if (n_named < SAMPLES_MAX)
				snprintf(sample[n_named], sizeof sample[0], "file %.40s", part->filename);
			n_named++;
			continue;
		}
		piece_t *pc = &o.p[o.n++];
		*pc = (piece_t){.r = &ls->results[o.n - 1], .off = part->off, .space = SPAN_BODY};
		detset_scan(ls->lp->detectors, ls->scratch, text + part->off, part->len, part->filename, &w->d, 1, pc->r);
		det_result_keep_min(pc->r, min);
		o.count += pc->r->count;
		o.timed_out |= pc->r->timed_out;
	}
	/* members of documents, by their own name (after the last '!') */
	for (size_t g = 0; g < n_segs; g++) {
		const doc_segment_t *seg = &docs->segs[g];
		const char *name = strrchr(seg->name, '!');
		name = name ? name + 1 : seg->name;
		if (!detector_filename_matches(w->d, name, strlen(name), ls->scratch))
			continue;
		if (detector_filename_only(w->d)) {
			if (n_named < SAMPLES_MAX)
				snprintf(sample[n_named], sizeof sample[0], "file %.40s", name);
			n_named++;
			continue;
		}
		piece_t *pc = &o.p[o.n++];
		*pc = (piece_t){.r = &ls->results[o.n - 1], .off = seg->off, .doc = true};
		detset_scan(ls->lp->detectors, ls->scratch, (const uint8_t *)docs->text.data + seg->off, seg->len, name,
			    &w->d, 1, pc->r);
		det_result_keep_min(pc->r, min);
		o.count += pc->r->count;
		o.timed_out |= pc->r->timed_out;
	}
	if (!detector_filename_only(w->d)) {
		record(L, m, w->name, w->d, &o, text, NULL);
	} else if (n_named && n_named >= detector_min_count(w->d)) {
		finding_t *f = finding_for(m, w->name);
		if (!f)
			luaL_error(L, "scan: out of memory");
		f->count = n_named;
		f->n_locations = 0;
		for (uint32_t p = 0; p < n_parts; p++)
			if (v->parts[p].filename[0] &&
			    detector_filename_matches(w->d, v->parts[p].filename, strlen(v->parts[p].filename), ls->scratch))
				body_location(m, text, v->parts[p].off, f->locations[0], sizeof f->locations[0]), f->n_locations = 1;
		snprintf(f->severity, sizeof f->severity, "%s", detector_severity(w->d));
		snprintf(f->confidence, sizeof f->confidence, "%s",
			 detector_confidence(w->d) ? detector_confidence(w->d) : "medium");
		for (f->n_samples = 0; f->n_samples < n_named && f->n_samples < SAMPLES_MAX; f->n_samples++)
			memcpy(f->samples[f->n_samples], sample[f->n_samples], sizeof sample[0]);
	}
}

static void push_found(lua_State *L, const finding_t *f)
{
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, f->count);
	lua_setfield(L, -2, "count");
	lua_pushstring(L, f->severity);
	lua_setfield(L, -2, "severity");
	lua_pushstring(L, f->confidence);
	lua_setfield(L, -2, "confidence");
	lua_pushstring(L, f->name);
	lua_setfield(L, -2, "name");
	if (f->in_document) {
		lua_pushboolean(L, true);
		lua_setfield(L, -2, "in_document");
		lua_pushstring(L, f->document);
		lua_setfield(L, -2, "document");
	}
	lua_createtable(L, f->n_samples, 0);
	for (int s = 0; s < f->n_samples; s++) {
		lua_pushstring(L, f->samples[s]);
		lua_rawseti(L, -2, s + 1);
	}
	lua_setfield(L, -2, "samples");
	lua_createtable(L, f->n_locations, 0);
	for (int k = 0; k < f->n_locations; k++) {
		lua_pushstring(L, f->locations[k]);
		lua_rawseti(L, -2, k + 1);
	}
	lua_setfield(L, -2, "locations");
	/* the decoded views it was found in ("url", "base64>json"), if any */
	if (f->n_views) {
		lua_createtable(L, f->n_views, 0);
		for (int k = 0; k < f->n_views; k++) {
			lua_pushstring(L, f->views[k]);
			lua_rawseti(L, -2, k + 1);
		}
		lua_setfield(L, -2, "views");
	}
}

/* The decoded views of a text (the body view's, or the head view's: a
 * query string's %20 and a header's base64 too), built by the first scan
 * of the stage that needs them into *slot and kept for redaction; NULL
 * when there are none. Quoted-printable applies to the multipart parts of
 * body that declare it. */
static const dview_set_t *views_of(lua_State *L, dview_set_t **slot, const uint8_t *text, size_t len,
				   const body_view_t *body)
{
	if (*slot || !len)
		return *slot && (*slot)->n ? *slot : NULL;
	dview_range_t qp[BODY_MAX_PARTS];
	size_t n_qp = 0;
	for (uint32_t i = 0; body && body->kind == VIEW_MULTIPART && i < body->n_parts; i++)
		if (body->parts[i].quoted_printable)
			qp[n_qp++] = (dview_range_t){body->parts[i].off, body->parts[i].len};
	*slot = calloc(1, sizeof **slot);
	if (!*slot || !dview_set_build(*slot, text, len, qp, n_qp, NULL))
		luaL_error(L, "scan: out of memory building the decoded views");
	return (*slot)->n ? *slot : NULL;
}

/* A match in a decoded view whose bytes are the text's own, unchanged,
 * was found by the scan of the text already: it is not counted twice. */
static void drop_verbatim(const dview_set_t *views, int vi, det_result_t *r)
{
	uint32_t kept = 0;
	for (uint32_t i = 0; i < r->n_matches; i++) {
		const det_match_t *mt = &r->matches[i];
		if (dview_verbatim(views, vi, mt->start, mt->len)) {
			r->count--;
			if (r->at_level[mt->confidence])
				r->at_level[mt->confidence]--; /* det_result_keep_min counts by level */
		} else
			r->matches[kept++] = *mt;
	}
	r->n_matches = kept;
}

/* Runs the detectors table at didx over m's body, fills m's findings and
 * pushes the found table. */
static void lmsg_scan(lua_State *L, policy_msg_t *m, int didx, confidence_t min)
{
	didx = lua_absindex(L, didx);
	luaL_checktype(L, didx, LUA_TTABLE);
	lstate_t *ls = lstate_of(L);
	enum { MAXD = 512 };
	wanted_t want[MAXD];
	size_t n = 0;
	lua_pushnil(L);
	while (lua_next(L, didx)) {
		if (lua_type(L, -2) == LUA_TSTRING && ldlp_is_detector(L, -1)) {
			if (n == MAXD)
				luaL_error(L, "scan: more than %d detectors in one table", MAXD);
			want[n].name = lua_tostring(L, -2); /* the key stays in the table */
			want[n++].d = ldlp_check_detector(L, -1);
		}
		lua_pop(L, 1);
	}
	if (n == 0)
		luaL_error(L, "scan: the table holds no detectors (name = dlp.detector{...})");
	qsort(want, n, sizeof *want, wanted_cmp);
	const body_view_t *v = m->view;
	const uint8_t *text = v ? v->text : (const uint8_t *)"";
	size_t len = v ? v->len : 0;
	/* A request's target and fields are scanned with its body (once: a
	 * streamed window's head was scanned with the prefix, and a WebSocket
	 * message's Upgrade request with the Upgrade). */
	head_view_t *hv = m->head_view;
	if (!hv && m->head && m->head->is_request && !m->stream_window && !m->websocket) {
		hv = calloc(1, sizeof *hv);
		if (!hv || !head_view_build(hv, m->head)) {
			free(hv);
			luaL_error(L, "scan: out of memory");
			return; /* not reached: luaL_error does not return */
		}
		m->head_view = hv;
	}
	const uint8_t *head_text = hv ? (const uint8_t *)hv->text.data : NULL;

	/* Detectors that apply to the whole text run together, in one pass
	 * of the prefilter. */
	const detector_t *plain[MAXD];
	size_t plain_at[MAXD], np = 0;
	for (size_t i = 0; i < n; i++) {
		const detector_t *d = want[i].d;
		if (detector_filename_only(d) || !detector_filename_matches(d, "", 0, ls->scratch)) {
			scan_parts(L, ls, m, &want[i], text, min);
			continue;
		}
		plain_at[np] = i;
		plain[np++] = d;
	}
	const doc_set_t *docs = m->docs && m->docs->text.len ? m->docs : NULL;
	/* Then over each decoded view of the body and of the head (URL
	 * encoding, base64, quoted-printable parts, and views of those), for
	 * what only the decoded bytes show, and over the documents' text: a
	 * block of np results each, the pieces every detector's finding is
	 * made of. */
	const dview_set_t *bviews = np ? views_of(L, &m->views, text, len, v) : NULL;
	const dview_set_t *hviews = np && hv ? views_of(L, &m->head_views, head_text, hv->text.len, NULL) : NULL;
	piece_t blocks[2 * DVIEW_MAX + 3];
	size_t nb = 0;
	blocks[nb++] = (piece_t){.space = SPAN_BODY};
	for (uint32_t k = 0; bviews && k < bviews->n; k++)
		blocks[nb++] = (piece_t){.space = SPAN_BODY, .view = (uint16_t)(k + 1)};
	if (hv)
		blocks[nb++] = (piece_t){.space = SPAN_HEAD};
	for (uint32_t k = 0; hviews && k < hviews->n; k++)
		blocks[nb++] = (piece_t){.space = SPAN_HEAD, .view = (uint16_t)(k + 1)};
	if (docs)
		blocks[nb++] = (piece_t){.doc = true};
	results_fit(L, ls, np * nb + nb);
	det_result_t *res = ls->results;
	for (size_t b = 0; np && b < nb; b++) {
		const piece_t *pc = &blocks[b];
		const dview_set_t *views = pc->view ? policy_views(m, pc->space) : NULL;
		const uint8_t *t = pc->doc ? (const uint8_t *)docs->text.data
			       : views ? views->v[pc->view - 1].text
			       : pc->space == SPAN_HEAD ? head_text : text;
		size_t tl = pc->doc ? docs->text.len
			  : views ? views->v[pc->view - 1].len
			  : pc->space == SPAN_HEAD ? hv->text.len : len;
		detset_scan(ls->lp->detectors, ls->scratch, t, tl, NULL, plain, np, &res[b * np]);
		for (size_t i = 0; views && i < np; i++)
			drop_verbatim(views, pc->view - 1, &res[b * np + i]);
	}
	piece_t *pieces = ls->pieces;
	for (size_t i = 0; i < np; i++) {
		outcome_t o = {.p = pieces, .n = nb};
		for (size_t b = 0; b < nb; b++) {
			pieces[b] = blocks[b];
			pieces[b].r = &res[b * np + i];
			det_result_keep_min(pieces[b].r, min);
			o.count += pieces[b].r->count;
			o.timed_out |= pieces[b].r->timed_out;
		}
		record(L, m, want[plain_at[i]].name, plain[i], &o, text, head_text);
	}
	locate(m, text);

	/* found: what reached its minimum count, by name */
	lua_newtable(L);
	for (size_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < m->n_findings; k++)
			if (m->findings[k].count && !strcmp(m->findings[k].name, want[i].name)) {
				push_found(L, &m->findings[k]);
				lua_setfield(L, -2, want[i].name);
				break;
			}
}

/* ---- message ---- */

/* req:scan(detectors [, {min_confidence = "medium"}]): findings below
 * the level are no findings (not found, not reported, not redacted). */
static int m_scan(lua_State *L)
{
	lmsg_t *u = check_msg(L, 1);
	confidence_t min = CONF_LOW;
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 3)) {
			if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "min_confidence"))
				return luaL_error(L, "scan: the options take min_confidence only");
			lua_pop(L, 1);
		}
		lua_getfield(L, 3, "min_confidence");
		int c = lua_isstring(L, -1) ? confidence_by_name(lua_tostring(L, -1)) : -1;
		if (c < 0)
			return luaL_error(L, "scan: min_confidence must be \"low\", \"medium\" or \"high\"");
		min = (confidence_t)c;
		lua_pop(L, 1);
	}
	lua_settop(L, 2);
	lmsg_scan(L, u->m, 2, min);
	return 1;
}

static int m_body(lua_State *L)
{
	lmsg_t *u = check_msg(L, 1);
	const body_view_t *v = u->m->view;
	if (!v)
		lua_pushliteral(L, "");
	else
		lua_pushlstring(L, (const char *)v->text, v->len);
	return 1;
}

static void push_target_parts(lua_State *L, const http_head_t *h, bool want_path)
{
	const char *t = http_head_str(h, h->target_off);
	size_t n = h->target_len;
	/* absolute-form: skip scheme://authority */
	const char *s = memmem(t, n, "://", 3);
	if (s && t[0] != '/') {
		const char *slash = memchr(s + 3, '/', (size_t)(t + n - s - 3));
		n -= slash ? (size_t)(slash - t) : n;
		t = slash ? slash : t + n;
	}
	const char *q = memchr(t, '?', n);
	if (want_path)
		lua_pushlstring(L, t, q ? (size_t)(q - t) : n);
	else
		push_query(L, t, n);
}

static int m_index(lua_State *L)
{
	lmsg_t *u = check_msg(L, 1);
	const char *k = luaL_checkstring(L, 2);
	const http_head_t *h = u->m->head;
	uint32_t n;
	const char *v;
	if (!strcmp(k, "scan"))
		lua_pushcfunction(L, m_scan);
	else if (!strcmp(k, "body"))
		lua_pushcfunction(L, m_body);
	else if (!strcmp(k, "method") && h->is_request)
		lua_pushlstring(L, http_head_str(h, h->method_off), h->method_len);
	else if (!strcmp(k, "status") && !h->is_request)
		lua_pushinteger(L, h->status);
	else if (!strcmp(k, "path") && h->is_request)
		push_target_parts(L, h, true);
	else if (!strcmp(k, "query") && h->is_request) {
		lua_getiuservalue(L, 1, 1);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			push_target_parts(L, h, false);
			lua_pushvalue(L, -1);
			lua_setiuservalue(L, 1, 1);
		}
	} else if (!strcmp(k, "host")) {
		v = h->is_request ? http_head_get(h, "host", &n) : NULL;
		if (v) {
			const char *colon = v[0] == '[' ? memchr(v, ']', n) : memchr(v, ':', n);
			if (colon && v[0] == '[')
				lua_pushlstring(L, v + 1, (size_t)(colon - v - 1));
			else
				lua_pushlstring(L, v, colon ? (size_t)(colon - v) : n);
		} else if (u->f && u->f->host)
			lua_pushstring(L, u->f->host);
		else
			lua_pushnil(L);
	} else if (!strcmp(k, "url") && h->is_request) {
		const char *t = http_head_str(h, h->target_off);
		if (h->target_len && t[0] != '/')
			lua_pushlstring(L, t, h->target_len);
		else {
			v = http_head_get(h, "host", &n);
			luaL_Buffer b;
			luaL_buffinit(L, &b);
			luaL_addstring(&b, u->f && u->f->tls ? "https://" : "http://");
			if (v)
				luaL_addlstring(&b, v, n);
			else if (u->f && u->f->host)
				luaL_addstring(&b, u->f->host);
			luaL_addlstring(&b, t, h->target_len);
			luaL_pushresult(&b);
		}
	} else if (!strcmp(k, "headers")) {
		lua_getiuservalue(L, 1, 2);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			lua_newuserdatauv(L, 1, 1);
			lua_pushvalue(L, 1);
			lua_setiuservalue(L, -2, 1);
			luaL_setmetatable(L, HEADERS_MT);
			lua_pushvalue(L, -1);
			lua_setiuservalue(L, 1, 2);
		}
	} else if (!strcmp(k, "content_type")) {
		v = http_head_get(h, "content-type", &n);
		if (v)
			lua_pushlstring(L, v, n);
		else
			lua_pushnil(L);
	} else if (!strcmp(k, "body_size"))
		lua_pushinteger(L, (lua_Integer)u->m->body_size);
	else if (!strcmp(k, "body_complete"))
		lua_pushboolean(L, u->m->body_complete);
	else if (!strcmp(k, "websocket") && u->m->websocket) {
		/* a WebSocket message: {type = "text"|"binary", from = "client"|"server"} */
		lua_createtable(L, 0, 2);
		lua_pushstring(L, u->m->websocket->binary ? "binary" : "text");
		lua_setfield(L, -2, "type");
		lua_pushstring(L, u->m->websocket->from_server ? "server" : "client");
		lua_setfield(L, -2, "from");
	}
	else if (!strcmp(k, "streamed"))
		lua_pushboolean(L, u->m->stream_window);
	else if (!strcmp(k, "body_offset"))
		lua_pushinteger(L, (lua_Integer)u->m->body_offset);
	else if (!strcmp(k, "views_truncated")) /* a limit stopped the decoded views of the last scan */
		lua_pushboolean(L, u->m->views && u->m->views->truncated);
	else if (!strcmp(k, "files")) {
		const body_view_t *bv = u->m->view;
		lua_newtable(L);
		for (uint32_t i = 0; bv && i < bv->n_parts; i++) {
			const body_part_t *p = &bv->parts[i];
			lua_createtable(L, 0, 4);
			lua_pushstring(L, p->name);
			lua_setfield(L, -2, "name");
			if (p->filename[0]) {
				lua_pushstring(L, p->filename);
				lua_setfield(L, -2, "filename");
			}
			if (p->content_type[0]) {
				lua_pushstring(L, p->content_type);
				lua_setfield(L, -2, "content_type");
			}
			lua_pushinteger(L, p->len);
			lua_setfield(L, -2, "size");
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
	} else
		lua_pushnil(L);
	return 1;
}

void lmsg_push(lua_State *L, policy_msg_t *m, const flow_facts_t *f, bool request)
{
	lmsg_t *u = lua_newuserdatauv(L, sizeof *u, 2);
	u->m = m;
	u->f = f;
	u->request = request;
	u->read_only = false;
	u->valid = true;
	luaL_setmetatable(L, MESSAGE_MT);
}

void lmsg_invalidate(lua_State *L, int idx)
{
	lmsg_t *u = luaL_testudata(L, idx, MESSAGE_MT);
	if (u)
		u->valid = false;
}

void lmsg_open(lua_State *L)
{
	luaL_newmetatable(L, MESSAGE_MT);
	lua_pushcfunction(L, m_index);
	lua_setfield(L, -2, "__index");
	lua_pushliteral(L, "dlp.message");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	luaL_newmetatable(L, HEADERS_MT);
	static const luaL_Reg hm[] = {{"get", h_get}, {"set", h_set}, {"remove", h_remove}, {"all", h_all}, {NULL, NULL}};
	luaL_newlib(L, hm);
	lua_setfield(L, -2, "__index");
	lua_pushliteral(L, "dlp.headers");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* A read-only message for the request seen from on_response. */
void lmsg_push_readonly(lua_State *L, policy_msg_t *m, const flow_facts_t *f)
{
	lmsg_push(L, m, f, true);
	lmsg_t *u = lua_touserdata(L, -1);
	u->read_only = true;
}
