/*
 * web: the web UI's files, served at / from --web-root (console-api.md
 * "Static assets"). Runs on the thread pool (a file read may block).
 *
 * The request path is checked before it touches the file system: only
 * [A-Za-z0-9._~-] segments, none starting with '.', no '%', no '//' (the
 * UI's assets need nothing else), so there is no decoding to get wrong and
 * no "..". The file found is then resolved with realpath() and must still
 * be under the root's own realpath (a symlink out is refused), a regular
 * file, at most WEB_MAX_FILE. Everything else that is not a file falls back
 * to index.html, so the UI's client-side routes load the app; a directory
 * is never listed. Without the root or its index.html the answer is a
 * small page that says the UI is not installed, naming no path.
 */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEB_MAX_FILE (16u * 1024 * 1024)

static const char not_installed[] =
	"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dlpgate console</title></head>"
	"<body><h1>dlpgate console</h1><p>The web UI is not installed on this console. The API at /api/v1/ "
	"works; see the console's documentation to install the web UI package.</p></body></html>\n";

bool console_web_path_ok(const char *p)
{
	if (p[0] != '/')
		return false;
	for (const char *s = p + 1; *s;) {
		if (*s == '/' || *s == '.') /* empty segment or one starting with '.' */
			return false;
		while (*s && *s != '/') {
			char ch = *s++;
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			      ch == '.' || ch == '_' || ch == '-' || ch == '~'))
				return false;
		}
		if (*s == '/' && !s[1])
			break; /* a trailing slash: a client route */
		if (*s == '/')
			s++;
	}
	return true;
}

const char *console_web_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"},	   {".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
		{".json", "application/json"},		   {".map", "application/json"},
		{".svg", "image/svg+xml"},		   {".png", "image/png"},
		{".ico", "image/x-icon"},		   {".woff2", "font/woff2"},
		{".txt", "text/plain; charset=utf-8"},	   {".webmanifest", "application/manifest+json"},
	};
	const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
	if (dot && (!slash || dot > slash))
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
			if (!strcmp(dot, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

/* NAME-HASH.EXT or NAME.HASH.EXT, HASH 8+ of [A-Za-z0-9_] with a digit or
 * both cases (so "app-dashboard.js" is not taken for hashed) */
bool console_web_hashed(const char *name)
{
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	const char *ext = strrchr(base, '.');
	if (!ext || ext == base)
		return false;
	const char *h = ext;
	while (h > base && h[-1] != '-' && h[-1] != '.')
		h--;
	if (h == base)
		return false;
	size_t n = (size_t)(ext - h);
	bool digit = false, upper = false, lower = false;
	for (size_t i = 0; i < n; i++) {
		char ch = h[i];
		digit |= ch >= '0' && ch <= '9';
		upper |= ch >= 'A' && ch <= 'Z';
		lower |= ch >= 'a' && ch <= 'z';
		if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_'))
			return false;
	}
	return n >= 8 && (digit || (upper && lower));
}

/* The file at root/rel when it is a regular file under root. */
static int read_under(const char *root_real, const char *root, const char *rel, console_web_answer_t *a)
{
	char path[PATH_MAX], real[PATH_MAX];
	if (snprintf(path, sizeof path, "%s%s", root, rel) >= (int)sizeof path || !realpath(path, real))
		return ENOENT;
	size_t rl = strlen(root_real);
	if (strncmp(real, root_real, rl) != 0 || real[rl] != '/')
		return ENOENT;
	int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ENOENT;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)WEB_MAX_FILE) {
		close(fd);
		return S_ISDIR(st.st_mode) ? ENOENT : EFBIG;
	}
	a->body = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (a->body && got < (size_t)st.st_size) {
		ssize_t r = read(fd, a->body + got, (size_t)st.st_size - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!a->body || got != (size_t)st.st_size) {
		free(a->body);
		a->body = NULL;
		return EIO;
	}
	a->len = got;
	a->type = console_web_type(real);
	a->immutable = console_web_hashed(rel);
	return 0;
}

void console_web_serve(const char *root, const char *path, console_web_answer_t *a)
{
	memset(a, 0, sizeof *a);
	if (!console_web_path_ok(path)) {
		a->status = 400;
		return;
	}
	char root_real[PATH_MAX];
	bool have_root = root && realpath(root, root_real);
	int r = ENOENT;
	if (have_root && strcmp(path, "/") != 0)
		r = read_under(root_real, root, path, a);
	if (r == EFBIG || r == EIO) {
		a->status = 404;
		return;
	}
	if (r != 0 && have_root)
		r = read_under(root_real, root, "/index.html", a);
	if (r != 0) {
		a->status = 503;
		a->body = strdup(not_installed);
		a->len = a->body ? strlen(a->body) : 0;
		a->type = "text/html; charset=utf-8";
		return;
	}
	a->status = 200;
}
