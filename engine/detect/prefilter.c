/*
 * prefilter: keywords -> trie -> failure links (BFS) -> a full DFA over
 * byte classes. The outputs of a state include those of its failure
 * chain, stored as one flat list per state, so a hit costs no chain walk.
 * The 256-wide trie is only a build-time scaffold and is freed after.
 *
 * A transition holds the next state's row offset (state * classes), with
 * the top bit set when that state has outputs: a DFA step is one load and
 * one test, no multiply, no second table.
 *
 * Still, DFA steps form a chain of dependent loads, a few cycles a byte.
 * So at the root the scan first skips every position where no keyword
 * can start: its next four bytes, case-folded and hashed, are not in the
 * 64 Kbit set of the keywords' first four bytes, and, for keywords shorter
 * than four, its next two bytes are not in the set of their first two.
 * When the keywords are few (a policy's want list usually is), a SIMD
 * stage (teddy.h) first finds the 16-byte blocks where a keyword's first
 * three bytes may occur, and the hash test runs only on its candidates:
 * about twice as fast on text where keywords are common, more where they
 * are rare. Otherwise the hash test runs at every position: it has no
 * dependency from one position to the next and is rarely true, so it
 * runs at about a nanosecond a byte and predicts well. The DFA runs from
 * a position that passes until it falls back to the root. Skipping is
 * exact: at the root, a position that starts no keyword changes nothing.
 */
#include "detect/prefilter.h"

#include "core/bytebuf.h"
#include "detect/startset.h"
#include "detect/teddy.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	uint32_t off, len; /* lower-cased bytes in p->text */
	uint32_t tag;
} word_t;

struct prefilter {
	word_t *words;
	uint32_t n_words;
	size_t cap_words;
	bytebuf_t text;            /* every keyword, lower-cased, back to back */
	bool built;
	uint32_t n_states;
	uint32_t n_classes;
	uint8_t cls[256];      /* byte -> class; 0 = no keyword uses it */
	uint32_t *delta;       /* n_states * n_classes: next row offset | HAS_OUTPUT */
	uint32_t *out_start;   /* n_states + 1 */
	uint32_t *out;         /* word indices */
	startset_t starts;     /* may a keyword start here? */
	teddy_t teddy;         /* the SIMD skip, when the keywords are few enough */
};

#define HAS_OUTPUT 0x80000000u

static inline uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

prefilter_t *prefilter_new(void)
{
	return calloc(1, sizeof(prefilter_t)); /* a zeroed bytebuf_t is an empty one without a cap */
}

static inline const uint8_t *text_of(const prefilter_t *p, uint32_t w)
{
	return (const uint8_t *)p->text.data + p->words[w].off;
}

bool prefilter_add(prefilter_t *p, const char *word, size_t len, uint32_t tag)
{
	if (p->built || len == 0 || len > 255)
		return false;
	if (!bytebuf_grow_array(&p->words, sizeof *p->words, p->n_words, &p->cap_words, 32))
		return false;
	if (!bytebuf_reserve(&p->text, len))
		return false;
	for (size_t i = 0; i < len; i++)
		p->text.data[p->text.len + i] = (char)lower((uint8_t)word[i]);
	p->words[p->n_words++] = (word_t){(uint32_t)p->text.len, (uint32_t)len, tag};
	p->text.len += len;
	return true;
}

static void build_teddy(prefilter_t *p)
{
	const uint8_t **words = malloc((p->n_words ? p->n_words : 1) * sizeof *words);
	uint32_t *lens = malloc((p->n_words ? p->n_words : 1) * sizeof *lens);
	if (words && lens) {
		for (uint32_t w = 0; w < p->n_words; w++) {
			words[w] = text_of(p, w);
			lens[w] = p->words[w].len;
		}
		teddy_build(&p->teddy, words, lens, p->n_words);
	}
	free(words);
	free(lens);
}

/* The first position at or after i where a keyword may start (near the
 * end, every one is: the DFA decides there). */
static size_t next_start(const prefilter_t *p, const uint8_t *buf, size_t i, size_t len)
{
	if (p->teddy.usable && teddy_next(&p->teddy, &p->starts, buf, len, &i))
		return i;
	while (i + 4 <= len && !startset_may_start(&p->starts, buf + i))
		i++;
	return i;
}

bool prefilter_build(prefilter_t *p)
{
	if (p->built)
		return true;
	/* Trie. At most one state per keyword byte, plus the root. */
	size_t max_states = p->text.len + 1;
	if ((uint64_t)max_states * 256 >= HAS_OUTPUT)
		return false; /* row offsets must leave the flag bit free */
	uint32_t *trie = calloc(max_states * 256, sizeof *trie);
	uint32_t *wend = malloc((p->n_words ? p->n_words : 1) * sizeof *wend);
	uint32_t *fail = calloc(max_states, sizeof *fail);
	uint32_t *queue = malloc(max_states * sizeof *queue);
	uint32_t *own = calloc(max_states, sizeof *own);
	bool ok = trie && wend && fail && queue && own;
	uint32_t n = 1;
	for (uint32_t w = 0; ok && w < p->n_words; w++) {
		uint32_t s = 0;
		for (uint32_t i = 0; i < p->words[w].len; i++) {
			uint8_t c = text_of(p, w)[i];
			uint32_t *next = &trie[(size_t)s * 256 + c];
			if (!*next)
				*next = n++;
			s = *next;
		}
		wend[w] = s;
		own[s]++;
	}
	if (!ok)
		goto out;

	/* Classes: each byte a keyword uses, upper case folded onto lower. */
	bool used[256] = {0};
	for (size_t i = 0; i < p->text.len; i++)
		used[(uint8_t)p->text.data[i]] = true;
	p->n_classes = 1;
	for (int c = 0; c < 256; c++)
		p->cls[c] = used[c] ? (uint8_t)p->n_classes++ : 0;
	for (int c = 'A'; c <= 'Z'; c++)
		p->cls[c] = p->cls[c + 32];

	p->n_states = n;
	p->delta = calloc((size_t)n * p->n_classes, sizeof *p->delta);
	p->out_start = calloc((size_t)n + 1, sizeof *p->out_start);
	uint32_t *count = calloc(n, sizeof *count);
	ok = p->delta && p->out_start && count;
	if (!ok) {
		free(count);
		goto out;
	}

	/* BFS from the root: failure links, DFA rows, output counts. */
	uint32_t head = 0, tail = 0;
	queue[tail++] = 0;
	while (head < tail) {
		uint32_t s = queue[head++];
		count[s] = own[s] + (s ? count[fail[s]] : 0);
		for (int c = 0; c < 256; c++) {
			uint32_t child = trie[(size_t)s * 256 + c];
			if (child) {
				if (s == 0) {
					fail[child] = 0;
				} else {
					uint32_t f = fail[s];
					while (f && !trie[(size_t)f * 256 + c])
						f = fail[f];
					fail[child] = trie[(size_t)f * 256 + c];
				}
				queue[tail++] = child;
			}
		}
		for (int c = 0; c < 256; c++) {
			uint8_t k = p->cls[c];
			uint32_t child = trie[(size_t)s * 256 + lower((uint8_t)c)];
			if (k == 0)
				continue; /* class 0 leads back to the root */
			p->delta[(size_t)s * p->n_classes + k] =
				child ? child : (s ? p->delta[(size_t)fail[s] * p->n_classes + k] : 0);
		}
	}
	/* Flat outputs: own words first, then the failure state's. */
	for (uint32_t s = 0; s < n; s++)
		p->out_start[s + 1] = p->out_start[s] + count[s];
	p->out = malloc((p->out_start[n] ? p->out_start[n] : 1) * sizeof *p->out);
	uint32_t *fill = calloc(n, sizeof *fill);
	ok = p->out && fill;
	if (ok) {
		for (uint32_t w = 0; w < p->n_words; w++) {
			uint32_t s = wend[w];
			p->out[p->out_start[s] + fill[s]++] = w;
		}
		for (uint32_t i = 0; i < tail; i++) {
			uint32_t s = queue[i];
			if (!s)
				continue;
			uint32_t f = fail[s];
			memcpy(p->out + p->out_start[s] + own[s], p->out + p->out_start[f], count[f] * sizeof *p->out);
		}
		for (uint32_t w = 0; w < p->n_words; w++)
			startset_add(&p->starts, text_of(p, w), p->words[w].len);
		build_teddy(p);
		for (size_t i = 0; i < (size_t)n * p->n_classes; i++) {
			uint32_t t = p->delta[i];
			p->delta[i] = t * p->n_classes | (count[t] ? HAS_OUTPUT : 0);
		}
		p->built = true;
	}
	free(fill);
	free(count);
out:
	free(trie);
	free(wend);
	free(fail);
	free(queue);
	free(own);
	return ok;
}

void prefilter_scan(const prefilter_t *p, const uint8_t *buf, size_t len,
		    bool (*on_hit)(void *ctx, const pf_hit_t *hit), void *ctx)
{
	if (!p->built || p->n_words == 0)
		return;
	const uint32_t *delta = p->delta, *os = p->out_start;
	const uint8_t *cls = p->cls;
	uint32_t row = 0;
	for (size_t i = 0; i < len; i++) {
		if (row == 0) {
			i = next_start(p, buf, i, len);
			if (i >= len)
				break;
		}
		uint32_t t = delta[row + cls[buf[i]]];
		row = t & ~HAS_OUTPUT;
		if (!(t & HAS_OUTPUT))
			continue;
		uint32_t s = row / p->n_classes;
		for (uint32_t k = os[s]; k < os[s + 1]; k++) {
			const word_t *w = &p->words[p->out[k]];
			pf_hit_t hit = {w->tag, (uint32_t)(i + 1 - w->len), w->len};
			if (!on_hit(ctx, &hit))
				return;
		}
	}
}

void prefilter_free(prefilter_t *p)
{
	if (!p)
		return;
	free(p->words);
	bytebuf_free(&p->text);
	free(p->delta);
	free(p->out_start);
	free(p->out);
	free(p);
}
