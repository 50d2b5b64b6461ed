/*
 * bundle: making, reading and verifying signed policy bundles (bundle.h,
 * schemas/bundle.md).
 *
 * The reader is strict by construction: every member of the document and
 * of the manifest is known or the bundle is refused, and every file is
 * checked against the manifest both ways (nothing missing, nothing extra,
 * size and hash). Base64 is decoded by OpenSSL and re-encoded to compare,
 * so only the one canonical spelling of each file is accepted.
 */
#include "sync/bundle.h"

#include "core/bytebuf.h"
#include "core/digest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 8 /* directories inside a bundle */

static bool fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return false;
}

static void bundle_key_id(const unsigned char pub[32], char out[BUNDLE_KEY_ID_LEN + 1])
{
	char full[65];
	digest_sha256_hex(pub, 32, full);
	memcpy(out, full, BUNDLE_KEY_ID_LEN);
	out[BUNDLE_KEY_ID_LEN] = '\0';
}

/* ---- base64, canonical only ---- */

static char *b64_encode(const unsigned char *in, size_t n)
{
	size_t out_len = 4 * ((n + 2) / 3);
	char *out = malloc(out_len + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

/* NULL when s is not canonical, padded base64 or decodes to more than max. */
static unsigned char *b64_decode(const char *s, size_t slen, size_t max, size_t *n)
{
	if (slen % 4 || slen / 4 * 3 > max + 2 || slen > (size_t)INT32_MAX)
		return NULL;
	unsigned char *out = malloc(slen / 4 * 3 + 1);
	if (!out)
		return NULL;
	int got = slen ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)slen) : 0;
	if (got < 0) {
		free(out);
		return NULL;
	}
	size_t pad = slen && s[slen - 1] == '=' ? (slen > 1 && s[slen - 2] == '=' ? 2 : 1) : 0;
	*n = (size_t)got - pad;
	/* EVP_DecodeBlock skips leading and trailing blanks: re-encode and compare */
	char *again = b64_encode(out, *n);
	bool same = again && strlen(again) == slen && memcmp(again, s, slen) == 0;
	free(again);
	if (!same || *n > max) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- paths and roles ---- */

bool bundle_path_ok(const char *path)
{
	size_t n = strlen(path);
	if (n == 0 || n > BUNDLE_MAX_PATH)
		return false;
	const char *comp = path;
	for (const char *p = path;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t len = (size_t)(p - comp);
			/* empty (leading '/', '//', trailing '/'), hidden, '.' and '..' */
			if (len == 0 || comp[0] == '.')
				return false;
			if (*p == '\0')
				return true;
			comp = p + 1;
			continue;
		}
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
}

bool bundle_chunk_path(const bundle_t *b, const char *chunk, char *out, size_t n)
{
	/* the entry's folder, then one component off it per leading "../" */
	const char *slash = strrchr(b->entry, '/');
	size_t dir = slash ? (size_t)(slash - b->entry) : 0;
	while (!strncmp(chunk, "../", 3)) {
		if (!dir)
			return false; /* above the bundle */
		while (dir && b->entry[dir - 1] != '/')
			dir--;
		dir = dir ? dir - 1 : 0;
		chunk += 3;
	}
	int k = dir ? snprintf(out, n, "%.*s/%s", (int)dir, b->entry, chunk) : snprintf(out, n, "%s", chunk);
	return k > 0 && (size_t)k < n && bundle_path_ok(out);
}

const char *bundle_role_name(bundle_role_t r)
{
	static const char *const names[] = {"entry", "module", "test", "data"};
	return r <= BUNDLE_ROLE_DATA ? names[r] : "?";
}

static bool role_parse(const char *s, bundle_role_t *r)
{
	for (int i = 0; i <= BUNDLE_ROLE_DATA; i++)
		if (!strcmp(s, bundle_role_name((bundle_role_t)i))) {
			*r = (bundle_role_t)i;
			return true;
		}
	return false;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

static bundle_role_t role_of(const char *path, const char *entry)
{
	if (!strcmp(path, entry))
		return BUNDLE_ROLE_ENTRY;
	if (!ends_with(path, ".lua"))
		return BUNDLE_ROLE_DATA;
	return strncmp(path, "tests/", 6) == 0 ? BUNDLE_ROLE_TEST : BUNDLE_ROLE_MODULE;
}

/* ---- the file list ---- */

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const bundle_file_t *)a)->path, ((const bundle_file_t *)b)->path);
}

const bundle_file_t *bundle_file(const bundle_t *b, const char *path)
{
	bundle_file_t key = {.path = (char *)path};
	return b->n_files ? bsearch(&key, b->files, b->n_files, sizeof key, file_cmp) : NULL;
}

static void file_free(bundle_file_t *f)
{
	free(f->path);
	free(f->data);
}

void bundle_free(bundle_t *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_files; i++)
		file_free(&b->files[i]);
	free(b->files);
	free(b->manifest_text);
	free(b);
}

/* Takes data. Keeps the list sorted; an existing path is replaced. */
static bool put_file(bundle_t *b, const char *path, bundle_role_t role, unsigned char *data, size_t size, char *err,
		     size_t errlen)
{
	if (!bundle_path_ok(path)) {
		free(data);
		return fail(err, errlen, "%.*s: not an allowed bundle path (relative; letters, digits, . _ - and /; no "
				 "empty, hidden, . or .. parts; at most %d bytes)",
			    BUNDLE_MAX_PATH, path, BUNDLE_MAX_PATH);
	}
	bundle_file_t *old = (bundle_file_t *)bundle_file(b, path);
	size_t total = b->content_size - (old ? old->size : 0) + size;
	if (total > BUNDLE_MAX_CONTENT) {
		free(data);
		return fail(err, errlen, "%s: the bundle would hold more than %u MiB", path, BUNDLE_MAX_CONTENT >> 20);
	}
	if (old) {
		free(old->data);
		old->data = data;
		old->size = size;
		old->role = role;
		digest_sha256_hex(data, size, old->sha256);
		b->content_size = total;
		return true;
	}
	if (b->n_files >= BUNDLE_MAX_FILES) {
		free(data);
		return fail(err, errlen, "%s: more than %d files in the bundle", path, BUNDLE_MAX_FILES);
	}
	bundle_file_t *v = realloc(b->files, (b->n_files + 1) * sizeof *v);
	char *p = strdup(path);
	if (!v || !p) {
		if (v)
			b->files = v;
		free(p);
		free(data);
		return fail(err, errlen, "out of memory");
	}
	b->files = v;
	bundle_file_t *f = &v[b->n_files++];
	*f = (bundle_file_t){.path = p, .role = role, .data = data, .size = size};
	digest_sha256_hex(data, size, f->sha256);
	b->content_size = total;
	qsort(b->files, b->n_files, sizeof *b->files, file_cmp);
	return true;
}

bool bundle_add_file(bundle_t *b, const char *path, bundle_role_t role, const void *data, size_t size, char *err,
		     size_t errlen)
{
	unsigned char *copy = malloc(size ? size : 1);
	if (!copy)
		return fail(err, errlen, "out of memory");
	memcpy(copy, data, size);
	return put_file(b, path, role, copy, size, err, errlen);
}

/* ---- from a directory ---- */

static bool read_all(int fd, const char *shown, size_t size, unsigned char **out, char *err, size_t errlen)
{
	unsigned char *data = malloc(size ? size : 1);
	if (!data)
		return fail(err, errlen, "out of memory");
	size_t got = 0;
	while (got < size) {
		ssize_t k = read(fd, data + got, size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			free(data);
			return fail(err, errlen, "%s: %s", shown, k < 0 ? strerror(errno) : "changed while read");
		}
		got += (size_t)k;
	}
	*out = data;
	return true;
}

static bool walk(bundle_t *b, int fd, const char *rel, const char *entry, int depth, char *err, size_t errlen)
{
	if (depth > MAX_DEPTH)
		return fail(err, errlen, "%s: directories nested deeper than %d", rel, MAX_DEPTH);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return fail(err, errlen, "%s: %s", *rel ? rel : ".", strerror(errno));
	}
	bool ok = true;
	struct dirent *de;
	while (ok && (de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char path[BUNDLE_MAX_PATH + 64];
		int plen = snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		if (plen < 0 || (size_t)plen > BUNDLE_MAX_PATH || !bundle_path_ok(path)) {
			ok = fail(err, errlen, "%.*s: not an allowed bundle path (letters, digits, . _ - and /; no hidden "
					  "files; at most %d bytes)",
				  BUNDLE_MAX_PATH, path, BUNDLE_MAX_PATH);
			break;
		}
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			ok = fail(err, errlen, "%s: %s", path, strerror(errno));
		} else if (S_ISLNK(st.st_mode)) {
			ok = fail(err, errlen, "%s: a symbolic link (bundles hold regular files only)", path);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			ok = sub >= 0 ? walk(b, sub, path, entry, depth + 1, err, errlen)
				      : fail(err, errlen, "%s: %s", path, strerror(errno));
		} else if (!S_ISREG(st.st_mode)) {
			ok = fail(err, errlen, "%s: not a regular file", path);
		} else if ((uint64_t)st.st_size > BUNDLE_MAX_CONTENT - b->content_size) {
			ok = fail(err, errlen, "%s: the bundle would hold more than %u MiB", path,
				  BUNDLE_MAX_CONTENT >> 20);
		} else {
			int file = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			unsigned char *data = NULL;
			ok = file >= 0 ? read_all(file, path, (size_t)st.st_size, &data, err, errlen)
				       : fail(err, errlen, "%s: %s", path, strerror(errno));
			if (file >= 0)
				close(file);
			if (ok)
				ok = put_file(b, path, role_of(path, entry), data, (size_t)st.st_size, err, errlen);
		}
	}
	closedir(d);
	return ok;
}

bundle_t *bundle_from_dir(const char *dir, const char *entry, char *err, size_t errlen)
{
	if (!entry)
		entry = "policy.lua";
	if (!bundle_path_ok(entry)) {
		fail(err, errlen, "entry %.64s: not an allowed bundle path", entry);
		return NULL;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fail(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	bundle_t *b = calloc(1, sizeof *b);
	if (!b) {
		close(fd);
		fail(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(b->entry, sizeof b->entry, "%s", entry);
	char inner[512];
	if (!walk(b, fd, "", entry, 0, inner, sizeof inner)) {
		fail(err, errlen, "%s: %s", dir, inner);
		bundle_free(b);
		return NULL;
	}
	if (!bundle_file(b, entry)) {
		fail(err, errlen, "%s: no entry file %s (name another with --entry)", dir, entry);
		bundle_free(b);
		return NULL;
	}
	return b;
}

/* ---- time and versions ---- */

static void now_rfc3339(char out[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* YYYY-MM-DDTHH:MM:SS[.fff...]Z, UTC only: a bundle's times are ours. */
static bool time_parse(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	int consumed = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
		   &tm.tm_sec, &consumed) != 6 ||
	    consumed != 19)
		return false;
	const char *p = s + 19;
	int64_t frac = 0;
	int digits = 0;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				frac = frac * 10 + (*p - '0');
		if (!digits)
			return false;
		for (int i = digits; i < 3; i++)
			frac *= 10;
	}
	if (strcmp(p, "Z") != 0 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*ms = (int64_t)t * 1000 + frac;
	return true;
}

static bool semver_parse(const char *s, unsigned long v[3])
{
	const char *p = s;
	for (int i = 0; i < 3; i++) {
		if (*p < '0' || *p > '9')
			return false;
		char *end;
		v[i] = strtoul(p, &end, 10);
		if (end - p > 6)
			return false;
		p = end;
		if (i < 2 && *p++ != '.')
			return false;
	}
	return *p == '\0';
}

bool bundle_version_cmp(const char *a, const char *b, int *cmp)
{
	unsigned long x[3], y[3];
	if (!semver_parse(a, x) || !semver_parse(b, y))
		return false;
	*cmp = 0;
	for (int i = 0; i < 3 && !*cmp; i++)
		*cmp = x[i] < y[i] ? -1 : x[i] > y[i];
	return true;
}

/* ---- keys ---- */

static EVP_PKEY *read_private_key(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fail(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		fail(err, errlen, "%s: not an Ed25519 private key in PEM", path);
		return NULL;
	}
	return k;
}

static bool public_of(EVP_PKEY *k, bundle_key_t *pub)
{
	size_t n = sizeof pub->pub;
	if (EVP_PKEY_get_raw_public_key(k, pub->pub, &n) != 1 || n != 32)
		return false;
	bundle_key_id(pub->pub, pub->key_id);
	return true;
}

bool bundle_key_public(const char *path, bundle_key_t *pub, char *err, size_t errlen)
{
	EVP_PKEY *k = read_private_key(path, err, errlen);
	bool ok = k && public_of(k, pub);
	if (k && !ok)
		fail(err, errlen, "%s: cannot read the public half", path);
	EVP_PKEY_free(k);
	return ok;
}

bool bundle_key_generate(const char *path, bundle_key_t *pub, char *err, size_t errlen)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k || !public_of(k, pub)) {
		EVP_PKEY_free(k);
		return fail(err, errlen, "cannot make an Ed25519 key");
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		EVP_PKEY_free(k);
		return fail(err, errlen, "%s: %s", path, e == EEXIST ? "exists (never overwritten)" : strerror(e));
	}
	bool ok = fchmod(fd, 0600) == 0 && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
	ok = fflush(f) == 0 && fsync(fd) == 0 && ok;
	fclose(f);
	EVP_PKEY_free(k);
	if (!ok) {
		unlink(path);
		return fail(err, errlen, "%s: cannot write the key", path);
	}
	return true;
}

static const bundle_key_t *bundle_keys_find(const bundle_keyset_t *ks, const char *key_id)
{
	for (size_t i = 0; i < ks->n; i++)
		if (!strcmp(ks->v[i].key_id, key_id))
			return &ks->v[i];
	return NULL;
}

bool bundle_keys_add(bundle_keyset_t *ks, const bundle_key_t *k)
{
	if (bundle_keys_find(ks, k->key_id))
		return true;
	if (ks->n >= BUNDLE_MAX_KEYS)
		return false;
	ks->v[ks->n++] = *k;
	return true;
}

bool bundle_keys_remove(bundle_keyset_t *ks, const char *key_id)
{
	for (size_t i = 0; i < ks->n; i++)
		if (!strcmp(ks->v[i].key_id, key_id)) {
			memmove(&ks->v[i], &ks->v[i + 1], (ks->n - i - 1) * sizeof ks->v[0]);
			ks->n--;
			return true;
		}
	return false;
}

/* A key from its id and base64 text; the id must be the key's. */
static bool key_from_text(const char *id, const char *b64, bundle_key_t *k, char *err, size_t errlen)
{
	size_t n = 0;
	unsigned char *raw = b64_decode(b64, strlen(b64), 32, &n);
	if (!raw || n != 32) {
		free(raw);
		return fail(err, errlen, "the public key is not 32 bytes of base64");
	}
	memcpy(k->pub, raw, 32);
	free(raw);
	bundle_key_id(k->pub, k->key_id);
	if (strcmp(k->key_id, id) != 0)
		return fail(err, errlen, "key id %.20s does not match its key (which is %s)", id, k->key_id);
	return true;
}

bool bundle_keys_parse(const char *text, bundle_keyset_t *ks, char *err, size_t errlen)
{
	memset(ks, 0, sizeof *ks);
	int line_no = 0;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		line_no++;
		char buf[256];
		if (len >= sizeof buf)
			return fail(err, errlen, "line %d: too long", line_no);
		memcpy(buf, line, len);
		buf[len] = '\0';
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		char alg[16], id[32], b64[128], extra[2];
		int k = sscanf(buf, "%15s %31s %127s %1s", alg, id, b64, extra);
		if (k > 0) {
			char inner[160];
			bundle_key_t key;
			if (k != 3 || strcmp(alg, "ed25519") != 0)
				return fail(err, errlen, "line %d: expected \"ed25519 KEY_ID BASE64_PUBLIC_KEY\"", line_no);
			if (!key_from_text(id, b64, &key, inner, sizeof inner))
				return fail(err, errlen, "line %d: %s", line_no, inner);
			if (!bundle_keys_add(ks, &key))
				return fail(err, errlen, "line %d: more than %d keys", line_no, BUNDLE_MAX_KEYS);
		}
		line += len + (nl ? 1 : 0);
	}
	return true;
}

bool bundle_keys_load(const char *path, bundle_keyset_t *ks, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	char text[BUNDLE_MAX_KEYS * 2 * 128 + 1];
	size_t n = fread(text, 1, sizeof text - 1, f);
	bool too_big = n == sizeof text - 1 && fgetc(f) != EOF;
	fclose(f);
	if (too_big)
		return fail(err, errlen, "%s: larger than a key list can be", path);
	text[n] = '\0';
	char inner[256];
	if (!bundle_keys_parse(text, ks, inner, sizeof inner))
		return fail(err, errlen, "%s: %s", path, inner);
	if (ks->n == 0)
		return fail(err, errlen, "%s: no keys in it", path);
	return true;
}

char *bundle_keys_format(const bundle_keyset_t *ks)
{
	bytebuf_t out = {0};
	for (size_t i = 0; i < ks->n; i++) {
		char *b64 = b64_encode(ks->v[i].pub, 32);
		char line[128];
		int n = snprintf(line, sizeof line, "ed25519 %s %s\n", ks->v[i].key_id, b64 ? b64 : "");
		free(b64);
		if (!bytebuf_append(&out, line, (size_t)n)) {
			bytebuf_free(&out);
			return NULL;
		}
	}
	if (!bytebuf_append(&out, "", 1)) {
		bytebuf_free(&out);
		return NULL;
	}
	return (char *)out.data;
}

/* ---- the manifest ---- */

static json_t *keys_json(const bundle_keyset_t *ks)
{
	json_t *a = json_array();
	for (size_t i = 0; i < ks->n; i++) {
		char *b64 = b64_encode(ks->v[i].pub, 32);
		json_array_append_new(a, json_pack("{s:s, s:s}", "key_id", ks->v[i].key_id, "public_key", b64));
		free(b64);
	}
	return a;
}

static char *manifest_build(const bundle_t *b)
{
	json_t *files = json_array();
	for (size_t i = 0; i < b->n_files; i++) {
		const bundle_file_t *f = &b->files[i];
		json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s}", "path", f->path, "sha256", f->sha256,
						       "size", (json_int_t)f->size, "role", bundle_role_name(f->role)));
	}
	json_t *m = json_pack("{s:i, s:I, s:s, s:s, s:s, s:s, s:o}", "bundle_format", BUNDLE_FORMAT, "policy_version",
			      (json_int_t)b->version, "created_at", b->created_at, "entry", b->entry,
			      "min_engine_version", b->min_engine, "key_id", b->key_id, "files", files);
	if (b->expires_at[0])
		json_object_set_new(m, "expires_at", json_string(b->expires_at));
	if (b->message[0])
		json_object_set_new(m, "message", json_string(b->message));
	if (b->next_keys.n)
		json_object_set_new(m, "next_keys", keys_json(&b->next_keys));
	if (b->n_retire) {
		json_t *r = json_array();
		for (size_t i = 0; i < b->n_retire; i++)
			json_array_append_new(r, json_string(b->retire_keys[i]));
		json_object_set_new(m, "retire_keys", r);
	}
	char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(m);
	return text;
}

static bool only_members(json_t *o, const char *const *allowed, const char *what, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		bool known = false;
		for (const char *const *a = allowed; *a && !known; a++)
			known = !strcmp(*a, k);
		if (!known)
			return fail(err, errlen, "%s: unknown member \"%.64s\" (refused: this engine does not know what it means)",
				    what, k);
	}
	return true;
}

static bool get_string(json_t *o, const char *name, bool required, char *out, size_t size, char *err,
		       size_t errlen)
{
	json_t *v = json_object_get(o, name);
	if (!v) {
		if (required)
			return fail(err, errlen, "manifest: %s is missing", name);
		out[0] = '\0';
		return true;
	}
	if (!json_is_string(v) || json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, errlen, "manifest: %s must be a string of at most %zu bytes", name, size - 1);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return true;
}

static bool key_id_ok(const char *s)
{
	if (strlen(s) != BUNDLE_KEY_ID_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

static bool manifest_keys(json_t *a, bundle_keyset_t *ks, char *err, size_t errlen)
{
	static const char *const allowed[] = {"key_id", "public_key", NULL};
	if (!json_is_array(a) || json_array_size(a) > BUNDLE_MAX_KEYS)
		return fail(err, errlen, "manifest: next_keys must be an array of at most %d keys", BUNDLE_MAX_KEYS);
	size_t i;
	json_t *k;
	json_array_foreach(a, i, k) {
		const char *id = json_string_value(json_object_get(k, "key_id"));
		const char *b64 = json_string_value(json_object_get(k, "public_key"));
		char inner[160];
		bundle_key_t key;
		if (!json_is_object(k) || !only_members(k, allowed, "manifest: next_keys", err, errlen))
			return json_is_object(k) ? false : fail(err, errlen, "manifest: next_keys[%zu] is not an object", i);
		if (!id || !b64 || !key_from_text(id, b64, &key, inner, sizeof inner))
			return fail(err, errlen, "manifest: next_keys[%zu]: %s", i,
				    id && b64 ? inner : "needs key_id and public_key");
		bundle_keys_add(ks, &key);
	}
	return true;
}

static bool manifest_parse(bundle_t *b, json_t **files_out, char *err, size_t errlen)
{
	static const char *const allowed[] = {"bundle_format", "policy_version", "created_at", "entry",
					      "min_engine_version", "expires_at", "key_id", "message", "files",
					      "next_keys", "retire_keys", NULL};
	json_error_t je;
	unsigned long engine[3];
	json_t *m = json_loads(b->manifest_text, JSON_REJECT_DUPLICATES, &je);
	if (!m)
		return fail(err, errlen, "manifest: not JSON: %s (at %d:%d)", je.text, je.line, je.column);
	bool ok = false;
	int64_t ms;
	json_t *v;
	if (!json_is_object(m)) {
		fail(err, errlen, "manifest: not an object");
	} else if (!only_members(m, allowed, "manifest", err, errlen)) {
	} else if (!json_is_integer(v = json_object_get(m, "bundle_format")) || json_integer_value(v) != BUNDLE_FORMAT) {
		fail(err, errlen, "manifest: bundle_format must be %d", BUNDLE_FORMAT);
	} else if (!json_is_integer(v = json_object_get(m, "policy_version")) || json_integer_value(v) < 1 ||
		   json_integer_value(v) > (1ll << 53)) {
		fail(err, errlen, "manifest: policy_version must be an integer from 1 to 2^53");
	} else if (!get_string(m, "created_at", true, b->created_at, sizeof b->created_at, err, errlen) ||
		   !get_string(m, "entry", true, b->entry, sizeof b->entry, err, errlen) ||
		   !get_string(m, "min_engine_version", true, b->min_engine, sizeof b->min_engine, err, errlen) ||
		   !get_string(m, "expires_at", false, b->expires_at, sizeof b->expires_at, err, errlen) ||
		   !get_string(m, "key_id", true, b->key_id, sizeof b->key_id, err, errlen) ||
		   !get_string(m, "message", false, b->message, sizeof b->message, err, errlen)) {
	} else if (!time_parse(b->created_at, &ms)) {
		fail(err, errlen, "manifest: created_at %s is not an RFC 3339 UTC time", b->created_at);
	} else if (b->expires_at[0] && !time_parse(b->expires_at, &b->expires_ms)) {
		fail(err, errlen, "manifest: expires_at %s is not an RFC 3339 UTC time", b->expires_at);
	} else if (!semver_parse(b->min_engine, engine)) {
		fail(err, errlen, "manifest: min_engine_version %s is not MAJOR.MINOR.PATCH", b->min_engine);
	} else if (!key_id_ok(b->key_id)) {
		fail(err, errlen, "manifest: key_id must be %d lowercase hex digits", BUNDLE_KEY_ID_LEN);
	} else if (!bundle_path_ok(b->entry)) {
		fail(err, errlen, "manifest: entry %s is not an allowed bundle path", b->entry);
	} else if ((v = json_object_get(m, "next_keys")) && !manifest_keys(v, &b->next_keys, err, errlen)) {
	} else if ((v = json_object_get(m, "retire_keys")) &&
		   (!json_is_array(v) || json_array_size(v) > BUNDLE_MAX_KEYS)) {
		fail(err, errlen, "manifest: retire_keys must be an array of at most %d key ids", BUNDLE_MAX_KEYS);
	} else if (!json_is_array(*files_out = json_object_get(m, "files"))) {
		fail(err, errlen, "manifest: files must be an array");
	} else {
		ok = true;
		b->version = json_integer_value(json_object_get(m, "policy_version"));
		size_t i;
		json_t *id;
		json_array_foreach(json_object_get(m, "retire_keys"), i, id) {
			if (!json_is_string(id) || !key_id_ok(json_string_value(id))) {
				ok = fail(err, errlen, "manifest: retire_keys[%zu] is not a key id", i);
				break;
			}
			if (!strcmp(json_string_value(id), b->key_id)) {
				ok = fail(err, errlen, "manifest: a bundle cannot retire the key that signs it");
				break;
			}
			snprintf(b->retire_keys[b->n_retire++], BUNDLE_KEY_ID_LEN + 1, "%s", json_string_value(id));
		}
	}
	if (ok)
		json_incref(*files_out);
	json_decref(m);
	return ok;
}

/* Each manifest entry against its file in the document; files is the
 * document's "files" object. */
static bool files_parse(bundle_t *b, json_t *listed, json_t *files, char *err, size_t errlen)
{
	static const char *const allowed[] = {"path", "sha256", "size", "role", NULL};
	if (json_array_size(listed) > BUNDLE_MAX_FILES || json_object_size(files) > BUNDLE_MAX_FILES)
		return fail(err, errlen, "more than %d files", BUNDLE_MAX_FILES);
	size_t i;
	json_t *e;
	int entries = 0;
	json_array_foreach(listed, i, e) {
		const char *path = json_string_value(json_object_get(e, "path"));
		const char *sha = json_string_value(json_object_get(e, "sha256"));
		const char *role_s = json_string_value(json_object_get(e, "role"));
		json_t *size_v = json_object_get(e, "size");
		bundle_role_t role;
		if (!json_is_object(e))
			return fail(err, errlen, "manifest: files[%zu] is not an object", i);
		if (!only_members(e, allowed, "manifest: files[]", err, errlen))
			return false;
		if (!path || !sha || !role_s || !json_is_integer(size_v) || json_integer_value(size_v) < 0)
			return fail(err, errlen, "manifest: files[%zu] needs path, sha256, size and role", i);
		if (!bundle_path_ok(path))
			return fail(err, errlen, "manifest: %.*s is not an allowed bundle path", BUNDLE_MAX_PATH, path);
		if (!role_parse(role_s, &role))
			return fail(err, errlen, "manifest: %s: unknown role %.32s", path, role_s);
		if ((role == BUNDLE_ROLE_ENTRY) != !strcmp(path, b->entry))
			return fail(err, errlen, "manifest: %s: role entry is the entry file's alone", path);
		entries += role == BUNDLE_ROLE_ENTRY;
		if (bundle_file(b, path))
			return fail(err, errlen, "manifest: %s is listed twice", path);
		json_t *content = json_object_get(files, path);
		if (!json_is_string(content))
			return fail(err, errlen, "%s: in the manifest but not in the bundle", path);
		size_t n = 0;
		unsigned char *data = b64_decode(json_string_value(content), json_string_length(content),
						 BUNDLE_MAX_CONTENT, &n);
		if (!data)
			return fail(err, errlen, "%s: not canonical base64 (or larger than %u MiB)", path,
				    BUNDLE_MAX_CONTENT >> 20);
		if ((json_int_t)n != json_integer_value(size_v)) {
			free(data);
			return fail(err, errlen, "%s: %zu bytes, the manifest says %" JSON_INTEGER_FORMAT, path, n,
				    json_integer_value(size_v));
		}
		if (!put_file(b, path, role, data, n, err, errlen))
			return false;
		if (strcmp(bundle_file(b, path)->sha256, sha) != 0)
			return fail(err, errlen, "%s: SHA-256 differs from the manifest's (tampered?)", path);
	}
	if (entries != 1)
		return fail(err, errlen, "manifest: the entry %s is not among the files", b->entry);
	const char *path;
	json_t *v;
	json_object_foreach(files, path, v) {
		if (!bundle_file(b, path))
			return fail(err, errlen, "%.*s: in the bundle but not in the manifest", BUNDLE_MAX_PATH, path);
	}
	return true;
}

bundle_t *bundle_parse(const void *doc, size_t len, char *err, size_t errlen)
{
	static const char *const allowed[] = {"format", "manifest", "signature", "files", NULL};
	static const char *const sig_allowed[] = {"alg", "key_id", "sig", NULL};
	if (len > BUNDLE_MAX_DOCUMENT) {
		fail(err, errlen, "bundle: %zu bytes, more than the %u allowed", len, BUNDLE_MAX_DOCUMENT);
		return NULL;
	}
	bundle_t *b = calloc(1, sizeof *b);
	if (!b) {
		fail(err, errlen, "out of memory");
		return NULL;
	}
	json_error_t je;
	json_t *d = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &je);
	json_t *sig, *files, *listed = NULL, *v;
	const char *key_id;
	bool ok = false;
	if (!d) {
		fail(err, errlen, "bundle: not JSON: %s (at %d:%d)", je.text, je.line, je.column);
	} else if (!json_is_object(d) || !only_members(d, allowed, "bundle", err, errlen)) {
		if (!json_is_object(d))
			fail(err, errlen, "bundle: not an object");
	} else if (!json_is_integer(v = json_object_get(d, "format")) || json_integer_value(v) != BUNDLE_FORMAT) {
		fail(err, errlen, "bundle: format must be %d", BUNDLE_FORMAT);
	} else if (!json_is_string(v = json_object_get(d, "manifest")) ||
		   strlen(json_string_value(v)) != json_string_length(v)) {
		fail(err, errlen, "bundle: manifest must be a string");
	} else if (!(b->manifest_text = strdup(json_string_value(v)))) {
		fail(err, errlen, "out of memory");
	} else if (!json_is_object(sig = json_object_get(d, "signature")) ||
		   !only_members(sig, sig_allowed, "bundle: signature", err, errlen)) {
		if (!json_is_object(sig))
			fail(err, errlen, "bundle: signature must be an object");
	} else if (!json_is_object(files = json_object_get(d, "files"))) {
		fail(err, errlen, "bundle: files must be an object");
	} else if (!manifest_parse(b, &listed, err, errlen)) {
	} else if (!files_parse(b, listed, files, err, errlen)) {
	} else if (!(v = json_object_get(sig, "alg")) || !json_is_string(v) || strcmp(json_string_value(v), "ed25519")) {
		fail(err, errlen, "bundle: signature.alg must be \"ed25519\"");
	} else if (!(key_id = json_string_value(json_object_get(sig, "key_id"))) || strcmp(key_id, b->key_id) != 0) {
		fail(err, errlen, "bundle: signature.key_id differs from the manifest's key_id");
	} else {
		v = json_object_get(sig, "sig");
		size_t n = 0;
		unsigned char *raw = json_is_string(v) ? b64_decode(json_string_value(v), json_string_length(v), 64, &n)
							: NULL;
		if (raw && n == 64) {
			memcpy(b->sig, raw, 64);
			b->signed_ = true;
			ok = true;
		} else {
			fail(err, errlen, "bundle: signature.sig must be 64 bytes of base64");
		}
		free(raw);
	}
	json_decref(listed);
	json_decref(d);
	if (!ok) {
		bundle_free(b);
		return NULL;
	}
	digest_sha256_hex(doc, len, b->sha256);
	return b;
}

bool bundle_verify(const bundle_t *b, const bundle_keyset_t *keys, char *err, size_t errlen)
{
	if (!b->signed_)
		return fail(err, errlen, "bundle v%lld: not signed", (long long)b->version);
	const bundle_key_t *k = bundle_keys_find(keys, b->key_id);
	if (!k)
		return fail(err, errlen, "bundle v%lld: signed by unknown key %s", (long long)b->version, b->key_id);
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, k->pub, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = pk && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		  EVP_DigestVerify(ctx, b->sig, 64, (const unsigned char *)b->manifest_text,
				   strlen(b->manifest_text)) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	if (!ok)
		return fail(err, errlen, "bundle v%lld: bad signature (key %s)", (long long)b->version, b->key_id);
	return true;
}

bool bundle_check_runnable(const bundle_t *b, int64_t running_version, int64_t now_ms, char *err, size_t errlen)
{
	int cmp = 0;
	if (b->version <= running_version)
		return fail(err, errlen, "bundle v%lld: not newer than the running v%lld (replayed or out of order)",
			    (long long)b->version, (long long)running_version);
	if (b->expires_ms && now_ms >= b->expires_ms)
		return fail(err, errlen, "bundle v%lld: expired at %s", (long long)b->version, b->expires_at);
	if (!bundle_version_cmp(b->min_engine, DLPGATE_VERSION, &cmp) || cmp > 0)
		return fail(err, errlen, "bundle v%lld: needs engine %s or later, this is %s", (long long)b->version,
			    b->min_engine, DLPGATE_VERSION);
	return true;
}

/* ---- signing and writing ---- */

bool bundle_sign(bundle_t *b, int64_t version, const char *key_path, char *err, size_t errlen)
{
	if (version < 1 || version > (1ll << 53))
		return fail(err, errlen, "version %lld: give 1 to 2^53", (long long)version);
	if (!bundle_file(b, b->entry))
		return fail(err, errlen, "no entry file %s in the bundle", b->entry);
	if (b->expires_at[0] && !time_parse(b->expires_at, &b->expires_ms))
		return fail(err, errlen, "expiry %s is not an RFC 3339 UTC time", b->expires_at);
	EVP_PKEY *k = read_private_key(key_path, err, errlen);
	if (!k)
		return false;
	bundle_key_t pub;
	if (!public_of(k, &pub)) {
		EVP_PKEY_free(k);
		return fail(err, errlen, "%s: cannot read the public half", key_path);
	}
	for (size_t i = 0; i < b->n_retire; i++)
		if (!strcmp(b->retire_keys[i], pub.key_id)) {
			EVP_PKEY_free(k);
			return fail(err, errlen, "a bundle cannot retire the key that signs it (%s)", pub.key_id);
		}
	b->version = version;
	now_rfc3339(b->created_at);
	if (!b->min_engine[0])
		snprintf(b->min_engine, sizeof b->min_engine, "%s", DLPGATE_VERSION);
	memcpy(b->key_id, pub.key_id, sizeof b->key_id);
	free(b->manifest_text);
	b->manifest_text = manifest_build(b);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t siglen = sizeof b->sig;
	bool ok = b->manifest_text && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
		  EVP_DigestSign(ctx, b->sig, &siglen, (const unsigned char *)b->manifest_text,
				 strlen(b->manifest_text)) == 1 &&
		  siglen == 64;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	b->signed_ = ok;
	if (!ok)
		return fail(err, errlen, "cannot sign the manifest");
	return true;
}

char *bundle_serialize(const bundle_t *b, size_t *len)
{
	if (!b->signed_ || !b->manifest_text)
		return NULL;
	json_t *files = json_object();
	for (size_t i = 0; i < b->n_files; i++) {
		char *b64 = b64_encode(b->files[i].data, b->files[i].size);
		json_object_set_new(files, b->files[i].path, json_string(b64 ? b64 : ""));
		free(b64);
	}
	char *sig = b64_encode(b->sig, 64);
	json_t *d = json_pack("{s:i, s:s, s:{s:s, s:s, s:s}, s:o}", "format", BUNDLE_FORMAT, "manifest",
			      b->manifest_text, "signature", "alg", "ed25519", "key_id", b->key_id, "sig", sig ? sig : "",
			      "files", files);
	free(sig);
	char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	if (text && len)
		*len = strlen(text);
	return text;
}

/* Makes the directories of rel under root (all 0700). */
static bool make_parents(int rootfd, const char *rel, char *err, size_t errlen)
{
	char buf[BUNDLE_MAX_PATH + 1];
	snprintf(buf, sizeof buf, "%s", rel);
	for (char *p = buf; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdirat(rootfd, buf, 0700) != 0 && errno != EEXIST)
			return fail(err, errlen, "%s: %s", buf, strerror(errno));
		*p = '/';
	}
	return true;
}

bool bundle_extract(const bundle_t *b, const char *dir, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) != 0)
		return fail(err, errlen, "%s: %s", dir, strerror(errno));
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return fail(err, errlen, "%s: %s", dir, strerror(errno));
	bool ok = true;
	for (size_t i = 0; ok && i < b->n_files; i++) {
		const bundle_file_t *f = &b->files[i];
		/* paths were checked: relative, no "..", no hidden parts, so
		 * everything lands under dir, in directories made here */
		ok = make_parents(rootfd, f->path, err, errlen);
		int fd = ok ? openat(rootfd, f->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
		if (ok && fd < 0)
			ok = fail(err, errlen, "%s/%s: %s", dir, f->path, strerror(errno));
		for (size_t done = 0; ok && done < f->size;) {
			ssize_t k = write(fd, f->data + done, f->size - done);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				ok = fail(err, errlen, "%s/%s: %s", dir, f->path, strerror(errno));
			else
				done += (size_t)k;
		}
		if (fd >= 0)
			close(fd);
	}
	close(rootfd);
	return ok;
}
