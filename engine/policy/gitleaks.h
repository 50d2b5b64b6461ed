/*
 * gitleaks: a gitleaks configuration (as JSON, from its TOML) to a dlpgate
 * detector pack, so a team brings the community's secret rules as they are.
 *
 * Each [[rules]] becomes dlp.detector{...} under its id: regex, secretGroup
 * (group), keywords, entropy, path (the file-name scope), and its
 * allowlists (regexTarget, regexes, stopwords, paths, condition). Global
 * [[allowlists]] (or the older [allowlist]) are added to every rule, or to
 * their targetRules. What has no meaning for HTTP bodies (commits) is
 * dropped with a comment; a regex PCRE2 cannot compile is left out with
 * the reason, never silently.
 */
#ifndef DLPGATE_GITLEAKS_H
#define DLPGATE_GITLEAKS_H

#include <jansson.h>
#include <stdio.h>

/* Writes the pack; returns the number of rules written, or -1 with err. */
int gitleaks_to_lua(const json_t *cfg, const char *source, FILE *out, char *err, size_t errlen);

#endif
