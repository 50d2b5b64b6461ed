/* Small modules: LRU, host globs, config loading, proxy request targets,
 * local replies. */
#include "suites.h"
#include "core/config.h"
#include "core/hostglob.h"
#include "core/lru.h"
#include "tls/pinned.h"
#include "core/metrics.h"
#include "http/reply.h"
#include "net/addr.h"
#include "sources/explicit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int freed;
static void count_free(void *v)
{
	(void)v;
	freed++;
}

START_TEST(lru_evicts_least_recent_and_expires)
{
	freed = 0;
	lru_t *c = lru_new(3, count_free);
	int a, b, d, e;
	lru_put(c, "a", 1, &a, 0);
	lru_put(c, "b", 1, &b, 0);
	lru_put(c, "d", 1, &d, 0);
	ck_assert_ptr_eq(lru_get(c, "a", 1, 0), &a); /* a is now the most recent */
	lru_put(c, "e", 1, &e, 0);                   /* evicts b */
	ck_assert_ptr_null(lru_get(c, "b", 1, 0));
	ck_assert_ptr_eq(lru_get(c, "a", 1, 0), &a);
	ck_assert_int_eq(freed, 1);
	ck_assert_uint_eq(lru_count(c), 3);
	/* replacing frees the old value */
	lru_put(c, "a", 1, &b, 0);
	ck_assert_int_eq(freed, 2);
	/* expiry */
	lru_put(c, "t", 1, &a, 100);
	ck_assert_ptr_eq(lru_get(c, "t", 1, 99), &a);
	ck_assert_ptr_null(lru_get(c, "t", 1, 100));
	ck_assert(lru_remove(c, "e", 1));
	ck_assert(!lru_remove(c, "e", 1));
	lru_free(c);
	/* a big one: counts stay bounded under churn */
	lru_t *big = lru_new(1000, NULL);
	char key[32];
	for (int i = 0; i < 100000; i++) {
		int k = snprintf(key, sizeof key, "host-%d.example", i);
		lru_put(big, key, (size_t)k, big, 0);
	}
	ck_assert_uint_eq(lru_count(big), 1000);
	ck_assert_ptr_nonnull(lru_get(big, "host-99999.example", 18, 0));
	ck_assert_ptr_null(lru_get(big, "host-1.example", 14, 0));
	lru_free(big);
}
END_TEST

static void visit(void *ud, const void *key, size_t klen, void *value, uint64_t expires_ms)
{
	(void)value, (void)expires_ms;
	char *seen = ud;
	strncat(seen, key, klen);
}

/* Listing visits live entries most recent first and drops expired ones;
 * clearing empties and says how many it removed. */
START_TEST(lru_lists_and_clears)
{
	lru_t *c = lru_new(8, NULL);
	int v;
	lru_put(c, "a", 1, &v, 0);
	lru_put(c, "b", 1, &v, 50);
	lru_put(c, "c", 1, &v, 0);
	char seen[16] = "";
	lru_foreach(c, 10, visit, seen);
	ck_assert_str_eq(seen, "cba");
	seen[0] = '\0';
	lru_foreach(c, 50, visit, seen); /* b expired */
	ck_assert_str_eq(seen, "ca");
	ck_assert_uint_eq(lru_count(c), 2);
	ck_assert_uint_eq(lru_clear(c), 2);
	ck_assert_uint_eq(lru_count(c), 0);
	ck_assert_ptr_null(lru_get(c, "a", 1, 0));
	lru_free(c);
}
END_TEST

/* Pinned apps are keyed by identity; a flow without one is never kept. */
START_TEST(pinned_keys_by_app_identity)
{
	char k[PINNED_APP_MAX];
	ck_assert(pinned_app_key("com.acme.app", "ABCDE12345", "/Applications/A.app", 0, false, k));
	ck_assert_str_eq(k, "team:ABCDE12345:com.acme.app");
	ck_assert(pinned_app_key(NULL, NULL, "/usr/bin/curl", 1000, true, k));
	ck_assert_str_eq(k, "exe:1000:/usr/bin/curl");
	ck_assert(!pinned_app_key(NULL, NULL, "/usr/bin/curl", 0, false, k)); /* no owner known */
	ck_assert(!pinned_app_key(NULL, NULL, NULL, 0, false, k));          /* the explicit proxy */
	pinned_t *p = pinned_new(16, 60);
	pinned_add(p, "team:X:a", "example.com");
	pinned_add(p, "", "example.com"); /* nobody: ignored */
	pinned_add(p, NULL, "example.com");
	ck_assert(pinned_check(p, "team:X:a", "example.com"));
	ck_assert(!pinned_check(p, "team:X:b", "example.com"));
	ck_assert(!pinned_check(p, "team:X:a", "other.example"));
	ck_assert(!pinned_check(p, NULL, "example.com"));
	char *list = pinned_list_json(p);
	ck_assert_msg(strstr(list, "\"app\":\"team:X:a\"") && strstr(list, "\"server\":\"example.com\"") &&
			      strstr(list, "\"expires_in_s\":60"),
		      "%s", list);
	ck_assert_uint_eq(pinned_count(p), 1);
	free(list);
	ck_assert_uint_eq(pinned_clear(p), 1);
	ck_assert(!pinned_check(p, "team:X:a", "example.com"));
	pinned_free(p);
}
END_TEST

START_TEST(arrays_grow_by_doubling)
{
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	for (uint64_t i = 0; i < 100; i++) {
		ck_assert(bytebuf_grow_array(&v, sizeof *v, n, &cap, 4));
		ck_assert_uint_gt(cap, n);
		v[n++] = i * i;
	}
	ck_assert_uint_eq(cap, 128); /* 4, 8, ... 128 */
	for (uint64_t i = 0; i < 100; i++)
		ck_assert_uint_eq(v[i], i * i);
	size_t huge = SIZE_MAX / 8; /* doubling past SIZE_MAX / elem is refused, the array kept */
	ck_assert(!bytebuf_grow_array(&v, sizeof *v, huge, &huge, 4));
	ck_assert_uint_eq(v[99], 99 * 99);
	free(v);
}
END_TEST

START_TEST(hostglobs)
{
	ck_assert(hostglob_match("example.com", "example.com"));
	ck_assert(hostglob_match("example.com", "EXAMPLE.com."));
	ck_assert(!hostglob_match("example.com", "www.example.com"));
	ck_assert(hostglob_match("*.example.com", "www.example.com"));
	ck_assert(hostglob_match("*.example.com", "a.b.example.com"));
	ck_assert(!hostglob_match("*.example.com", "example.com"));
	ck_assert(!hostglob_match("*.example.com", "evilexample.com"));
	ck_assert(!hostglob_match("*.example.com", "example.com.evil.net"));
	ck_assert(hostglob_match("*", "anything"));
	ck_assert(hostglob_match("api-?.example", "api-1.example"));
	ck_assert(!hostglob_match("api-?.example", "api-12.example"));
	ck_assert(hostglob_match("10.0.0.*", "10.0.0.7"));
	/* pathological patterns stay linear */
	char host[300];
	memset(host, 'a', 250);
	strcpy(host + 250, ".x");
	ck_assert(!hostglob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*b", host));
	ck_assert_ptr_null(hostglob_check("*.corp.example"));
	ck_assert_ptr_nonnull(hostglob_check("bad host"));
	ck_assert_ptr_nonnull(hostglob_check(""));
}
END_TEST

static const char *write_tmp(const char *text)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/dlpgate-config-%d.json", unit_tmp_base(), (int)getpid());
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

START_TEST(config_loading)
{
	config_t c;
	char err[512];
	config_defaults(&c);
	ck_assert_uint_eq(c.header_bytes, 65536);
	const char *p = write_tmp("{\"bypass_hosts\": [\"*.bank.example\", \"pinned.example\"],\n"
				  " \"limits\": {\"max_connections\": 50, \"header_bytes\": 8192},\n"
				  " \"timeouts\": {\"idle_ms\": 5000}, \"tls\": {\"min_version\": \"1.3\"}, \"workers\": 2}");
	ck_assert_msg(config_load_file(&c, p, err, sizeof err), "%s", err);
	ck_assert_uint_eq(c.n_bypass_hosts, 2);
	ck_assert_str_eq(c.bypass_hosts[0], "*.bank.example");
	ck_assert_uint_eq(c.max_connections, 50);
	ck_assert_uint_eq(c.header_bytes, 8192);
	ck_assert_uint_eq(c.idle_timeout_ms, 5000);
	ck_assert_uint_eq(c.keepalive_timeout_ms, 60000); /* untouched default */
	ck_assert_int_eq(c.tls_min_version, TLS_MIN_1_3);
	ck_assert_uint_eq(c.workers, 2);
	config_free(&c);

	struct {
		const char *json, *want;
	} bad[] = {
		{"{\"limits\": {\"max_conections\": 5}}", "unknown key \"limits.max_conections\""},
		{"{\"limit\": {}}", "unknown key \"limit\""},
		{"{\"limits\": {\"header_bytes\": 10}}", "out of range"},
		{"{\"limits\": {\"header_bytes\": \"big\"}}", "whole number"},
		{"{\"bypass_hosts\": \"x\"}", "must be a list"},
		{"{\"bypass_hosts\": [\"a b\"]}", "bypass_hosts entry \"a b\""},
		{"{\"limits\": {\n  \"header_bytes\": 1024,,\n}}", ":2:"},
		{"{\"workers\": 1, \"workers\": 2}", "duplicate"},
		{"[1]", "must be a JSON object"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		config_defaults(&c);
		p = write_tmp(bad[i].json);
		ck_assert_msg(!config_load_file(&c, p, err, sizeof err), "accepted: %s", bad[i].json);
		ck_assert_msg(strstr(err, bad[i].want) && strstr(err, p), "for %s got: %s", bad[i].json, err);
		config_free(&c);
	}
	config_defaults(&c);
	ck_assert(!config_load_file(&c, "/nonexistent/dlpgate.json", err, sizeof err));
	ck_assert(strstr(err, "cannot read"));
	unlink(p);
}
END_TEST

START_TEST(proxy_targets)
{
	char host[256];
	uint16_t port;
	const char *path;
	size_t pl;
	ck_assert_ptr_null(explicit_parse_authority("Example.com:443", 15, 0, host, sizeof host, &port));
	ck_assert_str_eq(host, "example.com");
	ck_assert_uint_eq(port, 443);
	ck_assert_ptr_null(explicit_parse_authority("[::1]:8443", 10, 0, host, sizeof host, &port));
	ck_assert_str_eq(host, "::1");
	ck_assert_ptr_nonnull(explicit_parse_authority("example.com", 11, 0, host, sizeof host, &port));
	ck_assert_ptr_nonnull(explicit_parse_authority("example.com:0", 13, 0, host, sizeof host, &port));
	ck_assert_ptr_nonnull(explicit_parse_authority("example.com:99999", 17, 0, host, sizeof host, &port));
	ck_assert_ptr_nonnull(explicit_parse_authority("exa mple.com:1", 14, 0, host, sizeof host, &port));
	ck_assert_ptr_nonnull(explicit_parse_authority("a.com:1x", 8, 0, host, sizeof host, &port));

	const char *t = "http://Host.example:8080/p/q?x=1#frag";
	ck_assert_ptr_null(explicit_parse_absolute(t, strlen(t), host, sizeof host, &port, &path, &pl));
	ck_assert_str_eq(host, "host.example");
	ck_assert_uint_eq(port, 8080);
	ck_assert_int_eq((int)pl, (int)strlen("/p/q?x=1"));
	t = "http://h.example";
	ck_assert_ptr_null(explicit_parse_absolute(t, strlen(t), host, sizeof host, &port, &path, &pl));
	ck_assert_uint_eq(port, 80);
	ck_assert(pl == 1 && path[0] == '/');
	t = "https://h.example/";
	ck_assert_ptr_nonnull(explicit_parse_absolute(t, strlen(t), host, sizeof host, &port, &path, &pl));
	t = "http://user:pw@h.example/";
	ck_assert_ptr_nonnull(explicit_parse_absolute(t, strlen(t), host, sizeof host, &port, &path, &pl));
	t = "/origin-form";
	ck_assert_ptr_nonnull(explicit_parse_absolute(t, strlen(t), host, sizeof host, &port, &path, &pl));
}
END_TEST

/* One reading of ADDR:PORT for every flag that takes one. */
START_TEST(command_line_addresses)
{
	struct sockaddr_storage ss;
	char err[200];
	ck_assert(addr_parse("--listen", "127.0.0.1:3128", &ss, err, sizeof err));
	ck_assert(ss.ss_family == AF_INET && ntohs(((struct sockaddr_in *)&ss)->sin_port) == 3128);
	ck_assert(addr_is_loopback(&ss));
	ck_assert(addr_parse("--listen", "LocalHost:1", &ss, err, sizeof err) && addr_is_loopback(&ss));
	ck_assert(addr_parse("--listen", "[::1]:443", &ss, err, sizeof err));
	ck_assert(ss.ss_family == AF_INET6 && addr_is_loopback(&ss));
	ck_assert(addr_parse("--listen", "::1:443", &ss, err, sizeof err) && ss.ss_family == AF_INET6);
	ck_assert(addr_parse("--listen", "[::]:8443", &ss, err, sizeof err) && !addr_is_loopback(&ss));
	ck_assert(addr_parse("--listen", "10.1.2.3:80", &ss, err, sizeof err) && !addr_is_loopback(&ss));
	static const struct {
		const char *text, *want;
	} bad[] = {{"3128", "expected ADDR:PORT"},	  {":3128", "expected ADDR:PORT"},
		   {"127.0.0.1:", "expected ADDR:PORT"}, {"127.0.0.1:0", "port must be"},
		   {"127.0.0.1:65536", "port must be"},	  {"127.0.0.1:80x", "port must be"},
		   {"example.com:80", "address must be"}, {"[127.0.0.1]:80", "address must be"}};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		ck_assert_msg(!addr_parse("--metrics", bad[i].text, &ss, err, sizeof err), "%s accepted", bad[i].text);
		ck_assert_msg(strstr(err, bad[i].want) && !strncmp(err, "--metrics ", 10), "%s: %s", bad[i].text, err);
	}
}
END_TEST

/* Counters the workers add to at once, without a lock: every add counted,
 * new label values appended once, and past the cap folded into "other". */
static metrics_family_t *contended;

static void *add_many(void *arg)
{
	(void)arg;
	char v[16];
	for (int i = 0; i < 20000; i++) {
		snprintf(v, sizeof v, "v%d", i % 300); /* more values than a family holds */
		metrics_add(contended, 1, v, "x", NULL);
	}
	return NULL;
}

START_TEST(metrics_count_every_add_without_a_lock)
{
	contended = metrics_counter("dlpgate_test_total", "Test.", "value,other");
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, add_many, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	uint64_t sum = 0;
	char v[16];
	for (int i = 0; i < METRICS_MAX_SERIES - 1; i++) {
		snprintf(v, sizeof v, "v%d", i);
		sum += metrics_value(contended, v, "x", NULL);
	}
	uint64_t other = metrics_value(contended, "other", "other", NULL);
	ck_assert_uint_gt(other, 0);
	ck_assert_uint_eq(sum + other, 4 * 20000);
	bytebuf_t out;
	bytebuf_init(&out, 0);
	ck_assert(metrics_render(&out) && bytebuf_cstr(&out));
	ck_assert(strstr(out.data, "# TYPE dlpgate_test_total counter\ndlpgate_test_total{value=\"v"));
	bytebuf_free(&out);
}
END_TEST

START_TEST(local_replies_negotiate)
{
	http_head_t h;
	http_head_init(&h, true, 4096, 16);
	reply_t r = {.status = 502, .code = "upstream-tls", .title = "Upstream TLS failed",
		     .detail = "the certificate of <x> failed: expired", .flow_id = 7};
	bytebuf_t out;
	bytebuf_init(&out, 0);
	/* no Accept: text */
	reply_build(&out, &r, NULL);
	bytebuf_cstr(&out);
	ck_assert(strstr(out.data, "HTTP/1.1 502 Bad Gateway\r\n"));
	ck_assert(strstr(out.data, "Content-Type: text/plain"));
	ck_assert(strstr(out.data, "X-Dlpgate-Error: upstream-tls\r\n"));
	ck_assert(strstr(out.data, "Connection: close\r\n"));
	ck_assert(strstr(out.data, "expired (flow 7)"));
	/* a browser: HTML, escaped */
	out.len = 0;
	http_head_add(&h, "Accept", "text/html,application/xhtml+xml");
	reply_build(&out, &r, &h);
	bytebuf_cstr(&out);
	ck_assert(strstr(out.data, "text/html"));
	ck_assert(strstr(out.data, "&#60;x&#62;"));
	ck_assert(!strstr(out.data, "<x>"));
	/* an API client: JSON */
	out.len = 0;
	http_head_set(&h, "Accept", "application/json");
	reply_build(&out, &r, &h);
	bytebuf_cstr(&out);
	ck_assert(strstr(out.data, "\"code\":\"upstream-tls\""));
	ck_assert(strstr(out.data, "\"flow\":7"));
	/* Content-Length is the body's */
	char *body = strstr(out.data, "\r\n\r\n") + 4;
	char want[64];
	snprintf(want, sizeof want, "Content-Length: %zu\r\n", strlen(body));
	ck_assert(strstr(out.data, want));
	bytebuf_free(&out);
	http_head_free(&h);
}
END_TEST

/* Pages never show where a file lives: paths in rules and reasons keep
 * only their last component; URLs and a lone /path are left as they are.
 * Rules name files relative to the policy's folder (sandbox.h) and keep
 * their folders; the cut stays for what a policy still writes itself: a
 * reason, an error, a chunk it loads under a name of its own choosing. */
START_TEST(pages_cut_machine_paths)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"/etc/dlpgate/policy.lua:12", "policy.lua:12"},
		{"...ng/path/rules/policy.lua:3", "policy.lua:3"},
		{"policy error, failing open: /var/lib/dlpgate/policy/x.lua:7: attempt to index nil",
		 "policy error, failing open: x.lua:7: attempt to index nil"},
		{"cannot read (/home/jane/secret dir/a.txt)", "cannot read (secret dir/a.txt)"},
		{"upload to /api refused", "upload to /api refused"},
		{"see https://example.com/a/b/c", "see https://example.com/a/b/c"},
		{"policy.lua:4", "policy.lua:4"},
		{"lib/rules.lua:5", "lib/rules.lua:5"},
		{"../rules/mine.lua:7", "../rules/mine.lua:7"},
		{"policy error, failing open: lib/rules.lua:4: boom", "policy error, failing open: lib/rules.lua:4: boom"},
		{"", ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[256];
		reply_strip_paths(cases[i].in, out, sizeof out);
		ck_assert_msg(!strcmp(out, cases[i].out), "%s -> %s", cases[i].in, out);
	}
	char tiny[5];
	reply_strip_paths("/a/b/policy.lua", tiny, sizeof tiny);
	ck_assert_str_eq(tiny, "poli");
	/* a block page as a browser gets it */
	reply_t r = {.status = 403, .code = "blocked", .title = "Blocked by policy",
		     .detail = "policy error, failing closed: /srv/p/policy.lua:9: boom", .rule = "/srv/p/policy.lua:9",
		     .event_id = "01900000-0000-7000-8000-000000000001", .flow_id = 3};
	http_head_t h;
	http_head_init(&h, true, 4096, 16);
	http_head_add(&h, "Accept", "text/html");
	bytebuf_t page;
	bytebuf_init(&page, 0);
	reply_build(&page, &r, &h);
	bytebuf_cstr(&page);
	ck_assert_msg(!strstr(page.data, "/srv/") && strstr(page.data, "<code>policy.lua:9</code>") &&
			      strstr(page.data, "01900000-0000-7000-8000-000000000001") &&
			      strstr(page.data, "frame-ancestors 'none'"),
		      "%s", page.data);
	bytebuf_free(&page);
	http_head_free(&h);
}
END_TEST

Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *t = tcase_create("core");
	tcase_add_test(t, lru_evicts_least_recent_and_expires);
	tcase_add_test(t, lru_lists_and_clears);
	tcase_add_test(t, pinned_keys_by_app_identity);
	tcase_add_test(t, hostglobs);
	tcase_add_test(t, arrays_grow_by_doubling);
	tcase_add_test(t, config_loading);
	tcase_add_test(t, proxy_targets);
	tcase_add_test(t, local_replies_negotiate);
	tcase_add_test(t, pages_cut_machine_paths);
	tcase_add_test(t, command_line_addresses);
	tcase_add_test(t, metrics_count_every_add_without_a_lock);
	suite_add_tcase(s, t);
	return s;
}
