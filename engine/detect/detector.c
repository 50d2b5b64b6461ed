/*
 * detector: compile, the shared set, and the scan. See detector.h.
 */
#include "detect/detector.h"

#include "core/bytebuf.h"
#include "core/log.h"
#include "detect/digitruns.h"
#include "detect/keyreach.h"
#include "detect/prefilter.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
	pcre2_code **re;
	size_t n_re;
	allow_target_t target;
	char **stop;
	size_t n_stop;
	pcre2_code **files;
	size_t n_files;
	bool all;
} allow_t;

struct detector {
	uint32_t id;
	char *name, *key, *severity, *confidence; /* confidence NULL: graded by conf */
	conf_rule_t conf;
	det_matcher_t matcher;     /* scan != NULL: finds by itself (no regex) */
	pcre2_code *re;            /* NULL: a file-name-only detector */
	uint32_t group;
	bool group_first;
	bool gate_text;            /* keywords gate the whole text (no window could be proven exact) */
	bool narrow;               /* keyreach: a match starts within the run of `between` bytes ending at its keyword */
	uint8_t between[32];
	validator_t validate;
	double min_entropy;
	char **keywords;
	size_t n_keywords;
	char **context;
	size_t n_context;
	uint32_t distance;
	uint32_t min_count;
	allow_t allow[DETECTOR_MAX_ALLOW];
	size_t n_allow;
	pcre2_code *filename;
	uint32_t before, after;    /* the window around a keyword or digit run */
	uint32_t digits;
	bool boundary;             /* keywords and context words as words only */
	bool generic;              /* gives way to specific detectors (see the spec) */
	uint8_t keep_first, keep_last;
};

struct detset {
	pthread_mutex_t lock;
	uint64_t generation;       /* tells a scratch's cached prefilters apart */
	detector_t **d;
	size_t n, cap;
};

typedef struct {
	uint32_t start, len;
} span_t;

typedef struct {
	span_t *v;
	uint32_t n;
	size_t cap;
	bool saturated;            /* too many hits: scan the whole buffer */
	bool hit;                  /* a keyword of a gate_text detector was seen */
} spans_t;

/* Context hits kept per detector per buffer; past it near_context looks
 * around each match instead. Keyword windows are merged as they arrive,
 * so they can only be this many when a text is mostly keyword islands;
 * past it the regex runs over the whole buffer, still keyword-gated. */
#define MAX_HITS 4096
#define MAX_WINDOWS 65536

/* A prefilter for one list of wanted detectors: built from their keywords
 * only, so a policy that scans with a few detectors runs a small automaton
 * that stays in L1, whatever else its packs define. A policy scans with
 * few distinct tables, so a handful per worker covers them. */
#define PF_CACHE 8

typedef struct {
	uint64_t generation;       /* of the set; 0 = empty slot */
	uint32_t *ids;
	size_t n;
	prefilter_t *pf;
	uint64_t last_use;
} pf_slot_t;

struct detect_scratch {
	pcre2_match_data *md;
	pcre2_jit_stack *jit;
	pcre2_match_context *mctx;
	spans_t *kw, *ctx;         /* per wanted detector */
	size_t n_spans;
	bool profile;
	uint64_t trigger_ns;       /* profiled time in the prefilter and the digit runs */
	digit_run_t *runs;         /* for the detectors with `digits` */
	size_t n_runs, runs_cap;   /* n_runs > runs_cap: more than were kept */
	pf_slot_t pf[PF_CACHE];
	uint64_t clock;
	conf_state_t conf;         /* the confidence word search of the detector being run */
};

/* ---- compile ---- */

static char **dup_list(const char *const *v, size_t n, bool lower)
{
	char **out = calloc(n ? n : 1, sizeof *out);
	for (size_t i = 0; out && i < n; i++) {
		out[i] = strdup(v[i]);
		if (!out[i])
			return NULL; /* leaks on OOM only: the caller fails the load */
		if (lower)
			for (char *p = out[i]; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p + 32);
	}
	return out;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static pcre2_code *compile_re(const char *src, uint32_t options, const char *what, char *err, size_t n)
{
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, options, &code, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof msg);
		snprintf(err, n, "%s does not compile at offset %zu: %s", what, (size_t)off, (const char *)msg);
		return NULL;
	}
	/* JIT where the CPU and the process allow; the interpreter otherwise
	 * (same results, several times slower, so said once: a service
	 * sandbox with MemoryDenyWriteExecute is the usual cause). */
	int jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	static atomic_bool warned;
	if (jit != 0 && jit != PCRE2_ERROR_JIT_BADOPTION && !atomic_exchange(&warned, true)) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(jit, msg, sizeof msg);
		log_msg(LOG_WARN, "regex_jit_unavailable",
			"PCRE2 cannot JIT-compile detectors (%s): they run interpreted, several times slower; "
			"allow writable-executable memory (systemd: no MemoryDenyWriteExecute)",
			(const char *)msg);
	}
	return re;
}

static void key_add(bytebuf_t *b, const char *tag, const char *s)
{
	bytebuf_appendf(b, "%s%zu:%s;", tag, s ? strlen(s) : 0, s ? s : "");
}

static void key_list(bytebuf_t *b, const char *tag, const char *const *v, size_t n)
{
	bytebuf_appendf(b, "%s[%zu]", tag, n);
	for (size_t i = 0; i < n; i++)
		key_add(b, "", v[i]);
}

/* Length-prefixed fields: two specs have the same key only if every
 * field that changes a result is the same. */
static char *make_key(const detector_spec_t *s)
{
	bytebuf_t b;
	bytebuf_init(&b, 0);
	key_add(&b, "re", s->regex);
	key_list(&b, "kw", s->keywords, s->n_keywords);
	key_list(&b, "cx", s->context_words, s->n_context);
	for (size_t i = 0; i < s->n_allow; i++) {
		const allow_spec_t *a = &s->allow[i];
		key_list(&b, "al", a->regexes, a->n_regexes);
		key_list(&b, "sw", a->stopwords, a->n_stopwords);
		key_list(&b, "af", a->filenames, a->n_filenames);
		bytebuf_appendf(&b, "t%d a%d;", (int)a->target, (int)a->all);
	}
	key_add(&b, "fn", s->filename);
	bytebuf_appendf(&b, "g%u%s v%d e%.6f d%u m%u w%d:%u/%u%s n%u k%u/%u b%d;", s->group, s->group_first ? "f" : "",
			(int)s->validate, s->min_entropy, s->context_distance, s->min_count, (int)s->window_set,
			s->window_before, s->window_after, s->gate_text ? "t" : "", s->digits, s->keep_first, s->keep_last,
			(int)s->boundary);
	if (s->generic)
		bytebuf_appendf(&b, "generic;");
	key_add(&b, "sev", s->severity);
	key_add(&b, "conf", s->confidence);
	if (!s->confidence) {
		char ck[256];
		conf_rule_key(&s->conf, ck, sizeof ck);
		key_add(&b, "cr", ck);
		key_list(&b, "cw", s->conf.words, s->conf.n_words);
	}
	key_add(&b, "name", s->name);
	if (s->matcher)
		key_add(&b, "matcher", s->matcher->key);
	bytebuf_cstr(&b);
	return b.data;
}

static void detector_free(detector_t *d)
{
	if (!d)
		return;
	free(d->name);
	free(d->key);
	free(d->severity);
	free(d->confidence);
	conf_rule_free(&d->conf);
	if (d->matcher.release)
		d->matcher.release(d->matcher.ctx);
	pcre2_code_free(d->re);
	pcre2_code_free(d->filename);
	for (size_t g = 0; g < d->n_allow; g++) {
		allow_t *a = &d->allow[g];
		for (size_t i = 0; i < a->n_re; i++)
			pcre2_code_free(a->re[i]);
		for (size_t i = 0; i < a->n_files; i++)
			pcre2_code_free(a->files[i]);
		free(a->re);
		free(a->files);
		free_list(a->stop, a->n_stop);
	}
	free_list(d->keywords, d->n_keywords);
	free_list(d->context, d->n_context);
	free(d);
}

/* A spec refused before a detector exists: its matcher is released all
 * the same (detector_compile owns it whatever the outcome). */
static detector_t *refuse(const detector_spec_t *s)
{
	if (s->matcher && s->matcher->release)
		s->matcher->release(s->matcher->ctx);
	return NULL;
}

detector_t *detector_compile(const detector_spec_t *s, char *err, size_t n)
{
	if (s->matcher && (s->regex || s->filename || s->n_keywords || s->digits || s->n_allow || s->n_context)) {
		snprintf(err, n, "a matcher detector takes no regex, filename, keywords, digits, context or allowlists");
		return refuse(s);
	}
	if (!s->regex && !s->filename && !s->matcher) {
		snprintf(err, n, "a detector needs a regex (or a filename pattern)");
		return refuse(s);
	}
	if (s->n_allow > DETECTOR_MAX_ALLOW) {
		snprintf(err, n, "more than %d allowlists", DETECTOR_MAX_ALLOW);
		return refuse(s);
	}
	for (size_t i = 0; i < s->n_keywords; i++)
		if (!s->keywords[i][0] || strlen(s->keywords[i]) > 255) {
			snprintf(err, n, "keyword %zu is empty or longer than 255 bytes", i + 1);
			return NULL;
		}
	if (s->digits && s->n_keywords) {
		snprintf(err, n, "digits and keywords do not combine: the regex runs around one or the other");
		return refuse(s);
	}
	detector_t *d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, n, "out of memory");
		return refuse(s);
	}
	if (s->matcher)
		d->matcher = *s->matcher; /* owned from here, even when compiling fails */
	d->name = strdup(s->name ? s->name : "detector");
	d->severity = strdup(s->severity ? s->severity : "medium");
	if (s->confidence && confidence_by_name(s->confidence) < 0) {
		snprintf(err, n, "confidence must be low, medium or high");
		detector_free(d);
		return NULL;
	}
	d->confidence = s->confidence ? strdup(s->confidence) : NULL;
	d->key = make_key(s);
	d->group = s->group;
	d->group_first = s->group_first;
	d->validate = s->validate;
	d->min_entropy = s->min_entropy;
	d->distance = s->context_distance ? s->context_distance : 100;
	d->min_count = s->min_count ? s->min_count : 1;
	d->before = s->window_set ? s->window_before : 256;
	d->after = s->window_set ? s->window_after : 256;
	d->digits = s->digits;
	d->boundary = s->boundary;
	d->generic = s->generic;
	d->keep_first = s->keep_first;
	d->keep_last = s->keep_last;
	d->keywords = dup_list(s->keywords, s->n_keywords, false);
	d->n_keywords = s->n_keywords;
	d->context = dup_list(s->context_words, s->n_context, true);
	d->n_context = s->n_context;
	if (!d->name || !d->severity || (s->confidence && !d->confidence) || !d->key || !d->keywords || !d->context)
		goto oom;
	if (!s->confidence &&
	    !conf_rule_compile(&d->conf, &s->conf, s->n_context ? s->context_words : s->keywords,
			       s->n_context ? s->n_context : s->n_keywords, s->boundary, err, n))
		goto fail;
	if (s->regex) {
		d->re = compile_re(s->regex, PCRE2_USE_OFFSET_LIMIT, "regex", err, n);
		if (!d->re)
			goto fail;
		uint32_t groups = 0;
		pcre2_pattern_info(d->re, PCRE2_INFO_CAPTURECOUNT, &groups);
		if (d->group > groups) {
			snprintf(err, n, "group = %u but the regex has %u capture group%s", d->group, groups,
				 groups == 1 ? "" : "s");
			goto fail;
		}
		if (d->group >= DET_MAX_GROUPS) {
			snprintf(err, n, "group = %u: a secret must be in one of the first %d groups", d->group,
				 DET_MAX_GROUPS - 1);
			goto fail;
		}
		/* Keywords that gate the whole text still keep the regex to windows
		 * when every match provably holds a keyword at most `reach` bytes
		 * past its start: a window from there to the keyword finds exactly
		 * what the whole text would. Not with boundary: a keyword inside the
		 * match need not stand as a word, and the one that opens the gate
		 * may be far from it. */
		if (s->gate_text && s->n_keywords) {
			int reach = s->boundary ? -1 : keyreach_bound(s->regex, s->keywords, s->n_keywords, d->between);
			if (reach >= 0) {
				d->before = (uint32_t)reach;
				d->after = 0;
				d->narrow = true;
			} else {
				d->gate_text = true;
			}
		}
	}
	for (size_t g = 0; g < s->n_allow; g++) {
		const allow_spec_t *as = &s->allow[g];
		allow_t *a = &d->allow[d->n_allow++];
		a->target = as->target;
		a->all = as->all;
		a->stop = dup_list(as->stopwords, as->n_stopwords, true);
		a->n_stop = as->n_stopwords;
		a->re = calloc(as->n_regexes ? as->n_regexes : 1, sizeof *a->re);
		a->files = calloc(as->n_filenames ? as->n_filenames : 1, sizeof *a->files);
		if (!a->stop || !a->re || !a->files)
			goto oom;
		for (size_t i = 0; i < as->n_regexes; i++) {
			char what[64];
			snprintf(what, sizeof what, "allow regex %zu", i + 1);
			a->re[i] = compile_re(as->regexes[i], 0, what, err, n);
			if (!a->re[i])
				goto fail;
			a->n_re++;
		}
		for (size_t i = 0; i < as->n_filenames; i++) {
			char what[64];
			snprintf(what, sizeof what, "allow filename %zu", i + 1);
			a->files[i] = compile_re(as->filenames[i], 0, what, err, n);
			if (!a->files[i])
				goto fail;
			a->n_files++;
		}
	}
	if (s->filename) {
		d->filename = compile_re(s->filename, 0, "filename pattern", err, n);
		if (!d->filename)
			goto fail;
	}
	return d;
oom:
	snprintf(err, n, "out of memory");
fail:
	detector_free(d);
	return NULL;
}


const char *detector_name(const detector_t *d) { return d->name; }
const char *detector_severity(const detector_t *d) { return d->severity; }
const char *detector_confidence(const detector_t *d) { return d->confidence; }
bool detector_has_keywords(const detector_t *d) { return d->n_keywords > 0; }
bool detector_is_anchored(const detector_t *d) { return d->n_keywords > 0 || d->digits > 0 || d->matcher.scan; }
bool detector_gates_text(const detector_t *d) { return d->gate_text; }
uint32_t detector_id(const detector_t *d) { return d->id; }
uint32_t detector_min_count(const detector_t *d) { return d->min_count; }
uint8_t detector_keep_first(const detector_t *d) { return d->keep_first; }
uint8_t detector_keep_last(const detector_t *d) { return d->keep_last; }
const char *detector_key(const detector_t *d) { return d->key; }
bool detector_has_regex(const detector_t *d) { return d->re != NULL; }
bool detector_filename_only(const detector_t *d) { return !d->re && d->filename; }

/* ---- the set ---- */

detset_t *detset_new(void)
{
	static _Atomic uint64_t generations;
	detset_t *set = calloc(1, sizeof *set);
	if (set) {
		pthread_mutex_init(&set->lock, NULL);
		set->generation = ++generations;
	}
	return set;
}

void detset_free(detset_t *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		detector_free(set->d[i]);
	free(set->d);
	pthread_mutex_destroy(&set->lock);
	free(set);
}

detector_t *detset_add(detset_t *set, detector_t *d)
{
	pthread_mutex_lock(&set->lock);
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->d[i]->key, d->key)) {
			detector_t *same = set->d[i];
			pthread_mutex_unlock(&set->lock);
			detector_free(d);
			return same;
		}
	if (!bytebuf_grow_array(&set->d, sizeof *set->d, set->n, &set->cap, 32)) {
		pthread_mutex_unlock(&set->lock);
		detector_free(d);
		return NULL;
	}
	d->id = (uint32_t)set->n;
	set->d[set->n++] = d;
	pthread_mutex_unlock(&set->lock);
	return d;
}

size_t detset_count(const detset_t *set)
{
	return set->n;
}

const detector_t *detset_get(const detset_t *set, uint32_t id)
{
	return id < set->n ? set->d[id] : NULL;
}

/* ---- scratch ---- */

detect_scratch_t *detect_scratch_new(uint32_t match_limit)
{
	detect_scratch_t *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->md = pcre2_match_data_create(DET_MAX_GROUPS, NULL);
	s->jit = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);
	s->mctx = pcre2_match_context_create(NULL);
	if (!s->md || !s->jit || !s->mctx) {
		detect_scratch_free(s);
		return NULL;
	}
	pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
	pcre2_set_match_limit(s->mctx, match_limit ? match_limit : 1000000);
	pcre2_set_depth_limit(s->mctx, 100000);
	return s;
}

void detect_scratch_free(detect_scratch_t *s)
{
	if (!s)
		return;
	pcre2_match_data_free(s->md);
	pcre2_jit_stack_free(s->jit);
	pcre2_match_context_free(s->mctx);
	for (int i = 0; i < PF_CACHE; i++) {
		free(s->pf[i].ids);
		prefilter_free(s->pf[i].pf);
	}
	for (size_t i = 0; i < s->n_spans; i++) {
		free(s->kw[i].v);
		free(s->ctx[i].v);
	}
	free(s->kw);
	free(s->ctx);
	free(s->runs);
	free(s);
}

void detect_scratch_profile(detect_scratch_t *s, bool on) { s->profile = on; }
uint64_t detect_scratch_trigger_ns(const detect_scratch_t *s) { return s->trigger_ns; }

static uint64_t now_ns(const detect_scratch_t *s)
{
	if (!s->profile)
		return 0;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static bool scratch_fit(detect_scratch_t *s, size_t n_want)
{
	if (s->n_spans < n_want) {
		spans_t *kw = realloc(s->kw, n_want * sizeof *kw);
		if (!kw)
			return false;
		s->kw = kw;
		spans_t *cx = realloc(s->ctx, n_want * sizeof *cx);
		if (!cx)
			return false;
		s->ctx = cx;
		memset(s->kw + s->n_spans, 0, (n_want - s->n_spans) * sizeof *kw);
		memset(s->ctx + s->n_spans, 0, (n_want - s->n_spans) * sizeof *cx);
		s->n_spans = n_want;
	}
	return true;
}

static void spans_push(spans_t *v, uint32_t start, uint32_t len, uint32_t max)
{
	if (v->saturated)
		return;
	if (v->n == max) {
		v->saturated = true;
		return;
	}
	if (!bytebuf_grow_array(&v->v, sizeof *v->v, v->n, &v->cap, 16)) {
		v->saturated = true;
		return;
	}
	v->v[v->n++] = (span_t){start, len};
}

static int span_cmp(const void *a, const void *b)
{
	const span_t *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* ---- matching ---- */

static inline char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

enum { CH_OTHER, CH_LOWER, CH_UPPER, CH_DIGIT };

static int char_class(uint8_t c)
{
	if (c >= 'a' && c <= 'z')
		return CH_LOWER;
	if ((c >= 'A' && c <= 'Z') || c >= 0x80)
		return CH_UPPER;
	return c >= '0' && c <= '9' ? CH_DIGIT : CH_OTHER;
}

/* Is there a word break between buf[i - 1] and buf[i]? */
static bool word_break(const uint8_t *buf, size_t len, size_t i)
{
	if (i == 0 || i >= len)
		return true;
	int a = char_class(buf[i - 1]), b = char_class(buf[i]);
	if (a == CH_OTHER || b == CH_OTHER)
		return true;
	if ((a == CH_DIGIT) != (b == CH_DIGIT))
		return true;
	return a == CH_LOWER && b == CH_UPPER;
}

bool detect_word_at(const uint8_t *buf, size_t len, size_t start, size_t n)
{
	if (n == 0 || start + n > len)
		return false;
	bool head = char_class(buf[start]) != CH_OTHER, tail = char_class(buf[start + n - 1]) != CH_OTHER;
	return (!head || word_break(buf, len, start)) && (!tail || word_break(buf, len, start + n));
}

static bool key_byte(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       c == '.';
}

/* Is buf[start, start+n) inside a JSON object key ("phonenumber": ...,
 * "taxpayerid": ...)? A key labels the value after it, so a word in it
 * counts wherever it stands in the key: keys run words together. */
static bool in_json_key(const uint8_t *buf, size_t len, size_t start, size_t n)
{
	size_t a = start, b = start + n;
	while (a > 0 && start - a < 48 && key_byte(buf[a - 1]))
		a--;
	if (a == 0 || buf[a - 1] != '"')
		return false;
	while (b < len && b - start < 48 && key_byte(buf[b]))
		b++;
	if (b >= len || buf[b] != '"')
		return false;
	for (b++; b < len && (buf[b] == ' ' || buf[b] == '\t'); b++)
		;
	return b < len && buf[b] == ':';
}

/* A keyword or context word of a detector with boundary counts here. */
static bool stands_at(const uint8_t *buf, size_t len, size_t start, size_t n)
{
	return detect_word_at(buf, len, start, n) || in_json_key(buf, len, start, n);
}

/* Does needle occur, case-insensitively, in buf[from, to)? With words, only
 * where it stands as a word in the whole buffer. */
static bool ci_contains_in(const uint8_t *buf, size_t len, size_t from, size_t to, const char *needle, bool words)
{
	size_t m = strlen(needle);
	if (m == 0 || to > len || from > to || m > to - from)
		return false;
	char first = lower(needle[0]);
	for (size_t i = from; i + m <= to; i++) {
		if (lower((char)buf[i]) != first)
			continue;
		size_t k = 1;
		while (k < m && lower((char)buf[i + k]) == lower(needle[k]))
			k++;
		if (k == m && (!words || stands_at(buf, len, i, m)))
			return true;
	}
	return false;
}

static bool ci_contains(const char *hay, size_t n, const char *needle)
{
	return ci_contains_in((const uint8_t *)hay, n, 0, n, needle, false);
}

/* Without windows a trigger still gates a detector: was a keyword or a
 * digit run close enough to a match starting at ms for the windowed scan
 * to have run the regex there? Keeps `--no-prefilter` (and detectors
 * added after the set was built) finding exactly what the windowed scan
 * finds. */
static bool keyword_near(const detector_t *d, const uint8_t *buf, size_t len, size_t ms)
{
	for (size_t k = 0; k < d->n_keywords; k++) {
		size_t m = strlen(d->keywords[k]);
		/* the window [ks - before, ks + m + after] holds ms */
		size_t a = ms > (size_t)d->after + m ? ms - d->after - m : 0;
		size_t b = ms + d->before + m < len ? ms + d->before + m : len;
		if (ci_contains_in(buf, len, a, b, d->keywords[k], d->boundary))
			return true;
	}
	return false;
}

/* Does the text hold any of d's keywords? (gate_text without a prefilter) */
static bool keyword_in(const detector_t *d, const uint8_t *buf, size_t len)
{
	for (size_t k = 0; k < d->n_keywords; k++)
		if (ci_contains_in(buf, len, 0, len, d->keywords[k], d->boundary))
			return true;
	return false;
}

static bool digits_near(const detector_t *d, const detect_scratch_t *s, size_t ms)
{
	if (s->n_runs > s->runs_cap)
		return true; /* too many runs to have kept: the windowed scan ran everywhere too */
	size_t lo = 0, hi = s->n_runs; /* the first run starting past ms + before */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->runs[mid].start <= ms + d->before)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = lo; k-- > 0 && s->runs[k].end >= ms;)
		if (s->runs[k].digits >= d->digits)
			return true;
	return false;
}

static bool trigger_near(const detector_t *d, const detect_scratch_t *s, const uint8_t *buf, size_t len, size_t ms)
{
	return d->digits ? digits_near(d, s, ms) : keyword_near(d, buf, len, ms);
}

/* Is a context word of d within its distance of the match? From the
 * sorted prefilter hits, or, without them (no prefilter, or too many to
 * keep: a body stuffed with the word to push real hits out), by looking
 * around the match itself. */
static bool near_context(const detector_t *d, const spans_t *ctx, const uint8_t *buf, size_t len, uint32_t ms,
			 uint32_t me)
{
	uint32_t dist = d->distance;
	uint32_t lo = ms > dist ? ms - dist : 0;
	uint64_t hi = (uint64_t)me + dist;
	if (ctx->saturated) {
		for (size_t w = 0; w < d->n_context; w++) {
			size_t m = strlen(d->context[w]);
			size_t a = lo > m ? lo - m : 0, b = hi + m < len ? (size_t)hi + m : len;
			if (ci_contains_in(buf, len, a, b, d->context[w], d->boundary))
				return true;
		}
		return false;
	}
	/* spans are sorted by start: find the first ending after lo */
	for (uint32_t i = 0; i < ctx->n; i++) {
		const span_t *c = &ctx->v[i];
		if (c->start > hi)
			break;
		if ((uint64_t)c->start + c->len >= lo)
			return true;
	}
	return false;
}

static int match_one(const pcre2_code *re, const uint8_t *s, size_t n, detect_scratch_t *sc)
{
	pcre2_set_offset_limit(sc->mctx, PCRE2_UNSET);
	return pcre2_match(re, s, n, 0, 0, sc->md, sc->mctx);
}

/* Does allowlist a drop this finding? */
static bool group_allows(const allow_t *a, const uint8_t *buf, size_t len, uint32_t ms, uint32_t me, uint32_t ss,
			 uint32_t se, const char *filename, detect_scratch_t *sc)
{
	bool by_regex = false, by_stop = false, by_file = false;
	if (a->n_re) {
		const uint8_t *t = buf + ss;
		size_t tn = se - ss;
		if (a->target == ALLOW_MATCH) {
			t = buf + ms;
			tn = me - ms;
		} else if (a->target == ALLOW_LINE) {
			uint32_t x = ms, y = me;
			while (x > 0 && buf[x - 1] != '\n')
				x--;
			while (y < len && buf[y] != '\n')
				y++;
			t = buf + x;
			tn = y - x;
		}
		for (size_t i = 0; i < a->n_re && !by_regex; i++)
			by_regex = match_one(a->re[i], t, tn, sc) >= 0;
	}
	for (size_t i = 0; i < a->n_stop && !by_stop; i++)
		by_stop = ci_contains((const char *)buf + ss, se - ss, a->stop[i]);
	for (size_t i = 0; filename && i < a->n_files && !by_file; i++)
		by_file = match_one(a->files[i], (const uint8_t *)filename, strlen(filename), sc) >= 0;
	if (a->all)
		return (!a->n_re || by_regex) && (!a->n_stop || by_stop) && (!a->n_files || by_file) &&
		       (a->n_re || a->n_stop || a->n_files);
	return by_regex || by_stop || by_file;
}

static bool allowed(const detector_t *d, const uint8_t *buf, size_t len, uint32_t ms, uint32_t me, uint32_t ss,
		    uint32_t se, const char *filename, detect_scratch_t *sc)
{
	for (size_t g = 0; g < d->n_allow; g++)
		if (group_allows(&d->allow[g], buf, len, ms, me, ss, se, filename, sc))
			return true;
	return false;
}

/* Runs d's regex for matches starting in [from, to]. The subject is the
 * whole buffer, so look-behind, look-ahead, \b and $ see the real text
 * and a match may run past the window; PCRE2's offset limit is what stops
 * the search for a start at the window's end. */
static bool run_range(const detector_t *d, detect_scratch_t *sc, const uint8_t *buf, size_t len, size_t from,
		      size_t to, const char *filename, const spans_t *ctx, bool gate, det_result_t *r,
		      size_t *last_end, size_t *execs)
{
	/* A window that reaches back into the last match resumes where that
	 * match ended, as the scan of every byte would: starting earlier could
	 * find a match overlapping it and skip past one that scan finds. */
	size_t off = from > *last_end ? from : *last_end;
	while (off <= to && off <= len) {
		pcre2_set_offset_limit(sc->mctx, to);
		int rc = pcre2_match(d->re, buf, len, off, 0, sc->md, sc->mctx);
		(*execs)++;
		if (rc == PCRE2_ERROR_NOMATCH)
			return true;
		if (rc < 0) {
			if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
			    rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_HEAPLIMIT)
				r->timed_out = true;
			return false;
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
		uint32_t ms = (uint32_t)ov[0], me = (uint32_t)ov[1];
		off = me > ms ? me : (size_t)me + 1;
		if (me == ms)
			continue;
		*last_end = me;
		/* Newlines at the ends of a match are not what it found: a pattern
		 * ending in \s must not make the secret, the line its allowlists
		 * read or the redaction reach into the next line (gitleaks trims
		 * them the same way). */
		while (ms < me && buf[ms] == '\n')
			ms++;
		while (me > ms && buf[me - 1] == '\n')
			me--;
		if (me == ms)
			continue;
		uint32_t ss = ms, se = me;
		if (d->group && (uint32_t)rc > d->group && ov[2 * d->group] != PCRE2_UNSET) {
			ss = (uint32_t)ov[2 * d->group];
			se = (uint32_t)ov[2 * d->group + 1];
		} else if (d->group_first) {
			for (uint32_t g = 1; g < (uint32_t)rc; g++)
				if (ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g]) {
					ss = (uint32_t)ov[2 * g];
					se = (uint32_t)ov[2 * g + 1];
					break;
				}
		}
		if (se == ss || (gate && !trigger_near(d, sc, buf, len, ms)))
			continue;
		const char *secret = (const char *)buf + ss;
		if (d->validate && !validate_run(d->validate, secret, se - ss))
			continue;
		/* strictly more than the threshold, as gitleaks reads `entropy` */
		if (d->min_entropy > 0 && validate_entropy(secret, se - ss) <= d->min_entropy)
			continue;
		if (d->n_context && !near_context(d, ctx, buf, len, ms, me))
			continue;
		if (allowed(d, buf, len, ms, me, ss, se, filename, sc))
			continue;
		/* evidence now, the level when the count is known (grade_findings) */
		bool context = !d->confidence && conf_context(&d->conf, &sc->conf, buf, len, ms, me);
		r->count++;
		r->at_level[CONF_HIGH] += context; /* for now: how many have context */
		if (r->n_matches < DET_MAX_MATCHES)
			r->matches[r->n_matches++] = (det_match_t){ss, se - ss, ms, me - ms, context};
	}
	return true;
}

typedef struct {
	detect_scratch_t *s;
	const detector_t *const *want;
	const uint8_t *buf;
	size_t len;
} hit_ctx_t;

/* A window [a, end + after) where a match may start. Hits and runs come in
 * text order, so a window that touches the last one extends it. */
static void window_add_from(spans_t *w, uint32_t a, uint32_t end, uint32_t after, size_t len)
{
	uint64_t b = (uint64_t)end + after;
	uint32_t e = b < len ? (uint32_t)b : (uint32_t)len;
	span_t *last = w->n ? &w->v[w->n - 1] : NULL;
	if (last && a <= last->start + last->len) {
		if (a < last->start) {
			last->len += last->start - a;
			last->start = a;
		}
		if (e > last->start + last->len)
			last->len = e - last->start;
		return;
	}
	spans_push(w, a, e - a, MAX_WINDOWS);
}

/* A keyword hit or a digit run [start, end) opens the window where d's
 * matches may start: from d->before bytes before it to `after` bytes past
 * it. */
static void window_add(spans_t *w, const detector_t *d, uint32_t start, uint32_t end, uint32_t after, size_t len)
{
	window_add_from(w, start > d->before ? start - d->before : 0, end, after, len);
}

/* A keyword hit of a detector keyreach bounded: its matches start no
 * earlier than the run of `between` bytes that ends at the keyword (the
 * text a match holds before its keyword is made of them), so the window
 * opens there when that is closer than `before` bytes back. */
static uint32_t narrowed_start(const detector_t *d, const uint8_t *buf, uint32_t start)
{
	uint32_t floor = start > d->before ? start - d->before : 0, a = start;
	while (a > floor) {
		uint8_t c = (uint8_t)lower((char)buf[a - 1]);
		if (!((d->between[c >> 3] >> (c & 7)) & 1))
			break;
		a--;
	}
	return a;
}

static bool on_hit(void *p, const pf_hit_t *h)
{
	hit_ctx_t *c = p;
	uint32_t slot = h->tag >> 1; /* index in the want list */
	if (c->want[slot]->boundary && !stands_at(c->buf, c->len, h->start, h->len))
		return true;
	if (h->tag & 1)
		spans_push(&c->s->ctx[slot], h->start, h->len, MAX_HITS);
	else if (c->want[slot]->gate_text)
		c->s->kw[slot].hit = true;
	else if (c->want[slot]->narrow)
		window_add_from(&c->s->kw[slot], narrowed_start(c->want[slot], c->buf, h->start), h->start + h->len,
				c->want[slot]->after, c->len);
	else
		window_add(&c->s->kw[slot], c->want[slot], h->start, h->start + h->len, c->want[slot]->after, c->len);
	return true;
}

/* The prefilter for this want list, from the cache or built now; NULL
 * when none of the detectors has a keyword or a context word (or memory
 * ran out: the caller then scans without one, finding the same). */
static const prefilter_t *prefilter_for(detset_t *set, detect_scratch_t *s, const detector_t *const *want,
					size_t n_want)
{
	pf_slot_t *victim = &s->pf[0];
	for (int i = 0; i < PF_CACHE; i++) {
		pf_slot_t *e = &s->pf[i];
		if (e->generation == set->generation && e->n == n_want) {
			size_t k = 0;
			while (k < n_want && e->ids[k] == want[k]->id)
				k++;
			if (k == n_want) {
				e->last_use = ++s->clock;
				return e->pf;
			}
		}
		if (e->last_use < victim->last_use)
			victim = e;
	}
	uint32_t *ids = malloc(n_want * sizeof *ids);
	prefilter_t *pf = prefilter_new();
	bool ok = ids && pf, any = false;
	for (size_t i = 0; ok && i < n_want; i++) {
		const detector_t *d = want[i];
		ids[i] = d->id;
		for (size_t k = 0; ok && k < d->n_keywords; k++, any = true)
			ok = prefilter_add(pf, d->keywords[k], strlen(d->keywords[k]), (uint32_t)i << 1);
		for (size_t k = 0; ok && k < d->n_context; k++, any = true)
			ok = prefilter_add(pf, d->context[k], strlen(d->context[k]), (uint32_t)i << 1 | 1);
	}
	if (!ok || !prefilter_build(pf) || !any) {
		prefilter_free(pf);
		pf = NULL;
	}
	if (!ids)
		return NULL; /* out of memory (pf is NULL too): scan without */
	free(victim->ids);
	prefilter_free(victim->pf);
	*victim = (pf_slot_t){set->generation, ids, n_want, pf, ++s->clock};
	return pf;
}

/* The digit runs long enough for the shortest `digits` among the wanted
 * detectors, into s->runs; a count past s->runs_cap means there are more
 * than MAX_WINDOWS (or no memory for them): scan those detectors whole. */
static size_t find_digit_runs(detect_scratch_t *s, const detector_t *const *want, size_t n_want, const uint8_t *buf,
			      size_t len)
{
	uint32_t min = 0;
	for (size_t i = 0; i < n_want; i++) {
		uint32_t d = want[i]->re ? want[i]->digits : want[i]->matcher.digits;
		if (d && (!min || d < min))
			min = d;
	}
	if (!min)
		return 0;
	for (;;) {
		size_t n = digit_runs_find(buf, len, min, s->runs, s->runs_cap);
		if (n <= s->runs_cap || s->runs_cap >= MAX_WINDOWS)
			return n;
		size_t cap = s->runs_cap ? s->runs_cap * 4 : 256;
		digit_run_t *v = realloc(s->runs, (cap < MAX_WINDOWS ? cap : MAX_WINDOWS) * sizeof *v);
		if (!v)
			return n;
		s->runs = v;
		s->runs_cap = cap < MAX_WINDOWS ? cap : MAX_WINDOWS;
	}
}

/* One detector of a scan: in its windows when it has a trigger (keyword
 * windows were filled by the prefilter; digit-run windows are made
 * here), else, or when there were too many, over the whole buffer. */
static void scan_detector(detect_scratch_t *s, size_t i, const detector_t *d, bool windowed, const uint8_t *buf,
			  size_t len, const char *filename, det_result_t *r, size_t *execs)
{
	spans_t *windows = &s->kw[i];
	size_t last_end = 0;
	conf_state_init(&s->conf);
	if (d->gate_text) {
		/* the prefilter saw a keyword, or (without one) a look at the text does */
		if (windowed ? windows->hit : keyword_in(d, buf, len))
			run_range(d, s, buf, len, 0, len, filename, &s->ctx[i], false, r, &last_end, execs);
		return;
	}
	if (windowed && d->digits) {
		if (s->n_runs > s->runs_cap)
			windows->saturated = true;
		for (size_t k = 0; k < s->n_runs && !windows->saturated; k++)
			if (s->runs[k].digits >= d->digits)
				window_add(windows, d, s->runs[k].start, s->runs[k].end, 0, len);
	}
	if (!windowed || windows->saturated) {
		/* the gate keeps the windows' semantics */
		run_range(d, s, buf, len, 0, len, filename, &s->ctx[i], detector_is_anchored(d), r, &last_end, execs);
		return;
	}
	for (uint32_t k = 0; k < windows->n; k++)
		if (!run_range(d, s, buf, len, windows->v[k].start, (size_t)windows->v[k].start + windows->v[k].len,
			       filename, &s->ctx[i], false, r, &last_end, execs))
			return;
}

/* Each finding's confidence, now that the count is known: run_range left
 * the findings with context in at_level[CONF_HIGH] and a context flag in
 * each stored match. */
static void grade_findings(const detector_t *d, det_result_t *r)
{
	uint32_t with_context = r->at_level[CONF_HIGH];
	memset(r->at_level, 0, sizeof r->at_level);
	if (d->confidence) {
		confidence_t c = (confidence_t)confidence_by_name(d->confidence);
		r->at_level[c] = r->count;
		for (uint32_t k = 0; k < r->n_matches; k++)
			r->matches[k].confidence = (uint8_t)c;
		return;
	}
	bool validated = d->validate != VALIDATE_NONE || d->matcher.scan; /* an exact match is proof */
	r->at_level[conf_level(&d->conf, validated, true, r->count)] += with_context;
	r->at_level[conf_level(&d->conf, validated, false, r->count)] += r->count - with_context;
	for (uint32_t k = 0; k < r->n_matches; k++)
		r->matches[k].confidence = (uint8_t)conf_level(&d->conf, validated, r->matches[k].confidence, r->count);
}

void det_result_keep_min(det_result_t *r, confidence_t min)
{
	uint32_t kept = 0, count = 0;
	for (int c = CONF_LOW; c < CONF_LEVELS; c++)
		if (c < (int)min)
			r->at_level[c] = 0;
		else
			count += r->at_level[c];
	r->count = count;
	for (uint32_t k = 0; k < r->n_matches; k++)
		if (r->matches[k].confidence >= min)
			r->matches[kept++] = r->matches[k];
	r->n_matches = kept;
}

confidence_t det_result_top(const det_result_t *r)
{
	for (int c = CONF_HIGH; c > CONF_LOW; c--)
		if (r->at_level[c])
			return (confidence_t)c;
	return CONF_LOW;
}

/* Where the line holding offset at starts. (memrchr would do, but it is
 * glibc's alone: the engine builds for macOS too.) */
static uint32_t line_start(const uint8_t *buf, uint32_t at)
{
	while (at > 0 && buf[at - 1] != '\n')
		at--;
	return at;
}

/* Does a specific detector's finding on the line starting at line hold
 * the secret buf[start, start + n)? */
static bool specific_holds(const uint8_t *buf, const det_result_t *results, size_t n_want, uint32_t line,
			   uint32_t start, uint32_t n)
{
	for (size_t j = 0; j < n_want; j++) {
		const det_result_t *o = &results[j];
		if (!o->d->re || o->d->generic || o->count < o->d->min_count)
			continue;
		for (uint32_t k = 0; k < o->n_matches; k++) {
			const det_match_t *p = &o->matches[k];
			if (p->len >= n && line_start(buf, p->mstart) == line &&
			    memmem(buf + p->start, p->len, buf + start, n))
				return true;
		}
	}
	return false;
}

/* Generic detectors give way: their findings that a specific detector
 * also found (its secret holds theirs, on the same line) are dropped. */
static void generic_give_way(const uint8_t *buf, const detector_t *const *want, size_t n_want, det_result_t *results)
{
	for (size_t i = 0; i < n_want; i++) {
		det_result_t *r = &results[i];
		if (!want[i]->generic || !r->n_matches)
			continue;
		uint32_t kept = 0;
		for (uint32_t k = 0; k < r->n_matches; k++) {
			const det_match_t *m = &r->matches[k];
			if (specific_holds(buf, results, n_want, line_start(buf, m->mstart), m->start, m->len)) {
				r->count--;
				if (r->at_level[m->confidence])
					r->at_level[m->confidence]--;
			}
			else
				r->matches[kept++] = *m;
		}
		r->n_matches = kept;
	}
}

static size_t scan(detset_t *set, detect_scratch_t *s, const uint8_t *buf, size_t len, const char *filename,
		   const detector_t *const *want, size_t n_want, det_result_t *results, bool use_prefilter)
{
	size_t execs = 0;
	if (!scratch_fit(s, n_want))
		return 0;
	for (size_t i = 0; i < n_want; i++) {
		results[i].d = want[i];
		results[i].count = 0;
		results[i].timed_out = false;
		results[i].n_matches = 0;
		results[i].ns = 0;
		memset(results[i].at_level, 0, sizeof results[i].at_level);
		s->kw[i].n = s->ctx[i].n = 0;
		s->kw[i].saturated = s->ctx[i].saturated = s->kw[i].hit = false;
	}
	uint64_t t = now_ns(s);
	const prefilter_t *pf = use_prefilter && n_want ? prefilter_for(set, s, want, n_want) : NULL;
	if (pf) {
		hit_ctx_t hc = {s, want, buf, len};
		prefilter_scan(pf, buf, len, on_hit, &hc);
	}
	s->n_runs = find_digit_runs(s, want, n_want, buf, len);
	uint64_t t_end = now_ns(s);
	s->trigger_ns += t_end - t;
	for (size_t i = 0; i < n_want; i++) {
		const detector_t *d = want[i];
		if (d->matcher.scan) {
			t = t_end;
			bool all_runs = s->n_runs <= s->runs_cap;
			d->matcher.scan(d->matcher.ctx, buf, len, all_runs ? s->runs : NULL, all_runs ? s->n_runs : 0,
					&results[i]);
			grade_findings(d, &results[i]);
			t_end = now_ns(s);
			results[i].ns = t_end - t;
			continue;
		}
		if (!d->re)
			continue;
		if (!pf)
			s->ctx[i].saturated = true; /* no hits collected: look around each match */
		if (s->ctx[i].n > 1)
			qsort(s->ctx[i].v, s->ctx[i].n, sizeof(span_t), span_cmp);
		bool windowed = use_prefilter && ((d->n_keywords && pf) || d->digits);
		t = t_end;
		scan_detector(s, i, d, windowed, buf, len, filename, &results[i], &execs);
		grade_findings(d, &results[i]);
		t_end = now_ns(s);
		results[i].ns = t_end - t;
	}
	generic_give_way(buf, want, n_want, results);
	return execs;
}

size_t detset_scan(detset_t *set, detect_scratch_t *s, const uint8_t *buf, size_t len, const char *filename,
		   const detector_t *const *want, size_t n_want, det_result_t *results)
{
	return scan(set, s, buf, len, filename, want, n_want, results, true);
}

size_t detset_scan_all(detset_t *set, detect_scratch_t *s, const uint8_t *buf, size_t len, const char *filename,
		       const detector_t *const *want, size_t n_want, det_result_t *results)
{
	return scan(set, s, buf, len, filename, want, n_want, results, false);
}

/* An allowlist that drops a file by its name alone: one of its file-name
 * patterns matches, and nothing else in it must (or it is `or`). */
static bool file_allowed(const detector_t *d, const char *name, size_t n, detect_scratch_t *s)
{
	for (size_t g = 0; n && g < d->n_allow; g++) {
		const allow_t *a = &d->allow[g];
		if (!a->n_files || (a->all && (a->n_re || a->n_stop)))
			continue;
		for (size_t i = 0; i < a->n_files; i++)
			if (match_one(a->files[i], (const uint8_t *)name, n, s) >= 0)
				return true;
	}
	return false;
}

bool detector_filename_matches(const detector_t *d, const char *name, size_t n, detect_scratch_t *s)
{
	if (d->filename && match_one(d->filename, (const uint8_t *)name, n, s) < 0)
		return false;
	return !file_allowed(d, name, n, s);
}
