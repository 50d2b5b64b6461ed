/*
 * Policy from the console (engine/sync): real dlpgate agents polling a real
 * HTTPS console for signed bundles, with real proxied traffic through them.
 *
 * The console here is policy_console.py, a small real HTTPS server (Python's
 * http.server and ssl) that speaks the agent side of schemas/console-api.md
 * over real TLS: enrollment, status, events and the policy long-poll with
 * ETags. The bundles it serves are made and signed in the test with the
 * engine's own bundle library, or crafted by hand where the library would
 * refuse to make them (too many files, path traversal, a manifest that is
 * not JSON). Every refusal is checked by what the agent then says about
 * itself (`dlpgate policy status`, the status file) and does (the traffic
 * still follows the running policy).
 */
#include "dlp.h"
#include "suites.h"

#include "core/bytebuf.h"
#include "sync/bundle.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const redact_policy =
	"local dlp = require 'dlp'\n"
	"local cards = require 'packs.cards'\n"
	"detectors = { card = cards.card }\n"
	"function on_request(req, flow)\n"
	"  local found = req:scan(detectors)\n"
	"  if found.card then return dlp.redact(found) end\n"
	"  return dlp.pass()\n"
	"end\n";

static const char *const block_policy =
	"local dlp = require 'dlp'\n"
	"local cards = require 'packs.cards'\n"
	"detectors = { card = cards.card }\n"
	"function on_request(req, flow)\n"
	"  local found = req:scan(detectors)\n"
	"  if found.card then return dlp.block('card upload', found) end\n"
	"  return dlp.pass()\n"
	"end\n";

/* The bundle's own module: require finds it in the bundle. */
static const char *const cards_pack =
	"local dlp = require 'dlp'\n"
	"return { card = dlp.detector{ [[\\b(?:\\d[ -]?){12,18}\\d\\b]], validate = 'luhn' } }\n";

static const char *const raising_policy =
	"local dlp = require 'dlp'\n"
	"fail = 'closed'\n"
	"function on_request(req, flow)\n"
	"  error('boom in on_request')\n"
	"end\n";

#define CARD "card 4111 1111 1111 1111"
#define CARD_MASKED "card 4111 **** **** 1111"

/* ---- the console ---- */

typedef struct {
	th_proc proc;
	int port;
	char dir[600];
	char url[64];
	th_cert ca, cert;
} pc_t;

static char *pc_file(pc_t *c, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", c->dir, name) < 0)
		th_fail("out of memory");
	return p;
}

static void pc_write(pc_t *c, const char *name, const char *text)
{
	char *p = pc_file(c, name);
	th_write_file(p, text, strlen(text), 0644);
	free(p);
}

static char *pc_read(pc_t *c, const char *name)
{
	char *p = pc_file(c, name);
	char *t = access(p, F_OK) == 0 ? th_read_file(p, NULL) : strdup("");
	free(p);
	return t;
}

static void pc_start(pc_t *c, const char *name)
{
	static int n;
	memset(c, 0, sizeof *c);
	char *dir = th_path(name);
	snprintf(c->dir, sizeof c->dir, "%s", dir);
	free(dir);
	mkdir(c->dir, 0755);
	char cn[64];
	snprintf(cn, sizeof cn, "%s-ca", name);
	c->ca = th_make_ca(cn);
	th_leaf_opts o = {.cn = "127.0.0.1", .ip = {"127.0.0.1"}};
	snprintf(cn, sizeof cn, "%s-tls", name);
	c->cert = th_make_leaf(&c->ca, cn, &o);
	c->port = th_free_port();
	snprintf(c->url, sizeof c->url, "https://127.0.0.1:%d", c->port);
	pc_write(c, "offer.json", "{\"active\": null, \"shadow\": null}");
	pc_write(c, "etag", "\"0.0\"");
	char port[16], script[700], log[64];
	snprintf(port, sizeof port, "%d", c->port);
	snprintf(script, sizeof script, "%s/tests/integration/policy_console.py", getenv("DLPGATE_TOP"));
	snprintf(log, sizeof log, "%s-%d-%d.log", name, (int)getpid(), n++);
	const char *argv[] = {"python3", script, port, c->cert.chain_path, c->cert.key_path, c->dir, NULL};
	c->proc = th_spawn((char *const *)argv, log);
	if (!th_wait_port(c->port, 10000)) {
		char *l = th_log(&c->proc);
		th_fail("policy_console.py did not listen on %d:\n%s", c->port, l);
	}
}

static void pc_stop(pc_t *c)
{
	th_stop(&c->proc);
	th_cert_free(&c->cert);
	th_cert_free(&c->ca);
}

/* The console offers active (and shadow) from now on; the ETag last, as
 * the console's held polls watch it. */
static void pc_offer(pc_t *c, const char *active_doc, int64_t active_v, const char *shadow_doc, int64_t shadow_v,
		     int sample, const char *etag)
{
	json_t *o = json_object();
	json_t *a = json_null(), *s = json_null();
	if (active_doc) {
		json_t *b = json_loads(active_doc, 0, NULL);
		ck_assert_msg(b, "not a document: %.200s", active_doc);
		a = json_pack("{s:I, s:o}", "version", (json_int_t)active_v, "bundle", b);
	}
	if (shadow_doc)
		s = json_pack("{s:I, s:i, s:o}", "version", (json_int_t)shadow_v, "sample_percent", sample, "bundle",
			      json_loads(shadow_doc, 0, NULL));
	json_object_set_new(o, "active", a);
	json_object_set_new(o, "shadow", s);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	pc_write(c, "offer.json", text);
	free(text);
	pc_write(c, "etag", etag);
}

/* ---- bundles ---- */

typedef struct {
	char path[700];
	bundle_key_t pub;
} key_t_;

static key_t_ make_key(const char *name)
{
	key_t_ k;
	char *p = th_path(name);
	snprintf(k.path, sizeof k.path, "%s", p);
	free(p);
	unlink(k.path);
	char err[300];
	if (!bundle_key_generate(k.path, &k.pub, err, sizeof err))
		th_fail("%s", err);
	return k;
}

/* A key list file trusting the keys given. */
static char *key_list(const key_t_ *const keys[])
{
	bundle_keyset_t ks = {.n = 0};
	for (int i = 0; keys[i]; i++)
		bundle_keys_add(&ks, &keys[i]->pub);
	return bundle_keys_format(&ks);
}

typedef void (*tweak_fn)(bundle_t *b, void *arg);

/* A signed document from files {path, content, ..., NULL}: the entry is
 * policy.lua, packs/cards.lua is added unless given. */
static char *make_bundle(const char *const files[], int64_t version, const key_t_ *key, tweak_fn tweak, void *arg)
{
	static int n;
	char name[64];
	/* Check forks each test: the pid keeps tests from sharing names */
	snprintf(name, sizeof name, "bundle-src-%d-%d", (int)getpid(), n++);
	char *dir = th_path(name);
	mkdir(dir, 0755);
	bool has_pack = false;
	for (int i = 0; files[i]; i += 2) {
		char path[900];
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		char *slash = strrchr(path, '/');
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
		th_write_file(path, files[i + 1], strlen(files[i + 1]), 0644);
		has_pack |= !strcmp(files[i], "packs/cards.lua");
	}
	if (!has_pack) {
		char path[900];
		snprintf(path, sizeof path, "%s/packs", dir);
		mkdir(path, 0755);
		snprintf(path, sizeof path, "%s/packs/cards.lua", dir);
		th_write_file(path, cards_pack, strlen(cards_pack), 0644);
	}
	char err[600];
	bundle_t *b = bundle_from_dir(dir, "policy.lua", err, sizeof err);
	if (!b)
		th_fail("bundle_from_dir: %s", err);
	if (tweak)
		tweak(b, arg);
	if (!bundle_sign(b, version, key->path, err, sizeof err))
		th_fail("bundle_sign: %s", err);
	size_t len;
	char *doc = bundle_serialize(b, &len);
	bundle_free(b);
	free(dir);
	return doc;
}

static char *simple_bundle(const char *policy, int64_t version, const key_t_ *key)
{
	const char *files[] = {"policy.lua", policy, NULL};
	return make_bundle(files, version, key, NULL, NULL);
}

/* A document the library would not make: a manifest text as given, any
 * files, a signature that is 64 bytes (the reader refuses before it
 * checks it). */
static char *crafted_document(const char *manifest, json_t *files)
{
	unsigned char zero[64] = {0};
	char sig[100];
	EVP_EncodeBlock((unsigned char *)sig, zero, 64);
	json_t *d = json_pack("{s:i, s:s, s:{s:s, s:s, s:s}, s:o}", "format", 1, "manifest", manifest, "signature",
			      "alg", "ed25519", "key_id", "0123456789abcdef", "sig", sig, "files", files);
	char *text = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	return text;
}

static json_t *manifest_with(json_t *file_list)
{
	return json_pack("{s:i, s:i, s:s, s:s, s:s, s:s, s:o}", "bundle_format", 1, "policy_version", 9, "created_at",
			 "2026-01-01T00:00:00.000Z", "entry", "policy.lua", "min_engine_version", "0.0.1", "key_id",
			 "0123456789abcdef", "files", file_list);
}

static char *too_many_files(void)
{
	json_t *list = json_array(), *files = json_object();
	char sha[65];
	th_sha256_hex("x", 1, sha);
	for (int i = 0; i <= BUNDLE_MAX_FILES; i++) {
		char path[32];
		snprintf(path, sizeof path, i ? "m%03d.lua" : "policy.lua", i);
		json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:s}", "path", path, "sha256", sha, "size", 1,
						      "role", i ? "module" : "entry"));
		json_object_set_new(files, path, json_string("eA=="));
	}
	json_t *m = manifest_with(list);
	char *mt = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	char *doc = crafted_document(mt, files);
	free(mt);
	return doc;
}

/* One file of 8 MiB + 1: more content than a bundle may hold. */
static char *too_large(void)
{
	size_t n = BUNDLE_MAX_CONTENT + 1;
	char *content = malloc(n);
	memset(content, '-', n);
	char sha[65];
	th_sha256_hex(content, n, sha);
	char *b64 = malloc(n / 3 * 4 + 8);
	EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)content, (int)n);
	json_t *list = json_pack("[{s:s, s:s, s:I, s:s}]", "path", "policy.lua", "sha256", sha, "size", (json_int_t)n,
				 "role", "entry");
	json_t *m = manifest_with(list);
	char *mt = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	char *doc = crafted_document(mt, json_pack("{s:s}", "policy.lua", b64));
	free(mt), free(b64), free(content);
	return doc;
}

static char *path_traversal(void)
{
	char sha[65];
	th_sha256_hex("x", 1, sha);
	json_t *list = json_pack("[{s:s, s:s, s:i, s:s}, {s:s, s:s, s:i, s:s}]", "path", "../evil.lua", "sha256", sha,
				 "size", 1, "role", "module", "path", "policy.lua", "sha256", sha, "size", 1, "role",
				 "entry");
	json_t *m = manifest_with(list);
	char *mt = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	char *doc = crafted_document(mt, json_pack("{s:s, s:s}", "../evil.lua", "eA==", "policy.lua", "eA=="));
	free(mt);
	return doc;
}

/* doc with one edit made to its JSON */
static char *edited(const char *doc, void (*edit)(json_t *d))
{
	json_t *d = json_loads(doc, 0, NULL);
	edit(d);
	char *t = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	return t;
}

/* policy.lua with one byte changed: same size, another hash */
static void tamper_file(json_t *d)
{
	const char *b64 = json_string_value(json_object_get(json_object_get(d, "files"), "policy.lua"));
	unsigned char raw[4096];
	char out[6000];
	int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
	ck_assert(n > 10);
	while (n > 0 && raw[n - 1] == '\0')
		n--; /* DecodeBlock counts the padding as zero bytes */
	raw[0] = raw[0] == '-' ? '=' : '-';
	EVP_EncodeBlock((unsigned char *)out, raw, n);
	json_object_set_new(json_object_get(d, "files"), "policy.lua", json_string(out));
}

static void add_unlisted_file(json_t *d)
{
	json_object_set_new(json_object_get(d, "files"), "extra.lua", json_string("eA=="));
}

static void flip_signature(json_t *d)
{
	json_t *s = json_object_get(d, "signature");
	char *sig = strdup(json_string_value(json_object_get(s, "sig")));
	sig[5] = sig[5] == 'A' ? 'B' : 'A';
	json_object_set_new(s, "sig", json_string(sig));
	free(sig);
}

static void set_expired(bundle_t *b, void *arg)
{
	(void)arg;
	snprintf(b->expires_at, sizeof b->expires_at, "2020-01-01T00:00:00.000Z");
}

static void set_future_engine(bundle_t *b, void *arg)
{
	(void)arg;
	snprintf(b->min_engine, sizeof b->min_engine, "99.0.0");
}

static void introduce_key(bundle_t *b, void *arg)
{
	bundle_keys_add(&b->next_keys, &((const key_t_ *)arg)->pub);
}

static void retire_key(bundle_t *b, void *arg)
{
	snprintf(b->retire_keys[b->n_retire++], BUNDLE_KEY_ID_LEN + 1, "%s", ((const key_t_ *)arg)->pub.key_id);
}

/* ---- the agent ---- */

static const char *const agent_config =
	"{\"report\": {\"retry_max_s\": 2, \"status_interval_s\": 1, \"batch_wait_ms\": 50}}";

typedef struct {
	dlp_t d;
	char state[600];
} agent_t;

/* An agent on state (NULL: a fresh one) polling console_url; extra args
 * NULL-terminated. */
static agent_t agent_start(const char *state, const char *console_url, const char *console_ca, const char *upstream_ca,
			   const char *const extra[])
{
	static int n;
	agent_t a;
	memset(&a, 0, sizeof a);
	if (state) {
		snprintf(a.state, sizeof a.state, "%s", state);
	} else {
		char name[64];
		snprintf(name, sizeof name, "sync-agent-%d-%d", (int)getpid(), n++);
		char *p = th_path(name);
		snprintf(a.state, sizeof a.state, "%s", p);
		free(p);
	}
	const char *args[32] = {"--state-dir", a.state, "--console", console_url, "--console-ca", console_ca,
				"--enroll-secret", "fleet-secret", "--policy-wait", "2"};
	int k = 10;
	for (int i = 0; extra && extra[i] && k < 30; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	a.d = dlp_start(upstream_ca, agent_config, args);
	/* the later --state-dir wins: the CA clients must trust is there */
	free(a.d.ca_path);
	if (asprintf(&a.d.ca_path, "%s/ca.pem", a.state) < 0)
		th_fail("out of memory");
	return a;
}

static char *agent_file(agent_t *a, const char *name)
{
	char path[800];
	snprintf(path, sizeof path, "%s/%s", a->state, name);
	return access(path, F_OK) == 0 ? th_read_file(path, NULL) : strdup("");
}

/* Polls the agent's policy status file until it holds needle. */
static void wait_status(agent_t *a, const char *needle)
{
	for (int waited = 0;; waited += 50) {
		char *s = agent_file(a, "policy/status.json");
		bool seen = strstr(s, needle) != NULL;
		if (seen || waited > 30000) {
			if (!seen) {
				char *log = dlp_log(&a->d);
				/* the lines about policy, not the flows */
				char tail[3000] = "";
				for (char *l = log; l && *l;) {
					char *nl = strchr(l, '\n');
					if (nl)
						*nl = '\0';
					if (strstr(l, "policy") || strstr(l, "enroll") || strstr(l, "status"))
						snprintf(tail + strlen(tail), sizeof tail - strlen(tail), "%.300s\n", l);
					l = nl ? nl + 1 : NULL;
				}
				th_fail("the policy status never said %s; it says %s\nagent log:\n%s", needle, s, tail);
			}
			free(s);
			return;
		}
		free(s);
		usleep(50000);
	}
}

static bool wait_console_file(pc_t *c, const char *name, const char *needle, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 50) {
		char *s = pc_read(c, name);
		bool seen = strstr(s, needle) != NULL;
		free(s);
		if (seen)
			return true;
		usleep(50000);
	}
	return false;
}

static int log_count(agent_t *a, const char *needle)
{
	char *log = dlp_log(&a->d);
	int n = 0;
	for (const char *p = log; (p = strstr(p, needle)); p++)
		n++;
	free(log);
	return n;
}

/* `dlpgate policy status` output */
static json_t *policy_status(agent_t *a)
{
	const char *argv[] = {dlp_bin(), "policy", "status", "--state-dir", a->state, NULL};
	char *out = NULL, *err = NULL;
	int rc = th_run((char *const *)argv, NULL, 0, &out, NULL, &err, 10000);
	json_error_t je;
	json_t *o = json_loads(out, 0, &je);
	ck_assert_msg(rc == 0 && o, "policy status: exit %d: %s %s", rc, out, err);
	ck_assert_msg(json_object_size(o) == 5 && json_object_get(o, "version") && json_object_get(o, "source") &&
			      json_object_get(o, "activated_at") && json_object_get(o, "shadow_version") &&
			      json_object_get(o, "last_error"),
		      "policy status: not the five fields: %s", out);
	free(out), free(err);
	return o;
}

static json_int_t status_version(agent_t *a)
{
	json_t *o = policy_status(a);
	json_int_t v = json_integer_value(json_object_get(o, "version"));
	json_decref(o);
	return v;
}

/* A card upload through the agent; the HTTP status (the upstream's 200 or
 * the block page's 403). */
static int upload(agent_t *a, th_upstream *up, const char *body)
{
	char *u = url("127.0.0.1", th_upstream_port(up), "/echo", true);
	const char *args[] = {"-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", body, u, NULL};
	char *out = NULL, *err = NULL;
	dlp_curl(&a->d, args, &out, &err);
	int code = atoi(out ? out : "0");
	free(out), free(err), free(u);
	return code;
}

static bool upstream_saw(th_upstream *up, const char *needle)
{
	size_t len;
	char *rx = th_upstream_received(up, &len);
	bool seen = rx && strstr(rx, needle);
	free(rx);
	return seen;
}

/* The usual world: upstream, console, a signing key the agent trusts
 * (--bundle-keys), an agent polling the console with extra args. */
typedef struct {
	world_t w;
	th_upstream *up;
	pc_t c;
	key_t_ k;
	char *keys_path;
	agent_t a;
} fixture_t;

static void fixture_start(fixture_t *fx, const char *name, const char *const more[])
{
	memset(fx, 0, sizeof *fx);
	fx->w = world_new();
	fx->up = th_upstream_start(&fx->w.server);
	pc_start(&fx->c, name);
	char file[80];
	snprintf(file, sizeof file, "%s.key", name);
	fx->k = make_key(file);
	const key_t_ *trusted[] = {&fx->k, NULL};
	char *keys = key_list(trusted);
	snprintf(file, sizeof file, "%s-keys.txt", name);
	fx->keys_path = th_path(file);
	th_write_file(fx->keys_path, keys, strlen(keys), 0644);
	free(keys);
	const char *extra[16] = {"--bundle-keys", fx->keys_path};
	for (int i = 0; more && more[i] && i < 12; i++)
		extra[2 + i] = more[i];
	fx->a = agent_start(NULL, fx->c.url, fx->c.cert.chain_path, fx->w.ca.cert_path, extra);
}

static void fixture_stop(fixture_t *fx)
{
	dlp_stop(&fx->a.d);
	pc_stop(&fx->c);
	free(fx->keys_path);
	th_upstream_stop(fx->up);
	world_free(&fx->w);
}

/* ---- tests ---- */

START_TEST(first_start_without_a_console_runs_the_built_in_policy)
{
	world_t w = world_new();
	int closed = th_free_port(); /* nothing listens there */
	char console[64];
	snprintf(console, sizeof console, "https://127.0.0.1:%d", closed);
	agent_t a = agent_start(NULL, console, w.ca.cert_path, w.ca.cert_path, NULL);
	ck_assert_msg(dlp_log_wait(&a.d, "source built-in", 5000), "the agent does not say it runs the default");
	json_t *st = policy_status(&a);
	ck_assert_str_eq(json_string_value(json_object_get(st, "source")), "built-in");
	ck_assert(json_is_null(json_object_get(st, "version")));
	json_decref(st);
	dlp_stop(&a.d);
	/* the status is a file: it answers with the agent stopped */
	st = policy_status(&a);
	ck_assert_str_eq(json_string_value(json_object_get(st, "source")), "built-in");
	json_decref(st);
	world_free(&w);
}
END_TEST

START_TEST(the_console_bundle_runs_swaps_without_dropping_flows_and_survives_a_restart)
{
	fixture_t fx;
	const char *labels[] = {"--labels", "ring=canary,os=linux", NULL};
	fixture_start(&fx, "console-run", labels);
	pc_t c = fx.c;
	agent_t a = fx.a;
	th_upstream *up = fx.up;
	key_t_ k = fx.k;

	/* enrollment carried the labels */
	ck_assert(wait_console_file(&c, "enroll.json", "\"labels\"", 10000));
	char *enroll = pc_read(&c, "enroll.json");
	json_t *e = json_loads(enroll, 0, NULL);
	json_t *want_labels = json_pack("{s:s, s:s}", "ring", "canary", "os", "linux");
	ck_assert_msg(json_equal(json_object_get(e, "labels"), want_labels), "%s", enroll);
	json_decref(want_labels);
	json_decref(e);

	char *v1 = simple_bundle(redact_policy, 1, &k);
	pc_offer(&c, v1, 1, NULL, 0, 0, "\"1.0\"");
	wait_status(&a, "\"version\":1,");
	json_t *st = policy_status(&a);
	ck_assert_str_eq(json_string_value(json_object_get(st, "source")), "console");
	ck_assert(json_is_string(json_object_get(st, "activated_at")));
	ck_assert(json_is_null(json_object_get(st, "last_error")));
	json_decref(st);
	ck_assert_int_eq(upload(&a, up, CARD), 200);
	ck_assert_msg(upstream_saw(up, CARD_MASKED) && !upstream_saw(up, CARD), "v1 did not mask the card");

	/* a flow that started under v1 keeps it across the swap */
	th_client *old = th_client_connect_via_proxy(a.d.port, "127.0.0.1", th_upstream_port(up), a.d.ca_path, NULL);
	const char *hello = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello";
	th_client_send(old, hello, strlen(hello));
	free(th_client_recv_response(old, NULL, 10000));

	char *v2 = simple_bundle(block_policy, 2, &k);
	pc_offer(&c, v2, 2, NULL, 0, 0, "\"2.0\"");
	wait_status(&a, "\"version\":2,");
	ck_assert_msg(dlp_log_wait(&a.d, "event=policy_activated version=v2", 5000), "no activation line");

	char req[300];
	snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n%s",
		 strlen(CARD " old flow"), CARD " old flow");
	ck_assert_int_eq(th_client_send(old, req, strlen(req)), 0);
	char *res = th_client_recv_response(old, NULL, 10000);
	ck_assert_msg(res && th_client_status(res) == 200, "the old flow was dropped or blocked: %s", res);
	ck_assert_msg(upstream_saw(up, CARD_MASKED " old flow"), "the old flow did not keep v1");
	free(res);
	th_client_close(old);
	/* a new flow runs v2 */
	ck_assert_int_eq(upload(&a, up, CARD), 403);

	/* events name the bundle that decided them */
	ck_assert_msg(wait_console_file(&c, "events.ndjson", "\"policy_version\":\"v2\"", 15000),
		      "no event names v2");
	char *events = pc_read(&c, "events.ndjson");
	ck_assert_msg(strstr(events, "\"policy_version\":\"v1\"") && !strstr(events, "4111 1111 1111 1111"), "%s",
		      events);
	/* the status posts carry the policy object */
	ck_assert(wait_console_file(&c, "status.json", "\"policy\":{\"version\":2,\"source\":\"console\"", 10000));
	dlp_stop(&a.d);
	th_stop(&fx.c.proc); /* the console is gone (its certificate stays for the restart's --console-ca) */

	/* the console is gone: the restart runs v2 at once */
	const char *extra[] = {"--bundle-keys", fx.keys_path, NULL};
	agent_t b = agent_start(a.state, c.url, c.cert.chain_path, fx.w.ca.cert_path, extra);
	ck_assert_msg(dlp_log_wait(&b.d, "running the last known good bundle v2", 5000), "no last known good");
	st = policy_status(&b);
	ck_assert_str_eq(json_string_value(json_object_get(st, "source")), "last-known-good");
	ck_assert_int_eq(json_integer_value(json_object_get(st, "version")), 2);
	json_decref(st);
	ck_assert_int_eq(upload(&b, up, CARD), 403);
	fx.a = b; /* the one left to stop */
	fixture_stop(&fx);
	free(events), free(enroll), free(v1), free(v2);
}
END_TEST

typedef struct {
	const char *what;
	char *doc;            /* the active bundle offered */
	int64_t version;
	const char *expect;   /* in last_error */
} bad_t;

START_TEST(bad_bundles_are_refused_with_a_reason_and_the_running_policy_kept)
{
	fixture_t fx;
	fixture_start(&fx, "console-bad", NULL);
	pc_t c = fx.c;
	agent_t a = fx.a;
	th_upstream *up = fx.up;
	key_t_ k = fx.k, stranger = make_key("stranger.key");

	char *v2 = simple_bundle(redact_policy, 2, &k);
	pc_offer(&c, v2, 2, NULL, 0, 0, "\"2.0\"");
	wait_status(&a, "\"version\":2,");

	char *v3 = simple_bundle(block_policy, 3, &k);
	const char *broken[] = {"policy.lua", "local x = = 1\n", NULL};
	const char *failing[] = {"policy.lua", redact_policy, "tests/cards_test.lua",
				 "return { { name = 'cards are blocked', request = { body = '" CARD "' }, "
				 "expect = { verdict = 'block' } } }\n",
				 NULL};
	bad_t bad[] = {
		{"tampered file", edited(v3, tamper_file), 3, "SHA-256 differs"},
		{"file not in the manifest", edited(v3, add_unlisted_file), 3, "extra.lua"},
		{"bad signature", edited(v3, flip_signature), 3, "bad signature"},
		{"unknown key", simple_bundle(block_policy, 3, &stranger), 3, "unknown key"},
		{"older version", simple_bundle(block_policy, 1, &k), 1, "not newer"},
		{"equal version", simple_bundle(block_policy, 2, &k), 2, "not newer"},
		{"expired", make_bundle((const char *[]){"policy.lua", block_policy, NULL}, 3, &k, set_expired, NULL), 3,
		 "expired"},
		{"engine too old", make_bundle((const char *[]){"policy.lua", block_policy, NULL}, 3, &k, set_future_engine,
					       NULL),
		 3, "needs engine 99.0.0"},
		{"too many files", too_many_files(), 9, "256"},
		{"too large", too_large(), 9, "MiB"},
		{"path traversal", path_traversal(), 9, "../evil.lua"},
		{"invalid manifest JSON", crafted_document("{\"bundle_format\": 1, not json", json_object()), 9,
		 "manifest"},
		{"Lua that does not compile", make_bundle(broken, 3, &k, NULL, NULL), 3, "compile: policy.lua:1:"},
		{"tests that fail", make_bundle(failing, 3, &k, NULL, NULL), 3, "cards are blocked"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char etag[32];
		snprintf(etag, sizeof etag, "\"bad-%zu\"", i);
		int before = log_count(&a, "event=policy_error");
		pc_offer(&c, bad[i].doc, bad[i].version, NULL, 0, 0, etag);
		/* this offer's refusal, not the one before */
		for (int waited = 0; log_count(&a, "event=policy_error") == before; waited += 50) {
			ck_assert_msg(waited < 20000, "%s: no refusal", bad[i].what);
			usleep(50000);
		}
		wait_status(&a, bad[i].expect);
		ck_assert_msg(status_version(&a) == 2, "%s: the running version changed", bad[i].what);
		char *log = dlp_log(&a.d);
		ck_assert_msg(strstr(log, "event=policy_error") && strstr(log, bad[i].expect), "%s: not in the log",
			      bad[i].what);
		free(log);
		free(bad[i].doc);
	}
	json_t *st = policy_status(&a);
	ck_assert_msg(strstr(json_string_value(json_object_get(st, "last_error")), "cards are blocked"), "%s",
		      json_string_value(json_object_get(st, "last_error")));
	json_decref(st);
	/* v2 still decides, and the console heard of the refusals */
	ck_assert_int_eq(upload(&a, up, CARD), 200);
	ck_assert(upstream_saw(up, CARD_MASKED));
	ck_assert_msg(wait_console_file(&c, "status.json", "\"failed_version\":3", 10000), "no failed_version");
	/* a refused offer is not asked for again: its ETag goes with the one that runs */
	ck_assert(wait_console_file(&c, "polls.log", "\"2.0\", \"bad-13\"", 10000));

	/* garbage from the console: kept, said */
	pc_write(&c, "mode", "garbage");
	pc_offer(&c, v3, 3, NULL, 0, 0, "\"garbage\"");
	wait_status(&a, "not a policy offer");
	/* a console that stalls mid-body */
	pc_write(&c, "mode", "stall");
	pc_offer(&c, v3, 3, NULL, 0, 0, "\"stall\"");
	wait_status(&a, "stalled mid-answer");
	ck_assert(status_version(&a) == 2);

	/* a bundle that compiles but raises at run time: it runs, its fail
	 * mode (closed) decides, and the events name it */
	pc_write(&c, "mode", "");
	char *raising = simple_bundle(raising_policy, 4, &k);
	pc_offer(&c, raising, 4, NULL, 0, 0, "\"4.0\"");
	wait_status(&a, "\"version\":4,");
	ck_assert_int_eq(upload(&a, up, "anything"), 403);
	ck_assert(wait_console_file(&c, "events.ndjson", "\"policy_error\":true", 10000));
	char *events = pc_read(&c, "events.ndjson");
	const char *pe = strstr(events, "\"policy_error\":true");
	const char *line = pe;
	while (line > events && line[-1] != '\n')
		line--;
	ck_assert_msg(strstr(line, "\"policy_version\":\"v4\"") && strstr(line, "boom in on_request"), "%.600s", line);

	fixture_stop(&fx);
	free(events), free(raising), free(v2), free(v3);
}
END_TEST

START_TEST(keys_are_pinned_at_enrollment_and_rotated_by_signed_bundles)
{
	world_t w = world_new();
	pc_t c;
	pc_start(&c, "console-keys");
	key_t_ a_key = make_key("a.key"), b_key = make_key("b.key"), c_key = make_key("c.key");
	const key_t_ *first[] = {&a_key, NULL}, *other[] = {&c_key, NULL};
	char *a_list = key_list(first), *c_list = key_list(other);
	pc_write(&c, "bundle_keys", a_list);
	agent_t a = agent_start(NULL, c.url, c.cert.chain_path, w.ca.cert_path, NULL);

	char pin[800];
	snprintf(pin, sizeof pin, "%s/bundle-keys", a.state);
	for (int waited = 0; access(pin, F_OK) != 0 && waited < 10000; waited += 50)
		usleep(50000);
	struct stat sb;
	ck_assert_msg(stat(pin, &sb) == 0 && (sb.st_mode & 0777) == 0600, "the keys were not pinned 0600");
	char *pinned = agent_file(&a, "bundle-keys");
	ck_assert_str_eq(pinned, a_list);
	free(pinned);

	/* v1, signed by A, introduces B */
	const char *files[] = {"policy.lua", redact_policy, NULL};
	char *v1 = make_bundle(files, 1, &a_key, introduce_key, &b_key);
	pc_offer(&c, v1, 1, NULL, 0, 0, "\"1.0\"");
	wait_status(&a, "\"version\":1,");
	pinned = agent_file(&a, "bundle-keys");
	ck_assert_msg(strstr(pinned, b_key.pub.key_id) && strstr(pinned, a_key.pub.key_id), "%s", pinned);
	free(pinned);
	/* v2, signed by B, retires A */
	char *v2 = make_bundle(files, 2, &b_key, retire_key, &a_key);
	pc_offer(&c, v2, 2, NULL, 0, 0, "\"2.0\"");
	wait_status(&a, "\"version\":2,");
	pinned = agent_file(&a, "bundle-keys");
	ck_assert_msg(strstr(pinned, b_key.pub.key_id) && !strstr(pinned, a_key.pub.key_id), "%s", pinned);
	free(pinned);
	/* A is no longer trusted */
	char *v3 = simple_bundle(block_policy, 3, &a_key);
	pc_offer(&c, v3, 3, NULL, 0, 0, "\"3.0\"");
	wait_status(&a, "unknown key");
	ck_assert(status_version(&a) == 2);

	/* a re-enrollment that answers other keys changes nothing */
	pc_write(&c, "bundle_keys", c_list);
	char *before = pc_read(&c, "enroll.json");
	pc_write(&c, "enroll.json", "");
	pc_write(&c, "mode", "unauthorized");
	ck_assert_msg(wait_console_file(&c, "enroll.json", "agent_id", 15000), "the agent did not enroll again");
	pinned = agent_file(&a, "bundle-keys");
	ck_assert_msg(strstr(pinned, b_key.pub.key_id) && !strstr(pinned, c_key.pub.key_id), "re-enrollment replaced the pin: %s", pinned);
	free(pinned);
	dlp_stop(&a.d);
	pc_stop(&c);
	free(before), free(v1), free(v2), free(v3), free(a_list), free(c_list);
	world_free(&w);
}
END_TEST

START_TEST(shadow_events_only_when_the_verdicts_differ)
{
	fixture_t fx;
	fixture_start(&fx, "console-shadow", NULL);
	pc_t c = fx.c;
	agent_t a = fx.a;
	th_upstream *up = fx.up;
	key_t_ k = fx.k;

	char *v1 = simple_bundle(redact_policy, 1, &k), *v2 = simple_bundle(block_policy, 2, &k);
	pc_offer(&c, v1, 1, v2, 2, 100, "\"1.2\"");
	wait_status(&a, "\"shadow_version\":2");
	ck_assert_int_eq(status_version(&a), 1);
	ck_assert_int_eq(upload(&a, up, CARD), 200);          /* redact vs block: a shadow event */
	ck_assert_int_eq(upload(&a, up, "nothing here"), 200); /* pass vs pass: none */
	ck_assert(upstream_saw(up, CARD_MASKED));
	ck_assert_msg(wait_console_file(&c, "status.json", "\"shadow_evaluated\":2,\"shadow_changed\":1", 15000),
		      "the status does not count 2 evaluated, 1 changed");
	ck_assert(wait_console_file(&c, "events.ndjson", "\"event\":\"shadow\"", 10000));
	char *events = pc_read(&c, "events.ndjson");
	int shadows = 0;
	for (const char *p = events; (p = strstr(p, "\"event\":\"shadow\"")); p++)
		shadows++;
	ck_assert_msg(shadows == 1, "%d shadow events:\n%s", shadows, events);
	const char *s = strstr(events, "\"event\":\"shadow\"");
	const char *nl = strchr(s, '\n');
	char *line = strndup(s, (size_t)(nl - s));
	ck_assert_msg(strstr(line, "\"policy_version\":\"v2\"") && strstr(line, "\"verdict\":\"block\"") &&
			      strstr(line, "\"active_verdict\":\"redact\"") &&
			      strstr(line, "\"active_policy_version\":\"v1\"") && !strstr(line, "4111 1111 1111 1111"),
		      "%s", line);
	/* the schema knows it (the real validator, as for every event) */
	char *complaint = ajv_check_with("verdict.schema.json", events);
	ck_assert_msg(!complaint, "ajv: %s\n%s", complaint, events);

	/* no shadow in the offer: it ends */
	pc_offer(&c, v1, 1, NULL, 0, 0, "\"1.0\"");
	wait_status(&a, "\"shadow_version\":null");
	fixture_stop(&fx);
	free(line), free(events), free(v1), free(v2);
}
END_TEST

/* ---- the real console: bundles signed here pushed with its CLI (it
 * trusts only this test's key, --bundle-keys) and rolled out with it ---- */

#define REAL_SECRET "sync-test-enroll-secret-0123456789"

/* dlpgate-console policy push FILE, then activate|shadow v [--labels L]
 * [--sample S], on the console's state dir; fails the test if refused. */
static void real_rollout(const char *console_dir, const char *doc, int64_t v, const char *kind, const char *labels,
			 int sample)
{
	char name[64], vs[24], ss[16];
	snprintf(name, sizeof name, "real-v%lld.dlpbundle", (long long)v);
	char *file = th_path(name);
	th_write_file(file, doc, strlen(doc), 0644);
	snprintf(vs, sizeof vs, "%lld", (long long)v);
	snprintf(ss, sizeof ss, "%d", sample);
	const char *push[] = {dlp_console_bin(), "policy", "push", "--state-dir", console_dir, file, NULL};
	bool shadow = !strcmp(kind, "shadow");
	const char *roll[12] = {dlp_console_bin(), "policy", shadow ? "shadow" : "activate", vs, "--state-dir",
				console_dir};
	int n = 6;
	if (labels) {
		roll[n++] = "--labels";
		roll[n++] = labels;
	}
	if (shadow) {
		roll[n++] = "--sample";
		roll[n++] = ss;
	}
	const char *const *steps[] = {push, roll};
	for (int i = 0; i < 2; i++) {
		char *out = NULL, *err = NULL;
		int rc = th_run((char *const *)steps[i], NULL, 0, &out, NULL, &err, 60000);
		ck_assert_msg(rc == 0, "%s %s: exit %d: %s%s", steps[i][1], steps[i][2], rc, out, err);
		free(out), free(err);
	}
	free(file);
}

static void agent_id_of(agent_t *a, char id[37])
{
	for (int waited = 0;; waited += 50) {
		char *ident = agent_file(a, "agent.json");
		json_t *o = json_loads(ident, 0, NULL);
		bool enrolled = json_string_value(json_object_get(o, "token")) != NULL;
		if (enrolled)
			snprintf(id, 37, "%s", json_string_value(json_object_get(o, "agent_id")));
		json_decref(o);
		free(ident);
		if (enrolled)
			return;
		ck_assert_msg(waited < 15000, "the agent did not enroll with the real console");
		usleep(50000);
	}
}

START_TEST(the_real_console_rolls_out_to_canaries_only_and_shadows)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	char *dir = th_path("real-console");
	int port = th_free_port();
	char listen[64], console_url[64], pem[700];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	snprintf(console_url, sizeof console_url, "https://127.0.0.1:%d", port);
	snprintf(pem, sizeof pem, "%s/console.pem", dir);
	key_t_ k = make_key("real.key");
	const key_t_ *trusted[] = {&k, NULL};
	char *keys = key_list(trusted);
	char *keys_path = th_path("real-keys.txt");
	th_write_file(keys_path, keys, strlen(keys), 0644);
	const char *cargv[] = {dlp_console_bin(), "run", "--listen", listen, "--state-dir", dir, "--enroll-secret",
			       REAL_SECRET, "--bundle-keys", keys_path, NULL};
	th_proc console = th_spawn((char *const *)cargv, "real-console.log");
	ck_assert_msg(th_wait_port(port, 15000), "the console did not listen");
	const char *tc[] = {dlp_console_bin(), "admin", "token", "create", "--state-dir", dir, NULL};
	char *admin = NULL, *err = NULL;
	ck_assert(th_run((char *const *)tc, NULL, 0, &admin, NULL, &err, 30000) == 0);
	admin[strcspn(admin, "\n")] = '\0';
	agent_t ag[2];
	const char *rings[] = {"canary", "stable"};
	char ids[2][37];
	for (int i = 0; i < 2; i++) {
		char labels[32];
		snprintf(labels, sizeof labels, "ring=%s", rings[i]);
		const char *extra[] = {"--bundle-keys", keys_path, "--labels", labels, "--enroll-secret", REAL_SECRET,
				       NULL};
		ag[i] = agent_start(NULL, console_url, pem, w.ca.cert_path, extra);
		agent_id_of(&ag[i], ids[i]);
	}
	char *v1 = simple_bundle(redact_policy, 1, &k), *v2 = simple_bundle(block_policy, 2, &k),
	     *v3 = simple_bundle(block_policy, 3, &k);
	real_rollout(dir, v1, 1, "active", NULL, 0);
	for (int i = 0; i < 2; i++) {
		wait_status(&ag[i], "\"version\":1,");
		ck_assert_int_eq(upload(&ag[i], up, CARD), 200);
	}
	ck_assert(upstream_saw(up, CARD_MASKED) && !upstream_saw(up, CARD));
	/* v2 for the canaries only, then v3 in shadow for everyone: two
	 * changes by another process, each seen by the running console */
	real_rollout(dir, v2, 2, "active", "ring=canary", 0);
	real_rollout(dir, v3, 3, "shadow", NULL, 100);
	wait_status(&ag[0], "\"version\":2,");
	wait_status(&ag[1], "\"shadow_version\":3");
	ck_assert_int_eq(upload(&ag[0], up, CARD), 403);
	ck_assert_int_eq(status_version(&ag[1]), 1);
	/* the stable agent's redact would be a block under v3: a shadow event */
	ck_assert_int_eq(upload(&ag[1], up, CARD), 200);
	/* the console has the shadow event, naming both versions */
	char auth[200], u[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin);
	snprintf(u, sizeof u, "%s/api/v1/events?kind=shadow", console_url);
	bool seen = false;
	char *out = NULL;
	for (int waited = 0; !seen && waited < 20000; waited += 200) {
		free(out), free(err);
		const char *args[] = {"-s", "--cacert", pem, "-H", auth, u, NULL};
		th_curl(args, &out, NULL, &err);
		seen = strstr(out, "\"active_policy_version\":\"v1\"") && strstr(out, "\"policy_version\":\"v3\"");
		if (!seen)
			usleep(200000);
	}
	ck_assert_msg(seen, "no shadow event at the console: %s", out);
	/* and knows which version each agent runs, from their status posts */
	snprintf(u, sizeof u, "%s/api/v1/agents", console_url);
	char want[2][200];
	snprintf(want[0], sizeof want[0], "\"agent_id\": \"%s\"", ids[0]);
	seen = false;
	for (int waited = 0; !seen && waited < 20000; waited += 200) {
		free(out), free(err);
		const char *args[] = {"-s", "--cacert", pem, "-H", auth, u, NULL};
		th_curl(args, &out, NULL, &err);
		json_t *o = json_loads(out, 0, NULL);
		size_t i;
		json_t *agent;
		int right = 0;
		json_array_foreach(json_object_get(o, "agents"), i, agent) {
			json_t *pol = json_object_get(json_object_get(agent, "status"), "policy");
			const char *id = json_string_value(json_object_get(agent, "agent_id"));
			json_int_t v = json_integer_value(json_object_get(pol, "version"));
			json_int_t sv = json_integer_value(json_object_get(pol, "shadow_version"));
			right += id && ((!strcmp(id, ids[0]) && v == 2) || (!strcmp(id, ids[1]) && v == 1 && sv == 3));
		}
		json_decref(o);
		seen = right == 2;
		if (!seen)
			usleep(200000);
	}
	ck_assert_msg(seen, "the console does not know what the agents run: %s", out);
	for (int i = 0; i < 2; i++) {
		char *log = dlp_log(&ag[i].d);
		ck_assert_msg(!strstr(log, "status_failed"), "the console refused a status post:\n%s", log);
		free(log);
		dlp_stop(&ag[i].d);
	}
	th_stop(&console);
	free(out), free(err), free(admin), free(v1), free(v2), free(v3), free(keys), free(keys_path), free(dir);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

Suite *sync_suite(void)
{
	Suite *s = suite_create("sync");
	TCase *t = tcase_create("sync");
	tcase_set_timeout(t, 180);
	tcase_add_test(t, first_start_without_a_console_runs_the_built_in_policy);
	tcase_add_test(t, the_console_bundle_runs_swaps_without_dropping_flows_and_survives_a_restart);
	tcase_add_test(t, bad_bundles_are_refused_with_a_reason_and_the_running_policy_kept);
	tcase_add_test(t, keys_are_pinned_at_enrollment_and_rotated_by_signed_bundles);
	tcase_add_test(t, shadow_events_only_when_the_verdicts_differ);
	tcase_add_test(t, the_real_console_rolls_out_to_canaries_only_and_shadows);
	suite_add_tcase(s, t);
	return s;
}
