/*
 * gitleaks: a gitleaks configuration (as JSON, from its TOML) to a dlpgate
 * detector pack, so a team brings the community's secret rules as they are
 * and they decide as gitleaks does.
 *
 * Each [[rules]] becomes dlp.detector{...} under its id, with gitleaks'
 * semantics spelled out in the detector's own terms:
 *  - regex, and the secret: secretGroup as `group = N`; without it, a
 *    regex with capture groups takes the first group that matched
 *    something (`group = "first"`), and entropy, stopwords and secret
 *    allowlists read that group;
 *  - entropy (the secret's must exceed it), path (the file-name scope; a
 *    rule with only a path reports the file by its name);
 *  - keywords gate the whole text (`window = "text"`), not a window;
 *  - allowlists with regexTarget (secret, match, line), regexes,
 *    stopwords, paths and condition (or, and); the global [[allowlists]]
 *    (or the older [allowlist]) are added to every rule, or to their
 *    targetRules;
 *  - an inline `gitleaks:allow` on the line of a match allows it (a line
 *    allowlist added to every rule);
 *  - a rule whose id holds "generic" gives way to the others (`generic =
 *    true`): its finding is dropped when another rule found, on the same
 *    line, a secret that holds it.
 * What cannot be expressed (commits, composite rules with [[rules.required]],
 * [extend], unknown fields, a secretGroup past the regex's groups) is
 * named on the notes stream and counted, with a comment in the pack at the
 * rule; a regex PCRE2 cannot compile leaves its rule out, with the reason.
 * Nothing is dropped silently.
 */
#ifndef DLPGATE_GITLEAKS_H
#define DLPGATE_GITLEAKS_H

#include <jansson.h>
#include <stdio.h>

typedef struct {
	int written;     /* detectors in the pack */
	int skipped;     /* rules left out (each named) */
	int unsupported; /* other constructs not imported (each named) */
} gitleaks_stats_t;

/* Writes the pack to out and a line per construct not imported to notes;
 * returns 0, or -1 with err when cfg is not a gitleaks configuration. */
int gitleaks_to_lua(const json_t *cfg, const char *source, FILE *out, FILE *notes, gitleaks_stats_t *stats,
		    char *err, size_t errlen);

#endif
