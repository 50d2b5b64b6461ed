/*
 * sync/lkg: see lkg.h.
 */
#include "sync/lkg.h"

#include "sync/bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool lkg_write_atomic(const char *path, const void *data, size_t len, int mode, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	bool ok = fd >= 0;
	for (size_t off = 0; ok && off < len;) {
		ssize_t k = write(fd, (const char *)data + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		ok = k > 0;
		off += ok ? (size_t)k : 0;
	}
	ok = ok && fsync(fd) == 0;
	int e = errno;
	if (fd >= 0)
		close(fd);
	ok = ok && rename(tmp, path) == 0;
	if (!ok) {
		e = errno ? errno : e;
		unlink(tmp);
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(e));
		return false;
	}
	snprintf(dir, sizeof dir, "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd); /* the rename itself, on stable storage */
		close(dfd);
	}
	return true;
}

bool lkg_save(const char *state_dir, const void *doc, size_t len, int64_t version, const char *activated_at,
	      char *err, size_t errlen)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/policy/lkg.dlpbundle", state_dir);
	if (!lkg_write_atomic(path, doc, len, 0600, err, errlen))
		return false;
	json_t *o = json_pack("{s:I, s:s}", "version", (json_int_t)version, "activated_at", activated_at);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	snprintf(path, sizeof path, "%s/policy/lkg.json", state_dir);
	bool ok = text && lkg_write_atomic(path, text, strlen(text), 0600, err, errlen);
	free(text);
	return ok;
}

bool lkg_load(const char *state_dir, char **doc, size_t *len, char activated_at[32], char *err, size_t errlen)
{
	*doc = NULL;
	*len = 0;
	err[0] = '\0';
	activated_at[0] = '\0';
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/policy/lkg.dlpbundle", state_dir);
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno != ENOENT)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	/* bounded like a document from the network */
	char *buf = malloc(BUNDLE_MAX_DOCUMENT + 1);
	size_t n = buf ? fread(buf, 1, BUNDLE_MAX_DOCUMENT + 1, f) : 0;
	bool bad = !buf || ferror(f) || n > BUNDLE_MAX_DOCUMENT;
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : n > BUNDLE_MAX_DOCUMENT ? "too large" : "read error");
		free(buf);
		return false;
	}
	buf[n] = '\0';
	snprintf(path, sizeof path, "%s/policy/lkg.json", state_dir);
	json_t *o = json_load_file(path, 0, NULL);
	const char *at = json_string_value(json_object_get(o, "activated_at"));
	snprintf(activated_at, 32, "%s", at ? at : "");
	json_decref(o);
	*doc = buf;
	*len = n;
	return true;
}
