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

static int hexv(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

static void push_decoded(lua_State *L, const char *s, size_t n)
{
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+')
			luaL_addchar(&b, ' ');
		else if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
			luaL_addchar(&b, (char)(hexv(s[i + 1]) << 4 | hexv(s[i + 2])));
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

static bool add_span(policy_msg_t *m, uint32_t start, uint32_t len, uint16_t finding, uint16_t view)
{
	if (!bytebuf_grow_array(&m->spans, sizeof *m->spans, m->n_spans, &m->cap_spans, 32))
		return false;
	m->spans[m->n_spans++] = (finding_span_t){start, len, finding, view};
	return true;
}

/* One detector's results over the message: one per part it ran on, or
 * (per_view) one per view: the body view, then each decoded view. */
typedef struct {
	det_result_t *r;
	size_t stride;    /* from one of its results to the next in r */
	uint32_t *offset; /* where each result's text starts in the view (not per_view) */
	size_t n;
	uint32_t count;
	bool timed_out;
	bool per_view;
	const dview_set_t *views;
} outcome_t;

static void note_view(finding_t *f, const char *name)
{
	for (uint8_t i = 0; i < f->n_views; i++)
		if (!strcmp(f->views[i], name))
			return;
	if (f->n_views < FINDING_VIEWS_MAX)
		snprintf(f->views[f->n_views++], sizeof f->views[0], "%s", name);
}

/* Records what d found, if it found enough: a finding below the
 * detector's min_count is no finding (not in found, not in the event,
 * nothing redacted), unless the detector timed out, which is reported.
 * Out of memory is a Lua error (the fail mode decides): a finding or a
 * span silently lost would be a secret forwarded unmasked. */
static void record(lua_State *L, policy_msg_t *m, const char *name, const detector_t *d, const outcome_t *o,
		   const uint8_t *text)
{
	bool enough = o->count > 0 && o->count >= detector_min_count(d);
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
	f->count = enough ? o->count : 0;
	f->n_samples = 0;
	f->n_views = 0;
	f->timed_out = o->timed_out;
	f->incomplete = false;
	snprintf(f->severity, sizeof f->severity, "%s", detector_severity(d));
	f->keep_first = detector_keep_first(d);
	f->keep_last = detector_keep_last(d);
	for (size_t p = 0; enough && p < o->n; p++) {
		const det_result_t *r = &o->r[p * o->stride];
		uint16_t view = o->per_view ? (uint16_t)p : 0;
		const uint8_t *base = view ? o->views->v[view - 1].text : text + (o->per_view ? 0 : o->offset[p]);
		uint32_t off = o->per_view ? 0 : o->offset[p];
		f->incomplete |= r->count > r->n_matches;
		if (view && r->n_matches)
			note_view(f, o->views->v[view - 1].name);
		for (uint32_t i = 0; i < r->n_matches; i++) {
			const det_match_t *mt = &r->matches[i];
			if (f->n_samples < SAMPLES_MAX)
				mask_sample(f->samples[f->n_samples++], (const char *)base + mt->start, mt->len,
					    f->keep_first, f->keep_last);
			if (!add_span(m, off + mt->start, mt->len, idx, view))
				luaL_error(L, "scan: out of memory");
		}
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
	uint32_t *o = r ? realloc(ls->offsets, n * sizeof *o) : NULL;
	if (!o)
		luaL_error(L, "scan: out of memory");
	ls->offsets = o;
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
static void scan_parts(lua_State *L, lstate_t *ls, policy_msg_t *m, const wanted_t *w, const uint8_t *text)
{
	const body_view_t *v = m->view;
	size_t n_parts = v ? v->n_parts : 0;
	results_fit(L, ls, n_parts);
	outcome_t o = {.r = ls->results, .stride = 1, .offset = ls->offsets};
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
		detset_scan(ls->lp->detectors, ls->scratch, text + part->off, part->len, part->filename, &w->d, 1,
			    &o.r[o.n]);
		o.offset[o.n] = part->off;
		o.count += o.r[o.n].count;
		o.timed_out |= o.r[o.n].timed_out;
		o.n++;
	}
	if (!detector_filename_only(w->d)) {
		record(L, m, w->name, w->d, &o, text);
	} else if (n_named && n_named >= detector_min_count(w->d)) {
		finding_t *f = finding_for(m, w->name);
		if (!f)
			luaL_error(L, "scan: out of memory");
		f->count = n_named;
		snprintf(f->severity, sizeof f->severity, "%s", detector_severity(w->d));
		for (f->n_samples = 0; f->n_samples < n_named && f->n_samples < SAMPLES_MAX; f->n_samples++)
			memcpy(f->samples[f->n_samples], sample[f->n_samples], sizeof sample[0]);
	}
}

static void push_found(lua_State *L, const finding_t *f, const detector_t *d)
{
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, f->count);
	lua_setfield(L, -2, "count");
	lua_pushstring(L, f->severity);
	lua_setfield(L, -2, "severity");
	lua_pushstring(L, detector_confidence(d));
	lua_setfield(L, -2, "confidence");
	lua_pushstring(L, f->name);
	lua_setfield(L, -2, "name");
	lua_createtable(L, f->n_samples, 0);
	for (int s = 0; s < f->n_samples; s++) {
		lua_pushstring(L, f->samples[s]);
		lua_rawseti(L, -2, s + 1);
	}
	lua_setfield(L, -2, "samples");
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

/* The decoded views of m's body view, built by the first scan of the
 * stage that needs them and kept for redaction; NULL when there are none.
 * Quoted-printable applies to the multipart parts that declare it. */
static const dview_set_t *views_of(lua_State *L, policy_msg_t *m)
{
	const body_view_t *v = m->view;
	if (m->views || !v || !v->len)
		return m->views && m->views->n ? m->views : NULL;
	dview_range_t qp[BODY_MAX_PARTS];
	size_t n_qp = 0;
	for (uint32_t i = 0; v->kind == VIEW_MULTIPART && i < v->n_parts; i++)
		if (v->parts[i].quoted_printable)
			qp[n_qp++] = (dview_range_t){v->parts[i].off, v->parts[i].len};
	m->views = calloc(1, sizeof *m->views);
	if (!m->views || !dview_set_build(m->views, v->text, v->len, qp, n_qp, NULL))
		luaL_error(L, "scan: out of memory building the decoded views");
	return m->views->n ? m->views : NULL;
}

/* A match in a decoded view whose bytes are the text's own, unchanged,
 * was found by the scan of the text already: it is not counted twice. */
static void drop_verbatim(const dview_set_t *views, int vi, det_result_t *r)
{
	uint32_t kept = 0;
	for (uint32_t i = 0; i < r->n_matches; i++) {
		const det_match_t *mt = &r->matches[i];
		if (dview_verbatim(views, vi, mt->start, mt->len))
			r->count--;
		else
			r->matches[kept++] = *mt;
	}
	r->n_matches = kept;
}

/* Runs the detectors table at didx over m's body, fills m's findings and
 * pushes the found table. */
static void lmsg_scan(lua_State *L, policy_msg_t *m, int didx)
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

	/* Detectors that apply to the whole text run together, in one pass
	 * of the prefilter. */
	const detector_t *plain[MAXD];
	size_t plain_at[MAXD], np = 0;
	for (size_t i = 0; i < n; i++) {
		const detector_t *d = want[i].d;
		if (detector_filename_only(d) || !detector_filename_matches(d, "", 0, ls->scratch)) {
			scan_parts(L, ls, m, &want[i], text);
			continue;
		}
		plain_at[np] = i;
		plain[np++] = d;
	}
	/* Then over each decoded view of the text (URL-encoding, base64,
	 * quoted-printable parts, and views of those), for what only the
	 * decoded bytes show. */
	const dview_set_t *views = np ? views_of(L, m) : NULL;
	size_t nv = 1 + (views ? views->n : 0);
	results_fit(L, ls, np * nv);
	det_result_t *res = ls->results;
	if (np)
		detset_scan(ls->lp->detectors, ls->scratch, text, len, NULL, plain, np, res);
	for (size_t k = 1; np && k < nv; k++) {
		const dview_t *dv = &views->v[k - 1];
		detset_scan(ls->lp->detectors, ls->scratch, dv->text, dv->len, NULL, plain, np, &res[k * np]);
		for (size_t i = 0; i < np; i++)
			drop_verbatim(views, (int)k - 1, &res[k * np + i]);
	}
	for (size_t i = 0; i < np; i++) {
		outcome_t o = {.r = &res[i], .stride = np, .n = nv, .per_view = true, .views = views};
		for (size_t k = 0; k < nv; k++) {
			o.count += res[k * np + i].count;
			o.timed_out |= res[k * np + i].timed_out;
		}
		record(L, m, want[plain_at[i]].name, plain[i], &o, text);
	}

	/* found: what reached its minimum count, by name */
	lua_newtable(L);
	for (size_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < m->n_findings; k++)
			if (m->findings[k].count && !strcmp(m->findings[k].name, want[i].name)) {
				push_found(L, &m->findings[k], want[i].d);
				lua_setfield(L, -2, want[i].name);
				break;
			}
}

/* ---- message ---- */

static int m_scan(lua_State *L)
{
	lmsg_t *u = check_msg(L, 1);
	lmsg_scan(L, u->m, 2);
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
