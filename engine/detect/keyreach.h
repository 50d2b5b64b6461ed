/*
 * keyreach: how far past its start every match of a regex holds one of a
 * set of keywords, so a detector whose keywords gate the whole text (the
 * gitleaks way: a rule runs on any fragment that holds one of them) can
 * still run its regex only in windows [keyword - reach, keyword] and find
 * exactly the same matches.
 *
 * The regex is parsed (PCRE2 syntax, the part that secret rules use) into
 * a small tree, with every character set folded to lower case (keywords
 * are matched ignoring case). A part whose language is small and finite
 * (literals, alternatives of them, narrow classes such as [Aa], short
 * bounded repeats) is expanded to its strings; when each holds a keyword,
 * every match through that part does, at most (the longest text before
 * the part) + (the latest first keyword in a string) bytes past the start
 * of the match. A sequence takes the best of its parts (an unbounded part
 * before one ends the search), an alternation needs a proof in each
 * branch, a repeat of at least one the proof of one iteration, and
 * look-arounds, anchors and lazy or possessive forms change nothing of it.
 *
 * Anything not understood (back-references, \K, verbs, conditionals, (?x),
 * recursion) gives no proof: the detector then runs over the whole text.
 * The analysis can make a scan faster, never change what it finds. The
 * pattern is outside input (a pack, an imported configuration): its size,
 * nesting and the expanded languages are bounded, and
 * tests/fuzz/fuzz_keyreach.c checks every proof it gives against PCRE2's
 * own matches.
 */
#ifndef DLPGATE_KEYREACH_H
#define DLPGATE_KEYREACH_H

#include <stddef.h>
#include <stdint.h>

#define KEYREACH_MAX_PATTERN (64u << 10)
#define KEYREACH_MAX_BOUND (1 << 20)

/* The largest distance from the start of any match of regex to the start
 * of the first keyword it holds (keywords compared ignoring ASCII case);
 * -1 when that cannot be shown. With a proof, between (when not NULL)
 * gets every byte that may stand between the match start and that keyword,
 * as a bit set of lower-case bytes (a text byte is in it when its lower
 * case is): a match then starts no earlier than the run of such bytes
 * that ends at the keyword. */
int keyreach_bound(const char *regex, const char *const *keywords, size_t n_keywords, uint8_t between[32]);

#endif
