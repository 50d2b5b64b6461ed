/*
 * upload: POSTs to the console with libcurl (see upload.h).
 *
 * Answers are read up to 64 KiB: the console's answers are small, and a
 * server that sends more is not one to keep reading from. Timeouts bound
 * every call so the uploader thread never hangs on a dead console.
 */
#include "report/upload.h"

#include "core/bytebuf.h"
#include "http/body.h"

#include <curl/curl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX (64 * 1024)

struct upload {
	CURL *curl;
	char base[512];
	char ca_file[512];
	unsigned mark;
};

static int mark_socket(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	(void)purpose;
#ifdef SO_MARK
	const unsigned *mark = arg;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, mark, sizeof *mark) != 0)
		return CURL_SOCKOPT_ERROR; /* unmarked, it could loop: do not connect */
#else
	(void)arg, (void)fd;
#endif
	return CURL_SOCKOPT_OK;
}

void upload_curl_setup(CURL *c, const char *ca_file, const unsigned *mark)
{
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* never through ourselves or another proxy */
	curl_easy_setopt(c, CURLOPT_USERAGENT, "dlpgate/" DLPGATE_VERSION);
	if (*mark) {
		curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, mark_socket);
		curl_easy_setopt(c, CURLOPT_SOCKOPTDATA, (void *)mark);
	}
	if (ca_file && ca_file[0]) {
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
}

upload_t *upload_new(const char *console_url, const char *ca_file, unsigned socket_mark, char *err, size_t errlen)
{
	if (strncmp(console_url, "https://", 8) || strlen(console_url) < 9) {
		snprintf(err, errlen, "--console %s: give the console's https:// address (the console speaks HTTPS only)",
			 console_url);
		return NULL;
	}
	upload_t *u = calloc(1, sizeof *u);
	if (!u || !(u->curl = curl_easy_init())) {
		free(u);
		snprintf(err, errlen, "cannot start libcurl");
		return NULL;
	}
	snprintf(u->base, sizeof u->base, "%s", console_url);
	size_t n = strlen(u->base);
	if (u->base[n - 1] == '/')
		u->base[n - 1] = '\0';
	snprintf(u->ca_file, sizeof u->ca_file, "%s", ca_file ? ca_file : "");
	u->mark = socket_mark;
	return u;
}

void upload_free(upload_t *u)
{
	if (!u)
		return;
	curl_easy_cleanup(u->curl);
	free(u);
}

void upload_result_free(upload_result_t *r)
{
	free(r->body);
	r->body = NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	bytebuf_t *b = arg;
	return bytebuf_append(b, p, size * n) ? size * n : 0; /* over the cap: libcurl aborts */
}

static void post(upload_t *u, const char *path, const char *token, const char *type, bool gzip, const void *body,
		 size_t len, upload_result_t *r)
{
	memset(r, 0, sizeof *r);
	char url[600], auth[128];
	snprintf(url, sizeof url, "%s%s", u->base, path);
	struct curl_slist *h = NULL;
	char ctype[64];
	snprintf(ctype, sizeof ctype, "Content-Type: %s", type);
	h = curl_slist_append(h, ctype);
	if (gzip)
		h = curl_slist_append(h, "Content-Encoding: gzip");
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
	bytebuf_t answer;
	bytebuf_init(&answer, ANSWER_MAX);
	CURL *c = u->curl;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
	upload_curl_setup(c, u->ca_file, &u->mark);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(h);
	if (rc != CURLE_OK) {
		snprintf(r->detail, sizeof r->detail, "%.40s: %s", path, curl_easy_strerror(rc));
		bytebuf_free(&answer);
		return;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_off_t ra = 0;
	if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		r->retry_after_s = (long)ra;
	if (bytebuf_append(&answer, "", 1)) {
		r->body = answer.data; /* the buffer's memory becomes the result's */
	} else {
		bytebuf_free(&answer);
	}
	if (r->status < 200 || r->status > 299) {
		/* The console's error is {"error", "detail"}: keep its words. */
		const char *d = r->body ? strstr(r->body, "\"detail\"") : NULL;
		snprintf(r->detail, sizeof r->detail, "%.40s: HTTP %ld%s%.180s", path, r->status, d ? " " : "", d ? d : "");
	}
}

void upload_json(upload_t *u, const char *path, const char *token, const char *json, upload_result_t *r)
{
	post(u, path, token, "application/json", false, json, strlen(json), r);
}

void upload_events(upload_t *u, const char *token, const char *ndjson, size_t len, upload_result_t *r)
{
	bytebuf_t z;
	bytebuf_init(&z, 0);
	if (!body_gzip(ndjson, len, &z)) {
		memset(r, 0, sizeof *r);
		snprintf(r->detail, sizeof r->detail, "cannot compress a batch of %zu bytes", len);
	} else {
		post(u, "/api/v1/events", token, "application/x-ndjson", true, z.data, z.len, r);
	}
	bytebuf_free(&z);
}
