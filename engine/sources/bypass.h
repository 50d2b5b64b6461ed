/*
 * bypass: the static bypass table, the system extension's fast path.
 *
 * handleNewFlow is serialised and a flow it accepts can never be handed
 * back to the OS, so the flows a policy always leaves alone are better
 * recognised in the extension, before any socket to the engine exists.
 * The policy states them in a global the engine compiles to JSON:
 *
 *   static_bypass = {
 *     apple_platform = true,                -- code that satisfies "anchor apple"...
 *     except_signing_ids = {"com.apple.curl", ...},  -- ...but not these
 *     hosts = {"apple.com", "*.apple.com"}, -- host names as in dlp.host_matches
 *   }
 *
 * The extension asks for the table on a control connection (a "DLPC"
 * frame, see frame.h) and again whenever a flow reply names another
 * policy version. Matching is this file's C, which the extension
 * compiles and the Linux tests exercise against the policy's on_flow.
 */
#ifndef DLPGATE_BYPASS_H
#define DLPGATE_BYPASS_H

#include "sources/frame.h"

#include <stdbool.h>
#include <stddef.h>

#define BYPASS_MAX_ENTRIES 4096

typedef struct {
	char policy_version[64];
	bool apple_platform;
	char **except_signing_ids;
	size_t n_except;
	char **hosts;
	size_t n_hosts;
} bypass_table_t;

/* Asks the engine for its table on fd (a connected unix socket, used up)
 * and decodes the answer into t; false with err naming the problem. */
bool bypass_table_fetch(int fd, bypass_table_t *t, char *err, size_t errlen);

/* The table from its JSON; false with err naming the problem. */
bool bypass_table_decode(const char *json, size_t len, bypass_table_t *t, char *err, size_t errlen);
void bypass_table_free(bypass_table_t *t);

/* Should the extension leave this flow to the OS? The reason (for its log)
 * in why, or false: hand the flow to the engine. hostname may be NULL. */
bool bypass_table_match(const bypass_table_t *t, frame_anchor_t anchor, const char *signing_id, const char *hostname,
			char *why, size_t whylen);

#endif
