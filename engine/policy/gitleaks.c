#include "policy/gitleaks.h"

#include "detect/detector.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void lua_quoted(FILE *out, const char *s);

/* Does s end with "]" and then level '='? Then s followed by the closing
 * "]=...=]" would close the long string before its end. */
static bool ends_like_close(const char *s, size_t len, int level)
{
	if (len < (size_t)level + 1 || s[len - (size_t)level - 1] != ']')
		return false;
	for (size_t i = len - (size_t)level; i < len; i++)
		if (s[i] != '=')
			return false;
	return true;
}

#define LONG_STRING_MAX_LEVEL 32

/* A Lua long string that cannot be ended early by its content (regexes
 * read best without escapes); a quoted string when none will do. */
static void lua_str(FILE *out, const char *s)
{
	size_t len = strlen(s);
	int level = 0;
	char close[LONG_STRING_MAX_LEVEL + 3];
	for (; level <= LONG_STRING_MAX_LEVEL; level++) {
		close[0] = ']';
		memset(close + 1, '=', (size_t)level);
		close[level + 1] = ']';
		close[level + 2] = '\0';
		if (!strstr(s, close) && !ends_like_close(s, len, level))
			break;
	}
	/* Lua reads any line break in a long string as "\n": a carriage
	 * return would not survive it. */
	if (level > LONG_STRING_MAX_LEVEL || strchr(s, '\r')) {
		lua_quoted(out, s);
		return;
	}
	fputc('[', out);
	for (int i = 0; i < level; i++)
		fputc('=', out);
	fputc('[', out);
	/* A long string drops a first newline: keep one by adding one. */
	if (s[0] == '\n')
		fputc('\n', out);
	fputs(s, out);
	fputc(']', out);
	for (int i = 0; i < level; i++)
		fputc('=', out);
	fputc(']', out);
}

/* A quoted Lua string for short text (names, keywords, descriptions). */
static void lua_quoted(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\%03u", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* Does re compile in PCRE2? groups gets its capture count. */
static bool compiles(const char *re, uint32_t *groups, char *why, size_t n)
{
	int code;
	PCRE2_SIZE off;
	pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
	if (c) {
		if (groups)
			pcre2_pattern_info(c, PCRE2_INFO_CAPTURECOUNT, groups);
		pcre2_code_free(c);
		return true;
	}
	PCRE2_UCHAR msg[160];
	pcre2_get_error_message(code, msg, sizeof msg);
	snprintf(why, n, "at offset %zu: %s", (size_t)off, (const char *)msg);
	return false;
}

/* Text from the configuration kept as a comment in the pack: on one line
 * after sep (a line break in it would end the comment and make the rest
 * Lua code); nothing when there is none. */
static void comment(FILE *out, const char *sep, const char *text)
{
	if (!text || !*text)
		return;
	fputs(sep, out);
	for (const char *p = text; *p; p++)
		fputc(*p == '\n' || *p == '\r' ? ' ' : *p, out);
}

/* One import: where the pack and the notes go, and what was not imported. */
typedef struct {
	FILE *out, *notes;
	const char *source;
	gitleaks_stats_t *stats;
} import_t;

/* A construct that cannot be expressed: named on the notes stream and as a
 * comment in the pack, and counted. */
static void unsupported(import_t *im, const char *rule, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	im->stats->unsupported++;
	fprintf(im->notes, "dlpgate: import gitleaks %s: %s%s%snot imported: %s\n", im->source, rule ? "rule " : "",
		rule ? rule : "", rule ? ": " : "", what);
	comment(im->out, "  -- not imported: ", what);
	fputc('\n', im->out);
}

static void str_list(FILE *out, const char *key, const json_t *arr, const char *indent, bool regex)
{
	if (!json_is_array(arr) || !json_array_size(arr))
		return;
	fprintf(out, "%s%s = {", indent, key);
	size_t i;
	const json_t *v;
	bool first = true;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			continue;
		fputs(first ? "" : ", ", out);
		(regex ? lua_str : lua_quoted)(out, json_string_value(v));
		first = false;
	}
	fputs("},\n", out);
}

static bool applies(const json_t *al, const char *rule_id)
{
	const json_t *targets = json_object_get(al, "targetRules");
	if (!json_is_array(targets) || !json_array_size(targets))
		return true;
	size_t i;
	const json_t *v;
	json_array_foreach(targets, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), rule_id))
			return true;
	return false;
}

static bool nonempty(const json_t *arr)
{
	return json_is_array(arr) && json_array_size(arr) > 0;
}

/* Fields not in the list are named (a typo, or a newer gitleaks). */
static void unknown_fields(import_t *im, const char *rule, const json_t *obj, const char *where,
			   const char *const *known)
{
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		bool found = false;
		for (const char *const *p = known; *p && !found; p++)
			found = !strcmp(*p, k);
		if (!found)
			unsupported(im, rule, "%s field \"%s\" is not a gitleaks field this importer knows", where, k);
	}
}

/* Do all the regexes of arr compile in PCRE2? The first that does not is
 * named. */
static bool regexes_compile(import_t *im, const char *rule, const json_t *arr, const char *what)
{
	size_t i;
	const json_t *v;
	json_array_foreach(arr, i, v) {
		char why[200];
		if (json_is_string(v) && !compiles(json_string_value(v), NULL, why, sizeof why)) {
			unsupported(im, rule, "allowlist %s %zu does not compile in PCRE2 %s: allowlist left out", what, i + 1,
				    why);
			return false;
		}
	}
	return true;
}

/* The keywords a detector takes (1 to 255 bytes); the others are named. */
static json_t *usable_keywords(import_t *im, const char *rule, const json_t *arr)
{
	json_t *ok = json_array();
	size_t i;
	const json_t *v;
	json_array_foreach(arr, i, v) {
		size_t n = json_is_string(v) ? strlen(json_string_value(v)) : 0;
		if (n >= 1 && n <= 255)
			json_array_append(ok, (json_t *)v);
		else
			unsupported(im, rule, "keyword %zu is not a string of 1 to 255 bytes: left out", i + 1);
	}
	return ok;
}

/* One allowlist table. Commits have no meaning for what dlpgate scans: an
 * `or` allowlist loses them (they never match here either), an `and` one
 * can never hold and is left out. false when nothing of it is written. */
static bool allowlist(import_t *im, const char *rule, const json_t *al, bool global)
{
	static const char *const known[] = {"description", "condition", "commits", "paths", "regexTarget",
					    "regexes", "stopwords", "targetRules", NULL};
	unknown_fields(im, rule, al, global ? "global allowlist" : "allowlist", known);
	const json_t *regexes = json_object_get(al, "regexes");
	const json_t *stop = json_object_get(al, "stopwords");
	const json_t *paths = json_object_get(al, "paths");
	const char *cond = json_string_value(json_object_get(al, "condition"));
	bool all = false;
	if (cond && (!strcasecmp(cond, "AND") || !strcmp(cond, "&&")))
		all = true;
	else if (cond && *cond && strcasecmp(cond, "OR") && strcmp(cond, "||")) {
		unsupported(im, rule, "allowlist condition \"%s\" is neither AND nor OR (gitleaks refuses it): allowlist "
				      "left out",
			    cond);
		return false;
	}
	const char *target = json_string_value(json_object_get(al, "regexTarget"));
	if (target && *target && strcmp(target, "secret") && strcmp(target, "match") && strcmp(target, "line")) {
		unsupported(im, rule, "allowlist regexTarget \"%s\" is not secret, match or line (gitleaks refuses it): "
				      "allowlist left out",
			    target);
		return false;
	}
	if (nonempty(json_object_get(al, "commits"))) {
		if (all) {
			unsupported(im, rule, "an AND allowlist with commits never holds outside git history: left out");
			return false;
		}
		unsupported(im, rule, "allowlist commits have no meaning outside git history: the rest of it is kept");
	}
	if (!nonempty(regexes) && !nonempty(stop) && !nonempty(paths))
		return false;
	/* Left out whole rather than weakened: an `and` allowlist without one
	 * of its regexes would allow more than it says. */
	if (!regexes_compile(im, rule, regexes, "regex") || !regexes_compile(im, rule, paths, "path"))
		return false;
	fprintf(im->out, "    {%s", global ? " -- global allowlist" : "");
	comment(im->out, global ? ": " : " -- ", json_string_value(json_object_get(al, "description")));
	fputc('\n', im->out);
	str_list(im->out, "regexes", regexes, "      ", true);
	str_list(im->out, "stopwords", stop, "      ", false);
	str_list(im->out, "filenames", paths, "      ", true);
	if (target && (!strcmp(target, "match") || !strcmp(target, "line")))
		fprintf(im->out, "      target = \"%s\",\n", target);
	if (all)
		fputs("      condition = \"and\",\n", im->out);
	fputs("    },\n", im->out);
	return true;
}

static const json_t *global_allowlists(const json_t *cfg, json_t **owned)
{
	*owned = NULL;
	const json_t *list = json_object_get(cfg, "allowlists");
	if (json_is_array(list))
		return list;
	const json_t *one = json_object_get(cfg, "allowlist"); /* gitleaks < 8.25 */
	if (json_is_object(one)) {
		*owned = json_array();
		json_array_append(*owned, (json_t *)one);
		return *owned;
	}
	return NULL;
}

/* The rule's own allowlists, the global ones for it, and the inline
 * `gitleaks:allow` marker, within the detector's limit. */
static void rule_allowlists(import_t *im, const char *id, const json_t *r, const json_t *globals, bool has_regex)
{
	json_t *list = json_array();
	const json_t *own = json_object_get(r, "allowlists");
	const json_t *old = json_object_get(r, "allowlist");
	if (json_is_array(own))
		json_array_extend(list, (json_t *)own);
	if (json_is_object(old))
		json_array_append(list, (json_t *)old);
	size_t n_own = json_array_size(list), k;
	const json_t *al;
	json_array_foreach(globals, k, al)
		if (json_is_object(al) && applies(al, id))
			json_array_append(list, (json_t *)al);
	fputs("  allow = {\n", im->out);
	int written = 0;
	if (has_regex) {
		fputs("    { regexes = {[[gitleaks:allow]]}, target = \"line\" }, -- the inline marker\n", im->out);
		written++;
	}
	json_array_foreach(list, k, al) {
		if (!json_is_object(al))
			continue;
		if (written == DETECTOR_MAX_ALLOW) {
			unsupported(im, id, "more than %d allowlists (with the inline marker): the %zu after it are left out",
				    DETECTOR_MAX_ALLOW, json_array_size(list) - k);
			break;
		}
		written += allowlist(im, id, al, k >= n_own);
	}
	fputs("  },\n", im->out);
	json_decref(list);
}

/* A global allowlist's targetRules must name rules (gitleaks refuses the
 * configuration otherwise); a missing one is named. */
static void check_targets(import_t *im, const json_t *rules, const json_t *globals)
{
	size_t k, t, i;
	const json_t *al, *target, *r;
	json_array_foreach(globals, k, al) {
		json_array_foreach(json_object_get(al, "targetRules"), t, target) {
			const char *want = json_string_value(target);
			bool found = false;
			json_array_foreach(rules, i, r) {
				const char *id = json_string_value(json_object_get(r, "id"));
				found |= id && want && !strcmp(id, want);
			}
			if (!found)
				unsupported(im, NULL, "a global allowlist targets rule \"%s\", which is not in the configuration",
					    want ? want : "(not a string)");
		}
	}
}

static void skip_rule(import_t *im, const char *id, size_t index, const char *fmt, const char *why)
{
	char label[160];
	if (id && *id)
		snprintf(label, sizeof label, "%s", id);
	else
		snprintf(label, sizeof label, "#%zu", index + 1);
	im->stats->skipped++;
	char reason[400], line[600];
	snprintf(reason, sizeof reason, fmt, why);
	snprintf(line, sizeof line, "rule %s skipped: %s", label, reason);
	comment(im->out, "-- ", line);
	fputs("\n\n", im->out);
	fprintf(im->notes, "dlpgate: import gitleaks %s: rule %s skipped: ", im->source, label);
	fprintf(im->notes, fmt, why);
	fputc('\n', im->notes);
}

static void rule(import_t *im, const json_t *r, size_t index, const json_t *globals)
{
	static const char *const known[] = {"id", "description", "regex", "secretGroup", "entropy", "keywords",
					    "path", "tags", "allowlist", "allowlists", "required", "skipReport", NULL};
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *regex = json_string_value(json_object_get(r, "regex"));
	const char *path = json_string_value(json_object_get(r, "path"));
	if (!id || !*id || (!regex && !path)) {
		skip_rule(im, id, index, "%s", "it needs an id and a regex or a path");
		return;
	}
	if (json_is_true(json_object_get(r, "skipReport"))) {
		skip_rule(im, id, index, "%s", "skipReport: it only serves composite rules, which are not imported");
		return;
	}
	char why[200];
	uint32_t groups = 0;
	if ((regex && !compiles(regex, &groups, why, sizeof why)) || (path && !compiles(path, NULL, why, sizeof why))) {
		skip_rule(im, id, index, "its regex does not compile in PCRE2 %s", why);
		return;
	}
	const json_t *g = json_object_get(r, "secretGroup");
	json_int_t group = json_is_integer(g) ? json_integer_value(g) : 0;
	if (regex && (group < 0 || group > (json_int_t)groups || group >= DET_MAX_GROUPS)) {
		snprintf(why, sizeof why, "secretGroup %lld but the regex has %u capture groups", (long long)group, groups);
		skip_rule(im, id, index, "%s", why);
		return;
	}
	fputs("M[", im->out);
	lua_quoted(im->out, id);
	fputs("] = dlp.detector{\n  name = ", im->out);
	lua_quoted(im->out, id);
	fputs(",\n", im->out);
	unknown_fields(im, id, r, "rule", known);
	const char *desc = json_string_value(json_object_get(r, "description"));
	if (desc) {
		fputs("  description = ", im->out);
		lua_quoted(im->out, desc);
		fputs(",\n", im->out);
	}
	const json_t *tags = json_object_get(r, "tags");
	if (nonempty(tags)) {
		fputs("  -- tags:", im->out);
		size_t i;
		const json_t *t;
		json_array_foreach(tags, i, t)
			if (json_is_string(t))
				comment(im->out, " ", json_string_value(t));
		fputc('\n', im->out);
	}
	if (nonempty(json_object_get(r, "required")))
		unsupported(im, id, "[[rules.required]] (a composite rule) is not supported: the rule reports on its own, "
				    "without the rules it requires nearby");
	if (regex) {
		fputs("  regex = ", im->out);
		lua_str(im->out, regex);
		fputs(",\n", im->out);
		if (group > 0)
			fprintf(im->out, "  group = %lld,\n", (long long)group);
		else if (groups > 0)
			fputs("  group = \"first\",\n", im->out);
		if (!group && groups >= DET_MAX_GROUPS)
			unsupported(im, id, "the secret is looked for in the first %d of the regex's %u capture groups only",
				    DET_MAX_GROUPS - 1, groups);
	}
	if (path) {
		fputs("  filename = ", im->out);
		lua_str(im->out, path);
		fputs(",\n", im->out);
	}
	json_t *kw = usable_keywords(im, id, json_object_get(r, "keywords"));
	str_list(im->out, "keywords", kw, "  ", false);
	if (regex && nonempty(kw))
		fputs("  window = \"text\",\n", im->out);
	json_decref(kw);
	const json_t *e = json_object_get(r, "entropy");
	if (json_is_number(e) && json_number_value(e) > 0)
		fprintf(im->out, "  entropy = %.17g,\n", json_number_value(e));
	if (regex && strcasestr(id, "generic")) /* gitleaks' test for a rule that gives way */
		fputs("  generic = true,\n", im->out);
	fputs("  severity = \"high\",\n", im->out);
	rule_allowlists(im, id, r, globals, regex != NULL);
	fputs("}\n\n", im->out);
	im->stats->written++;
}

/* Does a rule after rules[i] have its id? (gitleaks keeps rules in a map
 * by id: the last definition is the rule.) */
static bool defined_again(const json_t *rules, size_t i)
{
	const char *id = json_string_value(json_object_get(json_array_get(rules, i), "id"));
	for (size_t k = i + 1; id && k < json_array_size(rules); k++) {
		const char *other = json_string_value(json_object_get(json_array_get(rules, k), "id"));
		if (other && !strcmp(other, id))
			return true;
	}
	return false;
}

int gitleaks_to_lua(const json_t *cfg, const char *source, FILE *out, FILE *notes, gitleaks_stats_t *stats,
		    char *err, size_t n)
{
	const json_t *rules = json_object_get(cfg, "rules");
	if (!json_is_array(rules)) {
		snprintf(err, n, "%s: no [[rules]]: not a gitleaks configuration", source);
		return -1;
	}
	*stats = (gitleaks_stats_t){0};
	import_t im = {out, notes, source, stats};
	json_t *owned;
	const json_t *globals = global_allowlists(cfg, &owned);
	const char *title = json_string_value(json_object_get(cfg, "title"));
	comment(out, "-- Detector pack generated by `dlpgate import gitleaks ", source);
	fputc('`', out);
	if (title) {
		comment(out, " from \"", title);
		fputc('"', out);
	}
	fputs(".\n-- Detector names are the gitleaks rule ids. Edit the source and import again\n"
	      "-- rather than editing this file.\n",
	      out);
	static const char *const header[][2] = {{"description", "-- "}, {"minVersion", "-- minVersion: "}};
	for (size_t h = 0; h < 2; h++) {
		const char *text = json_string_value(json_object_get(cfg, header[h][0]));
		if (text && *text) {
			comment(out, header[h][1], text);
			fputc('\n', out);
		}
	}
	/* Not in any configuration, so said once per import: what the gitleaks
	 * command does beyond its rules, and where PCRE2 reads differently. */
	static const char differences[] =
		"the gitleaks command also decodes base64, hex and percent-encoded text (5 levels by default) and scans "
		"the result, which a pack does not; its regexes read UTF-8 characters where dlpgate's read bytes, which "
		"can differ on non-ASCII text";
	fprintf(out, "-- Unlike gitleaks: %s.\n", differences);
	fprintf(notes, "dlpgate: import gitleaks %s: note: %s\n", source, differences);
	static const char *const known[] = {"title", "description", "extend", "rules", "allowlist", "allowlists",
					    "minVersion", NULL};
	unknown_fields(&im, NULL, cfg, "top-level", known);
	if (json_is_object(json_object_get(cfg, "extend")))
		unsupported(&im, NULL, "[extend] is not followed: import the configuration it extends as well");
	check_targets(&im, rules, globals);
	fputs("local dlp = require \"dlp\"\nlocal M = {}\n\n", out);
	size_t i;
	const json_t *r;
	json_array_foreach(rules, i, r) {
		if (!json_is_object(r))
			skip_rule(&im, NULL, i, "%s", "it is not a table");
		else if (defined_again(rules, i))
			skip_rule(&im, json_string_value(json_object_get(r, "id")), i, "%s",
				  "its id is defined again further on, and gitleaks keeps the last definition");
		else
			rule(&im, r, i, globals);
	}
	fputs("return M\n", out);
	json_decref(owned);
	return 0;
}
