/*
 * sync/status: what policy the agent runs and why, kept where a command
 * can read it without the agent (STATE/policy/status.json) and pushed into
 * report for the console. Written by the main thread at start and by the
 * sync thread after; a lock keeps two writers from interleaving the file.
 */
#include "sync/sync.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;
static char status_dir[600];

void sync_now_rfc3339(char out[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char day[24];
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%.19s.%03uZ", day, (unsigned)(ts.tv_nsec / 1000000) % 1000);
}

void sync_status_init(const char *state_dir)
{
	snprintf(status_dir, sizeof status_dir, "%s/policy", state_dir);
	mkdir(status_dir, 0700);
}

static json_t *record_json(const sync_status_t *s)
{
	json_t *o = report_policy_json(s, false);
	json_object_set_new(o, "failed_version", s->failed_version > 0 ? json_integer(s->failed_version) : json_null());
	return o;
}

void sync_status_publish(const sync_status_t *s)
{
	report_set_policy(s);
	if (!status_dir[0])
		return;
	char path[700], tmp[720];
	snprintf(path, sizeof path, "%s/status.json", status_dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	json_t *o = record_json(s);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	pthread_mutex_lock(&status_lock);
	int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
	size_t n = text ? strlen(text) : 0;
	bool ok = fd >= 0 && write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
	if (fd >= 0)
		close(fd);
	ok = ok && rename(tmp, path) == 0;
	pthread_mutex_unlock(&status_lock);
	if (!ok)
		log_msg(LOG_WARN, "policy_status", "%s: cannot write: %s (`dlpgate policy status` shows an older state)",
			path, strerror(errno));
	free(text);
}

static int64_t int_field(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void str_field(json_t *o, const char *k, char *out, size_t n)
{
	const char *v = json_string_value(json_object_get(o, k));
	snprintf(out, n, "%s", v ? v : "");
}

bool sync_status_read(const char *state_dir, sync_status_t *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	char path[700];
	snprintf(path, sizeof path, "%s/policy/status.json", state_dir);
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je);
	if (!o) {
		if (access(path, F_OK) != 0)
			snprintf(err, errlen, "%s: no policy status: no agent has run with --state-dir %s", path, state_dir);
		else
			snprintf(err, errlen, "%s: %s", path, je.text);
		return false;
	}
	s->version = int_field(o, "version");
	s->shadow_version = int_field(o, "shadow_version");
	s->failed_version = int_field(o, "failed_version");
	str_field(o, "source", s->source, sizeof s->source);
	str_field(o, "activated_at", s->activated_at, sizeof s->activated_at);
	str_field(o, "last_error", s->last_error, sizeof s->last_error);
	json_decref(o);
	if (!s->source[0]) {
		snprintf(err, errlen, "%s: no \"source\": not a policy status file", path);
		return false;
	}
	return true;
}
