/*
 * coach: see coach.h. The token, the two tables, and the answers of the
 * reserved path.
 */
#include "http/coach.h"

#include "core/hex.h"
#include "core/log.h"
#include "core/lru.h"
#include "report/event.h"
#include "tls/pinned.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>


typedef struct {
	char rule[128];
	char reason[160];
	char host[256];
	uint32_t ttl_s;
	uint64_t expires_s;
	bool fp_reported;
	char policy_version[48];
} offer_t;

static struct {
	pthread_once_t once;
	pthread_mutex_t lock;
	unsigned char key[32];
	lru_t *offers;    /* event id -> offer_t */
	lru_t *overrides; /* ident \n host \n rule -> event id it was given for */
} g = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

static void init_once(void)
{
	if (RAND_bytes(g.key, sizeof g.key) != 1)
		abort(); /* no randomness, no tokens anyone could not forge */
	g.offers = lru_new(COACH_OFFERS_MAX, free);
	g.overrides = lru_new(COACH_OVERRIDES_MAX, free);
}

static bool ready(void)
{
	pthread_once(&g.once, init_once);
	return g.offers && g.overrides;
}

static uint64_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

bool coach_is_reserved(const http_head_t *h)
{
	static const char prefix[] = COACH_PATH_PREFIX;
	size_t n = sizeof prefix - 1;
	const char *t = http_head_str(h, h->target_off);
	/* the prefix without its slash too: /.well-known/dlpgate is ours */
	if (h->target_len >= n - 1 && !strncasecmp(t, prefix, n - 1) && (h->target_len == n - 1 || t[n - 1] == '/' ||
									t[n - 1] == '?'))
		return true;
	return false;
}

void coach_identity(const flow_facts_t *f, const char *client_ip, const http_head_t *req, char out[COACH_IDENT_MAX])
{
	const flow_app_t *a = &f->app;
	if (pinned_app_key(a->signing_id, a->team_id, a->path, a->uid, a->pid > 0, out))
		return;
	uint32_t n = 0;
	const char *ua = req ? http_head_get(req, "user-agent", &n) : NULL;
	if (n > 300)
		n = 300;
	snprintf(out, COACH_IDENT_MAX, "addr:%s ua:%.*s", client_ip ? client_ip : "?", (int)n, ua ? ua : "");
}

static size_t override_key(char *key, size_t n, const char *ident, const char *host, const char *rule)
{
	int k = snprintf(key, n, "%s\n%s\n%s", ident, host ? host : "", rule);
	return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n - 1;
}

bool coach_override_live(const char *ident, const char *host, const char *rule, char of[37])
{
	if (!ready())
		return false;
	char key[COACH_IDENT_MAX + 512];
	size_t k = override_key(key, sizeof key, ident, host, rule);
	pthread_mutex_lock(&g.lock);
	const char *id = lru_get(g.overrides, key, k, now_s() * 1000);
	if (id)
		snprintf(of, 37, "%s", id);
	pthread_mutex_unlock(&g.lock);
	return id != NULL;
}

/* hex(HMAC(key, fields)) into out (65 bytes). */
static void token_mac(const char *event_id, uint64_t expires, const char *ident, const char *host, const char *rule,
		      char out[65])
{
	char msg[COACH_IDENT_MAX + 600];
	int n = snprintf(msg, sizeof msg, "dlpgate-coach\n%s\n%llu\n%s\n%s\n%s", event_id, (unsigned long long)expires,
			 ident, host ? host : "", rule);
	if (n < 0 || (size_t)n >= sizeof msg)
		n = (int)sizeof msg - 1;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	HMAC(EVP_sha256(), g.key, sizeof g.key, (const unsigned char *)msg, (size_t)n, md, &mdlen);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", i < mdlen ? md[i] : 0);
}

bool coach_offer(const char *event_id, const char *ident, const char *host, const verdict_t *v,
		 char token[COACH_TOKEN_MAX])
{
	if (!ready())
		return false;
	offer_t *o = calloc(1, sizeof *o);
	if (!o)
		return false;
	snprintf(o->rule, sizeof o->rule, "%s", v->rule);
	snprintf(o->reason, sizeof o->reason, "%s", v->reason);
	snprintf(o->host, sizeof o->host, "%s", host ? host : "");
	o->ttl_s = v->coach_ttl_s ? v->coach_ttl_s : 3600;
	o->expires_s = now_s() + (v->coach_within_s ? v->coach_within_s : 900);
	char mac[65];
	token_mac(event_id, o->expires_s, ident, o->host, o->rule, mac);
	snprintf(token, COACH_TOKEN_MAX, "%s.%llu.%s", event_id, (unsigned long long)o->expires_s, mac);
	pthread_mutex_lock(&g.lock);
	bool ok = lru_put(g.offers, event_id, strlen(event_id), o, o->expires_s * 1000);
	pthread_mutex_unlock(&g.lock);
	return ok;
}

void coach_reset(void)
{
	if (!ready())
		return;
	pthread_mutex_lock(&g.lock);
	lru_clear(g.offers);
	lru_clear(g.overrides);
	pthread_mutex_unlock(&g.lock);
}

/* ---- the reserved path ---- */

/* The value of name in an application/x-www-form-urlencoded body, decoded
 * into out (at most cap bytes; *too_long when cut). Control characters
 * become spaces: what is stored is one line of text. */
static bool form_field(const uint8_t *body, size_t len, const char *name, char *out, size_t cap, size_t *outlen,
		       bool *too_long)
{
	size_t nl = strlen(name);
	*outlen = 0;
	*too_long = false;
	for (size_t i = 0; i < len;) {
		size_t e = i;
		while (e < len && body[e] != '&')
			e++;
		if (e - i > nl && body[i + nl] == '=' && !memcmp(body + i, name, nl)) {
			size_t o = 0;
			for (size_t k = i + nl + 1; k < e; k++) {
				int c = body[k];
				if (c == '+') {
					c = ' ';
				} else if (c == '%' && k + 2 < e && hex_value(body[k + 1]) >= 0 && hex_value(body[k + 2]) >= 0) {
					c = hex_value(body[k + 1]) * 16 + hex_value(body[k + 2]);
					k += 2;
				}
				if (c < 0x20 || c == 0x7f)
					c = ' ';
				if (o + 1 >= cap) {
					*too_long = true;
					break;
				}
				out[o++] = (char)c;
			}
			out[o] = '\0';
			*outlen = o;
			return true;
		}
		i = e + 1;
	}
	if (cap)
		out[0] = '\0';
	return false;
}

static void answer(coach_answer_t *a, int status, const char *code, const char *title, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void answer(coach_answer_t *a, int status, const char *code, const char *title, const char *fmt, ...)
{
	a->status = status;
	a->code = code;
	a->title = title;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->detail, sizeof a->detail, fmt, ap);
	va_end(ap);
}

/* Masks, in place, whatever the policy's detectors find in text: the
 * justification is the user's own words, and people paste the very secret
 * they were stopped for. Returns the number of spans masked. */
static unsigned mask_secrets(const coach_request_t *q, char *text, size_t len, size_t cap)
{
	if (!len)
		return 0;
	body_view_t view;
	memset(&view, 0, sizeof view);
	static const char ct[] = "text/plain";
	if (!body_view_build(&view, ct, sizeof ct - 1, (const uint8_t *)text, len))
		return 0;
	policy_msg_t m;
	memset(&m, 0, sizeof m);
	m.head = q->head;
	m.view = &view;
	m.body_size = len;
	m.body_complete = true;
	verdict_t v;
	q->policy->ops->on_request(q->policy, q->w, q->facts, &m, &v);
	unsigned masked = 0;
	bool cut = false;
	for (uint32_t i = 0; i < m.n_spans; i++) {
		const finding_t *fd = &m.findings[m.spans[i].finding];
		if (m.spans[i].space != SPAN_BODY)
			continue; /* in the form's own head, not in the justification */
		if (m.spans[i].view) {
			cut = true; /* encoded in the words (base64...): keep none of them */
			continue;
		}
		body_view_redact(&view, (uint8_t *)text, m.spans[i].start, m.spans[i].len, fd->keep_first, fd->keep_last);
		masked++;
	}
	for (uint32_t i = 0; i < m.n_findings; i++)
		cut |= m.findings[i].incomplete || m.findings[i].timed_out;
	if (cut || v.error) {
		/* more than a scan keeps spans for, or the scan failed: keep nothing */
		snprintf(text, cap, "%s", "[withheld: the justification holds more findings than can be masked]");
		masked++;
	}
	policy_msg_clear(&m);
	body_view_free(&view);
	return masked;
}

static void emit_record(const coach_request_t *q, event_kind_t kind, const char *of, const offer_t *o,
			const char *justification, coach_answer_t *a)
{
	verdict_t v;
	memset(&v, 0, sizeof v);
	v.kind = kind == EVENT_OVERRIDE ? VERDICT_PASS : VERDICT_BLOCK;
	snprintf(v.rule, sizeof v.rule, "%s", o->rule);
	snprintf(v.reason, sizeof v.reason, "%s", o->reason);
	event_t e = {.kind = kind,
		     .stage = "request",
		     .verdict = &v,
		     .facts = q->facts,
		     .policy_version = q->policy->version_text,
		     .flow_id = q->flow_id,
		     .client_ip = q->client_ip,
		     .tls = q->tls,
		     .up_tls = q->up_tls,
		     .of = of,
		     .justification = justification,
		     .ttl_s = kind == EVENT_OVERRIDE ? o->ttl_s : 0};
	event_new_id(e.id);
	event_emit(&e);
	memcpy(a->event_id, e.id, sizeof e.id);
}

void coach_answer(const coach_request_t *q, coach_answer_t *a)
{
	memset(a, 0, sizeof *a);
	const http_head_t *h = q->head;
	const char *t = http_head_str(h, h->target_off);
	size_t tn = h->target_len;
	const char *qm = memchr(t, '?', tn);
	if (qm)
		tn = (size_t)(qm - t);
	static const char over[] = COACH_PATH_PREFIX "override", fp[] = COACH_PATH_PREFIX "false-positive";
	bool is_override = tn == sizeof over - 1 && !memcmp(t, over, tn);
	bool is_fp = tn == sizeof fp - 1 && !memcmp(t, fp, tn);
	if (!is_override && !is_fp) {
		answer(a, 404, "not-found", "Not found", "dlpgate answers %soverride and %sfalse-positive here, nothing else",
		       COACH_PATH_PREFIX, COACH_PATH_PREFIX);
		return;
	}
	if (h->method_len != 4 || memcmp(http_head_str(h, h->method_off), "POST", 4)) {
		answer(a, 405, "method-not-allowed", "Method not allowed", "send the form with POST");
		return;
	}
	if (!q->complete || q->body_len > COACH_BODY_MAX) {
		answer(a, 413, "form-too-large", "Form too large", "the form's body is over %d bytes", COACH_BODY_MAX);
		return;
	}
	char token[COACH_TOKEN_MAX], just[COACH_JUSTIFICATION_MAX + 1];
	size_t token_len, just_len;
	bool cut;
	if (!form_field(q->body, q->body_len, "token", token, sizeof token, &token_len, &cut) || cut) {
		answer(a, 400, "bad-token", "Bad request", "the form carries no valid token");
		return;
	}
	form_field(q->body, q->body_len, "justification", just, sizeof just, &just_len, &cut);
	if (cut) {
		answer(a, 400, "justification-too-long", "Justification too long",
		       "say it in at most %d characters", COACH_JUSTIFICATION_MAX);
		return;
	}
	size_t words = 0;
	for (size_t i = 0; i < just_len; i++)
		words += just[i] != ' ';
	if (is_override && words < 3) {
		answer(a, 400, "justification-required", "Justification required",
		       "say why this data must go to this site (at least a few words)");
		return;
	}
	/* EVENT_ID.EXPIRY.MAC */
	char *dot1 = memchr(token, '.', token_len);
	char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(token + token_len - dot1 - 1)) : NULL;
	if (!dot1 || !dot2 || dot1 - token != 36 || strlen(dot2 + 1) != 64) {
		answer(a, 400, "bad-token", "Bad request", "the form carries no valid token");
		return;
	}
	*dot1 = *dot2 = '\0';
	const char *event_id = token;
	char *end = NULL;
	unsigned long long expires = strtoull(dot1 + 1, &end, 10);
	if (!ready()) {
		answer(a, 503, "unavailable", "Unavailable", "out of memory");
		return;
	}
	pthread_mutex_lock(&g.lock);
	offer_t *o = lru_get(g.offers, event_id, strlen(event_id), now_s() * 1000);
	bool valid = false;
	if (o && end && !*end && expires == o->expires_s) {
		char mac[65];
		token_mac(event_id, expires, q->ident, q->host, o->rule, mac);
		valid = CRYPTO_memcmp(mac, dot2 + 1, 64) == 0;
	}
	offer_t copy;
	if (valid)
		copy = *o;
	bool fp_again = valid && is_fp && o->fp_reported;
	if (valid && is_fp)
		o->fp_reported = true;
	if (valid && is_override)
		lru_remove(g.offers, event_id, strlen(event_id)); /* single use */
	pthread_mutex_unlock(&g.lock);
	if (!valid) {
		/* Unknown, used, expired, for another app or host, or forged: one
		 * answer for all, so the answer teaches a forger nothing. */
		answer(a, 403, "token-refused", "This page has expired",
		       "the form was already used, is too old, or was not made for this program and site; send the "
		       "data again to get a new page");
		log_line_t l;
		log_begin(&l, LOG_INFO, "coach_token_refused");
		log_kv_u64(&l, "flow", q->flow_id);
		log_kv_str(&l, "event", event_id);
		log_end(&l);
		return;
	}
	if (fp_again) {
		answer(a, 409, "already-reported", "Already reported", "this event was already reported as a false positive");
		return;
	}
	unsigned masked = mask_secrets(q, just, just_len, sizeof just);
	if (is_fp) {
		emit_record(q, EVENT_FALSE_POSITIVE, event_id, &copy, just, a);
		answer(a, 200, "false-positive-reported", "Reported as a false positive",
		       "your administrator will review event %s (report %s); nothing was sent", event_id, a->event_id);
		return;
	}
	char key[COACH_IDENT_MAX + 512];
	size_t k = override_key(key, sizeof key, q->ident, q->host, copy.rule);
	char *of = malloc(37);
	bool stored = false;
	if (of) {
		memcpy(of, event_id, 36); /* the token's first field: 36 characters, checked above */
		of[36] = '\0';
		pthread_mutex_lock(&g.lock);
		stored = lru_put(g.overrides, key, k, of, (now_s() + copy.ttl_s) * 1000);
		pthread_mutex_unlock(&g.lock);
	}
	if (!stored) {
		answer(a, 503, "unavailable", "Unavailable", "out of memory recording the override");
		return;
	}
	emit_record(q, EVENT_OVERRIDE, event_id, &copy, just, a);
	unsigned ttl = copy.ttl_s;
	answer(a, 200, "override-recorded", "You may send it now",
	       "your justification was recorded (event %s%s); go back and send the data again: for %u %s this program "
	       "may send to %s what rule %s stopped",
	       a->event_id, masked ? ", with what the detectors found in it masked" : "", ttl >= 120 ? ttl / 60 : ttl,
	       ttl >= 120 ? "minutes" : "seconds", copy.host, copy.rule);
}
