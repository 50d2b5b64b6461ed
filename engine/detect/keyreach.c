/*
 * keyreach: the regex reading and the proof. See keyreach.h.
 */
#include "detect/keyreach.h"

#include "core/hex.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 4096
#define MAX_DEPTH 64
#define INF UINT64_MAX
#define REP_INF UINT32_MAX
/* A finite language is expanded only while small: at most this many
 * strings of at most this many bytes; a set wider than SET_NARROW
 * characters (after folding case) is never expanded. */
#define LANG_MAX 256
#define STR_MAX 64
#define SET_NARROW 6
#define REP_EXPAND 8

typedef enum { N_EMPTY, N_SET, N_CAT, N_ALT, N_REP } kind_t;

typedef struct {
	kind_t kind;
	uint8_t set[32];  /* N_SET: bytes, lower case only */
	uint32_t min, max; /* N_REP */
	int child, next;  /* first child, next sibling; -1 = none */
} node_t;

typedef struct {
	const char *p, *end;
	node_t *n;
	int count;
	bool fail;        /* something not understood: no proof */
	char shorthand;   /* the class letter char_escape last returned -2 for */
} parser_t;

static int node_new(parser_t *ps, kind_t k)
{
	if (ps->count == MAX_NODES) {
		ps->fail = true;
		return -1;
	}
	node_t *n = &ps->n[ps->count];
	memset(n, 0, sizeof *n);
	n->kind = k;
	n->child = n->next = -1;
	return ps->count++;
}

static uint8_t fold(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static void set_add(uint8_t *set, uint8_t c)
{
	c = fold(c);
	set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static void set_all(uint8_t *set)
{
	memset(set, 0, 32);
	for (int c = 0; c < 256; c++)
		set_add(set, (uint8_t)c);
}

static int set_size(const uint8_t *set)
{
	int n = 0;
	for (int i = 0; i < 32; i++)
		n += __builtin_popcount(set[i]);
	return n;
}

static int set_node(parser_t *ps, int c)
{
	int i = node_new(ps, N_SET);
	if (i >= 0) {
		if (c < 0)
			set_all(ps->n[i].set);
		else
			set_add(ps->n[i].set, (uint8_t)c);
	}
	return i;
}

static void append_child(parser_t *ps, int parent, int *last, int child)
{
	if (parent < 0 || child < 0)
		return;
	if (*last < 0)
		ps->n[parent].child = child;
	else
		ps->n[*last].next = child;
	*last = child;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* \xhh or \x{hh}: the byte, or -1 (fail set) for what a byte is not. */
static int hex_escape(parser_t *ps)
{
	int v = 0, digits = 0;
	if (ps->p < ps->end && *ps->p == '{') {
		ps->p++;
		while (ps->p < ps->end && *ps->p != '}' && hex_value(*ps->p) >= 0 && digits < 8) {
			v = v * 16 + hex_value(*ps->p++);
			digits++;
		}
		if (ps->p >= ps->end || *ps->p != '}' || !digits || v > 255) {
			ps->fail = true;
			return -1;
		}
		ps->p++;
		return v;
	}
	while (digits < 2 && ps->p < ps->end && hex_value(*ps->p) >= 0) {
		v = v * 16 + hex_value(*ps->p++);
		digits++;
	}
	return v;
}

static void add_range(uint8_t *raw, int lo, int hi)
{
	for (int c = lo; c <= hi; c++)
		raw[c >> 3] |= (uint8_t)(1u << (c & 7));
}

/* The bytes a class shorthand may match, or more (never fewer): \w with
 * every byte past 0x7f in case locale tables say so; a negated one is the
 * complement of what the positive one surely matches. */
static void shorthand_bytes(char c, uint8_t *raw)
{
	uint8_t sure[32] = {0};
	switch (c | 0x20) {
	case 'd':
		add_range(sure, '0', '9');
		break;
	case 'w':
		add_range(sure, '0', '9');
		add_range(sure, 'A', 'Z');
		add_range(sure, 'a', 'z');
		add_range(sure, '_', '_');
		break;
	case 's':
		add_range(sure, '\t', '\r');
		add_range(sure, ' ', ' ');
		break;
	case 'h':
		add_range(sure, '\t', '\t');
		add_range(sure, ' ', ' ');
		break;
	case 'v':
		add_range(sure, '\n', '\r');
		break;
	default: /* \p, \P: anything */
		memset(raw, 0xff, 32);
		return;
	}
	if (c >= 'A' && c <= 'Z') {
		for (int i = 0; i < 32; i++)
			raw[i] |= (uint8_t)~sure[i];
		return;
	}
	for (int i = 0; i < 32; i++)
		raw[i] |= sure[i];
	if ((c | 0x20) == 'w')
		add_range(raw, 0x80, 0xff);
	if ((c | 0x20) != 'd')
		add_range(raw, 0x85, 0x85), add_range(raw, 0xa0, 0xa0);
}

/* A single-character escape after the backslash: the byte; -2 for a class
 * of many (\d, \w, \p{..}...: its letter in ps->shorthand); -1 (fail set)
 * for anything else. */
static int char_escape(parser_t *ps, bool in_class)
{
	if (ps->p >= ps->end) {
		ps->fail = true;
		return -1;
	}
	char c = *ps->p++;
	switch (c) {
	case 't': return '\t';
	case 'n': return '\n';
	case 'r': return '\r';
	case 'f': return '\f';
	case 'e': return 27;
	case 'a': return 7;
	case 'b':
		if (in_class)
			return 8;
		break;
	case 'x': return hex_escape(ps);
	case '0': {
		int v = 0;
		for (int k = 0; k < 2 && ps->p < ps->end && *ps->p >= '0' && *ps->p <= '7'; k++)
			v = v * 8 + (*ps->p++ - '0');
		return v;
	}
	case 'c': /* \cX: control-X */
		if (ps->p < ps->end && (unsigned char)*ps->p >= 32 && (unsigned char)*ps->p < 127) {
			unsigned char x = (unsigned char)*ps->p++;
			return (x >= 'a' && x <= 'z' ? x - 32 : x) ^ 0x40;
		}
		break;
	case 'd': case 'D': case 'w': case 'W': case 's': case 'S': case 'h': case 'H': case 'v': case 'V':
		ps->shorthand = c;
		return -2;
	case 'p': case 'P':
		if (ps->p < ps->end && *ps->p == '{') {
			while (ps->p < ps->end && *ps->p != '}')
				ps->p++;
			if (ps->p >= ps->end)
				break;
			ps->p++;
		} else if (ps->p < ps->end) {
			ps->p++;
		}
		ps->shorthand = c;
		return -2;
	default:
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)))
			return (unsigned char)c; /* an escaped symbol is itself */
	}
	ps->fail = true;
	return -1;
}

/* [...] after its '[': a set node (everything, when it holds a class
 * shorthand: a wide set proves nothing, so nothing is lost). */
static int parse_class(parser_t *ps)
{
	int i = node_new(ps, N_SET);
	if (i < 0)
		return -1;
	uint8_t raw[32] = {0};
	bool negate = false, wide = false, first = true;
	if (ps->p < ps->end && *ps->p == '^') {
		negate = true;
		ps->p++;
	}
	for (;;) {
		if (ps->p >= ps->end) {
			ps->fail = true;
			return -1;
		}
		if (*ps->p == ']' && !first) {
			ps->p++;
			break;
		}
		first = false;
		int lo;
		if (ps->p + 1 < ps->end && ps->p[0] == '[' && (ps->p[1] == ':' || ps->p[1] == '.' || ps->p[1] == '=')) {
			const char *close = ps->p + 2;
			while (close + 1 < ps->end && !(close[0] == ps->p[1] && close[1] == ']'))
				close++;
			if (close + 1 >= ps->end || ps->p[1] != ':') {
				ps->fail = true;
				return -1;
			}
			ps->p = close + 2;
			wide = true;
			continue;
		}
		if (*ps->p == '\\') {
			ps->p++;
			if (ps->p < ps->end && (*ps->p == 'Q' || *ps->p == 'E')) {
				ps->fail = true;
				return -1;
			}
			lo = char_escape(ps, true);
		} else {
			lo = (unsigned char)*ps->p++;
		}
		if (ps->fail)
			return -1;
		if (lo == -2) {
			/* a superset of a shorthand, negated, would be too few */
			if (negate)
				wide = true;
			else
				shorthand_bytes(ps->shorthand, raw);
			continue;
		}
		if (ps->p + 1 < ps->end && ps->p[0] == '-' && ps->p[1] != ']') {
			ps->p++;
			int hi;
			if (*ps->p == '\\') {
				ps->p++;
				hi = char_escape(ps, true);
			} else if (*ps->p == '[') {
				hi = -1; /* [a-[:digit:]] and the like */
				ps->fail = true;
			} else {
				hi = (unsigned char)*ps->p++;
			}
			if (ps->fail || hi < lo) {
				ps->fail = true;
				return -1;
			}
			for (int c = lo; c <= hi; c++)
				raw[c >> 3] |= (uint8_t)(1u << (c & 7));
			continue;
		}
		raw[lo >> 3] |= (uint8_t)(1u << (lo & 7));
	}
	if (wide) {
		set_all(ps->n[i].set);
		return i;
	}
	/* Folding after negation keeps a superset of what (?i) could match. */
	for (int c = 0; c < 256; c++)
		if (((raw[c >> 3] >> (c & 7)) & 1) != negate)
			set_add(ps->n[i].set, (uint8_t)c);
	return i;
}

static int parse_alt(parser_t *ps, int depth);

/* (?flags) or (?flags: — true when it ends with ':' (a group follows). */
static bool parse_flags(parser_t *ps, bool *group)
{
	while (ps->p < ps->end && ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' && *ps->p <= 'Z') || *ps->p == '-')) {
		if (*ps->p == 'x') /* extended syntax reads the pattern differently */
			return false;
		if (!strchr("imnsUJ-", *ps->p))
			return false;
		ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == ':' || *ps->p == ')')) {
		*group = *ps->p == ':';
		ps->p++;
		return true;
	}
	return false;
}

static int parse_group(parser_t *ps, int depth)
{
	bool zero_width = false;
	if (ps->p < ps->end && *ps->p == '*') { /* (*VERB) and (*pla:...) */
		ps->fail = true;
		return -1;
	}
	if (ps->p < ps->end && *ps->p == '?') {
		ps->p++;
		if (ps->p >= ps->end) {
			ps->fail = true;
			return -1;
		}
		char c = *ps->p;
		if (c == ':' || c == '>' || c == '|') {
			ps->p++;
		} else if (c == '=' || c == '!') {
			ps->p++;
			zero_width = true;
		} else if (c == '<' && ps->p + 1 < ps->end && (ps->p[1] == '=' || ps->p[1] == '!')) {
			ps->p += 2;
			zero_width = true;
		} else if (c == '<' || c == '\'' || (c == 'P' && ps->p + 1 < ps->end && ps->p[1] == '<')) {
			char close = c == '\'' ? '\'' : '>';
			ps->p += c == 'P' ? 2 : 1;
			while (ps->p < ps->end && *ps->p != close &&
			       ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' && *ps->p <= 'Z') || is_digit(*ps->p) ||
				*ps->p == '_'))
				ps->p++;
			if (ps->p >= ps->end || *ps->p != close) {
				ps->fail = true;
				return -1;
			}
			ps->p++;
		} else {
			bool group;
			if (!parse_flags(ps, &group)) {
				ps->fail = true; /* comments, recursion, conditionals, callouts */
				return -1;
			}
			if (!group)
				return node_new(ps, N_EMPTY);
		}
	}
	int inner = parse_alt(ps, depth + 1);
	if (ps->fail || ps->p >= ps->end || *ps->p != ')') {
		ps->fail = true;
		return -1;
	}
	ps->p++;
	return zero_width ? node_new(ps, N_EMPTY) : inner;
}

static int parse_atom(parser_t *ps, int depth)
{
	char c = *ps->p++;
	switch (c) {
	case '(':
		return parse_group(ps, depth);
	case '[':
		return parse_class(ps);
	case '.':
		return set_node(ps, -1);
	case '^':
	case '$':
		return node_new(ps, N_EMPTY);
	case '*': case '+': case '?': case '{': case ')':
		ps->fail = true;
		return -1;
	case '\\':
		break;
	default:
		return set_node(ps, (unsigned char)c);
	}
	if (ps->p >= ps->end) {
		ps->fail = true;
		return -1;
	}
	c = *ps->p;
	if (strchr("bBAZzG", c)) {
		ps->p++;
		return node_new(ps, N_EMPTY);
	}
	if (c == 'E') {
		ps->p++;
		return node_new(ps, N_EMPTY);
	}
	if (c == 'Q') { /* \Q...\E: literal bytes */
		ps->p++;
		int cat = node_new(ps, N_CAT), last = -1;
		while (ps->p < ps->end && !(ps->p + 1 < ps->end && ps->p[0] == '\\' && ps->p[1] == 'E'))
			append_child(ps, cat, &last, set_node(ps, (unsigned char)*ps->p++));
		if (ps->p < ps->end)
			ps->p += 2;
		return cat;
	}
	if (c == 'R' || c == 'X') { /* a line break (\r\n is two) or a grapheme: one or more bytes */
		ps->p++;
		int rep = node_new(ps, N_REP);
		if (rep >= 0) {
			ps->n[rep].min = 1;
			ps->n[rep].max = REP_INF;
			ps->n[rep].child = set_node(ps, -1);
		}
		return rep;
	}
	if (c == 'N' && ps->p + 1 < ps->end && ps->p[1] != '{') {
		ps->p++;
		return set_node(ps, -1);
	}
	int v = char_escape(ps, false);
	if (ps->fail)
		return -1;
	if (v != -2)
		return set_node(ps, v);
	int i = node_new(ps, N_SET);
	if (i >= 0) {
		uint8_t raw[32] = {0};
		shorthand_bytes(ps->shorthand, raw);
		for (int b = 0; b < 256; b++)
			if ((raw[b >> 3] >> (b & 7)) & 1)
				set_add(ps->n[i].set, (uint8_t)b);
	}
	return i;
}

/* A quantifier after an atom, if any: {n}, {n,}, {n,m} strictly (anything
 * else after '{' reads differently across PCRE2 versions: no proof). */
static bool parse_quant(parser_t *ps, uint32_t *min, uint32_t *max)
{
	char c = *ps->p;
	if (c == '*' || c == '+' || c == '?') {
		ps->p++;
		*min = c == '+';
		*max = c == '?' ? 1 : REP_INF;
	} else {
		const char *q = ps->p + 1;
		uint64_t lo = 0, hi;
		if (q >= ps->end || !is_digit(*q)) {
			ps->fail = true;
			return false;
		}
		while (q < ps->end && is_digit(*q) && lo < 100000)
			lo = lo * 10 + (uint64_t)(*q++ - '0');
		hi = lo;
		if (q < ps->end && *q == ',') {
			q++;
			if (q < ps->end && is_digit(*q)) {
				hi = 0;
				while (q < ps->end && is_digit(*q) && hi < 100000)
					hi = hi * 10 + (uint64_t)(*q++ - '0');
			} else {
				hi = REP_INF;
			}
		}
		if (q >= ps->end || *q != '}' || hi < lo || lo >= 100000 || (hi != REP_INF && hi >= 100000)) {
			ps->fail = true;
			return false;
		}
		ps->p = q + 1;
		*min = (uint32_t)lo;
		*max = (uint32_t)hi;
	}
	if (ps->p < ps->end && (*ps->p == '?' || *ps->p == '+'))
		ps->p++; /* lazy or possessive: the same strings, fewer matches */
	return true;
}

static int parse_cat(parser_t *ps, int depth)
{
	int cat = node_new(ps, N_CAT), last = -1;
	while (!ps->fail && ps->p < ps->end && *ps->p != '|' && *ps->p != ')') {
		int atom = parse_atom(ps, depth);
		while (!ps->fail && ps->p < ps->end && strchr("*+?{", *ps->p)) {
			uint32_t min, max;
			if (!parse_quant(ps, &min, &max))
				break;
			int rep = node_new(ps, N_REP);
			if (rep < 0)
				break;
			ps->n[rep].min = min;
			ps->n[rep].max = max;
			ps->n[rep].child = atom;
			atom = rep;
		}
		append_child(ps, cat, &last, atom);
	}
	return cat;
}

static int parse_alt(parser_t *ps, int depth)
{
	if (depth > MAX_DEPTH) {
		ps->fail = true;
		return -1;
	}
	int first = parse_cat(ps, depth);
	if (ps->fail || ps->p >= ps->end || *ps->p != '|')
		return first;
	int alt = node_new(ps, N_ALT), last = -1;
	append_child(ps, alt, &last, first);
	while (!ps->fail && ps->p < ps->end && *ps->p == '|') {
		ps->p++;
		append_child(ps, alt, &last, parse_cat(ps, depth));
	}
	return alt;
}

/* ---- the proof ---- */

typedef struct {
	size_t n;
	struct {
		uint8_t len;
		char s[STR_MAX];
	} v[LANG_MAX];
} lang_t;

typedef struct {
	const node_t *n;
	const char *const *kw;
	size_t n_kw;
	uint64_t steps; /* work done; past STEP_BUDGET the proof gives up */
} prover_t;

/* A hostile pattern could make the proof's nested runs slow: it gives up
 * (no proof, the whole text is scanned) after this much work. */
#define STEP_BUDGET 2000000

static lang_t *lang_get(prover_t *pv)
{
	if (++pv->steps > STEP_BUDGET)
		return NULL;
	return malloc(sizeof(lang_t));
}

/* out = a . b, false past the bounds */
static bool lang_concat(const lang_t *a, const lang_t *b, lang_t *out)
{
	if (a->n * b->n > LANG_MAX)
		return false;
	size_t k = 0;
	for (size_t i = 0; i < a->n; i++)
		for (size_t j = 0; j < b->n; j++) {
			if (a->v[i].len + b->v[j].len > STR_MAX)
				return false;
			memcpy(out->v[k].s, a->v[i].s, a->v[i].len);
			memcpy(out->v[k].s + a->v[i].len, b->v[j].s, b->v[j].len);
			out->v[k].len = (uint8_t)(a->v[i].len + b->v[j].len);
			k++;
		}
	out->n = k;
	return true;
}

static bool lang_union(lang_t *into, const lang_t *more)
{
	if (into->n + more->n > LANG_MAX)
		return false;
	memcpy(&into->v[into->n], more->v, more->n * sizeof more->v[0]);
	into->n += more->n;
	return true;
}

/* The node's strings (lower case) into out, false when not small and finite. */
static bool lang_of(prover_t *pv, int i, lang_t *out)
{
	const node_t *nd = &pv->n[i];
	switch (nd->kind) {
	case N_EMPTY:
		out->n = 1;
		out->v[0].len = 0;
		return true;
	case N_SET:
		if (set_size(nd->set) > SET_NARROW)
			return false;
		out->n = 0;
		for (int c = 0; c < 256; c++)
			if ((nd->set[c >> 3] >> (c & 7)) & 1) {
				out->v[out->n].len = 1;
				out->v[out->n++].s[0] = (char)c;
			}
		return true;
	case N_CAT: {
		out->n = 1;
		out->v[0].len = 0;
		lang_t *part = lang_get(pv), *tmp = lang_get(pv);
		bool ok = part && tmp;
		for (int c = nd->child; ok && c >= 0; c = pv->n[c].next) {
			ok = lang_of(pv, c, part) && lang_concat(out, part, tmp);
			if (ok)
				memcpy(out, tmp, sizeof *out);
		}
		free(tmp);
		free(part);
		return ok;
	}
	case N_ALT: {
		out->n = 0;
		lang_t *part = lang_get(pv);
		bool ok = part != NULL;
		for (int c = nd->child; ok && c >= 0; c = pv->n[c].next)
			ok = lang_of(pv, c, part) && lang_union(out, part);
		free(part);
		return ok;
	}
	case N_REP: {
		if (nd->max > REP_EXPAND || nd->child < 0)
			return false;
		lang_t *one = lang_get(pv), *power = lang_get(pv), *tmp = lang_get(pv);
		bool ok = one && power && tmp && lang_of(pv, nd->child, one);
		if (ok) {
			power->n = 1;
			power->v[0].len = 0;
			out->n = 0;
			for (uint32_t k = 0; ok && k <= nd->max; k++) {
				if (k >= nd->min)
					ok = lang_union(out, power);
				if (ok && k < nd->max) {
					ok = lang_concat(power, one, tmp);
					if (ok)
						memcpy(power, tmp, sizeof *power);
				}
			}
		}
		free(one);
		free(power);
		free(tmp);
		return ok;
	}
	}
	return false;
}

static uint64_t add_sat(uint64_t a, uint64_t b) { return a > INF - b ? INF : a + b; }

static uint64_t maxlen(const prover_t *pv, int i)
{
	const node_t *nd = &pv->n[i];
	uint64_t m = 0;
	switch (nd->kind) {
	case N_EMPTY:
		return 0;
	case N_SET:
		return 1;
	case N_CAT:
		for (int c = nd->child; c >= 0; c = pv->n[c].next)
			m = add_sat(m, maxlen(pv, c));
		return m;
	case N_ALT:
		for (int c = nd->child; c >= 0; c = pv->n[c].next) {
			uint64_t x = maxlen(pv, c);
			m = x > m ? x : m;
		}
		return m;
	case N_REP: {
		if (nd->max == 0 || nd->child < 0)
			return 0;
		uint64_t one = maxlen(pv, nd->child);
		if (one == 0)
			return 0;
		if (nd->max == REP_INF || one == INF)
			return INF;
		return one > INF / nd->max ? INF : one * nd->max;
	}
	}
	return INF;
}

static void set_union(uint8_t *into, const uint8_t *more)
{
	for (int i = 0; i < 32; i++)
		into[i] |= more[i];
}

/* Every byte the node's text may hold (folded), into set. */
static void alphabet_of(const prover_t *pv, int i, uint8_t *set)
{
	const node_t *nd = &pv->n[i];
	if (nd->kind == N_SET)
		set_union(set, nd->set);
	for (int c = nd->child; c >= 0; c = pv->n[c].next)
		alphabet_of(pv, c, set);
}

/* Every string holds a keyword: the latest first keyword start, else -1;
 * before gets the bytes that stand before those keywords. */
static int64_t lang_proves(const prover_t *pv, const lang_t *l, uint8_t *before)
{
	int64_t worst = 0;
	uint8_t seen[32] = {0};
	for (size_t i = 0; i < l->n; i++) {
		int64_t first = -1;
		for (size_t k = 0; k < pv->n_kw; k++) {
			size_t m = strlen(pv->kw[k]);
			for (size_t at = 0; m && at + m <= l->v[i].len; at++) {
				size_t j = 0;
				while (j < m && l->v[i].s[at + j] == (char)fold((uint8_t)pv->kw[k][j]))
					j++;
				if (j == m) {
					if (first < 0 || (int64_t)at < first)
						first = (int64_t)at;
					break;
				}
			}
		}
		if (first < 0)
			return -1;
		for (int64_t j = 0; j < first; j++)
			set_add(seen, (uint8_t)l->v[i].s[j]);
		worst = first > worst ? first : worst;
	}
	set_union(before, seen);
	return worst;
}

static int64_t reach(prover_t *pv, int i, int depth, uint8_t *before);

/* A sequence: the best proof from a finite run of its parts, or from one
 * part, plus the longest text before it (whose bytes join `before`). */
static int64_t reach_cat(prover_t *pv, const node_t *nd, int depth, uint8_t *before)
{
	int64_t best = -1;
	uint64_t prefix = 0;
	uint8_t seen[32] = {0}, best_before[32] = {0};
	lang_t *run = lang_get(pv), *part = lang_get(pv), *tmp = lang_get(pv);
	for (int c = nd->child; c >= 0 && prefix != INF && run && part && tmp; c = pv->n[c].next) {
		uint8_t here[32];
		memcpy(here, seen, sizeof here);
		int64_t r = reach(pv, c, depth + 1, here);
		if (r >= 0 && (best < 0 || (int64_t)prefix + r < best)) {
			best = (int64_t)prefix + r;
			memcpy(best_before, here, sizeof here);
		}
		/* runs starting here: a keyword may span several parts */
		run->n = 1;
		run->v[0].len = 0;
		for (int d = c; d >= 0; d = pv->n[d].next) {
			if (!lang_of(pv, d, part) || !lang_concat(run, part, tmp))
				break;
			memcpy(run, tmp, sizeof *run);
			memcpy(here, seen, sizeof here);
			int64_t p = lang_proves(pv, run, here);
			if (p >= 0 && (best < 0 || (int64_t)prefix + p < best)) {
				best = (int64_t)prefix + p;
				memcpy(best_before, here, sizeof here);
			}
		}
		prefix = add_sat(prefix, maxlen(pv, c));
		alphabet_of(pv, c, seen);
		if (prefix > KEYREACH_MAX_BOUND)
			break;
	}
	free(run);
	free(part);
	free(tmp);
	if (best >= 0)
		set_union(before, best_before);
	return best;
}

static int64_t reach(prover_t *pv, int i, int depth, uint8_t *before)
{
	const node_t *nd = &pv->n[i];
	if (depth > MAX_DEPTH * 4 || ++pv->steps > STEP_BUDGET)
		return -1;
	switch (nd->kind) {
	case N_EMPTY:
		return -1;
	case N_SET: {
		lang_t *l = lang_get(pv);
		int64_t r = l && lang_of(pv, i, l) ? lang_proves(pv, l, before) : -1;
		free(l);
		return r;
	}
	case N_CAT:
		return reach_cat(pv, nd, depth, before);
	case N_ALT: {
		int64_t worst = -1;
		uint8_t all[32] = {0};
		for (int c = nd->child; c >= 0; c = pv->n[c].next) {
			int64_t r = reach(pv, c, depth + 1, all);
			if (r < 0)
				return -1;
			worst = r > worst ? r : worst;
		}
		set_union(before, all);
		return worst;
	}
	case N_REP:
		if (nd->min == 0 || nd->child < 0)
			return -1;
		return reach(pv, nd->child, depth + 1, before);
	}
	return -1;
}

int keyreach_bound(const char *regex, const char *const *keywords, size_t n_keywords, uint8_t between[32])
{
	uint8_t before[32] = {0};
	size_t len = strlen(regex);
	if (!n_keywords || len > KEYREACH_MAX_PATTERN)
		return -1;
	for (size_t k = 0; k < n_keywords; k++)
		if (!keywords[k][0] || strlen(keywords[k]) > STR_MAX)
			return -1;
	parser_t ps = {.p = regex, .end = regex + len, .n = calloc(MAX_NODES, sizeof(node_t))};
	prover_t pv = {ps.n, keywords, n_keywords, 0};
	int64_t r = -1;
	if (!ps.n)
		return -1;
	int root = parse_alt(&ps, 0);
	if (!ps.fail && root >= 0 && ps.p == ps.end)
		r = reach(&pv, root, 0, before);
	free(ps.n);
	if (between)
		memcpy(between, before, sizeof before);
	return r >= 0 && r <= KEYREACH_MAX_BOUND ? (int)r : -1;
}
