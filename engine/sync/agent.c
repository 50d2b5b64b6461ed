/*
 * sync/agent: the policy poller (see sync.h for what it does and why).
 *
 * One thread with its own libcurl handle, set up as the uploader's
 * (upload_curl_setup: --console-ca only, no proxy, the socket mark). It
 * waits for report to hold a token, then loops:
 *
 *   GET /api/v1/policy?wait=S   If-None-Match: the offer it runs [, the
 *                               offer it last refused]
 *     304  nothing new: poll again at once (the console held it S seconds)
 *     200  an offer: install its active bundle, then its shadow
 *     else (no answer, 5xx, 401, garbage, a stall mid-body): back off,
 *          exponentially with full jitter up to report.retry_max_s
 *
 * Every wait is bounded: the console's hold plus a margin for the whole
 * request, STALL_S without a byte once the answer has begun, the body at
 * two documents plus slack. The wait it asks for is jittered down by up
 * to a tenth so a fleet started together does not poll in step. A stop
 * cuts an in-flight poll short through the progress callback.
 *
 * Only this thread touches the trusted key set and the bundle state after
 * sync_start; the engine's slots are swapped under the engine's lock.
 */
#include "sync/sync.h"

#include "core/bytebuf.h"
#include "core/log.h"
#include "core/platform.h"
#include "policy/lua_policy.h"
#include "report/upload.h"
#include "sync/install.h"
#include "sync/lkg.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OFFER_MAX ((size_t)BUNDLE_MAX_DOCUMENT * 2 + (1u << 20)) /* active + shadow + the envelope */
#define HOLD_MARGIN_S 15  /* beyond the console's hold, for the answer to arrive */
#define STALL_S 10        /* no byte this long once the answer began: the console stalled */
#define ETAG_MAX 64
#define BACKOFF_BASE_MS 1000

static struct {
	engine_t *e;
	char state_dir[PATH_MAX];
	char console[512];
	char console_ca[PATH_MAX];
	char keys_file[PATH_MAX];   /* --bundle-keys, "" when pinned */
	char pin_path[PATH_MAX];    /* STATE/bundle-keys */
	unsigned mark;
	unsigned wait_s;
	unsigned retry_max_s;

	bundle_keyset_t keys;       /* trusted */
	int64_t running;            /* the active bundle's version, 0: none */
	char *running_manifest;     /* its signed manifest: "the same version" means these bytes */
	int64_t shadow;             /* the shadow bundle's version, 0: none */
	char applied_etag[ETAG_MAX];
	char refused_etag[ETAG_MAX];
	sync_status_t status;

	bool started;
	pthread_t thread;
	pthread_mutex_t lock;       /* stopping */
	pthread_cond_t wake;
	atomic_bool stopping;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t rand_below(uint32_t n)
{
	uint32_t r = 0;
	RAND_bytes((unsigned char *)&r, sizeof r);
	return n ? r % n : 0;
}

/* Sleeps ms or until the stop; false when stopping. */
static bool nap(uint64_t ms)
{
	pthread_mutex_lock(&S.lock);
	if (!atomic_load(&S.stopping))
		platform_cond_wait_ms(&S.wake, &S.lock, ms);
	pthread_mutex_unlock(&S.lock);
	return !atomic_load(&S.stopping);
}

static void publish(void)
{
	S.status.shadow_version = S.shadow;
	sync_status_publish(&S.status);
}

/* A refused offer, or a last known good that cannot run: the log line
 * names the version and the reason; status keeps both. what: "active",
 * "shadow" or "last-known-good". */
static void refused(const char *what, int64_t version, const char *why)
{
	bool active = !strcmp(what, "active");
	log_line_t l;
	log_begin(&l, LOG_ERROR, "policy_error");
	log_kv_str(&l, "bundle", what);
	char v[24];
	snprintf(v, sizeof v, "v%" PRId64, version);
	log_kv_str(&l, "version", version > 0 ? v : "?");
	log_kv_str(&l, "error", why);
	char keep[64];
	snprintf(keep, sizeof keep, "%s", S.running ? "" : "built-in");
	if (S.running)
		snprintf(keep, sizeof keep, "v%" PRId64, S.running);
	log_kv_str(&l, "running", keep);
	log_end(&l);
	/* "v3: ...", "shadow v3: ...", "last-known-good v3: ..." */
	if (active)
		snprintf(S.status.last_error, sizeof S.status.last_error, "%s: %.400s", version > 0 ? v : "offer", why);
	else
		snprintf(S.status.last_error, sizeof S.status.last_error, "%s %s: %.400s", what,
			 version > 0 ? v : "bundle", why);
	if (active)
		S.status.failed_version = version;
}

/* ---- trusted keys ---- */

static bool keys_load(char *err, size_t n)
{
	memset(&S.keys, 0, sizeof S.keys);
	if (S.keys_file[0])
		return bundle_keys_load(S.keys_file, &S.keys, err, n);
	if (access(S.pin_path, F_OK) != 0)
		return true; /* pinned at the first enrollment (report) */
	if (!bundle_keys_load(S.pin_path, &S.keys, err, n)) {
		char why[600];
		snprintf(why, sizeof why, "%s", err);
		snprintf(err, n, "%s (the pinned bundle keys; restore it, or remove it to pin the console's keys at "
			 "the next enrollment)", why);
		return false;
	}
	return true;
}

/* next_keys join the trusted set and retire_keys leave it, once a bundle
 * signed by a trusted key was activated (bundle.md "Keys"). */
static void rotate_keys(const bundle_t *b)
{
	if (!b->next_keys.n && !b->n_retire)
		return;
	for (size_t i = 0; i < b->next_keys.n; i++)
		if (!bundle_keys_add(&S.keys, &b->next_keys.v[i]))
			log_msg(LOG_WARN, "bundle_keys", "v%" PRId64 " introduces key %s: the trusted set is full (%d)",
				b->version, b->next_keys.v[i].key_id, BUNDLE_MAX_KEYS);
	for (size_t i = 0; i < b->n_retire; i++)
		if (strcmp(b->retire_keys[i], b->key_id))
			bundle_keys_remove(&S.keys, b->retire_keys[i]);
	if (S.keys_file[0]) {
		log_msg(LOG_WARN, "bundle_keys",
			"v%" PRId64 " rotates the bundle keys (%zu introduced, %zu retired): trusted for this run; update "
			"--bundle-keys %s so a restart trusts the same keys",
			b->version, b->next_keys.n, b->n_retire, S.keys_file);
		return;
	}
	char *text = bundle_keys_format(&S.keys);
	char err[600];
	if (!text || !lkg_write_atomic(S.pin_path, text, strlen(text), 0600, err, sizeof err))
		log_msg(LOG_ERROR, "bundle_keys", "%s (the rotation holds for this run only)", text ? err : "out of memory");
	else
		log_msg(LOG_INFO, "bundle_keys", "v%" PRId64 " rotated the bundle keys: %zu introduced, %zu retired, %zu trusted",
			b->version, b->next_keys.n, b->n_retire, S.keys.n);
	free(text);
}

/* ---- start ---- */

static compiled_policy_t *builtin_policy(char *err, size_t n)
{
	const char *dir = lua_policy_shipped_rules();
	if (!dir) {
		snprintf(err, n, "no policy from the console yet and the shipped rules are not installed "
			 "(/usr/share/dlpgate/rules): give --policy FILE or reinstall");
		return NULL;
	}
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/default.lua", dir);
	lua_policy_opts_t lo = {.n_workers = S.e->n_workers};
	compiled_policy_t *p = lua_policy_load(path, &lo, err, n);
	if (p)
		log_msg(LOG_WARN, "policy",
			"no bundle from the console has run on this agent yet: enforcing the shipped default policy %s "
			"(source built-in) until one arrives",
			path);
	return p;
}

compiled_policy_t *sync_boot(const sync_opts_t *o, char *err, size_t errlen)
{
	S.e = o->e;
	snprintf(S.state_dir, sizeof S.state_dir, "%s", o->state_dir);
	snprintf(S.keys_file, sizeof S.keys_file, "%s", o->bundle_keys ? o->bundle_keys : "");
	snprintf(S.pin_path, sizeof S.pin_path, "%s/bundle-keys", o->state_dir);
	sync_status_init(o->state_dir);
	if (!keys_load(err, errlen))
		return NULL;
	snprintf(S.applied_etag, sizeof S.applied_etag, "\"0.0\"");

	char *doc = NULL;
	size_t len = 0;
	char at[32], why[1024];
	compiled_policy_t *p = NULL;
	if (lkg_load(o->state_dir, &doc, &len, at, why, sizeof why)) {
		/* Verified again: the signature and every hash, with the keys
		 * trusted now. Not its version (nothing runs yet) nor its expiry:
		 * expiry guards delivery, not what already runs. */
		install_opts_t io = {.state_dir = o->state_dir, .n_workers = o->e->n_workers, .keys = &S.keys};
		install_result_t r;
		int64_t version = 0;
		if (install_bundle(&io, doc, len, &r, &version, why, sizeof why)) {
			p = policy_ref(r.policy);
			S.running = r.bundle->version;
			S.running_manifest = strdup(r.bundle->manifest_text);
			snprintf(S.applied_etag, sizeof S.applied_etag, "\"%" PRId64 ".0\"", S.running);
			S.status.version = S.running;
			snprintf(S.status.source, sizeof S.status.source, "last-known-good");
			snprintf(S.status.activated_at, sizeof S.status.activated_at, "%s", at);
			log_msg(LOG_INFO, "policy", "running the last known good bundle v%" PRId64 " from %s/policy before the "
				"console is asked", S.running, o->state_dir);
			install_result_free(&r);
		} else {
			refused("last-known-good", version, why);
		}
		free(doc);
	} else if (why[0]) {
		refused("last-known-good", 0, why);
	}
	if (!p) {
		p = builtin_policy(err, errlen);
		if (!p)
			return NULL;
		snprintf(S.status.source, sizeof S.status.source, "built-in");
		sync_now_rfc3339(S.status.activated_at);
	}
	publish();
	return p;
}

/* ---- one poll ---- */

typedef struct {
	bytebuf_t body;
	char etag[ETAG_MAX];
	uint64_t last_byte_ms;   /* when the last byte arrived; 0: none yet */
	bool stalled;
} poll_t;

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	poll_t *pl = arg;
	size_t len = size * n;
	pl->last_byte_ms = mono_ms();
	if (len > 5 && !strncasecmp(p, "ETag:", 5)) {
		const char *v = p + 5;
		size_t k = len - 5;
		while (k && (*v == ' ' || *v == '\t'))
			v++, k--;
		while (k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
			k--;
		snprintf(pl->etag, sizeof pl->etag, "%.*s", (int)(k < ETAG_MAX - 1 ? k : ETAG_MAX - 1), v);
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	poll_t *pl = arg;
	pl->last_byte_ms = mono_ms();
	return bytebuf_append(&pl->body, p, size * n) ? size * n : 0; /* over the cap: libcurl aborts */
}

/* Called at least once a second: the stop, and a stall once the answer
 * has begun (before it, the console is holding the poll). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	poll_t *pl = arg;
	if (atomic_load(&S.stopping))
		return 1;
	if (pl->last_byte_ms && mono_ms() - pl->last_byte_ms > STALL_S * 1000) {
		pl->stalled = true;
		return 1;
	}
	return 0;
}

/* The poll; answers the HTTP status (0: none) with why in detail. */
static long poll_once(CURL *c, const char *token, poll_t *pl, char *detail, size_t n)
{
	unsigned wait = S.wait_s - rand_below(S.wait_s / 10 + 1);
	if (wait < 1)
		wait = 1;
	char url[700], auth[128], inm[2 * ETAG_MAX + 32];
	snprintf(url, sizeof url, "%s/api/v1/policy?wait=%u", S.console, wait);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	snprintf(inm, sizeof inm, "If-None-Match: %s%s%s", S.applied_etag, S.refused_etag[0] ? ", " : "",
		 S.refused_etag);
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, inm);
	h = curl_slist_append(h, "Accept: application/json");
	curl_easy_reset(c);
	upload_curl_setup(c, S.console_ca, &S.mark);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(wait + HOLD_MARGIN_S) * 1000L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* gzip if the console offers it */
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, pl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, pl);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, pl);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)OFFER_MAX);
	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(h);
	long status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else if (pl->stalled)
		snprintf(detail, n, "the console stalled mid-answer (nothing for %d s after %zu bytes)", STALL_S,
			 pl->body.len);
	else if (rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED)
		snprintf(detail, n, "the console's answer is larger than %zu bytes", OFFER_MAX);
	else
		snprintf(detail, n, "%s", curl_easy_strerror(rc));
	return status;
}

/* ---- an offer ---- */

/* One bundle of an offer, {"version": N, "bundle": {...}}, made runnable;
 * NULL with why. */
static bool offer_install(json_t *part, int64_t running, bool check_runnable, install_result_t *r, int64_t *version,
			  char **doc_out, size_t *len_out, char *why, size_t n)
{
	json_t *v = json_object_get(part, "version");
	json_t *b = json_object_get(part, "bundle");
	*version = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
	if (*version <= 0 || !json_is_object(b)) {
		snprintf(why, n, "offer: needs \"version\" (a positive integer) and \"bundle\" (an object)");
		return false;
	}
	char *doc = json_dumps(b, JSON_COMPACT);
	if (!doc) {
		snprintf(why, n, "out of memory");
		return false;
	}
	size_t len = strlen(doc);
	install_opts_t io = {.state_dir = S.state_dir, .n_workers = S.e->n_workers, .keys = &S.keys,
			     .running_version = running, .check_runnable = check_runnable};
	int64_t bv = 0;
	bool ok = install_bundle(&io, doc, len, r, &bv, why, n);
	if (ok && bv != *version) {
		snprintf(why, n, "offer: names version %" PRId64 ", its bundle is version %" PRId64, *version, bv);
		install_result_free(r);
		ok = false;
	}
	if (ok && doc_out) {
		*doc_out = doc;
		*len_out = len;
	} else {
		free(doc);
	}
	return ok;
}

/* The offer's bundle is the one running (its signed manifest, byte for
 * byte): another bundle with the running version is a replay, refused by
 * the version check like an older one. */
static bool runs_already(json_t *active)
{
	char *doc = json_dumps(json_object_get(active, "bundle"), JSON_COMPACT);
	char why[300];
	bundle_t *b = doc ? bundle_parse(doc, strlen(doc), why, sizeof why) : NULL;
	bool same = b && S.running_manifest && !strcmp(b->manifest_text, S.running_manifest);
	bundle_free(b);
	free(doc);
	return same;
}

/* The offer's active part; false when it was refused. */
static bool take_active(json_t *active)
{
	if (json_is_null(active) || !active)
		return true; /* nothing targets this agent: it keeps what it runs */
	json_t *v = json_object_get(active, "version");
	if (json_is_integer(v) && json_integer_value(v) == S.running && S.running > 0 && runs_already(active))
		return true; /* the console offers what runs: nothing to do */
	if (!S.keys.n) {
		char err[600] = "";
		if (!keys_load(err, sizeof err) || !S.keys.n) {
			refused("active", json_is_integer(v) ? (int64_t)json_integer_value(v) : 0,
				err[0] ? err : "no trusted bundle keys: none pinned from the console yet and no --bundle-keys");
			return false;
		}
	}
	install_result_t r;
	int64_t version = 0;
	char *doc = NULL;
	size_t len = 0;
	char why[1024];
	if (!offer_install(active, S.running, true, &r, &version, &doc, &len, why, sizeof why)) {
		refused("active", version, why);
		return false;
	}
	int64_t before = S.running;
	engine_policy_swap(S.e, policy_ref(r.policy)); /* every worker's next flow; flows keep theirs */
	report_set_policy_version(r.policy->version_text);
	S.running = version;
	free(S.running_manifest);
	S.running_manifest = strdup(r.bundle->manifest_text);
	S.status.version = version;
	snprintf(S.status.source, sizeof S.status.source, "console");
	sync_now_rfc3339(S.status.activated_at);
	S.status.failed_version = 0;
	S.status.last_error[0] = '\0';
	char err[600];
	if (!lkg_save(S.state_dir, doc, len, version, S.status.activated_at, err, sizeof err))
		log_msg(LOG_ERROR, "policy", "v%" PRId64 " runs but is not kept as last known good: %s", version, err);
	rotate_keys(r.bundle);
	log_line_t l;
	log_begin(&l, LOG_INFO, "policy_activated");
	log_kv_str(&l, "version", r.policy->version_text);
	char prev[24];
	snprintf(prev, sizeof prev, "v%" PRId64, before);
	log_kv_str(&l, "previous", before ? prev : "built-in");
	log_kv_str(&l, "sha256", r.bundle->sha256);
	log_kv_u64(&l, "tests_passed", (uint64_t)r.tests_passed);
	log_kv_str(&l, "message", r.bundle->message);
	log_end(&l);
	install_result_free(&r);
	free(doc);
	install_prune(S.state_dir, S.running, S.shadow);
	return true;
}

/* The offer's shadow part; false when it was refused. */
static bool take_shadow(json_t *shadow)
{
	if (!shadow || json_is_null(shadow)) {
		if (S.shadow) {
			engine_shadow_swap(S.e, NULL, 0);
			log_msg(LOG_INFO, "policy_shadow", "shadow v%" PRId64 " ended", S.shadow);
			S.shadow = 0;
		}
		return true;
	}
	json_t *pct = json_object_get(shadow, "sample_percent");
	json_int_t sample = json_is_integer(pct) ? json_integer_value(pct) : json_is_real(pct) ? (json_int_t)json_real_value(pct) : 100;
	if (sample < 0 || sample > 100) {
		refused("shadow", 0, "offer: sample_percent must be 0 to 100");
		return false;
	}
	json_t *v = json_object_get(shadow, "version");
	if (json_is_integer(v) && json_integer_value(v) == S.shadow && S.shadow > 0) {
		compiled_policy_t *same = engine_shadow_acquire(S.e, &(unsigned){0});
		engine_shadow_swap(S.e, same, (unsigned)sample); /* a new sample only */
		return true;
	}
	if (!S.keys.n) {
		char err[600] = "";
		keys_load(err, sizeof err);
	}
	install_result_t r;
	int64_t version = 0;
	char why[1024];
	/* A shadow decides nothing: no version order against the active
	 * one, but signature, expiry and engine version as for any bundle. */
	if (!offer_install(shadow, 0, true, &r, &version, NULL, NULL, why, sizeof why)) {
		refused("shadow", version, why);
		return false;
	}
	engine_shadow_swap(S.e, policy_ref(r.policy), (unsigned)sample);
	S.shadow = version;
	log_msg(LOG_INFO, "policy_shadow", "shadow v%" PRId64 " evaluates %u%% of the messages beside v%" PRId64, version,
		(unsigned)sample, S.running);
	install_result_free(&r);
	install_prune(S.state_dir, S.running, S.shadow);
	return true;
}

/* false: the answer is not an offer (garbage), the caller backs off. */
static bool take_offer(const poll_t *pl, char *detail, size_t n)
{
	json_error_t je;
	json_t *o = json_loadb(pl->body.data, pl->body.len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o) || !json_object_get(o, "active") || !json_object_get(o, "shadow")) {
		snprintf(detail, n, "the console's answer is not a policy offer (%s)",
			 !o ? je.text : "needs \"active\" and \"shadow\"");
		json_decref(o);
		return false;
	}
	bool ok = take_active(json_object_get(o, "active"));
	ok = take_shadow(json_object_get(o, "shadow")) && ok;
	const char *etag = pl->etag[0] ? pl->etag : "\"?\"";
	if (ok) {
		snprintf(S.applied_etag, sizeof S.applied_etag, "%s", etag);
		S.refused_etag[0] = '\0';
	} else {
		snprintf(S.refused_etag, sizeof S.refused_etag, "%s", etag);
	}
	publish();
	json_decref(o);
	return true;
}

/* ---- the thread ---- */

static void *poller(void *arg)
{
	(void)arg;
	CURL *c = curl_easy_init();
	unsigned failures = 0;
	char last_failure[300] = "";
	while (c && !atomic_load(&S.stopping)) {
		char token[80];
		if (!report_token(token, sizeof token)) {
			nap(1000); /* enrollment is report's */
			continue;
		}
		poll_t pl = {.etag = ""};
		bytebuf_init(&pl.body, OFFER_MAX);
		char detail[300] = "";
		uint64_t began = mono_ms();
		long status = poll_once(c, token, &pl, detail, sizeof detail);
		bool ok = false;
		if (atomic_load(&S.stopping)) {
			bytebuf_free(&pl.body);
			break;
		}
		if (status == 304) {
			ok = true;
		} else if (status == 200) {
			ok = take_offer(&pl, detail, sizeof detail);
		} else if (status) {
			snprintf(detail, sizeof detail, "HTTP %ld%s", status,
				 status == 401 ? " (the token is refused: the agent enrolls again)" : "");
		}
		bytebuf_free(&pl.body);
		if (ok) {
			if (failures)
				log_msg(LOG_INFO, "policy_sync", "the console answers policy polls again");
			failures = 0;
			last_failure[0] = '\0';
			/* a held poll came back: ask again at once; one that came back
			 * at once (an offer) is not a reason to spin */
			if (mono_ms() - began < 1000)
				nap(200 + rand_below(800));
			continue;
		}
		failures++;
		if (strcmp(detail, last_failure)) {
			log_msg(LOG_WARN, "policy_sync", "GET /api/v1/policy: %s (keeping %s; retrying with backoff)", detail,
				S.status.source);
			snprintf(last_failure, sizeof last_failure, "%s", detail);
			if (status == 200) {
				snprintf(S.status.last_error, sizeof S.status.last_error, "console: %s", detail);
				publish();
			} else if (strstr(detail, "stalled") || strstr(detail, "larger than")) {
				snprintf(S.status.last_error, sizeof S.status.last_error, "console: %s", detail);
				publish();
			}
		}
		uint64_t cap = (uint64_t)S.retry_max_s * 1000;
		uint64_t ms = failures < 20 ? (uint64_t)BACKOFF_BASE_MS << (failures - 1) : cap;
		if (ms > cap)
			ms = cap;
		nap(rand_below((uint32_t)ms + 1)); /* full jitter */
	}
	curl_easy_cleanup(c);
	return NULL;
}

bool sync_start(const sync_opts_t *o, char *err, size_t errlen)
{
	snprintf(S.console, sizeof S.console, "%s", o->console);
	size_t n = strlen(S.console);
	if (n && S.console[n - 1] == '/')
		S.console[n - 1] = '\0';
	snprintf(S.console_ca, sizeof S.console_ca, "%s", o->console_ca ? o->console_ca : "");
	S.mark = o->socket_mark;
	S.wait_s = o->wait_s ? o->wait_s : SYNC_WAIT_DEFAULT;
	S.retry_max_s = o->e->cfg.retry_max_s ? o->e->cfg.retry_max_s : 60;
	platform_cond_init(&S.wake);
	atomic_store(&S.stopping, false);
	int rc = pthread_create(&S.thread, NULL, poller, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot start the policy sync thread: %s", strerror(rc));
		return false;
	}
	S.started = true;
	return true;
}

void sync_stop(void)
{
	if (!S.started)
		return;
	pthread_mutex_lock(&S.lock);
	atomic_store(&S.stopping, true);
	pthread_cond_signal(&S.wake);
	pthread_mutex_unlock(&S.lock);
	pthread_join(S.thread, NULL);
	S.started = false;
	engine_shadow_swap(S.e, NULL, 0);
}
