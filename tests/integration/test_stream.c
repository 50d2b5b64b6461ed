/*
 * Streaming: a 1 GiB download and a 1 GiB upload pass through an
 * intercepted connection while the proxy's peak RSS stays under a fixed
 * bound. (Under ASan the size is smaller and the bound looser: shadow memory
 * and quarantine are not the proxy's.)
 */
#include "dlp.h"
#include "suites.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t big_size(void)
{
	return dlp_sanitized() ? (size_t)256 << 20 : (size_t)1 << 30;
}

static long rss_bound_kib(void)
{
	return dlp_sanitized() ? 400 * 1024 : 64 * 1024;
}

START_TEST(gigabyte_download_bounded_memory)
{
	world_t w = world_new();
	th_nginx n = th_nginx_start(&w.server, NULL);
	th_nginx_add_file(&n, "big", big_size());
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	char *u = url("localhost", n.port, "/big", true);
	char *out = NULL, *err = NULL;
	const char *args[] = {u, "-o", "/dev/null", "-w", "%{http_code} %{size_download}", NULL};
	ck_assert_msg(dlp_curl(&d, args, &out, &err) == 0, "%s", err);
	char want[64];
	snprintf(want, sizeof want, "200 %zu", big_size());
	ck_assert_msg(!strcmp(out, want), "%s", out);
	long peak = th_rss_peak_kib(d.proc.pid);
	ck_assert_msg(peak < rss_bound_kib(), "peak RSS %ld KiB over %ld KiB", peak, rss_bound_kib());
	free(out), free(err), free(u);
	dlp_stop(&d);
	th_nginx_stop(&n);
	world_free(&w);
}
END_TEST

START_TEST(gigabyte_upload_bounded_memory)
{
	world_t w = world_new();
	th_upstream *up = th_upstream_start(&w.server);
	dlp_t d = dlp_start(w.ca.cert_path, NULL, NULL);
	char *path = th_path("upload.big");
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)big_size()), 0); /* sparse zeros */
	close(fd);
	char *u = url("localhost", th_upstream_port(up), "/sink", true);
	char *out = NULL, *err = NULL;
	const char *args[] = {"-X", "POST", "-T", path, u, NULL};
	ck_assert_msg(dlp_curl(&d, args, &out, &err) == 0, "%s", err);
	char want[64];
	snprintf(want, sizeof want, "\"body_len\":%zu", big_size());
	ck_assert_msg(strstr(out, want), "%s", out);
	long peak = th_rss_peak_kib(d.proc.pid);
	ck_assert_msg(peak < rss_bound_kib(), "peak RSS %ld KiB over %ld KiB", peak, rss_bound_kib());
	unlink(path);
	free(out), free(err), free(u), free(path);
	dlp_stop(&d);
	th_upstream_stop(up);
	world_free(&w);
}
END_TEST

Suite *stream_suite(void)
{
	Suite *s = suite_create("stream");
	TCase *t = tcase_create("big");
	tcase_set_timeout(t, 300);
	tcase_add_test(t, gigabyte_download_bounded_memory);
	tcase_add_test(t, gigabyte_upload_bounded_memory);
	suite_add_tcase(s, t);
	return s;
}
