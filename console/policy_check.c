/*
 * policy_check: "does this bundle compile and pass its tests?", answered by
 * the engine's own code through bundle_policy_load (the same compile and
 * `dlpgate test` the agent runs at activation), so the console refuses
 * exactly what an agent would refuse, before anything is stored.
 *
 * Each run extracts into a fresh private temp dir, removed afterwards. A
 * bundle made from a directory may lean on the shipped packs (require
 * "pii" served from rules/): those the compiled policy read are folded into
 * the bundle, and the bundle is then compiled and tested again, so what is
 * stored and signed is exactly what was tested, and runs the same on an
 * agent whose rules/ differ.
 */
#include "policy.h"

#include "sync/bundle_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool policy_parse_test_output(const char *text, json_t *failures)
{
	bool any = false;
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		if (n > 4 && strncmp(p, "FAIL", 4) == 0) {
			const char *what = p + 4;
			while (what < p + n && *what == ' ')
				what++;
			any = true;
			char line[1024];
			size_t len = (size_t)(p + n - what);
			snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), what);
			if (json_array_size(failures) < POLICY_MAX_FAILURES)
				json_array_append_new(failures, json_string(line));
		}
		p += n + (p[n] == '\n');
	}
	return any;
}

/* One compile-and-test in dir; the policy (caller unrefs) or NULL with
 * the failures in out. */
static compiled_policy_t *run_once(const bundle_t *b, const char *dir, policy_check_t *out)
{
	bundle_tests_t t;
	char err[1024] = "";
	compiled_policy_t *p = bundle_policy_load(b, dir, 1, &t, err, sizeof err);
	out->passed = t.passed;
	out->failed = t.failed;
	json_array_clear(out->failures);
	if (!p) {
		/* the failing cases by name, or why nothing could run */
		if (!t.failed || !t.output || !policy_parse_test_output(t.output, out->failures))
			json_array_append_new(out->failures, json_string(err[0] ? err : "the bundle does not compile"));
	}
	bundle_tests_free(&t);
	return p;
}

bool policy_check_bundle(bundle_t *b, bool include_shipped, policy_check_t *out)
{
	memset(out, 0, sizeof *out);
	out->failures = json_array();
	const char *tmp = getenv("TMPDIR");
	char root[4096], dir[4096 + 16], err[1024];
	snprintf(root, sizeof root, "%s/dlpgate-check-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		snprintf(err, sizeof err, "cannot make a temp dir under %s: %s", tmp && *tmp ? tmp : "/tmp", strerror(errno));
		json_array_append_new(out->failures, json_string(err));
		return false;
	}
	snprintf(dir, sizeof dir, "%s/1", root);
	compiled_policy_t *p = run_once(b, dir, out);
	int added = 0;
	if (p && include_shipped) {
		added = bundle_policy_include_shipped(b, p, err, sizeof err);
		if (added < 0)
			json_array_append_new(out->failures, json_string(err));
	}
	if (p && added > 0) {
		policy_unref(p);
		snprintf(dir, sizeof dir, "%s/2", root);
		p = run_once(b, dir, out);
	}
	bool ok = p != NULL && added >= 0;
	policy_unref(p);
	bundle_policy_remove_dir(root);
	return ok;
}
