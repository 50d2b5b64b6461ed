/*
 * nginx as a real HTTPS upstream: the peer a proxy meets in production, with its own TLS
 * stack and HTTP implementation, so tests do not only prove the proxy agrees with itself.
 *
 * Each instance gets a directory of its own under th_tmpdir() holding nginx.conf, the
 * logs, the pid file, every temp path and the document root, so instances never share
 * state and nothing is written outside the temp dir (the Debian build's defaults point at
 * /var/lib/nginx and /run). nginx runs in the foreground (daemon off) so it is our child
 * and th_stop reaches it; SIGTERM is nginx's fast shutdown.
 *
 * The port comes from th_free_port(), so another process can take it between our check
 * and nginx's bind; if nginx reports "Address already in use" we retry with a new port.
 */
#include "harness/harness.h"
#include "harness/harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NGINX_BIN "/usr/sbin/nginx"
#define SPARSE_FROM ((size_t)64 << 20)

static int nginx_counter;

/* root and dir of every instance not stopped yet, freed at exit: a test that forgets
 * th_nginx_stop gets its nginx stopped by the process cleanup, and must not also fail
 * LeakSanitizer over two strings. */
static char **owned_strings;
static size_t n_owned_strings, cap_owned_strings;

static void own_string(char *s)
{
	if (n_owned_strings == cap_owned_strings) {
		cap_owned_strings = cap_owned_strings ? cap_owned_strings * 2 : 16;
		owned_strings = th_xrealloc(owned_strings, cap_owned_strings * sizeof *owned_strings);
	}
	owned_strings[n_owned_strings++] = s;
}

static void free_owned_string(char *s)
{
	for (size_t i = 0; i < n_owned_strings; i++)
		if (owned_strings[i] == s) {
			owned_strings[i] = owned_strings[--n_owned_strings];
			break;
		}
	free(s);
}

void th_nginx_free_all(void)
{
	for (size_t i = 0; i < n_owned_strings; i++) free(owned_strings[i]);
	free(owned_strings);
	owned_strings = NULL;
	n_owned_strings = cap_owned_strings = 0;
}

static void make_dir(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST) th_fail("nginx: mkdir %s: %s", path, strerror(errno));
}

static char *nginx_conf(const char *dir, int port, const th_cert *server, const char *extra)
{
	th_buf conf = {0};
	th_buf_puts(&conf, "daemon off;\nmaster_process on;\nworker_processes 1;\n");
	/* As root nginx would switch workers to "nobody", who cannot read the test files. */
	if (geteuid() == 0) th_buf_puts(&conf, "user root;\n");
	th_buf_printf(&conf,
	              "error_log %s/error.log info;\n"
	              "pid %s/nginx.pid;\n"
	              "lock_file %s/nginx.lock;\n"
	              "events { worker_connections 4096; }\n"
	              "http {\n"
	              "  access_log off;\n"
	              "  client_body_temp_path %s/tmp/body;\n"
	              "  proxy_temp_path %s/tmp/proxy;\n"
	              "  fastcgi_temp_path %s/tmp/fastcgi;\n"
	              "  uwsgi_temp_path %s/tmp/uwsgi;\n"
	              "  scgi_temp_path %s/tmp/scgi;\n"
	              "  types { text/plain txt; text/html html; application/json json; }\n"
	              "  default_type application/octet-stream;\n"
	              "  sendfile on;\n"
	              "  keepalive_requests 100000;\n"
	              "  keepalive_timeout 120s;\n"
	              "  server {\n"
	              "    listen 127.0.0.1:%d%s;\n"
	              "    server_name localhost;\n"
	              "    root %s/www;\n"
	              "    client_max_body_size 0;\n",
	              dir, dir, dir, dir, dir, dir, dir, dir, port, server ? " ssl" : "", dir);
	if (server)
		th_buf_printf(&conf,
		              "    ssl_certificate %s;\n"
		              "    ssl_certificate_key %s;\n"
		              "    ssl_protocols TLSv1.2 TLSv1.3;\n",
		              server->chain_path, server->key_path);
	if (extra) th_buf_printf(&conf, "%s\n", extra);
	th_buf_puts(&conf, "  }\n}\n");
	return th_buf_take(&conf, NULL);
}

static void write_pattern_file(const char *path, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) th_fail("nginx file %s: open: %s", path, strerror(errno));
	if (size >= SPARSE_FROM) {
		/* Sparse: a 1 GiB body for throughput tests costs no disk (content is zeros). */
		if (ftruncate(fd, (off_t)size) != 0) th_fail("nginx file %s: ftruncate: %s", path, strerror(errno));
	} else {
		static unsigned char block[65536]; /* a multiple of the pattern's 256-byte period */
		th_pattern_fill(block, sizeof block, 0);
		size_t left = size;
		while (left > 0) {
			size_t take = left < sizeof block ? left : sizeof block;
			ssize_t n = write(fd, block, take);
			if (n < 0 && errno == EINTR) continue;
			if (n <= 0) th_fail("nginx file %s: write: %s", path, strerror(errno));
			left -= (size_t)n;
			/* short writes would shift the pattern; a regular file does not do them */
			if ((size_t)n != take) th_fail("nginx file %s: short write", path);
		}
	}
	close(fd);
}

void th_nginx_add_file(th_nginx *n, const char *name, size_t size)
{
	if (!n || !n->root) th_fail("th_nginx_add_file %s: nginx not started", name);
	char *path = th_xasprintf("%s/%s", n->root, name);
	write_pattern_file(path, size);
	free(path);
}

/* Start nginx on one port; true once it listens, false if the port was taken. */
static bool try_start(th_nginx *n, const th_cert *server, const char *extra)
{
	n->port = th_free_port();
	char *conf = nginx_conf(n->dir, n->port, server, extra);
	char *conf_path = th_xasprintf("%s/nginx.conf", n->dir);
	th_write_file(conf_path, conf, strlen(conf), 0644);
	free(conf);
	char *error_log = th_xasprintf("%s/error.log", n->dir);
	unlink(error_log);

	/* -e: even errors before the config is read go to our error.log, not Debian's path */
	char *argv[] = {NGINX_BIN, "-p", n->dir, "-c", conf_path, "-e", error_log, NULL};
	const char *base = strrchr(n->dir, '/') + 1;
	char *log_name = th_xasprintf("%s/stdout.log", base);
	n->proc = th_spawn(argv, log_name);
	free(log_name);
	free(conf_path);

	int64_t deadline = th_now_ms() + 10000;
	for (;;) {
		int code = th_wait(&n->proc, 0);
		if (code >= 0) {
			char *errors = th_read_file(error_log, NULL);
			char *output = th_log(&n->proc);
			bool port_taken = errors && strstr(errors, "Address already in use");
			if (port_taken) {
				free(errors);
				free(output);
				free(error_log);
				th_stop(&n->proc);
				return false;
			}
			char *msg = th_xasprintf("nginx exited with code %d before listening on port %d\n"
			                         "error.log:\n%s\noutput:\n%s",
			                         code, n->port, errors ? th_tail(errors, 3000) : "(none)",
			                         th_tail(output, 1500));
			free(errors);
			free(output);
			free(error_log);
			th_fail("%s", msg);
		}
		if (th_port_accepts(n->port)) break;
		if (th_now_ms() >= deadline) {
			char *errors = th_read_file(error_log, NULL);
			char *msg = th_xasprintf("nginx did not listen on port %d within 10 s\nerror.log:\n%s",
			                         n->port, errors ? th_tail(errors, 3000) : "(none)");
			free(errors);
			free(error_log);
			th_stop(&n->proc);
			th_fail("%s", msg);
		}
		th_sleep_ms(10);
	}
	free(error_log);
	return true;
}

th_nginx th_nginx_start(const th_cert *server, const char *extra_server_conf)
{
	if (access(NGINX_BIN, X_OK) != 0) th_fail("th_nginx_start: %s: %s", NGINX_BIN, strerror(errno));
	th_nginx n = {0};
	char *name = th_xasprintf("nginx-%d", ++nginx_counter);
	n.dir = th_path(name);
	free(name);
	n.root = th_xasprintf("%s/www", n.dir);
	own_string(n.dir);
	own_string(n.root);
	make_dir(n.dir);
	make_dir(n.root);
	char *tmp = th_xasprintf("%s/tmp", n.dir);
	make_dir(tmp);
	free(tmp);

	char *hello = th_xasprintf("%s/hello.txt", n.root);
	th_write_file(hello, "hello from nginx\n", 17, 0644);
	free(hello);
	th_nginx_add_file(&n, "1k", 1024);
	th_nginx_add_file(&n, "64k", 65536);

	for (int attempt = 1;; attempt++) {
		if (try_start(&n, server, extra_server_conf)) return n;
		if (attempt == 3) th_fail("th_nginx_start: port taken by someone else three times running");
	}
}

void th_nginx_stop(th_nginx *n)
{
	if (!n) return;
	th_stop(&n->proc);
	if (n->root) free_owned_string(n->root);
	if (n->dir) free_owned_string(n->dir);
	*n = (th_nginx){0};
}
