/*
 * report: the process's one reporter (see report.h for the rules): the
 * agent identity file, the stderr fallback, counters, and the uploader
 * thread that moves the spool to the console.
 *
 * The thread's loop is a small scheduler over four deadlines (next upload
 * attempt, next status, next fsync, batch age) and sleeps on a condition
 * variable until the nearest one, or until a writer signals that a full
 * batch is waiting, or until the stop.
 */
#include "report/report.h"

#include "core/log.h"
#include "core/platform.h"
#include "report/event.h"
#include "report/spool.h"
#include "report/upload.h"
#include "sync/bundle.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LAST_ERRORS 8

static struct {
	bool started;
	config_t cfg;              /* the report.* values, copied at start */
	char agent_id[EVENT_ID_LEN];
	char token[80];            /* the uploader thread's alone once it runs */
	char id_path[600];
	char console[512];
	char enroll_secret[256];
	spool_t *spool;
	upload_t *up;
	pthread_t thread;
	pthread_mutex_t lock;      /* stopping, policy_version, last_errors */
	pthread_cond_t wake;
	bool stopping;
	uint32_t flush_ms;      /* how long the stopping uploader keeps going (under lock) */
	char policy_version[48];
	char last_errors[LAST_ERRORS][256];
	unsigned n_errors;
	atomic_uint_fast64_t counters[REPORT_N_COUNTERS];
	atomic_uint since_read;    /* appends since the uploader last read */
	atomic_int link;           /* report_link_t */
	atomic_uint_fast64_t last_ok_unix_ms;
	char *labels_json;         /* sent at enrollment, NULL: none */
	char pin_path[600];        /* STATE/bundle-keys, "" with --bundle-keys */
	report_policy_t policy;    /* under lock; pushed by policy sync */
	bool have_policy;
	atomic_uint_fast64_t shadow_evaluated, shadow_changed;
} R = {.agent_id = "00000000-0000-4000-8000-000000000000"};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *report_agent_id(void)
{
	return R.agent_id;
}

const char *report_link_name(report_link_t l)
{
	static const char *const names[] = {"none", "enrolling", "pending", "up", "failing"};
	return l >= 0 && l <= REPORT_LINK_FAILING ? names[l] : "?";
}

void report_snapshot(report_snapshot_t *s)
{
	memset(s, 0, sizeof *s);
	s->link = (report_link_t)atomic_load(&R.link);
	s->console = R.console;
	s->last_ok_unix_ms = atomic_load(&R.last_ok_unix_ms);
	for (int i = 0; i < REPORT_N_COUNTERS; i++)
		s->counters[i] = atomic_load(&R.counters[i]);
	pthread_mutex_lock(&R.lock);
	snprintf(s->policy_version, sizeof s->policy_version, "%s", R.policy_version);
	if (R.spool)
		spool_stats(R.spool, &s->spool);
	pthread_mutex_unlock(&R.lock);
}

void report_count(report_counter_t c)
{
	atomic_fetch_add_explicit(&R.counters[c], 1, memory_order_relaxed);
}

void report_set_policy_version(const char *v)
{
	pthread_mutex_lock(&R.lock);
	snprintf(R.policy_version, sizeof R.policy_version, "%s", v);
	pthread_mutex_unlock(&R.lock);
}

void report_set_policy(const report_policy_t *p)
{
	pthread_mutex_lock(&R.lock);
	R.policy = *p;
	R.have_policy = true;
	pthread_mutex_unlock(&R.lock);
}

void report_count_shadow(bool changed)
{
	atomic_fetch_add_explicit(&R.shadow_evaluated, 1, memory_order_relaxed);
	if (changed)
		atomic_fetch_add_explicit(&R.shadow_changed, 1, memory_order_relaxed);
}

void report_shadow_counts(uint64_t *evaluated, uint64_t *changed)
{
	*evaluated = atomic_load(&R.shadow_evaluated);
	*changed = atomic_load(&R.shadow_changed);
}

/* The uploader thread is the only writer of R.token and writes it under
 * the lock; other threads read it under the lock. */
bool report_token(char *out, size_t n)
{
	pthread_mutex_lock(&R.lock);
	bool have = R.token[0] != '\0' && strlen(R.token) < n;
	snprintf(out, n, "%s", have ? R.token : "");
	pthread_mutex_unlock(&R.lock);
	return have;
}

static void set_token(const char *t)
{
	pthread_mutex_lock(&R.lock);
	snprintf(R.token, sizeof R.token, "%s", t);
	pthread_mutex_unlock(&R.lock);
}

#define LABELS_MAX 32
#define LABEL_KEY_MAX 63
#define LABEL_VALUE_MAX 128

static bool label_key_ok(const char *k, size_t n)
{
	if (n < 1 || n > LABEL_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '.' ||
		      k[i] == '-'))
			return false;
	return true;
}

char *report_labels_parse(const char *text, char *err, size_t errlen)
{
	json_t *o = json_object();
	const char *p = text;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		char *bad = NULL;
		if (!eq || !label_key_ok(p, (size_t)(eq - p)))
			bad = "each label is key=value with a key of 1 to 63 of a-z 0-9 _ . -";
		else if (len - (size_t)(eq - p) - 1 > LABEL_VALUE_MAX)
			bad = "a value is at most 128 bytes";
		else if (json_object_size(o) >= LABELS_MAX)
			bad = "at most 32 labels";
		json_t *v = bad ? NULL : json_stringn(eq + 1, len - (size_t)(eq - p) - 1);
		if (!bad && !v)
			bad = "a value must be UTF-8";
		if (bad) {
			snprintf(err, errlen, "--labels: \"%.*s\": %s", (int)(len < 80 ? len : 80), p, bad);
			json_decref(o);
			return NULL;
		}
		char key[LABEL_KEY_MAX + 1];
		snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
		if (json_object_get(o, key)) {
			snprintf(err, errlen, "--labels: %s given twice", key);
			json_decref(v);
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, key, v);
		p += len + (end ? 1 : 0);
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (!s)
		snprintf(err, errlen, "out of memory");
	return s;
}

bool report_want_flow_event(bool inspected)
{
	uint32_t pct = R.cfg.flow_sample_percent;
	if (R.cfg.flow_events == FLOW_EVENTS_OFF || (inspected && R.cfg.flow_events != FLOW_EVENTS_ALL) || !pct)
		return false;
	if (pct >= 100)
		return true;
	uint32_t r;
	RAND_bytes((unsigned char *)&r, sizeof r);
	return r % 100 < pct;
}

static void remember_error(const char *what)
{
	pthread_mutex_lock(&R.lock);
	snprintf(R.last_errors[R.n_errors++ % LAST_ERRORS], sizeof R.last_errors[0], "%.255s", what);
	pthread_mutex_unlock(&R.lock);
}

void report_submit(const char *json, size_t len, const spool_drops_t *carried)
{
	if (!R.spool) {
		/* No console: one write per event, so lines never interleave. */
		struct iovec iov[2] = {{(void *)json, len}, {"\n", 1}};
		while (writev(STDERR_FILENO, iov, 2) < 0 && errno == EINTR)
			;
		return;
	}
	spool_append_drops(R.spool, json, len, carried);
	/* Wake the uploader for the first event after it read (so the batch
	 * clock starts now) and when a batch is full. */
	unsigned before = atomic_fetch_add(&R.since_read, 1);
	if (before == 0 || before + 1 == R.cfg.batch_max_events) {
		pthread_mutex_lock(&R.lock);
		pthread_cond_signal(&R.wake);
		pthread_mutex_unlock(&R.lock);
	}
}

/* ---- the identity file ---- */

static bool save_identity(char *err, size_t errlen)
{
	json_t *o = json_pack("{s:s}", "agent_id", R.agent_id);
	if (R.token[0]) {
		json_object_set_new(o, "console", json_string(R.console));
		json_object_set_new(o, "token", json_string(R.token));
	}
	char tmp[640];
	snprintf(tmp, sizeof tmp, "%s.tmp", R.id_path);
	mode_t old = umask(0177);
	int rc = json_dump_file(o, tmp, JSON_INDENT(2));
	umask(old);
	json_decref(o);
	if (rc != 0 || chmod(tmp, 0600) != 0 || rename(tmp, R.id_path) != 0) {
		snprintf(err, errlen, "%s: cannot write: %s", R.id_path, strerror(errno));
		return false;
	}
	return true;
}

static bool load_identity(char *err, size_t errlen)
{
	json_error_t je;
	json_t *o = json_load_file(R.id_path, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		if (access(R.id_path, F_OK) == 0) {
			snprintf(err, errlen, "%s: %s (remove it to make a new agent identity)", R.id_path, je.text);
			return false;
		}
		event_new_id(R.agent_id);
		return save_identity(err, errlen);
	}
	const char *id = json_string_value(json_object_get(o, "agent_id"));
	const char *console = json_string_value(json_object_get(o, "console"));
	const char *token = json_string_value(json_object_get(o, "token"));
	bool ok = id && strlen(id) == EVENT_ID_LEN - 1;
	if (ok) {
		memcpy(R.agent_id, id, EVENT_ID_LEN);
		/* A token is for the console that issued it. */
		if (token && console && !strcmp(console, R.console) && strlen(token) < sizeof R.token)
			set_token(token);
	} else {
		snprintf(err, errlen, "%s: no valid agent_id (remove the file to make a new agent identity)", R.id_path);
	}
	json_decref(o);
	return ok;
}

/* ---- the uploader thread ---- */

typedef struct {
	uint64_t next_try;         /* backoff / Retry-After */
	uint64_t next_status;
	uint64_t next_sync;
	uint64_t batch_since;      /* when the spool was first seen non-empty */
	bool pending;              /* the spool held events at the last look */
	uint64_t rate_next;        /* drain rate cap */
	unsigned failures;
	uint32_t batch_limit;      /* shrinks to isolate a refused record */
} sched_t;

static void backoff(sched_t *s, uint64_t now, long retry_after_s)
{
	s->failures++;
	report_count(REPORT_UPLOAD_FAILURES);
	uint64_t ms;
	if (retry_after_s > 0) {
		ms = (uint64_t)(retry_after_s < 3600 ? retry_after_s : 3600) * 1000;
	} else {
		uint64_t cap = (uint64_t)R.cfg.retry_max_s * 1000;
		ms = s->failures < 20 ? 1000ull << (s->failures - 1) : cap;
		if (ms > cap)
			ms = cap;
		uint32_t r;
		RAND_bytes((unsigned char *)&r, sizeof r);
		ms = ms / 2 + r % (ms / 2 + 1); /* jitter: many agents must not retry in step */
	}
	s->next_try = now + ms;
}

static void link_up(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	atomic_store(&R.last_ok_unix_ms, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	atomic_store(&R.link, REPORT_LINK_UP);
}

static void fail(sched_t *s, uint64_t now, const upload_result_t *r, const char *what)
{
	atomic_store(&R.link, R.token[0] ? REPORT_LINK_FAILING : REPORT_LINK_ENROLLING);
	char line[300];
	snprintf(line, sizeof line, "%s: %s", what, r->detail);
	remember_error(line);
	log_msg(LOG_WARN, "upload_failed", "%s (attempt %u; events stay in the spool)", line, s->failures + 1);
	backoff(s, now, r->retry_after_s);
}

/* The console's bundle keys, learnt over the TLS connection verified with
 * --console-ca, are pinned once: a later enrollment (a console that was
 * taken over, say) cannot change whom this agent trusts; only a bundle
 * signed by a pinned key can (rotation, in policy sync). */
static void pin_bundle_keys(const char *keys)
{
	if (!R.pin_path[0])
		return;
	if (access(R.pin_path, F_OK) == 0) {
		log_msg(LOG_DEBUG, "bundle_keys", "%s is pinned: the enrollment's key list is not used", R.pin_path);
		return;
	}
	bundle_keyset_t ks;
	char err[300];
	if (!keys || !bundle_keys_parse(keys, &ks, err, sizeof err) || !ks.n) {
		log_msg(LOG_ERROR, "bundle_keys",
			"the console's enrollment answer has no usable bundle_keys (%s): no console bundle can be "
			"trusted until it has, or --bundle-keys FILE names the keys",
			keys ? err : "none given");
		return;
	}
	char tmp[640];
	snprintf(tmp, sizeof tmp, "%s.tmp", R.pin_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t n = strlen(keys);
	bool ok = fd >= 0 && write(fd, keys, n) == (ssize_t)n && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	/* link(2), not rename: it fails if a list appeared meanwhile */
	ok = ok && link(tmp, R.pin_path) == 0;
	unlink(tmp);
	if (!ok)
		log_msg(LOG_ERROR, "bundle_keys", "%s: cannot pin the console's bundle keys: %s", R.pin_path,
			strerror(errno));
	else
		log_msg(LOG_INFO, "bundle_keys", "pinned %zu bundle key(s) from the console in %s", ks.n, R.pin_path);
}

static bool enroll(sched_t *s, uint64_t now)
{
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "enroll_secret", R.enroll_secret, "agent_id", R.agent_id,
			      "hostname", host, "version", DLPGATE_VERSION);
	if (R.labels_json)
		json_object_set_new(o, "labels", json_loads(R.labels_json, 0, NULL));
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	upload_result_t r;
	upload_json(R.up, "/api/v1/enroll", NULL, body, &r);
	free(body);
	bool ok = false;
	if (r.status == 200 && r.body) {
		json_t *a = json_loads(r.body, 0, NULL);
		const char *token = json_string_value(json_object_get(a, "token"));
		const char *id = json_string_value(json_object_get(a, "agent_id"));
		if (token && strlen(token) < sizeof R.token && id && !strcmp(id, R.agent_id)) {
			set_token(token);
			pin_bundle_keys(json_string_value(json_object_get(a, "bundle_keys")));
			char err[700];
			if (!save_identity(err, sizeof err))
				log_msg(LOG_ERROR, "enroll", "%s (the token is kept in memory only)", err);
			log_msg(LOG_INFO, "enrolled", "agent %s enrolled with %s", R.agent_id, R.console);
			link_up();
			s->failures = 0;
			ok = true;
		} else {
			snprintf(r.detail, sizeof r.detail, "enrollment answer without a token for agent %s", R.agent_id);
		}
		json_decref(a);
	}
	if (!ok) {
		if (r.status == 401)
			snprintf(r.detail, sizeof r.detail, "the console refused the enroll secret (check --enroll-secret)");
		fail(s, now, &r, "enroll");
	}
	upload_result_free(&r);
	return ok;
}

static json_t *int_or_null(int64_t v)
{
	return v > 0 ? json_integer((json_int_t)v) : json_null();
}

static json_t *str_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

json_t *report_policy_json(const report_policy_t *p, bool with_counts)
{
	json_t *o = json_pack("{s:o, s:s, s:o, s:o, s:o}", "version", int_or_null(p->version), "source", p->source,
			      "activated_at", str_or_null(p->activated_at), "shadow_version",
			      int_or_null(p->shadow_version), "last_error", str_or_null(p->last_error));
	if (with_counts) {
		json_object_set_new(o, "failed_version", int_or_null(p->failed_version));
		json_object_set_new(o, "shadow_evaluated", json_integer((json_int_t)atomic_load(&R.shadow_evaluated)));
		json_object_set_new(o, "shadow_changed", json_integer((json_int_t)atomic_load(&R.shadow_changed)));
	}
	return o;
}

static void post_status(sched_t *s, uint64_t now)
{
	spool_stats_t st;
	spool_stats(R.spool, &st);
	static const char *const names[REPORT_N_COUNTERS] = {
		"flows", "inspect", "bypass", "pass", "redact", "block", "monitor", "policy_errors", "uploaded",
		"upload_failures"};
	json_t *c = json_object();
	for (int i = 0; i < REPORT_N_COUNTERS; i++)
		json_object_set_new(c, names[i], json_integer((json_int_t)atomic_load(&R.counters[i])));
	json_object_set_new(c, "spool_depth", json_integer((json_int_t)st.depth));
	json_object_set_new(c, "spool_bytes", json_integer((json_int_t)st.bytes));
	json_object_set_new(c, "dropped_spool_full", json_integer((json_int_t)st.dropped.full));
	json_object_set_new(c, "dropped_corrupt", json_integer((json_int_t)st.dropped.corrupt));
	json_object_set_new(c, "dropped_rejected", json_integer((json_int_t)st.dropped.rejected));
	json_object_set_new(c, "dropped_write_error", json_integer((json_int_t)st.dropped.write_error));
	json_t *errs = json_array();
	pthread_mutex_lock(&R.lock);
	for (unsigned i = R.n_errors > LAST_ERRORS ? R.n_errors - LAST_ERRORS : 0; i < R.n_errors; i++)
		json_array_append_new(errs, json_string(R.last_errors[i % LAST_ERRORS]));
	json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o}", "agent_id", R.agent_id, "version", DLPGATE_VERSION,
			      "policy_version", R.policy_version, "counters", c, "last_errors", errs);
	if (R.have_policy)
		json_object_set_new(o, "policy", report_policy_json(&R.policy, true));
	pthread_mutex_unlock(&R.lock);
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	upload_result_t r;
	upload_json(R.up, "/api/v1/status", R.token, body, &r);
	free(body);
	if (r.status == 401)
		set_token(""); /* enroll again */
	if (r.status < 200 || r.status > 299)
		log_msg(LOG_WARN, "status_failed", "%s", r.detail);
	else
		link_up();
	upload_result_free(&r);
	s->next_status = now + (uint64_t)R.cfg.status_interval_s * 1000;
}

static void report_drops(void)
{
	spool_drops_t d = spool_take_drops(R.spool);
	event_emit_drops(&d);
}

/* One batch from the spool to the console. */
static void send_batch(sched_t *s, uint64_t now, bool stopping)
{
	spool_stats_t st;
	spool_stats(R.spool, &st);
	s->pending = st.depth > 0;
	if (!st.depth) {
		s->batch_since = 0;
		return;
	}
	if (!s->batch_since)
		s->batch_since = now;
	bool full = st.depth >= s->batch_limit;
	if (!full && !stopping && now < s->batch_since + R.cfg.batch_wait_ms)
		return;
	spool_batch_t b;
	atomic_store(&R.since_read, 0);
	spool_read(R.spool, s->batch_limit, (size_t)R.cfg.batch_max_kb * 1024, &b);
	if (!b.n) {
		if (b.moved)
			spool_commit(R.spool, &b); /* stepped over corrupt records */
		spool_batch_free(&b);
		return;
	}
	upload_result_t r;
	upload_events(R.up, R.token, b.ndjson.data, b.ndjson.len, &r);
	if (r.status >= 200 && r.status <= 299) {
		spool_commit(R.spool, &b);
		atomic_fetch_add_explicit(&R.counters[REPORT_UPLOADED], b.n, memory_order_relaxed);
		link_up();
		s->failures = 0;
		s->batch_since = 0;
		s->pending = st.depth > b.n; /* a backlog: the next batch goes as soon as the rate allows */
		if (s->batch_limit < R.cfg.batch_max_events)
			s->batch_limit = s->batch_limit * 2 < R.cfg.batch_max_events ? s->batch_limit * 2
										 : R.cfg.batch_max_events;
		s->rate_next = now + (uint64_t)b.n * 1000 / R.cfg.drain_events_per_s;
	} else if (r.status == 400 || r.status == 403 || r.status == 413 || r.status == 415) {
		/* The console refuses something in this batch; halve until it is one record, then skip that one. */
		if (b.n > 1) {
			s->batch_limit = b.n / 2;
		} else {
			log_msg(LOG_ERROR, "event_rejected", "%s: the console refused an event; it is dropped and counted",
				r.detail);
			remember_error(r.detail);
			spool_skip(R.spool);
		}
	} else {
		if (r.status == 401)
			set_token(""); /* the console forgot us: enroll again */
		fail(s, now, &r, "upload");
	}
	upload_result_free(&r);
	spool_batch_free(&b);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void *uploader(void *arg)
{
	(void)arg;
	sched_t s = {.batch_limit = R.cfg.batch_max_events};
	uint64_t flush_until = 0;
	for (;;) {
		uint64_t now = now_ms();
		pthread_mutex_lock(&R.lock);
		bool stopping = R.stopping;
		uint32_t flush_ms = R.flush_ms;
		pthread_mutex_unlock(&R.lock);
		if (stopping && !flush_until)
			flush_until = now + flush_ms;
		if (R.cfg.spool_fsync == FSYNC_INTERVAL && now >= s.next_sync) {
			spool_sync(R.spool);
			s.next_sync = now + R.cfg.fsync_interval_ms;
		}
		report_drops();
		if (stopping) {
			spool_stats_t st;
			spool_stats(R.spool, &st);
			if (!st.depth || now >= flush_until || !R.token[0])
				break;
		}
		if (now >= s.next_try && !R.token[0] && R.enroll_secret[0])
			enroll(&s, now);
		if (R.token[0] && now >= s.next_try && now >= s.next_status && !stopping)
			post_status(&s, now);
		if (R.token[0] && now >= s.next_try && now >= s.rate_next)
			send_batch(&s, now, stopping);

		/* Sleep until the nearest deadline, a second at most. */
		now = now_ms();
		uint64_t until = now + 1000;
		if (R.token[0]) {
			uint64_t batch_due = !s.pending ? s.next_status /* or a writer's signal */
					     : s.batch_since ? s.batch_since + R.cfg.batch_wait_ms : now;
			uint64_t due = stopping ? now : min_u64(batch_due, s.next_status);
			uint64_t allowed = s.next_try > s.rate_next ? s.next_try : s.rate_next;
			until = min_u64(until, due > allowed ? due : allowed);
		}
		if (R.cfg.spool_fsync == FSYNC_INTERVAL)
			until = min_u64(until, s.next_sync);
		if (stopping)
			until = min_u64(until, flush_until);
		if (until <= now)
			continue;
		pthread_mutex_lock(&R.lock);
		if (!R.stopping || stopping)
			platform_cond_wait_ms(&R.wake, &R.lock, until - now);
		pthread_mutex_unlock(&R.lock);
	}
	spool_stats_t st;
	spool_stats(R.spool, &st);
	if (st.depth)
		log_msg(LOG_WARN, "upload_stopped", "%" PRIu64 " events stay in the spool; they are sent after the next start",
			st.depth);
	return NULL;
}

bool report_start(const report_opts_t *o, char *err, size_t errlen)
{
	config_t *c = &R.cfg;
	*c = *o->cfg;
	c->bypass_hosts = NULL; /* only the report.* values are used */
	c->n_bypass_hosts = 0;
	pthread_mutex_init(&R.lock, NULL);
	platform_cond_init(&R.wake);
	snprintf(R.id_path, sizeof R.id_path, "%s/agent.json", o->state_dir);
	snprintf(R.console, sizeof R.console, "%s", o->console ? o->console : "");
	snprintf(R.enroll_secret, sizeof R.enroll_secret, "%s", o->enroll_secret ? o->enroll_secret : "");
	snprintf(R.pin_path, sizeof R.pin_path, "%s", o->pin_bundle_keys ? o->pin_bundle_keys : "");
	free(R.labels_json);
	R.labels_json = o->labels_json ? strdup(o->labels_json) : NULL;
	if (mkdir(o->state_dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "--state-dir %s: %s", o->state_dir, strerror(errno));
		return false;
	}
	if (!load_identity(err, errlen))
		return false;
	R.started = true;
	if (!o->console)
		return true;
	if (!R.token[0] && !R.enroll_secret[0]) {
		snprintf(err, errlen, "--console %s: this agent is not enrolled yet: give --enroll-secret S", o->console);
		return false;
	}
	atomic_store(&R.link, R.token[0] ? REPORT_LINK_PENDING : REPORT_LINK_ENROLLING);
	if (R.token[0] && R.labels_json)
		log_msg(LOG_INFO, "labels",
			"--labels are sent when the agent enrolls and it is enrolled already: the console keeps the labels "
			"it has (an admin changes them with PUT /api/v1/agents/%s/labels)",
			R.agent_id);
	/* Before any thread exists: libcurl's global setup is not thread-safe. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!(R.up = upload_new(o->console, o->console_ca, o->socket_mark, err, errlen)))
		return false;
	char dir[600];
	snprintf(dir, sizeof dir, "%s/spool", o->state_dir);
	spool_opts_t so = {.max_bytes = (uint64_t)c->spool_max_kb << 10,
			   .segment_bytes = (uint64_t)c->spool_segment_kb << 10,
			   .fsync = c->spool_fsync};
	if (!(R.spool = spool_open(dir, &so, err, errlen)))
		return false;
	int rc = pthread_create(&R.thread, NULL, uploader, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot start the uploader thread: %s", strerror(rc));
		spool_close(R.spool);
		R.spool = NULL;
		return false;
	}
	return true;
}

void report_stop(bool flush)
{
	if (!R.started)
		return;
	if (R.spool) {
		pthread_mutex_lock(&R.lock);
		R.flush_ms = flush ? R.cfg.shutdown_flush_ms : 0;
		R.stopping = true;
		pthread_cond_signal(&R.wake);
		pthread_mutex_unlock(&R.lock);
		pthread_join(R.thread, NULL);
		pthread_mutex_lock(&R.lock); /* report_snapshot reads it under the lock */
		spool_t *s = R.spool;
		R.spool = NULL; /* late events (none should come) go to stderr */
		pthread_mutex_unlock(&R.lock);
		spool_close(s);
		upload_free(R.up);
	}
	R.started = false;
}
