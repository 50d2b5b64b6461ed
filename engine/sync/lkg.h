/*
 * sync/lkg: the last known good bundle, STATE/policy/lkg.dlpbundle (the
 * signed document exactly as it came) and lkg.json (its version and when it
 * was activated). Written after a bundle was swapped in: temporary file,
 * fsync, rename, fsync of the folder, so a crash leaves the old pair or the
 * new one. Read at start and verified again before it runs (a file on disk
 * is input like any other).
 */
#ifndef DLPGATE_SYNC_LKG_H
#define DLPGATE_SYNC_LKG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool lkg_save(const char *state_dir, const void *doc, size_t len, int64_t version, const char *activated_at,
	      char *err, size_t errlen);
/* false when there is none (err "") or it cannot be read (err says why).
 * *doc is malloc'd. */
bool lkg_load(const char *state_dir, char **doc, size_t *len, char activated_at[32], char *err, size_t errlen);

/* Writes data to path through path.tmp, fsync, rename, fsync of the
 * folder; mode for a new file. Shared with the trusted key list. */
bool lkg_write_atomic(const char *path, const void *data, size_t len, int mode, char *err, size_t errlen);

#endif
