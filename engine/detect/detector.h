/*
 * detector: one compiled detection rule, and the set a policy scans with.
 *
 * A detector is a primary pattern (PCRE2, JIT-compiled once) plus what
 * turns a pattern hit into a finding: the capture group that is the
 * secret, a validator (Luhn, IBAN, SSN, ABA), a minimum entropy, context
 * words that must appear within a distance, allowlists (regexes on the
 * secret, the match or the line; stopwords), a file-name scope and a
 * minimum count. That is enough to express secret-scanner rule sets
 * (gitleaks: regex + secretGroup + keywords + entropy + allowlists) and
 * enterprise sensitive-information types (primary pattern + checksum +
 * supporting keywords within a distance + instance count).
 *
 * A detset holds every detector of a policy and is shared by all workers;
 * each thread scans with its own detect_scratch_t (PCRE2 match data, JIT
 * stack, hit lists, and the prefilters for the detector lists it scanned
 * with: an automaton of just those detectors' keywords and context words,
 * built on first use and cached), so scanning takes no lock.
 *
 * A detector with keywords runs its regex only in windows around keyword
 * hits (merged when they overlap), or, with gate_text, anywhere in a text
 * that holds one of them; one that declares `digits` only around
 * runs of that many digits (digitruns.h); one with neither runs on the
 * whole buffer, which is what `dlpgate check` warns about. A pattern that
 * backtracks past the match limit stops that detector for that buffer and
 * the result says it timed out: a hostile input cannot stall a worker.
 */
#ifndef DLPGATE_DETECTOR_H
#define DLPGATE_DETECTOR_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "detect/confidence.h"
#include "detect/validate.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { ALLOW_SECRET = 0, ALLOW_MATCH, ALLOW_LINE } allow_target_t;

struct det_result;
/* A detector that finds by itself instead of a regex (exact data match,
 * edm.h): scan fills the result's count and matches, each match's
 * confidence field holding whether it has context (corroboration); the
 * levels are graded like any detector's, validated being true. The
 * detector owns ctx once compiled (release frees it). */
struct digit_run;
typedef struct {
	/* runs: the text's runs of at least `digits` digits (digitruns.h), which
	 * the scan finds once for every detector; NULL when there were too many
	 * to keep (the matcher then finds its own) */
	void (*scan)(void *ctx, const uint8_t *buf, size_t len, const struct digit_run *runs, size_t n_runs,
		     struct det_result *r);
	void (*release)(void *ctx);
	void *ctx;
	const char *key;   /* what makes two matchers find the same */
	uint32_t digits;   /* 0, or the fewest digits its candidates hold */
} det_matcher_t;

/* One allowlist: a finding is dropped when its criteria hold (any of them,
 * or all with `all`): a regex matches the target text, the secret holds a
 * stopword, the file name matches. A detector may have several; any one
 * that drops a finding drops it. */
typedef struct {
	const char *const *regexes;
	size_t n_regexes;
	allow_target_t target;
	const char *const *stopwords;
	size_t n_stopwords;
	const char *const *filenames;   /* regexes on the file the text came from */
	size_t n_filenames;
	bool all;
} allow_spec_t;

#define DETECTOR_MAX_ALLOW 16
#define DET_MAX_GROUPS 64 /* capture groups a scan reads (the match is group 0) */

/* What an author writes (dlp.detector{...}); strings are borrowed. */
typedef struct {
	const char *name;           /* default name in results */
	const char *regex;          /* NULL only for a filename-only detector */
	const char *const *keywords;
	size_t n_keywords;
	uint32_t group;             /* capture group holding the secret; 0 = the match */
	bool group_first;           /* the secret is the first capture group that matched
				     * something, else the match (gitleaks without secretGroup) */
	validator_t validate;
	double min_entropy;         /* the secret's entropy must exceed it; 0 = no check */
	const char *const *context_words;
	size_t n_context;
	uint32_t context_distance;  /* bytes before or after the match */
	uint32_t min_count;         /* found only with at least this many */
	allow_spec_t allow[DETECTOR_MAX_ALLOW];
	size_t n_allow;
	const char *filename;       /* only in files whose name matches this regex */
	const char *severity;       /* "low" | "medium" | "high" | "critical" */
	const char *confidence;     /* "low" | "medium" | "high" for every finding; NULL: graded by conf */
	conf_rule_spec_t conf;      /* how findings are graded (confidence.h) */
	/* Where a match may start: from window_before bytes before a keyword
	 * (or a digit run) to window_after bytes past its end; 256 each
	 * unless window_set. */
	bool window_set;
	uint32_t window_before, window_after;
	/* Keywords gate the whole text instead (gitleaks: a rule runs on a
	 * fragment holding one of its keywords, wherever the match is). The
	 * scan still keeps to windows when keyreach proves every match holds a
	 * keyword near its start, which finds exactly the same. */
	bool gate_text;
	uint32_t digits;            /* each match holds this many digits (0: no promise) */
	/* Keywords and context words count only where they stand as words:
	 * at an end of the word that is a letter or digit, the text must not
	 * go on with one (detect_word_at). "bic" then no longer fires inside
	 * ARABIC, nor "sms" inside ssMSSQL; "card" still does in card_number
	 * and creditCardNumber. Inside a JSON object key a word counts
	 * wherever it stands ("phonenumber": a key labels its value). */
	bool boundary;
	/* A generic detector gives way to specific ones (gitleaks' rules whose
	 * id says "generic"): its finding is dropped when a detector of the
	 * same scan that is not generic found, on the same line, a secret that
	 * holds its secret. */
	bool generic;
	uint8_t keep_first, keep_last; /* what a sample shows */
	const det_matcher_t *matcher;  /* instead of a regex (then no keywords, digits or allowlists) */
} detector_spec_t;

typedef struct detector detector_t;
typedef struct detset detset_t;
typedef struct detect_scratch detect_scratch_t;

/* Does the n bytes at start of buf stand as a word (see boundary)? A word
 * break is a byte that is not a letter or digit, a change between letters
 * and digits, or a lower-case letter followed by an upper-case one (the
 * hump of camelCase); bytes past 0x7f count as letters. */
bool detect_word_at(const uint8_t *buf, size_t len, size_t start, size_t n);

/* Compiles a spec; NULL with a message naming the problem in err. */
detector_t *detector_compile(const detector_spec_t *spec, char *err, size_t errlen);
const char *detector_name(const detector_t *d);
const char *detector_severity(const detector_t *d);
/* The level every finding of d gets, or NULL when d grades each finding
 * from its evidence (confidence.h). */
const char *detector_confidence(const detector_t *d);
bool detector_has_keywords(const detector_t *d);
/* Does the scan keep its regex to windows (keywords or digits)? */
bool detector_is_anchored(const detector_t *d);
/* Do its keywords gate the whole text with no window proven (window =
 * "text" where keyreach found no bound)? Its regex then runs over every
 * text that holds one of them. */
bool detector_gates_text(const detector_t *d);
uint32_t detector_id(const detector_t *d);
uint32_t detector_min_count(const detector_t *d);
uint8_t detector_keep_first(const detector_t *d);
uint8_t detector_keep_last(const detector_t *d);
/* A stable text form of the spec (for finding an identical detector). */
const char *detector_key(const detector_t *d);
bool detector_has_regex(const detector_t *d);
/* Does name match the detector's file-name scope (true when it has none),
 * and does no allowlist drop a file of that name whatever it holds? */
bool detector_filename_matches(const detector_t *d, const char *name, size_t n, detect_scratch_t *s);
bool detector_filename_only(const detector_t *d);

detset_t *detset_new(void);
void detset_free(detset_t *set);
/* Adds a compiled detector (the set owns it), or returns the identical
 * one already there (and frees d). Thread-safe. */
detector_t *detset_add(detset_t *set, detector_t *d);
size_t detset_count(const detset_t *set);
const detector_t *detset_get(const detset_t *set, uint32_t id);

typedef struct {
	uint32_t start, len;   /* the secret (what is redacted) */
	uint32_t mstart, mlen; /* the whole pattern match, less newlines at its ends */
	uint8_t confidence;    /* confidence_t */
} det_match_t;

#define DET_MAX_MATCHES 256 /* per detector per buffer; the count goes on */

typedef struct det_result {
	const detector_t *d;
	uint32_t count;        /* findings (validated, not allowed) */
	uint32_t at_level[CONF_LEVELS]; /* of count, how many at each confidence */
	bool timed_out;        /* the match limit stopped this detector */
	uint32_t n_matches;    /* stored, at most DET_MAX_MATCHES */
	uint64_t ns;           /* time in this detector, when the scratch profiles */
	det_match_t matches[DET_MAX_MATCHES];
} det_result_t;

detect_scratch_t *detect_scratch_new(uint32_t match_limit);
void detect_scratch_free(detect_scratch_t *s);
/* Time each detector of each scan (det_result_t.ns), and the keyword and
 * digit-run passes together (returned by detect_scratch_trigger_ns). */
void detect_scratch_profile(detect_scratch_t *s, bool on);
uint64_t detect_scratch_trigger_ns(const detect_scratch_t *s);

/* Runs the wanted detectors over buf; results[i] is for want[i]. filename
 * (may be NULL) is the name of the file the text is, for file-name
 * allowlists. Returns how many regex executions ran (stats and tests). */
size_t detset_scan(detset_t *set, detect_scratch_t *s, const uint8_t *buf, size_t len, const char *filename,
		   const detector_t *const *want, size_t n_want, det_result_t *results);
/* The same, ignoring keywords: every regex over the whole buffer (the
 * benchmark's "no prefilter" baseline, and `dlpgate scan --no-prefilter`). */
size_t detset_scan_all(detset_t *set, detect_scratch_t *s, const uint8_t *buf, size_t len, const char *filename,
		       const detector_t *const *want, size_t n_want, det_result_t *results);

/* Keeps the findings of r at min or above (count, at_level, matches). */
void det_result_keep_min(det_result_t *r, confidence_t min);
/* The highest confidence among r's findings (low when none). */
confidence_t det_result_top(const det_result_t *r);

#endif
